//! The simulator's certificates pass strict verifiers: Python's `ssl` with
//! `VERIFY_X509_STRICT` (the default in Python 3.13, which Ansible and proxmoxer users run) and
//! `openssl s_client -x509_strict`, trusting only the simulator's CA; the leaf they see is the
//! one [`SimHandle::fingerprint`] pins.

use proxmox_manager::sim::{self, Scenario, SimHandle, SimOptions};

async fn start() -> SimHandle {
    sim::start(SimOptions {
        scenario: Scenario::embedded().expect("embedded scenario"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale: 0.001,
    })
    .await
    .expect("simulator starts")
}

const STRICT_GET: &str = r#"
import hashlib, json, os, ssl, http.client
ctx = ssl.create_default_context(cafile=os.environ["SIM_CA"])
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
conn = http.client.HTTPSConnection(os.environ["SIM_HOST"], int(os.environ["SIM_PORT"]), context=ctx)
conn.request("GET", "/api2/json/version", headers={"Authorization": os.environ["SIM_AUTH"]})
resp = conn.getresponse()
body = json.loads(resp.read())
der = conn.sock.getpeercert(binary_form=True)
fp = ":".join("%02X" % b for b in hashlib.sha256(der).digest())
print(json.dumps({"status": resp.status, "version": body["data"]["version"], "fp": fp}))
"#;

fn have(cmd: &str) -> bool {
    std::process::Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_strict_verification_accepts_the_simulator() {
    if !have("python3") {
        eprintln!("python3 not on PATH; skipping the strict-TLS check");
        return;
    }
    let h = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, h.ca_pem()).expect("write ca");
    let t = h.token("root@pam!admin").expect("token");
    for host in ["127.0.0.1", "localhost"] {
        let mut cmd = tokio::process::Command::new(crate::common::external::require("python3"));
        cmd.arg("-c")
            .arg(STRICT_GET)
            .env("SIM_CA", &ca)
            .env("SIM_HOST", host)
            .env("SIM_PORT", h.addr().port().to_string())
            // the secret goes through the environment, never argv
            .env("SIM_AUTH", format!("PVEAPIToken={}={}", t.id, t.secret));
        let out = cmd.output().await.expect("python3 runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "strict handshake to {host}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("python prints json");
        assert_eq!(v["status"], 200, "{v}");
        assert_eq!(v["version"], "9.1.1", "{v}");
        assert_eq!(
            v["fp"],
            h.fingerprint(),
            "pinned fingerprint is the served leaf"
        );
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_x509_strict_verifies_the_chain() {
    if !have("openssl") {
        eprintln!("openssl not on PATH; skipping the x509_strict check");
        return;
    }
    let h = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, h.ca_pem()).expect("write ca");
    let out = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(h.addr().to_string())
        .arg("-CAfile")
        .arg(&ca)
        .args([
            "-x509_strict",
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "openssl -x509_strict rejected the chain:\n{text}"
    );
    h.shutdown().await;
}

//! The command line a user types: `config-schema`, `tools`, `sim`, `check --sim`, `call`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

async fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(common::binary())
        .args(args)
        .output()
        .await
        .expect("run");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn config_schema_is_json_schema_of_the_seed_format() {
    let schema: serde_json::Value =
        serde_json::from_str(&stdout_of(&["config-schema"]).await).expect("JSON");
    for key in [
        "cluster",
        "defaults",
        "vmid_ranges",
        "credentials",
        "tags",
        "cloudinit",
    ] {
        assert!(
            schema["properties"].get(key).is_some(),
            "schema lacks {key}"
        );
    }
}

#[tokio::test]
async fn tools_prints_the_catalogue() {
    let md = stdout_of(&["tools"]).await;
    assert!(md.contains("## `cluster`") && md.contains("### `vm_list`"));
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&["tools", "--json"]).await).expect("JSON");
    assert!(json["tools"].as_array().is_some_and(|t| t.len() >= 9));
}

#[tokio::test]
async fn check_and_call_against_the_simulator() {
    let out = stdout_of(&["check", "--sim", "--sim-time-scale", "0.01"]).await;
    assert!(
        out.contains("connectivity: Proxmox VE 9.") && !out.contains("FAIL"),
        "{out}"
    );
    for node in ["pve01", "pve02", "pve03"] {
        assert!(
            out.contains(&format!("[ok  ] ssh {node}: connected as root")),
            "the in-memory key and pinned host keys reach every node: {out}"
        );
    }
    let out = stdout_of(&["call", "vm_list", r#"{"tag":"prod"}"#, "--sim"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("structured output");
    let vms = v["vms"].as_array().expect("vms");
    assert!(
        !vms.is_empty()
            && vms.iter().all(|vm| vm["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == "prod")))
    );
}

/// `serve --sim` / `call --sim` reach the simulator's nodes with an in-memory key: the
/// least-privilege token builds a cloud-init template over SSH in one command.
#[tokio::test(flavor = "multi_thread")]
async fn call_builds_a_template_over_ssh_against_the_simulator() {
    let url = common::images::serve("noble.qcow2", common::images::qcow2()).await;
    let args = serde_json::json!({"image_url": url, "name": "cli-noble-tmpl", "disk_size": "4G"});
    let out = stdout_of(&[
        "call",
        "template_from_cloud_image",
        &args.to_string(),
        "--sim",
        "--sim-time-scale",
        "0.01",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("structured output");
    assert_eq!(v["path"]["path"], "ssh", "{v}");
    assert_eq!(v["disk_size"], "4G", "{v}");
    assert!(
        v["config"]["cicustom"]
            .as_str()
            .is_some_and(|c| c.starts_with("vendor=local:snippets/")),
        "{v}"
    );
    assert!(v["warnings"].as_array().is_some_and(Vec::is_empty), "{v}");
}

#[tokio::test]
async fn sim_prints_url_fingerprint_and_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(common::binary())
        .args(["sim", "--ca-out"])
        .arg(&ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sim");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push_str(&l);
            seen.push('\n');
            if l.contains("Ctrl-C") {
                break;
            }
        }
    })
    .await
    .expect("sim prints its banner");
    assert!(
        seen.contains("https://127.0.0.1:") && seen.contains("fingerprint:"),
        "{seen}"
    );
    assert!(seen.contains("claude-code@pve!automation="), "{seen}");
    assert!(
        seen.contains("ssh pve01:") && seen.contains("(host key SHA256:"),
        "{seen}"
    );
    assert!(
        std::fs::read_to_string(&ca)
            .expect("ca written")
            .contains("BEGIN CERTIFICATE")
    );
}

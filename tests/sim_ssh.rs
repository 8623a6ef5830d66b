//! The simulator's SSH front, driven by our own SSH client (`proxmox_manager::ssh`) and by the
//! real OpenSSH `ssh`: host keys, authentication, shell-syntax refusal, the image-to-template
//! flow over SSH, SFTP snippets, `pveum` bootstrapping a token the API accepts, nodes going
//! offline and coming back. No fixed sleeps: everything awaits the commands themselves.

use crate::common::images;
use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use proxmox_manager::ssh::{
    Command, Error, ExecOptions, ExecOutput, HostKeyPolicy, PoolOptions, SshAuth, SshPool,
    SshTarget,
};
use serde_json::Value;
use support::{Api, ROOT};

struct Fixture {
    api: Api,
    dir: tempfile::TempDir,
    pool: SshPool,
}

fn keygen(path: &Path) {
    let out = std::process::Command::new(crate::common::external::require("ssh-keygen"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "sim-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs (OpenSSH client is installed)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pool_with(key: &Path, known_hosts: &Path) -> SshPool {
    let auth = SshAuth::KeyFile {
        path: key.to_path_buf(),
        passphrase: None,
    };
    SshPool::new(PoolOptions::new(
        "root",
        auth,
        HostKeyPolicy::strict(known_hosts),
    ))
}

impl Fixture {
    async fn new() -> Fixture {
        let api = Api::new(0.001).await;
        let dir = tempfile::tempdir().expect("tempdir");
        keygen(&dir.path().join("id"));
        let public = std::fs::read_to_string(dir.path().join("id.pub")).expect("pub key");
        api.h.authorize_ssh_key(&public).expect("key authorizes");
        std::fs::write(dir.path().join("known_hosts"), api.h.ssh_known_hosts())
            .expect("known_hosts");
        let pool = pool_with(&dir.path().join("id"), &dir.path().join("known_hosts"));
        Fixture { api, dir, pool }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn target(&self, node: &str) -> SshTarget {
        let addr = self.api.h.ssh_addr(node).expect("node has ssh");
        SshTarget::new(addr.ip().to_string(), addr.port())
    }

    async fn try_run(&self, node: &str, cmd: Command) -> Result<ExecOutput, Error> {
        let opts = ExecOptions::with_timeout(Duration::from_secs(30));
        self.pool.exec(&self.target(node), &cmd, opts).await
    }

    async fn run(&self, node: &str, cmd: Command) -> ExecOutput {
        self.try_run(node, cmd).await.expect("exec over ssh")
    }

    async fn ok(&self, node: &str, cmd: Command) -> String {
        let out = self.run(node, cmd).await;
        assert_eq!(out.status, Some(0), "{out:?}");
        out.stdout
    }
}

fn cmd(program: &str, args: &[&str]) -> Command {
    Command::new(program).args(args.iter().copied())
}

/// Serves `bytes` at `/noble.qcow2` on loopback (404 elsewhere); returns the base URL.
async fn serve(bytes: Vec<u8>) -> String {
    let url = images::serve("noble.qcow2", bytes).await;
    url.trim_end_matches("/noble.qcow2").to_string()
}

/// Hex SHA-256, as `sha256sum` prints it.
fn hex(bytes: &[u8]) -> String {
    images::sha256(bytes)
        .trim_start_matches("sha256:")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn host_keys_verify_and_strangers_are_refused() {
    let f = Fixture::new().await;
    let list = f.ok("pve01", cmd("qm", &["list"])).await;
    assert!(list.starts_with("      VMID NAME"), "{list}");
    assert!(
        list.contains("web-01") && !list.contains("monitor-01"),
        "{list}"
    );

    // an empty known_hosts: the node's key is unknown, and the error names its fingerprint
    std::fs::write(f.path("empty"), "").expect("write");
    let strict = pool_with(&f.path("id"), &f.path("empty"));
    let opts = ExecOptions::with_timeout(Duration::from_secs(10));
    let err = strict
        .exec(&f.target("pve02"), &cmd("qm", &["list"]), opts.clone())
        .await
        .expect_err("unknown host key refused");
    let Error::UnknownHostKey { fingerprint, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        Some(fingerprint.clone()),
        f.api.h.ssh_host_fingerprint("pve02")
    );
    assert_ne!(
        f.api.h.ssh_host_fingerprint("pve01"),
        f.api.h.ssh_host_fingerprint("pve02")
    );

    // a key that was never authorized does not log in
    keygen(&f.path("other"));
    let stranger = pool_with(&f.path("other"), &f.path("known_hosts"));
    let err = stranger
        .exec(&f.target("pve01"), &cmd("qm", &["list"]), opts)
        .await
        .expect_err("unauthorized key refused");
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(f.api.h.authorize_ssh_key("ssh-ed25519 not-base64").is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn openssh_speaks_to_the_simulator() {
    let f = Fixture::new().await;
    let port = f.api.h.ssh_addr("pve01").expect("addr").port().to_string();
    let ssh = |line: &str| {
        std::process::Command::new("ssh")
            .args(["-i", &f.path("id").display().to_string(), "-p", &port])
            .args([
                "-o",
                &format!("UserKnownHostsFile={}", f.path("known_hosts").display()),
            ])
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args(["-o", "GlobalKnownHostsFile=/dev/null", "-F", "/dev/null"])
            .arg("root@127.0.0.1")
            .arg(line)
            .output()
            .expect("ssh runs")
    };
    let out = tokio::task::block_in_place(|| ssh("qm list"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ubuntu-noble-tmpl"), "{stdout}");

    // unquoted shell syntax runs nothing; the same text quoted is just an argument
    let out = tokio::task::block_in_place(|| ssh("qm list; id"));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sim: shell syntax ';' is not supported by the simulator\n"
    );
    let out = tokio::task::block_in_place(|| ssh("test -n 'a;b'"));
    assert_eq!(out.status.code(), Some(0));
    let journal = f.api.h.ssh_commands();
    let refused = journal
        .iter()
        .find(|r| r.line == "qm list; id")
        .expect("journaled");
    assert!(refused.shell_syntax && refused.argv.is_empty() && refused.status == 2);
    let quoted = journal
        .iter()
        .find(|r| r.line == "test -n 'a;b'")
        .expect("journaled");
    assert!(!quoted.shell_syntax);
    assert_eq!(quoted.argv, ["test", "-n", "a;b"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn our_client_never_sends_shell_syntax() {
    let f = Fixture::new().await;
    let out = f.run("pve01", cmd("frobnicate", &["--now"])).await;
    assert_eq!(out.status, Some(127));
    assert_eq!(
        out.stderr,
        "timeout: failed to run command ‘frobnicate’: No such file or directory\n"
    );
    let hostile = ["a;b", "$(id)", "`id`", "x > y", "it's", "a\nb", "${HOME}"];
    for h in hostile {
        let out = f.run("pve01", cmd("test", &["-n", h])).await;
        assert_eq!(out.status, Some(0), "{h}: {out:?}");
    }
    // eight channels at once over one connection
    let runs = (0..8).map(|_| f.run("pve02", cmd("qm", &["config", "1007"])));
    for out in futures_join(runs).await {
        assert!(out.stdout.contains("name: dev-sandbox"), "{out:?}");
    }
    let journal = f.api.h.ssh_commands();
    assert!(journal.iter().all(|r| !r.shell_syntax), "{journal:?}");
    let first = &journal[0];
    assert!(
        first.line.starts_with("timeout -k 2 30 frobnicate"),
        "{}",
        first.line
    );
    assert_eq!(first.argv, ["frobnicate", "--now"]);
    assert_eq!((first.node.as_str(), first.status), ("pve01", 127));
}

/// Awaits all futures concurrently (no `futures` crate here: a tiny join-all).
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> = futs.map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, res) in pending.iter_mut().zip(out.iter_mut()) {
            if let Some(f) = slot
                && let std::task::Poll::Ready(v) = f.as_mut().poll(cx)
            {
                *res = Some(v);
                *slot = None;
            }
        }
        if pending.iter().all(Option::is_none) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_image_to_template_over_ssh() {
    let f = Fixture::new().await;
    let image = images::qcow2();
    let base = serve(image.clone()).await;
    let dest = "/var/lib/vz/import/noble.qcow2";
    f.ok(
        "pve01",
        cmd("wget", &["-q", "-O", dest, &format!("{base}/noble.qcow2")]),
    )
    .await;
    let sum = f.ok("pve01", cmd("sha256sum", &[dest])).await;
    assert_eq!(sum, format!("{}  {dest}\n", hex(&image)));
    assert!(
        f.api
            .h
            .files("pve01", "local")
            .contains(&"local:import/noble.qcow2".to_string())
    );

    let out = f
        .ok(
            "pve01",
            cmd("qemu-img", &["resize", "-f", "qcow2", dest, "+1G"]),
        )
        .await;
    assert_eq!(out, "Image resized.\n");
    let shrink = f
        .run("pve01", cmd("qemu-img", &["resize", dest, "64M"]))
        .await;
    assert_eq!(shrink.status, Some(1));
    assert_eq!(
        shrink.stderr,
        "qemu-img: Use the --shrink option to perform a shrink operation.\n"
    );
    let info = f
        .ok("pve01", cmd("qemu-img", &["info", "--output=json", dest]))
        .await;
    let info: Value = serde_json::from_str(&info).expect("json");
    assert_eq!(info["virtual-size"], (64u64 << 20) + (1u64 << 30));
    assert_eq!(info["format"], "qcow2");
    let (_, content) = f
        .api
        .get("/nodes/pve01/storage/local/content/local:import/noble.qcow2")
        .await;
    assert_eq!(content["data"]["size"], (64u64 << 20) + (1u64 << 30));

    let create = [
        ("vmid", "9000"),
        ("name", "noble"),
        ("memory", "2048"),
        ("scsihw", "virtio-scsi-single"),
    ];
    let status = f.api.run(ROOT, "POST", "/nodes/pve01/qemu", &create).await;
    assert_eq!(status, "OK");
    let import = f
        .ok(
            "pve01",
            cmd("qm", &["disk", "import", "9000", dest, "local-lvm"]),
        )
        .await;
    assert!(
        import.starts_with(&format!("importing disk '{dest}' to VM 9000 ...\n")),
        "{import}"
    );
    assert!(
        import.contains("transferred 1.1 GiB of 1.1 GiB (100.00%)"),
        "{import}"
    );
    assert!(
        import.ends_with("unused0: successfully imported disk 'local-lvm:vm-9000-disk-0'\n"),
        "{import}"
    );
    let config = f.api.config("pve01", 9000).await;
    assert_eq!(config["unused0"], "local-lvm:vm-9000-disk-0");
    let (_, listed) = f
        .api
        .get("/nodes/pve01/storage/local-lvm/content?vmid=9000")
        .await;
    assert_eq!(listed["data"][0]["volid"], "local-lvm:vm-9000-disk-0");

    let set = f
        .ok(
            "pve01",
            cmd(
                "qm",
                &[
                    "set",
                    "9000",
                    "--scsi0",
                    "local-lvm:vm-9000-disk-0",
                    "--boot",
                    "order=scsi0",
                ],
            ),
        )
        .await;
    assert_eq!(
        set,
        "update VM 9000: -boot order=scsi0 -scsi0 local-lvm:vm-9000-disk-0\n"
    );
    let config = f.api.config("pve01", 9000).await;
    assert_eq!(config["scsi0"], "local-lvm:vm-9000-disk-0,size=1088M");
    assert!(config.get("unused0").is_none(), "{config}");

    f.ok("pve01", cmd("qm", &["template", "9000"])).await;
    let config = f.api.config("pve01", 9000).await;
    assert_eq!(config["template"], 1);
    assert_eq!(config["scsi0"], "local-lvm:base-9000-disk-0,size=1088M");
    let path = f
        .ok(
            "pve01",
            cmd("pvesm", &["path", "local-lvm:base-9000-disk-0"]),
        )
        .await;
    assert_eq!(path, "/dev/pve/base-9000-disk-0\n");

    f.ok("pve01", cmd("rm", &["-f", dest])).await;
    assert!(
        !f.api
            .h
            .files("pve01", "local")
            .contains(&"local:import/noble.qcow2".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn qm_refuses_what_pve_refuses() {
    let f = Fixture::new().await;
    let locked = f
        .run("pve02", cmd("qm", &["set", "1006", "--name", "x"]))
        .await;
    assert_eq!(
        (locked.status, locked.stderr.as_str()),
        (Some(255), "VM is locked (backup)\n")
    );
    let elsewhere = f
        .run("pve01", cmd("qm", &["set", "1006", "--name", "x"]))
        .await;
    assert_eq!(
        elsewhere.stderr,
        "Configuration file 'nodes/pve01/qemu-server/1006.conf' does not exist\n"
    );
    let bad = f
        .run("pve02", cmd("qm", &["set", "1007", "--frobnicate", "8"]))
        .await;
    assert_eq!(bad.status, Some(255));
    assert!(
        bad.stderr
            .starts_with("400 Parameter verification failed.\nfrobnicate: "),
        "{bad:?}"
    );
    assert!(bad.stderr.ends_with("qm set <vmid> [OPTIONS]\n"), "{bad:?}");
    let missing = f
        .run(
            "pve02",
            cmd(
                "qm",
                &["disk", "import", "1007", "/var/tmp/nope.qcow2", "local-lvm"],
            ),
        )
        .await;
    assert_eq!(missing.stderr, "can't find file '/var/tmp/nope.qcow2'\n");
    let no_images = f
        .run(
            "pve01",
            cmd(
                "qm",
                &[
                    "importdisk",
                    "1000",
                    "local:import/noble-server-cloudimg-amd64.qcow2",
                    "local",
                ],
            ),
        )
        .await;
    assert_eq!(
        no_images.stderr,
        "storage local does not support vm images\n"
    );
    let running = f.run("pve01", cmd("qm", &["template", "1000"])).await;
    assert_eq!(
        running.stderr,
        "you can't convert a VM to template if VM is running\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn snippets_over_sftp_are_storage_volumes() {
    let f = Fixture::new().await;
    let t = f.target("pve01");
    let yaml = b"#cloud-config\npackages: [qemu-guest-agent]\n";
    let path = "/var/lib/vz/snippets/ci-vendor.yaml";
    f.pool
        .upload(&t, yaml, path, 0o640)
        .await
        .expect("sftp upload");
    let (_, b) = f
        .api
        .get("/nodes/pve01/storage/local/content?content=snippets")
        .await;
    let ids: Vec<&str> = b["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v["volid"].as_str())
        .collect();
    assert!(ids.contains(&"local:snippets/ci-vendor.yaml"), "{ids:?}");
    let file = f.api.h.node_file("pve01", path).expect("file");
    assert_eq!(file.content.as_deref(), Some(&yaml[..]));
    assert!(
        f.api.h.node_file("pve02", path).is_none(),
        "local storage is per node"
    );

    f.pool
        .upload(&t, b"x", "/var/tmp/plain.txt", 0o600)
        .await
        .expect("upload");
    assert_eq!(f.api.h.node_paths("pve01"), ["/var/tmp/plain.txt"]);
    assert!(
        f.pool
            .upload(&t, b"x", "/no/such/dir/f", 0o600)
            .await
            .is_err()
    );

    f.ok("pve01", cmd("rm", &[path, "/var/tmp/plain.txt"]))
        .await;
    assert!(f.api.h.node_file("pve01", path).is_none());
    assert!(f.api.h.node_paths("pve01").is_empty());
    let again = f.run("pve01", cmd("rm", &[path])).await;
    assert_eq!(again.status, Some(1));
    assert_eq!(
        again.stderr,
        format!("rm: cannot remove '{path}': No such file or directory\n")
    );
    assert_eq!(
        f.run("pve01", cmd("test", &["-e", path])).await.status,
        Some(1)
    );
    assert_eq!(
        f.run("pve01", cmd("test", &["-d", "/var/lib/vz/snippets"]))
            .await
            .status,
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_fail_like_wget_and_curl() {
    let f = Fixture::new().await;
    let base = serve(images::qcow2()).await;
    let out = f
        .run(
            "pve01",
            cmd(
                "wget",
                &[
                    "-O",
                    "/var/tmp/x.qcow2",
                    "http://images.example.com/x.qcow2",
                ],
            ),
        )
        .await;
    assert_eq!(out.status, Some(4));
    assert!(
        out.stderr
            .ends_with("wget: unable to resolve host address ‘images.example.com’\n"),
        "{}",
        out.stderr
    );
    assert_eq!(
        f.api
            .h
            .node_file("pve01", "/var/tmp/x.qcow2")
            .map(|x| x.size),
        Some(0)
    );

    let out = f
        .run(
            "pve01",
            cmd("wget", &["-O", "/var/tmp/y", &format!("{base}/missing")]),
        )
        .await;
    assert_eq!(out.status, Some(8));
    assert!(
        out.stderr.contains("ERROR 404: Not Found."),
        "{}",
        out.stderr
    );

    let out = f
        .run(
            "pve01",
            cmd(
                "curl",
                &["-fsSL", "-o", "/var/tmp/z", "http://images.example.com/z"],
            ),
        )
        .await;
    assert_eq!(
        (out.status, out.stderr.as_str()),
        (
            Some(6),
            "curl: (6) Could not resolve host: images.example.com\n"
        )
    );
    let out = f
        .run(
            "pve01",
            cmd(
                "curl",
                &["-fsS", "-o", "/var/tmp/z", &format!("{base}/missing")],
            ),
        )
        .await;
    assert_eq!(
        (out.status, out.stderr.as_str()),
        (
            Some(22),
            "curl: (22) The requested URL returned error: 404\n"
        )
    );
    assert!(f.api.h.node_file("pve01", "/var/tmp/z").is_none());

    f.ok(
        "pve01",
        cmd(
            "curl",
            &[
                "-fsSL",
                "-o",
                "/var/tmp/ok.qcow2",
                &format!("{base}/noble.qcow2"),
            ],
        ),
    )
    .await;
    let sums = f
        .ok("pve01", cmd("sha512sum", &["/var/tmp/ok.qcow2"]))
        .await;
    assert_eq!(sums.len(), 128 + 2 + "/var/tmp/ok.qcow2".len() + 1);
    let out = f
        .run(
            "pve01",
            cmd(
                "pvesm",
                &["path", "local:iso/debian-12.12.0-amd64-netinst.iso"],
            )
            .stdout_to("/root/p"),
        )
        .await;
    assert_eq!(out.status, Some(0));
    let saved = f.api.h.node_file("pve01", "/root/p").expect("redirected");
    assert_eq!(
        saved.content.as_deref(),
        Some(&b"/var/lib/vz/template/iso/debian-12.12.0-amd64-netinst.iso\n"[..])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pveum_bootstraps_a_token_the_api_accepts() {
    let f = Fixture::new().await;
    f.ok(
        "pve01",
        cmd(
            "pveum",
            &["role", "add", "Bootstrap", "--privs", "VM.Audit,Sys.Audit"],
        ),
    )
    .await;
    let dup = f
        .run("pve01", cmd("pveum", &["role", "add", "Bootstrap"]))
        .await;
    assert_eq!(
        dup.stderr,
        "create role failed: role 'Bootstrap' already exists\n"
    );
    let bad = f
        .run(
            "pve01",
            cmd("pveum", &["role", "add", "X", "--privs", "VM.Monitor"]),
        )
        .await;
    assert_eq!(
        (bad.status, bad.stderr.as_str()),
        (
            Some(255),
            "create role failed: invalid privilege 'VM.Monitor'\n"
        )
    );
    f.ok(
        "pve01",
        cmd(
            "pveum",
            &[
                "role",
                "modify",
                "Bootstrap",
                "--privs",
                "Datastore.Audit",
                "--append",
                "1",
            ],
        ),
    )
    .await;
    let roles = f
        .ok(
            "pve01",
            cmd("pveum", &["role", "list", "--output-format", "json"]),
        )
        .await;
    let roles: Value = serde_json::from_str(&roles).expect("json");
    let mine = roles
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["roleid"] == "Bootstrap")
        .expect("role");
    assert_eq!(mine["privs"], "Datastore.Audit,Sys.Audit,VM.Audit");

    f.ok(
        "pve01",
        cmd(
            "pveum",
            &["user", "add", "boot@pve", "--comment", "bootstrap"],
        ),
    )
    .await;
    f.ok(
        "pve01",
        cmd(
            "pveum",
            &[
                "acl",
                "modify",
                "/",
                "--roles",
                "Bootstrap",
                "--users",
                "boot@pve",
            ],
        ),
    )
    .await;
    let tok = f
        .ok(
            "pve01",
            cmd(
                "pveum",
                &[
                    "user",
                    "token",
                    "add",
                    "boot@pve",
                    "auto",
                    "--privsep",
                    "0",
                    "--output-format",
                    "json",
                ],
            ),
        )
        .await;
    let tok: Value = serde_json::from_str(&tok).expect("json");
    assert_eq!(tok["full-tokenid"], "boot@pve!auto");
    assert_eq!(tok["info"]["privsep"], "0");
    let secret = tok["value"].as_str().expect("secret");
    let again = f
        .run(
            "pve01",
            cmd("pveum", &["user", "token", "add", "boot@pve", "auto"]),
        )
        .await;
    assert_eq!(
        again.stderr,
        "generating token failed: Token already exists.\n"
    );

    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(f.api.h.ca_pem().as_bytes()).expect("ca")])
        .build()
        .expect("client");
    let resp = http
        .get(format!("{}/api2/json/nodes/pve01/status", f.api.h.url()))
        .header(
            "Authorization",
            format!("PVEAPIToken=boot@pve!auto={secret}"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let perms = f
        .ok(
            "pve01",
            cmd(
                "pveum",
                &[
                    "user",
                    "permissions",
                    "boot@pve!auto",
                    "--path",
                    "/vms",
                    "--output-format",
                    "json",
                ],
            ),
        )
        .await;
    let perms: Value = serde_json::from_str(&perms).expect("json");
    assert_eq!(perms["/vms"]["VM.Audit"], 1);

    f.ok(
        "pve01",
        cmd("pveum", &["user", "token", "remove", "boot@pve", "auto"]),
    )
    .await;
    assert!(f.api.h.token("boot@pve!auto").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_go_offline_and_come_back_on_the_same_port() {
    let f = Fixture::new().await;
    let before = f.api.h.ssh_addr("pve03");
    f.ok("pve03", cmd("true", &[])).await;
    f.api.h.set_ssh_online("pve03", false).expect("known node");
    assert!(f.try_run("pve03", cmd("true", &[])).await.is_err());
    f.api.h.set_ssh_online("pve03", true).expect("known node");
    assert_eq!(f.api.h.ssh_addr("pve03"), before);
    f.ok("pve03", cmd("true", &[])).await;

    f.api.h.set_node_online("pve03", false).expect("known node");
    assert!(f.try_run("pve03", cmd("true", &[])).await.is_err());
    f.api.h.set_node_online("pve03", true).expect("known node");
    f.ok("pve03", cmd("true", &[])).await;
    assert!(f.api.h.set_ssh_online("pve09", false).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn pvesm_lists_allocates_and_frees() {
    let f = Fixture::new().await;
    let list = f
        .ok(
            "pve01",
            cmd("pvesm", &["list", "local", "--content", "iso"]),
        )
        .await;
    let mut lines = list.lines();
    let header = lines.next().expect("header");
    assert!(
        header.starts_with("Volid") && header.ends_with("Size VMID"),
        "{header}"
    );
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.starts_with("local:iso/debian"))
        .expect("iso listed")
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "local:iso/debian-12.12.0-amd64-netinst.iso",
            "iso",
            "iso",
            "702545920"
        ]
    );
    let made = f
        .ok(
            "pve02",
            cmd("pvesm", &["alloc", "local-lvm", "1007", "", "4G"]),
        )
        .await;
    assert_eq!(made, "successfully created 'local-lvm:vm-1007-disk-2'\n");
    let freed = f
        .ok("pve02", cmd("pvesm", &["free", "local-lvm:vm-1007-disk-2"]))
        .await;
    assert_eq!(freed, "Removed volume 'local-lvm:vm-1007-disk-2'\n");
    let gone = f.run("pve02", cmd("pvesm", &["list", "nope"])).await;
    assert_eq!(
        (gone.status, gone.stderr.as_str()),
        (Some(255), "storage 'nope' does not exist\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_to_a_target_disk_keeps_the_old_one_unused() {
    let f = Fixture::new().await;
    let t = f.target("pve02");
    f.pool
        .upload(&t, &vec![0u8; 8192], "/var/tmp/d.raw", 0o644)
        .await
        .expect("upload");
    let before = f.api.config("pve02", 1007).await["scsi0"].clone();
    let out = f
        .ok(
            "pve02",
            cmd(
                "qm",
                &[
                    "disk",
                    "import",
                    "1007",
                    "/var/tmp/d.raw",
                    "local-lvm",
                    "--target-disk",
                    "scsi0",
                ],
            ),
        )
        .await;
    assert!(
        out.ends_with("scsi0: successfully imported disk 'local-lvm:vm-1007-disk-2'\n"),
        "{out}"
    );
    let config = f.api.config("pve02", 1007).await;
    assert_eq!(config["scsi0"], "local-lvm:vm-1007-disk-2,size=8K");
    let old = before
        .as_str()
        .expect("scsi0")
        .split(',')
        .next()
        .expect("volid");
    assert_eq!(config["unused0"], old);
    let (_, listed) = f
        .api
        .get("/nodes/pve02/storage/local-lvm/content?vmid=1007")
        .await;
    let sizes: Vec<(String, u64)> = listed["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| {
            (
                v["volid"].as_str().unwrap_or("").to_string(),
                v["size"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(sizes.contains(&(old.to_string(), 32u64 << 30)), "{sizes:?}");
}

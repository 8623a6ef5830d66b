//! The command line a user types: `config-schema`, `tools`, `sim`, `check --sim`, `call`.

use crate::common;

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

/// Runs the binary with a private `$HOME` and `$XDG_STATE_HOME` (so nothing reaches the real
/// ones); returns (success, stdout, stderr).
async fn run_in(home: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::binary())
        .args(args)
        .env("HOME", home.join("home"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("PROXMOX_MANAGER_CONFIG")
        .env_remove("PROXMOX_MANAGER_TOKEN")
        .output()
        .await
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `--sim SCENARIO` takes the nodes (and their SSH fronts) from the scenario, not `pve01`-`03`.
#[tokio::test(flavor = "multi_thread")]
async fn a_scenario_with_other_node_names_works_end_to_end() {
    let dir = tempfile::tempdir().expect("tmp");
    let embedded = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sim.yaml"),
    )
    .expect("embedded scenario");
    let scenario = dir.path().join("lab.yaml");
    std::fs::write(
        &scenario,
        embedded
            .replace("pve0", "lab0")
            .replace("cluster: sim-cluster", "cluster: lab-cluster"),
    )
    .expect("write scenario");
    let scenario = scenario.to_str().expect("utf-8");

    let (ok, out, err) = run_in(
        dir.path(),
        &["check", "--sim", scenario, "--sim-time-scale", "0.01"],
    )
    .await;
    assert!(ok && !out.contains("FAIL"), "{out}{err}");
    for node in ["lab01", "lab02", "lab03"] {
        assert!(
            out.contains(&format!("[ok  ] ssh {node}: connected as root")),
            "{out}"
        );
    }
    assert!(!out.contains("pve01"), "{out}");

    let (ok, out, err) = run_in(dir.path(), &["call", "cluster_status", "--sim", scenario]).await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("structured output");
    let text = v.to_string();
    assert!(
        text.contains("lab01") && text.contains("lab03") && !text.contains("pve0"),
        "{v}"
    );
    let (ok, out, err) = run_in(
        dir.path(),
        &[
            "call",
            "node_status",
            r#"{"node":"lab02"}"#,
            "--sim",
            scenario,
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
}

/// A user's `cluster-config.yaml` for a cluster `home` the simulator replaces: the given
/// `vmid_ranges` body and `extra` top-level keys after the required sections.
fn home_config(vmid_ranges: &str, extra: &str) -> String {
    format!(
        "cluster:\n  name: home\n  nodes:\n    - name: pve01\n      host: pve01.example\n\
         defaults:\n  storage: local-lvm\n  network_bridge: vmbr0\n  bios: ovmf\n  machine: q35\n  cpu: host\n  scsi_controller: virtio-scsi-single\n  efidisk_pre_enrolled_keys: false\n  guest_agent: true\n\
         vmid_ranges:\n  {vmid_ranges}\n\
         credentials:\n  pass_path: home/pve/token\n  ssh_user: root\n\
         tags:\n  templates: [\"template\"]\n\
         cloudinit:\n  default_user: bob\n  vendor_snippet_path: /var/lib/vz/snippets/\n\
         {extra}"
    )
}

/// `--sim --config FILE` applies the file's ranges and defaults against the simulator, and the
/// session writes its own audit log (marked simulated), never the configured or default one.
#[tokio::test(flavor = "multi_thread")]
async fn sim_with_a_config_applies_its_settings_and_keeps_the_real_audit_log_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let real_audit = dir.path().join("real-audit.jsonl");
    let config = dir.path().join("cluster-config.yaml");
    std::fs::write(
        &config,
        home_config(
            "templates: 200-299\n  vms: 5000-5999",
            &format!("audit_log: {}\n", real_audit.display()),
        ),
    )
    .expect("write config");
    let (ok, out, err) = run_in(
        dir.path(),
        &[
            "call",
            "vm_create",
            r#"{"template":"ubuntu-noble-tmpl","name":"from-config"}"#,
            "--sim",
            "--sim-time-scale",
            "0.01",
            "--config",
            config.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("structured output");
    let vmid = v["vmid"].as_u64().expect("vmid");
    assert!((5000..=5999).contains(&vmid), "the config's range: {v}");
    assert!(out.contains("bob"), "the config's cloud-init user: {v}");

    assert!(
        !real_audit.exists(),
        "the configured audit log is untouched"
    );
    assert!(
        !dir.path()
            .join("state/proxmox-manager/audit.jsonl")
            .exists(),
        "the default audit log is untouched"
    );
    let sim_log = std::fs::read_to_string(dir.path().join("state/proxmox-manager/sim/audit.jsonl"))
        .expect("the session's own audit log");
    let record: serde_json::Value =
        serde_json::from_str(sim_log.lines().last().expect("a record")).expect("json");
    assert_eq!(record["tool"], "vm_create", "{record}");
    assert_eq!(record["simulated"], true, "{record}");
}

/// Filters naming a node, storage or content type the cluster does not have say so, with the
/// names it has, instead of answering an empty list.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_nodes_storages_and_content_types_are_named_not_empty() {
    let dir = tempfile::tempdir().expect("tmp");
    for (tool, args, expect) in [
        ("vm_list", r#"{"node":"nope"}"#, "pve01, pve02, pve03"),
        ("storage_list", r#"{"node":"nope"}"#, "pve01, pve02, pve03"),
        ("storage_list", r#"{"content":"isos"}"#, "images, rootdir"),
        (
            "storage_content",
            r#"{"storage":"local","node":"nope"}"#,
            "pve01, pve02, pve03",
        ),
        (
            "storage_content",
            r#"{"storage":"nope","node":"pve01"}"#,
            "pve01 has ",
        ),
        ("node_status", r#"{"node":"nope"}"#, "pve01, pve02, pve03"),
    ] {
        let (ok, out, err) = run_in(dir.path(), &["call", tool, args, "--sim"]).await;
        assert!(!ok, "{tool} {args}: {out}");
        assert!(
            err.contains(expect) && (err.contains("nope") || err.contains("isos")),
            "{tool} {args}: {err}"
        );
    }
}

#[tokio::test]
async fn profile_schema_is_json_schema_of_the_seed_profile_format() {
    let schema: serde_json::Value =
        serde_json::from_str(&stdout_of(&["profile-schema"]).await).expect("JSON");
    for key in [
        "name", "type", "network", "nodes", "template", "tags", "flux",
    ] {
        assert!(
            schema["properties"].get(key).is_some(),
            "schema lacks {key}"
        );
    }
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys are refused"
    );
}

/// `--sim --config FILE` keeps FILE's `paths.clusters` and `ansible:` (issues 16 and 17): a
/// user's own profile is planned and the fleet's playbooks are listed against the simulator.
#[tokio::test(flavor = "multi_thread")]
async fn sim_with_a_config_uses_its_profiles_and_its_ansible_section() {
    common::external::require("ansible-inventory");
    let dir = tempfile::tempdir().expect("tmp");
    let clusters = dir.path().join("clusters");
    std::fs::create_dir_all(&clusters).expect("mkdir");
    let shipped = std::fs::read_to_string(common::clients::repo().join("clusters/k3s-lab.yaml"))
        .expect("shipped example");
    std::fs::write(
        clusters.join("my-lab.yaml"),
        shipped
            .replace("name: k3s-lab", "name: my-lab")
            .replace("tags: [k3s, lab]", "tags: [k3s, mine]"),
    )
    .expect("profile");
    let fleet = common::copy_fleet_infra(dir.path());
    let config = dir.path().join("cluster-config.yaml");
    std::fs::write(
        &config,
        home_config(
            "templates: 100-999\n  vms: 1000-8999",
            &format!(
                "paths:\n  clusters: {}\nansible:\n  fleet_infra: {}\n  inventory: playbooks/inventories/lab/hosts.ini\n",
                clusters.display(),
                fleet.display()
            ),
        ),
    )
    .expect("config");
    let cfg = config.to_str().expect("utf-8");
    let (ok, out, err) = run_in(
        dir.path(),
        &[
            "call",
            "profile_up",
            r#"{"profile":"my-lab"}"#,
            "--sim",
            "--config",
            cfg,
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).expect("structured output");
    assert_eq!(plan["executed"], false, "{plan}");
    assert_eq!(plan["guests"].as_array().map(Vec::len), Some(3), "{plan}");
    assert!(out.contains("my-lab-cp-1"), "{plan}");
    let (ok, out, err) = run_in(
        dir.path(),
        &["call", "ansible_playbooks", "{}", "--sim", "--config", cfg],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("touch.yaml"), "{out}");
}

//! The "done when" failures, through the binary as a user meets them: a malformed config, a
//! missing pass entry, a wrong fingerprint, an unreachable host and an offline node each give
//! one clear message naming the cause and the fix, and nothing panics.

use crate::common;

use std::path::Path;
use std::process::Output;

use tokio::process::Command;

async fn run(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(common::binary());
    cmd.args(args)
        .env_remove("PROXMOX_MANAGER_TOKEN")
        .env_remove("PROXMOX_MANAGER_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn token_env(token: String) -> Vec<(String, String)> {
    vec![("PROXMOX_MANAGER_TOKEN".into(), token)]
}

fn write(dir: &Path, yaml: &str) -> String {
    let p = dir.join("cluster-config.yaml");
    std::fs::write(&p, yaml).expect("write config");
    p.display().to_string()
}

#[tokio::test]
async fn malformed_config_names_file_key_and_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = common::config_yaml(8006, &vec!["AB"; 32].join(":"))
        .replace("  storage: local-lvm", "  stroage: local-lvm");
    let path = write(dir.path(), &yaml);
    for args in [
        vec!["check", "--config", &path],
        vec!["serve", "--config", &path],
    ] {
        let out = run(&args, &[]).await;
        assert!(!out.status.success());
        let t = text(&out);
        assert!(
            t.contains(&path)
                && t.contains("defaults.stroage")
                && t.contains("did you mean `storage`"),
            "{t}"
        );
    }
}

#[tokio::test]
async fn missing_pass_entry_says_how_to_create_it() {
    let store = common::pass::PassStore::new();
    let dir = tempfile::tempdir().expect("tmp");
    let path = write(
        dir.path(),
        &common::config_yaml(8006, &vec!["AB"; 32].join(":")),
    );
    let out = run(&["check", "--config", &path], &store.env_pairs()).await;
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("annarchy.net/pve/api-token") && t.contains("pass insert -m"),
        "{t}"
    );
}

#[tokio::test]
async fn wrong_fingerprint_reports_what_the_server_presented() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let wrong = vec!["00"; 32].join(":");
    let path = write(dir.path(), &common::config_yaml(sim.addr().port(), &wrong));
    let out = run(
        &["check", "--config", &path],
        &token_env(common::token_env(&sim)),
    )
    .await;
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("fingerprint") && t.contains(&sim.fingerprint()),
        "{t}"
    );
}

#[tokio::test]
async fn unreachable_host_names_the_endpoint() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let dir = tempfile::tempdir().expect("tmp");
    let path = write(
        dir.path(),
        &common::config_yaml(port, &vec!["00"; 32].join(":")),
    );
    let out = run(
        &["call", "cluster_status", "--config", &path],
        &token_env("claude-code@pve!automation=x".into()),
    )
    .await;
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains(&format!("127.0.0.1:{port}")) && t.contains("reachable"),
        "{t}"
    );
}

#[tokio::test]
async fn offline_node_is_named_with_what_to_do() {
    let sim = common::start_sim().await;
    sim.set_node_online("pve02", false).expect("fault");
    let dir = tempfile::tempdir().expect("tmp");
    let path = common::write_config(dir.path(), &sim).display().to_string();
    let out = run(
        &[
            "call",
            "node_status",
            r#"{"node":"pve02"}"#,
            "--config",
            &path,
        ],
        &token_env(common::token_env(&sim)),
    )
    .await;
    let t = text(&out);
    assert!(
        out.status.success(),
        "an offline node is a report, not a failure: {t}"
    );
    assert!(t.contains("pve02 is offline"), "{t}");
    let out = run(
        &[
            "call",
            "storage_list",
            r#"{"node":"pve02"}"#,
            "--config",
            &path,
        ],
        &token_env(common::token_env(&sim)),
    )
    .await;
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("node pve02 is offline") && t.contains("pick another node"),
        "{t}"
    );
}

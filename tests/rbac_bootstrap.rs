//! The RBAC bootstrap end to end: `proxmox-manager rbac bootstrap` runs `pveum` as root over
//! the simulator's SSH front, the new token's secret goes straight into a REAL `pass` store, and
//! the token then authenticates against the simulated API with exactly the role's privileges.
//! The secret never appears in any output.

use crate::common;

use std::path::Path;

use common::pass::PassStore;
use proxmox_manager::sim::SimHandle;
use serde_json::json;

const ENTRY: &str = "annarchy.net/pve/api-token";

async fn bootstrap(config: &Path, store: &PassStore, extra: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(common::binary())
        .args(["rbac", "bootstrap", "--node", "pve01", "--config"])
        .arg(config)
        .args(extra)
        .envs(store.env_pairs())
        .env_remove("PROXMOX_MANAGER_TOKEN")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .await
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.success(), text)
}

/// Lines 1 and 2 of the pass entry.
fn pass_entry(store: &PassStore) -> (String, String) {
    let out = std::process::Command::new(crate::common::external::require("pass"))
        .args(["show", ENTRY])
        .envs(store.env_pairs())
        .output()
        .expect("pass show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    (
        lines.next().unwrap_or("").to_string(),
        lines.next().unwrap_or("").to_string(),
    )
}

async fn privileges_on_root(sim: &SimHandle, id: &str, secret: &str) -> Vec<String> {
    use proxmox_manager::pve::{ApiToken, Client, ClientOptions, TlsMode, parse_fingerprint};
    let token = ApiToken::new(
        id.to_string(),
        secrecy::SecretString::from(secret.to_string()),
    )
    .expect("token id");
    let mut opts = ClientOptions::new(vec![sim.url()], token);
    opts.tls = TlsMode::Fingerprint(parse_fingerprint(&sim.fingerprint()).expect("fp"));
    let perms = Client::new(opts)
        .expect("client")
        .get_permissions(None)
        .await
        .expect("the bootstrapped token authenticates");
    perms
        .get("/")
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_creates_account_role_acl_and_a_token_that_only_pass_ever_sees() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_ssh_config(dir.path(), &sim);
    let audit = dir.path().join("audit.jsonl");
    let mut yaml = std::fs::read_to_string(&config).expect("config");
    yaml.push_str(&format!("audit_log: {}\n", audit.display()));
    std::fs::write(&config, yaml).expect("write config");
    let store = PassStore::new();
    let user = ["--user", "ci-bot@pve", "--token-name", "automation"];

    let (ok, plan) = bootstrap(&config, &store, &[&user[..], &["--dry-run"]].concat()).await;
    assert!(ok, "{plan}");
    assert!(
        plan.contains("user  create")
            && plan.contains("token create")
            && plan.contains("preview only"),
        "{plan}"
    );
    assert!(
        plan.contains("VM.Monitor does not exist on PVE 9"),
        "{plan}"
    );
    assert!(
        sim.token("ci-bot@pve!automation").is_none(),
        "a dry run changes nothing"
    );

    let (ok, out) = bootstrap(&config, &store, &user).await;
    assert!(ok, "{out}");
    let (id, secret) = pass_entry(&store);
    assert_eq!(id, "ci-bot@pve!automation");
    assert_eq!(secret.len(), 36, "a token secret (uuid)");
    assert!(!out.contains(&secret), "the secret is never printed: {out}");
    let sim_token = sim.token(&id).expect("token exists in the simulator");
    assert_eq!(
        sim_token.secret, secret,
        "pass holds the token's real secret"
    );

    let privs = privileges_on_root(&sim, &id, &secret).await;
    for p in [
        "VM.Allocate",
        "VM.Clone",
        "Datastore.AllocateSpace",
        "VM.GuestAgent.Audit",
    ] {
        assert!(privs.contains(&p.to_string()), "{p} missing: {privs:?}");
    }
    for p in [
        "Sys.Modify",
        "Sys.PowerMgmt",
        "Permissions.Modify",
        "User.Modify",
        "Datastore.AllocateTemplate",
    ] {
        assert!(!privs.contains(&p.to_string()), "{p} granted: {privs:?}");
    }

    let (ok, again) = bootstrap(&config, &store, &user).await;
    assert!(ok, "{again}");
    assert!(
        again.contains("user  keep")
            && again.contains("role  keep")
            && again.contains("token keep"),
        "idempotent: {again}"
    );
    assert_eq!(pass_entry(&store).1, secret, "an existing token is kept");

    let (ok, rotated) = bootstrap(
        &config,
        &store,
        &[&user[..], &["--rotate", "--enable-api-import"]].concat(),
    )
    .await;
    assert!(ok, "{rotated}");
    let (_, new_secret) = pass_entry(&store);
    assert_ne!(new_secret, secret);
    assert!(!rotated.contains(&new_secret) && !rotated.contains(&secret));
    let privs = privileges_on_root(&sim, &id, &new_secret).await;
    assert!(
        privs.contains(&"Sys.AccessNetwork".to_string()),
        "{privs:?}"
    );
    assert!(
        !sim.ssh_commands()
            .iter()
            .any(|c| c.line.contains(&secret) || c.line.contains(&new_secret)),
        "no secret on any command line"
    );

    // The CLI is audited like the tool: one record per run that could change something (the
    // dry run is not one), with the non-secret token name readable and no secret.
    let log = std::fs::read_to_string(&audit).expect("the CLI wrote the audit log");
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(records.len(), 3, "{log}");
    assert!(
        records.iter().all(|r| r["tool"] == "rbac_bootstrap"
            && r["outcome"] == "ok"
            && r["arguments"]["user"] == "ci-bot@pve"
            && r["arguments"]["token_name"] == "automation"),
        "{log}"
    );
    assert_eq!(records[2]["arguments"]["rotate"], true, "{log}");
    assert!(!log.contains(&secret) && !log.contains(&new_secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tool_previews_without_confirm_and_refuses_without_a_pass_entry() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_ssh_config(dir.path(), &sim);
    let (c, _) = common::mcp::connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    let (err, r, text) = common::mcp::call(&c, "rbac_bootstrap", json!({"node": "pve02"})).await;
    assert!(!err, "{text}");
    assert_eq!(r["executed"], false);
    assert_eq!(r["token"], "claude-code@pve!automation");
    let steps: Vec<String> = r["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["step"].as_str().unwrap_or(""),
                s["action"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(steps.contains(&"user keep".to_string()), "{steps:?}");
    assert!(steps.contains(&"token keep".to_string()), "{steps:?}");

    let no_pass = std::fs::read_to_string(&config)
        .expect("config")
        .replace("  pass_path: annarchy.net/pve/api-token\n", "");
    let other = dir.path().join("no-pass.yaml");
    std::fs::write(&other, no_pass).expect("write");
    let store = PassStore::new();
    let (ok, out) = bootstrap(&other, &store, &[]).await;
    assert!(!ok && out.contains("credentials.pass_path"), "{out}");
}

//! SSH configured the way a user does it, end to end through `proxmox-manager check`: a
//! passphrase-protected key whose passphrase the server reads from a REAL `pass` store, a
//! known_hosts file, per-node SSH ports, against a real OpenSSH sshd on loopback. The
//! passphrase never appears in the output.

use crate::common;

use common::pass::PassStore;
use common::sshd::{PASSPHRASE, Sshd};

const ENTRY: &str = "annarchy.net/pve/ssh-key";

fn config(sim: &proxmox_manager::sim::SimHandle, sshd: &Sshd, dir: &std::path::Path) -> String {
    let known_hosts = sshd.write_known_hosts("known_hosts", &[sshd.known_hosts_line()]);
    let mut yaml = common::config_yaml(sim.addr().port(), &sim.fingerprint())
        .replace("  ssh_user: root", &format!("  ssh_user: {}", sshd.user()))
        .replace(
            "      host: 127.0.0.1\n",
            &format!("      host: 127.0.0.1\n      ssh_port: {}\n", sshd.port()),
        );
    yaml.push_str(&format!(
        "\nssh:\n  key_file: {}\n  key_passphrase_pass_path: {ENTRY}\n  use_agent: false\n  known_hosts: {}\n",
        sshd.passphrase_key_path().display(),
        known_hosts.display()
    ));
    let path = dir.join("cluster-config.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path.display().to_string()
}

async fn check(path: &str, store: &PassStore, token: String) -> String {
    let out = tokio::process::Command::new(common::binary())
        .args(["check", "--config", path])
        .envs(store.env_pairs())
        .env("PROXMOX_MANAGER_TOKEN", token)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("PROXMOX_MANAGER_CONFIG")
        .output()
        .await
        .expect("run check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn key_passphrase_from_pass_unlocks_the_key_and_never_shows() {
    let sim = common::start_sim().await;
    let sshd = Sshd::start();
    let store = PassStore::new();
    store.insert(ENTRY, &format!("{PASSPHRASE}\n"));
    let dir = tempfile::tempdir().expect("tmp");
    let path = config(&sim, &sshd, dir.path());

    let out = check(&path, &store, common::token_env(&sim)).await;
    // The real sshd has no /var/lib/vz: reaching the `test -d` proves authentication worked.
    for node in ["pve01", "pve02", "pve03"] {
        assert!(
            out.contains(&format!(
                "ssh {node}: connected, but /var/lib/vz/snippets does not exist there"
            )),
            "{out}"
        );
    }
    assert!(!out.contains(PASSPHRASE), "{out}");

    store.insert(ENTRY, "not the passphrase\n");
    let out = check(&path, &store, common::token_env(&sim)).await;
    assert!(
        out.contains("ssh pve01:") && out.contains("authentication") && out.contains("passphrase"),
        "{out}"
    );
    assert!(!out.contains("not the passphrase"), "{out}");

    store.insert(ENTRY, "\n");
    let out = check(&path, &store, common::token_env(&sim)).await;
    assert!(
        out.contains("[FAIL] ssh: pass entry") && out.contains("has an empty first line"),
        "{out}"
    );
}

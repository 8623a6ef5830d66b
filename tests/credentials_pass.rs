//! Credentials against a REAL `pass` store with a throwaway GPG key (see `tests/common/pass.rs`),
//! plus the environment variable and token-file sources. Every test has its own store and passes
//! its environment through `resolve_with`, so tests run in parallel and never touch the
//! process environment.

use crate::common::pass as pass_store;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use pass_store::PassStore;
use proxmox_manager::config::credentials::{CredentialError, CredentialSource, resolve_with};
use proxmox_manager::config::{Config, sim_config};
use secrecy::ExposeSecret;

const ENTRY: &str = "annarchy.net/pve/api-token";
const ID: &str = "claude-code@pve!automation";
const SECRET: &str = "0b7e8c9d-1f2a-4b3c-8d4e-5f6a7b8c9d0e";

fn cfg(pass: Option<&str>, token_file: Option<PathBuf>) -> Config {
    let mut c = sim_config(8006, [0; 32]);
    c.credentials.pass_path = pass.map(str::to_string);
    c.credentials.token_file = token_file;
    c
}

#[test]
fn good_entry_resolves_with_id_secret_and_redacted_debug() {
    let store = PassStore::new();
    store.insert(ENTRY, &format!("{ID}\n{SECRET}\n"));
    let t = resolve_with(&cfg(Some(ENTRY), None), &store.lookup(&[])).expect("resolves");
    assert_eq!(t.id, ID);
    assert_eq!(t.secret.expose_secret(), SECRET);
    assert_eq!(t.source, CredentialSource::Pass(ENTRY.to_string()));
    let dbg = format!("{t:?}");
    assert!(dbg.contains(ID) && dbg.contains("[REDACTED]"), "{dbg}");
    assert!(!dbg.contains(SECRET), "{dbg}");
}

#[test]
fn extra_lines_after_the_secret_are_ignored() {
    let store = PassStore::new();
    store.insert(ENTRY, &format!("{ID}\n{SECRET}\nurl: https://pve01:8006\n"));
    let t = resolve_with(&cfg(Some(ENTRY), None), &store.lookup(&[])).expect("resolves");
    assert_eq!(t.secret.expose_secret(), SECRET);
}

#[test]
fn missing_entry_says_how_to_create_it() {
    let store = PassStore::new();
    store.insert("other/entry", &format!("{ID}\n{SECRET}\n"));
    let err = resolve_with(&cfg(Some(ENTRY), None), &store.lookup(&[])).expect_err("missing");
    assert!(
        matches!(err, CredentialError::PassEntryMissing { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "pass has no entry `{ENTRY}`: create it with `pass insert -m {ENTRY}` — line 1 the token id (user@realm!name), line 2 the secret"
        )
    );
}

#[test]
fn one_line_malformed_entry_is_explained_without_its_content() {
    let store = PassStore::new();
    store.insert(ENTRY, &format!("{SECRET}\n"));
    let err = resolve_with(&cfg(Some(ENTRY), None), &store.lookup(&[])).expect_err("malformed");
    assert!(
        matches!(err, CredentialError::PassMalformed { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "pass entry `{ENTRY}` is malformed: it has one line"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("pass edit {ENTRY}")), "{text}");
    assert!(
        !text.contains(SECRET) && !format!("{err:?}").contains(SECRET),
        "{text}"
    );
}

#[test]
fn swapped_lines_name_line_1_without_content() {
    let store = PassStore::new();
    store.insert(ENTRY, &format!("{SECRET}\n{ID}\n"));
    let err = resolve_with(&cfg(Some(ENTRY), None), &store.lookup(&[])).expect_err("malformed");
    let text = err.to_string();
    assert!(text.contains("line 1 is not a token id"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[test]
fn folder_instead_of_entry_is_named() {
    let store = PassStore::new();
    store.insert(ENTRY, &format!("{ID}\n{SECRET}\n"));
    let err =
        resolve_with(&cfg(Some("annarchy.net/pve"), None), &store.lookup(&[])).expect_err("folder");
    assert!(
        matches!(err, CredentialError::PassEntryIsFolder { .. }),
        "{err:?}"
    );
}

#[test]
fn gpg_decryption_failure_is_reported_with_gpg_reason() {
    let store = PassStore::new();
    store.insert(ENTRY, &format!("{ID}\n{SECRET}\n"));
    let empty = store.dir().join("empty-gnupg");
    std::fs::create_dir_all(&empty).expect("mkdir");
    set_private(&empty);
    let empty_s = empty.display().to_string();
    let lookup = store.lookup(&[("GNUPGHOME", &empty_s)]);
    let result = resolve_with(&cfg(Some(ENTRY), None), &lookup);
    let _ = Command::new("gpgconf")
        .args(["--kill", "gpg-agent"])
        .env("GNUPGHOME", &empty)
        .stdin(Stdio::null())
        .status();
    let err = result.expect_err("no secret key");
    assert!(
        matches!(err, CredentialError::PassDecrypt { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("pass could not decrypt `{ENTRY}` (gpg:")),
        "{text}"
    );
    assert!(text.contains("decryption failed"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[test]
fn env_var_wins_over_pass_and_file() {
    let store = PassStore::new();
    store.insert(ENTRY, &format!("{ID}\n{SECRET}\n"));
    let env_token = "root@pam!admin=11111111-2222-3333-4444-555555555555";
    let lookup = store.lookup(&[("PROXMOX_MANAGER_TOKEN", env_token)]);
    let file = store.dir().join("does-not-matter");
    let t = resolve_with(&cfg(Some(ENTRY), Some(file)), &lookup).expect("resolves");
    assert_eq!(t.id, "root@pam!admin");
    assert_eq!(
        t.secret.expose_secret(),
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(t.source, CredentialSource::Env);
}

#[test]
fn token_file_one_line_and_two_line_forms_win_over_pass() {
    let store = PassStore::new();
    store.insert(ENTRY, "pass@pve!wrong\nnot-this-one\n");
    for (name, content) in [
        ("one", format!("{ID}={SECRET}\n")),
        ("two", format!("{ID}\n{SECRET}\n")),
    ] {
        let file = store.dir().join(name);
        std::fs::write(&file, content).expect("write token file");
        set_private(&file);
        let t = resolve_with(&cfg(Some(ENTRY), Some(file.clone())), &store.lookup(&[]))
            .expect("resolves");
        assert_eq!(t.id, ID, "{name}");
        assert_eq!(t.secret.expose_secret(), SECRET, "{name}");
        assert_eq!(t.source, CredentialSource::File(file), "{name}");
    }
}

#[test]
fn malformed_or_missing_token_file_is_explained_without_content() {
    let store = PassStore::new();
    let file = store.dir().join("token");
    std::fs::write(&file, format!("{SECRET}\n")).expect("write");
    let err =
        resolve_with(&cfg(None, Some(file.clone())), &store.lookup(&[])).expect_err("malformed");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("token file {}: it has one line", file.display())),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");

    let missing = store.dir().join("absent");
    let err = resolve_with(&cfg(None, Some(missing)), &store.lookup(&[])).expect_err("missing");
    assert!(matches!(err, CredentialError::FileRead { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot read it"), "{err}");
}

#[cfg(unix)]
fn set_private(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = if p.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(not(unix))]
fn set_private(_p: &std::path::Path) {}

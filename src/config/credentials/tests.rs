//! Unit tests for token parsing, sources and error texts (the real `pass` store is exercised
//! in `tests/credentials_pass.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::*;
use crate::config::sim_config;

const SECRET: &str = "5f3c7a2e-1b4d-4e8f-9a6b-0c1d2e3f4a5b";

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn cfg(pass: Option<&str>, file: Option<PathBuf>) -> Config {
    let mut c = sim_config(8006, [0; 32]);
    c.path = PathBuf::from("/etc/pm/cluster-config.yaml");
    c.credentials.pass_path = pass.map(str::to_string);
    c.credentials.token_file = file;
    c
}

#[test]
fn env_token_splits_at_the_last_equals_and_redacts_debug() {
    let token = format!("claude-code@pve!automation={SECRET}");
    let env = env_of(&[(TOKEN_ENV, &token)]);
    let t = resolve_with(&cfg(Some("x/y"), None), &env).expect("resolves");
    assert_eq!(t.id, "claude-code@pve!automation");
    assert_eq!(t.secret.expose_secret(), SECRET);
    assert_eq!(t.source, CredentialSource::Env);
    let dbg = format!("{t:?}");
    assert!(
        dbg.contains("claude-code@pve!automation") && dbg.contains("[REDACTED]"),
        "{dbg}"
    );
    assert!(!dbg.contains(SECRET), "{dbg}");

    // Split at the last '=' (the contract's rule), so an '=' before it lands in the id.
    let two_eq = env_of(&[(TOKEN_ENV, "a@pve!t=b=c")]);
    let err = resolve_with(&cfg(None, None), &two_eq).expect_err("id with '='");
    assert!(err.to_string().contains("token id contains"), "{err}");
}

#[test]
fn malformed_env_token_never_echoes_the_value() {
    for bad in [
        "just-a-secret-value",
        "nobang@pve=s3cr3tvalue",
        "u@pve!t=",
        "u!t=s3cr3tvalue",
    ] {
        let env = env_of(&[(TOKEN_ENV, bad)]);
        let err = resolve_with(&cfg(None, None), &env).expect_err("malformed");
        let text = err.to_string();
        assert!(
            text.starts_with("PROXMOX_MANAGER_TOKEN is malformed:"),
            "{text}"
        );
        assert!(text.contains("user@realm!tokenname=secret"), "{text}");
        for part in ["just-a-secret-value", "s3cr3tvalue"] {
            assert!(!text.contains(part), "{text}");
        }
    }
}

#[test]
fn no_source_says_what_to_set() {
    let err = resolve_with(&cfg(None, None), &env_of(&[])).expect_err("none");
    assert_eq!(
        err.to_string(),
        "no API token: PROXMOX_MANAGER_TOKEN is not set and /etc/pm/cluster-config.yaml sets neither credentials.pass_path nor credentials.token_file — set one of them"
    );
    assert_eq!(
        source_for(&cfg(None, None), &env_of(&[(TOKEN_ENV, "")])),
        None
    );
}

#[test]
fn source_order_env_then_file_then_pass() {
    let both = cfg(Some("a/b"), Some(PathBuf::from("/t")));
    assert_eq!(
        source_for(&both, &env_of(&[(TOKEN_ENV, "x")])),
        Some(CredentialSource::Env)
    );
    assert_eq!(
        source_for(&both, &env_of(&[])),
        Some(CredentialSource::File("/t".into()))
    );
    let pass = cfg(Some("a/b"), None);
    assert_eq!(
        source_for(&pass, &env_of(&[])),
        Some(CredentialSource::Pass("a/b".into()))
    );
    assert_eq!(
        CredentialSource::Pass("a/b".into()).to_string(),
        "pass entry a/b"
    );
    assert_eq!(
        CredentialSource::File("/t".into()).to_string(),
        "token file /t"
    );
    assert_eq!(
        CredentialSource::Env.to_string(),
        "environment variable PROXMOX_MANAGER_TOKEN"
    );
}

#[test]
fn token_id_shapes() {
    for good in [
        "claude-code@pve!automation",
        "root@pam!admin",
        "a.b@ad-realm!t_1",
    ] {
        assert!(validate_token_id(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "root@pam",
        "root!x",
        "@pam!x",
        "root@!x",
        "root@pam!",
        "root@pam!a!b",
        "root@pam!1x",
        "ro ot@pam!x",
    ] {
        assert!(validate_token_id(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn entry_forms_and_problems() {
    let (id, s) = parse_entry(&format!("root@pam!admin\n{SECRET}\nnote: kept here\n"))
        .map_err(|e| e.to_string())
        .expect("two lines");
    assert_eq!((id.as_str(), s.expose_secret()), ("root@pam!admin", SECRET));
    let (id, _) = parse_entry(&format!("root@pam!admin={SECRET}\n\n"))
        .map_err(|e| e.to_string())
        .expect("one line");
    assert_eq!(id, "root@pam!admin");
    let problem = |t: &str| {
        parse_entry(t)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(problem(""), "it is empty");
    assert!(
        problem(SECRET).starts_with("it has one line"),
        "{}",
        problem(SECRET)
    );
    assert!(problem(&format!("{SECRET}\nroot@pam!admin")).starts_with("line 1 is not a token id"));
    assert_eq!(
        problem("root@pam!admin\n\nmore"),
        "line 2 (the secret) is empty"
    );
    for t in [SECRET.to_string(), format!("{SECRET}\nroot@pam!admin")] {
        assert!(!problem(&t).contains(SECRET));
    }
}

#[test]
fn pass_not_installed_is_reported() {
    let env = env_of(&[("PATH", "/nonexistent-proxmox-manager-test")]);
    let err = resolve_with(&cfg(Some("a/b"), None), &env).expect_err("no pass");
    assert!(
        matches!(err, CredentialError::PassNotInstalled { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("install pass or set PROXMOX_MANAGER_TOKEN"),
        "{err}"
    );
}

#[test]
fn sanitize_keeps_first_line_without_controls() {
    assert_eq!(
        sanitize_first_line("\n gpg: bad\u{1b}[0m thing \nsecond"),
        "gpg: bad[0m thing"
    );
    assert_eq!(sanitize_first_line(""), "no error output");
    assert_eq!(sanitize_first_line(&"x".repeat(500)).len(), 200);
}

/// A fake `pass` in its own PATH directory, for what a real store cannot show quickly.
#[cfg(unix)]
fn fake_pass(script: &str) -> (tempfile::TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pass");
    std::fs::write(&file, format!("#!/bin/sh\n{script}\n")).expect("write fake pass");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!("{}:/usr/bin:/bin", dir.path().display());
    (dir, path)
}

#[cfg(unix)]
#[test]
fn pass_argv_is_only_show_and_the_entry_and_stdin_is_closed() {
    let (dir, path) = fake_pass(
        "printf '%s\\n' \"$@\" > \"$(dirname \"$0\")/argv\"\n\
         if read -r line; then echo stdin-open >&2; exit 3; fi\n\
         printf 'root@pam!admin\\nsecret-value\\n'",
    );
    let env = env_of(&[("PATH", &path)]);
    let t = resolve_with(&cfg(Some("x/token"), None), &env).expect("resolves");
    assert_eq!(t.secret.expose_secret(), "secret-value");
    let argv = std::fs::read_to_string(dir.path().join("argv")).expect("argv recorded");
    assert_eq!(argv, "show\nx/token\n");
}

#[cfg(unix)]
#[test]
fn pass_that_hangs_is_stopped_with_its_children() {
    // `sleep` inherits stdout, as gpg does under pass: the whole group must be killed.
    let (_dir, path) = fake_pass("sleep 30\necho late");
    let env = env_of(&[("PATH", &path)]);
    let started = std::time::Instant::now();
    let err = pass_show("x/token", &env, std::time::Duration::from_millis(300)).expect_err("hangs");
    assert!(
        matches!(err, CredentialError::PassTimeout { .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains("did not finish within 300ms"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn other_pass_failures_show_the_sanitized_first_stderr_line() {
    let (_dir, path) = fake_pass("echo 'Error: something odd' >&2\necho second >&2\nexit 4");
    let err =
        resolve_with(&cfg(Some("x/token"), None), &env_of(&[("PATH", &path)])).expect_err("fails");
    assert_eq!(
        err.to_string(),
        "`pass show x/token` failed (exit 4): Error: something odd — run it yourself to see why, or set PROXMOX_MANAGER_TOKEN"
    );
}

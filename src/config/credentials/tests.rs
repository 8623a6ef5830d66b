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

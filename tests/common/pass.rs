//! A throwaway `pass` store with its own GPG key, for tests that need real credentials.
//!
//! Each [`PassStore`] lives in its own temp directory (GNUPGHOME + PASSWORD_STORE_DIR + HOME), so
//! tests stay parallel-safe and never touch the user's keyring or the process environment: hand
//! [`PassStore::env_pairs`] to child processes (`Command::envs`) or [`PassStore::lookup`] to
//! `config::credentials::resolve_with`. Needs `pass` and `gpg` installed (`./test.sh` installs
//! `pass gnupg`). Dropping the store stops its gpg-agent.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct PassStore {
    dir: tempfile::TempDir,
    gnupghome: PathBuf,
    store: PathBuf,
    home: PathBuf,
    fingerprint: String,
}

impl PassStore {
    /// Create a key without passphrase and a store initialised for it.
    pub fn new() -> PassStore {
        let dir = tempfile::Builder::new()
            .prefix("pm-pass-")
            .tempdir()
            .expect("temp dir");
        let (gnupghome, store, home) = (
            dir.path().join("gnupg"),
            dir.path().join("store"),
            dir.path().join("home"),
        );
        for d in [&gnupghome, &home] {
            std::fs::create_dir_all(d).expect("create dir");
        }
        set_mode_700(&gnupghome);
        let mut s = PassStore {
            dir,
            gnupghome,
            store,
            home,
            fingerprint: String::new(),
        };
        s.run(
            "gpg",
            &[
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--quick-gen-key",
                "Test <test@example.invalid>",
                "future-default",
                "default",
                "never",
            ],
            None,
        );
        let out = s.run(
            "gpg",
            &["--batch", "--with-colons", "--list-secret-keys"],
            None,
        );
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        s.fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|f| !f.is_empty()))
            .expect("generated key has a fingerprint")
            .to_string();
        let fpr = s.fingerprint.clone();
        s.run("pass", &["init", &fpr], None);
        s
    }

    /// `pass insert -m <entry>` with `content` on stdin.
    pub fn insert(&self, entry: &str, content: &str) {
        self.run("pass", &["insert", "-m", "-f", entry], Some(content));
    }

    /// Variables a child process needs to use this store (and only this store).
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        vec![
            ("GNUPGHOME".into(), self.gnupghome.display().to_string()),
            (
                "PASSWORD_STORE_DIR".into(),
                self.store.display().to_string(),
            ),
            ("HOME".into(), self.home.display().to_string()),
        ]
    }

    /// An environment lookup: this store's variables, then `extra`, then the process's `PATH`.
    pub fn lookup(&self, extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let mut map: BTreeMap<String, String> = self.env_pairs().into_iter().collect();
        for (k, v) in extra {
            map.insert((*k).to_string(), (*v).to_string());
        }
        if let Ok(path) = std::env::var("PATH") {
            map.entry("PATH".into()).or_insert(path);
        }
        move |k: &str| map.get(k).cloned()
    }

    pub fn gnupghome(&self) -> &Path {
        &self.gnupghome
    }

    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Scratch space that is removed with the store.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(super::external::require(program))
            .args(args)
            .envs(self.env_pairs())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install pass and gnupg"));
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", &self.gnupghome)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(unix)]
fn set_mode_700(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
}

#[cfg(not(unix))]
fn set_mode_700(_p: &Path) {}

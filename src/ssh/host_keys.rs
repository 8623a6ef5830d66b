//! Host key verification against an OpenSSH `known_hosts` file (plain and hashed `|1|` entries,
//! `[host]:port` form). Unknown keys are refused unless trust-on-first-use is configured; a
//! changed key is always refused.

use std::path::PathBuf;

use russh::keys::{self, HashAlg, PublicKey};

use super::Error;

/// How server keys are checked.
#[derive(Debug, Clone)]
pub struct HostKeyPolicy {
    /// The known_hosts file to check against (and to append to with trust-on-first-use).
    pub known_hosts: PathBuf,
    /// Record a key the file does not know yet instead of refusing it. A key that differs from
    /// a recorded one is refused regardless.
    pub trust_on_first_use: bool,
    /// Keys known in memory (host, port, key), checked before the file: a host listed here is
    /// accepted only with exactly this key. Used for the embedded simulator, whose host keys
    /// are generated at start and handed over directly.
    pub pinned: Vec<(String, u16, PublicKey)>,
}

impl HostKeyPolicy {
    /// Refuse unknown keys.
    pub fn strict(known_hosts: impl Into<PathBuf>) -> Self {
        HostKeyPolicy {
            known_hosts: known_hosts.into(),
            trust_on_first_use: false,
            pinned: Vec::new(),
        }
    }

    /// Accept exactly the given keys, from known_hosts lines (`[host]:port type base64` or
    /// `host type base64`, unhashed), and refuse every other host.
    ///
    /// # Errors
    /// [`Error::KnownHosts`] naming the line that does not parse.
    pub fn pinned(lines: &str) -> Result<Self, Error> {
        let mut pinned = Vec::new();
        for (i, line) in lines.lines().map(str::trim).enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| Error::KnownHosts {
                path: "<pinned keys>".into(),
                reason: format!("line {}: {reason}", i + 1),
            };
            let (host, key) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected `host keytype base64`".into()))?;
            let (h, port) = match host.strip_prefix('[').and_then(|r| r.split_once("]:")) {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>()
                        .map_err(|_| bad(format!("bad port in {host}")))?,
                ),
                None => (host, 22),
            };
            let key = PublicKey::from_openssh(key.trim()).map_err(|e| bad(e.to_string()))?;
            pinned.push((h.to_string(), port, key));
        }
        Ok(HostKeyPolicy {
            known_hosts: PathBuf::from("/dev/null"),
            trust_on_first_use: false,
            pinned,
        })
    }

    /// Decide on the key `host:port` presented.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownHostKey`] (with the fingerprint and the command that trusts it),
    /// [`Error::HostKeyChanged`], or [`Error::KnownHosts`] when the file is unreadable.
    pub fn verify(&self, host: &str, port: u16, key: &PublicKey) -> Result<(), Error> {
        let fingerprint = fingerprint(key);
        let listed: Vec<&PublicKey> = self
            .pinned
            .iter()
            .filter(|(h, p, _)| h == host && *p == port)
            .map(|(_, _, k)| k)
            .collect();
        if let Some(first) = listed.first() {
            return if listed.iter().any(|k| k.key_data() == key.key_data()) {
                Ok(())
            } else {
                Err(Error::PinnedKeyMismatch {
                    host: host.to_owned(),
                    port,
                    fingerprint,
                    pinned: self::fingerprint(first),
                })
            };
        }
        let path = self.known_hosts.display().to_string();
        match keys::check_known_hosts_path(host, port, key, &self.known_hosts) {
            Ok(true) => Ok(()),
            Ok(false) if self.trust_on_first_use => {
                keys::known_hosts::learn_known_hosts_path(host, port, key, &self.known_hosts)
                    .map_err(|e| Error::KnownHosts {
                        path: path.clone(),
                        reason: format!("cannot record the key of {host}:{port}: {e}"),
                    })?;
                tracing::warn!(host, port, %fingerprint, known_hosts = %path, "trusted a new ssh host key on first use");
                Ok(())
            }
            Ok(false) => Err(Error::UnknownHostKey {
                host: host.to_owned(),
                port,
                fix: format!(
                    "`ssh-keyscan -p {port} {host} >> {path}`, after checking that `ssh-keygen -lf /etc/ssh/ssh_host_{}_key.pub` on the node prints {fingerprint}",
                    key_file_kind(key)
                ),
                fingerprint,
            }),
            Err(keys::Error::KeyChanged { line }) => Err(Error::HostKeyChanged {
                host: host.to_owned(),
                port,
                known_hosts: path,
                line,
                fingerprint,
            }),
            Err(e) => Err(Error::KnownHosts {
                path,
                reason: e.to_string(),
            }),
        }
    }
}

/// `SHA256:<unpadded base64>`, exactly as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The name part of the node's host key file for this key type.
fn key_file_kind(key: &PublicKey) -> &'static str {
    match key.algorithm() {
        keys::Algorithm::Ed25519 => "ed25519",
        keys::Algorithm::Rsa { .. } => "rsa",
        keys::Algorithm::Ecdsa { .. } => "ecdsa",
        _ => "*",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGyQj65w4S9KUCKdwjhRwq97I6V10+ehAoWeL3Ec8lH9";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBrgR4nnJR7j6bEID1A4qxDVsJe4Q6q1OaYjmczdHdxh";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).expect("test key parses")
    }

    #[test]
    fn unknown_changed_and_tofu() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kh = dir.path().join("known_hosts");
        let strict = HostKeyPolicy::strict(&kh);
        let err = strict
            .verify("10.0.0.1", 2222, &key(KEY_A))
            .expect_err("unknown");
        let text = err.to_string();
        assert!(text.contains(&fingerprint(&key(KEY_A))), "{text}");
        assert!(text.contains("ssh-keyscan -p 2222 10.0.0.1"), "{text}");
        assert!(fingerprint(&key(KEY_A)).starts_with("SHA256:"));

        let tofu = HostKeyPolicy {
            known_hosts: kh.clone(),
            trust_on_first_use: true,
            pinned: Vec::new(),
        };
        tofu.verify("10.0.0.1", 2222, &key(KEY_A)).expect("learned");
        let written = std::fs::read_to_string(&kh).expect("read");
        assert!(
            written.contains("[10.0.0.1]:2222 ssh-ed25519 "),
            "{written}"
        );
        strict
            .verify("10.0.0.1", 2222, &key(KEY_A))
            .expect("now known");

        let err = tofu
            .verify("10.0.0.1", 2222, &key(KEY_B))
            .expect_err("changed");
        assert!(matches!(err, Error::HostKeyChanged { .. }), "{err}");
        // Another port of the same host is a different entry.
        strict
            .verify("10.0.0.1", 22, &key(KEY_B))
            .expect_err("unknown on port 22");
    }
}

//! Commands on the nodes over SSH, for what the API cannot do: downloading and importing disk
//! images with a least-privilege token, writing cloud-init snippets. One pool for the server
//! (one connection per node, many channels), targets from `cluster.nodes` with `ssh.port` or a
//! node's `ssh_port`, the user from `credentials.ssh_user`.
//!
//! Every command is a [`Command`]: a program and its words, each shell-quoted when the line is
//! built. A non-zero exit is an error naming the node, the program, the exit status and the
//! last lines of stderr — never the full command line, whose arguments may be URLs with tokens.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::Config;
use crate::ssh::{
    self, Command, ExecOptions, ExecOutput, HostKeyPolicy, PoolOptions, SshAuth, SshPool, SshTarget,
};

use super::Error;
use super::run::Run;

/// SSH access to the cluster's nodes.
pub struct NodeShell {
    pool: SshPool,
    targets: BTreeMap<String, SshTarget>,
    user: String,
}

impl std::fmt::Debug for NodeShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeShell")
            .field("user", &self.user)
            .field("targets", &self.targets)
            .finish()
    }
}

/// Why SSH is not available, for reports that fall back or refuse.
pub fn unavailable_reason(config: &Config) -> String {
    if config.ssh.key_file.is_none() && !config.ssh.use_agent {
        "ssh is not configured: set ssh.key_file or ssh.use_agent in the config".into()
    } else {
        "ssh is not configured: ssh.use_agent is set but SSH_AUTH_SOCK is not; start an agent or set ssh.key_file".into()
    }
}

impl NodeShell {
    /// A shell over `pool` reaching each node of the config at its SSH address.
    pub fn new(pool: SshPool, config: &Config) -> Self {
        let targets = config
            .cluster
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    SshTarget::new(n.host.clone(), n.ssh_port.unwrap_or(config.ssh.port)),
                )
            })
            .collect();
        NodeShell {
            pool,
            targets,
            user: config.credentials.ssh_user.clone(),
        }
    }

    /// The shell the config describes: a key file (with its passphrase, resolved by the caller
    /// from `pass`) or the ssh-agent; host keys from `ssh.known_hosts` (default
    /// `~/.ssh/known_hosts`), trust-on-first-use only when configured. `None` when no way to
    /// authenticate is configured.
    pub fn from_config(config: &Config, passphrase: Option<SecretString>) -> Option<NodeShell> {
        let auth = match (&config.ssh.key_file, config.ssh.use_agent) {
            (Some(path), _) => SshAuth::KeyFile {
                path: path.clone(),
                passphrase,
            },
            (None, true) if std::env::var_os("SSH_AUTH_SOCK").is_some() => {
                SshAuth::Agent { socket: None }
            }
            _ => return None,
        };
        let known_hosts = config.ssh.known_hosts.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(|h| Path::new(&h).join(".ssh/known_hosts"))
                .unwrap_or_else(|| "/root/.ssh/known_hosts".into())
        });
        let policy = HostKeyPolicy {
            known_hosts,
            trust_on_first_use: config.ssh.trust_on_first_use,
            pinned: Vec::new(),
        };
        let opts = PoolOptions::new(config.credentials.ssh_user.clone(), auth, policy);
        Some(NodeShell::new(SshPool::new(opts), config))
    }

    fn target(&self, node: &str) -> Result<&SshTarget, Error> {
        self.targets.get(node).ok_or_else(|| Error::NotFound {
            what: format!("node {node} in cluster.nodes"),
            hint: "add the node (name and host) to the config to reach it over ssh".into(),
        })
    }

    /// Runs `cmd` on `node`, streaming its output lines to the call's progress, and returns
    /// what it printed. A non-zero exit is [`Error::NodeCommand`].
    ///
    /// # Errors
    /// Connection, host key and authentication errors ([`Error::Ssh`]), a timeout, or the
    /// command's failure; cancellation of the call stops waiting (the remote `timeout` still
    /// bounds the command).
    pub async fn run(
        &self,
        run: &Run,
        node: &str,
        cmd: &Command,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let out = self.run_status(run, node, cmd, timeout).await?;
        if out.success() {
            return Ok(out);
        }
        let status = status_text(out.status, out.signal.as_deref());
        Err(Error::NodeCommand {
            node: node.to_string(),
            command: cmd.summary(),
            status,
            stderr: tail(&out.stderr, 3),
        })
    }

    /// Like [`NodeShell::run`], but a non-zero exit is returned, not an error.
    ///
    /// # Errors
    /// As [`NodeShell::run`] without the exit-status error.
    pub async fn run_status(
        &self,
        run: &Run,
        node: &str,
        cmd: &Command,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let target = self.target(node)?;
        let progress = run.progress.clone().map(|p| {
            let prefix = format!("{node}: {}", cmd.summary());
            let f: ssh::OutputFn = Arc::new(move |line: &str| {
                if !line.trim().is_empty() {
                    p(format!("{prefix}: {line}"));
                }
            });
            f
        });
        let opts = ExecOptions {
            timeout,
            stdin: None,
            on_output: progress,
        };
        let fut = self.pool.exec(target, cmd, opts);
        tokio::select! {
            r = fut => r.map_err(|source| Error::Ssh { node: node.to_string(), source }),
            _ = run.cancel.cancelled() => Err(Error::Cancelled {
                what: format!("`{}` on {node} (it may still be running there)", cmd.summary()),
            }),
        }
    }

    /// Runs `cmd` whose standard output is a secret (a new API token): nothing is streamed as
    /// progress, and the output is moved into a [`SecretString`] as soon as it arrives. A
    /// failure reports stderr only.
    ///
    /// # Errors
    /// As [`NodeShell::run`].
    pub async fn run_secret(
        &self,
        node: &str,
        cmd: &Command,
        timeout: Duration,
    ) -> Result<SecretString, Error> {
        let target = self.target(node)?;
        let out = self
            .pool
            .exec(target, cmd, ExecOptions::with_timeout(timeout))
            .await
            .map_err(|source| Error::Ssh {
                node: node.to_string(),
                source,
            })?;
        let ExecOutput {
            status,
            signal,
            stdout,
            stderr,
            ..
        } = out;
        let secret = SecretString::from(stdout);
        if status == Some(0) {
            return Ok(secret);
        }
        drop(secret);
        Err(Error::NodeCommand {
            node: node.to_string(),
            command: cmd.summary(),
            status: status_text(status, signal.as_deref()),
            stderr: tail(&stderr, 3),
        })
    }

    /// Writes `data` to `path` on `node` over SFTP with mode `mode`.
    ///
    /// # Errors
    /// [`Error::Ssh`] naming the node and the path.
    pub async fn write_file(
        &self,
        node: &str,
        data: &[u8],
        path: &str,
        mode: u32,
    ) -> Result<(), Error> {
        let target = self.target(node)?;
        self.pool
            .upload(target, data, path, mode)
            .await
            .map_err(|source| Error::Ssh {
                node: node.to_string(),
                source,
            })
    }

    /// Streams the local file `local` to `path` on `node` over SFTP.
    ///
    /// # Errors
    /// [`Error::Ssh`] naming the node and the path.
    pub async fn upload_file(
        &self,
        node: &str,
        local: &Path,
        path: &str,
        mode: u32,
    ) -> Result<(), Error> {
        let target = self.target(node)?;
        self.pool
            .upload_file(target, local, path, mode)
            .await
            .map_err(|source| Error::Ssh {
                node: node.to_string(),
                source,
            })
    }
}

/// `exit N`, `killed by SIGx` or `no exit status`, as errors name a finished command.
fn status_text(status: Option<u32>, signal: Option<&str>) -> String {
    match (status, signal) {
        (Some(s), _) => format!("exit {s}"),
        (None, Some(sig)) => format!("killed by SIG{sig}"),
        (None, None) => "no exit status".into(),
    }
}

/// The last `n` non-empty lines of `text`, joined with " | ".
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(n);
    let t = lines[start..].join(" | ");
    if t.is_empty() {
        "no error output".into()
    } else {
        t.chars().take(600).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\nd\n", 2), "c | d");
        assert_eq!(tail("", 3), "no error output");
    }
}

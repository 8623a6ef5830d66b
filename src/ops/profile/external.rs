//! External programs of the cluster profiles (`talosctl`, `flux`, `kubectl`): found at the
//! configured path or on PATH; run with every output line streamed as progress and appended to
//! the run's log, secrets redacted from both. Secrets never go into argv: the programs get file
//! paths (0600 files under the state directory), never file contents.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::config::Config;
use crate::ops::{Error, Run};

/// One of the programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Talosctl,
    Flux,
    Kubectl,
}

impl Program {
    pub fn name(self) -> &'static str {
        match self {
            Program::Talosctl => "talosctl",
            Program::Flux => "flux",
            Program::Kubectl => "kubectl",
        }
    }

    /// How to install it, for the plan and errors.
    pub fn install_hint(self) -> &'static str {
        match self {
            Program::Talosctl => {
                "install talosctl: `curl -sL https://talos.dev/install | sh` (or `brew install siderolabs/tap/talosctl`), or set paths.talosctl"
            }
            Program::Flux => {
                "install flux: `curl -s https://fluxcd.io/install.sh | sudo bash` (or `brew install fluxcd/tap/flux`), or set paths.flux"
            }
            Program::Kubectl => {
                "install kubectl: https://kubernetes.io/docs/tasks/tools/ (or `brew install kubectl`), or set paths.kubectl"
            }
        }
    }

    /// The configured path (when it exists), else the first match on PATH.
    pub fn locate(self, config: &Config) -> Option<PathBuf> {
        let configured = match self {
            Program::Talosctl => &config.paths.talosctl,
            Program::Flux => &config.paths.flux,
            Program::Kubectl => &config.paths.kubectl,
        };
        if let Some(p) = configured {
            return p.is_file().then(|| p.clone());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(self.name()))
            .find(|p| is_executable(p))
    }
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Replaces known secret strings in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Mutex<BTreeSet<String>>>,
}

impl Redactor {
    /// Learns the secret values of a YAML or kubeconfig file: every scalar value of 16
    /// characters or more (keys, certificates, tokens).
    pub fn learn_file(&self, path: &Path) {
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let mut s = match self.secrets.lock() {
            Ok(s) => s,
            Err(_) => return,
        };
        for line in text.lines() {
            let value = line
                .split_once(": ")
                .map(|(_, v)| v)
                .unwrap_or(line)
                .trim()
                .trim_start_matches("- ")
                .trim_matches('"');
            if value.len() >= 16 && !value.contains(' ') && !value.starts_with("http") {
                s.insert(value.to_string());
            }
        }
    }

    pub fn redact(&self, line: &str) -> String {
        let Ok(s) = self.secrets.lock() else {
            return "[output withheld]".into();
        };
        let mut out = line.to_string();
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[REDACTED]");
            }
        }
        out
    }
}

/// The per-run log file (0600), shared by the steps of one run.
#[derive(Debug, Clone)]
pub struct RunLog {
    pub path: PathBuf,
    file: Arc<Mutex<Option<std::fs::File>>>,
}

impl RunLog {
    /// Opens `path` for appending (0600); a log that cannot be opened logs nothing.
    pub fn open(path: PathBuf) -> RunLog {
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path).ok();
        RunLog {
            path,
            file: Arc::new(Mutex::new(file)),
        }
    }

    pub fn line(&self, text: &str) {
        if let Ok(mut f) = self.file.lock()
            && let Some(f) = f.as_mut()
        {
            let _ = writeln!(f, "{text}");
        }
    }
}

/// What a run of an external program needs besides its arguments.
pub struct Exec<'a> {
    pub run: &'a Run,
    pub log: &'a RunLog,
    pub redactor: &'a Redactor,
    pub program: Program,
    pub path: PathBuf,
    /// Environment added for the child (paths only, never secret values).
    pub env: Vec<(String, OsString)>,
    pub timeout: Duration,
}

impl Exec<'_> {
    /// The command line as shown to users (program name, arguments; no secrets are ever in it).
    pub fn shown(&self, args: &[OsString]) -> String {
        let mut s = self.program.name().to_string();
        for a in args {
            s.push(' ');
            let a = a.to_string_lossy();
            if a.contains(' ') || a.is_empty() {
                s.push_str(&format!("'{a}'"));
            } else {
                s.push_str(&a);
            }
        }
        s
    }

    /// Runs the program; every line of its output goes to progress and the log (redacted).
    ///
    /// # Errors
    /// It could not start, exited non-zero (with its last lines and the command to retry), ran
    /// past the timeout, or the call was cancelled (the child is killed).
    pub async fn run(&self, args: &[OsString]) -> Result<String, Error> {
        let shown = self.shown(args);
        let name = self.program.name();
        self.log.line(&format!("$ {shown}"));
        self.run.note(format!("{name}: running `{shown}`"));
        let mut cmd = tokio::process::Command::new(&self.path);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| {
            Error::Setup(format!(
                "{name} at {} could not be started: {e}; {}",
                self.path.display(),
                self.program.install_hint()
            ))
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let collected = Arc::new(Mutex::new(Vec::<String>::new()));
        let pump = |stream: Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>| {
            let run = self.run.clone();
            let log = self.log.clone();
            let red = self.redactor.clone();
            let collected = Arc::clone(&collected);
            async move {
                let Some(stream) = stream else { return };
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let clean = red.redact(&line);
                    log.line(&clean);
                    if !clean.trim().is_empty() {
                        run.note(format!("{name}: {clean}"));
                    }
                    if let Ok(mut c) = collected.lock() {
                        c.push(clean);
                    }
                }
            }
        };
        let out_task =
            pump(stdout.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>));
        let err_task =
            pump(stderr.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>));
        let waited = async {
            let (_, _, status) = tokio::join!(out_task, err_task, child.wait());
            status
        };
        let status = tokio::select! {
            s = waited => s,
            _ = self.run.cancel.cancelled() => {
                self.log.line("cancelled");
                return Err(Error::Cancelled { what: format!("`{shown}` (stopped)") });
            }
            _ = tokio::time::sleep(self.timeout) => {
                self.log.line("timed out");
                return Err(Error::refused(format!(
                    "`{shown}` did not finish within {} s (stopped); retry with the same command, or run profile_up again",
                    self.timeout.as_secs()
                )));
            }
        };
        let lines = collected.lock().map(|c| c.clone()).unwrap_or_default();
        let status = status.map_err(|e| Error::Setup(format!("{name}: {e}")))?;
        self.log.line(&format!("exit: {status}"));
        if status.success() {
            return Ok(lines.join("\n"));
        }
        let tail: Vec<&String> = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(Error::refused(format!(
            "`{shown}` failed ({status}): {}",
            tail.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_hides_learned_values() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("secrets.yaml");
        std::fs::write(
            &f,
            "cluster:\n  secret: c2VjcmV0LXZhbHVlLTEyMzQ1Njc4\n  id: short\n",
        )
        .expect("w");
        let r = Redactor::default();
        r.learn_file(&f);
        assert_eq!(
            r.redact("token c2VjcmV0LXZhbHVlLTEyMzQ1Njc4 and short"),
            "token [REDACTED] and short"
        );
    }
}

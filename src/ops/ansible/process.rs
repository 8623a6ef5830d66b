//! Running Ansible's programs: the environment (the user's own, plus what keeps Ansible's files
//! out of the repository and its output parseable), a private temp directory outside the
//! repository, each command in its own process group so that stopping it stops every worker
//! and module it forked.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::Setup;

/// Longest a read-only Ansible command (`--version`, `--list`, `--list-hosts`) may take.
pub const QUICK_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest captured output of a quick command (an inventory of thousands of hosts fits).
const MAX_CAPTURE: usize = 32 * 1024 * 1024;

/// Variables set on every Ansible command, over the user's environment:
/// - retry files off (they would land beside the playbook, inside the repository);
/// - the default stdout callback with one-line JSON results and no colour (what
///   [`super::run`] parses); other enabled callbacks keep running;
/// - unbuffered Python, so lines stream as they happen.
///
/// `ANSIBLE_LOCAL_TEMP` (and the remote temp of local connections) goes to the private
/// [`TempDir`].
pub fn fixed_env(tmp: &Path) -> Vec<(String, String)> {
    let t = tmp.join("local").display().to_string();
    [
        ("ANSIBLE_RETRY_FILES_ENABLED", "False".to_string()),
        ("ANSIBLE_STDOUT_CALLBACK", "ansible.builtin.default".into()),
        ("ANSIBLE_CALLBACK_RESULT_FORMAT", "json".into()),
        ("ANSIBLE_CALLBACK_FORMAT_PRETTY", "False".into()),
        ("ANSIBLE_DISPLAY_FAILED_STDERR", "False".into()),
        ("ANSIBLE_NOCOLOR", "1".into()),
        ("ANSIBLE_FORCE_COLOR", "0".into()),
        ("ANSIBLE_LOCAL_TEMP", t),
        ("PYTHONUNBUFFERED", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A private directory (0700) outside the repository, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    /// # Errors
    /// When the system temp directory cannot be written.
    pub fn new(repo: &Path) -> Result<TempDir, String> {
        use std::os::unix::fs::DirBuilderExt;
        let mut base = std::env::temp_dir();
        if base.starts_with(repo) {
            // Never inside the repository, whatever TMPDIR says.
            base = PathBuf::from("/tmp");
        }
        let path = base.join(format!("proxmox-manager-ansible-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(path.join("local"))
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The server's own secrets, never handed to Ansible (a playbook could read its environment).
const WITHHELD_ENV: &[&str] = &["PROXMOX_MANAGER_TOKEN", "PROXMOX_MANAGER_HTTP_TOKEN"];

/// A command for one of Ansible's programs: the repository's working directory, the user's
/// environment (without the server's secrets) plus [`fixed_env`], no stdin, its own process
/// group.
pub fn command(setup: &Setup, program: &Path, args: &[String], tmp: &TempDir) -> Command {
    let mut c = Command::new(program);
    for k in WITHHELD_ENV {
        c.env_remove(k);
    }
    c.args(args)
        .current_dir(&setup.work_dir)
        .envs(fixed_env(&tmp.path))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    c
}

/// Signals every process of a group (ignoring a group that is already gone).
pub fn signal_group(pgid: u32, sig: nix::sys::signal::Signal) {
    if let Ok(raw) = i32::try_from(pgid)
        && raw > 1
    {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), sig);
    }
}

/// Stops a whole process group: SIGTERM, up to `grace` for the leader to exit, then SIGKILL
/// for whatever of the group is left.
pub async fn stop_group(child: &mut tokio::process::Child, grace: Duration) {
    let Some(pgid) = child.id() else {
        return;
    };
    signal_group(pgid, nix::sys::signal::Signal::SIGTERM);
    let _ = tokio::time::timeout(grace, child.wait()).await;
    signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait().await;
}

/// What a quick command printed.
pub struct Captured {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

fn spawn_error(program: &Path, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "`{}` was not found; install ansible-core or set ansible.ansible_playbook in the configuration",
            program.display()
        )
    } else {
        format!("`{}` could not be started: {e}", program.display())
    }
}

/// Runs a read-only Ansible command to completion (bounded time and output), `env` added, its
/// process group stopped when `cancel` fires or the time is up.
///
/// # Errors
/// Not startable, timed out, cancelled: a message naming the program.
pub async fn capture(
    setup: &Setup,
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    cancel: Option<&CancellationToken>,
) -> Result<Captured, String> {
    let tmp = TempDir::new(&setup.repo)?;
    let mut child = command(setup, program, args, &tmp)
        .envs(env.iter().copied())
        .spawn()
        .map_err(|e| spawn_error(program, &e))?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("no pipes to the child".into());
    };
    let read_all = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if buf.len() < MAX_CAPTURE {
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    };
    let both = async {
        let (o, e) = tokio::join!(read_all(Box::new(out)), read_all(Box::new(err)));
        let status = child.wait().await.ok().and_then(|s| s.code());
        (status, o, e)
    };
    let never = CancellationToken::new();
    let cancel = cancel.unwrap_or(&never);
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let result = tokio::select! {
        (status, stdout, stderr) = both => Ok(Captured { status, stdout, stderr }),
        () = tokio::time::sleep(QUICK_TIMEOUT) => {
            Err(format!("`{name}` did not finish within {} s and was stopped", QUICK_TIMEOUT.as_secs()))
        }
        () = cancel.cancelled() => Err(format!("cancelled while `{name}` ran")),
    };
    if result.is_err()
        && let Some(pgid) = child.id()
    {
        signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
    }
    result
}

/// `PROGRAM --version`'s first line, e.g. `ansible-playbook [core 2.19.4]`.
///
/// # Errors
/// Not startable, or a non-zero exit (with its last line of error output).
pub async fn version(setup: &Setup, program: &Path) -> Result<String, String> {
    let c = capture(setup, program, &["--version".to_string()], &[], None).await?;
    if c.status != Some(0) {
        return Err(format!(
            "`{} --version` failed: {}",
            program.display(),
            last_line(&c.stderr)
        ));
    }
    Ok(c.stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// The last non-empty line of `text` (at most 300 characters).
pub fn last_line(text: &str) -> String {
    let l = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .trim();
    l.chars().take(300).collect()
}

/// Reads lines from a child's output pipe into a channel (lossy UTF-8, each line at most
/// 4096 characters), ending when the pipe closes.
pub fn forward_lines<R>(
    reader: R,
    stream: &'static str,
    tx: tokio::sync::mpsc::UnboundedSender<(&'static str, String)>,
) -> tokio::task::JoinHandle<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut r = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line: String = line
                        .trim_end_matches(['\n', '\r'])
                        .chars()
                        .take(4096)
                        .collect();
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

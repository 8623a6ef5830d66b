//! The PVE API token: found in `$PROXMOX_MANAGER_TOKEN`, then `credentials.token_file`, then
//! `pass show <credentials.pass_path>` run by the server itself. The secret lives only in a
//! [`SecretString`]; it never appears in Debug, Display, errors, logs or a child's argv. Errors
//! about a malformed entry say which line is wrong, never what it contains.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};

use super::{Config, Env, process_env};

/// Environment variable holding `user@realm!tokenname=secret`.
pub const TOKEN_ENV: &str = "PROXMOX_MANAGER_TOKEN";
/// How long `pass show` may take (gpg may be waiting on a pinentry nobody sees).
pub const PASS_TIMEOUT: Duration = Duration::from_secs(20);
/// Variables handed from the `env` closure to the `pass` child, so tests stay parallel-safe.
const PASS_ENV: [&str; 6] = [
    "PASSWORD_STORE_DIR",
    "GNUPGHOME",
    "HOME",
    "PATH",
    "PASSWORD_STORE_GPG_OPTS",
    "GPG_TTY",
];

/// A resolved API token. Debug shows the id and `[REDACTED]`.
#[derive(Clone)]
pub struct TokenCredential {
    /// `user@realm!tokenname`, validated.
    pub id: String,
    pub secret: SecretString,
    pub source: CredentialSource,
}

impl fmt::Debug for TokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCredential")
            .field("id", &self.id)
            .field("secret", &"[REDACTED]")
            .field("source", &self.source)
            .finish()
    }
}

/// Where a token came from (for `check` output and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `$PROXMOX_MANAGER_TOKEN`.
    Env,
    /// A token file.
    File(PathBuf),
    /// A `pass` entry (its name in the store).
    Pass(String),
    /// Handed over in memory by the embedded simulator (`--sim`).
    Simulator,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Env => write!(f, "environment variable {TOKEN_ENV}"),
            CredentialSource::File(p) => write!(f, "token file {}", p.display()),
            CredentialSource::Pass(p) => write!(f, "pass entry {p}"),
            CredentialSource::Simulator => write!(f, "the embedded simulator"),
        }
    }
}

/// Why no token could be had. Never contains the secret nor raw `pass` output.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("no API token: {TOKEN_ENV} is not set and {} sets neither credentials.pass_path nor credentials.token_file — set one of them", .config.display())]
    NoSource { config: PathBuf },

    #[error("{TOKEN_ENV} is malformed: {problem} — set it to `user@realm!tokenname=secret`")]
    EnvMalformed { problem: String },

    #[error("token file {}: cannot read it: {source} — check credentials.token_file and the file's permissions", .path.display())]
    FileRead {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("token file {}: {problem} — write `user@realm!tokenname=secret` on one line, or the token id and the secret on two lines", .path.display())]
    FileMalformed { path: PathBuf, problem: String },

    #[error(
        "pass is not installed (cannot run `pass`: {reason}) — install pass or set {TOKEN_ENV}"
    )]
    PassNotInstalled { reason: String },

    #[error(
        "pass has no entry `{entry}`: create it with `pass insert -m {entry}` — line 1 the token id (user@realm!name), line 2 the secret"
    )]
    PassEntryMissing { entry: String },

    #[error(
        "pass entry `{entry}` is a folder, not an entry — point credentials.pass_path at the entry inside it"
    )]
    PassEntryIsFolder { entry: String },

    #[error(
        "pass could not decrypt `{entry}` (gpg: {gpg}) — make sure the store's gpg secret key is in the keyring (GNUPGHOME) and unlocked, or set {TOKEN_ENV}"
    )]
    PassDecrypt { entry: String, gpg: String },

    #[error(
        "pass entry `{entry}` is malformed: {problem} — fix it with `pass edit {entry}`: line 1 the token id (user@realm!name), line 2 the secret"
    )]
    PassMalformed { entry: String, problem: String },

    #[error(
        "pass entry `{entry}` (ssh.key_passphrase_pass_path) has an empty first line — put the SSH key's passphrase on line 1 with `pass edit {entry}`"
    )]
    PassphraseEmpty { entry: String },

    #[error(
        "pass entry `{entry}` (credentials.ct_password_pass_path) has a first line of fewer than 5 characters, which PVE refuses as a root password — put the password on line 1 with `pass edit {entry}`"
    )]
    CtPasswordTooShort { entry: String },

    #[error(
        "`pass show {entry}` failed ({status}): {stderr} — run it yourself to see why, or set {TOKEN_ENV}"
    )]
    PassFailed {
        entry: String,
        status: String,
        stderr: String,
    },

    #[error(
        "`pass show {entry}` did not finish within {timeout:?} (gpg may be waiting for a passphrase) — unlock the key in gpg-agent first, or set {TOKEN_ENV}"
    )]
    PassTimeout { entry: String, timeout: Duration },
}

/// Resolve the token using the process environment. Blocks (runs `pass`): call it from
/// `spawn_blocking` in async code.
///
/// # Errors
/// See [`resolve_with`].
pub fn resolve(cfg: &Config) -> Result<TokenCredential, CredentialError> {
    resolve_with(cfg, &process_env)
}

/// Which source [`resolve_with`] would use, without reading it.
pub fn source_for(cfg: &Config, env: Env<'_>) -> Option<CredentialSource> {
    if env(TOKEN_ENV).is_some_and(|v| !v.is_empty()) {
        Some(CredentialSource::Env)
    } else if let Some(f) = &cfg.credentials.token_file {
        Some(CredentialSource::File(f.clone()))
    } else {
        cfg.credentials
            .pass_path
            .clone()
            .map(CredentialSource::Pass)
    }
}

/// Resolve the token: `$PROXMOX_MANAGER_TOKEN`, then `credentials.token_file`, then
/// `pass show <credentials.pass_path>`. The environment (including `PASSWORD_STORE_DIR`,
/// `GNUPGHOME`, `HOME`, `PATH` for the `pass` child) is read through `env`.
///
/// # Errors
/// A [`CredentialError`] naming the source, what is wrong and what to do.
pub fn resolve_with(cfg: &Config, env: Env<'_>) -> Result<TokenCredential, CredentialError> {
    let cred = match source_for(cfg, env) {
        None => {
            return Err(CredentialError::NoSource {
                config: cfg.path.clone(),
            });
        }
        Some(CredentialSource::Env) => {
            let value = env(TOKEN_ENV).unwrap_or_default();
            let (id, secret) = parse_one_line(value.trim())
                .map_err(|problem| CredentialError::EnvMalformed { problem })?;
            TokenCredential {
                id,
                secret,
                source: CredentialSource::Env,
            }
        }
        Some(CredentialSource::File(path)) => read_token_file(&path)?,
        Some(CredentialSource::Pass(entry)) => pass_show(&entry, env, PASS_TIMEOUT)?,
        // `source_for` never picks it: the simulator hands its token over directly.
        Some(CredentialSource::Simulator) => {
            return Err(CredentialError::NoSource {
                config: cfg.path.clone(),
            });
        }
    };
    tracing::debug!(id = %cred.id, source = %cred.source, "resolved the PVE API token");
    Ok(cred)
}

/// Check `user@realm!tokenname`: non-empty parts, no whitespace, `=` or `:`.
///
/// # Errors
/// A description of what is wrong (without echoing the value).
pub fn validate_token_id(id: &str) -> Result<(), String> {
    let shape = "a token id has the form user@realm!tokenname";
    if id
        .chars()
        .any(|c| c.is_whitespace() || c == '=' || c == ':' || c.is_control())
    {
        return Err(format!(
            "the token id contains whitespace, '=' or ':' ({shape})"
        ));
    }
    let Some((userid, name)) = id.split_once('!') else {
        return Err(format!("the token id has no '!tokenname' ({shape})"));
    };
    let Some((user, realm)) = userid.rsplit_once('@') else {
        return Err(format!("the token id has no '@realm' ({shape})"));
    };
    if user.is_empty() || realm.is_empty() || name.is_empty() || name.contains('!') {
        return Err(format!(
            "the token id has an empty or repeated part ({shape})"
        ));
    }
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(
            "the token name must start with a letter and use letters, digits, - _ .".to_string(),
        );
    }
    Ok(())
}

/// `user@realm!tokenname=secret`, split at the last `=`.
fn parse_one_line(s: &str) -> Result<(String, SecretString), String> {
    let Some((id, secret)) = s.rsplit_once('=') else {
        return Err("no '=' between the token id and the secret".to_string());
    };
    let (id, secret) = (id.trim(), secret.trim());
    validate_token_id(id)?;
    if secret.is_empty() {
        return Err("the secret after '=' is empty".to_string());
    }
    Ok((id.to_string(), SecretString::from(secret)))
}

/// What is wrong with a token file or pass entry, without its content.
enum EntryProblem {
    Empty,
    OneLine(String),
    Line1(String),
    Line2Empty,
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::Empty => f.write_str("it is empty"),
            EntryProblem::OneLine(p) => write!(
                f,
                "it has one line, which is not `user@realm!tokenname=secret`: {p}"
            ),
            EntryProblem::Line1(p) => write!(f, "line 1 is not a token id: {p}"),
            EntryProblem::Line2Empty => f.write_str("line 2 (the secret) is empty"),
        }
    }
}

/// Two lines (id, secret; further lines ignored, as pass users keep notes there) or one line
/// `id=secret`.
fn parse_entry(text: &str) -> Result<(String, SecretString), EntryProblem> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let meaningful = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    match &lines[..meaningful] {
        [] => Err(EntryProblem::Empty),
        [one] => parse_one_line(one).map_err(EntryProblem::OneLine),
        [id, secret, ..] => {
            validate_token_id(id).map_err(EntryProblem::Line1)?;
            if secret.is_empty() {
                return Err(EntryProblem::Line2Empty);
            }
            Ok((id.to_string(), SecretString::from(*secret)))
        }
    }
}

fn read_token_file(path: &Path) -> Result<TokenCredential, CredentialError> {
    let text = std::fs::read_to_string(path).map_err(|source| CredentialError::FileRead {
        path: path.to_path_buf(),
        source,
    })?;
    warn_if_readable_by_others(path);
    let (id, secret) = parse_entry(&text).map_err(|p| CredentialError::FileMalformed {
        path: path.to_path_buf(),
        problem: p.to_string(),
    })?;
    Ok(TokenCredential {
        id,
        secret,
        source: CredentialSource::File(path.to_path_buf()),
    })
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "token file is readable by group or others; run `chmod 600` on it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Run `pass show <entry>` and parse the token from it.
fn pass_show(
    entry: &str,
    env: Env<'_>,
    timeout: Duration,
) -> Result<TokenCredential, CredentialError> {
    let stdout = pass_show_raw(entry, env, timeout)?;
    let (id, secret) =
        parse_entry(stdout.expose_secret()).map_err(|p| CredentialError::PassMalformed {
            entry: entry.to_string(),
            problem: p.to_string(),
        })?;
    Ok(TokenCredential {
        id,
        secret,
        source: CredentialSource::Pass(entry.to_string()),
    })
}

/// The SSH key's passphrase from `pass show <ssh.key_passphrase_pass_path>` (its first line),
/// or `None` when no entry is configured. Blocks: call it from `spawn_blocking` in async code.
///
/// # Errors
/// As for the token's `pass` entry; an empty first line is [`CredentialError::PassphraseEmpty`].
pub fn ssh_passphrase(cfg: &Config, env: Env<'_>) -> Result<Option<SecretString>, CredentialError> {
    let Some(entry) = &cfg.ssh.key_passphrase_pass_path else {
        return Ok(None);
    };
    let stdout = pass_show_raw(entry, env, PASS_TIMEOUT)?;
    let first = stdout.expose_secret().lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(CredentialError::PassphraseEmpty {
            entry: entry.clone(),
        });
    }
    Ok(Some(SecretString::from(first.to_string())))
}

/// The root password for new containers from `pass show <credentials.ct_password_pass_path>`
/// (its first line), or `None` when no entry is configured. Blocks: call it from
/// `spawn_blocking` in async code.
///
/// # Errors
/// As for the token's `pass` entry; a first line shorter than PVE's minimum (5) is
/// [`CredentialError::CtPasswordTooShort`].
pub fn ct_root_password(
    cfg: &Config,
    env: Env<'_>,
) -> Result<Option<SecretString>, CredentialError> {
    let Some(entry) = &cfg.credentials.ct_password_pass_path else {
        return Ok(None);
    };
    let stdout = pass_show_raw(entry, env, PASS_TIMEOUT)?;
    let first = stdout.expose_secret().lines().next().unwrap_or("");
    if first.chars().count() < 5 {
        return Err(CredentialError::CtPasswordTooShort {
            entry: entry.clone(),
        });
    }
    Ok(Some(SecretString::from(first.to_string())))
}

/// Stores a token in `pass` as the RBAC bootstrap of the design does: `pass insert -m -f
/// <entry>` with line 1 the token id and line 2 the secret written to its stdin (argv holds only
/// the entry name; nothing touches a file of ours). Blocks: call it from `spawn_blocking`.
///
/// # Errors
/// [`CredentialError::PassNotInstalled`], or [`CredentialError::PassFailed`] with pass's first
/// stderr line (which never contains the stdin).
pub fn pass_insert_token(
    entry: &str,
    token_id: &str,
    secret: &SecretString,
    env: Env<'_>,
) -> Result<(), CredentialError> {
    use std::io::Write;
    let mut cmd = pass_command(&["insert", "-m", "-f"], entry, env);
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = spawn_pass(cmd, entry)?;
    let written = match child.stdin.take() {
        Some(mut stdin) => {
            let mut body = format!("{token_id}\n{}\n", secret.expose_secret());
            let r = stdin.write_all(body.as_bytes());
            body.zeroize();
            r
        }
        None => Ok(()),
    };
    let out = child
        .wait_with_output()
        .map_err(|e| CredentialError::PassFailed {
            entry: entry.to_string(),
            status: "wait failed".into(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() || written.is_err() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(CredentialError::PassFailed {
            entry: entry.to_string(),
            status: out
                .status
                .code()
                .map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}")),
            stderr: sanitize_first_line(&stderr),
        });
    }
    Ok(())
}

/// Run `pass show <entry>` (argv holds only the entry name), stdin closed, output captured;
/// the output is wrapped as a secret at once.
fn pass_show_raw(
    entry: &str,
    env: Env<'_>,
    timeout: Duration,
) -> Result<SecretString, CredentialError> {
    let mut cmd = pass_command(&["show"], entry, env);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    // Own process group, so a timeout can stop gpg (pass's child) too, not only pass.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = spawn_pass(cmd, entry)?;

    // Drain both pipes on threads so a chatty child cannot block on a full pipe while we wait.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut buf);
        }
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                break Err(CredentialError::PassTimeout {
                    entry: entry.to_string(),
                    timeout,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                break Err(CredentialError::PassFailed {
                    entry: entry.to_string(),
                    status: "wait failed".into(),
                    stderr: e.to_string(),
                });
            }
        }
    };
    // The stdout buffer holds the secret: wrap it at once (moving, not copying, when it is
    // UTF-8; zeroing the bytes otherwise), never log or format it.
    let stdout = match String::from_utf8(out_thread.join().unwrap_or_default()) {
        Ok(text) => SecretString::from(text),
        Err(e) => {
            let mut bytes = e.into_bytes();
            let text = SecretString::from(String::from_utf8_lossy(&bytes).into_owned());
            bytes.zeroize();
            text
        }
    };
    let stderr = String::from_utf8_lossy(&err_thread.join().unwrap_or_default()).into_owned();
    let status = status?;

    if !status.success() {
        // gpg often prints "encrypted with ... key" before the line that says what failed.
        let relevant = stderr
            .lines()
            .find(|l| l.contains("failed") || l.contains("rror"))
            .unwrap_or(&stderr);
        let first = sanitize_first_line(relevant);
        let entry = entry.to_string();
        return Err(if stderr.contains("is not in the password store") {
            CredentialError::PassEntryMissing { entry }
        } else if stderr.contains("gpg:") || stderr.contains("decryption failed") {
            CredentialError::PassDecrypt {
                entry,
                gpg: first.trim_start_matches("gpg: ").to_string(),
            }
        } else {
            let status = status
                .code()
                .map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
            CredentialError::PassFailed {
                entry,
                status,
                stderr: first,
            }
        });
    }
    if store_dir(env)
        .is_some_and(|d| d.join(entry).is_dir() && !d.join(format!("{entry}.gpg")).is_file())
    {
        return Err(CredentialError::PassEntryIsFolder {
            entry: entry.to_string(),
        });
    }
    Ok(stdout)
}

/// `pass ARGS ENTRY` with only the store's variables passed on from `env` and stderr captured;
/// argv never holds anything but the subcommand, its flags and the entry name.
fn pass_command(args: &[&str], entry: &str, env: Env<'_>) -> Command {
    let mut cmd = Command::new("pass");
    cmd.args(args).arg(entry).stderr(Stdio::piped());
    for name in PASS_ENV {
        if let Some(v) = env(name) {
            cmd.env(name, v);
        }
    }
    cmd
}

fn spawn_pass(mut cmd: Command, entry: &str) -> Result<std::process::Child, CredentialError> {
    // "Text file busy": the executable was written a moment ago and another thread's fork
    // still holds it open for writing (a freshly installed `pass` wrapper, or tests). The
    // window is that fork's, so a few short retries get past it.
    let mut spawned = cmd.spawn();
    for attempt in 1..=5u64 {
        match &spawned {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(10 * attempt));
                spawned = cmd.spawn();
            }
            _ => break,
        }
    }
    spawned.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CredentialError::PassNotInstalled {
            reason: e.to_string(),
        },
        _ => CredentialError::PassFailed {
            entry: entry.to_string(),
            status: "could not start".to_string(),
            stderr: e.to_string(),
        },
    })
}

/// SIGKILL the process group led by `pid` (pass and the gpg it started), without `unsafe`.
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn store_dir(env: Env<'_>) -> Option<PathBuf> {
    env("PASSWORD_STORE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".password-store")))
}

/// First non-empty stderr line, control characters removed, at most 200 characters.
fn sanitize_first_line(stderr: &str) -> String {
    let line = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no error output");
    line.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests;

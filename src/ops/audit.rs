//! The audit log: one JSON line per mutating tool call (time, tool, arguments with secrets
//! redacted, UPIDs, outcome), appended to `audit_log` from the configuration or, when unset,
//! `$XDG_STATE_HOME/proxmox-manager/audit.jsonl` (`~/.local/state/...`).
//!
//! Appends go through one mutex so concurrent calls never interleave inside a line; a failure
//! to write is logged and never fails the operation it records (the cluster change happened).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};

/// Argument names whose values never reach the log, matched exactly (case-insensitive), so a
/// non-secret neighbour such as `token_name` or `token_id` stays readable.
const SECRET_KEYS: &[&str] = &[
    "password",
    "cipassword",
    "secret",
    "token",
    "api_token",
    "token_secret",
    "token_value",
    "http_token",
    "bearer_token",
    "passphrase",
    "key_passphrase",
    "ssh_passphrase",
    "authorization",
    "private_key",
];

/// Suffixes that mark a secret whatever the prefix (`root_password`, `client_secret`).
const SECRET_SUFFIXES: &[&str] = &["_password", "_secret", "_passphrase"];

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&k.as_str()) || SECRET_SUFFIXES.iter().any(|s| k.ends_with(s))
}

pub struct AuditLog {
    path: Option<PathBuf>,
    lock: Mutex<()>,
    /// Records of a session against the simulator carry `"simulated": true`.
    simulated: bool,
}

impl AuditLog {
    pub fn new(configured: Option<&Path>) -> Self {
        let path = configured.map(Path::to_path_buf).or_else(default_path);
        AuditLog {
            path,
            lock: Mutex::new(()),
            simulated: false,
        }
    }

    /// The log of a simulated session: its own file (never the user's real log), every record
    /// marked `"simulated": true`.
    pub fn simulated(path: PathBuf) -> Self {
        AuditLog {
            path: Some(path),
            lock: Mutex::new(()),
            simulated: true,
        }
    }

    pub fn is_simulated(&self) -> bool {
        self.simulated
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends one record for an operation's result (`ok` or `error: ...`).
    pub fn record_result<T, E: std::fmt::Display>(
        &self,
        tool: &str,
        args: &Value,
        upids: &[String],
        result: Result<T, E>,
    ) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        self.record(tool, args, upids, &outcome);
    }

    /// Appends one record.
    pub fn record(&self, tool: &str, args: &Value, upids: &[String], outcome: &str) {
        self.record_approved(tool, args, upids, outcome, None);
    }

    /// Appends one record of a destructive call with how it was approved (or not):
    /// `elicitation-accepted`, `argument`, `declined`, `cancelled`, `timed-out`, `refused`,
    /// `failed` (see [`crate::ops::approval::Approval`]).
    pub fn record_approved(
        &self,
        tool: &str,
        args: &Value,
        upids: &[String],
        outcome: &str,
        approval: Option<&str>,
    ) {
        let Some(path) = &self.path else { return };
        let mut line = json!({
            "time": rfc3339_now(),
            "tool": tool,
            "arguments": redact(args),
            "upids": upids,
            "outcome": redact_url_credentials(outcome),
        });
        if let Some(a) = approval {
            line["approval"] = Value::String(a.to_string());
        }
        if self.simulated {
            line["simulated"] = Value::Bool(true);
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = (|| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                create_private_dir(dir)?;
            }
            let mut f = open_private_append(path)?;
            writeln!(f, "{line}")
        })();
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "could not append to the audit log");
        }
    }
}

/// Creates `dir` (and missing parents); a directory this call creates gets mode 0700. An
/// existing directory keeps its mode (it may be shared, e.g. a configured `/var/log/...`).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Opens `path` for appending, creating it with mode 0600; an existing file readable or
/// writable by group or others is tightened to 0600 (the log records who changed what).
fn open_private_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(f)
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(base.join("proxmox-manager/audit.jsonl"))
}

/// Replaces the values of secret keys (exact names, see [`SECRET_KEYS`]) at any depth, and the
/// password of any `scheme://user:password@host` inside a string.
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    if is_secret_key(k) {
                        (k.clone(), Value::String("[REDACTED]".into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::String(s) => Value::String(redact_url_credentials(s)),
        other => other.clone(),
    }
}

/// `http://user:pw@host/x` -> `http://user:[REDACTED]@host/x`, for every URL in `text`; a
/// user name without a password is kept (it is not a secret).
pub fn redact_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":[REDACTED]");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// UTC now as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

/// Civil date from days since the epoch (Howard Hinnant's algorithm).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_072_000), "2025-11-25T12:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let v =
            json!({"vmid": 1, "cipassword": "hunter2", "nested": {"api_token": "x", "ok": "y"}});
        let r = redact(&v);
        assert_eq!(r["cipassword"], "[REDACTED]");
        assert_eq!(r["nested"]["api_token"], "[REDACTED]");
        assert_eq!(r["nested"]["ok"], "y");
        assert_eq!(r["vmid"], 1);
    }

    #[test]
    fn redaction_is_key_exact_and_keeps_non_secret_neighbours() {
        let v = json!({
            "token_name": "automation",
            "token_id": "claude-code@pve!automation",
            "user": "claude-code@pve",
            "token": "abc",
            "key_passphrase": "pp",
            "root_password": "rp",
            "Secret": "s",
        });
        let r = redact(&v);
        assert_eq!(r["token_name"], "automation");
        assert_eq!(r["token_id"], "claude-code@pve!automation");
        assert_eq!(r["user"], "claude-code@pve");
        for k in ["token", "key_passphrase", "root_password", "Secret"] {
            assert_eq!(r[k], "[REDACTED]", "{k}");
        }
    }

    #[test]
    fn passwords_inside_urls_are_redacted() {
        let v = json!({
            "url": "http://ada:hunter2@mirror.example/debian.iso",
            "list": ["see https://bob:pw%40x@h:8443?x=1 and ftp://anon@h/"],
            "plain": "https://example.org/a@b",
        });
        let r = redact(&v);
        assert_eq!(r["url"], "http://ada:[REDACTED]@mirror.example/debian.iso");
        assert_eq!(
            r["list"][0],
            "see https://bob:[REDACTED]@h:8443?x=1 and ftp://anon@h/"
        );
        assert_eq!(r["plain"], "https://example.org/a@b");
        let text = r.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("pw%40x"),
            "{text}"
        );
    }

    #[test]
    fn simulated_records_are_marked_and_outcomes_redacted() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sim/audit.jsonl");
        let log = AuditLog::simulated(path.clone());
        assert!(log.is_simulated());
        log.record(
            "template_from_iso",
            &json!({"iso": "https://u:pw@h/x.iso"}),
            &[],
            "error: fetching https://u:pw@h/x.iso failed",
        );
        let line: Value =
            serde_json::from_str(std::fs::read_to_string(&path).expect("read").trim())
                .expect("json");
        assert_eq!(line["simulated"], true);
        assert_eq!(line["arguments"]["iso"], "https://u:[REDACTED]@h/x.iso");
        assert!(!line["outcome"].as_str().expect("s").contains("pw@"));
        let real = AuditLog::new(Some(&dir.path().join("real.jsonl")));
        real.record("vm_start", &json!({"vmid": 1}), &[], "ok");
        let line: Value = serde_json::from_str(
            std::fs::read_to_string(dir.path().join("real.jsonl"))
                .expect("read")
                .trim(),
        )
        .expect("json");
        assert!(line.get("simulated").is_none());
    }

    #[test]
    fn records_append_one_line_each() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AuditLog::new(Some(&dir.path().join("a/audit.jsonl")));
        log.record("vm_start", &json!({"vmid": 1000}), &["UPID:x".into()], "ok");
        log.record(
            "vm_stop",
            &json!({"vmid": 1000, "password": "p"}),
            &[],
            "error: x",
        );
        let text = std::fs::read_to_string(dir.path().join("a/audit.jsonl")).expect("read");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["tool"], "vm_start");
        assert_eq!(lines[1]["arguments"]["password"], "[REDACTED]");
        assert!(!text.contains("\"p\""));
    }

    #[cfg(unix)]
    #[test]
    fn the_log_is_private_and_a_loose_one_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state/proxmox-manager/audit.jsonl");
        let log = AuditLog::new(Some(&path));
        log.record("vm_start", &json!({"vmid": 1000}), &[], "ok");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        log.record("vm_stop", &json!({"vmid": 1000}), &[], "ok");
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 2);
    }
}

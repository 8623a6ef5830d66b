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

/// Argument names whose values never reach the log.
const SECRET_KEYS: &[&str] = &["password", "cipassword", "secret", "token", "passphrase"];

pub struct AuditLog {
    path: Option<PathBuf>,
    lock: Mutex<()>,
}

impl AuditLog {
    pub fn new(configured: Option<&Path>) -> Self {
        let path = configured.map(Path::to_path_buf).or_else(default_path);
        AuditLog {
            path,
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends one record.
    pub fn record(&self, tool: &str, args: &Value, upids: &[String], outcome: &str) {
        let Some(path) = &self.path else { return };
        let line = json!({
            "time": rfc3339_now(),
            "tool": tool,
            "arguments": redact(args),
            "upids": upids,
            "outcome": outcome,
        });
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

/// Replaces the values of secret-looking keys, at any depth.
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let lower = k.to_lowercase();
                    if SECRET_KEYS.iter().any(|s| lower.contains(s)) {
                        (k.clone(), Value::String("[REDACTED]".into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        other => other.clone(),
    }
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

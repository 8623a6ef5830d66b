//! Classifiers for PVE's semantic failures, read from its (English, stable) texts. Each one
//! looks at both kinds of failure: an early HTTP error ([`Error::Api`]: `message` and the
//! per-parameter `errors`) and a task that ended in error ([`Error::TaskFailed`]: its exit
//! status), because PVE reports the same condition either way depending on when it hits.

use super::error::Error;

impl Error {
    /// PVE's own texts of an early error or a failed task; empty for every other variant.
    fn pve_texts(&self) -> Vec<&str> {
        match self {
            Error::Api {
                message, errors, ..
            } => std::iter::once(message.as_str())
                .chain(errors.values().map(String::as_str))
                .collect(),
            Error::TaskFailed { exitstatus, .. } => vec![exitstatus.as_str()],
            _ => Vec::new(),
        }
    }

    /// The lock that made PVE refuse, when it refused because of one:
    /// - "VM is locked (backup)" (a config lock, `check_lock`) gives `backup`;
    /// - "can't lock file '/var/lock/qemu-server/lock-105.conf' - got timeout" (a flock held
    ///   by another task) gives `lock-105.conf (file lock)`.
    ///
    /// Such an operation may succeed once the other task ends; retrying at once does not help.
    pub fn lock_contention(&self) -> Option<String> {
        self.pve_texts()
            .into_iter()
            .find_map(|t| config_lock(t).or_else(|| file_lock_timeout(t)))
    }

    /// Whether PVE refused because the vmid is already used: "unable to create VM 105: config
    /// file already exists", "VM 105 already exists on node 'pve02'", or `GET /cluster/nextid
    /// ?vmid=105`'s 400 `{"vmid": "VM 105 already exists"}`. `nextid` reserves nothing, so a
    /// concurrent create can take the id first: pick a fresh id and try again.
    pub fn is_vmid_taken(&self) -> bool {
        self.pve_texts().into_iter().any(vmid_taken)
    }

    /// Whether PVE answered "QEMU guest agent is not running" (500): the agent is not
    /// installed, not started yet, or the VM is off. Nothing is wrong with the request.
    pub fn is_agent_not_running(&self) -> bool {
        matches!(self, Error::Api { .. })
            && self.pve_texts().into_iter().any(|t| {
                t.to_ascii_lowercase()
                    .contains("guest agent is not running")
            })
    }
}

/// `... is locked (<name>)` with a lock name of letters and `-` (`snapshot-delete`).
fn config_lock(text: &str) -> Option<String> {
    const MARK: &str = " is locked (";
    let start = text.find(MARK)? + MARK.len();
    let rest = text.get(start..)?;
    let name = rest.get(..rest.find(')')?)?.trim();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| name.to_owned())
}

/// `can't lock file '<path>' - got timeout` gives `<basename> (file lock)`.
fn file_lock_timeout(text: &str) -> Option<String> {
    const MARK: &str = "can't lock file '";
    let start = text.find(MARK)? + MARK.len();
    let rest = text.get(start..)?;
    let end = rest.find('\'')?;
    let path = rest.get(..end)?;
    let tail = rest.get(end + 1..)?;
    if !tail
        .trim_start()
        .trim_start_matches('-')
        .trim_start()
        .starts_with("got timeout")
    {
        return None;
    }
    let base = path.rsplit('/').next().filter(|b| !b.is_empty())?;
    Some(format!("{base} (file lock)"))
}

/// `VM <digits> already exists` (also `CT`), or `unable to create VM <digits>: config file
/// already exists`.
fn vmid_taken(text: &str) -> bool {
    let after_id = |rest: &str| -> Option<usize> {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (digits > 0).then_some(digits)
    };
    for prefix in ["VM ", "CT "] {
        let mut from = 0;
        while let Some(i) = text.get(from..).and_then(|t| t.find(prefix)) {
            let id_start = from + i + prefix.len();
            let rest = text.get(id_start..).unwrap_or("");
            if let Some(n) = after_id(rest) {
                let tail = rest.get(n..).unwrap_or("");
                if tail.starts_with(" already exists")
                    || tail.starts_with(": config file already exists")
                {
                    return true;
                }
            }
            from = id_start;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::pve::Upid;

    fn api(status: u16, message: &str, errors: &[(&str, &str)]) -> Error {
        Error::Api {
            status,
            method: "POST".into(),
            path: "/nodes/pve01/qemu/9000/clone".into(),
            message: message.into(),
            errors: errors
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn task(exitstatus: &str) -> Result<Error, Error> {
        let upid: Upid = "UPID:pve01:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000:root@pam:".parse()?;
        Ok(Error::TaskFailed {
            upid,
            exitstatus: exitstatus.into(),
            log_tail: vec![format!("TASK ERROR: {exitstatus}")],
        })
    }

    const FILE_LOCK: &str = "can't lock file '/var/lock/qemu-server/lock-105.conf' - got timeout";

    #[test]
    fn lock_contention_early_and_in_task() -> Result<(), Error> {
        assert_eq!(
            api(500, "VM is locked (backup)", &[]).lock_contention(),
            Some("backup".into())
        );
        assert_eq!(
            api(500, "VM is locked (snapshot-delete)", &[]).lock_contention(),
            Some("snapshot-delete".into())
        );
        assert_eq!(
            api(500, "CT is locked (clone)", &[]).lock_contention(),
            Some("clone".into())
        );
        assert_eq!(
            api(500, FILE_LOCK, &[]).lock_contention(),
            Some("lock-105.conf (file lock)".into())
        );
        assert_eq!(
            task(FILE_LOCK)?.lock_contention(),
            Some("lock-105.conf (file lock)".into())
        );
        assert_eq!(
            task("clone failed: VM is locked (migrate)")?.lock_contention(),
            Some("migrate".into())
        );
        for no in [
            "unable to create VM 105: config file already exists",
            "can't lock file '/var/lock/qemu-server/lock-105.conf' - Permission denied",
            "VM is locked ()",
            "shrinking disks is not supported",
        ] {
            assert_eq!(api(500, no, &[]).lock_contention(), None, "{no}");
        }
        let connect = Error::Connect {
            endpoint: "https://a:8006".into(),
            reason: "VM is locked (backup)".into(),
        };
        assert_eq!(connect.lock_contention(), None, "only pve's own texts");
        Ok(())
    }

    #[test]
    fn vmid_taken_early_nextid_and_in_task() -> Result<(), Error> {
        assert!(
            api(
                500,
                "unable to create VM 105: config file already exists",
                &[]
            )
            .is_vmid_taken()
        );
        assert!(api(500, "VM 105 already exists on node 'pve02'", &[]).is_vmid_taken());
        assert!(
            api(
                400,
                "Parameter verification failed.",
                &[("vmid", "VM 105 already exists")]
            )
            .is_vmid_taken()
        );
        assert!(
            api(
                500,
                "unable to restore VM 105 - VM 105 already exists on node 'pve01'",
                &[]
            )
            .is_vmid_taken()
        );
        assert!(task("unable to create VM 105: config file already exists")?.is_vmid_taken());
        assert!(task("VM 105 already exists on node 'pve02'")?.is_vmid_taken());
        for no in [
            "VM is locked (clone)",
            FILE_LOCK,
            "snapshot name 'x' already used",
            "VM already exists",
            "Configuration file 'nodes/pve01/qemu-server/105.conf' does not exist",
        ] {
            assert!(!api(500, no, &[]).is_vmid_taken(), "{no}");
        }
        assert!(
            !api(
                400,
                "Parameter verification failed.",
                &[("newid", "value must have a minimum value of 100")]
            )
            .is_vmid_taken()
        );
        Ok(())
    }

    #[test]
    fn agent_not_running() -> Result<(), Error> {
        assert!(api(500, "QEMU guest agent is not running", &[]).is_agent_not_running());
        assert!(!api(500, "No QEMU guest agent configured", &[]).is_agent_not_running());
        assert!(!task("QEMU guest agent is not running")?.is_agent_not_running());
        Ok(())
    }
}

//! Wire types of task reads: task list rows, task status, log lines, and the exit-status rule
//! (`OK` or `WARNINGS: N` is success).

use serde::{Deserialize, Serialize};

use super::types::Extra;

/// `GET /nodes/{node}/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskListItem {
    pub upid: String,
    pub node: String,
    #[serde(rename = "type")]
    pub task_type: String,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub id: Option<String>,
    pub user: String,
    #[serde(default)]
    pub tokenid: Option<String>,
    #[serde(deserialize_with = "super::perl::i64")]
    pub starttime: i64,
    #[serde(default, deserialize_with = "super::perl::opt_i64")]
    pub endtime: Option<i64>,
    /// Exit status for finished tasks (`OK`, `WARNINGS: N`, error text); absent while running.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub pid: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub pstart: Option<u64>,
}

impl TaskListItem {
    /// The parsed UPID, when it is well-formed.
    pub fn parsed_upid(&self) -> Option<super::Upid> {
        self.upid.parse().ok()
    }
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskStatus {
    pub upid: String,
    #[serde(default)]
    pub node: Option<String>,
    /// `running` or `stopped`.
    pub status: String,
    /// Present only when stopped: `OK`, `WARNINGS: N`, the error text, `unexpected status`.
    #[serde(default)]
    pub exitstatus: Option<String>,
    #[serde(rename = "type", default)]
    pub task_type: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub id: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub tokenid: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_i64")]
    pub starttime: Option<i64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub pid: Option<u64>,
    #[serde(default, deserialize_with = "super::perl::opt_u64")]
    pub pstart: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl TaskStatus {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
    /// `Some(warnings)` when stopped successfully (`OK` = 0, `WARNINGS: N` = N), `None` when
    /// running or failed. PVE's `status_is_error` counts `WARNINGS: N` as success.
    pub fn success_warnings(&self) -> Option<u32> {
        if self.is_running() {
            return None;
        }
        exit_success(self.exitstatus.as_deref()?)
    }
}

/// `OK` -> `Some(0)`, `WARNINGS: N` -> `Some(N)`, anything else -> `None`.
pub fn exit_success(exitstatus: &str) -> Option<u32> {
    if exitstatus == "OK" {
        return Some(0);
    }
    let n = exitstatus.strip_prefix("WARNINGS: ")?;
    Some(n.trim().parse().unwrap_or(1))
}

/// One line of `GET /nodes/{node}/tasks/{upid}/log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLogLine {
    #[serde(deserialize_with = "super::perl::u64")]
    pub n: u64,
    #[serde(deserialize_with = "super::perl::string")]
    pub t: String,
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_status_success_rules() -> Result<(), serde_json::Error> {
        let t = |status: &str, exit: Option<&str>| -> Result<TaskStatus, serde_json::Error> {
            serde_json::from_value(
                serde_json::json!({"upid": "u", "status": status, "exitstatus": exit}),
            )
        };
        assert_eq!(t("stopped", Some("OK"))?.success_warnings(), Some(0));
        assert_eq!(
            t("stopped", Some("WARNINGS: 3"))?.success_warnings(),
            Some(3)
        );
        assert_eq!(
            t("stopped", Some("clone failed: x"))?.success_warnings(),
            None
        );
        assert_eq!(
            t("stopped", Some("unexpected status"))?.success_warnings(),
            None
        );
        assert_eq!(t("running", None)?.success_warnings(), None);
        assert!(t("running", None)?.is_running());
        Ok(())
    }
}

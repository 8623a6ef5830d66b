//! PVE tasks: status and log of a UPID.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pve::Upid;

use crate::ops::{Context, Error};

/// `task_status` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskStatusArgs {
    #[schemars(length(max = 512), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub upid: String,
}

/// `task_status` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TaskStatusReport {
    pub upid: String,
    pub node: String,
    /// Task type, e.g. `qmclone`, `qmstart`, `vzdump`.
    #[serde(rename = "type")]
    pub task_type: String,
    /// Object id, usually a VMID; may be empty.
    pub id: String,
    pub user: String,
    /// `running` or `stopped`.
    pub status: String,
    /// When stopped: `OK`, `WARNINGS: N`, or the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exitstatus: Option<String>,
    /// When stopped: true for `OK` and `WARNINGS: N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<bool>,
    /// Start time, seconds since the epoch.
    pub starttime: u64,
}

pub(crate) fn parse_upid(s: &str) -> Result<Upid, Error> {
    s.trim().parse::<Upid>().map_err(|_| {
        Error::invalid("upid", format!("'{s}' is not a PVE task id; it looks like UPID:node:pid:pstart:starttime:type:id:user:"))
    })
}

/// A task's status, polled on the node named in its UPID.
///
/// # Errors
/// On a malformed UPID, an unknown task, or an offline node.
pub async fn task_status(ctx: &Context, args: &TaskStatusArgs) -> Result<TaskStatusReport, Error> {
    let upid = parse_upid(&args.upid)?;
    let st = ctx.client.get_task_status(&upid).await?;
    let succeeded = st
        .exitstatus
        .as_deref()
        .map(|e| e == "OK" || e.starts_with("WARNINGS: "));
    Ok(TaskStatusReport {
        upid: upid.to_string(),
        node: upid.node().to_string(),
        task_type: st
            .task_type
            .clone()
            .unwrap_or_else(|| upid.task_type().to_string()),
        id: st.id.clone().unwrap_or_default(),
        user: st.user.clone().unwrap_or_else(|| upid.user().to_string()),
        status: st.status.clone(),
        succeeded: if st.status == "stopped" {
            succeeded
        } else {
            None
        },
        exitstatus: st.exitstatus.clone(),
        starttime: st
            .starttime
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(0),
    })
}

/// `task_log` arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskLogArgs {
    #[schemars(length(max = 512), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub upid: String,
    /// First line, from 0.
    #[serde(default)]
    #[schemars(range(max = 100_000_000))]
    pub start: Option<u64>,
    /// Default 50, at most 500.
    #[serde(default)]
    #[schemars(range(max = 10_000))]
    pub limit: Option<u64>,
    /// The last `limit` lines.
    #[serde(default)]
    pub tail: bool,
}

/// `task_log` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TaskLogReport {
    pub upid: String,
    pub lines: Vec<String>,
    /// Number of the first returned line.
    pub start: u64,
    /// Lines in the whole log.
    pub total: u64,
    /// `start` for the next page, when more lines follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_start: Option<u64>,
}

/// A page of a task's log.
///
/// # Errors
/// On a malformed UPID, an unknown task, or an offline node.
pub async fn task_log(ctx: &Context, args: &TaskLogArgs) -> Result<TaskLogReport, Error> {
    let upid = parse_upid(&args.upid)?;
    let limit = args.limit.unwrap_or(50).clamp(1, 500);
    let mut start = args.start.unwrap_or(0);
    let mut page = ctx.client.get_task_log_page(&upid, start, limit).await?;
    let mut total = page.total.unwrap_or(page.lines.len() as u64);
    if args.tail && total > limit && start + limit < total {
        start = total - limit;
        page = ctx.client.get_task_log_page(&upid, start, limit).await?;
        total = page.total.unwrap_or(total);
    }
    let lines = page.lines;
    let returned = lines.len() as u64;
    let next = start + returned;
    Ok(TaskLogReport {
        upid: upid.to_string(),
        lines: lines.into_iter().map(|l| l.t).collect(),
        start,
        total,
        next_start: (next < total).then_some(next),
    })
}

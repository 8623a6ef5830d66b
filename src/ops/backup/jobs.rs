//! `backup_jobs`: the cluster's scheduled backup jobs (schedule, next run, selection, storage,
//! enabled), the outcome of each job's last run, and the guests no enabled job covers.
//!
//! PVE records no job id in a run's task: the scheduler runs each job on every node as
//! `root@pam` with the job's options plus `--quiet 1`, and the log's first line prints that
//! command. A run is matched to the job whose selection (vmids, `all`, pool) and storage it
//! prints; runs of one job start together on every node, so the newest run is the tasks of
//! that job within an hour of its newest task.
//!
//! What it reads: the job list, the uncovered guests and the nodes (at once), one vzdump task
//! list per online node, then task logs newest first — only `root@pam`'s tasks (the scheduler
//! runs jobs as `root@pam`, and only `root@pam` may pass `--job-id`), and only until every
//! job's newest run is known and the next task is more than an hour older than the oldest of
//! those runs (older tasks cannot change any answer), an hour of tasks at a time. Logs are
//! read whole: the per-guest outcome lines run to the end of a run's log. They are downloaded
//! as files, gzipped (`download=1`, pve-manager 7.3-5 and later): as JSON lines, a run's log
//! at 150 guests a node is a megabyte a node. An older PVE gets the JSON lines. What a finished
//! task's log says is kept by UPID ([`RunLogs`]), so a later call reads only the task lists
//! and the logs of tasks it has not seen finished.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{StreamExt, stream};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::log;
use crate::ops::{Context, Error, is_node};
use crate::pve::{ResourceType, TaskFilter, TaskListItem, Upid};

/// `backup_jobs` arguments (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupJobsArgs {}

/// Lists in a `backup_jobs` answer show this many items; the totals count them all.
pub const SHOWN: usize = 10;

/// How a job's last run went (a job runs one vzdump task per node holding its guests).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LastRun {
    /// The run's tasks, one per node (the first few, unfinished or failed ones first).
    pub upids: Vec<String>,
    /// Their nodes, in the same order.
    pub nodes: Vec<String>,
    /// Tasks in the run.
    pub tasks_total: u64,
    /// Unix times.
    pub started: i64,
    pub ended: Option<i64>,
    /// `OK`, `WARNINGS: N`, `job errors`..., or `running`.
    pub status: String,
    pub ok: bool,
    /// Guests whose backup failed in that run, with the reason (the first few).
    pub failed_guests: Vec<String>,
    pub failed_total: u64,
    /// Guests backed up in that run (the lowest vmids).
    pub backed_up: Vec<u32>,
    pub backed_up_total: u64,
}

/// One scheduled job.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct JobSummary {
    pub id: String,
    pub schedule: Option<String>,
    /// Unix time of the next run.
    pub next_run: Option<i64>,
    pub enabled: bool,
    pub storage: Option<String>,
    /// `all guests`, `vmids 100,101`, `pool web`, with exclusions.
    pub selection: String,
    pub mode: Option<String>,
    pub comment: Option<String>,
    /// None when no run of it is in the task history.
    pub last_run: Option<LastRun>,
}

/// `backup_jobs` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupJobsReport {
    pub jobs: Vec<JobSummary>,
    /// Guests no enabled job backs up: `vmid name` (the first few).
    pub not_covered: Vec<String>,
    pub not_covered_total: u64,
    pub warnings: Vec<String>,
}

/// The jobs, their last runs and the uncovered guests.
///
/// # Errors
/// When the job list cannot be read (it needs Sys.Audit on `/`).
pub async fn backup_jobs(ctx: &Context, _: &BackupJobsArgs) -> Result<BackupJobsReport, Error> {
    // Three independent reads, at once.
    let (jobs, uncovered, nodes) = tokio::join!(
        ctx.client.list_backup_jobs(),
        ctx.client.not_backed_up(),
        ctx.client.get_cluster_resources(Some(ResourceType::Node)),
    );
    let (jobs, _) = jobs?;
    let mut warnings = Vec::new();
    let runs = match nodes {
        Ok(rows) => {
            let online: Vec<String> = rows
                .iter()
                .filter(|r| is_node(r) && r.status.as_deref() == Some("online"))
                .filter_map(|r| r.node.clone())
                .collect();
            last_runs(ctx, &jobs, online, &mut warnings).await
        }
        Err(e) => {
            warnings.push(format!("nodes could not be listed: {e}"));
            vec![]
        }
    };
    let mut not_covered: Vec<String> = match uncovered {
        Ok((rows, _)) => rows
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.vmid.map(|v| v.to_string()).unwrap_or_default(),
                    r.name.clone().unwrap_or_default()
                )
                .trim()
                .to_string()
            })
            .collect(),
        Err(e) => {
            warnings.push(format!("the guests no job covers could not be read: {e}"));
            vec![]
        }
    };
    let mut out: Vec<JobSummary> = jobs
        .into_iter()
        .map(|j| {
            let selection = if j.all == Some(true) {
                "all guests".to_string()
            } else if let Some(p) = &j.pool {
                format!("pool {p}")
            } else {
                format!("vmids {}", j.vmid.clone().unwrap_or_default())
            };
            let selection = match j.exclude.as_deref().filter(|e| !e.is_empty()) {
                Some(e) => format!("{selection} except {e}"),
                None => selection,
            };
            let selection = match &j.node {
                Some(n) => format!("{selection} on {n}"),
                None => selection,
            };
            JobSummary {
                last_run: runs
                    .iter()
                    .find(|(id, _)| *id == j.id)
                    .map(|(_, r)| r.clone()),
                id: j.id,
                schedule: j.schedule,
                next_run: j.next_run,
                enabled: j.enabled.unwrap_or(true),
                storage: j.storage,
                selection,
                mode: j.mode,
                comment: j.comment,
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    let not_covered_total = not_covered.len() as u64;
    not_covered.truncate(SHOWN);
    Ok(BackupJobsReport {
        jobs: out,
        not_covered,
        not_covered_total,
        warnings,
    })
}

/// Reads in flight at once for the task lists and logs: reads, so more than
/// `limits.max_parallel` (which paces writes) when that is lower, and still bounded.
const READS_IN_FLIGHT: usize = 16;

/// The tasks of one job's run start together on every node; a task more than this many
/// seconds before the job's newest one belongs to an earlier run.
const RUN_WINDOW: i64 = 3600;

/// A task matched to a job, with what its log says.
type Seen = (String, TaskListItem, Arc<RunLog>);

/// What a run task's log says: the vzdump command it starts with and each guest's outcome,
/// kept as the few bytes per guest `backup_jobs` reads (the logs of a run at 10,000 guests stay
/// kept between calls).
pub struct RunLog {
    command: Option<log::Command>,
    /// The guests it backed up, ascending.
    backed_up: Box<[u32]>,
    /// The guests it failed, ascending, with vzdump's error.
    failed: Box<[(u32, Box<str>)]>,
}

impl RunLog {
    fn new(lines: &[String]) -> RunLog {
        let (mut backed_up, mut failed) = (Vec::new(), Vec::new());
        for (v, g) in log::guests(lines) {
            match g.error {
                Some(e) => failed.push((v, e.into_boxed_str())),
                None if g.finished => backed_up.push(v),
                None => {}
            }
        }
        RunLog {
            command: log::command(lines),
            backed_up: backed_up.into(),
            failed: failed.into(),
        }
    }
}

/// Finished tasks' logs kept.
const KEPT_LOGS: usize = 256;

/// The logs of finished run tasks, by UPID, the newest [`KEPT_LOGS`]: a finished task's log
/// does not change, so a later `backup_jobs` reads the task lists and only the logs of tasks it
/// has not seen finished (a run's log is a line per step of every guest it backed up).
#[derive(Default)]
pub struct RunLogs {
    entries: Mutex<VecDeque<(String, Arc<RunLog>)>>,
    /// The cluster answered that it does not know the log download (pve-manager before
    /// 7.3-5): logs are read as JSON lines from then on, without asking again.
    no_download: AtomicBool,
}

impl RunLogs {
    fn without_download(&self) -> bool {
        self.no_download.load(Ordering::Relaxed)
    }

    fn mark_without_download(&self) {
        self.no_download.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Arc<RunLog>)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, upid: &str) -> Option<Arc<RunLog>> {
        self.lock()
            .iter()
            .find(|(u, _)| u == upid)
            .map(|(_, r)| Arc::clone(r))
    }

    fn put(&self, upid: &str, run: &Arc<RunLog>) {
        let mut e = self.lock();
        if e.iter().any(|(u, _)| u == upid) {
            return;
        }
        if e.len() >= KEPT_LOGS {
            e.pop_front();
        }
        e.push_back((upid.to_string(), Arc::clone(run)));
    }
}

/// The log of run task `t`: kept from an earlier call when it had finished, else read.
async fn run_log(ctx: &Context, t: &TaskListItem) -> Option<Arc<RunLog>> {
    if let Some(run) = ctx.run_logs.get(&t.upid) {
        return Some(run);
    }
    let upid = t.upid.parse::<Upid>().ok()?;
    // Only the lines `log` reads are kept (a run's log is mostly progress). The log file
    // whole, gzipped, where PVE offers it (pve-manager 7.3-5 and later); else its lines as
    // JSON.
    let file = if ctx.run_logs.without_download() {
        None
    } else {
        ctx.client
            .read_task_log_file(&upid, log::LogScan::default())
            .await
            .ok()?
    };
    let lines = match file {
        Some(kept) => kept.0,
        None => {
            ctx.run_logs.mark_without_download();
            ctx.client
                .get_task_log_as::<log::KeptLines>(&upid, 0, 50_000)
                .await
                .ok()?
                .0
        }
    };
    let run = Arc::new(RunLog::new(&lines));
    if t.status.is_some() {
        ctx.run_logs.put(&t.upid, &run);
    }
    Some(run)
}

/// Whether the tasks not read yet (the newest of them started at `next`) can change no job's
/// last run: every job's newest run is known, and `next` is more than [`RUN_WINDOW`] before
/// the oldest of those newest tasks.
fn settled(jobs: &[crate::pve::BackupJob], seen: &[Seen], next: i64) -> bool {
    let mut oldest_newest = i64::MAX;
    for j in jobs {
        // `seen` is newest first: a job's first entry is its newest task.
        match seen.iter().find(|(id, _, _)| *id == j.id) {
            Some((_, t, _)) => oldest_newest = oldest_newest.min(t.starttime),
            None => return false,
        }
    }
    next < oldest_newest.saturating_sub(RUN_WINDOW)
}

/// The newest run of each job id found in the online nodes' vzdump tasks.
async fn last_runs(
    ctx: &Context,
    jobs: &[crate::pve::BackupJob],
    nodes: Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<(String, LastRun)> {
    // Each node's task list, then the logs: independent reads, kept in order.
    let parallel = READS_IN_FLIGHT.max(ctx.config.limits.max_parallel as usize);
    let lists: Vec<_> = stream::iter(nodes)
        .map(|node: String| async move {
            let filter = TaskFilter {
                typefilter: Some("vzdump".into()),
                limit: Some(50),
                ..TaskFilter::default()
            };
            let list = ctx.client.list_tasks(&node, filter).await;
            (node, list)
        })
        .buffered(parallel)
        .collect()
        .await;
    let mut tasks = Vec::new();
    for (node, list) in lists {
        match list {
            Ok(t) => tasks.extend(t),
            Err(e) => warnings.push(format!("vzdump tasks of {node} could not be read: {e}")),
        }
    }
    // Only root@pam's own tasks can be a job's run (not a token's: PVE splits a token off
    // into `tokenid`, or leaves it in `user` as `root@pam!name`).
    tasks.retain(|t| t.user == "root@pam" && t.tokenid.is_none());
    tasks.sort_by_key(|t| std::cmp::Reverse(t.starttime));
    // Logs newest first, an hour of tasks at a time (a run's tasks start together), until the
    // older tasks cannot matter. (job id, task, what its log says), newest first.
    let mut seen: Vec<Seen> = Vec::new();
    let mut tasks = tasks.into_iter().peekable();
    while let Some(next) = tasks.peek() {
        if settled(jobs, &seen, next.starttime) {
            break;
        }
        let from = next.starttime - RUN_WINDOW;
        let wave: Vec<TaskListItem> =
            std::iter::from_fn(|| tasks.next_if(|t| t.starttime >= from)).collect();
        let logs: Vec<_> = stream::iter(wave)
            .map(|t| async move {
                let run = run_log(ctx, &t).await;
                (t, run)
            })
            .buffered(parallel)
            .collect()
            .await;
        for (t, run) in logs {
            let Some(run) = run else {
                continue;
            };
            let Some(cmd) = &run.command else {
                continue;
            };
            let id = match &cmd.job_id {
                Some(id) => Some(id.clone()),
                None if cmd.quiet => jobs.iter().find(|j| matches(j, cmd)).map(|j| j.id.clone()),
                None => None,
            };
            if let Some(id) = id {
                seen.push((id, t, run));
            }
        }
    }
    let mut out: Vec<(String, LastRun)> = Vec::new();
    for (id, newest, _) in &seen {
        if out.iter().any(|(o, _)| o == id) {
            continue;
        }
        // The tasks of one run start together on every node; an hour apart is another run.
        let mut run: Vec<_> = seen
            .iter()
            .filter(|(i, t, _)| i == id && t.starttime >= newest.starttime - RUN_WINDOW)
            .collect();
        let statuses: Vec<String> = run
            .iter()
            .map(|(_, t, _)| t.status.clone().unwrap_or_else(|| "running".into()))
            .collect();
        let ok = statuses
            .iter()
            .all(|s| s == "OK" || s.starts_with("WARNINGS"));
        let mut failed_guests = Vec::new();
        let mut backed_up = Vec::new();
        for (_, _, log) in &run {
            failed_guests.extend(log.failed.iter().map(|(v, e)| format!("{v}: {e}")));
            backed_up.extend_from_slice(&log.backed_up);
        }
        backed_up.sort_unstable();
        let mut status: Vec<String> = statuses.clone();
        status.sort();
        status.dedup();
        let started = run.iter().map(|(_, t, _)| t.starttime).min().unwrap_or(0);
        let ended = run
            .iter()
            .map(|(_, t, _)| t.endtime)
            .collect::<Option<Vec<i64>>>()
            .and_then(|e| e.into_iter().max());
        // The tasks worth a look first (unfinished or failed), then by node.
        run.sort_by_key(|(_, t, _)| {
            let fine = t
                .status
                .as_deref()
                .is_some_and(|s| s == "OK" || s.starts_with("WARNINGS"));
            (fine, t.node.clone())
        });
        let (failed_total, backed_up_total) = (failed_guests.len(), backed_up.len());
        failed_guests.truncate(SHOWN);
        backed_up.truncate(SHOWN);
        out.push((
            id.clone(),
            LastRun {
                upids: run
                    .iter()
                    .take(SHOWN)
                    .map(|(_, t, _)| t.upid.clone())
                    .collect(),
                nodes: run
                    .iter()
                    .take(SHOWN)
                    .map(|(_, t, _)| t.node.clone())
                    .collect(),
                tasks_total: run.len() as u64,
                started,
                ended,
                status: status.join(", "),
                ok,
                failed_guests,
                failed_total: failed_total as u64,
                backed_up,
                backed_up_total: backed_up_total as u64,
            },
        ));
    }
    out
}

/// Whether a scheduled run's command is this job's: the same storage and selection.
fn matches(job: &crate::pve::BackupJob, cmd: &log::Command) -> bool {
    let mut ids: Vec<u32> = job
        .vmid
        .as_deref()
        .unwrap_or("")
        .split([',', ' ', ';'])
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let selection = if job.all == Some(true) {
        cmd.all
    } else if let Some(p) = &job.pool {
        cmd.pool.as_ref() == Some(p)
    } else {
        !ids.is_empty() && ids == cmd.vmids
    };
    selection && job.storage == cmd.storage
}

#[cfg(test)]
mod tests {
    use super::RunLog;

    #[test]
    fn a_run_log_keeps_each_guest_s_outcome_in_order() {
        let lines: Vec<String> = [
            "INFO: starting new backup job: vzdump --all 1 --storage nfs-shared --quiet 1",
            "INFO: Starting Backup of VM 1002 (qemu)",
            "INFO: Finished Backup of VM 1002 (00:00:09)",
            "INFO: Starting Backup of VM 1000 (qemu)",
            "INFO: Finished Backup of VM 1000 (00:00:42)",
            "INFO: Starting Backup of VM 1003 (lxc)",
            "ERROR: Backup of VM 1003 failed - unable to create temporary directory",
            "INFO: Starting Backup of VM 1001 (qemu)",
            "ERROR: Backup of VM 1001 failed - job failed with err -5 - Input/output error",
            // started, never finished nor failed (the task was stopped)
            "INFO: Starting Backup of VM 1004 (qemu)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let run = RunLog::new(&lines);
        assert_eq!(*run.backed_up, [1000, 1002]);
        let failed: Vec<(u32, &str)> = run.failed.iter().map(|(v, e)| (*v, &**e)).collect();
        assert_eq!(
            failed,
            [
                (1001, "job failed with err -5 - Input/output error"),
                (1003, "unable to create temporary directory")
            ]
        );
        let cmd = run.command.as_ref().expect("the vzdump command");
        assert!(cmd.all && cmd.quiet);
        assert_eq!(cmd.storage.as_deref(), Some("nfs-shared"));
    }
}

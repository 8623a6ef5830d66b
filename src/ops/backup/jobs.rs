//! `backup_jobs`: the cluster's scheduled backup jobs (schedule, next run, selection, storage,
//! enabled), the outcome of each job's last run — read from the vzdump tasks, which carry the
//! job's id in their first log line — and the guests no enabled job covers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::log;
use crate::ops::{Context, Error, is_node};
use crate::pve::{ResourceType, TaskFilter, Upid};

/// `backup_jobs` arguments (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupJobsArgs {}

/// How a job's last run went.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LastRun {
    pub upid: String,
    pub node: String,
    /// Unix times.
    pub started: i64,
    pub ended: Option<i64>,
    /// `OK`, `WARNINGS: N`, `job errors`..., or `running`.
    pub status: String,
    pub ok: bool,
    /// Guests whose backup failed in that run, with the reason.
    pub failed_guests: Vec<String>,
    /// Guests backed up in that run.
    pub backed_up: Vec<u32>,
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
    /// Guests no enabled job backs up: `vmid name`.
    pub not_covered: Vec<String>,
    pub warnings: Vec<String>,
}

/// The jobs, their last runs and the uncovered guests.
///
/// # Errors
/// When the job list cannot be read (it needs Sys.Audit on `/`).
pub async fn backup_jobs(ctx: &Context, _: &BackupJobsArgs) -> Result<BackupJobsReport, Error> {
    let (jobs, _) = ctx.client.list_backup_jobs().await?;
    let mut warnings = Vec::new();
    let runs = last_runs(ctx, &mut warnings).await;
    let not_covered = match ctx.client.not_backed_up().await {
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
    Ok(BackupJobsReport {
        jobs: out,
        not_covered,
        warnings,
    })
}

/// The newest run of each job id found in the online nodes' vzdump tasks.
async fn last_runs(ctx: &Context, warnings: &mut Vec<String>) -> Vec<(String, LastRun)> {
    let nodes: Vec<String> = match ctx
        .client
        .get_cluster_resources(Some(ResourceType::Node))
        .await
    {
        Ok(rows) => rows
            .iter()
            .filter(|r| is_node(r) && r.status.as_deref() == Some("online"))
            .filter_map(|r| r.node.clone())
            .collect(),
        Err(e) => {
            warnings.push(format!("nodes could not be listed: {e}"));
            return vec![];
        }
    };
    let mut tasks = Vec::new();
    for node in &nodes {
        let filter = TaskFilter {
            typefilter: Some("vzdump".into()),
            limit: Some(50),
            ..TaskFilter::default()
        };
        match ctx.client.list_tasks(node, filter).await {
            Ok(t) => tasks.extend(t),
            Err(e) => warnings.push(format!("vzdump tasks of {node} could not be read: {e}")),
        }
    }
    tasks.sort_by_key(|t| std::cmp::Reverse(t.starttime));
    let mut out: Vec<(String, LastRun)> = Vec::new();
    for t in tasks {
        let Ok(upid) = t.upid.parse::<Upid>() else {
            continue;
        };
        let Ok(lines) = ctx.client.get_task_log(&upid, 0, 50_000).await else {
            continue;
        };
        let lines: Vec<String> = lines.into_iter().map(|l| l.t).collect();
        let Some(id) = log::job_id(&lines) else {
            continue;
        };
        if out.iter().any(|(seen, _)| *seen == id) {
            continue;
        }
        let guests = log::guests(&lines);
        let status = t.status.clone().unwrap_or_else(|| "running".into());
        out.push((
            id,
            LastRun {
                upid: t.upid.clone(),
                node: t.node.clone(),
                started: t.starttime,
                ended: t.endtime,
                ok: status == "OK" || status.starts_with("WARNINGS"),
                status,
                failed_guests: guests
                    .iter()
                    .filter_map(|(v, g)| g.error.as_ref().map(|e| format!("{v}: {e}")))
                    .collect(),
                backed_up: guests
                    .iter()
                    .filter(|(_, g)| g.finished && g.error.is_none())
                    .map(|(v, _)| *v)
                    .collect(),
            },
        ));
    }
    out
}

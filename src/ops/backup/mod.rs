//! Backups: take one now (`backup_now`), list the archives (`backup_list`), the scheduled
//! jobs with their last run (`backup_jobs`), restore an archive (`backup_restore`).

mod jobs;
mod log;
mod restore;

pub use jobs::{BackupJobsArgs, BackupJobsReport, JobSummary, LastRun, RunLogs, backup_jobs};
pub use restore::{BackupRestoreArgs, BackupRestoreReport, backup_restore};

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ops::{Context, Error, Run, is_guest, is_storage};
use crate::pve::{self, ClusterResource, ResourceType};

/// `backup_now` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupNowArgs {
    #[schemars(length(min = 1, max = 100), inner(range(min = 100, max = 999_999_999)))]
    pub vmids: Vec<u32>,
    /// Default: the first shared backup storage, else the node's.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_STORAGE))]
    pub storage: Option<String>,
    /// Default `snapshot` (guest keeps running); `stop` stops and restarts it.
    #[serde(default)]
    pub mode: Option<BackupMode>,
    /// Default `zstd`.
    #[serde(default)]
    pub compress: Option<Compress>,
    /// Fills in `{{guestname}}`, `{{vmid}}`, `{{node}}`, `{{cluster}}`.
    #[serde(default)]
    #[schemars(length(max = 1024), regex(pattern = crate::ops::validate::SCHEMA_LINE))]
    pub notes: Option<String>,
    /// Protect from pruning and deletion.
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    Snapshot,
    Suspend,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    Zstd,
    Lzo,
    Gzip,
    None,
}

/// One guest's backup.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GuestBackup {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub ok: bool,
    /// The archive, when it was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volid: Option<String>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub upid: Option<String>,
}

/// `backup_now` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupNowReport {
    pub storage: String,
    pub guests: Vec<GuestBackup>,
    pub message: String,
}

/// Backs the guests up now: one vzdump task per node holding some of them, each waited for;
/// every guest's archive or failure read from its task's log.
///
/// # Errors
/// Unknown guests, guests outside the ranges, a storage that holds no backups — before
/// anything is sent. A job that fails for some guests is a result, not an error.
pub async fn backup_now(
    ctx: &Context,
    run: &Run,
    a: &BackupNowArgs,
) -> Result<BackupNowReport, Error> {
    let rows = ctx.client.get_cluster_resources(None).await?;
    let mut by_node: BTreeMap<String, Vec<&ClusterResource>> = BTreeMap::new();
    let mut vmids = a.vmids.clone();
    vmids.sort_unstable();
    vmids.dedup();
    for vmid in &vmids {
        crate::ops::guard::check_range(ctx, *vmid, a.allow_outside_ranges)?;
        let row = rows
            .iter()
            .find(|r| is_guest(r) && r.vmid == Some(*vmid))
            .ok_or(Error::Pve(pve::Error::VmNotFound { vmid: *vmid }))?;
        by_node
            .entry(row.node.clone().unwrap_or_default())
            .or_default()
            .push(row);
    }
    let storage = match &a.storage {
        Some(s) => {
            for node in by_node.keys() {
                backup_storage_on(&rows, node, s)?;
            }
            s.clone()
        }
        None => default_storage(&rows, by_node.keys())?,
    };
    let mut params: Vec<(&str, String)> = vec![
        ("storage", storage.clone()),
        (
            "mode",
            match a.mode.unwrap_or(BackupMode::Snapshot) {
                BackupMode::Snapshot => "snapshot",
                BackupMode::Suspend => "suspend",
                BackupMode::Stop => "stop",
            }
            .into(),
        ),
        (
            "compress",
            match a.compress.unwrap_or(Compress::Zstd) {
                Compress::Zstd => "zstd",
                Compress::Lzo => "lzo",
                Compress::Gzip => "gzip",
                Compress::None => "0",
            }
            .into(),
        ),
    ];
    if let Some(n) = &a.notes {
        params.push(("notes-template", n.clone()));
    }
    if a.protected {
        params.push(("protected", "1".into()));
    }
    let mut guests = Vec::new();
    for (node, rows) in &by_node {
        let ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.vmid)
            .map(|v| v.to_string())
            .collect();
        let mut p = params.clone();
        p.push(("vmid", ids.join(",")));
        let what = format!("backup of {} on {node}", ids.join(", "));
        run.note(format!("{what} to {storage}"));
        let upid = ctx.client.vzdump(node, &p).await?;
        let mut lines = Vec::new();
        let mut job_error = None;
        if let Some(upid) = &upid {
            if let Err(e) = run.wait(ctx, upid, &what).await {
                match e {
                    // `job errors`: some guests failed; the log says which.
                    Error::Pve(pve::Error::TaskFailed { .. }) => job_error = Some(e.to_string()),
                    other => return Err(other),
                }
            }
            lines = ctx
                .client
                .get_task_log(upid, 0, 50_000)
                .await
                .map(|l| l.into_iter().map(|l| l.t).collect())
                .unwrap_or_default();
        }
        let per_guest = log::guests(&lines);
        let archives = backups_of(ctx, node, &storage).await;
        for r in rows {
            let vmid = r.vmid.unwrap_or(0);
            let g = per_guest.get(&vmid).cloned().unwrap_or_default();
            let volid = g.archive.as_ref().map(|f| format!("{storage}:backup/{f}"));
            let size = volid
                .as_ref()
                .and_then(|v| archives.iter().find(|i| &i.volid == v))
                .and_then(|i| i.size);
            let ok = g.finished && g.error.is_none() && volid.is_some();
            let error = if ok {
                None
            } else {
                Some(g.error.clone().unwrap_or_else(|| {
                    job_error.clone().unwrap_or_else(|| {
                        "the task log does not show this guest's backup finishing".into()
                    })
                }))
            };
            guests.push(GuestBackup {
                vmid,
                name: r.name.clone().unwrap_or_default(),
                node: node.clone(),
                ok,
                volid: if ok { volid } else { None },
                size: if ok { size } else { None },
                error,
                upid: upid.as_ref().map(|u| u.to_string()),
            });
        }
    }
    let failed: Vec<String> = guests
        .iter()
        .filter(|g| !g.ok)
        .map(|g| g.vmid.to_string())
        .collect();
    let message = if failed.is_empty() {
        format!("{} guest(s) backed up to {storage}", guests.len())
    } else {
        format!(
            "{} of {} guest(s) backed up to {storage}; failed: {} (see each guest's error and task_log)",
            guests.len() - failed.len(),
            guests.len(),
            failed.join(", ")
        )
    };
    Ok(BackupNowReport {
        storage,
        guests,
        message,
    })
}

async fn backups_of(ctx: &Context, node: &str, storage: &str) -> Vec<pve::StorageContentItem> {
    ctx.client
        .list_storage_content(node, storage, Some("backup"))
        .await
        .unwrap_or_default()
}

fn holds_backups(r: &ClusterResource) -> bool {
    r.content
        .as_deref()
        .unwrap_or("")
        .split(',')
        .any(|c| c.trim() == "backup")
        && r.status.as_deref() == Some("available")
}

fn backup_storage_on(rows: &[ClusterResource], node: &str, storage: &str) -> Result<(), Error> {
    let found = rows.iter().find(|r| {
        is_storage(r) && r.node.as_deref() == Some(node) && r.storage.as_deref() == Some(storage)
    });
    match found {
        Some(r) if holds_backups(r) => Ok(()),
        Some(_) => Err(Error::invalid(
            "storage",
            format!(
                "{storage} on {node} does not hold backups (content 'backup'), or is not available"
            ),
        )),
        None => Err(Error::invalid(
            "storage",
            format!(
                "{} does not exist on {node}",
                crate::ops::error::quote(storage)
            ),
        )),
    }
}

/// The first shared backup storage every node sees, else the first backup storage of the one
/// node involved.
fn default_storage<'a>(
    rows: &[ClusterResource],
    nodes: impl Iterator<Item = &'a String> + Clone,
) -> Result<String, Error> {
    let mut candidates: Vec<(bool, String)> = rows
        .iter()
        .filter(|r| is_storage(r) && holds_backups(r))
        .filter_map(|r| Some((r.shared != Some(true), r.storage.clone()?)))
        .collect();
    candidates.sort();
    candidates.dedup();
    candidates
        .into_iter()
        .map(|(_, s)| s)
        .find(|s| nodes.clone().all(|n| backup_storage_on(rows, n, s).is_ok()))
        .ok_or_else(|| {
            Error::invalid(
                "storage",
                "no storage that holds backups is available on every node of these guests; name one with storage",
            )
        })
}

/// `backup_list` arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupListArgs {
    #[serde(default)]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_STORAGE))]
    pub storage: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 9999))]
    pub page: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub page_size: Option<u32>,
}

/// Archives per `backup_list` page unless asked otherwise.
pub const ARCHIVES_PAGE: u32 = 15;

/// One archive.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Archive {
    pub volid: String,
    pub vmid: Option<u32>,
    pub storage: String,
    /// The node it was listed from (any node for a shared storage).
    pub node: String,
    pub shared: bool,
    /// Unix time it was written.
    pub time: Option<i64>,
    pub size: Option<u64>,
    pub notes: Option<String>,
    pub protected: bool,
    /// `ok` or `failed` when it was verified (PBS), else absent.
    pub verified: Option<String>,
}

/// `backup_list` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackupListReport {
    /// One page, newest first.
    pub archives: Vec<Archive>,
    /// Archives over all pages.
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
    /// Bytes, over all pages.
    pub total_size: u64,
    pub warnings: Vec<String>,
}

/// Lists the archives on every backup storage (a shared one once).
///
/// # Errors
/// PVE unreachable; an unlistable storage is a warning.
pub async fn backup_list(ctx: &Context, a: &BackupListArgs) -> Result<BackupListReport, Error> {
    use futures::{StreamExt, stream};
    let page = crate::ops::paging::Page::new(a.page, a.page_size, ARCHIVES_PAGE, 200)?;
    let rows = ctx
        .client
        .get_cluster_resources(Some(ResourceType::Storage))
        .await?;
    let mut seen = std::collections::BTreeSet::new();
    let mut to_list = Vec::new();
    for r in rows.iter().filter(|r| holds_backups(r)) {
        let (Some(node), Some(storage)) = (r.node.clone(), r.storage.clone()) else {
            continue;
        };
        let shared = r.shared == Some(true);
        if a.storage.as_ref().is_some_and(|s| *s != storage)
            || (shared && !seen.insert(storage.clone()))
        {
            continue;
        }
        to_list.push((node, storage, shared));
    }
    // One listing per storage (a shared one once), up to `limits.max_parallel` at a time;
    // each is folded into the page as it arrives, so a cluster's archives are never all held.
    let mut listings = stream::iter(to_list)
        .map(|(node, storage, shared)| async move {
            let items = ctx
                .client
                .list_storage_content(&node, &storage, Some("backup"))
                .await;
            (node, storage, shared, items)
        })
        .buffer_unordered(ctx.config.limits.max_parallel.max(1) as usize);
    let mut window = crate::ops::paging::Window::new(page);
    let mut total_size = 0;
    let mut warnings = Vec::new();
    while let Some((node, storage, shared, items)) = listings.next().await {
        let items = match items {
            Ok(i) => i,
            Err(e) => {
                warnings.push(format!("{storage} on {node} could not be listed: {e}"));
                continue;
            }
        };
        for i in items {
            if a.vmid.is_some_and(|v| i.vmid != Some(v)) {
                continue;
            }
            total_size += i.size.unwrap_or(0);
            // newest first, then by volid (unique per storage; a storage is listed once)
            let key = (
                std::cmp::Reverse(i.ctime),
                std::cmp::Reverse(i.volid.clone()),
            );
            window.push_with(key, || Archive {
                vmid: i.vmid,
                storage: storage.clone(),
                node: node.clone(),
                shared,
                time: i.ctime,
                size: i.size,
                notes: i.notes,
                protected: i.protected.unwrap_or(false),
                verified: i
                    .verification
                    .as_ref()
                    .and_then(|v| v.get("state"))
                    .and_then(|s| s.as_str())
                    .map(str::to_owned),
                volid: i.volid,
            });
        }
    }
    warnings.sort();
    let (archives, total, next_page) = window.finish();
    Ok(BackupListReport {
        archives,
        total,
        next_page,
        total_size,
        warnings,
    })
}

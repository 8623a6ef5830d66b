//! Carrying out one planned move: the request, the task (with the transfer as progress), the
//! HA manager's part for HA-managed guests, and the check that the guest really is on the
//! target afterwards. Used by `vm_migrate` and by every step of `node_evacuate`.

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::progress::{parse_transfer, render_bytes};
use crate::ops::plan::{GuestKind, Move, MoveMode};
use crate::ops::run::LineFormat;
use crate::ops::{Context, Error, Run};
use crate::pve::{MigrateLxc, MigrateQemu};

/// Per-call options of a move that the plan does not carry.
#[derive(Debug, Clone, Default)]
pub struct MoveOptions {
    /// KiB/s; `None` = the datacenter's or storage's migration limit.
    pub bwlimit_kib: Option<u64>,
}

/// A move that happened and was verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MoveDone {
    pub vmid: u32,
    pub name: String,
    pub from: String,
    pub to: String,
    pub mode: MoveMode,
    /// Moved by PVE's HA manager (the request only queued a `hamigrate`).
    pub ha_managed: bool,
    /// The migration task (`qmigrate`, `vzmigrate` for a container), or the HA request
    /// (`hamigrate`).
    pub upid: String,
    /// `OK` or `WARNINGS: N`.
    pub exitstatus: String,
    /// Wall time from the request to the verified node, seconds.
    pub seconds: f64,
    /// The node `/cluster/resources` reports afterwards (always `to`).
    pub verified_node: String,
    /// Whether it runs on the target (read back).
    pub running: bool,
}

/// The request PVE gets for `m` when it is a QEMU VM.
pub fn request(m: &Move, opts: &MoveOptions) -> MigrateQemu {
    let online = m.mode == MoveMode::Online;
    MigrateQemu {
        target: m.to.clone(),
        online: online.then_some(true),
        with_local_disks: (online && !m.local_disks.is_empty()).then_some(true),
        targetstorage: target_storage(m),
        bwlimit: opts.bwlimit_kib,
    }
}

/// The request PVE gets for `m` when it is a container: `restart` for a running one.
pub fn request_lxc(m: &Move, opts: &MoveOptions) -> MigrateLxc {
    MigrateLxc {
        target: m.to.clone(),
        restart: (m.mode == MoveMode::Restart).then_some(true),
        target_storage: target_storage(m),
        bwlimit: opts.bwlimit_kib,
    }
}

/// The storage mapping for local disks, `None` when every disk keeps its storage id.
fn target_storage(m: &Move) -> Option<String> {
    // PVE maps each local disk to a storage of the same id unless told otherwise; only a
    // different target storage needs a mapping (one id when all go to one storage).
    let pairs: Vec<String> = m
        .local_disks
        .iter()
        .filter(|d| d.from_storage != d.to_storage)
        .map(|d| format!("{}:{}", d.from_storage, d.to_storage))
        .collect();
    if pairs.is_empty() {
        None
    } else {
        let mut all: Vec<&str> = m
            .local_disks
            .iter()
            .map(|d| d.to_storage.as_str())
            .collect();
        all.dedup();
        Some(if all.len() == 1 {
            all[0].to_string()
        } else {
            let mut p = pairs;
            p.sort();
            p.dedup();
            p.join(",")
        })
    }
}

/// The progress of a migration from its log lines: "37% (1.5 GiB of 4.0 GiB VM-state)".
fn transfer_format(total: u64) -> LineFormat {
    Arc::new(move |line: &str| {
        let t = parse_transfer(line)?;
        let total = t.total.unwrap_or(total);
        let pct = t.percent(total)?;
        Some(format!(
            "{pct:.0}% ({} of {} {})",
            render_bytes(t.done),
            render_bytes(total),
            t.what
        ))
    })
}

/// Migrates `m.vmid` from `m.from` to `m.to` and verifies where it ended up.
///
/// # Errors
/// PVE's early refusal or the task's failure, a lock past the deadline, the HA manager not
/// moving the guest before the task deadline, cancellation — each naming the guest and where
/// it is now (read back after the failure), and the UPID when a task may still be running.
pub async fn execute(
    ctx: &Context,
    run: &Run,
    m: &Move,
    opts: &MoveOptions,
) -> Result<MoveDone, Error> {
    let started = Instant::now();
    let label = format!("{} {} {} → {}", m.vmid, m.name, m.from, m.to);
    let result = run
        .task_locked_with(
            ctx,
            &format!("vm {} on {}", m.vmid, m.from),
            &label,
            Some(transfer_format(m.transfer_bytes)),
            || async {
                Ok(Some(match m.kind {
                    GuestKind::Qemu => {
                        let req = request(m, opts);
                        ctx.client.migrate_qemu(&m.from, m.vmid, &req).await?
                    }
                    GuestKind::Lxc => {
                        let req = request_lxc(m, opts);
                        ctx.client.migrate_lxc(&m.from, m.vmid, &req).await?
                    }
                }))
            },
        )
        .await;
    let (upid, outcome) = match result {
        Ok(Some(done)) => done,
        Ok(None) => {
            return Err(Error::Refused {
                reason: format!(
                    "vm {}: PVE started no migration task; nothing was moved",
                    m.vmid
                ),
            });
        }
        Err(e) => return Err(failed(ctx, m, e).await),
    };
    if upid.task_type() == "hamigrate" {
        run.note(format!(
            "{label}: HA manager asked to move it (task {upid}); waiting until it runs on {}",
            m.to
        ));
        if let Err(e) = wait_for_ha(ctx, run, m).await {
            return Err(failed(ctx, m, e).await);
        }
    }
    let row = ctx.client.find_vm_listed(m.vmid).await?;
    let node = row.node.clone().unwrap_or_default();
    if node != m.to {
        return Err(Error::Refused {
            reason: format!(
                "vm {} ({}): the migration task {upid} ended {} but the guest is on {node}, not {}; check the task log (task_log) before trying again",
                m.vmid, m.name, outcome.exitstatus, m.to
            ),
        });
    }
    Ok(MoveDone {
        vmid: m.vmid,
        name: m.name.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        mode: m.mode,
        ha_managed: upid.task_type() == "hamigrate",
        upid: upid.to_string(),
        exitstatus: outcome.exitstatus,
        seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        verified_node: node,
        running: row.status.as_deref() == Some("running"),
    })
}

/// Polls `/cluster/resources` until the HA manager has put the guest on the target, with the
/// task deadline.
async fn wait_for_ha(ctx: &Context, run: &Run, m: &Move) -> Result<(), Error> {
    let t = ctx.timeouts;
    let deadline = Instant::now() + t.task;
    let mut delay = t.poll;
    let mut last_state = String::new();
    loop {
        let row = ctx.client.find_vm_listed(m.vmid).await?;
        let node = row.node.clone().unwrap_or_default();
        let state = row.hastate.clone().unwrap_or_default();
        let settled = !matches!(state.as_str(), "migrate" | "relocate" | "request_start");
        if node == m.to && settled {
            return Ok(());
        }
        if state != last_state {
            run.note(format!(
                "{} {}: HA state {state:?} on {node}",
                m.vmid, m.name
            ));
            last_state = state.clone();
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Refused {
                reason: format!(
                    "vm {} ({}): the HA manager has not moved it to {} within {:.0} s (it is on {node}, HA state {state:?}); look at `ha-manager status` on a node, then run the move again",
                    m.vmid,
                    m.name,
                    m.to,
                    t.task.as_secs_f64()
                ),
            });
        }
        tokio::select! {
            _ = run.cancel.cancelled() => {
                return Err(Error::Cancelled {
                    what: format!(
                        "the HA manager to move vm {} to {} (the request stands: HA may still move it)",
                        m.vmid, m.to
                    ),
                });
            }
            _ = tokio::time::sleep(delay.min(deadline - now)) => {}
        }
        delay = (delay * 2).min(t.poll_max.max(Duration::from_millis(100)));
    }
}

/// `e`, prefixed with the guest and where it is now, so a failure always says what exists.
async fn failed(ctx: &Context, m: &Move, e: Error) -> Error {
    let now = match ctx.client.find_vm_listed(m.vmid).await {
        Ok(row) => {
            let node = row.node.unwrap_or_default();
            let lock = row
                .lock
                .filter(|l| !l.is_empty())
                .map(|l| format!(", locked ({l})"))
                .unwrap_or_default();
            format!("it is on {node}{lock}")
        }
        Err(read) => format!("where it is now could not be read ({read})"),
    };
    Error::Partial {
        done: format!("vm {} ({}) {} → {}: {now}", m.vmid, m.name, m.from, m.to),
        step: "the migration".into(),
        source: Box::new(e),
        next: "read the task log (task_log) and run the move again when the cause is fixed".into(),
    }
}

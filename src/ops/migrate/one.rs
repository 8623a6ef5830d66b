//! `vm_migrate` of a VM or a container: the assessment of `vm_migrate_check`, refused in words when the move is not
//! possible, else the move executed and verified.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::check::{Wishes, assess};
use super::execute::{MoveDone, MoveOptions, execute};
use crate::ops::guard::check_range;
use crate::ops::plan::DiskMove;
use crate::ops::{Context, Error, Run};

/// `vm_migrate` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmMigrateArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub target: String,
    /// Default: when running; `false` for a running VM is refused.
    #[serde(default)]
    pub online: Option<bool>,
    /// Default: when it has any.
    #[serde(default)]
    pub with_local_disks: Option<bool>,
    /// For local disks; default the same-named storage.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_STORAGE))]
    pub target_storage: Option<String>,
    /// KiB/s; default the datacenter's.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub bwlimit_kib: Option<u64>,
    /// Move it despite the `placement.pin_tag` tag.
    #[serde(default)]
    pub allow_pinned: bool,
    #[serde(default)]
    pub allow_outside_ranges: bool,
}

/// `vm_migrate` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct VmMigrateReport {
    #[serde(flatten)]
    pub done: MoveDone,
    /// Local disks copied, each with its target storage.
    pub local_disks: Vec<DiskMove>,
    pub transfer_bytes: u64,
    pub message: String,
    pub notes: Vec<String>,
}

/// Migrates one VM.
///
/// # Errors
/// Refused before anything is sent (with every reason) when the move is not possible;
/// otherwise as [`execute`].
pub async fn vm_migrate(
    ctx: &Context,
    run: &Run,
    args: &VmMigrateArgs,
) -> Result<VmMigrateReport, Error> {
    check_range(ctx, args.vmid, args.allow_outside_ranges)?;
    let wishes = Wishes {
        target_storage: args.target_storage.as_deref(),
        online: args.online,
        with_local_disks: args.with_local_disks,
        allow_pinned: args.allow_pinned,
    };
    let a = assess(ctx, args.vmid, &args.target, &wishes).await?;
    let Some(planned) = a.planned else {
        let mut why = a.report.reasons.join("; ");
        if let Some(t) = &a.report.suggested_target {
            why += &format!(" — {t} could take it");
        }
        return Err(Error::refused(format!(
            "{} {} ({}) cannot move from {} to {} now: {why}; nothing was sent",
            word(&a.report.guest_type),
            a.report.vmid,
            a.report.name,
            a.report.from,
            args.target
        )));
    };
    run.note(format!(
        "{} {}: {} migration {} → {}{}",
        planned.vmid,
        planned.name,
        mode_word(&planned),
        planned.from,
        planned.to,
        if planned.local_disks.is_empty() {
            String::new()
        } else {
            format!(" with {} local disk(s)", planned.local_disks.len())
        }
    ));
    let opts = MoveOptions {
        bwlimit_kib: args.bwlimit_kib,
    };
    let done = execute(ctx, run, &planned, &opts).await?;
    let message = format!(
        "{} {} ({}) now runs on {} ({} migration in {:.1} s{}); verified in /cluster/resources",
        word(&a.report.guest_type),
        done.vmid,
        done.name,
        done.verified_node,
        if done.ha_managed {
            "HA"
        } else {
            mode_word(&planned)
        },
        done.seconds,
        if done.running { "" } else { ", stopped" }
    );
    Ok(VmMigrateReport {
        done,
        local_disks: planned.local_disks,
        transfer_bytes: planned.transfer_bytes,
        message,
        notes: a.report.notes,
    })
}

fn word(guest_type: &str) -> &'static str {
    if guest_type == "lxc" {
        "container"
    } else {
        "vm"
    }
}

fn mode_word(m: &crate::ops::plan::Move) -> &'static str {
    match m.mode {
        crate::ops::plan::MoveMode::Online => "live",
        crate::ops::plan::MoveMode::Restart => "restart",
        crate::ops::plan::MoveMode::Offline => "offline",
    }
}

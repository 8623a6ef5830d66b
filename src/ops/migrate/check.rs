//! `vm_migrate_check`, and the same assessment `vm_migrate` makes before it sends anything:
//! PVE's own preconditions (`GET .../migrate`) and ours (capacity at the configured ratios,
//! storage for local disks, HA restrictions, the pin tag), each reason in words.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{known_node, known_storage, ratios, read_snapshot};
use crate::ops::plan::{
    self, Allocation, ClusterSnapshot, DiskMove, Move, MoveMode, MoveRefusal, MoveRequest,
};
use crate::ops::{Context, Error, GIB};
use crate::pve::MigratePrecondition;

/// `vm_migrate_check` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateCheckArgs {
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub target: String,
    /// For local disks; default the same-named storage.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_STORAGE))]
    pub target_storage: Option<String>,
}

/// PVE's answer to `GET .../migrate`, as far as it matters to the decision.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct PveVerdict {
    /// Nodes PVE allows (not given by every version).
    pub allowed_nodes: Option<Vec<String>>,
    /// Node → PVE's reason (e.g. `unavailable_storages`).
    pub not_allowed_nodes: std::collections::BTreeMap<String, serde_json::Value>,
    /// Devices that tie the VM to its node (`hostpci0`, `usb0`).
    pub local_resources: Vec<String>,
    /// Mapped devices: movable when the target has the same mapping.
    pub mapped_resources: Vec<String>,
    /// Local disks PVE sees, by volume id.
    pub local_disks: Vec<String>,
}

/// `vm_migrate_check` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MigrateCheckReport {
    pub vmid: u32,
    pub name: String,
    pub from: String,
    pub target: String,
    pub running: bool,
    /// Whether `vm_migrate` would go ahead now.
    pub can_migrate: bool,
    /// `qemu` (a VM) or `lxc` (a container).
    #[serde(rename = "type")]
    pub guest_type: String,
    /// `online` (live) for a running VM, `restart` for a running container (shut down, moved,
    /// started again: never live), `offline` for a stopped guest or a template.
    pub mode: Option<MoveMode>,
    /// Local disks are copied along (always for an offline move; a live move needs
    /// `with-local-disks`, which vm_migrate sets).
    pub with_local_disks: bool,
    /// Each local disk and the target storage it would go to.
    pub local_disks: Vec<DiskMove>,
    /// Bytes sent: local disks, plus memory for a live migration.
    pub transfer_bytes: u64,
    /// At the configured migration bandwidth.
    pub estimated_seconds: Option<u64>,
    pub ha_managed: bool,
    /// The HA manager's state for it (`started`, `stopped`, `error`, `migrate`, `ignored`,
    /// ...), as PVE reports it; what it means for the move is in `notes` or `reasons`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha_state: Option<String>,
    /// Nodes its HA group or affinity rule allows (none = any node).
    pub ha_allowed_nodes: Option<Vec<String>>,
    /// Why it cannot go now (empty when it can).
    pub reasons: Vec<String>,
    /// Worth knowing, not blocking (a lock vm_migrate would wait for, mapped devices...).
    pub notes: Vec<String>,
    /// The target's load once the VM is there, under the configured ratios.
    pub target_after: Option<Allocation>,
    /// When it cannot go to `target`: the node the planner would choose instead.
    pub suggested_target: Option<String>,
    pub pve: PveVerdict,
}

/// How `vm_migrate` would move a VM, or every reason it would not.
pub(crate) struct Assessment {
    pub report: MigrateCheckReport,
    /// The move to execute, when `report.can_migrate`.
    pub planned: Option<Move>,
}

/// What the caller asked, beyond `vmid` and `target`.
#[derive(Default)]
pub(crate) struct Wishes<'a> {
    pub target_storage: Option<&'a str>,
    pub online: Option<bool>,
    pub with_local_disks: Option<bool>,
    pub allow_pinned: bool,
}

/// Checks whether `vmid` can move to `target` now.
///
/// # Errors
/// An unknown VM, target node or storage, or PVE unreachable; everything else is a reason in
/// the report.
pub async fn vm_migrate_check(
    ctx: &Context,
    args: &MigrateCheckArgs,
) -> Result<MigrateCheckReport, Error> {
    let wishes = Wishes {
        target_storage: args.target_storage.as_deref(),
        ..Wishes::default()
    };
    Ok(assess(ctx, args.vmid, &args.target, &wishes).await?.report)
}

pub(crate) async fn assess(
    ctx: &Context,
    vmid: u32,
    target: &str,
    wishes: &Wishes<'_>,
) -> Result<Assessment, Error> {
    let (mut snap, warnings) = read_snapshot(ctx, &[]).await?;
    known_node(&snap, "target", target)?;
    let Some(guest) = snap.guest(vmid).cloned() else {
        return Err(Error::Pve(crate::pve::Error::VmNotFound { vmid }));
    };
    if let Some(storage) = wishes.target_storage {
        known_storage(&snap, "target_storage", target, storage)?;
    }
    let mut reasons = Vec::new();
    let mut notes = warnings;
    let container = guest.kind == plan::GuestKind::Lxc;
    if let Err(e) = snap.read_guest_config(ctx, vmid).await {
        reasons.push(format!(
            "its config could not be read ({e}); moving it without knowing its disks could strand one"
        ));
    }
    let running = guest.is_running();
    // PVE 9's container precondition reports only HA affinity (PVE 8 has none); the
    // planner reads a container's mount points itself.
    let pve = if guest.node == target || container {
        None
    } else {
        match ctx
            .client
            .get_migrate_precondition(&guest.node, vmid, Some(target))
            .await
        {
            Ok((p, _)) => Some(p),
            Err(e) => {
                notes.push(format!(
                    "PVE's migration preconditions could not be read: {e}"
                ));
                None
            }
        }
    };
    let verdict = pve.as_ref().map(pve_verdict).unwrap_or_default();
    pve_reasons(&verdict, target, &guest.node, &mut reasons, &mut notes);
    if container {
        container_wishes(wishes, running, &mut reasons, &mut notes);
    } else {
        wish_reasons(wishes, running, &snap, vmid, &mut reasons, &mut notes);
    }
    // A lock is waited out by vm_migrate (up to the lock deadline), so it does not block
    // the verdict; the planner sees the guest unlocked and the note says what will happen.
    if let Some(lock) = &guest.lock {
        notes.push(format!(
            "locked ({lock}): vm_migrate waits up to {:.0} s for the lock to clear",
            ctx.timeouts.lock.as_secs_f64()
        ));
        if let Some(g) = snap.guests.iter_mut().find(|g| g.vmid == vmid) {
            g.lock = None;
        }
    }
    if let Some(state) = &guest.ha_state {
        match ha_meaning(vmid, state) {
            HaMeaning::Blocks(why) => reasons.push(why),
            HaMeaning::Note(what) => notes.push(what),
        }
        // Said above in full: the planner's own HA refusal would repeat it.
        if let Some(g) = snap.guests.iter_mut().find(|g| g.vmid == vmid) {
            g.ha_state = None;
        }
    }
    let placement = &ctx.config.placement;
    let req = MoveRequest {
        ratios: ratios(placement),
        pin_tag: Some(placement.pin_tag.clone()),
        target_storage: wishes.target_storage.map(str::to_owned),
        bandwidth: Some(placement.migration_bandwidth),
        ignore_pin: wishes.allow_pinned,
    };
    let checked = plan::check_move(&snap, vmid, target, &req);
    let planned = match &checked {
        Ok(m) => Some(m.clone()),
        Err(refusal) => {
            reasons.push(refusal_text(refusal, &placement.pin_tag));
            None
        }
    };
    let suggested_target = if planned.is_none() || !reasons.is_empty() {
        plan::best_target(&snap, vmid, &req)
            .ok()
            .map(|m| m.to)
            .filter(|t| t != target)
    } else {
        None
    };
    let target_after = planned.as_ref().and_then(|m| {
        let after = plan::apply_moves(&snap, std::slice::from_ref(m));
        plan::allocations(&after, req.ratios)
            .into_iter()
            .find(|a| a.node == target)
    });
    let can_migrate = reasons.is_empty() && planned.is_some();
    let m = planned.as_ref();
    let report = MigrateCheckReport {
        vmid,
        name: guest.name.clone(),
        from: guest.node.clone(),
        target: target.to_string(),
        running,
        can_migrate,
        guest_type: if container { "lxc" } else { "qemu" }.into(),
        mode: m.map(|m| m.mode),
        with_local_disks: m.is_some_and(|m| !m.local_disks.is_empty()),
        local_disks: m.map(|m| m.local_disks.clone()).unwrap_or_default(),
        transfer_bytes: m.map_or(0, |m| m.transfer_bytes),
        estimated_seconds: m.and_then(|m| m.estimated_seconds),
        ha_managed: guest.ha_managed,
        ha_state: guest.ha_state.clone(),
        ha_allowed_nodes: guest.allowed_nodes.clone(),
        reasons,
        notes,
        target_after,
        suggested_target,
        pve: verdict,
    };
    Ok(Assessment {
        report,
        planned: planned.filter(|_| can_migrate),
    })
}

/// What an HA state means for a move: blocking, or worth knowing.
#[derive(Debug, PartialEq)]
enum HaMeaning {
    Blocks(String),
    Note(String),
}

/// The HA manager's service state (`hastate`), in words for the move. Only `started` (live)
/// and `stopped`/`disabled` (offline) services are moved by the CRM on request; in `error` it
/// ignores every command until the state is cleared, and while it is fencing, recovering, or
/// the node is frozen or in maintenance it does not migrate either.
fn ha_meaning(vmid: u32, state: &str) -> HaMeaning {
    let sid = format!("vm:{vmid}");
    match state {
        "started" => HaMeaning::Note(format!(
            "HA-managed ({sid}, started): the move is a request to the HA manager, which migrates it live"
        )),
        "stopped" | "request_stop" | "disabled" => HaMeaning::Note(format!(
            "HA-managed ({sid}, {state}): the HA manager moves it offline and keeps it stopped"
        )),
        "ignored" => HaMeaning::Note(format!(
            "HA resource {sid} is ignored by the HA manager: PVE migrates it directly"
        )),
        "queued" => HaMeaning::Note(format!(
            "HA resource {sid} is queued (the HA manager has not taken it over yet): the move waits for it"
        )),
        "error" => HaMeaning::Blocks(format!(
            "HA resource {sid} is in error state: the HA manager ignores migrate requests until it is cleared (`ha-manager set {sid} --state disabled`, fix the cause, then `--state started`)"
        )),
        "migrate" | "relocate" => HaMeaning::Blocks(format!(
            "the HA manager is already moving {sid} ({state}): wait until it is done, then check again"
        )),
        other => HaMeaning::Blocks(format!(
            "HA resource {sid} is in state '{other}' (fencing, recovery, a frozen node or maintenance): the HA manager does not migrate it until that ends — see `ha-manager status`"
        )),
    }
}

fn pve_verdict(p: &MigratePrecondition) -> PveVerdict {
    PveVerdict {
        allowed_nodes: p.allowed_nodes.clone(),
        not_allowed_nodes: p.not_allowed_nodes.clone().unwrap_or_default(),
        local_resources: p.local_resources.clone(),
        mapped_resources: p.mapped_resources.clone(),
        local_disks: p
            .local_disks
            .iter()
            .filter(|d| d.cdrom != Some(true))
            .map(|d| d.volid.clone())
            .collect(),
    }
}

/// PVE's own refusals, in words.
fn pve_reasons(
    v: &PveVerdict,
    target: &str,
    from: &str,
    reasons: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    if !v.local_resources.is_empty() {
        reasons.push(format!(
            "local devices ({}) tie it to {from}: PVE refuses to migrate it (remove the devices, or use resource mappings)",
            v.local_resources.join(", ")
        ));
    }
    // PVE lists every other node under `not_allowed_nodes`, the allowed ones with an empty
    // object (qemu-server's `check_local_storage_availability` result, passed through): only
    // an entry that says something, or a target missing from `allowed_nodes`, is a refusal.
    let why = v
        .not_allowed_nodes
        .get(target)
        .filter(|w| w.as_object().is_some_and(|o| !o.is_empty()));
    let listed = v
        .allowed_nodes
        .as_ref()
        .is_none_or(|a| a.iter().any(|n| n == target));
    if let Some(why) = why {
        let names = |key: &str, field: Option<&str>| -> Vec<String> {
            why.get(key)
                .and_then(|s| s.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| match field {
                            Some(f) => x.get(f).and_then(|s| s.as_str()).map(str::to_owned),
                            None => x.as_str().map(str::to_owned),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let storages = names("unavailable_storages", None);
        let blocking = names("blocking-ha-resources", Some("sid"));
        let resources = names("unavailable-resources", None);
        if !storages.is_empty() {
            reasons.push(format!(
                "PVE does not allow {target}: storage {} is not available there (give target_storage, or pick a node that has it)",
                storages.join(", ")
            ));
        } else if !blocking.is_empty() {
            reasons.push(format!(
                "PVE does not allow {target}: HA resource-affinity with {} keeps it apart",
                blocking.join(", ")
            ));
        } else if !resources.is_empty() {
            reasons.push(format!(
                "PVE does not allow {target}: the mapped devices {} have no mapping there",
                resources.join(", ")
            ));
        } else {
            reasons.push(format!("PVE does not allow {target}: {why}"));
        }
    } else if !listed {
        reasons.push(format!(
            "PVE does not list {target} among the nodes this VM may migrate to"
        ));
    }
    if !v.mapped_resources.is_empty() {
        notes.push(format!(
            "mapped devices ({}): the target needs the same mapping",
            v.mapped_resources.join(", ")
        ));
    }
}

/// The caller's explicit choices that PVE would refuse for this VM.
fn wish_reasons(
    w: &Wishes<'_>,
    running: bool,
    snap: &ClusterSnapshot,
    vmid: u32,
    reasons: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    let has_local = snap.guest(vmid).is_some_and(|g| {
        g.disks
            .iter()
            .flatten()
            .any(|d| !d.cdrom && snap.storage(&g.node, &d.storage).is_some_and(|s| !s.shared))
    });
    if running && w.online == Some(false) {
        reasons.push(
            "it is running: an offline migration needs it stopped first (vm_shutdown), or leave `online` unset for a live migration"
                .into(),
        );
    }
    if !running && w.online == Some(true) {
        notes.push("it is stopped: PVE migrates it offline (online is ignored)".into());
    }
    if running && has_local && w.with_local_disks == Some(false) {
        reasons.push(
            "it has local disks: a live migration must copy them (with_local_disks), or shut it down and migrate offline"
                .into(),
        );
    }
}

/// A container never moves live: running, PVE's restart migration shuts it down, moves it
/// and starts it on the target; its local volumes always go along.
fn container_wishes(
    w: &Wishes<'_>,
    running: bool,
    reasons: &mut Vec<String>,
    notes: &mut Vec<String>,
) {
    if running && w.online == Some(true) {
        reasons.push(
            "it is a running container: PVE cannot move a container live; leave `online` unset for a restart migration (shut down, moved, started on the target)"
                .into(),
        );
    } else if running {
        notes.push(format!(
            "a running container moves in restart mode: it is shut down (up to {RESTART_TIMEOUT_S} s), moved and started on the target; its services are down meanwhile"
        ));
    }
    if w.with_local_disks == Some(false) {
        notes.push(
            "a container's local volumes always move with it (with_local_disks is ignored)".into(),
        );
    }
}

/// The shutdown timeout of a restart migration (PVE's default for `restart`).
const RESTART_TIMEOUT_S: u64 = 180;

fn refusal_text(r: &MoveRefusal, pin_tag: &str) -> String {
    match r {
        MoveRefusal::Stays {
            why: plan::Unplaceable::Pinned { tag },
        } => format!(
            "it carries the tag '{tag}' (placement.pin_tag '{pin_tag}'): it stays where it is unless you pass allow_pinned: true"
        ),
        MoveRefusal::Rejected {
            node,
            rejection: plan::Rejection::Memory { needed, available },
        } => format!(
            "{node} would be overcommitted: the VM needs {:.1} GiB, {:.1} GiB of the node's memory budget is left at the configured ratio (placement.memory_ratio)",
            *needed as f64 / GIB as f64,
            *available as f64 / GIB as f64
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{HaMeaning, ha_meaning};

    #[test]
    fn an_ha_error_blocks_the_move_and_says_how_to_clear_it() {
        let HaMeaning::Blocks(why) = ha_meaning(1012, "error") else {
            panic!("error must block");
        };
        assert!(
            why.contains("vm:1012") && why.contains("--state disabled"),
            "{why}"
        );
        assert!(matches!(ha_meaning(1012, "started"), HaMeaning::Note(_)));
        assert!(matches!(ha_meaning(1012, "disabled"), HaMeaning::Note(_)));
        assert!(matches!(ha_meaning(1012, "ignored"), HaMeaning::Note(_)));
        assert!(matches!(ha_meaning(1012, "fence"), HaMeaning::Blocks(_)));
        assert!(matches!(ha_meaning(1012, "freeze"), HaMeaning::Blocks(_)));
        // The evacuation planner refuses exactly the states the check refuses.
        for state in [
            "started",
            "stopped",
            "request_stop",
            "disabled",
            "ignored",
            "queued",
            "error",
            "migrate",
            "relocate",
            "fence",
            "freeze",
            "recovery",
            "request_start",
        ] {
            assert_eq!(
                crate::ops::plan::ha_state_blocks(state),
                matches!(ha_meaning(1012, state), HaMeaning::Blocks(_)),
                "{state}"
            );
        }
    }
}

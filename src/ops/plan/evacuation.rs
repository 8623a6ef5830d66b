//! Emptying a node: which guest goes where, in which order, and which cannot go and why.
//!
//! Guests are visited running first, then largest memory first (the hard ones to fit get the
//! most choice), then by vmid; each goes to the allowed node (the request's targets, and the
//! guest's own `allowed_nodes`) whose memory load is lowest once it is there, after the moves
//! before it, so nodes of different sizes fill to the same level.
//!
//! No node passes `capacity × ratio` at any point of the execution, whichever moves are done
//! or in flight, in any order: the source only sends and never receives, every target only
//! receives and never sends, and each move was checked against the load of all the moves
//! before it. A target's load (counting an in-flight migration on both ends) is therefore at
//! most its load at the end of the plan, which the plan checked; the same holds for the bytes
//! a storage receives. An executor may run the moves with any parallelism.
//!
//! A plan carries a [`digest`](EvacuationPlan::digest()) of what it does, for the
//! preview/confirm handshake: the confirm call re-plans, compares digests, and refuses when
//! they differ, saying what changed ([`plan_difference`] when it has the previewed plan,
//! [`expected_difference`] when the caller passed the previewed moves back).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::allocation::allocations_after;
use super::ledger::{Ledger, Rank, make_move, move_demand, visit_order};
use super::{
    Allocation, ClusterSnapshot, GuestInfo, Move, MoveMode, Ratios, Stuck, Unplaceable, allocations,
};

/// What to evacuate and under which rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvacuationRequest {
    pub source: String,
    /// Nodes that may receive guests; `None` = every other node.
    pub targets: Option<Vec<String>>,
    /// Also move stopped guests and templates (offline); otherwise they stay.
    pub include_stopped: bool,
    /// Guests with this tag stay where they are.
    pub pin_tag: Option<String>,
    pub ratios: Ratios,
    /// Storage on the target for local disks; `None` = the storage of the same name.
    pub target_storage: Option<String>,
    /// Bytes per second between nodes, to estimate each move's duration.
    pub bandwidth: Option<u64>,
}

impl EvacuationRequest {
    /// Every running guest to any other node, default ratios.
    pub fn new(source: &str) -> EvacuationRequest {
        EvacuationRequest {
            source: source.to_string(),
            targets: None,
            include_stopped: false,
            pin_tag: None,
            ratios: Ratios::default(),
            target_storage: None,
            bandwidth: None,
        }
    }
}

/// The plan: moves in execution order, who stays and why, and every node before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EvacuationPlan {
    pub source: String,
    pub moves: Vec<Move>,
    /// Guests that should leave but cannot, each with the reason.
    pub unplaceable: Vec<Stuck>,
    /// Stopped guests and templates left in place because `include_stopped` was false.
    pub left_stopped: Vec<u32>,
    pub before: Vec<Allocation>,
    pub after: Vec<Allocation>,
    /// 16 hex digits identifying the plan: pass it back with `confirm: true`; a changed plan is
    /// refused.
    #[serde(default)]
    pub digest: String,
}

/// One move as a preview showed it: the guest and its target. A confirm call may pass the
/// previewed moves back, so that a refusal says exactly what changed
/// ([`expected_difference`]); the digest alone can only say *that* something changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExpectedMove {
    pub vmid: u32,
    pub to: String,
}

/// Plans the evacuation of `req.source`.
pub fn evacuate(snap: &ClusterSnapshot, req: &EvacuationRequest) -> EvacuationPlan {
    let mut ledger = Ledger::new(snap, req.ratios);
    let mut guests: Vec<_> = snap.guests_on(&req.source).collect();
    visit_order(&mut guests);
    let mut plan = EvacuationPlan {
        source: req.source.clone(),
        moves: vec![],
        unplaceable: vec![],
        left_stopped: vec![],
        before: allocations(snap, req.ratios),
        after: vec![],
        digest: String::new(),
    };
    for guest in guests {
        if !guest.is_running() && !req.include_stopped {
            plan.left_stopped.push(guest.vmid);
            continue;
        }
        let demand = match move_demand(
            snap,
            guest,
            req.pin_tag.as_deref(),
            req.target_storage.as_deref(),
        ) {
            Ok(d) => d,
            Err(why) => {
                plan.unplaceable.push(stuck(guest, why));
                continue;
            }
        };
        let targets = req.targets.as_deref();
        match ledger.best(&demand, targets, Some(&req.source), Rank::LowestLoad, |_| 0) {
            Ok(to) => {
                ledger.apply(Some(&req.source), &to, &demand);
                plan.moves
                    .push(make_move(guest, &to, &demand, req.bandwidth));
            }
            Err(nodes) => plan
                .unplaceable
                .push(stuck(guest, Unplaceable::NoTarget { nodes })),
        }
    }
    plan.left_stopped.sort_unstable();
    plan.after = allocations_after(snap, &plan.moves, req.ratios);
    plan.digest = plan.digest();
    plan
}

impl EvacuationPlan {
    /// A short, stable digest (16 hex digits of a SHA-256) of what the plan *does*: the
    /// source; each move's guest, from, to, mode and local disk moves (disk key and storages);
    /// each guest that stays and the kind of reason (with the tag, lock, storage or device
    /// keys it names); the stopped guests left in place.
    ///
    /// Not covered, because they drift with live usage or do not change what is done: the
    /// before/after numbers, memory and byte counts, time estimates, guest names, the
    /// per-node detail of a `no_target` (which node lacks memory and which vCPUs), and the
    /// order of the moves (any order is safe, see the module docs). Two plans with the same
    /// digest do the same thing; a confirm call passes back the digest its preview showed and
    /// refuses when the new plan's differs.
    pub fn digest(&self) -> String {
        let mut text = format!("evacuation-plan v1\nsource {}\n", self.source);
        for (vmid, e) in entries(self) {
            let _ = writeln!(text, "{vmid} {}", e.key);
        }
        Sha256::digest(text.as_bytes())[..8]
            .iter()
            .fold(String::with_capacity(16), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            })
    }

    /// The moves as a confirm call may pass them back ([`expected_difference`]).
    pub fn expected_moves(&self) -> Vec<ExpectedMove> {
        self.moves
            .iter()
            .map(|m| ExpectedMove {
                vmid: m.vmid,
                to: m.to.clone(),
            })
            .collect()
    }
}

/// What one guest of the source gets in a plan.
enum Action<'p> {
    Move(&'p Move),
    Stays(&'p Unplaceable),
    LeftStopped,
}

struct Entry<'p> {
    name: &'p str,
    action: Action<'p>,
    /// The action without drifting numbers: what the digest hashes and plans compare.
    key: String,
}

impl Entry<'_> {
    /// "101 web-01", or "101" when the plan does not name the guest (left stopped).
    fn id(&self, vmid: u32) -> String {
        if self.name.is_empty() {
            vmid.to_string()
        } else {
            format!("{vmid} {}", self.name)
        }
    }
}

fn entries(plan: &EvacuationPlan) -> BTreeMap<u32, Entry<'_>> {
    let mut out = BTreeMap::new();
    for m in &plan.moves {
        let disks: Vec<String> = m
            .local_disks
            .iter()
            .map(|d| format!("{}:{}>{}", d.key, d.from_storage, d.to_storage))
            .collect();
        let key = format!(
            "move {} {} {} [{}]",
            m.from,
            m.to,
            mode_name(m.mode),
            disks.join(",")
        );
        let action = Action::Move(m);
        out.insert(
            m.vmid,
            Entry {
                name: &m.name,
                action,
                key,
            },
        );
    }
    for s in &plan.unplaceable {
        let key = format!("stays {}", reason_key(&s.why));
        let action = Action::Stays(&s.why);
        out.insert(
            s.vmid,
            Entry {
                name: &s.name,
                action,
                key,
            },
        );
    }
    for &vmid in &plan.left_stopped {
        let (name, action, key) = ("", Action::LeftStopped, "left_stopped".to_string());
        out.insert(vmid, Entry { name, action, key });
    }
    out
}

fn mode_name(mode: MoveMode) -> &'static str {
    match mode {
        MoveMode::Online => "online",
        MoveMode::Restart => "restart",
        MoveMode::Offline => "offline",
    }
}

/// The reason's kind and the names it carries; no numbers.
fn reason_key(why: &Unplaceable) -> String {
    match why {
        Unplaceable::Pinned { tag } => format!("pinned {tag}"),
        Unplaceable::Locked { lock } => format!("locked {lock}"),
        Unplaceable::LocalResource { keys } => format!("local_resource {}", keys.join(",")),
        Unplaceable::HaState { state } => format!("ha_state {state}"),
        Unplaceable::DisksUnknown => "disks_unknown".into(),
        Unplaceable::LocalCdrom { storage } => format!("local_cdrom {storage}"),
        Unplaceable::NoTarget { .. } => "no_target".into(),
    }
}

/// The action in words: "pve01 → pve03", "pve01 → pve03 (restart; scsi0 local-lvm → zfs)",
/// "unplaceable: locked (backup)", "left in place (stopped)". `detail` adds the mode and local
/// disks of a move.
fn describe(action: &Action, detail: bool) -> String {
    match action {
        Action::Move(m) if detail => {
            let mut parts = vec![mode_name(m.mode).to_string()];
            parts.extend(
                m.local_disks
                    .iter()
                    .map(|d| format!("{} {} → {}", d.key, d.from_storage, d.to_storage)),
            );
            format!("{} → {} ({})", m.from, m.to, parts.join("; "))
        }
        Action::Move(m) => format!("{} → {}", m.from, m.to),
        Action::Stays(why) => format!("unplaceable: {why}"),
        Action::LeftStopped => "left in place (stopped)".into(),
    }
}

/// What changed from `old` to `new`, one line per guest whose action differs (empty exactly
/// when the digests are equal): "101 web-01: pve01 → pve03 (was pve01 → pve02)", "new guest
/// 140 web-09 on pve01: pve01 → pve02", "105 db-01 now unplaceable: no node can take it …
/// (was pve01 → pve02)", "102 web-02 no longer on pve01 (was pve01 → pve03)". For a confirm
/// refusal when the caller still has the previewed plan.
pub fn plan_difference(old: &EvacuationPlan, new: &EvacuationPlan) -> Vec<String> {
    let mut lines = Vec::new();
    if old.source != new.source {
        lines.push(format!("source {} (was {})", new.source, old.source));
    }
    let (old_e, new_e) = (entries(old), entries(new));
    let vmids: BTreeSet<u32> = old_e.keys().chain(new_e.keys()).copied().collect();
    for vmid in vmids {
        match (old_e.get(&vmid), new_e.get(&vmid)) {
            (Some(o), Some(n)) if o.key == n.key => {}
            (Some(o), Some(n)) => {
                // The mode and disks are shown when they are what changed.
                let detail = matches!((&o.action, &n.action), (Action::Move(a), Action::Move(b))
                    if a.from == b.from && a.to == b.to);
                let id = if n.name.is_empty() {
                    o.id(vmid)
                } else {
                    n.id(vmid)
                };
                let (was, now) = (describe(&o.action, detail), describe(&n.action, detail));
                lines.push(match n.action {
                    Action::Stays(_) => format!("{id} now {now} (was {was})"),
                    _ => format!("{id}: {now} (was {was})"),
                });
            }
            (None, Some(n)) => lines.push(format!(
                "new guest {} on {}: {}",
                n.id(vmid),
                new.source,
                describe(&n.action, false)
            )),
            (Some(o), None) => lines.push(format!(
                "{} no longer on {} (was {})",
                o.id(vmid),
                new.source,
                describe(&o.action, false)
            )),
            (None, None) => {}
        }
    }
    lines
}

/// What `plan` does differently from the moves a preview showed (`expected`, as
/// [`EvacuationPlan::expected_moves`] gave them): one line per previewed move that now goes
/// elsewhere or not at all, and per move the preview did not have. For a confirm refusal
/// when the caller passed the previewed moves back with the digest; guests that stay are
/// covered by the digest only.
pub fn expected_difference(expected: &[ExpectedMove], plan: &EvacuationPlan) -> Vec<String> {
    let now = entries(plan);
    let expected: BTreeMap<u32, &str> = expected.iter().map(|e| (e.vmid, e.to.as_str())).collect();
    let mut lines = Vec::new();
    for (&vmid, &to) in &expected {
        match now.get(&vmid) {
            Some(Entry {
                action: Action::Move(m),
                ..
            }) if m.to == to => {}
            Some(e) => {
                let (id, now) = (e.id(vmid), describe(&e.action, false));
                lines.push(match e.action {
                    Action::Stays(_) => format!("{id} now {now} (previewed → {to})"),
                    _ => format!("{id}: {now} (previewed → {to})"),
                });
            }
            None => lines.push(format!(
                "{vmid} no longer on {} (previewed → {to})",
                plan.source
            )),
        }
    }
    for m in plan
        .moves
        .iter()
        .filter(|m| !expected.contains_key(&m.vmid))
    {
        lines.push(format!(
            "{} {}: {} → {} (not in the previewed moves)",
            m.vmid, m.name, m.from, m.to
        ));
    }
    lines
}

pub(super) fn stuck(guest: &GuestInfo, why: Unplaceable) -> Stuck {
    Stuck {
        vmid: guest.vmid,
        name: guest.name.clone(),
        why,
    }
}

/// The snapshot as it would be after the moves (guests re-homed; storages unchanged).
pub fn apply_moves(snap: &ClusterSnapshot, moves: &[Move]) -> ClusterSnapshot {
    let to: BTreeMap<u32, &str> = moves.iter().map(|m| (m.vmid, m.to.as_str())).collect();
    let mut after = snap.clone();
    for g in after.guests.iter_mut() {
        if let Some(to) = to.get(&g.vmid) {
            g.node = to.to_string();
        }
    }
    after
}

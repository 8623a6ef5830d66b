//! `node_evacuate`: empty a node. Without `confirm` the answer is the plan (the dry run): the
//! moves in order, the guests that cannot go and why, every node before and after, and the
//! plan's digest. A confirmed call re-reads the cluster, re-plans, refuses (saying what
//! changed) unless the new plan has the digest the caller confirmed, then runs the moves with
//! at most `max_parallel` in flight — at most `limits.per_node_parallel` into one node and one
//! disk copy into one node at a time —, verifies each, and stops starting new ones at the
//! first failure. Running it again continues from wherever the cluster now is.

use std::collections::VecDeque;
use std::sync::Mutex;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::execute::{MoveDone, MoveOptions, execute};
use super::{known_node, known_storage, ratios, read_snapshot};
use crate::ops::batch::{BatchLimits, Outcome, Policy, Step, run_batch};
use crate::ops::paging::Page;
use crate::ops::plan::{self, EvacuationPlan, EvacuationRequest, MoveMode};
use crate::ops::{Context, Error, Run};

/// `node_evacuate` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeEvacuateArgs {
    #[schemars(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE))]
    pub node: String,
    /// Default: every other online node.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64), inner(length(max = 63), regex(pattern = crate::ops::validate::SCHEMA_NODE)))]
    pub targets: Option<Vec<String>>,
    /// Also move stopped guests and templates, offline (default true).
    #[serde(default)]
    pub include_stopped: Option<bool>,
    /// Default `limits.max_parallel`.
    #[serde(default)]
    #[schemars(range(min = 1, max = 16))]
    pub max_parallel: Option<u32>,
    /// For local disks; default the same-named storage.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = crate::ops::validate::SCHEMA_STORAGE))]
    pub target_storage: Option<String>,
    /// KiB/s per migration; default the datacenter's.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub bwlimit_kib: Option<u64>,
    /// Then put the node into HA maintenance (over SSH) so HA moves nothing back.
    #[serde(default)]
    pub maintenance: bool,
    /// From the plan shown to the user.
    #[serde(default)]
    #[schemars(length(max = 64), regex(pattern = r"^[0-9a-f]{1,64}$"))]
    pub digest: Option<String>,
    /// Execute; needs `digest`.
    #[serde(default)]
    pub confirm: bool,
    #[serde(default)]
    #[schemars(range(min = 1, max = 9999))]
    pub page: Option<u32>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub page_size: Option<u32>,
}

/// Moves (and unplaceable guests) per page of a plan unless asked otherwise.
pub const PLAN_PAGE: u32 = 4;

/// A planned move, as short as the report needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlannedMove {
    pub vmid: u32,
    pub name: String,
    pub to: String,
}

/// A move that failed: what happened and where the guest is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MoveFailed {
    pub vmid: u32,
    pub name: String,
    pub to: String,
    /// Names the guest, where it is now, and any task still running.
    pub error: String,
}

/// `node_evacuate` output.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NodeEvacuateReport {
    pub node: String,
    /// False for a preview.
    pub executed: bool,
    /// Pass this back with `confirm: true` to execute exactly this plan.
    pub digest: String,
    /// One page of the plan: its moves and unplaceable guests, and before/after of the node
    /// and of this page's targets.
    pub plan: EvacuationPlan,
    /// Over the whole plan.
    pub moves_total: u64,
    pub unplaceable_total: u64,
    /// The next page of the plan, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u32>,
    /// Moves done and verified.
    pub moved: Vec<MoveDone>,
    pub failed: Vec<MoveFailed>,
    /// Moves of the plan never started (after a failure or a cancellation).
    pub not_started: Vec<PlannedMove>,
    /// Guests still on the node afterwards (read back; the plan's unplaceable and stopped ones
    /// left in place, and any that failed).
    pub remaining: Vec<u32>,
    /// What happened about HA maintenance, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
    pub message: String,
    pub warnings: Vec<String>,
}

/// The plans recently previewed, by digest, so a refused confirmation can say what changed.
#[derive(Default)]
pub struct Previews(Mutex<VecDeque<(String, EvacuationPlan)>>);

/// Previews kept; older ones are forgotten (their confirmation then only says "changed").
const PREVIEWS_KEPT: usize = 16;

impl Previews {
    fn remember(&self, digest: &str, plan: &EvacuationPlan) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        p.retain(|(d, _)| d != digest);
        if p.len() == PREVIEWS_KEPT {
            p.pop_front();
        }
        p.push_back((digest.to_string(), plan.clone()));
    }

    fn get(&self, digest: &str) -> Option<EvacuationPlan> {
        let p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        p.iter()
            .find(|(d, _)| d == digest)
            .map(|(_, plan)| plan.clone())
    }
}

/// Plans, and with `confirm` executes, the evacuation of `args.node`.
///
/// # Errors
/// Bad arguments (unknown node or storage, the node as its own target, maintenance without
/// SSH), an offline node, a confirmation without or with a stale digest — all before anything
/// is sent. Failures during execution are not errors: the report names what moved, what
/// failed and what was not started.
pub async fn node_evacuate(
    ctx: &Context,
    run: &Run,
    args: &NodeEvacuateArgs,
) -> Result<NodeEvacuateReport, Error> {
    if args.maintenance && ctx.ssh.is_none() {
        return Err(Error::refused(format!(
            "maintenance needs SSH to {} ({}); evacuate without maintenance, or configure ssh",
            args.node,
            crate::ops::ssh_unavailable_reason(&ctx.config)
        )));
    }
    let page = crate::ops::paging::Page::new(args.page, args.page_size, PLAN_PAGE, 100)?;
    let (plan, warnings) = make_plan(ctx, args).await?;
    let digest = plan.digest.clone();
    if !args.confirm {
        ctx.previews.remember(&digest, &plan);
        let message = preview_message(&plan, &digest, args, page);
        return Ok(report(args, digest, plan, false, message, warnings));
    }
    match args.digest.as_deref() {
        None => {
            return Err(Error::refused(format!(
                "a confirmed evacuation of {} needs the digest of the plan the user approved: call node_evacuate without confirm, show the plan, then call again with confirm: true and its digest",
                args.node
            )));
        }
        Some(d) if d != digest => {
            let changes = match ctx.previews.get(d) {
                Some(old) => plan::plan_difference(&old, &plan),
                None => vec!["the previewed plan is not known to this server (it restarted, or the digest is wrong)".into()],
            };
            return Err(Error::refused(format!(
                "the evacuation plan of {} changed since the preview (digest {d}, now {digest}): {}; nothing was moved — preview again, show the new plan and confirm its digest",
                args.node,
                changes.join("; ")
            )));
        }
        Some(_) => {}
    }
    execute_plan(ctx, run, args, digest, plan, warnings).await
}

async fn make_plan(
    ctx: &Context,
    args: &NodeEvacuateArgs,
) -> Result<(EvacuationPlan, Vec<String>), Error> {
    let (snap, warnings) = read_snapshot(ctx, &[&args.node]).await?;
    known_node(&snap, "node", &args.node)?;
    if snap.node(&args.node).is_some_and(|n| !n.online) {
        return Err(Error::refused(format!(
            "node {} is offline: PVE cannot migrate guests off a node that does not answer; HA-managed guests are recovered by the HA manager, the rest wait until the node is back",
            args.node
        )));
    }
    for t in args.targets.iter().flatten() {
        known_node(&snap, "targets", t)?;
        if *t == args.node {
            return Err(Error::invalid(
                "targets",
                format!("{t} is the node being evacuated; name the nodes that receive guests"),
            ));
        }
        if let Some(storage) = &args.target_storage {
            known_storage(&snap, "target_storage", t, storage)?;
        }
    }
    if let Some(storage) = &args.target_storage {
        // Without `targets`, the storage must exist on some other node, or every guest with a
        // local disk would be "unplaceable" for a typo.
        let anywhere = snap.nodes.iter().any(|n| {
            n.name != args.node && known_storage(&snap, "target_storage", &n.name, storage).is_ok()
        });
        if !anywhere {
            return Err(Error::invalid(
                "target_storage",
                format!(
                    "no node other than {} has an image storage named {}",
                    args.node,
                    crate::ops::error::quote(storage)
                ),
            ));
        }
    }
    let placement = &ctx.config.placement;
    let req = EvacuationRequest {
        source: args.node.clone(),
        targets: args.targets.clone(),
        include_stopped: args.include_stopped.unwrap_or(true),
        pin_tag: Some(placement.pin_tag.clone()),
        ratios: ratios(placement),
        target_storage: args.target_storage.clone(),
        bandwidth: Some(
            args.bwlimit_kib
                .map_or(placement.migration_bandwidth, |k| k.saturating_mul(1024)),
        ),
    };
    Ok((plan::evacuate(&snap, &req), warnings))
}

async fn execute_plan(
    ctx: &Context,
    run: &Run,
    args: &NodeEvacuateArgs,
    digest: String,
    plan: EvacuationPlan,
    mut warnings: Vec<String>,
) -> Result<NodeEvacuateReport, Error> {
    let opts = MoveOptions {
        bwlimit_kib: args.bwlimit_kib,
    };
    // Any order of the plan's moves is safe (targets only receive), so the longest transfers
    // start first: the classic longest-first rule keeps one big disk copy from trailing alone
    // at the end while the other lanes idle.
    let mut order: Vec<plan::Move> = plan.moves.clone();
    order.sort_by_key(|m| std::cmp::Reverse(m.transfer_bytes));
    let steps: Vec<Step<MoveDone>> = order
        .iter()
        .map(|m| {
            let label = format!("{} {} → {}", m.vmid, m.name, m.to);
            let to = m.to.clone();
            let copies_disks = !m.local_disks.is_empty();
            let (ctx, m, opts) = (ctx.clone(), m.clone(), opts.clone());
            let step = Step::new(label, Some(&to), async move |run: Run| {
                execute(&ctx, &run, &m, &opts).await
            });
            // One disk copy into a node at a time: two would halve each other's bandwidth
            // and double the time both guests are locked.
            if copies_disks {
                step.exclusive(format!("disk copy into {to}"))
            } else {
                step
            }
        })
        .collect();
    let limits = BatchLimits {
        global: args
            .max_parallel
            .unwrap_or(ctx.config.limits.max_parallel)
            .max(1) as usize,
        per_node: ctx.config.limits.per_node_parallel.max(1) as usize,
    };
    let batch = run_batch(steps, limits, Policy::StopOnFirstSurprise, run).await;
    let mut moved = Vec::new();
    let mut failed = Vec::new();
    let mut not_started = Vec::new();
    for (r, m) in batch.results.into_iter().zip(&order) {
        match r.outcome {
            Outcome::Done { value } => moved.push(value),
            Outcome::Failed { error } => failed.push(MoveFailed {
                vmid: m.vmid,
                name: m.name.clone(),
                to: m.to.clone(),
                error,
            }),
            Outcome::NotStarted { .. } => not_started.push(PlannedMove {
                vmid: m.vmid,
                name: m.name.clone(),
                to: m.to.clone(),
            }),
        }
    }
    let remaining = match ctx
        .client
        .get_cluster_resources(Some(crate::pve::ResourceType::Vm))
        .await
    {
        Ok(rows) => rows
            .iter()
            .filter(|r| r.node.as_deref() == Some(args.node.as_str()))
            .filter_map(|r| r.vmid)
            .collect(),
        Err(e) => {
            warnings.push(format!(
                "could not read back what is left on {}: {e}",
                args.node
            ));
            Vec::new()
        }
    };
    let maintenance = if args.maintenance {
        Some(maintenance(ctx, run, &args.node, failed.len() + not_started.len()).await)
    } else {
        None
    };
    let mut message = format!("{} of {} moves done", moved.len(), plan.moves.len());
    if !failed.is_empty() {
        message += &format!(
            "; {} failed ({}) and the evacuation stopped there",
            failed.len(),
            failed
                .iter()
                .map(|f| f.vmid.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !not_started.is_empty() {
        message += &format!("; {} not started", not_started.len());
    }
    if !plan.unplaceable.is_empty() {
        message += &format!(
            "; {} cannot be moved (see plan.unplaceable)",
            plan.unplaceable.len()
        );
    }
    message += &format!(
        "; {} guest(s) still on {}{}",
        remaining.len(),
        args.node,
        if failed.is_empty() && not_started.is_empty() {
            String::new()
        } else {
            " — run node_evacuate again (preview, then confirm) to continue from here".into()
        }
    );
    let mut r = report(args, digest, plan, true, message, warnings);
    r.moved = moved;
    r.failed = failed;
    r.not_started = not_started;
    r.remaining = remaining;
    r.maintenance = maintenance;
    Ok(r)
}

/// Enables HA maintenance on `node` over SSH, unless moves are left.
async fn maintenance(ctx: &Context, run: &Run, node: &str, left: usize) -> String {
    if left > 0 {
        return format!("not enabled: {left} move(s) did not happen; finish the evacuation first");
    }
    let Some(shell) = ctx.ssh.as_ref() else {
        return "not enabled: SSH is not configured".into();
    };
    let cmd = crate::ssh::Command::new("ha-manager").args([
        "crm-command",
        "node-maintenance",
        "enable",
        node,
    ]);
    match shell
        .run(run, node, &cmd, std::time::Duration::from_secs(60))
        .await
    {
        Ok(_) => format!(
            "enabled: HA keeps guests off {node}; leave it with `ha-manager crm-command node-maintenance disable {node}` on any node when the work is done"
        ),
        Err(e) => format!("not enabled: {e}"),
    }
}

/// One page of `plan`: its moves and unplaceable guests, and the allocations before and after
/// of the evacuated node and of the nodes this page's moves go to (so an answer stays a few KB
/// on a big cluster; the digest and the totals are the whole plan's).
fn plan_page(plan: EvacuationPlan, page: Page) -> (EvacuationPlan, u64, u64, Option<u32>) {
    let EvacuationPlan {
        source,
        moves,
        unplaceable,
        left_stopped,
        before,
        after,
        digest,
    } = plan;
    let (moves, moves_total, next_moves) = page.cut(moves);
    let (unplaceable, unplaceable_total, next_stuck) = page.cut(unplaceable);
    let shown = |n: &str| n == source || moves.iter().any(|m| m.to == n);
    let before = before.into_iter().filter(|a| shown(&a.node)).collect();
    let after = after.into_iter().filter(|a| shown(&a.node)).collect();
    (
        EvacuationPlan {
            source,
            moves,
            unplaceable,
            left_stopped,
            before,
            after,
            digest,
        },
        moves_total,
        unplaceable_total,
        next_moves.max(next_stuck),
    )
}

fn report(
    args: &NodeEvacuateArgs,
    digest: String,
    plan: EvacuationPlan,
    executed: bool,
    message: String,
    warnings: Vec<String>,
) -> NodeEvacuateReport {
    // The arguments were checked when the plan was made: a bad page never gets here.
    let page = Page::new(args.page, args.page_size, PLAN_PAGE, 100).unwrap_or(Page {
        page: 1,
        size: PLAN_PAGE,
    });
    let (plan, moves_total, unplaceable_total, next_page) = plan_page(plan, page);
    NodeEvacuateReport {
        node: args.node.clone(),
        executed,
        digest,
        plan,
        moves_total,
        unplaceable_total,
        next_page,
        moved: vec![],
        failed: vec![],
        not_started: vec![],
        remaining: vec![],
        maintenance: None,
        message,
        warnings,
    }
}

fn preview_message(
    plan: &EvacuationPlan,
    digest: &str,
    args: &NodeEvacuateArgs,
    page: Page,
) -> String {
    let online = plan
        .moves
        .iter()
        .filter(|m| m.mode == MoveMode::Online)
        .count();
    let secs: u64 = plan.moves.iter().filter_map(|m| m.estimated_seconds).sum();
    let mut msg = format!(
        "plan only, nothing changed: {} move(s) off {} ({online} live, {} offline, about {} s of transfer in all)",
        plan.moves.len(),
        args.node,
        plan.moves.len() - online,
        secs
    );
    if !plan.unplaceable.is_empty() {
        msg += &format!(
            "; {} guest(s) cannot move and would stay (plan.unplaceable says why)",
            plan.unplaceable.len()
        );
    }
    if !plan.left_stopped.is_empty() {
        msg += &format!(
            "; {} stopped guest(s) left in place",
            plan.left_stopped.len()
        );
    }
    let listed = plan.moves.len().max(plan.unplaceable.len());
    if listed > page.size as usize {
        msg += &format!(
            "; shown: page {} of {} ({} per page, with before/after of the nodes its moves go to){}",
            page.page,
            listed.div_ceil(page.size as usize),
            page.size,
            page.next(listed)
                .map(|n| format!(", page: {n} shows more"))
                .unwrap_or_default()
        );
    }
    msg += &format!(
        ". Show the plan to the user; to execute it call node_evacuate again with confirm: true and digest: \"{digest}\""
    );
    msg
}

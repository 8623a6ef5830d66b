//! One bounded executor for every batch (bulk power, evacuation, spin-up): run many steps with
//! at most `limits.max_parallel` at once and at most `limits.per_node_parallel` on one node,
//! report each step's progress, stop starting new steps on cancellation (or on the first
//! failure when asked to), and always return one result per step, in input order.
//!
//! A batch never fails fast: a step that failed, and the steps that were never started, are
//! results like the others ("8 of 10 done, 2 failed because …"), so the caller can say exactly
//! what now exists.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::{Error, Run};

/// What a step's work returns.
pub type StepFuture<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>;

/// One unit of work: a label for progress and results, the node it loads (if any), and the
/// work itself, given the batch's [`Run`] (progress and the call's cancellation token).
pub struct Step<T> {
    pub label: String,
    pub node: Option<String>,
    /// Steps sharing this key never run at the same time (e.g. disk copies into one node).
    pub exclusive: Option<String>,
    work: Box<dyn FnOnce(Run) -> StepFuture<T> + Send>,
}

impl<T> Step<T> {
    pub fn new<F, Fut>(label: impl Into<String>, node: Option<&str>, work: F) -> Step<T>
    where
        F: FnOnce(Run) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        Step {
            label: label.into(),
            node: node.map(str::to_owned),
            exclusive: None,
            work: Box::new(move |run| Box::pin(work(run))),
        }
    }

    /// At most one step with this key runs at a time, whatever the other limits allow.
    pub fn exclusive(mut self, key: impl Into<String>) -> Step<T> {
        self.exclusive = Some(key.into());
        self
    }
}

/// How many steps may run at once, in all and on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub global: usize,
    pub per_node: usize,
}

impl From<&crate::config::Limits> for BatchLimits {
    fn from(l: &crate::config::Limits) -> BatchLimits {
        BatchLimits {
            global: l.max_parallel as usize,
            per_node: l.per_node_parallel as usize,
        }
    }
}

/// What happens after a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Start nothing more; steps already running finish and report.
    StopOnFirstSurprise,
    /// Carry on with the rest.
    Continue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome<T> {
    Done { value: T },
    Failed { error: String },
    NotStarted { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepResult<T> {
    /// Position in the input.
    pub index: usize,
    pub label: String,
    pub node: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome<T>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchReport<T> {
    /// One per step, in input order.
    pub results: Vec<StepResult<T>>,
    pub done: usize,
    pub failed: usize,
    pub not_started: usize,
    /// e.g. "8 of 10 done, 2 failed because vm 101: …".
    pub summary: String,
}

/// Runs `steps` within `limits`, reporting through `run`, under `policy`.
///
/// Steps start in input order, except that a step whose node is at its limit is passed over
/// for a later step on a free node (so one busy node does not idle the rest of the cluster).
pub async fn run_batch<T: Send + 'static>(
    steps: Vec<Step<T>>,
    limits: BatchLimits,
    policy: Policy,
    run: &Run,
) -> BatchReport<T> {
    // The global semaphore is the cap on what this batch asks of the cluster at once (PVE
    // serialises much of its work per node and the API is shared with every other client),
    // so a 200-guest batch is never 200 concurrent tasks. Permits are owned by the running
    // task and released when it ends, however it ends.
    let global = Arc::new(Semaphore::new(limits.global.max(1)));
    // One semaphore per node: migrations, clones and disk imports load a node's disks and
    // network, and PVE's per-guest locks turn too many at once into lock timeouts. The per-node
    // permit is tried before a step starts, so a busy node never holds a global permit idle.
    let per_node: BTreeMap<String, Arc<Semaphore>> = steps
        .iter()
        .filter_map(|s| s.node.clone())
        .map(|n| (n, Arc::new(Semaphore::new(limits.per_node.max(1)))))
        .collect();
    let exclusive: BTreeMap<String, Arc<Semaphore>> = steps
        .iter()
        .filter_map(|s| s.exclusive.clone())
        .map(|k| (k, Arc::new(Semaphore::new(1))))
        .collect();
    let meta: Vec<(String, Option<String>)> = steps
        .iter()
        .map(|s| (s.label.clone(), s.node.clone()))
        .collect();
    let mut outcomes: Vec<Option<Outcome<T>>> = meta.iter().map(|_| None).collect();
    let mut pending: Vec<(usize, Step<T>)> = steps.into_iter().enumerate().collect();
    let mut running: JoinSet<Result<T, Error>> = JoinSet::new();
    let mut task_index = HashMap::new();
    let mut stopped: Option<String> = None;
    loop {
        if stopped.is_none() && run.cancel.is_cancelled() {
            stopped = Some("the call was cancelled".into());
        }
        if stopped.is_none() {
            while let Some((index, step, permits)) =
                next_ready(&mut pending, &global, &per_node, &exclusive)
            {
                run.note(format!("{}: started{}", step.label, on(&step.node)));
                let work = step.work;
                let step_run = run.clone();
                let handle = running.spawn(async move {
                    let _permits = permits;
                    work(step_run).await
                });
                task_index.insert(handle.id(), index);
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            _ = run.cancel.cancelled(), if stopped.is_none() => {
                run.note("cancelled: starting no more steps; waiting for the running ones");
                stopped = Some("the call was cancelled".into());
            }
            Some(joined) = running.join_next_with_id() => {
                let (id, result) = match joined {
                    Ok((id, r)) => (id, r.map_err(|e| e.to_string())),
                    Err(e) => (e.id(), Err(format!("the step crashed: {e}"))),
                };
                let Some(&index) = task_index.get(&id) else { continue };
                let label = &meta[index].0;
                outcomes[index] = Some(match result {
                    Ok(value) => {
                        run.note(format!("{label}: finished"));
                        Outcome::Done { value }
                    }
                    Err(error) => {
                        run.note(format!("{label}: failed: {error}"));
                        if policy == Policy::StopOnFirstSurprise && stopped.is_none() {
                            stopped = Some(format!("{label} failed and the batch stops on the first failure"));
                        }
                        Outcome::Failed { error }
                    }
                });
            }
        }
    }
    let reason = stopped.unwrap_or_else(|| "not reached".into());
    for (index, _) in pending {
        outcomes[index] = Some(Outcome::NotStarted {
            reason: reason.clone(),
        });
    }
    report(meta, outcomes)
}

/// The first pending step (in input order) whose node (and exclusive key) has a free permit,
/// with its permits, when a global permit is free.
fn next_ready<T>(
    pending: &mut Vec<(usize, Step<T>)>,
    global: &Arc<Semaphore>,
    per_node: &BTreeMap<String, Arc<Semaphore>>,
    exclusive: &BTreeMap<String, Arc<Semaphore>>,
) -> Option<(usize, Step<T>, Vec<OwnedSemaphorePermit>)> {
    if pending.is_empty() {
        return None;
    }
    let global_permit = Arc::clone(global).try_acquire_owned().ok()?;
    let take = |key: Option<&String>, sems: &BTreeMap<String, Arc<Semaphore>>| match key
        .and_then(|k| sems.get(k))
    {
        None => Some(None),
        Some(sem) => Arc::clone(sem).try_acquire_owned().ok().map(Some),
    };
    let (pos, node_permit, key_permit) =
        pending.iter().enumerate().find_map(|(pos, (_, step))| {
            let node = take(step.node.as_ref(), per_node)?;
            // Dropping `node` on a busy key releases the node permit again.
            let key = take(step.exclusive.as_ref(), exclusive)?;
            Some((pos, node, key))
        })?;
    let (index, step) = pending.remove(pos);
    let permits = std::iter::once(global_permit)
        .chain(node_permit)
        .chain(key_permit)
        .collect();
    Some((index, step, permits))
}

fn on(node: &Option<String>) -> String {
    node.as_ref()
        .map(|n| format!(" on {n}"))
        .unwrap_or_default()
}

fn report<T>(
    meta: Vec<(String, Option<String>)>,
    outcomes: Vec<Option<Outcome<T>>>,
) -> BatchReport<T> {
    let results: Vec<StepResult<T>> = meta
        .into_iter()
        .zip(outcomes)
        .enumerate()
        .map(|(index, ((label, node), outcome))| StepResult {
            index,
            label,
            node,
            outcome: outcome.unwrap_or(Outcome::NotStarted {
                reason: "not reached".into(),
            }),
        })
        .collect();
    let done = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Done { .. }))
        .count();
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed { error } => Some(format!("{}: {error}", r.label)),
            _ => None,
        })
        .collect();
    let not_started: Vec<&str> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::NotStarted { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    let mut summary = format!("{done} of {} done", results.len());
    if !failures.is_empty() {
        summary += &format!(
            ", {} failed because {}",
            failures.len(),
            failures.join("; ")
        );
    }
    if let Some(reason) = not_started.first() {
        summary += &format!(", {} not started ({reason})", not_started.len());
    }
    BatchReport {
        done,
        failed: failures.len(),
        not_started: not_started.len(),
        results,
        summary,
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;

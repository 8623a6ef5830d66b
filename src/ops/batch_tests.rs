//! The executor under tokio's paused clock: steps "work" by sleeping, so the tests run in
//! virtual time and concurrency is counted exactly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;

/// Counts steps running at once, in all and per node, and remembers the peaks.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
    per_node: Mutex<BTreeMap<String, (usize, usize)>>,
}

impl Gauge {
    fn enter(&self, node: &str) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        let mut m = self.per_node.lock().unwrap();
        let e = m.entry(node.to_string()).or_default();
        e.0 += 1;
        e.1 = e.1.max(e.0);
    }
    fn leave(&self, node: &str) {
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.per_node.lock().unwrap().get_mut(node).unwrap().0 -= 1;
    }
    fn peak_on(&self, node: &str) -> usize {
        self.per_node.lock().unwrap()[node].1
    }
}

/// A step on `node` that takes `secs` of virtual time and fails when `fail` is set.
fn step(i: usize, node: &str, secs: u64, fail: bool, gauge: &Arc<Gauge>) -> Step<usize> {
    let gauge = Arc::clone(gauge);
    let node_name = node.to_string();
    Step::new(format!("step {i}"), Some(node), move |_run| async move {
        gauge.enter(&node_name);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        gauge.leave(&node_name);
        if fail {
            Err(Error::Refused {
                reason: format!("step {i} broke"),
            })
        } else {
            Ok(i)
        }
    })
}

fn limits(global: usize, per_node: usize) -> BatchLimits {
    BatchLimits { global, per_node }
}

fn outcomes(r: &BatchReport<usize>) -> Vec<&'static str> {
    r.results
        .iter()
        .map(|s| match s.outcome {
            Outcome::Done { .. } => "done",
            Outcome::Failed { .. } => "failed",
            Outcome::NotStarted { .. } => "not started",
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn never_more_than_the_global_and_per_node_limits() {
    let gauge = Arc::new(Gauge::default());
    let nodes = ["a", "a", "a", "a", "b", "b", "c", "a", "b", "c", "c", "c"];
    let steps = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| step(i, n, 1 + (i as u64 % 3), false, &gauge))
        .collect();
    let report = run_batch(steps, limits(4, 2), Policy::Continue, &Run::default()).await;
    assert_eq!(report.done, 12);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 4);
    for n in ["a", "b", "c"] {
        assert_eq!(gauge.peak_on(n), 2, "node {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_busy_node_does_not_idle_the_others() {
    // Three steps on `a` (limit 1 per node) and one on `b`: `b` starts at once instead of
    // waiting behind `a`'s queue, so the batch takes 3 s, not 4.
    let gauge = Arc::new(Gauge::default());
    let steps = vec![
        step(0, "a", 1, false, &gauge),
        step(1, "a", 1, false, &gauge),
        step(2, "a", 1, false, &gauge),
        step(3, "b", 1, false, &gauge),
    ];
    let start = tokio::time::Instant::now();
    let report = run_batch(steps, limits(4, 1), Policy::Continue, &Run::default()).await;
    assert_eq!(report.done, 4);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn steps_sharing_an_exclusive_key_never_overlap() {
    // Two disk copies into `a` (one key) and a memory-only move into `a`: with two per node,
    // the copies run one after the other and the third step runs beside the first copy.
    let gauge = Arc::new(Gauge::default());
    let copies = Arc::new(Gauge::default());
    let copy = |i: usize| {
        let copies = Arc::clone(&copies);
        Step::new(format!("copy {i}"), Some("a"), move |_run| async move {
            copies.enter("a");
            tokio::time::sleep(Duration::from_secs(2)).await;
            copies.leave("a");
            Ok(i)
        })
        .exclusive("disk copy into a")
    };
    let steps = vec![copy(0), copy(1), step(2, "a", 2, false, &gauge)];
    let start = tokio::time::Instant::now();
    let report = run_batch(steps, limits(4, 2), Policy::Continue, &Run::default()).await;
    assert_eq!(report.done, 3);
    assert_eq!(copies.peak_on("a"), 1, "copies never overlap");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(4),
        "copy 1 waits only for copy 0"
    );
}

#[tokio::test(start_paused = true)]
async fn results_come_back_in_input_order_whatever_finishes_first() {
    let gauge = Arc::new(Gauge::default());
    let steps = (0..6)
        .map(|i| step(i, "a", 6 - i as u64, false, &gauge))
        .collect();
    let report = run_batch(steps, limits(6, 6), Policy::Continue, &Run::default()).await;
    let values: Vec<usize> = report
        .results
        .iter()
        .map(|r| match r.outcome {
            Outcome::Done { value } => value,
            _ => usize::MAX,
        })
        .collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4, 5]);
    assert!(report.results.iter().enumerate().all(|(i, r)| r.index == i));
}

#[tokio::test(start_paused = true)]
async fn continue_runs_everything_and_names_each_failure() {
    let gauge = Arc::new(Gauge::default());
    let steps = (0..10)
        .map(|i| step(i, "a", 1, i == 3 || i == 7, &gauge))
        .collect();
    let report = run_batch(steps, limits(2, 2), Policy::Continue, &Run::default()).await;
    assert_eq!((report.done, report.failed, report.not_started), (8, 2, 0));
    assert_eq!(
        report.summary,
        "8 of 10 done, 2 failed because step 3: refused: step 3 broke; step 7: refused: step 7 broke"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_on_first_surprise_starts_nothing_more_but_lets_running_steps_finish() {
    // Limit 2: steps 0 and 1 start together; 0 fails after 1 s while 1 is still running
    // (2 s). Step 1 must finish and report; 2.. must never start.
    let gauge = Arc::new(Gauge::default());
    let mut steps = vec![
        step(0, "a", 1, true, &gauge),
        step(1, "a", 2, false, &gauge),
    ];
    steps.extend((2..6).map(|i| step(i, "a", 1, false, &gauge)));
    let report = run_batch(
        steps,
        limits(2, 2),
        Policy::StopOnFirstSurprise,
        &Run::default(),
    )
    .await;
    assert_eq!(
        outcomes(&report),
        [
            "failed",
            "done",
            "not started",
            "not started",
            "not started",
            "not started"
        ]
    );
    let Outcome::NotStarted { reason } = &report.results[2].outcome else {
        unreachable!()
    };
    assert_eq!(
        reason,
        "step 0 failed and the batch stops on the first failure"
    );
    assert!(
        report
            .summary
            .starts_with("1 of 6 done, 1 failed because step 0")
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_starting_and_reports_the_rest_as_not_started() {
    let gauge = Arc::new(Gauge::default());
    let steps = (0..5).map(|i| step(i, "a", 2, false, &gauge)).collect();
    let cancel = CancellationToken::new();
    let run = Run::new(None, cancel.clone());
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
    });
    let report = run_batch(steps, limits(2, 2), Policy::Continue, &run).await;
    canceller.await.unwrap();
    // Steps 0 and 1 were running at the cancellation and finish; 2.. never start.
    assert_eq!(
        outcomes(&report),
        ["done", "done", "not started", "not started", "not started"]
    );
    assert_eq!(
        report.summary,
        "2 of 5 done, 3 not started (the call was cancelled)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_cancelled_before_it_starts_runs_nothing() {
    let gauge = Arc::new(Gauge::default());
    let steps = (0..3).map(|i| step(i, "a", 1, false, &gauge)).collect();
    let run = Run::new(None, CancellationToken::new());
    run.cancel.cancel();
    let report = run_batch(steps, limits(2, 2), Policy::Continue, &run).await;
    assert_eq!(report.not_started, 3);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn progress_says_when_each_step_starts_finishes_or_fails() {
    let gauge = Arc::new(Gauge::default());
    let notes = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&notes);
    let progress: crate::ops::ProgressFn = Arc::new(move |m| sink.lock().unwrap().push(m));
    let run = Run::new(Some(progress), CancellationToken::new());
    let steps = vec![
        step(0, "a", 1, false, &gauge),
        step(1, "b", 2, true, &gauge),
    ];
    run_batch(steps, limits(2, 2), Policy::Continue, &run).await;
    assert_eq!(
        *notes.lock().unwrap(),
        [
            "step 0: started on a",
            "step 1: started on b",
            "step 0: finished",
            "step 1: failed: refused: step 1 broke",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn limits_come_from_the_configuration() {
    let l = BatchLimits::from(&crate::config::Limits {
        max_parallel: 8,
        per_node_parallel: 3,
    });
    assert_eq!(l, limits(8, 3));
}

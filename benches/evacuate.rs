//! Evacuation benchmark: a node with 24 guests emptied through the same operation
//! `node_evacuate` runs (plan, then the confirmed execution), against a generated 4-node
//! cluster in the simulator, once with one migration at a time and once with four.
//!
//! Run: `cargo bench --bench evacuate`. For each parallelism it prints the wall time of the
//! execution and the ideal for that parallelism: the moves' own durations (each as measured,
//! from its request to its verified node) packed perfectly onto that many lanes —
//! `max(sum / lanes, longest)`. The ratio shows what the executor's limits (at most
//! `per_node_parallel` moves into one node, one disk copy into a node at a time), polling and
//! verification cost on top of PVE's own work.

use std::time::{Duration, Instant};

use proxmox_manager::config::credentials::{CredentialSource, TokenCredential};
use proxmox_manager::ops::migrate::{NodeEvacuateArgs, node_evacuate};
use proxmox_manager::ops::{self, Run, Timeouts};
use proxmox_manager::sim::{self, GenerateSpec, Scenario};
use proxmox_manager::{config, pve};
use secrecy::SecretString;

const TIME_SCALE: f64 = 0.005;
const GUESTS: usize = 24;

/// Four nodes; the first one carries exactly [`GUESTS`] guests (extras go to the others).
fn scenario() -> (Scenario, String) {
    let mut s = Scenario::generate(&GenerateSpec {
        nodes: 4,
        guests: 4 * GUESTS + 8,
        seed: 14,
        template_fraction: 0.0,
        ha_fraction: 0.0,
        pinned_fraction: 0.0,
        lock_fraction: 0.0,
        ..GenerateSpec::default()
    });
    let source = s.nodes[0].name.clone();
    let others: Vec<String> = s.nodes[1..].iter().map(|n| n.name.clone()).collect();
    let mut on_source = 0;
    for (i, vm) in s.vms.iter_mut().enumerate() {
        if vm.node == source {
            on_source += 1;
            if on_source > GUESTS {
                vm.node = others[i % others.len()].clone();
            }
        }
    }
    (s, source)
}

async fn evacuate(max_parallel: u32) -> (usize, Duration, Duration, f64) {
    let (scenario, source) = scenario();
    let handle = sim::start(sim::SimOptions {
        scenario,
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        time_scale: TIME_SCALE,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let token = handle
        .token("claude-code@pve!automation")
        .unwrap_or_else(|| panic!("token"));
    let fp = pve::parse_fingerprint(&handle.fingerprint()).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = config::sim_config(handle.addr().port(), fp);
    cfg.audit_log = None;
    let cred = TokenCredential {
        id: token.id,
        secret: SecretString::from(token.secret),
        source: CredentialSource::Simulator,
    };
    let mut ctx = ops::Context::new(cfg, cred).unwrap_or_else(|e| panic!("{e}"));
    ctx.timeouts = Timeouts::default().with_poll(Duration::from_millis(10));
    let mut args: NodeEvacuateArgs = serde_json::from_value(serde_json::json!({
        "node": source, "max_parallel": max_parallel
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let run = Run::default();
    let plan = node_evacuate(&ctx, &run, &args)
        .await
        .unwrap_or_else(|e| panic!("plan: {e}"));
    args.confirm = true;
    args.digest = Some(plan.digest.clone());
    let start = Instant::now();
    let report = node_evacuate(&ctx, &run, &args)
        .await
        .unwrap_or_else(|e| panic!("evacuation: {e}"));
    let wall = start.elapsed();
    if !report.failed.is_empty() || !report.not_started.is_empty() {
        eprintln!("evacuation incomplete: {}", report.message);
        std::process::exit(1);
    }
    let durations: Vec<f64> = report.moved.iter().map(|m| m.seconds).collect();
    let sum: f64 = durations.iter().sum();
    let longest = durations.iter().copied().fold(0.0, f64::max);
    let ideal = Duration::from_secs_f64((sum / f64::from(max_parallel)).max(longest));
    handle.shutdown().await;
    (report.moved.len(), wall, ideal, longest)
}

#[tokio::main]
async fn main() {
    println!("evacuating a node with {GUESTS} guests (time scale {TIME_SCALE})");
    for p in [1, 4] {
        let (moved, wall, ideal, longest) = evacuate(p).await;
        println!(
            "max_parallel {p}: {moved} moves, wall {:8.1} ms, ideal {:8.1} ms (longest move {:.1} ms), ratio {:.2}",
            wall.as_secs_f64() * 1000.0,
            ideal.as_secs_f64() * 1000.0,
            longest * 1000.0,
            wall.as_secs_f64() / ideal.as_secs_f64().max(1e-9)
        );
    }
}

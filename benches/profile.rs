//! Cluster-profile benchmark: the VM phases (clone and configure, start, address) of a 3
//! control-plane + 3 worker spin-up of a `type: vms` profile in the simulator, through the same
//! operation `profile_up` runs, with the simulator's realistic durations scaled by TIME_SCALE.
//!
//! Run: `cargo bench --bench profile`. It first spins up a one-guest profile alone and times each
//! phase from its progress; the critical path of the 3+3 spin-up is then what those phases take
//! under the configured bounds — the six clones run on the template's node (PVE runs a clone on
//! the source node), at most `per_node_parallel` at once, so `ceil(6 / per_node)` clone rounds,
//! then one round of starts (6 guests on 3 nodes, `max_parallel` 6) and one address lookup. It
//! prints the wall time against that critical path; the goal is a ratio of at most 1.15.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxmox_manager::config::credentials::{CredentialSource, TokenCredential};
use proxmox_manager::ops::profile::{ProfileUpArgs, profile_up};
use proxmox_manager::ops::{self, Run, Timeouts};
use proxmox_manager::{config, pve, sim};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const TIME_SCALE: f64 = 0.05;

fn profile(name: &str, cp: u32, workers: u32, net: u32) -> String {
    format!(
        "name: {name}\ntype: vms\nnetwork:\n  pod_cidr: 10.{net}.0.0/16\nnodes:\n  controlplane:\n    count: {cp}\n    cores: 1\n    memory: 1024\n    disk: 8G\n  workers:\n    count: {workers}\n    cores: 1\n    memory: 1024\n    disk: 8G\ntemplate: ubuntu-noble-tmpl\ntags: [bench, {name}]\n"
    )
}

/// Runs `profile_up` confirmed; returns the wall time and the time each phase started.
async fn up(
    ctx: &ops::Context,
    name: &str,
    max_parallel: u32,
) -> (Duration, Vec<(String, Duration)>) {
    let marks: Arc<Mutex<Vec<(String, Duration)>>> = Arc::default();
    let start = Instant::now();
    let m = Arc::clone(&marks);
    let progress: ops::ProgressFn = Arc::new(move |msg: String| {
        if let Some(rest) = msg.strip_prefix("phase ") {
            let phase = rest.split(':').next().unwrap_or("").to_string();
            if let Ok(mut v) = m.lock() {
                v.push((phase, start.elapsed()));
            }
        }
    });
    let run = Run::new(Some(progress), CancellationToken::new());
    let args: ProfileUpArgs = serde_json::from_value(serde_json::json!({
        "profile": name, "confirm": true, "max_parallel": max_parallel
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = profile_up(ctx, &run, &args).await {
        eprintln!("profile_up {name} failed: {e}");
        std::process::exit(1);
    }
    let wall = start.elapsed();
    let marks = marks.lock().map(|v| v.clone()).unwrap_or_default();
    (wall, marks)
}

fn phase_lengths(marks: &[(String, Duration)], wall: Duration) -> Vec<(String, Duration)> {
    marks
        .iter()
        .enumerate()
        .map(|(i, (name, at))| {
            let end = marks.get(i + 1).map_or(wall, |(_, t)| *t);
            (name.clone(), end.saturating_sub(*at))
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let scenario = sim::Scenario::embedded().unwrap_or_else(|e| panic!("{e}"));
    let handle = sim::start(sim::SimOptions {
        scenario,
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        time_scale: TIME_SCALE,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let clusters = dir.path().join("clusters");
    std::fs::create_dir_all(&clusters).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(clusters.join("solo.yaml"), profile("solo", 1, 0, 70))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        clusters.join("three-three.yaml"),
        profile("three-three", 3, 3, 71),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let token = handle
        .token("claude-code@pve!automation")
        .unwrap_or_else(|| panic!("token"));
    let fp = pve::parse_fingerprint(&handle.fingerprint()).unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = config::sim_config(handle.addr().port(), fp);
    cfg.audit_log = Some(dir.path().join("audit.jsonl"));
    cfg.paths.clusters = Some(clusters);
    let per_node = cfg.limits.per_node_parallel.max(1);
    let cred = TokenCredential {
        id: token.id,
        secret: SecretString::from(token.secret),
        source: CredentialSource::Simulator,
    };
    let mut ctx = ops::Context::new(cfg, cred).unwrap_or_else(|e| panic!("{e}"));
    ctx.timeouts = Timeouts::default().with_poll(Duration::from_millis(20));

    let (solo_wall, solo_marks) = up(&ctx, "solo", 1).await;
    let solo = phase_lengths(&solo_marks, solo_wall);
    let of = |name: &str| {
        solo.iter()
            .find(|(n, _)| n == name)
            .map_or(Duration::ZERO, |(_, d)| *d)
    };
    let (clone, start, address) = (of("clone"), of("start"), of("address"));
    println!(
        "one guest alone: clone+configure {:.1} ms, start {:.1} ms, address {:.1} ms (wall {:.1} ms)",
        ms(clone),
        ms(start),
        ms(address),
        ms(solo_wall)
    );
    let rounds = 6u32.div_ceil(per_node);
    let critical = clone * rounds + start + address;
    let (wall, marks) = up(&ctx, "three-three", 6).await;
    for (name, d) in phase_lengths(&marks, wall) {
        println!("  3+3 phase {name}: {:.1} ms", ms(d));
    }
    let ratio = wall.as_secs_f64() / critical.as_secs_f64().max(1e-9);
    println!(
        "3+3 spin-up (VM phases): wall {:.1} ms; critical path {:.1} ms ({rounds} clone rounds of {per_node} on the template's node, one start round, one address lookup); ratio {ratio:.2} (goal <= 1.15, time scale {TIME_SCALE})",
        ms(wall),
        ms(critical)
    );
    handle.shutdown().await;
    if ratio > 1.15 {
        std::process::exit(1);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

//! Clone benchmark: 12 VMs cloned from the shared template across the 3 simulated nodes at
//! once, through the same operation `vm_create` runs, with the simulator's realistic clone
//! durations scaled by TIME_SCALE.
//!
//! Run: `cargo bench --bench clone`. It first clones one VM alone (the ideal: with perfect
//! parallelism, 12 clones take as long as the slowest single one), then 12 concurrently, and
//! prints the wall times and their ratio. The ratio shows what allocation, locking, polling and
//! the client add on top of PVE's own work.

use std::time::{Duration, Instant};

use proxmox_manager::config::credentials::{CredentialSource, TokenCredential};
use proxmox_manager::ops::{self, Run, Timeouts, VmCreateArgs};
use proxmox_manager::{config, pve, sim};
use secrecy::SecretString;

const TIME_SCALE: f64 = 0.05;
const VMS: usize = 12;
const NODES: [&str; 3] = ["pve01", "pve02", "pve03"];

fn args(name: String, node: &str) -> VmCreateArgs {
    serde_json::from_value(serde_json::json!({
        "template": "ubuntu-noble-tmpl", "name": name, "node": node, "storage": "nfs-shared"
    }))
    .unwrap_or_else(|e| panic!("benchmark arguments: {e}"))
}

async fn create(ctx: &ops::Context, name: String, node: &str) -> Duration {
    let t = Instant::now();
    if let Err(e) = ops::vm_create(ctx, &Run::default(), &args(name, node)).await {
        eprintln!("vm_create failed: {e}");
        std::process::exit(1);
    }
    t.elapsed()
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
    ctx.timeouts = Timeouts::default().with_poll(Duration::from_millis(20));

    let mut single = Duration::ZERO;
    for node in NODES {
        let d = create(&ctx, format!("alone-{node}"), node).await;
        println!(
            "one clone alone onto {node}: {:8.1} ms",
            d.as_secs_f64() * 1000.0
        );
        single = single.max(d);
    }
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..VMS {
        let ctx = ctx.clone();
        let node = NODES[i % NODES.len()];
        set.spawn(async move { create(&ctx, format!("bench-{i:02}"), node).await });
    }
    while set.join_next().await.is_some() {}
    let wall = start.elapsed();
    println!(
        "{VMS} clones across {} nodes: wall {:.1} ms; ideal (slowest single clone) {:.1} ms; ratio {:.2} (time scale {TIME_SCALE})",
        NODES.len(),
        wall.as_secs_f64() * 1000.0,
        single.as_secs_f64() * 1000.0,
        wall.as_secs_f64() / single.as_secs_f64().max(1e-9)
    );
    handle.shutdown().await;
}

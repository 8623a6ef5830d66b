//! Scale benchmark: every read tool through MCP against the small embedded scenario and a
//! generated large one (64 nodes / 10,000 guests by default), side by side.
//!
//! Run: `cargo bench --bench scale` (builds the `dist` profile's binary first, what installs build). Optional environment:
//! `SCALE_SPEC=NxM` (default `64x10000`), `SCALE_SEED` (default 1), `SCALE_RUNS` (samples per
//! read, default 5), `SCALE_SCENARIO=FILE` (a scenario file as the large one instead, e.g.
//! written by `proxmox-manager sim --generate 64x10000 --seed 1 --scenario-out FILE`),
//! `SCALE_SIM_ONLY=1` (only the simulator's own answers, no MCP pass).
//!
//! What it does, per scenario: starts the simulator in this process (so it can count the API
//! calls each tool makes, [`proxmox_manager::sim::SimHandle::api_requests`]), times the
//! simulator's own answers to the big reads over HTTPS (`/cluster/resources`, `/nodes`, ...)
//! with this process's resident memory before and after them and after the same reads again
//! (flat over the second pass: no growth per request), then spawns the real binary
//! (`serve --config` pointing at the simulator) over stdio with an rmcp client, lists the
//! tools, and calls every read-only tool (plus the previews of `node_evacuate` and
//! `vm_delete`) several times. It prints each call's median and worst time, the response size
//! (the JSON-RPC result as sent), the API calls it made, and the server's resident memory
//! (`VmRSS`, peak `VmHWM`) after `tools/list`, right after the pass of reads, 3 s later
//! (idle, as between a conversation's calls) and once the server has released its idle
//! connections (`server::memory`, half a minute idle), each with its anonymous part
//! (`RssAnon`: the rest is the executable's pages). Start-up figures
//! come first (the `startup` bench's measurement).

#[path = "startup.rs"]
#[allow(dead_code)]
mod startup;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use proxmox_manager::sim::{self, GenerateSpec, Scenario, SimHandle, SimOptions};
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::process::Command;

const TIME_SCALE: f64 = 0.2;
/// The pause after the reads before the idle memory figure.
const IDLE_PAUSE: Duration = Duration::from_secs(3);
const SIM_RUNS: usize = 20;
const TOKEN: &str = "claude-code@pve!automation";

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and worst of some samples.
fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    match v.len() {
        0 => (Duration::ZERO, Duration::ZERO),
        n => (v[n / 2], v[n - 1]),
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpus} CPUs ({model}), load average {} before the run",
        load.join(" ")
    )
}

/// One row of the MCP table.
#[derive(Default, Clone)]
struct Row {
    median: Duration,
    worst: Duration,
    bytes: usize,
    calls: u64,
    note: String,
}

#[derive(Default)]
struct Outcome {
    sim_rows: BTreeMap<String, Row>,
    /// Before the timed reads, after them, after the same reads again.
    sim_rss: (u64, u64, u64),
    tools_list: (Duration, usize, usize),
    rss_after_list: (u64, u64),
    rss_after_reads: (u64, u64),
    /// (`VmRSS`, `RssAnon`)
    rss_idle: (u64, u64),
    rss_released: (u64, u64),
    rows: Vec<(String, Row)>,
}

/// What the calls need to know about the cluster.
struct Targets {
    node: String,
    other_node: String,
    vmid: u64,
    tag: String,
    upid: String,
    shared_storage: String,
    local_storage: String,
}

fn config_yaml(sim: &SimHandle, scenario: &Scenario) -> String {
    let mut nodes = String::new();
    for (name, addr) in sim.ssh_nodes() {
        nodes.push_str(&format!(
            "    - name: {name}\n      host: 127.0.0.1\n      ssh_port: {}\n",
            addr.port()
        ));
    }
    format!(
        r#"cluster:
  name: {cluster}
  nodes:
{nodes}
defaults:
  storage: local-lvm
  network_bridge: vmbr0
  bios: ovmf
  machine: q35
  cpu: host
  scsi_controller: virtio-scsi-single
  efidisk_pre_enrolled_keys: false
  guest_agent: true

vmid_ranges:
  templates: 100-999
  vms: 1000-99999

credentials:
  pass_path: bench/pve/api-token
  ssh_user: root

tags:
  templates: ["template"]

cloudinit:
  default_user: ada
  ssh_keys_source: ~/.ssh/authorized_keys
  vendor_snippet_path: /var/lib/vz/snippets/

api:
  port: {port}
  tls:
    fingerprint: "{fp}"
"#,
        cluster = scenario.cluster,
        port = sim.addr().port(),
        fp = sim.fingerprint(),
    )
}

fn targets(scenario: &Scenario, upid: String) -> Targets {
    // a running guest on shared storage with the most snapshots, on the first node
    let vm = scenario
        .vms
        .iter()
        .filter(|v| v.running && !v.template && v.storage != "local-lvm")
        .max_by_key(|v| (v.snapshots.len(), std::cmp::Reverse(v.vmid)))
        .or_else(|| scenario.vms.first())
        .expect("the scenario has guests");
    let other = scenario
        .nodes
        .iter()
        .find(|n| n.name != vm.node)
        .map_or_else(|| vm.node.clone(), |n| n.name.clone());
    let shared = scenario
        .storages
        .iter()
        .find(|s| s.shared && s.content.iter().any(|c| c == "images"))
        .map_or_else(|| "nfs-shared".into(), |s| s.id.clone());
    Targets {
        node: vm.node.clone(),
        other_node: other,
        vmid: u64::from(vm.vmid),
        tag: "prod".into(),
        upid,
        shared_storage: shared,
        local_storage: "local-lvm".into(),
    }
}

/// The calls made for each tool: (label, tool, arguments). Several argument sets in one row
/// (e.g. walking pages) are samples of that row.
fn recipes(t: &Targets) -> Vec<(String, &'static str, Vec<Value>)> {
    let one = |v: Value| vec![v];
    let vmid = t.vmid;
    vec![
        ("cluster_status".into(), "cluster_status", one(json!({}))),
        (
            "node_status".into(),
            "node_status",
            one(json!({ "node": t.node })),
        ),
        ("cluster_balance".into(), "cluster_balance", one(json!({}))),
        ("vm_list".into(), "vm_list", one(json!({}))),
        (
            "vm_list tag".into(),
            "vm_list",
            one(json!({ "tag": t.tag })),
        ),
        (
            "vm_list node+status".into(),
            "vm_list",
            one(json!({ "node": t.node, "status": "running" })),
        ),
        (
            "vm_list name glob".into(),
            "vm_list",
            one(json!({ "name": "web-*" })),
        ),
        (
            "vm_list pages 2-6".into(),
            "vm_list",
            (2..=6).map(|p| json!({ "page": p })).collect(),
        ),
        ("vm_get".into(), "vm_get", one(json!({ "vmid": vmid }))),
        (
            "snapshot_list".into(),
            "snapshot_list",
            one(json!({ "vmid": vmid })),
        ),
        (
            "vm_migrate_check".into(),
            "vm_migrate_check",
            one(json!({ "vmid": vmid, "target": t.other_node })),
        ),
        (
            "node_evacuate (preview)".into(),
            "node_evacuate",
            one(json!({ "node": t.node })),
        ),
        (
            "vm_delete (preview)".into(),
            "vm_delete",
            one(json!({ "vmid": vmid })),
        ),
        ("template_list".into(), "template_list", one(json!({}))),
        ("storage_list".into(), "storage_list", one(json!({}))),
        (
            "storage_content shared".into(),
            "storage_content",
            one(json!({ "storage": t.shared_storage })),
        ),
        (
            "storage_content local".into(),
            "storage_content",
            one(json!({ "storage": t.local_storage, "node": t.node })),
        ),
        ("backup_list".into(), "backup_list", one(json!({}))),
        ("backup_jobs".into(), "backup_jobs", one(json!({}))),
        ("disk_orphans".into(), "disk_orphans", one(json!({}))),
        (
            "task_status".into(),
            "task_status",
            one(json!({ "upid": t.upid })),
        ),
        (
            "task_log".into(),
            "task_log",
            one(json!({ "upid": t.upid })),
        ),
        ("access_check".into(), "access_check", one(json!({}))),
        ("runbook_list".into(), "runbook_list", one(json!({}))),
    ]
}

async fn sim_reads(sim: &SimHandle, scenario: &Scenario, out: &mut Outcome) {
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).expect("ca pem");
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("http client");
    let t = sim.token(TOKEN).expect("manager token");
    let auth = format!("PVEAPIToken={}={}", t.id, t.secret);
    let node = &scenario.nodes[0].name;
    let paths = [
        "/cluster/resources".to_string(),
        "/cluster/resources?type=vm".to_string(),
        "/nodes".to_string(),
        format!("/nodes/{node}/status"),
        "/cluster/status".to_string(),
        format!("/nodes/{node}/qemu"),
        format!("/nodes/{node}/storage"),
        format!("/nodes/{node}/storage/local-lvm/content"),
        format!("/nodes/{node}/storage/nfs-shared/content"),
    ];
    // One request's answer, its size.
    let get = async |p: &str| {
        let resp = http
            .get(format!("{}/api2/json{p}", sim.url()))
            .header("Authorization", &auth)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let body = resp.bytes().await.expect("body");
        assert!(status.is_success(), "{p}: {status}");
        body.len()
    };
    let pid = std::process::id();
    // one warm-up pass, then measure memory around the timed passes
    for p in &paths {
        get(p).await;
    }
    let before = proc_status(pid, "VmRSS:");
    for p in &paths {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..SIM_RUNS {
            let start = Instant::now();
            bytes = get(p).await;
            times.push(start.elapsed());
        }
        let (median, worst) = stats(times);
        out.sim_rows.insert(
            p.clone(),
            Row {
                median,
                worst,
                bytes,
                calls: 1,
                note: String::new(),
            },
        );
    }
    let after = proc_status(pid, "VmRSS:");
    // The same reads again: memory that stays flat over the second pass is the simulator's
    // kept rows and allocator pages, not growth per request.
    for p in &paths {
        for _ in 0..SIM_RUNS {
            get(p).await;
        }
    }
    out.sim_rss = (before, after, proc_status(pid, "VmRSS:"));
}

type Client = RunningService<RoleClient, ()>;

async fn mcp_pass(
    binary: &Path,
    sim: &SimHandle,
    scenario: &Scenario,
    runs: usize,
    out: &mut Outcome,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("cluster-config.yaml");
    std::fs::write(&cfg, config_yaml(sim, scenario)).expect("write config");
    let t = sim.token(TOKEN).expect("manager token");
    let token = format!("{}={}", t.id, t.secret);
    let state = dir.path().join("state");
    let cfg2 = cfg.clone();
    let transport = TokioChildProcess::new(Command::new(binary).configure(move |c| {
        c.arg("serve").arg("--config").arg(&cfg2);
        c.env("PROXMOX_MANAGER_TOKEN", &token)
            .env("XDG_STATE_HOME", &state)
            .env_remove("PROXMOX_MANAGER_CONFIG")
            .env_remove("SSH_AUTH_SOCK");
    }))
    .expect("spawn the server");
    let pid = transport.id().expect("server pid");
    let client: Client = ().serve(transport).await.expect("MCP handshake");
    let start = Instant::now();
    let tools = client.list_all_tools().await.expect("tools/list");
    let list_time = start.elapsed();
    let list_bytes = serde_json::to_string(&tools).map_or(0, |s| s.len());
    out.tools_list = (list_time, tools.len(), list_bytes);
    out.rss_after_list = (proc_status(pid, "VmRSS:"), proc_status(pid, "VmHWM:"));

    let upid = first_upid(sim, scenario).await;
    let t = targets(scenario, upid);
    let mut rows = recipes(&t);
    // read-only tools without a recipe still show up (called without arguments)
    for tool in &tools {
        let ro = tool
            .annotations
            .as_ref()
            .and_then(|a| a.read_only_hint)
            .unwrap_or(false);
        if ro && !rows.iter().any(|(_, name, _)| *name == tool.name) {
            let required = tool
                .input_schema
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            let label = tool.name.to_string();
            if required {
                out.rows.push((
                    label,
                    Row {
                        note: "not measured: needs arguments this bench has no recipe for".into(),
                        ..Row::default()
                    },
                ));
            } else {
                rows.push((label, leak(tool.name.to_string()), vec![json!({})]));
            }
        }
    }
    for (label, tool, samples) in rows {
        if !tools.iter().any(|x| x.name == tool) {
            out.rows.push((
                label,
                Row {
                    note: "not in this build's catalogue".into(),
                    ..Row::default()
                },
            ));
            continue;
        }
        let mut times = Vec::new();
        let (mut bytes, mut calls, mut note) = (0, 0, String::new());
        for _ in 0..runs {
            for args in &samples {
                let Value::Object(map) = args.clone() else {
                    continue;
                };
                let before = sim.api_requests();
                let start = Instant::now();
                let r = client
                    .call_tool(CallToolRequestParams::new(tool).with_arguments(map))
                    .await;
                times.push(start.elapsed());
                calls = calls.max(sim.api_requests() - before);
                match r {
                    Ok(r) => {
                        bytes = bytes.max(serde_json::to_string(&r).map_or(0, |s| s.len()));
                        if r.is_error == Some(true) && note.is_empty() {
                            let text: String = r
                                .content
                                .iter()
                                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                                .collect();
                            note = format!(
                                "tool error: {}",
                                text.chars().take(90).collect::<String>()
                            );
                        }
                    }
                    Err(e) => note = format!("protocol error: {e}"),
                }
            }
        }
        let (median, worst) = stats(times);
        out.rows.push((
            label,
            Row {
                median,
                worst,
                bytes,
                calls,
                note,
            },
        ));
    }
    out.rss_after_reads = (proc_status(pid, "VmRSS:"), proc_status(pid, "VmHWM:"));
    // A conversation's calls are seconds apart: the server hands freed memory back once idle
    // (src/server/memory.rs, a second after the last call).
    tokio::time::sleep(IDLE_PAUSE).await;
    out.rss_idle = (proc_status(pid, "VmRSS:"), proc_status(pid, "RssAnon:"));
    // After a pause the server closes its idle connections (their read buffers) and trims.
    tokio::time::sleep(
        proxmox_manager::server::memory::IDLE_BEFORE_RELEASE
            + proxmox_manager::server::memory::IDLE_BEFORE_TRIM * 2
            - IDLE_PAUSE,
    )
    .await;
    out.rss_released = (proc_status(pid, "VmRSS:"), proc_status(pid, "RssAnon:"));
    let _ = client.cancel().await;
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A finished task's UPID from the first node's task list.
async fn first_upid(sim: &SimHandle, scenario: &Scenario) -> String {
    let ca = reqwest::Certificate::from_pem(sim.ca_pem().as_bytes()).expect("ca pem");
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("http client");
    let t = sim.token("root@pam!admin").expect("root token");
    for n in &scenario.nodes {
        let body: Value = http
            .get(format!("{}/api2/json/nodes/{}/tasks", sim.url(), n.name))
            .header(
                "Authorization",
                format!("PVEAPIToken={}={}", t.id, t.secret),
            )
            .send()
            .await
            .expect("request")
            .json()
            .await
            .unwrap_or(Value::Null);
        if let Some(u) = body["data"][0]["upid"].as_str() {
            return u.to_string();
        }
    }
    "UPID:pve01:00000000:00000000:00000000:none:0:root@pam:".into()
}

async fn run_scenario(binary: &Path, scenario: Scenario, runs: usize) -> Outcome {
    let mut out = Outcome::default();
    let start = Instant::now();
    let sim = sim::start(SimOptions {
        scenario: scenario.clone(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale: TIME_SCALE,
    })
    .await
    .expect("simulator starts");
    // As `serve --sim` and `sim` do once the state is built.
    proxmox_manager::server::memory::trim_after_start();
    eprintln!(
        "  simulator up in {:.0} ms ({} nodes, {} guests)",
        ms(start.elapsed()),
        scenario.nodes.len(),
        scenario.vms.len()
    );
    sim_reads(&sim, &scenario, &mut out).await;
    if std::env::var_os("SCALE_SIM_ONLY").is_none() {
        mcp_pass(binary, &sim, &scenario, runs, &mut out).await;
    }
    sim.shutdown().await;
    out
}

fn kib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

fn cell(r: Option<&Row>) -> String {
    match r {
        None => "—".into(),
        Some(r) if r.median.is_zero() => "—".into(),
        Some(r) => format!("{:.1} / {:.1}", ms(r.median), ms(r.worst)),
    }
}

fn size(b: usize) -> String {
    if b >= 1024 * 1024 {
        format!("{:.1} MB", b as f64 / (1024.0 * 1024.0))
    } else if b >= 1024 {
        format!("{:.1} KB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn print_report(small: &Outcome, large: &Outcome, large_name: &str) {
    println!("\n## Simulator answers (HTTPS, {SIM_RUNS} runs; ms median / worst)\n");
    println!("| request | small | {large_name} | bytes small | bytes {large_name} |");
    println!("|---|---|---|---|---|");
    for (p, r) in &small.sim_rows {
        let l = large.sim_rows.get(p);
        println!(
            "| `{}` | {} | {} | {} | {} |",
            p.replace("pve01", "{node}").replace("pve001", "{node}"),
            cell(Some(r)),
            cell(l),
            size(r.bytes),
            l.map_or("—".into(), |l| size(l.bytes))
        );
    }
    println!(
        "\nsimulator process RSS before the timed reads / after them / after the same reads again: small {} / {} / {}, {large_name} {} / {} / {}",
        kib(small.sim_rss.0),
        kib(small.sim_rss.1),
        kib(small.sim_rss.2),
        kib(large.sim_rss.0),
        kib(large.sim_rss.1),
        kib(large.sim_rss.2)
    );
    println!("\n## Tools through MCP (ms median / worst; response bytes; API calls)\n");
    println!(
        "| tool | small | {large_name} | bytes small | bytes {large_name} | calls small | calls {large_name} |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut notes = Vec::new();
    for (label, r) in &small.rows {
        let l = large.rows.iter().find(|(x, _)| x == label).map(|(_, r)| r);
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} |",
            cell(Some(r)),
            cell(l),
            size(r.bytes),
            l.map_or("—".into(), |l| size(l.bytes)),
            r.calls,
            l.map_or("—".into(), |l| l.calls.to_string())
        );
        for (which, row) in [("small", Some(r)), (large_name, l)] {
            if let Some(row) = row.filter(|row| !row.note.is_empty()) {
                notes.push(format!("{label} ({which}): {}", row.note));
            }
        }
    }
    for n in notes {
        println!("- {n}");
    }
    println!(
        "\ntools/list: {} tools, {} (small: {:.1} ms, {large_name}: {:.1} ms)",
        small.tools_list.1,
        size(small.tools_list.2),
        ms(small.tools_list.0),
        ms(large.tools_list.0)
    );
    println!(
        "server RSS after tools/list: small {} (peak {}), {large_name} {} (peak {})",
        kib(small.rss_after_list.0),
        kib(small.rss_after_list.1),
        kib(large.rss_after_list.0),
        kib(large.rss_after_list.1)
    );
    println!(
        "server RSS after the reads:  small {} (peak {}), {large_name} {} (peak {})",
        kib(small.rss_after_reads.0),
        kib(small.rss_after_reads.1),
        kib(large.rss_after_reads.0),
        kib(large.rss_after_reads.1)
    );
    println!(
        "server RSS {} s after the reads (idle): small {} (anonymous {}), {large_name} {} (anonymous {})",
        IDLE_PAUSE.as_secs(),
        kib(small.rss_idle.0),
        kib(small.rss_idle.1),
        kib(large.rss_idle.0),
        kib(large.rss_idle.1)
    );
    println!(
        "server RSS once its idle connections are released: small {} (anonymous {}), {large_name} {} (anonymous {})",
        kib(small.rss_released.0),
        kib(small.rss_released.1),
        kib(large.rss_released.0),
        kib(large.rss_released.1)
    );
}

fn parse_spec(s: &str) -> (usize, usize) {
    s.split_once('x')
        .and_then(|(n, m)| Some((n.parse().ok()?, m.parse().ok()?)))
        .unwrap_or_else(|| panic!("SCALE_SPEC must look like 64x10000, got {s:?}"))
}

#[tokio::main]
async fn main() {
    // The simulator in this process runs with the allocator set up as the executable sets it.
    proxmox_manager::server::memory::tune();
    let status = StdCommand::new(env!("CARGO"))
        .args(["build", "--profile", "dist", "--quiet"])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("cargo build --profile dist failed");
        std::process::exit(1);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
    let binary = std::path::PathBuf::from(format!("{target}/dist/proxmox-manager"));
    let spec = std::env::var("SCALE_SPEC").unwrap_or_else(|_| "64x10000".into());
    let (nodes, guests) = parse_spec(&spec);
    let seed: u64 = std::env::var("SCALE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let runs: usize = std::env::var("SCALE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    println!("# proxmox-manager scale benchmark");
    println!("machine: {}", machine());

    let mut times = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..startup::RUNS {
        match startup::one_run(binary.to_str().unwrap_or_default()) {
            Ok((t, r)) => {
                times.push(t);
                rss.push(r);
            }
            Err(e) => {
                eprintln!("start-up run failed: {e}");
                std::process::exit(1);
            }
        }
    }
    let (t_med, t_worst) = stats(times);
    rss.sort_unstable();
    println!(
        "start-up (`serve --sim` to the first tools/list, {} runs): median {:.1} ms, worst {:.1} ms; RSS median {}, worst {}",
        startup::RUNS,
        ms(t_med),
        ms(t_worst),
        kib(rss[rss.len() / 2]),
        kib(rss[rss.len() - 1])
    );

    eprintln!("small scenario (embedded config/sim.yaml)");
    let small = run_scenario(
        &binary,
        Scenario::embedded().expect("embedded scenario"),
        runs,
    )
    .await;
    let large_scenario = match std::env::var_os("SCALE_SCENARIO") {
        Some(path) => {
            eprintln!("large scenario (file {})", path.to_string_lossy());
            Scenario::from_file(Path::new(&path)).expect("SCALE_SCENARIO names a scenario file")
        }
        None => {
            eprintln!("large scenario ({spec}, seed {seed})");
            Scenario::generate(&GenerateSpec {
                nodes,
                guests,
                seed,
                ..GenerateSpec::default()
            })
        }
    };
    let large = run_scenario(&binary, large_scenario, runs).await;
    print_report(&small, &large, &spec);
}

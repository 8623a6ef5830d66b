//! Issue 14 end to end through MCP against the simulator: live and offline migrations with
//! progress and the node verified; every refusal before anything is sent; a node evacuation
//! previewed (nothing changes), confirmed with its digest and executed without any node going
//! over capacity at any moment (watched from the simulator's own state), a failure mid-way
//! that stops new moves and a second run that finishes; a changed cluster refused with the
//! difference; HA-managed guests moved through HA; HA maintenance over SSH; the balance report.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proxmox_manager::sim::SimHandle;
use serde_json::{Value, json};

use common::mcp::{Client, Recorder, call, call_with, connect};

const GIB: u64 = 1 << 30;

struct Env {
    sim: Arc<SimHandle>,
    _dir: tempfile::TempDir,
    client: Client,
    recorder: Recorder,
}

/// The server against a fresh simulator; `extra` is appended to the config (e.g. `placement:`),
/// `ssh` adds the simulator's SSH front.
async fn env_with(extra: &str, ssh: bool) -> Env {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = if ssh {
        common::write_ssh_config(dir.path(), &sim)
    } else {
        common::write_config(dir.path(), &sim)
    };
    if !extra.is_empty() {
        let mut text = std::fs::read_to_string(&config).expect("config");
        text.push_str(extra);
        std::fs::write(&config, text).expect("config");
    }
    let (client, recorder) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    Env {
        sim: Arc::new(sim),
        _dir: dir,
        client,
        recorder,
    }
}

async fn env() -> Env {
    env_with("", false).await
}

/// The server against a simulator running `scenario`.
async fn env_scenario(scenario: proxmox_manager::sim::Scenario) -> Env {
    let sim = common::start_scenario(scenario).await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (client, recorder) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    Env {
        sim: Arc::new(sim),
        _dir: dir,
        client,
        recorder,
    }
}

/// The migrations the simulator received.
fn migrations(sim: &SimHandle) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/migrate"))
        .map(|r| r.path)
        .collect()
}

fn node_of(sim: &SimHandle, vmid: u32) -> String {
    sim.guest_placement()
        .get(&vmid)
        .map(|g| g.node.clone())
        .unwrap_or_default()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.get("vmid").and_then(Value::as_u64).or_else(|| x.as_u64()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_migration_reports_the_transfer_and_lands_on_the_target() {
    let e = env().await;
    // Slow enough that the task is polled while it sends memory (8 GiB at 1 GiB/s, × 200).
    e.sim.slow_node("pve01", 200.0);
    let (err, s, text) = call_with(
        &e.client,
        "vm_migrate",
        json!({"vmid": 1003, "target": "pve02"}),
        true,
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["verified_node"], "pve02", "{s}");
    assert_eq!(s["mode"], "online");
    assert_eq!(s["from"], "pve01");
    assert!(
        s["upid"]
            .as_str()
            .is_some_and(|u| u.contains(":qmigrate:1003:")),
        "{s}"
    );
    let placed = e.sim.guest_placement();
    assert_eq!(placed[&1003].node, "pve02");
    assert!(placed[&1003].running, "a live migration keeps it running");
    assert_eq!(placed[&1003].lock, None, "the migrate lock is gone");
    let progress = e.recorder.progress.lock().expect("progress").clone();
    assert!(
        progress
            .iter()
            .any(|p| p.contains("1003") && p.contains('%')),
        "the transfer shows as a percentage: {progress:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_migration_copies_local_disks_to_the_target() {
    let e = env().await;
    // dev-sandbox: stopped, scsi0 on pve02's local-lvm. Slow enough that the task is polled
    // while the disk is copied.
    e.sim.slow_node("pve02", 200.0);
    let (err, s, text) = call_with(
        &e.client,
        "vm_migrate",
        json!({"vmid": 1007, "target": "pve03"}),
        true,
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["mode"], "offline", "{s}");
    assert_eq!(s["verified_node"], "pve03");
    let disks = s["local_disks"].as_array().expect("local_disks");
    assert!(
        disks
            .iter()
            .any(|d| d["from_storage"] == "local-lvm" && d["to_storage"] == "local-lvm"),
        "{s}"
    );
    assert!(s["transfer_bytes"].as_u64().unwrap_or(0) >= 32 * GIB, "{s}");
    assert_eq!(node_of(&e.sim, 1007), "pve03");
    let c = common::client_for(&e.sim, common::MANAGER);
    let content = |node: &'static str| {
        let c = c.clone();
        async move {
            let v: Value = c
                .get(&format!("/nodes/{node}/storage/local-lvm/content"), &[])
                .await
                .expect("content");
            v.to_string()
        }
    };
    assert!(
        content("pve03").await.contains("vm-1007-disk"),
        "the disk now lives on pve03"
    );
    assert!(
        !content("pve02").await.contains("vm-1007-disk"),
        "and no longer on pve02"
    );
    // The disk copy (dd lines, no total: the plan's size is the total) shows as a percentage.
    let progress = e.recorder.progress.lock().expect("progress").clone();
    assert!(
        progress
            .iter()
            .any(|p| p.contains("1007") && p.contains('%')),
        "the offline copy shows as a percentage: {progress:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn impossible_moves_are_refused_before_anything_is_sent() {
    let e = env().await;
    let cases: &[(Value, &str)] = &[
        (json!({"vmid": 1003, "target": "pve01"}), "already on pve01"),
        (
            json!({"vmid": 1003, "target": "pve9"}),
            "not in this cluster",
        ),
        (
            json!({"vmid": 1000, "target": "pve02", "online": false}),
            "running",
        ),
        (
            json!({"vmid": 1000, "target": "pve02", "with_local_disks": false}),
            "local disks",
        ),
        // pve03 runs 32 GiB of guests on 32 GiB: it takes nothing more.
        (json!({"vmid": 1000, "target": "pve03"}), "overcommitted"),
        (
            json!({"vmid": 1000, "target": "pve02", "target_storage": "nope"}),
            "does not exist on pve02",
        ),
        (json!({"vmid": 1000, "target": "pve-02!"}), "target"),
        // gpu-render-01 has a GPU passed through (hostpci0).
        (json!({"vmid": 1013, "target": "pve02"}), "hostpci0"),
    ];
    for (args, want) in cases {
        let (err, _, text) = call(&e.client, "vm_migrate", args.clone()).await;
        assert!(err, "{args} must be refused: {text}");
        assert!(text.contains(want), "{args}: {text}");
    }
    let (err, _, text) = call(
        &e.client,
        "vm_migrate",
        json!({"vmid": 1000, "target": "pve03"}),
    )
    .await;
    assert!(err && text.contains("pve02 could take it"), "{text}");
    for (args, want) in [
        (
            json!({"node": "pve01", "target_storage": "nope"}),
            "no node other than pve01",
        ),
        (
            json!({"node": "pve01", "targets": ["pve01"]}),
            "the node being evacuated",
        ),
        (json!({"node": "pve9"}), "not in this cluster"),
    ] {
        let (err, _, text) = call(&e.client, "node_evacuate", args.clone()).await;
        assert!(err && text.contains(want), "{args}: {text}");
    }
    assert_eq!(migrations(&e.sim), Vec::<String>::new(), "nothing was sent");

    // A pinned guest stays unless the caller means it.
    let (err, _, text) = call(
        &e.client,
        "vm_set_tags",
        json!({"vmid": 1001, "add": ["pinned"]}),
    )
    .await;
    assert!(!err, "{text}");
    let (err, _, text) = call(
        &e.client,
        "vm_migrate",
        json!({"vmid": 1001, "target": "pve02"}),
    )
    .await;
    assert!(
        err && text.contains("pinned") && text.contains("allow_pinned"),
        "{text}"
    );
    assert_eq!(migrations(&e.sim), Vec::<String>::new());
    let (err, s, text) = call(
        &e.client,
        "vm_migrate",
        json!({"vmid": 1001, "target": "pve02", "allow_pinned": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["verified_node"], "pve02");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_check_says_how_a_vm_would_move_or_why_it_cannot() {
    let e = env().await;
    let (err, s, text) = call(
        &e.client,
        "vm_migrate_check",
        json!({"vmid": 1000, "target": "pve02"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["can_migrate"], true, "{s}");
    assert_eq!(s["mode"], "online");
    assert_eq!(s["with_local_disks"], true);
    // 32 GiB of disk, a 4 MiB EFI disk and 4 GiB of memory.
    assert_eq!(
        s["transfer_bytes"].as_u64(),
        Some(36 * GIB + (4 << 20)),
        "{s}"
    );
    assert!(s["target_after"]["memory_load"].as_f64().is_some(), "{s}");

    let (err, s, text) = call(
        &e.client,
        "vm_migrate_check",
        json!({"vmid": 1000, "target": "pve03"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["can_migrate"], false, "{s}");
    assert!(s["reasons"].to_string().contains("overcommitted"), "{s}");
    assert_eq!(s["suggested_target"], "pve02");
    assert_eq!(migrations(&e.sim), Vec::<String>::new());
}

/// Watches the simulator while an evacuation runs: the highest running memory each node ever
/// had (the planners' arithmetic: configured memory of running guests).
fn watch(
    sim: &Arc<SimHandle>,
) -> (
    Arc<AtomicBool>,
    std::thread::JoinHandle<BTreeMap<String, u64>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let sim = Arc::clone(sim);
    let handle = std::thread::spawn(move || {
        let mut peak: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            let mut now: BTreeMap<String, u64> = BTreeMap::new();
            for g in sim.guest_placement().values() {
                if g.running && !g.template {
                    *now.entry(g.node.clone()).or_default() += g.maxmem_bytes;
                }
            }
            for (n, m) in now {
                let p = peak.entry(n).or_default();
                *p = (*p).max(m);
            }
            if flag.load(Ordering::SeqCst) {
                return peak;
            }
            std::thread::yield_now();
        }
    });
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_evacuation_is_previewed_then_executed_without_overcommitting_any_node() {
    let e = env().await;
    let before = e.sim.guest_placement();
    let on_pve01: Vec<u32> = before
        .iter()
        .filter(|(_, g)| g.node == "pve01")
        .map(|(v, _)| *v)
        .collect();
    let (err, plan, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve01", "page_size": 20}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(plan["executed"], false);
    assert!(
        e.sim.requests().iter().all(|r| r.method == "GET"),
        "a preview sends nothing but reads"
    );
    let digest = plan["digest"].as_str().expect("digest").to_string();
    let moves = plan["plan"]["moves"].as_array().expect("moves").clone();
    assert!(!moves.is_empty(), "{plan}");
    assert!(
        moves.iter().all(|m| m["to"] != "pve03"),
        "pve03 is full and receives nothing: {plan}"
    );
    // The GPU guest cannot leave: listed with its reason and the device that ties it.
    let stuck = plan["plan"]["unplaceable"].as_array().expect("unplaceable");
    assert!(!stuck.is_empty(), "{plan}");
    let gpu = stuck
        .iter()
        .find(|g| g["vmid"] == 1013)
        .unwrap_or_else(|| panic!("1013 is unplaceable: {plan}"));
    assert_eq!(gpu["reason"], "local_resource", "{gpu}");
    assert!(
        gpu["keys"].as_array().is_some_and(|k| k
            .iter()
            .any(|k| k.as_str().is_some_and(|k| k.starts_with("hostpci")))),
        "{gpu}"
    );
    assert!(
        moves.iter().all(|m| m["vmid"] != 1013),
        "1013 is not moved: {plan}"
    );
    assert!(
        text.contains(&digest),
        "the message says how to confirm: {text}"
    );

    let (err, _, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve01", "confirm": true}),
    )
    .await;
    assert!(
        err && text.contains("digest"),
        "a confirmation needs the digest: {text}"
    );

    let memory = e.sim.node_memory();
    let (stop, watcher) = watch(&e.sim);
    let (err, report, text) = call_with(
        &e.client,
        "node_evacuate",
        json!({"node": "pve01", "confirm": true, "digest": digest, "max_parallel": 3}),
        true,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let peak = watcher.join().expect("watcher");
    assert!(!err, "{text}");
    assert_eq!(report["executed"], true);
    assert_eq!(
        report["moved"].as_array().map(Vec::len),
        Some(moves.len()),
        "{report}"
    );
    for m in &moves {
        let vmid = m["vmid"].as_u64().expect("vmid") as u32;
        assert_eq!(node_of(&e.sim, vmid), m["to"], "{vmid}");
    }
    // Every guest that could move left; what stays is exactly what the plan said stays.
    let stays: Vec<u64> = ids(&plan["plan"]["unplaceable"]);
    let mut remaining = ids(&report["remaining"]);
    remaining.sort_unstable();
    let mut expected: Vec<u64> = on_pve01
        .iter()
        .map(|v| u64::from(*v))
        .filter(|v| stays.contains(v))
        .collect();
    expected.sort_unstable();
    assert_eq!(remaining, expected, "{report}");
    // No node that received guests ever went over its memory budget (2 GiB host reserve).
    for (node, peak) in &peak {
        let budget = memory[node] - 2 * GIB;
        let start: u64 = before
            .values()
            .filter(|g| &g.node == node && g.running && !g.template)
            .map(|g| g.maxmem_bytes)
            .sum();
        assert!(
            *peak <= budget.max(start),
            "{node} peaked at {peak} bytes of running guests, budget {budget}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_stops_the_evacuation_and_a_second_run_finishes_it() {
    let e = env().await;
    let (_, plan, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve03", "max_parallel": 1}),
    )
    .await;
    let digest = plan["digest"].as_str().unwrap_or_else(|| panic!("{text}"));
    let first = plan["plan"]["moves"][0]["vmid"].as_u64().expect("a move") as u32;
    e.sim
        .fail_next_task("pve03", "qmigrate", "migration aborted: injected failure");
    let (err, report, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve03", "confirm": true, "digest": digest, "max_parallel": 1}),
    )
    .await;
    assert!(!err, "a failed move is a result, not an error: {text}");
    assert_eq!(report["failed"][0]["vmid"], first, "{report}");
    assert!(
        report["failed"][0]["error"]
            .as_str()
            .is_some_and(|t| t.contains("injected failure") && t.contains("pve03")),
        "the failure says what happened and where the guest is: {report}"
    );
    assert!(
        !report["not_started"].as_array().expect("list").is_empty(),
        "nothing more started after the failure: {report}"
    );
    assert!(
        report["message"]
            .as_str()
            .is_some_and(|m| m.contains("again")),
        "{report}"
    );
    let placed = e.sim.guest_placement();
    assert_eq!(placed[&first].node, "pve03", "the failed guest stayed");
    assert_eq!(placed[&first].lock, None, "and is not left locked");

    let (_, plan, _) = call(&e.client, "node_evacuate", json!({"node": "pve03"})).await;
    let digest = plan["digest"].as_str().expect("digest");
    let (err, report, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve03", "confirm": true, "digest": digest}),
    )
    .await;
    assert!(!err, "{text}");
    assert!(
        report["failed"].as_array().is_some_and(Vec::is_empty),
        "{report}"
    );
    assert_eq!(
        node_of(&e.sim, first),
        report["moved"][0]["to"].as_str().unwrap_or("")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_cluster_is_refused_with_the_difference() {
    let e = env().await;
    let (_, plan, text) = call(&e.client, "node_evacuate", json!({"node": "pve03"})).await;
    let digest = plan["digest"].as_str().unwrap_or_else(|| panic!("{text}"));
    let vmid = plan["plan"]["moves"][0]["vmid"].as_u64().expect("a move");
    let (err, _, text) = call(
        &e.client,
        "vm_set_tags",
        json!({"vmid": vmid, "add": ["pinned"]}),
    )
    .await;
    assert!(!err, "{text}");
    let (err, _, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve03", "confirm": true, "digest": digest}),
    )
    .await;
    assert!(err, "{text}");
    assert!(
        text.contains("changed") && text.contains(&format!("{vmid} ")) && text.contains("pinned"),
        "the refusal names the difference: {text}"
    );
    assert_eq!(migrations(&e.sim), Vec::<String>::new(), "nothing moved");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_balance_report_flags_the_overcommitted_node_and_suggests_moves() {
    let e = env().await;
    let (err, s, text) = call(&e.client, "cluster_balance", json!({})).await;
    assert!(!err, "{text}");
    assert_eq!(s["memory_ratio"], 1.0);
    assert!(
        s["overcommitted"]
            .as_array()
            .is_some_and(|o| o.iter().any(|n| n == "pve03")),
        "{s}"
    );
    let moves = s["moves"].as_array().expect("moves");
    assert!(
        moves.iter().any(|m| m["from"] == "pve03"),
        "a move off pve03 is suggested: {s}"
    );
    assert!(
        s["imbalance_after"].as_f64() < s["imbalance_before"].as_f64(),
        "{s}"
    );
    assert_eq!(migrations(&e.sim), Vec::<String>::new(), "read-only");
    // The same numbers cluster_status flags.
    let (_, st, _) = call(&e.client, "cluster_status", json!({})).await;
    assert!(
        st["warnings"]
            .to_string()
            .contains("pve03 memory overcommitted"),
        "{st}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_balance_report_shows_measured_use_next_to_the_allocation() {
    let e = env().await;
    let (err, s, text) = call(&e.client, "cluster_balance", json!({})).await;
    assert!(!err, "{text}");
    let measured = e.sim.node_usage();
    let sizes = e.sim.node_memory();
    let usage = s["usage"].as_array().expect("usage");
    let online: Vec<&Value> = usage.iter().filter(|u| u["online"] == true).collect();
    assert!(online.len() >= 3, "{s}");
    for u in online {
        let node = u["node"].as_str().expect("node");
        let (mem, cpu) = measured[node];
        assert_eq!(u["mem_used"].as_u64(), Some(mem), "{node}: {u}");
        assert_eq!(u["maxmem"].as_u64(), Some(sizes[node]), "{node}: {u}");
        let fraction = u["memory_used"].as_f64().expect("memory_used");
        // ratios are written with four decimals
        assert!(
            (fraction - mem as f64 / sizes[node] as f64).abs() <= 0.00005,
            "{u}"
        );
        let used = u["cpu_used"].as_f64().expect("cpu_used");
        assert!((used - cpu).abs() <= 0.00005, "{node}: {used} vs {cpu}");
        // The allocation the planner works on sits beside it, for the same node.
        let alloc = s["before"]
            .as_array()
            .and_then(|b| b.iter().find(|a| a["node"] == node))
            .unwrap_or_else(|| panic!("{node} in before: {s}"));
        assert!(alloc["running_memory"].as_u64().is_some(), "{alloc}");
    }
    // Measured and configured are different numbers: pve03's guests are allocated more
    // than the node uses.
    let pve03 = usage.iter().find(|u| u["node"] == "pve03").expect("pve03");
    let alloc = s["before"]
        .as_array()
        .and_then(|b| b.iter().find(|a| a["node"] == "pve03"))
        .expect("pve03 allocation");
    assert_ne!(pve03["mem_used"], alloc["allocated_memory"], "{s}");
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_ratios_govern_every_plan() {
    // A memory ratio of 0.1 leaves no node room for anything running.
    let e = env_with("\nplacement:\n  memory_ratio: 0.1\n", false).await;
    let (err, _, text) = call(
        &e.client,
        "vm_migrate",
        json!({"vmid": 1003, "target": "pve02"}),
    )
    .await;
    assert!(err && text.contains("overcommitted"), "{text}");
    let (err, plan, text) = call(&e.client, "node_evacuate", json!({"node": "pve01"})).await;
    assert!(!err, "{text}");
    assert!(
        plan["plan"]["moves"]
            .as_array()
            .is_some_and(|m| m.iter().all(|m| m["mode"] == "offline")),
        "only stopped guests and templates can move: {plan}"
    );
    assert_eq!(migrations(&e.sim), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ha_managed_vm_moves_through_the_ha_manager() {
    let e = env().await;
    // The check names the HA resource's state and what it means for the move.
    let (err, s, text) = call(
        &e.client,
        "vm_migrate_check",
        json!({"vmid": 1012, "target": "pve02"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["ha_managed"], true, "{s}");
    assert_eq!(s["ha_state"], "started", "{s}");
    assert!(
        s["notes"]
            .to_string()
            .contains("vm:1012, started): the move is a request to the HA manager"),
        "{s}"
    );
    assert_eq!(s["can_migrate"], true, "{s}");
    // A guest outside HA has no HA state.
    let (_, s, _) = call(
        &e.client,
        "vm_migrate_check",
        json!({"vmid": 1000, "target": "pve02"}),
    )
    .await;
    assert!(s.get("ha_state").is_none_or(Value::is_null), "{s}");
    let (err, s, text) = call_with(
        &e.client,
        "vm_migrate",
        json!({"vmid": 1012, "target": "pve02"}),
        true,
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["ha_managed"], true, "{s}");
    assert!(
        s["upid"]
            .as_str()
            .is_some_and(|u| u.contains(":hamigrate:1012:")),
        "the request only queued a hamigrate: {s}"
    );
    assert_eq!(s["verified_node"], "pve02");
    assert_eq!(node_of(&e.sim, 1012), "pve02", "the HA manager moved it");
    let progress = e.recorder.progress.lock().expect("progress").clone();
    assert!(
        progress.iter().any(|p| p.contains("HA")),
        "the wait for HA is visible: {progress:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn maintenance_after_an_evacuation_goes_over_ssh_and_says_how_to_leave_it() {
    let e = env_with("", true).await;
    let (_, plan, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve03", "maintenance": true}),
    )
    .await;
    let digest = plan["digest"].as_str().unwrap_or_else(|| panic!("{text}"));
    let (err, report, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve03", "maintenance": true, "confirm": true, "digest": digest}),
    )
    .await;
    assert!(!err, "{text}");
    let m = report["maintenance"].as_str().unwrap_or_default();
    assert!(
        m.starts_with("enabled") && m.contains("node-maintenance disable pve03"),
        "{report}"
    );
    let c = common::client_for(&e.sim, common::MANAGER);
    let status: Value = c
        .get("/cluster/ha/status/current", &[])
        .await
        .expect("ha status");
    assert!(
        status.to_string().contains("maintenance"),
        "PVE shows the node in maintenance: {status}"
    );

    // Without SSH the maintenance is refused before anything moves.
    let e = env().await;
    let (err, _, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve03", "maintenance": true}),
    )
    .await;
    assert!(err && text.contains("SSH"), "{text}");
    assert_eq!(migrations(&e.sim), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_strict_ha_node_affinity_rule_limits_where_a_guest_may_go() {
    let mut scenario = proxmox_manager::sim::Scenario::embedded().expect("scenario");
    scenario.ha_rules.push(proxmox_manager::sim::HaRuleSpec {
        rule: "app-on-01-or-03".into(),
        resources: "vm:1012".into(),
        nodes: "pve01:2,pve03".into(),
        strict: true,
        comment: None,
    });
    let e = env_scenario(scenario).await;
    let (err, s, text) = call(
        &e.client,
        "vm_migrate_check",
        json!({"vmid": 1012, "target": "pve02"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["can_migrate"], false, "{s}");
    assert_eq!(s["ha_managed"], true);
    assert_eq!(s["ha_allowed_nodes"], json!(["pve01", "pve03"]), "{s}");
    assert!(s["reasons"].to_string().contains("HA"), "{s}");

    let (err, plan, text) = call(&e.client, "node_evacuate", json!({"node": "pve01"})).await;
    assert!(!err, "{text}");
    let stuck = plan["plan"]["unplaceable"]
        .as_array()
        .and_then(|u| u.iter().find(|g| g["vmid"] == 1012))
        .unwrap_or_else(|| panic!("1012 cannot leave for pve02: {plan}"));
    assert!(stuck.to_string().contains("ha_restricted"), "{stuck}");
    assert!(
        plan["plan"]["moves"]
            .as_array()
            .is_some_and(|m| m.iter().all(|m| m["vmid"] != 1012)),
        "{plan}"
    );
}

/// Containers in an evacuation (pve02 holds them in the default scenario): running ones move
/// with PVE's restart migration through the lxc endpoint, the one with a local bind mount stays
/// with the mount point named.
#[tokio::test(flavor = "multi_thread")]
async fn an_evacuation_moves_containers_with_restart_and_leaves_a_bind_mounted_one() {
    let e = env().await;
    let (err, plan, text) = call(&e.client, "node_evacuate", json!({"node": "pve02"})).await;
    assert!(!err, "{text}");
    let moves = plan["plan"]["moves"].as_array().expect("moves").clone();
    for ct in [1200, 1201] {
        let m = moves
            .iter()
            .find(|m| m["vmid"] == ct)
            .unwrap_or_else(|| panic!("container {ct} is moved: {plan}"));
        assert_eq!(m["mode"], "restart", "{m}");
    }
    let bind = plan["plan"]["unplaceable"]
        .as_array()
        .expect("unplaceable")
        .iter()
        .find(|g| g["vmid"] == 1202)
        .unwrap_or_else(|| panic!("1202 (bind mount) stays: {plan}"))
        .clone();
    assert_eq!(bind["reason"], "local_resource", "{bind}");
    assert!(
        bind["keys"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "mp0")),
        "{bind}"
    );
    let digest = plan["digest"].as_str().expect("digest");
    let (err, report, text) = call(
        &e.client,
        "node_evacuate",
        json!({"node": "pve02", "confirm": true, "digest": digest}),
    )
    .await;
    assert!(!err, "{text}");
    for ct in [1200u32, 1201] {
        let to = moves
            .iter()
            .find(|m| m["vmid"] == ct)
            .map(|m| m["to"].clone())
            .expect("planned");
        assert_eq!(node_of(&e.sim, ct), to, "{ct}: {report}");
        assert!(
            e.sim.guest_placement()[&ct].running,
            "{ct} runs again after its restart migration"
        );
        assert!(
            e.sim
                .requests()
                .iter()
                .any(|r| r.method == "POST" && r.path == format!("/nodes/pve02/lxc/{ct}/migrate")),
            "{ct} went through the lxc endpoint"
        );
    }
    assert_eq!(
        node_of(&e.sim, 1202),
        "pve02",
        "the bind-mounted container stays"
    );
}

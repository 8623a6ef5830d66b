//! Issue 15's bulk operations end to end through MCP against the simulator: a preview that
//! lists exactly the matched guests and changes nothing; a selector matching 20 guests run with
//! `max_parallel: 4`, never exceeded (watched from the simulator's running tasks); a rolling
//! reboot one guest at a time in vmid order; skips with reasons; the selector shared with
//! `vm_list`.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proxmox_manager::sim::{self, Scenario, SimHandle};
use serde_json::{Value, json};

use common::mcp::{Client, call};

struct Env {
    sim: Arc<SimHandle>,
    _dir: tempfile::TempDir,
    client: Client,
}

/// The default scenario plus 20 running guests tagged `fleet`, spread over the three nodes.
fn fleet() -> Scenario {
    let mut s = Scenario::embedded().expect("scenario");
    let model = s
        .vms
        .iter()
        .find(|v| v.vmid == 1003)
        .expect("k8s-cp-01")
        .clone();
    for i in 0..20u32 {
        let mut v = model.clone();
        v.vmid = 2000 + i;
        v.name = format!("fleet-{i:02}");
        v.node = ["pve01", "pve02", "pve03"][i as usize % 3].to_string();
        v.tags = Some("fleet;staging".into());
        v.memory = 512;
        v.cores = 1;
        s.vms.push(v);
    }
    s
}

async fn env() -> Env {
    env_with(fleet()).await
}

async fn env_with(scenario: Scenario) -> Env {
    env_scaled(scenario, common::TIME_SCALE).await
}

async fn env_scaled(scenario: Scenario, time_scale: f64) -> Env {
    let sim = sim::start(sim::SimOptions {
        scenario,
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale,
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (client, _) =
        common::mcp::connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    Env {
        sim: Arc::new(sim),
        _dir: dir,
        client,
    }
}

fn writes(sim: &SimHandle) -> usize {
    sim.requests().iter().filter(|r| r.method != "GET").count()
}

/// Samples the simulator's running tasks of `ttype` until stopped: the most at once, and the
/// guest ids in the order they were first seen running.
fn watch(
    sim: &Arc<SimHandle>,
    ttype: &'static str,
) -> (
    Arc<AtomicBool>,
    std::thread::JoinHandle<(usize, Vec<String>)>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let sim = Arc::clone(sim);
    let handle = std::thread::spawn(move || {
        let (mut peak, mut order) = (0, Vec::<String>::new());
        while !flag.load(Ordering::SeqCst) {
            let now: Vec<String> = sim
                .running_tasks()
                .into_iter()
                .filter(|(_, t, _)| t == ttype)
                .map(|(_, _, id)| id)
                .collect();
            peak = peak.max(now.len());
            for id in now {
                if !order.contains(&id) {
                    order.push(id);
                }
            }
            std::thread::yield_now();
        }
        (peak, order)
    });
    (stop, handle)
}

/// Samples the simulator until stopped: for each guest whose `ttype` task is first seen
/// running, the guests whose task was seen before it, each with whether it was running and its
/// agent answering at that moment.
#[allow(clippy::type_complexity)]
fn watch_back(
    sim: &Arc<SimHandle>,
    ttype: &'static str,
) -> (
    Arc<AtomicBool>,
    std::thread::JoinHandle<Vec<(u32, Vec<(u32, bool, bool)>)>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let sim = Arc::clone(sim);
    let handle = std::thread::spawn(move || {
        let mut starts: Vec<(u32, Vec<(u32, bool, bool)>)> = Vec::new();
        while !flag.load(Ordering::SeqCst) {
            let now: Vec<u32> = sim
                .running_tasks()
                .into_iter()
                .filter(|(_, t, _)| t == ttype)
                .filter_map(|(_, _, id)| id.parse().ok())
                .collect();
            let new: Vec<u32> = now
                .into_iter()
                .filter(|id| starts.iter().all(|(s, _)| s != id))
                .collect();
            if !new.is_empty() {
                let placed = sim.guest_placement();
                let answering = sim.agents_answering();
                for id in new {
                    let before = starts
                        .iter()
                        .map(|(v, _)| {
                            let running = placed.get(v).is_some_and(|g| g.running);
                            (*v, running, answering.get(v).copied().unwrap_or(false))
                        })
                        .collect();
                    starts.push((id, before));
                }
            }
            std::thread::yield_now();
        }
        starts
    });
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_guests_are_shut_down_with_at_most_four_at_once_after_a_preview() {
    let e = env().await;
    // Slow enough that four shutdowns overlap.
    for n in ["pve01", "pve02", "pve03"] {
        e.sim.slow_node(n, 50.0);
    }
    let args = json!({"action": "shutdown", "tags": ["fleet"], "max_parallel": 4});
    let (err, preview, text) = call(&e.client, "bulk_power", args.clone()).await;
    assert!(!err, "{text}");
    assert_eq!(preview["executed"], false);
    let ids: Vec<u64> = preview["guests"]
        .as_array()
        .expect("guests")
        .iter()
        .filter_map(|g| g["vmid"].as_u64())
        .collect();
    assert_eq!(ids, (2000..2020).collect::<Vec<u64>>(), "{preview}");
    assert!(
        preview["guests"].as_array().is_some_and(|g| g
            .iter()
            .all(|g| g["action"] == "shut down gracefully (ACPI)")),
        "{preview}"
    );
    assert_eq!(writes(&e.sim), 0, "a preview changes nothing");

    let mut confirmed = args.clone();
    confirmed["confirm"] = json!(true);
    let (stop, watcher) = watch(&e.sim, "qmshutdown");
    let (err, report, text) = call(&e.client, "bulk_power", confirmed).await;
    stop.store(true, Ordering::SeqCst);
    let (peak, _) = watcher.join().expect("watcher");
    assert!(!err, "{text}");
    assert_eq!(report["executed"], true);
    assert!(peak <= 4, "{peak} shutdowns ran at once");
    assert!(peak >= 2, "the shutdowns did run in parallel ({peak})");
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(|r| r["outcome"] == "done"), "{report}");
    let placed = e.sim.guest_placement();
    assert!((2000..2020).all(|v| !placed[&v].running), "all stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_reboot_goes_one_guest_at_a_time_in_vmid_order() {
    // At 1/100 of real time a reboot takes 80 ms and the guest agent answers 150 ms after the
    // guest starts: a run that did not wait for the agent would start the next reboot while
    // the previous guest's agent is still silent.
    let e = env_scaled(fleet(), 0.01).await;
    let (stop, watcher) = watch(&e.sim, "qmreboot");
    let (back_stop, back_watcher) = watch_back(&e.sim, "qmreboot");
    let (err, report, text) = call(
        &e.client,
        "bulk_power",
        json!({"action": "reboot", "name": "fleet-0?", "rolling": true, "confirm": true}),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    back_stop.store(true, Ordering::SeqCst);
    let (peak, order) = watcher.join().expect("watcher");
    let starts = back_watcher.join().expect("back watcher");
    assert!(!err, "{text}");
    assert_eq!(peak, 1, "one reboot at a time");
    // 'Back' is running with the guest agent answering (the fleet guests have `agent: 1`):
    // whenever the next reboot had started, the one before was back, as the simulator saw it.
    assert_eq!(
        starts.len(),
        10,
        "every reboot was seen starting: {starts:?}"
    );
    for (next, before) in &starts {
        for (vmid, running, answering) in before {
            assert!(
                *running && *answering,
                "vm {vmid} was not back (running {running}, agent {answering}) when {next} started"
            );
        }
    }
    let answering = e.sim.agents_answering();
    let placed = e.sim.guest_placement();
    assert!(
        (2000..2010).all(|v| placed[&v].running && answering[&v]),
        "the last one too was back before the call returned"
    );
    let done: Vec<u64> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["outcome"] == "done")
        .filter_map(|r| r["vmid"].as_u64())
        .collect();
    assert_eq!(done, (2000..2010).collect::<Vec<u64>>(), "{report}");
    let seen: Vec<u64> = order.iter().filter_map(|i| i.parse().ok()).collect();
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(seen, sorted, "rebooted in vmid order");
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_protected_guests_and_other_ranges_are_skipped_with_the_reason() {
    // Besides db-01 (protected, prod): a template tagged prod, a VM inside the template range
    // (100-999) and one outside both ranges, all tagged prod.
    let mut s = fleet();
    let template = s
        .vms
        .iter()
        .find(|v| v.vmid == 100)
        .expect("template")
        .clone();
    let model = s
        .vms
        .iter()
        .find(|v| v.vmid == 1000)
        .expect("web-01")
        .clone();
    let mut t = template;
    (t.vmid, t.name, t.tags) = (150, "prod-tmpl".into(), Some("prod;template".into()));
    s.vms.push(t);
    for (vmid, name) in [(990, "stray-in-tmpl-range"), (20000, "foreign-01")] {
        let mut v = model.clone();
        (v.vmid, v.name, v.tags) = (vmid, name.into(), Some("prod".into()));
        s.vms.push(v);
    }
    let e = env_with(s).await;
    let (err, s, text) = call(
        &e.client,
        "bulk_power",
        json!({"action": "stop", "tags": ["prod"]}),
    )
    .await;
    assert!(!err, "{text}");
    let skipped: BTreeSet<(u64, String)> = s["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|k| {
            (
                k["vmid"].as_u64().unwrap_or(0),
                k["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        skipped
            .iter()
            .any(|(v, r)| *v == 1002 && r.contains("protected")),
        "db-01 is protected: {s}"
    );
    let reason = |vmid: u64| {
        skipped
            .iter()
            .find(|(v, _)| *v == vmid)
            .map(|(_, r)| r.as_str())
            .unwrap_or_else(|| panic!("{vmid} is skipped: {s}"))
    };
    assert_eq!(reason(150), "a template", "{s}");
    assert!(
        reason(990).contains("template range") && reason(990).contains("vmid_ranges.vms"),
        "a VM in the template range is not a managed guest: {s}"
    );
    assert!(reason(20000).contains("outside the managed ranges"), "{s}");
    let acted: Vec<u64> = s["guests"]
        .as_array()
        .expect("guests")
        .iter()
        .filter_map(|g| g["vmid"].as_u64())
        .collect();
    for vmid in [150, 990, 20000, 1002] {
        assert!(!acted.contains(&vmid), "{vmid} is not acted on: {s}");
    }
    assert!(acted.contains(&1000), "web-01 (prod, in range) is: {s}");
    // No selector at all is refused: it would address every guest.
    let (err, _, text) = call(&e.client, "bulk_power", json!({"action": "start"})).await;
    assert!(err && text.contains("at least one of"), "{text}");
    let (err, _, text) = call(
        &e.client,
        "bulk_power",
        json!({"action": "start", "status": "sleeping"}),
    )
    .await;
    assert!(err && text.contains("status"), "{text}");
    assert_eq!(writes(&e.sim), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn vm_list_uses_the_same_selector() {
    let e = env().await;
    let (err, s, text) = call(
        &e.client,
        "vm_list",
        json!({"tags": ["fleet", "prod"], "tags_match": "any", "node": "pve02", "page_size": 200}),
    )
    .await;
    assert!(!err, "{text}");
    let vms: Vec<Value> = s["vms"].as_array().expect("vms").clone();
    assert!(!vms.is_empty());
    assert!(vms.iter().all(|v| v["node"] == "pve02"), "{s}");
    assert!(
        vms.iter().all(|v| {
            let tags = v["tags"].to_string();
            tags.contains("fleet") || tags.contains("prod")
        }),
        "{s}"
    );
    let (err, s, _) = call(&e.client, "vm_list", json!({"vmids": [2001, 2002]})).await;
    assert!(!err);
    assert_eq!(s["total"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_guest_failing_does_not_stop_the_others_without_stop_on_error() {
    let e = env().await;
    // fleet-00, -01, -02 run on pve01, pve02, pve03; the stop on pve02 fails.
    e.sim
        .fail_next_task("pve02", "qmstop", "can't stop: injected failure");
    let (err, report, text) = call(
        &e.client,
        "bulk_power",
        json!({"action": "stop", "vmids": [2000, 2001, 2002], "max_parallel": 1, "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    let outcome = |vmid: u64| {
        report["results"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["vmid"] == vmid))
            .unwrap_or_else(|| panic!("{vmid} reported: {report}"))
            .clone()
    };
    let failed = outcome(2001);
    assert_eq!(failed["outcome"], "failed", "{report}");
    assert!(
        failed["message"].to_string().contains("injected failure"),
        "the guest's own error: {failed}"
    );
    assert_eq!(outcome(2000)["outcome"], "done", "{report}");
    assert_eq!(
        outcome(2002)["outcome"],
        "done",
        "the one after the failure still ran: {report}"
    );
    let placed = e.sim.guest_placement();
    assert!(!placed[&2000].running && !placed[&2002].running);
    assert!(placed[&2001].running, "the failed stop left it running");
    assert!(
        report["message"].to_string().contains("1 failed"),
        "{report}"
    );
}

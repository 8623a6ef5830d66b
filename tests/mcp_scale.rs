//! Read tools on a generated cluster (8 nodes, 1,000 guests) against a reference computed
//! straight from the scenario; paging covers every guest once and costs one listing; the
//! number of API calls of a read does not depend on the guest count; and the server's guest
//! index follows our own migrations and deletions and falls back when a guest moved behind
//! its back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::common;

use proxmox_manager::sim::{self, GenerateSpec, Scenario};
use serde_json::json;

fn scenario() -> Scenario {
    Scenario::generate(&GenerateSpec {
        nodes: 8,
        guests: 1000,
        seed: 20,
        ..GenerateSpec::default()
    })
}

/// Requests the simulator received while `f` ran, as `METHOD path`.
async fn requests_of<F: std::future::Future<Output = T>, T>(
    sim: &sim::SimHandle,
    f: F,
) -> (T, Vec<String>) {
    let before = sim.requests().len();
    let out = f.await;
    let seen = sim
        .requests()
        .into_iter()
        .skip(before)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    (out, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_match_the_scenario_and_cost_a_fixed_number_of_calls() {
    let sc = scenario();
    let sim = common::start_scenario(sc.clone()).await;
    let (client, _dir) = common::connect_server(&sim).await;

    // Reference: straight from the scenario.
    let vms: BTreeSet<u32> = sc
        .vms
        .iter()
        .filter(|v| !v.template)
        .map(|v| v.vmid)
        .collect();
    let mut per_node: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new(); // running, vms, templates
    for v in &sc.vms {
        let e = per_node.entry(v.node.clone()).or_default();
        if v.template {
            e.2 += 1;
        } else {
            e.1 += 1;
            e.0 += u64::from(v.running);
        }
    }
    let running = sc.vms.iter().filter(|v| !v.template && v.running).count() as u64;

    // Every page once: each guest exactly once, one listing for the whole walk.
    let mut seen = Vec::new();
    let mut page = 1;
    let mut calls = Vec::new();
    loop {
        let ((err, out, text), reqs) = requests_of(
            &sim,
            common::mcp::call(&client, "vm_list", json!({"page": page, "page_size": 200})),
        )
        .await;
        assert!(!err, "vm_list page {page}: {text}");
        assert_eq!(out["total"].as_u64(), Some(vms.len() as u64));
        calls.push(reqs.len());
        seen.extend(
            out["vms"]
                .as_array()
                .expect("vms")
                .iter()
                .map(|v| v["vmid"].as_u64().expect("vmid") as u32),
        );
        match out["next_page"].as_u64() {
            Some(n) => page = n,
            None => break,
        }
    }
    assert_eq!(seen.len(), vms.len(), "every guest once");
    assert_eq!(seen.iter().copied().collect::<BTreeSet<u32>>(), vms);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "sorted by vmid");
    assert_eq!(calls[0], 1, "page 1 reads the cluster once: {calls:?}");
    assert!(
        calls[1..].iter().all(|c| *c == 0),
        "later pages read nothing: {calls:?}"
    );

    // Filters against the reference.
    let (err, out, text) = common::mcp::call(
        &client,
        "vm_list",
        json!({"status": "running", "page_size": 1}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(out["total"].as_u64(), Some(running));
    for (node, (_, n, _)) in per_node.iter().take(3) {
        let ((err, out, text), reqs) = requests_of(
            &sim,
            common::mcp::call(&client, "vm_list", json!({"node": node, "page_size": 5})),
        )
        .await;
        assert!(!err, "{text}");
        assert_eq!(out["total"].as_u64(), Some(*n), "guests on {node}");
        assert!(reqs.len() <= 2, "vm_list by node: {reqs:?}");
    }

    // cluster_status totals and node_status against the reference, each a fixed number of calls.
    let ((err, out, text), reqs) = requests_of(
        &sim,
        common::mcp::call(&client, "cluster_status", json!({})),
    )
    .await;
    assert!(!err, "{text}");
    assert!(reqs.len() <= 2, "cluster_status: {reqs:?}");
    for n in out["nodes"].as_array().expect("nodes") {
        let name = n["node"].as_str().expect("node");
        let (r, v, t) = per_node.get(name).copied().unwrap_or_default();
        assert_eq!(
            (
                n["vms_running"].as_u64(),
                n["vms_total"].as_u64(),
                n["templates"].as_u64()
            ),
            (Some(r), Some(v), Some(t)),
            "{name}"
        );
    }
    let (node, (r, v, t)) = per_node.iter().next().expect("a node");
    let ((err, out, text), reqs) = requests_of(
        &sim,
        common::mcp::call(&client, "node_status", json!({"node": node})),
    )
    .await;
    assert!(!err, "{text}");
    assert!(reqs.len() <= 3, "node_status: {reqs:?}");
    assert_eq!(
        (
            out["vms_running"].as_u64(),
            out["vms_total"].as_u64(),
            out["templates"].as_u64()
        ),
        (Some(*r), Some(*v), Some(*t))
    );

    // vm_get goes straight to the guest's node: no whole-cluster listing.
    let stopped = sc
        .vms
        .iter()
        .find(|v| !v.template && !v.running && v.storage == "nfs-shared" && v.lock.is_none())
        .expect("a stopped guest on shared storage");
    let ((err, out, text), reqs) = requests_of(
        &sim,
        common::mcp::call(&client, "vm_get", json!({"vmid": stopped.vmid})),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(out["node"], stopped.node.as_str());
    assert!(
        !reqs.iter().any(|r| r.contains("/cluster/resources")),
        "an indexed guest is found without the listing: {reqs:?}"
    );
    assert!(reqs.len() <= 4, "vm_get: {reqs:?}");

    // Moved behind the server's back: the index is stale, the per-VM call says so, the
    // listing finds the guest on its new node.
    let target = per_node
        .keys()
        .find(|n| **n != stopped.node)
        .expect("another node")
        .clone();
    let pve = common::client_for(&sim, common::MANAGER);
    let upid: String = pve
        .post(
            &format!("/nodes/{}/qemu/{}/migrate", stopped.node, stopped.vmid),
            &[("target", target.clone())],
        )
        .await
        .expect("migrate behind the server's back");
    let upid: proxmox_manager::pve::Upid = upid.parse().expect("upid");
    pve.wait_task(
        &upid,
        proxmox_manager::pve::WaitOptions {
            deadline: Duration::from_secs(60),
            poll_initial: Duration::from_millis(5),
            poll_max: Duration::from_millis(50),
            ..Default::default()
        },
    )
    .await
    .expect("the migration succeeds");
    let ((err, out, text), reqs) = requests_of(
        &sim,
        common::mcp::call(&client, "vm_get", json!({"vmid": stopped.vmid})),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(out["node"], target.as_str(), "found on its new node");
    assert!(
        reqs.iter().any(|r| r.contains("/cluster/resources")),
        "the stale entry fell back to the listing: {reqs:?}"
    );

    // Our own migration moves the entry: the next read goes to the new node directly.
    let back = stopped.node.clone();
    let (err, _, text) = common::mcp::call(
        &client,
        "vm_migrate",
        json!({"vmid": stopped.vmid, "target": back, "allow_outside_ranges": true}),
    )
    .await;
    assert!(!err, "vm_migrate: {text}");
    let ((err, out, text), reqs) = requests_of(
        &sim,
        common::mcp::call(&client, "vm_get", json!({"vmid": stopped.vmid})),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(out["node"], back.as_str());
    assert!(
        !reqs.iter().any(|r| r.contains("/cluster/resources")),
        "after our migration the index knows the node: {reqs:?}"
    );

    // Our own deletion: the guest is gone, and the answer says so.
    let (err, _, text) = common::mcp::call(
        &client,
        "vm_delete",
        json!({"vmid": stopped.vmid, "confirm": true, "allow_outside_ranges": true}),
    )
    .await;
    assert!(!err, "vm_delete: {text}");
    let (err, _, text) = common::mcp::call(&client, "vm_get", json!({"vmid": stopped.vmid})).await;
    assert!(err && text.contains("does not exist"), "{text}");

    // A page after a write is read afresh (the deleted guest is not listed).
    let (err, out, text) =
        common::mcp::call(&client, "vm_list", json!({"page": 2, "page_size": 200})).await;
    assert!(!err, "{text}");
    assert_eq!(out["total"].as_u64(), Some(vms.len() as u64 - 1));

    client.cancel().await.ok();
    sim.shutdown().await;
}

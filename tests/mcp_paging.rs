//! Answers that would grow with the cluster come in pages: on a generated 12-node cluster every
//! default page stays under 8 KB of JSON, the pages together hold every item exactly once, and
//! the totals and the evacuation digest are the whole answer's.

use std::collections::BTreeSet;

use crate::common;

use proxmox_manager::sim::{GenerateSpec, Scenario};
use serde_json::{Value, json};

/// What one page of a tool's answer may weigh: the whole `tools/call` result, which carries
/// the answer twice (structured, and as the JSON text a model reads).
const PAGE_LIMIT: usize = 8 * 1024;

/// The size of the `tools/call` result holding `out` and its text.
fn result_bytes(out: &Value, text: &str) -> usize {
    json!({"content": [{"type": "text", "text": text}], "structuredContent": out, "isError": false})
        .to_string()
        .len()
}

fn scenario() -> Scenario {
    Scenario::generate(&GenerateSpec {
        nodes: 12,
        guests: 600,
        seed: 7,
        ..GenerateSpec::default()
    })
}

/// Walks every page of `tool` (from page 1, following `next_page`), checking each page's size;
/// returns the items of `list` (by `key`) over all pages and the first page.
async fn walk(
    client: &common::mcp::Client,
    tool: &str,
    args: Value,
    list: &[&str],
    key: &str,
) -> (Vec<String>, Value) {
    let mut items = Vec::new();
    let mut first = Value::Null;
    let mut page = 1;
    loop {
        let mut a = args.clone();
        a["page"] = json!(page);
        let (err, out, text) = common::mcp::call(client, tool, a).await;
        assert!(!err, "{tool} page {page}: {text}");
        let bytes = result_bytes(&out, &text);
        assert!(
            bytes < PAGE_LIMIT,
            "{tool} page {page} is {bytes} bytes ({} of JSON text)",
            text.len()
        );
        let mut at = &out;
        for k in list {
            at = &at[*k];
        }
        items.extend(
            at.as_array()
                .expect("a list")
                .iter()
                .map(|i| match &i[key] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                }),
        );
        if page == 1 {
            first = out.clone();
        }
        match out["next_page"].as_u64() {
            Some(n) => page = n as u32,
            None => break,
        }
        assert!(page < 500, "{tool} pages without end");
    }
    (items, first)
}

fn once(items: &[String], what: &str) -> BTreeSet<String> {
    let set: BTreeSet<String> = items.iter().cloned().collect();
    assert_eq!(set.len(), items.len(), "{what}: an item on two pages");
    set
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_hold_everything_once_and_stay_small() {
    let sc = scenario();
    let sim = common::start_scenario(sc.clone()).await;
    let (client, _dir) = common::connect_server(&sim).await;
    let names: BTreeSet<String> = sc.nodes.iter().map(|n| n.name.clone()).collect();

    // cluster_status: every node once, each page with the shared pools and its nodes' own.
    let (nodes, first) = walk(&client, "cluster_status", json!({}), &["nodes"], "node").await;
    assert_eq!(once(&nodes, "cluster_status nodes"), names);
    assert_eq!(first["nodes_total"].as_u64(), Some(names.len() as u64));
    for s in first["storage"].as_array().expect("storage") {
        let node = s["node"].as_str().expect("node");
        assert!(
            s["shared"] == true
                || first["nodes"]
                    .as_array()
                    .expect("nodes")
                    .iter()
                    .any(|n| n["node"] == node),
            "{s}"
        );
    }

    // node_status: every guest of the node (its templates too) once.
    let node = &sc.nodes[0].name;
    let (guests, first) = walk(
        &client,
        "node_status",
        json!({"node": node}),
        &["guests"],
        "vmid",
    )
    .await;
    let on_node = sc.vms.iter().filter(|v| &v.node == node).count()
        + sc.cts.iter().filter(|c| &c.node == node).count();
    assert_eq!(once(&guests, "node_status guests").len(), on_node);
    assert_eq!(first["guests_total"].as_u64(), Some(on_node as u64));

    // access_check: one answer, bounded like a page.
    let (err, out, text) = common::mcp::call(&client, "access_check", json!({})).await;
    assert!(!err, "{text}");
    let bytes = result_bytes(&out, &text);
    assert!(bytes < PAGE_LIMIT, "access_check: {bytes} bytes");

    // vm_list's default pages: every guest (templates aside) once.
    let (vms, first) = walk(&client, "vm_list", json!({}), &["vms"], "vmid").await;
    let guests = sc.vms.iter().filter(|v| !v.template).count()
        + sc.cts.iter().filter(|c| !c.template).count();
    assert_eq!(once(&vms, "vm_list guests").len(), guests);
    assert_eq!(first["total"].as_u64(), Some(guests as u64));

    // cluster_balance: every node once, most loaded first; moves whole on every page.
    let (nodes, first) = walk(&client, "cluster_balance", json!({}), &["before"], "node").await;
    assert_eq!(once(&nodes, "cluster_balance nodes"), names);
    let loads: Vec<f64> = first["before"]
        .as_array()
        .expect("before")
        .iter()
        .map(|a| a["memory_load"].as_f64().expect("load"))
        .collect();
    assert!(loads.windows(2).all(|w| w[0] >= w[1]), "{loads:?}");
    let usage: Vec<&Value> = first["usage"]
        .as_array()
        .expect("usage")
        .iter()
        .map(|u| &u["node"])
        .collect();
    let before: Vec<&Value> = first["before"]
        .as_array()
        .expect("before")
        .iter()
        .map(|a| &a["node"])
        .collect();
    assert_eq!(
        usage, before,
        "usage rows are the page's nodes in the same order"
    );

    // storage_list: every pool row once.
    let (pools, first) = walk(&client, "storage_list", json!({}), &["storage"], "storage").await;
    let rows: usize = sc
        .storages
        .iter()
        .map(|s| if s.shared { 1 } else { sc.nodes.len() })
        .sum();
    assert_eq!(pools.len(), rows);
    assert_eq!(first["total"].as_u64(), Some(rows as u64));

    // storage_content of the shared storage: every volume once, counted per content type.
    let (vols, first) = walk(
        &client,
        "storage_content",
        json!({"storage": "nfs-shared"}),
        &["items"],
        "volid",
    )
    .await;
    let vols = once(&vols, "storage_content volumes");
    assert_eq!(first["total"].as_u64(), Some(vols.len() as u64));
    let counted: u64 = first["by_content"]
        .as_array()
        .expect("by_content")
        .iter()
        .map(|c| c["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(counted, vols.len() as u64);
    let guests_on_nfs = sc.vms.iter().filter(|v| v.storage == "nfs-shared").count();
    assert!(
        vols.len() >= guests_on_nfs,
        "{} < {guests_on_nfs}",
        vols.len()
    );

    // template_list: every template once.
    let (templates, _) = walk(&client, "template_list", json!({}), &["templates"], "vmid").await;
    let expected: BTreeSet<String> = sc
        .vms
        .iter()
        .filter(|v| v.template)
        .map(|v| v.vmid.to_string())
        .collect();
    assert_eq!(once(&templates, "template_list"), expected);

    // backup_list: every archive once, newest first across pages.
    let (archives, first) = walk(&client, "backup_list", json!({}), &["archives"], "volid").await;
    assert_eq!(first["total"].as_u64(), Some(archives.len() as u64));
    once(&archives, "backup_list");

    // node_evacuate's preview: the pages hold every move and unplaceable guest once, the digest
    // and totals are the same on every page, and the plan covers every guest of the node.
    let node = sc.nodes[0].name.clone();
    let mut digests = BTreeSet::new();
    let mut moved = Vec::new();
    let mut stuck = Vec::new();
    let mut page = 1;
    let totals = loop {
        let (err, out, text) = common::mcp::call(
            &client,
            "node_evacuate",
            json!({"node": node, "page": page}),
        )
        .await;
        assert!(!err, "{text}");
        let bytes = result_bytes(&out, &text);
        assert!(
            bytes < PAGE_LIMIT,
            "node_evacuate page {page}: {bytes} bytes"
        );
        digests.insert(out["digest"].as_str().expect("digest").to_string());
        let plan = &out["plan"];
        for m in plan["moves"].as_array().expect("moves") {
            moved.push(m["vmid"].to_string());
            let to = &m["to"];
            assert!(
                plan["after"]
                    .as_array()
                    .expect("after")
                    .iter()
                    .any(|a| &a["node"] == to),
                "the page shows its targets' loads: {m}"
            );
        }
        stuck.extend(
            plan["unplaceable"]
                .as_array()
                .expect("unplaceable")
                .iter()
                .map(|s| s["vmid"].to_string()),
        );
        match out["next_page"].as_u64() {
            Some(n) => page = n as u32,
            None => {
                break (
                    out["moves_total"].as_u64(),
                    out["unplaceable_total"].as_u64(),
                );
            }
        }
    };
    assert_eq!(digests.len(), 1, "one plan, one digest: {digests:?}");
    assert_eq!(totals, (Some(moved.len() as u64), Some(stuck.len() as u64)));
    let on_node: BTreeSet<String> = sc
        .vms
        .iter()
        .filter(|v| v.node == node)
        .map(|v| v.vmid.to_string())
        .collect();
    let planned: BTreeSet<String> = once(&moved, "moves")
        .union(&once(&stuck, "unplaceable"))
        .cloned()
        .collect();
    assert_eq!(
        planned, on_node,
        "every guest of {node} moves or is unplaceable"
    );

    // backup_jobs: lists bounded, totals whole.
    let (err, out, text) = common::mcp::call(&client, "backup_jobs", json!({})).await;
    assert!(!err, "{text}");
    let bytes = result_bytes(&out, &text);
    assert!(bytes < PAGE_LIMIT, "backup_jobs: {bytes} bytes");
    let shown = out["not_covered"].as_array().expect("not_covered").len() as u64;
    assert!(
        out["not_covered_total"]
            .as_u64()
            .is_some_and(|t| t >= shown)
    );
}

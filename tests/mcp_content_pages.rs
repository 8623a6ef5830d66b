//! `storage_content` reads a storage's listing in place and copies out only the page it shows
//! (issue 20): its answer must be exactly what the whole listing gives — the page of volumes
//! by volid with their fields, and the count, bytes and per-content counts over all pages —
//! for the shared storage, a vmid filter, a content filter and a local storage.

use std::collections::BTreeMap;

use crate::common;

use proxmox_manager::sim::{GenerateSpec, Scenario};
use serde_json::{Value, json};

/// The answer computed from the whole raw listing, field by field as the tool documents it.
fn expected(
    mut rows: Vec<proxmox_manager::pve::StorageContentItem>,
    vmid: Option<u32>,
    page: usize,
    size: usize,
) -> Value {
    rows.retain(|r| vmid.is_none_or(|v| r.vmid == Some(v)));
    rows.sort_by(|a, b| a.volid.cmp(&b.volid));
    let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &rows {
        let c = by.entry(r.content.clone().unwrap_or_default()).or_default();
        c.0 += 1;
        c.1 += r.size.unwrap_or(0);
    }
    let items: Vec<Value> = rows
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|r| {
            let mut i = json!({
                "volid": r.volid,
                "content": r.content.clone().unwrap_or_default(),
                "format": r.format,
                "size": r.size.unwrap_or(0),
            });
            if let Some(v) = r.vmid {
                i["vmid"] = json!(v);
            }
            if let Some(t) = r.ctime.and_then(|t| u64::try_from(t).ok()) {
                i["ctime"] = json!(t);
            }
            for (k, v) in [("parent", &r.parent), ("notes", &r.notes)] {
                if let Some(v) = v {
                    i[k] = json!(v);
                }
            }
            if let Some(p) = r.protected {
                i["protected"] = json!(p);
            }
            i
        })
        .collect();
    json!({
        "items": items,
        "total": rows.len(),
        "next_page": (page * size < rows.len()).then_some(page + 1),
        "total_size": rows.iter().map(|r| r.size.unwrap_or(0)).sum::<u64>(),
        "by_content": by
            .into_iter()
            .map(|(content, (count, size))| json!({"content": content, "count": count, "size": size}))
            .collect::<Vec<_>>(),
    })
}

/// The fields [`expected`] computes, from the tool's answer (`next_page` null when absent).
fn answer(out: &Value) -> Value {
    json!({
        "items": out["items"],
        "total": out["total"],
        "next_page": out["next_page"],
        "total_size": out["total_size"],
        "by_content": out["by_content"],
    })
}

/// Arguments; then what they mean: vmid filter, page, page size, content filter, storage.
type Case = (
    Value,
    Option<u32>,
    usize,
    usize,
    Option<&'static str>,
    &'static str,
);

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_content_is_the_whole_listings_page() {
    let sc = Scenario::generate(&GenerateSpec {
        nodes: 6,
        guests: 300,
        seed: 5,
        ..GenerateSpec::default()
    });
    let sim = common::start_scenario(sc.clone()).await;
    let (client, _dir) = common::connect_server(&sim).await;
    let pve = common::client_for(&sim, common::MANAGER);
    let node = sc.nodes[1].name.clone();
    let shared = pve
        .list_storage_content(&node, "nfs-shared", None)
        .await
        .expect("raw listing");
    assert!(
        shared.len() > 100,
        "a listing of many pages: {}",
        shared.len()
    );
    let owner = shared
        .iter()
        .filter_map(|r| r.vmid)
        .max_by_key(|v| shared.iter().filter(|r| r.vmid == Some(*v)).count())
        .expect("a guest with volumes");

    let cases: Vec<Case> = vec![
        (
            json!({"storage": "nfs-shared"}),
            None,
            1,
            15, // the default page
            None,
            "nfs-shared",
        ),
        (
            json!({"storage": "nfs-shared", "page": 3, "page_size": 7}),
            None,
            3,
            7,
            None,
            "nfs-shared",
        ),
        (
            json!({"storage": "nfs-shared", "vmid": owner, "page_size": 2}),
            Some(owner),
            1,
            2,
            None,
            "nfs-shared",
        ),
        (
            json!({"storage": "nfs-shared", "content": "backup", "page": 2, "page_size": 5}),
            None,
            2,
            5,
            Some("backup"),
            "nfs-shared",
        ),
        (
            json!({"storage": "local-lvm", "node": node, "page_size": 200}),
            None,
            1,
            200,
            None,
            "local-lvm",
        ),
    ];
    for (args, vmid, page, size, content, storage) in cases {
        let (err, out, text) = common::mcp::call(&client, "storage_content", args.clone()).await;
        assert!(!err, "{args}: {text}");
        let raw = pve
            .list_storage_content(&node, storage, content)
            .await
            .expect("raw listing");
        let want = expected(raw, vmid, page, size);
        assert!(
            want["total"].as_u64().is_some_and(|t| t > 0),
            "{args}: an empty case proves nothing"
        );
        assert_eq!(answer(&out), want, "{args}");
    }
}

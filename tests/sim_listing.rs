//! The simulator's big listings (`/cluster/resources`, a storage's content) are rendered once
//! per state and served again until the next write: the answers must stay exactly what a
//! fresh rendering gives — a write shows at once, a running guest's clocked numbers agree
//! with its uptime, another caller sees only what its privileges show.

use crate::support;

use serde_json::Value;
use support::{Api, CLAUDE, ROOT};

fn guest(rows: &Value, vmid: u64) -> &Value {
    rows["data"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["vmid"] == vmid)
        .unwrap_or_else(|| panic!("vm {vmid} listed: {rows}"))
}

fn volids(listing: &Value) -> Vec<String> {
    listing["data"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["volid"].as_str().expect("volid").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_follow_every_write_and_the_clock() {
    let api = Api::new(0.001).await;
    let (s, first) = api.get("/cluster/resources").await;
    assert_eq!(s, 200, "{first}");
    let (_, again) = api.get("/cluster/resources").await;
    assert_eq!(
        first["data"].as_array().map(Vec::len),
        again["data"].as_array().map(Vec::len)
    );
    // every running guest's counters are its uptime's, in the same answer
    let mut running = 0;
    for r in again["data"].as_array().expect("rows") {
        if r["status"] == "running" {
            running += 1;
            let up = r["uptime"].as_u64().expect("uptime");
            assert_eq!(r["netin"].as_u64(), Some(up * 3_100), "{r}");
            assert_eq!(r["netout"].as_u64(), Some(up * 3_100 / 3), "{r}");
            assert_eq!(r["diskread"].as_u64(), Some(up * 9_800), "{r}");
            assert_eq!(r["diskwrite"].as_u64(), Some(up * 9_800 / 2), "{r}");
        }
        if r["type"] == "node" && r["status"] == "online" {
            assert!(r["uptime"].as_u64().is_some_and(|u| u > 0), "{r}");
        }
    }
    assert!(running > 0, "the scenario runs guests");

    // a write shows in the next listing, filtered or not
    let node = guest(&first, 1000)["node"]
        .as_str()
        .expect("node")
        .to_string();
    let (s, b) = api
        .call(
            ROOT,
            "PUT",
            &format!("/nodes/{node}/qemu/1000/config"),
            &[("tags", "listing-test")],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, after) = api.get("/cluster/resources").await;
    assert_eq!(guest(&after, 1000)["tags"], "listing-test");
    let (_, vms) = api.get("/cluster/resources?type=vm").await;
    assert_eq!(guest(&vms, 1000)["tags"], "listing-test");

    // a storage's content: a new volume is listed at once, for the caller who may see it
    let path = "/nodes/pve02/storage/local-lvm/content";
    let (s, before) = api.get(path).await;
    assert_eq!(s, 200, "{before}");
    api.h
        .add_file("pve02", "local-lvm", "vm-1098-disk-0", 1 << 30, None)
        .expect("volume added");
    let (_, now) = api.get(path).await;
    let (b, n) = (volids(&before), volids(&now));
    assert!(
        !b.contains(&"local-lvm:vm-1098-disk-0".to_string()),
        "{b:?}"
    );
    assert!(n.contains(&"local-lvm:vm-1098-disk-0".to_string()), "{n:?}");
    assert_eq!(n.len(), b.len() + 1);

    // the cached answer is per caller: another token gets its own view, not root's
    let (s, theirs) = api.call(CLAUDE, "GET", "/cluster/resources", &[]).await;
    assert_eq!(s, 200, "{theirs}");
    let (_, root) = api.get("/cluster/resources").await;
    let count = |v: &Value| v["data"].as_array().map_or(0, Vec::len);
    assert!(count(&theirs) > 0 && count(&theirs) <= count(&root));
}

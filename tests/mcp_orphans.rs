//! Issue 20's bounded `disk_orphans`, through MCP against the simulator: on a generated
//! cluster with orphans of every kind injected (leftovers of deleted guests, `unusedN` disks,
//! unreferenced images, a deleted template's base volume a linked clone still uses, a base
//! volume on LVM-thin whose clones the listing cannot show), walking every page finds exactly
//! the injected orphans, each once, with small answers; a page costs the same number of API
//! calls on a cluster with ten times the guests and reads only its own owners' configs; and a
//! deletion re-checks its volumes against every guest's config.

use std::collections::{BTreeMap, BTreeSet};

use crate::common;

use proxmox_manager::sim::{self, GenerateSpec, Scenario, SimHandle};
use serde_json::{Value, json};

/// What one page of the answer may weigh (the JSON a model reads).
const PAGE_LIMIT: usize = 8 * 1024;

/// Owners per page ([`disk_orphans`]' page size), and the snapshots a generated guest has at
/// most: a page reads at most this many owners' config, snapshot list and snapshot configs.
const OWNERS_PAGE: usize = 50;
const MAX_SNAPSHOTS: usize = 3;

const NODES: usize = 4;

/// Image storages a generated cluster of [`NODES`] nodes has: `local-lvm` on each node, plus
/// `nfs-shared` and `ceph-rbd` once.
const LISTINGS: usize = NODES + 2;

/// The orphans injected, by (node for a local storage or "" for a shared one, volid), with
/// the reason `disk_orphans` must give.
type Expected = BTreeMap<(String, String), &'static str>;

fn file(volid: String, node: Option<&str>, gib: u64) -> sim::scenario::FileSpec {
    sim::scenario::FileSpec {
        volid,
        node: node.map(str::to_string),
        size: gib << 30,
        virtual_size: None,
        notes: None,
        protected: false,
    }
}

/// A guest image volume id of `vmid` on `storage` as the simulator names them.
fn image(storage: &str, vmid: u32, disk: u32) -> String {
    if storage == "nfs-shared" {
        format!("nfs-shared:{vmid}/vm-{vmid}-disk-{disk}.qcow2")
    } else {
        format!("{storage}:vm-{vmid}-disk-{disk}")
    }
}

/// A generated cluster of `guests` guests with the same orphans injected whatever its size.
fn cluster(guests: usize) -> (Scenario, Expected) {
    let mut sc = Scenario::generate(&GenerateSpec {
        nodes: NODES,
        guests,
        seed: 20,
        backup_job: false,
        ..GenerateSpec::default()
    });
    let node = |i: usize| sc.nodes[i].name.clone();
    let (n0, n1) = (node(0), node(1));
    let mut expected = Expected::new();
    let mut files = Vec::new();
    let mut orphan = |files: &mut Vec<sim::scenario::FileSpec>,
                      f: sim::scenario::FileSpec,
                      why: &'static str| {
        let shared = !f.volid.starts_with("local-lvm:");
        let at = if shared {
            String::new()
        } else {
            f.node.clone().unwrap_or_default()
        };
        expected.insert((at, f.volid.clone()), why);
        files.push(f);
    };
    // leftovers of deleted guests: one with two disks, and 25 with one each (more than one
    // page's share of them)
    orphan(
        &mut files,
        file("local-lvm:vm-990-disk-0".into(), Some(&n0), 8),
        "owner_missing",
    );
    for d in 0..2 {
        orphan(
            &mut files,
            file(image("ceph-rbd", 99_000, d), None, 16),
            "owner_missing",
        );
    }
    for v in 99_100..99_125 {
        orphan(
            &mut files,
            file(image("ceph-rbd", v, 0), None, 4),
            "owner_missing",
        );
    }
    // a deleted template's base volume nothing is based on, on a storage that shows clones
    orphan(
        &mut files,
        file("nfs-shared:980/base-980-disk-0.qcow2".into(), None, 4),
        "owner_missing",
    );
    // a deleted template's base volume a linked clone still uses: not an orphan
    files.push(file("nfs-shared:960/base-960-disk-0.qcow2".into(), None, 4));
    // a base volume of a deleted guest on LVM-thin, whose listing shows no clones: kept, warned
    files.push(file("local-lvm:base-970-disk-0".into(), Some(&n1), 4));

    // unused and unreferenced disks of existing guests spread over the VMID range
    let plain: Vec<usize> = sc
        .vms
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.template)
        .map(|(i, _)| i)
        .collect();
    let pick = |k: usize| plain[k * (plain.len() - 1) / 6];
    for (k, i) in (0..7).map(|k| (k, pick(k))) {
        let v = &mut sc.vms[i];
        let vol = image(&v.storage, v.vmid, 7);
        let on = (v.storage == "local-lvm").then(|| v.node.clone());
        let f = file(vol.clone(), on.as_deref(), 2);
        if k % 2 == 0 {
            v.config.insert("unused0".into(), vol);
            orphan(&mut files, f, "unused");
        } else {
            orphan(&mut files, f, "unreferenced");
        }
    }
    // the linked clone of the deleted template 960: a guest on nfs-shared with a second disk,
    // the last one (on another page than 960)
    let clone = sc
        .vms
        .iter_mut()
        .rev()
        .find(|v| !v.template && v.storage == "nfs-shared" && v.snapshots.is_empty())
        .expect("a guest on nfs-shared");
    clone.config.insert(
        "scsi1".into(),
        format!(
            "nfs-shared:960/base-960-disk-0.qcow2/{0}/vm-{0}-disk-3.qcow2,size=4G",
            clone.vmid
        ),
    );
    sc.files.extend(files);
    (sc, expected)
}

struct Env {
    sim: SimHandle,
    client: common::mcp::Client,
    _dir: tempfile::TempDir,
}

async fn env(sc: Scenario) -> Env {
    let sim = common::start_scenario(sc).await;
    let (client, dir) = common::connect_server(&sim).await;
    Env {
        sim,
        client,
        _dir: dir,
    }
}

/// One tool call and the API requests it made (`METHOD path`, in order).
async fn counted(e: &Env, tool: &str, args: Value) -> (Value, String, Vec<String>) {
    let before = e.sim.api_requests();
    let (err, out, text) = common::mcp::call(&e.client, tool, args.clone()).await;
    assert!(!err, "{tool} {args}: {text}");
    let n = (e.sim.api_requests() - before) as usize;
    let journal = e.sim.requests();
    let reqs = journal[journal.len().saturating_sub(n)..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    (out, text, reqs)
}

/// The guest a per-guest request is about (`/nodes/n/qemu/1004/config` → 1004).
fn guest_of(request: &str) -> Option<u32> {
    let parts: Vec<&str> = request.split('/').collect();
    parts
        .iter()
        .position(|p| *p == "qemu" || *p == "lxc")
        .and_then(|i| parts.get(i + 1)?.parse().ok())
}

/// The most a page may cost: the cluster listing, one content listing per image storage, and
/// per owner its config, snapshot list and snapshot configs.
const PAGE_BOUND: usize = 1 + LISTINGS + OWNERS_PAGE * (2 + MAX_SNAPSHOTS);

fn key(o: &Value) -> (String, String) {
    let node = if o["shared"] == true {
        String::new()
    } else {
        o["node"].as_str().unwrap_or_default().to_string()
    };
    (node, o["volid"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_together_finds_each_orphan_once_at_a_bounded_cost() {
    let (sc, expected) = cluster(400);
    let existing: BTreeSet<u32> = sc.vms.iter().map(|v| v.vmid).collect();
    let e = env(sc).await;

    let mut found: Vec<((String, String), String)> = Vec::new();
    let mut warnings = Vec::new();
    let mut owners = 0;
    let mut last_to = 0;
    let mut page = 1;
    loop {
        let (out, text, reqs) = counted(&e, "disk_orphans", json!({"page": page})).await;
        assert!(
            text.len() < PAGE_LIMIT,
            "page {page} is {} bytes",
            text.len()
        );
        assert!(
            reqs.len() <= PAGE_BOUND,
            "page {page}: {} requests",
            reqs.len()
        );
        let listings = reqs.iter().filter(|r| r.ends_with("/content")).count();
        assert_eq!(listings, LISTINGS, "one listing per storage: {reqs:?}");
        // only this page's existing owners are read, each guest's reads once
        let (from, to) = (
            out["vmid_from"].as_u64().expect("from") as u32,
            out["vmid_to"].as_u64().expect("to") as u32,
        );
        assert!(from > last_to && from <= to, "page {page}: {from}-{to}");
        last_to = to;
        let read: BTreeSet<u32> = reqs.iter().filter_map(|r| guest_of(r)).collect();
        assert!(
            read.iter()
                .all(|v| (from..=to).contains(v) && existing.contains(v)),
            "page {page} ({from}-{to}) read {read:?}"
        );
        assert!(read.len() <= OWNERS_PAGE, "page {page}: {read:?}");
        owners += out["owners"].as_u64().expect("owners");
        assert_eq!(
            out["total_bytes"].as_u64(),
            Some(
                out["orphans"]
                    .as_array()
                    .expect("orphans")
                    .iter()
                    .map(|o| o["size"].as_u64().unwrap_or(0))
                    .sum()
            )
        );
        for o in out["orphans"].as_array().expect("orphans") {
            let v = o["vmid"].as_u64().expect("owner") as u32;
            assert!((from..=to).contains(&v), "page {page} ({from}-{to}): {o}");
            found.push((key(o), o["reason"].as_str().unwrap_or("").to_string()));
        }
        warnings.extend(
            out["warnings"]
                .as_array()
                .expect("warnings")
                .iter()
                .map(|w| w.as_str().unwrap_or("").to_string()),
        );
        match out["next_page"].as_u64() {
            Some(n) => page = n,
            None => {
                assert_eq!(
                    out["owners_total"].as_u64(),
                    Some(owners),
                    "owners over pages"
                );
                break;
            }
        }
        assert!(page < 100, "pages without end");
    }
    assert!(page > 8, "400 guests and 30 leftovers take pages: {page}");
    let once: BTreeSet<(String, String)> = found.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(once.len(), found.len(), "an orphan on two pages: {found:?}");
    let got: BTreeMap<(String, String), String> = found.into_iter().collect();
    let want: BTreeMap<(String, String), String> = expected
        .iter()
        .map(|(k, v)| (k.clone(), (*v).to_string()))
        .collect();
    assert_eq!(got, want, "the pages' orphans are the injected ones");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("local-lvm:base-970-disk-0") && w.contains("lvmthin")),
        "the LVM-thin base volume is kept with a warning: {warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("base-960")),
        "the base a clone uses is simply in use: {warnings:?}"
    );

    // The same page past the end: empty, no next page. Page 0 is refused.
    let (out, _, _) = counted(&e, "disk_orphans", json!({"page": page + 1})).await;
    assert_eq!(out["orphans"], json!([]));
    assert_eq!(out["owners"], 0);
    assert!(out.get("next_page").is_none(), "{out}");
    let (err, _, text) = common::mcp::call(&e.client, "disk_orphans", json!({"page": 0})).await;
    assert!(err, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_costs_the_same_with_ten_times_the_guests() {
    let mut costs = Vec::new();
    for guests in [300, 3000] {
        let (sc, _) = cluster(guests);
        let e = env(sc).await;
        let (out, text, reqs) = counted(&e, "disk_orphans", json!({})).await;
        assert!(text.len() < PAGE_LIMIT, "{} bytes", text.len());
        assert_eq!(out["owners"].as_u64(), Some(OWNERS_PAGE as u64), "{out}");
        let (per_guest, fixed): (Vec<&String>, Vec<&String>) =
            reqs.iter().partition(|r| guest_of(r).is_some());
        let read: BTreeSet<u32> = per_guest.iter().filter_map(|r| guest_of(r)).collect();
        assert!(read.len() <= OWNERS_PAGE, "{read:?}");
        assert!(reqs.len() <= PAGE_BOUND, "{} requests", reqs.len());
        let mut fixed: Vec<String> = fixed.into_iter().cloned().collect();
        fixed.sort();
        costs.push((fixed, reqs.len()));
    }
    assert_eq!(
        costs[0].0, costs[1].0,
        "the same cluster and storage listings at 300 and 3,000 guests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_rechecks_its_volumes_against_every_guest() {
    let (mut sc, expected) = cluster(200);
    let existing: BTreeSet<u32> = sc.vms.iter().map(|v| v.vmid).collect();
    let clone = sc
        .vms
        .iter()
        .find(|v| v.config.contains_key("scsi1"))
        .map(|v| v.vmid)
        .expect("the clone");
    // a disk in use, of another guest than the clone (whose config then is not read)
    let user = sc
        .vms
        .iter()
        .find(|v| !v.template && v.storage == "nfs-shared" && v.vmid != clone)
        .map(|v| v.vmid)
        .expect("a guest on nfs-shared");
    // the disk of a deleted guest (99500) attached by hand to another guest: PVE lists it as
    // 99500's (it reads the owner from the name), so a page of owners, which reads no config
    // of the guest using it, calls it an orphan; the deletion reads every guest and keeps it
    let foreign = "nfs-shared:99500/vm-99500-disk-0.qcow2".to_string();
    let holder = sc
        .vms
        .iter_mut()
        .find(|v| {
            !v.template && v.vmid != clone && v.vmid != user && !v.config.contains_key("scsi5")
        })
        .expect("a guest to hold it");
    holder
        .config
        .insert("scsi5".into(), format!("{foreign},size=2G"));
    let holder = holder.vmid;
    let e = env(sc).await;
    let mut page = 1;
    let reported = loop {
        let (r, text, _) = counted(&e, "disk_orphans", json!({"page": page})).await;
        let found = r["orphans"]
            .as_array()
            .unwrap_or_else(|| panic!("orphans: {text}"))
            .iter()
            .find(|o| o["volid"] == foreign.as_str())
            .cloned();
        if let Some(o) = found {
            break o;
        }
        page = r["next_page"]
            .as_u64()
            .unwrap_or_else(|| panic!("{foreign} on no page (last: {text})"));
    };
    assert_eq!(reported["vmid"], 99500, "{reported}");
    assert_eq!(reported["reason"], "owner_missing", "{reported}");
    let pick = |why: &str| -> String {
        expected
            .iter()
            .find(|(_, w)| **w == why)
            .map(|((_, v), _)| v.clone())
            .expect("an orphan of that kind")
    };
    let (missing, unused, unreferenced) =
        (pick("owner_missing"), pick("unused"), pick("unreferenced"));
    let in_use = image("nfs-shared", user, 0);
    let keep = [
        in_use.clone(),
        foreign.clone(),
        "nfs-shared:960/base-960-disk-0.qcow2".to_string(),
        "local-lvm:base-970-disk-0".to_string(),
        "ceph-rbd:vm-98765-disk-0".to_string(),
    ];
    let mut volids: Vec<String> = vec![missing.clone(), unused.clone(), unreferenced.clone()];
    volids.extend(keep.iter().cloned());
    let owner = |v: &str| -> u32 {
        let volname = v.split_once(':').map_or(v, |(_, n)| n);
        let name = volname.rsplit('/').next().unwrap_or(volname);
        name.split('-')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("owner")
    };
    let owners: BTreeSet<u32> = volids.iter().map(|v| owner(v)).collect();

    let (out, _, reqs) = counted(&e, "disk_orphans_delete", json!({"volids": volids})).await;
    assert_eq!(out["executed"], false);
    // a field of volume `v`'s result
    let field = |out: &Value, v: &str, key: &str| -> String {
        out["volumes"]
            .as_array()
            .and_then(|x| x.iter().find(|y| y["volid"] == v))
            .and_then(|y| y[key].as_str())
            .unwrap_or("")
            .to_string()
    };
    let outcome = |out: &Value, v: &str| field(out, v, "outcome");
    for v in [&missing, &unused, &unreferenced] {
        assert_eq!(outcome(&out, v), "would_delete", "{v}: {out}");
    }
    for v in &keep {
        assert_eq!(outcome(&out, v), "kept", "{v}: {out}");
    }
    assert!(
        field(&out, &foreign, "message").contains(&format!("vm {holder} uses it as scsi5")),
        "{out}"
    );
    assert!(reqs.iter().all(|r| r.starts_with("GET ")), "{reqs:?}");
    // Every guest's config is read: a volume can be attached to a guest that is not its owner.
    let read: BTreeSet<u32> = reqs.iter().filter_map(|r| guest_of(r)).collect();
    assert_eq!(
        &read, &existing,
        "the deletion reads every guest before it calls anything an orphan (owners {owners:?})"
    );
    let listed: BTreeSet<&str> = reqs
        .iter()
        .filter(|r| r.ends_with("/content"))
        .filter_map(|r| r.split('/').nth(4))
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from(["ceph-rbd", "local-lvm", "nfs-shared"]),
        "only the volumes' storages are listed: {reqs:?}"
    );

    // A volume of one storage: only that storage is listed; a volume no listing holds costs
    // no config read.
    let (out, _, reqs) = counted(
        &e,
        "disk_orphans_delete",
        json!({"volids": ["ceph-rbd:vm-98765-disk-0"]}),
    )
    .await;
    assert_eq!(outcome(&out, "ceph-rbd:vm-98765-disk-0"), "kept", "{out}");
    assert!(
        reqs.iter().all(|r| guest_of(r).is_none()
            && (!r.ends_with("/content") || r.contains("/storage/ceph-rbd/"))),
        "{reqs:?}"
    );

    // Confirmed: the three orphans go (the unused one through its owner's config), the rest stay.
    let (out, _, _) = counted(
        &e,
        "disk_orphans_delete",
        json!({"volids": volids, "confirm": true}),
    )
    .await;
    for v in [&missing, &unused, &unreferenced] {
        assert_eq!(outcome(&out, v), "deleted", "{v}: {out}");
    }
    for v in &keep {
        assert_eq!(outcome(&out, v), "kept", "{v}: {out}");
    }
    let (again, _, _) = counted(&e, "disk_orphans_delete", json!({"volids": volids})).await;
    for v in volids.iter() {
        assert_eq!(
            outcome(&again, v),
            "kept",
            "{v} after the deletion: {again}"
        );
    }
}

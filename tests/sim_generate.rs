//! Generated scenarios (`Scenario::generate`, `sim --generate NxM --seed S --scenario-out
//! FILE`): valid (they load; every guest on an existing node and storage; unique VMIDs;
//! templates flagged), realistic (storage mix, running and stopped, locks, HA, snapshots, a
//! backup job), deterministic for a seed; and the simulator's `/cluster/resources` on a
//! 64-node / 10,000-guest cluster: exactly one row per guest, node and storage, agreeing with
//! the scenario and with the per-node and per-storage endpoints, counted by the API-call
//! counter.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use proxmox_manager::sim::{GenerateSpec, Scenario};
use serde_json::Value;
use support::{Api, ROOT};

fn spec(nodes: usize, guests: usize, seed: u64) -> GenerateSpec {
    GenerateSpec {
        nodes,
        guests,
        seed,
        ..GenerateSpec::default()
    }
}

fn binary() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_proxmox-manager"))
}

/// Cross-references a scenario as the simulator would, and the realism the generator promises.
fn assert_valid(s: &Scenario, nodes: usize, guests: usize) {
    assert_eq!(s.nodes.len(), nodes);
    assert_eq!(s.vms.len(), guests);
    let node_names: BTreeSet<&str> = s.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(node_names.len(), nodes, "node names are unique");
    let storages: BTreeMap<&str, (&str, bool)> = s
        .storages
        .iter()
        .map(|st| (st.id.as_str(), (st.stype.as_str(), st.shared)))
        .collect();
    let mut vmids = BTreeSet::new();
    for v in &s.vms {
        assert!(vmids.insert(v.vmid), "vmid {} appears twice", v.vmid);
        assert!(
            node_names.contains(v.node.as_str()),
            "{} on {}",
            v.vmid,
            v.node
        );
        assert!(storages.contains_key(v.storage.as_str()), "{}", v.storage);
        if v.template {
            assert!(!v.running, "template {} runs", v.vmid);
            assert!((100..1000).contains(&v.vmid), "template id {}", v.vmid);
            assert!(
                v.tags
                    .as_deref()
                    .is_some_and(|t| t.split(';').any(|x| x == "template"))
            );
            assert!(
                storages[v.storage.as_str()].1,
                "templates live on shared storage"
            );
        } else {
            assert!(v.vmid >= 1000, "guest id {}", v.vmid);
        }
        if let Some(l) = &v.lock {
            assert!(matches!(l.as_str(), "backup" | "migrate"), "lock {l}");
        }
    }
    for f in &s.files {
        let sid = f.volid.split_once(':').map(|(s, _)| s).unwrap_or("");
        assert!(storages.contains_key(sid), "{}", f.volid);
    }
    for t in &s.tasks {
        assert!(node_names.contains(t.node.as_str()), "task on {}", t.node);
    }
    // the storage mix: local dir, local thin LVM, a shared NFS export, a shared Ceph pool
    let types: BTreeSet<(&str, bool)> = storages.values().copied().collect();
    for want in [
        ("dir", false),
        ("lvmthin", false),
        ("nfs", true),
        ("rbd", true),
    ] {
        assert!(types.contains(&want), "{want:?} missing from {types:?}");
    }
}

#[test]
fn a_generated_cluster_is_valid_realistic_and_the_same_for_a_seed() {
    let s = Scenario::generate(&spec(16, 3000, 5));
    assert_valid(&s, 16, 3000);
    let count = |f: &dyn Fn(&proxmox_manager::sim::scenario::VmSpec) -> bool| {
        s.vms.iter().filter(|v| f(v)).count()
    };
    assert!(count(&|v| v.template) > 30);
    assert!(count(&|v| v.running) > 2000);
    assert!(count(&|v| !v.running && !v.template) > 200);
    for storage in ["local-lvm", "nfs-shared", "ceph-rbd"] {
        assert!(count(&|v| v.storage == storage) > 100, "{storage}");
    }
    assert!(count(&|v| v.lock.is_some()) > 0, "some guests are locked");
    assert!(count(&|v| v.ha.is_some()) > 50, "HA-managed guests");
    assert!(
        count(&|v| !v.snapshots.is_empty()) > 50,
        "guests with snapshots"
    );
    assert!(count(&|v| v.protection) > 0, "protected guests");
    assert!(!s.backup_jobs.is_empty(), "a backup job");
    let sizes: BTreeSet<u64> = s.nodes.iter().map(|n| n.memory_gib).collect();
    assert!(sizes.len() >= 3, "node sizes vary: {sizes:?}");

    // deterministic: the same bytes for the same seed, other bytes for another
    let yaml = s.to_yaml().expect("yaml");
    assert_eq!(
        yaml,
        Scenario::generate(&spec(16, 3000, 5))
            .to_yaml()
            .expect("yaml")
    );
    assert_ne!(
        yaml,
        Scenario::generate(&spec(16, 3000, 6))
            .to_yaml()
            .expect("yaml")
    );
    // and the file reads back to the same scenario
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("large.yaml");
    std::fs::write(&path, &yaml).expect("write");
    let back = Scenario::from_file(&path).expect("the written scenario reads back");
    assert_eq!(back.to_yaml().expect("yaml"), yaml);
}

#[test]
fn the_cli_writes_a_generated_scenario_and_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("gen.yaml");
    let run = Command::new(binary())
        .args([
            "sim",
            "--generate",
            "8x400",
            "--seed",
            "3",
            "--scenario-out",
        ])
        .arg(&out)
        .output()
        .expect("run the binary");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("8-node, 400-guest"), "{stdout}");
    let written = std::fs::read_to_string(&out).expect("the file is written");
    assert_eq!(
        written,
        Scenario::generate(&spec(8, 400, 3))
            .to_yaml()
            .expect("yaml"),
        "the CLI writes what the library generates for that seed"
    );
    let s = Scenario::from_file(&out).expect("it loads");
    assert_valid(&s, 8, 400);

    // a malformed size names the value and the expected form, and writes nothing
    for bad in ["64", "0x10", "64x", "ax10", "64x10x3"] {
        let missing = dir.path().join("never.yaml");
        let run = Command::new(binary())
            .args(["sim", "--generate", bad, "--scenario-out"])
            .arg(&missing)
            .output()
            .expect("run the binary");
        assert!(!run.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            err.contains(&format!("'{bad}'")) && err.contains("64x10000"),
            "{bad}: {err}"
        );
        assert!(!missing.exists());
    }
    // --seed and --scenario-out only make sense with --generate
    let run = Command::new(binary())
        .args(["sim", "--seed", "2"])
        .output()
        .expect("run the binary");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--generate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_resources_at_ten_thousand_guests_has_one_row_each() {
    let scenario = Scenario::generate(&spec(64, 10_000, 1));
    let api = Api::with_scenario(scenario.clone(), 0.01).await;

    let before = api.h.api_requests();
    let (status, body) = api.call(ROOT, "GET", "/cluster/resources", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(api.h.api_requests() - before, 1, "one request counted");
    let rows = body["data"].as_array().expect("rows");

    // exactly one row per guest, node and node x storage
    let by_type = |t: &str| rows.iter().filter(|r| r["type"] == t).collect::<Vec<_>>();
    let guests = by_type("qemu");
    let nodes = by_type("node");
    let storages = by_type("storage");
    assert_eq!(
        rows.len(),
        guests.len() + nodes.len() + storages.len(),
        "only these types"
    );
    let want_guests: BTreeMap<u64, &proxmox_manager::sim::scenario::VmSpec> = scenario
        .vms
        .iter()
        .map(|v| (u64::from(v.vmid), v))
        .collect();
    let got_guests: BTreeMap<u64, &Value> = guests
        .iter()
        .map(|r| (r["vmid"].as_u64().expect("vmid"), *r))
        .collect();
    assert_eq!(got_guests.len(), guests.len(), "no guest twice");
    assert_eq!(
        got_guests.keys().collect::<Vec<_>>(),
        want_guests.keys().collect::<Vec<_>>()
    );
    for (vmid, row) in &got_guests {
        let v = want_guests[vmid];
        assert_eq!(row["node"], v.node.as_str(), "{vmid}");
        assert_eq!(row["name"], v.name.as_str(), "{vmid}");
        assert_eq!(row["template"], u64::from(v.template), "{vmid}");
        assert_eq!(row["maxmem"], v.memory * 1024 * 1024, "{vmid}");
        assert_eq!(row["maxdisk"], v.disk_gib * support::GIB, "{vmid}");
        assert_eq!(row["id"], format!("qemu/{vmid}"));
        let running = v.running && !v.template;
        assert_eq!(
            row["status"],
            if running { "running" } else { "stopped" },
            "{vmid}"
        );
        assert_eq!(row["tags"].as_str(), v.tags.as_deref(), "{vmid}");
    }
    let want_nodes: BTreeSet<&str> = scenario.nodes.iter().map(|n| n.name.as_str()).collect();
    let got_nodes: Vec<&str> = nodes
        .iter()
        .map(|r| r["node"].as_str().expect("node"))
        .collect();
    assert_eq!(got_nodes.len(), want_nodes.len());
    assert_eq!(
        got_nodes.iter().copied().collect::<BTreeSet<_>>(),
        want_nodes
    );
    let want_storages: BTreeSet<(String, String)> = scenario
        .nodes
        .iter()
        .flat_map(|n| {
            scenario
                .storages
                .iter()
                .map(move |s| (n.name.clone(), s.id.clone()))
        })
        .collect();
    let got_storages: Vec<(String, String)> = storages
        .iter()
        .map(|r| {
            (
                r["node"].as_str().expect("node").to_string(),
                r["storage"].as_str().expect("storage").to_string(),
            )
        })
        .collect();
    assert_eq!(got_storages.len(), want_storages.len());
    assert_eq!(
        got_storages.iter().cloned().collect::<BTreeSet<_>>(),
        want_storages
    );

    // the listing's numbers agree with the per-node and per-storage endpoints
    let (_, listed_nodes) = api.call(ROOT, "GET", "/nodes", &[]).await;
    let listed: BTreeMap<&str, &Value> = listed_nodes["data"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| (n["node"].as_str().expect("node"), n))
        .collect();
    for n in scenario.nodes.iter().take(8) {
        let row = nodes
            .iter()
            .find(|r| r["node"] == n.name.as_str())
            .expect("row");
        let (_, status) = api
            .call(ROOT, "GET", &format!("/nodes/{}/status", n.name), &[])
            .await;
        assert_eq!(row["mem"], status["data"]["memory"]["used"], "{}", n.name);
        assert_eq!(row["disk"], status["data"]["rootfs"]["used"], "{}", n.name);
        assert_eq!(row["cpu"], status["data"]["cpu"], "{}", n.name);
        assert_eq!(listed[n.name.as_str()]["mem"], row["mem"], "{}", n.name);
        assert_eq!(listed[n.name.as_str()]["cpu"], row["cpu"], "{}", n.name);
        for s in &scenario.storages {
            let srow = storages
                .iter()
                .find(|r| r["node"] == n.name.as_str() && r["storage"] == s.id.as_str())
                .expect("storage row");
            let (_, st) = api
                .call(
                    ROOT,
                    "GET",
                    &format!("/nodes/{}/storage/{}/status", n.name, s.id),
                    &[],
                )
                .await;
            assert_eq!(srow["disk"], st["data"]["used"], "{} {}", n.name, s.id);
            assert_eq!(srow["maxdisk"], st["data"]["total"], "{} {}", n.name, s.id);
        }
    }

    // the counter counts every request, answered or refused
    let before = api.h.api_requests();
    let (status, _) = api
        .call(ROOT, "GET", "/cluster/resources", &[("type", "vm")])
        .await;
    assert_eq!(status, 200);
    let (status, _) = api.call(ROOT, "GET", "/nodes/pve99/status", &[]).await;
    assert_eq!(status, 500);
    let (status, _) = api.call(ROOT, "GET", "/no/such/path", &[]).await;
    assert_eq!(status, 501);
    assert_eq!(api.h.api_requests() - before, 3);
    api.h.shutdown().await;
}

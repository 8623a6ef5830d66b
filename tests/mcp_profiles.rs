//! Issue 16's cluster profiles end to end through MCP against the simulator, with stand-ins for
//! `talosctl`, `flux` and `kubectl` (tests/fakes: they accept exactly the real CLIs' flags the
//! product uses, record every call and write realistic files): validation catching each
//! isolation rule; a plan that changes nothing; a 3 control-plane + 2 worker spin-up with every
//! phase in order, spread over the nodes, bounded parallelism watched from the simulator; an
//! `apply-config` failure on one node, then a resumed run that recreates nothing; a tear-down
//! that leaves a decoy carrying two of the three tags alone; a rebuild reusing the secrets.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proxmox_manager::sim::{self, Scenario, SimHandle};
use serde_json::{Value, json};

use common::mcp::{Client, Recorder, call, call_with};

const TAGS: [&str; 3] = ["kubernetes", "lab", "talos"];

const STATIC_NET: &str =
    "  node_cidr: 10.30.0.0/24\n  addresses: static\n  gateway: 10.30.0.1\n  first_host: 10\n";

struct Env {
    sim: Arc<SimHandle>,
    dir: tempfile::TempDir,
    client: Client,
    progress: Recorder,
}

impl Env {
    fn clusters(&self) -> PathBuf {
        self.dir.path().join("clusters")
    }
    fn fake(&self) -> PathBuf {
        self.dir.path().join("fake")
    }
    fn state(&self, name: &str) -> PathBuf {
        self.dir.path().join("proxmox-manager/profiles").join(name)
    }
    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(self.fake().join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

async fn env(time_scale: f64, profiles: &[(&str, String)]) -> Env {
    env_with(time_scale, profiles, None).await
}

/// [`env`], with an Ansible inventory (INI text) in a fleet-infra directory when given.
async fn env_with(time_scale: f64, profiles: &[(&str, String)], inventory: Option<&str>) -> Env {
    let sim = sim::start(sim::SimOptions {
        scenario: Scenario::embedded().expect("scenario"),
        listen: "127.0.0.1:0".parse().expect("addr"),
        time_scale,
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("tmp");
    let clusters = dir.path().join("clusters");
    std::fs::create_dir_all(&clusters).expect("mkdir");
    let fakes = common::fake_clis::FakeClis::install(dir.path());
    for (name, text) in profiles {
        std::fs::write(clusters.join(format!("{name}.yaml")), text).expect("profile");
    }
    let mut yaml = common::config_yaml(sim.addr().port(), &sim.fingerprint());
    yaml.push_str(&fakes.paths_yaml(&clusters));
    if let Some(ini) = inventory {
        common::external::require("ansible-inventory");
        let fleet = dir.path().join("fleet-infra");
        std::fs::create_dir_all(fleet.join("playbooks")).expect("mkdir");
        std::fs::write(fleet.join("hosts.ini"), ini).expect("inventory");
        yaml.push_str(&format!(
            "ansible:\n  fleet_infra: {}\n  inventory: hosts.ini\n",
            fleet.display()
        ));
    }
    let config = dir.path().join("cluster-config.yaml");
    std::fs::write(&config, yaml).expect("config");
    let (client, progress) =
        common::mcp::connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    Env {
        sim: Arc::new(sim),
        dir,
        client,
        progress,
    }
}

fn writes(sim: &SimHandle) -> usize {
    sim.requests().iter().filter(|r| r.method != "GET").count()
}

/// Guests carrying all of `tags`, by vmid, from the simulator's own state.
fn tagged(sim: &SimHandle, tags: &[&str]) -> BTreeMap<u32, String> {
    sim.guest_placement()
        .into_iter()
        .filter(|(vmid, g)| {
            !g.template && {
                let t = guest_tags(sim, *vmid);
                tags.iter().all(|x| t.contains(*x))
            }
        })
        .map(|(vmid, g)| (vmid, g.node))
        .collect()
}

fn guest_tags(sim: &SimHandle, vmid: u32) -> BTreeSet<String> {
    sim.guest_config(vmid)
        .and_then(|c| c.get("tags").cloned())
        .unwrap_or_default()
        .split([';', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The most tasks of each type running at once, overall and per node, sampled until stopped.
type Peaks = BTreeMap<String, (usize, BTreeMap<String, usize>)>;

fn watch(sim: &Arc<SimHandle>) -> (Arc<AtomicBool>, std::thread::JoinHandle<Peaks>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let sim = Arc::clone(sim);
    let handle = std::thread::spawn(move || {
        let mut peaks: Peaks = BTreeMap::new();
        while !flag.load(Ordering::Relaxed) {
            let running = sim.running_tasks();
            let mut now: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
            for (node, ttype, _) in running {
                let e = now.entry(ttype).or_default();
                e.0 += 1;
                *e.1.entry(node).or_default() += 1;
            }
            for (ttype, (n, per)) in now {
                let p = peaks.entry(ttype).or_default();
                p.0 = p.0.max(n);
                for (node, c) in per {
                    let x = p.1.entry(node).or_default();
                    *x = (*x).max(c);
                }
            }
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
        peaks
    });
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_catches_each_isolation_rule_and_a_plan_changes_nothing() {
    let good = common::lab_profile(
        "talos-lab",
        STATIC_NET,
        2,
        "[talos, kubernetes, lab]",
        "clusters/lab",
    );
    let overlap = common::lab_profile("overlap", "", 0, "[talos, overlap]", "clusters/overlap")
        .replace("10.96.0.0/12", "10.100.0.0/16")
        .replace("10.244.0.0/16", "10.244.128.0/17");
    let subset = common::lab_profile("subset", "", 0, "[talos, lab]", "clusters/subset")
        .replace("10.244.0.0/16", "10.50.0.0/16")
        .replace("10.96.0.0/12", "10.51.0.0/16");
    let flux = common::lab_profile("sameflux", "", 0, "[talos, sameflux]", "clusters/lab")
        .replace("10.244.0.0/16", "10.52.0.0/16")
        .replace("10.96.0.0/12", "10.53.0.0/16");
    let wrongtype = "name: wrongtype\ntype: vms\nnetwork:\n  pod_cidr: 10.60.0.0/16\nnodes:\n  controlplane:\n    count: 1\n    cores: 1\n    memory: 1024\n    disk: 12G\ntemplate: 101\ntags: [wrongtype]\n".to_string();
    let taken = "name: taken\ntype: vms\nnetwork:\n  pod_cidr: 10.61.0.0/16\nnodes:\n  controlplane:\n    count: 2\n    cores: 1\n    memory: 1024\n    disk: 8G\n    start_vmid: 1000\ntemplate: 100\ntags: [taken]\n".to_string();
    let huge = "name: huge\ntype: vms\nnetwork:\n  pod_cidr: 10.62.0.0/16\nnodes:\n  controlplane:\n    count: 3\n    cores: 2\n    memory: 9000000\n    disk: 8G\ntemplate: 100\ntags: [huge]\n".to_string();
    let typo = good
        .replace("name: talos-lab", "name: typo")
        .replace("  pod_cidr:", "  pod_cdir:");
    let e = env(
        common::TIME_SCALE,
        &[
            ("talos-lab", good),
            ("overlap", overlap),
            ("subset", subset),
            ("sameflux", flux),
            ("wrongtype", wrongtype),
            ("taken", taken),
            ("huge", huge),
            ("typo", typo),
        ],
    )
    .await;
    let (err, list, text) = call(&e.client, "profile_list", json!({})).await;
    assert!(!err, "{text}");
    let names: Vec<&str> = list["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert!(
        names.contains(&"talos-lab")
            && names.contains(&"talos-staging")
            && names.contains(&"k3s-lab"),
        "{names:?}"
    );
    let (err, v, text) = call(&e.client, "profile_validate", json!({})).await;
    assert!(!err, "{text}");
    assert_eq!(v["valid"], false);
    let problems = |name: &str| -> Vec<String> {
        v["profiles"]
            .as_array()
            .expect("profiles")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} checked"))["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .map(|s| s.as_str().expect("str").to_string())
            .collect()
    };
    let file = |name: &str| {
        e.clusters()
            .join(format!("{name}.yaml"))
            .display()
            .to_string()
    };
    let p = problems("overlap");
    assert!(
        p.iter()
            .any(|s| s.starts_with(&format!("{}:5: ", file("overlap")))
                && s.contains("overlaps network.pod_cidr 10.244.0.0/16 of profile talos-lab")),
        "{p:?}"
    );
    let p = problems("subset");
    assert!(
        p.iter().any(
            |s| s.contains("tags [lab, talos] do not identify this cluster alone")
                && s.contains("talos-lab")
        ),
        "{p:?}"
    );
    let p = problems("sameflux");
    assert!(
        p.iter()
            .any(|s| s.contains("flux path clusters/lab") && s.contains("talos-lab")),
        "{p:?}"
    );
    let p = problems("wrongtype");
    assert!(
        p.iter()
            .any(|s| s.starts_with(&format!("{}:11: ", file("wrongtype")))
                && s.contains("is a Talos image")),
        "{p:?}"
    );
    let p = problems("taken");
    assert!(
        p.iter()
            .any(|s| s.contains("vmid 1000 (from start_vmid) is already used")),
        "{p:?}"
    );
    let p = problems("huge");
    assert!(
        p.iter().any(|s| s.contains("huge-cp-1 fits on no node")),
        "{p:?}"
    );
    let p = problems("typo");
    assert!(
        p.iter()
            .any(|s| s.starts_with(&format!("{}:5: ", file("typo")))
                && s.contains("did you mean `pod_cidr`")),
        "{p:?}"
    );
    // The good profile is only flagged for the overlap the other one causes.
    let p = problems("talos-lab");
    assert!(
        p.iter()
            .all(|s| s.contains("overlap") || s.contains("sameflux")),
        "{p:?}"
    );

    // A plan changes nothing.
    let before = (writes(&e.sim), e.sim.guest_placement());
    let (err, plan, text) = call(&e.client, "profile_up", json!({"profile": "talos-lab"})).await;
    assert!(!err, "{text}");
    assert_eq!(plan["executed"], false);
    let guests = plan["guests"].as_array().expect("guests");
    let names: Vec<&str> = guests
        .iter()
        .map(|g| g["name"].as_str().expect("n"))
        .collect();
    assert_eq!(
        names,
        [
            "talos-lab-cp-1",
            "talos-lab-cp-2",
            "talos-lab-cp-3",
            "talos-lab-worker-1",
            "talos-lab-worker-2"
        ]
    );
    assert!(guests.iter().all(|g| {
        g["vmid"]
            .as_u64()
            .is_some_and(|v| (1000..=9999).contains(&v))
    }));
    assert_eq!(guests[3]["address"], "10.30.0.13");
    let phases: Vec<&str> = plan["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["name"].as_str().expect("n"))
        .collect();
    assert_eq!(
        phases,
        [
            "allocate",
            "place",
            "clone",
            "configure",
            "start",
            "address",
            "talos_secrets",
            "talos_config",
            "talos_apply",
            "talos_bootstrap",
            "talos_health",
            "kubeconfig",
            "flux"
        ]
    );
    assert_eq!(
        (writes(&e.sim), e.sim.guest_placement()),
        before,
        "the plan changed the cluster"
    );
    assert!(e.calls().is_empty(), "the plan ran an external program");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_up_resumes_after_a_failure_tears_down_by_tags_and_rebuilds() {
    let profile = common::lab_profile(
        "talos-lab",
        STATIC_NET,
        2,
        "[talos, kubernetes, lab]",
        "clusters/lab",
    );
    // The fleet's inventory knows worker-2 by name: the tear-down preview names it.
    let inventory = "[talos]\ntalos-lab-worker-2\n\n[all:vars]\nansible_connection=local\n";
    let e = env_with(0.01, &[("talos-lab", profile)], Some(inventory)).await;
    // A decoy with two of the three tags.
    let (err, decoy, text) = call(
        &e.client,
        "vm_create",
        json!({"template": "100", "name": "decoy", "tags": ["talos", "lab"]}),
    )
    .await;
    assert!(!err, "{text}");
    let decoy = decoy["vmid"].as_u64().expect("vmid") as u32;
    // worker-1 (10.30.0.13) refuses its configuration the first time.
    std::fs::write(e.fake().join("fail-apply"), "10.30.0.13").expect("control");

    let (stop, watcher) = watch(&e.sim);
    let (err, _, text) = call_with(
        &e.client,
        "profile_up",
        json!({"profile": "talos-lab", "confirm": true, "max_parallel": 3}),
        true,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let peaks = watcher.join().expect("watcher");
    assert!(err, "the apply-config failure is an error: {text}");
    assert!(text.contains("talos_apply"), "{text}");
    assert!(text.contains("talos-lab-worker-1"), "{text}");
    assert!(
        text.contains("talosctl apply-config --insecure --nodes 10.30.0.13 --file"),
        "{text}"
    );
    assert!(text.contains("call profile_up again"), "{text}");

    // Five guests, every one tagged with the profile's tags and its role, spread.
    let members = tagged(&e.sim, &TAGS);
    assert_eq!(members.len(), 5, "{members:?}");
    let nodes: BTreeSet<&String> = members.values().collect();
    assert!(nodes.len() >= 2, "spread over the nodes: {members:?}");
    let placement = e.sim.guest_placement();
    assert!(members.keys().all(|v| placement[v].running), "all started");
    assert!(!members.contains_key(&decoy));
    // Bounded: clones all run on the template's node (pve01): at most per_node_parallel (2);
    // starts at most max_parallel (3) in all and 2 per node.
    let clone = peaks.get("qmclone").cloned().unwrap_or_default();
    assert!(clone.0 >= 1 && clone.0 <= 2, "clone peak {peaks:?}");
    if let Some(start) = peaks.get("qmstart") {
        assert!(
            start.0 <= 3 && start.1.values().all(|n| *n <= 2),
            "start peaks {peaks:?}"
        );
    }
    if let Some(m) = peaks.get("qmigrate") {
        assert!(m.0 <= 2, "migrate peaks {peaks:?}");
    }
    // Phases in order, as progress.
    let progress = e.progress.progress.lock().expect("progress").clone();
    let first = |needle: &str| {
        progress
            .iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no progress `{needle}` in {progress:?}"))
    };
    let order = [
        first("phase clone"),
        first("phase start"),
        first("phase address"),
        first("phase talos_secrets"),
        first("phase talos_config"),
        first("phase talos_apply"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(
        progress.iter().any(|m| m.contains("talosctl: Created")),
        "command output streamed"
    );

    // Resume: nothing recreated, only the failed guest's configuration applied.
    std::fs::remove_file(e.fake().join("fail-apply")).expect("rm control");
    let clones_before = e
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/clone"))
        .count();
    let (err, up, text) = call(
        &e.client,
        "profile_up",
        json!({"profile": "talos-lab", "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    let clones_after = e
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/clone"))
        .count();
    assert_eq!(clones_before, clones_after, "nothing recreated");
    assert_eq!(tagged(&e.sim, &TAGS), members);
    let status_of = |name: &str| {
        up["phases"]
            .as_array()
            .expect("phases")
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["status"].as_str().expect("s").to_string())
    };
    assert_eq!(status_of("clone").as_deref(), Some("already_done"));
    assert_eq!(status_of("talos_secrets").as_deref(), Some("already_done"));
    assert_eq!(status_of("talos_apply").as_deref(), Some("done"));
    assert_eq!(status_of("flux").as_deref(), Some("done"));
    let calls = e.calls();
    let argv = |c: &Value| {
        c["argv"]
            .as_array()
            .expect("argv")
            .iter()
            .map(|a| a.as_str().expect("s").to_string())
            .collect::<Vec<_>>()
    };
    let seq: Vec<String> = calls
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["prog"].as_str().expect("p"),
                argv(c).first().cloned().unwrap_or_default()
            )
        })
        .collect();
    let pos = |s: &str| {
        seq.iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s} not called: {seq:?}"))
    };
    let order = [
        pos("talosctl gen"),
        pos("talosctl apply-config"),
        pos("talosctl bootstrap"),
        pos("talosctl health"),
        pos("talosctl kubeconfig"),
        pos("flux bootstrap"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{seq:?}");
    assert_eq!(
        seq.iter().filter(|s| *s == "talosctl gen").count(),
        2,
        "gen secrets and gen config once each: {seq:?}"
    );
    let applies: Vec<String> = calls
        .iter()
        .filter(|c| argv(c).first().map(String::as_str) == Some("apply-config"))
        .map(|c| argv(c)[3].clone())
        .collect();
    for ip in ["10.30.0.10", "10.30.0.11", "10.30.0.12", "10.30.0.14"] {
        assert_eq!(
            applies.iter().filter(|a| *a == ip).count(),
            1,
            "{ip} applied once: {applies:?}"
        );
    }
    assert_eq!(
        applies.iter().filter(|a| *a == "10.30.0.13").count(),
        2,
        "{applies:?}"
    );
    let flux = calls
        .iter()
        .find(|c| c["prog"] == "flux")
        .expect("flux called");
    assert!(
        argv(flux).contains(&"--url=ssh://git@github.com/example/fleet-infra.git".to_string()),
        "{flux}"
    );
    // Secrets are files (0600) whose contents never reach argv.
    let state = e.state("talos-lab");
    let secret_text = std::fs::read_to_string(state.join("secrets.yaml")).expect("secrets");
    for f in [
        "secrets.yaml",
        "config/talosconfig",
        "config/controlplane.yaml",
        "kubeconfig",
        "state.json",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join(f))
            .expect(f)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let secret_line = secret_text
        .lines()
        .find(|l| l.contains("secret:"))
        .expect("a secret")
        .split(": ")
        .nth(1)
        .expect("v")
        .to_string();
    assert!(
        !calls.iter().any(|c| c.to_string().contains(&secret_line)),
        "a secret reached argv"
    );

    // Status: five members, the decoy flagged, Talos and Kubernetes healthy.
    let (err, st, text) = call(&e.client, "profile_status", json!({"profile": "talos-lab"})).await;
    assert!(!err, "{text}");
    assert_eq!(st["guests"].as_array().expect("g").len(), 5);
    assert!(
        st["partial"]
            .as_array()
            .expect("p")
            .iter()
            .any(|g| g["vmid"] == decoy),
        "{st}"
    );
    assert_eq!(st["talos"], "Talos: healthy");
    assert_eq!(st["kubernetes"], "Kubernetes: 5 of 5 node(s) Ready");

    // Tear-down: the preview lists exactly the members and flags the decoy; without
    // ignore_partial the confirmed call is refused and deletes nothing.
    let (err, prev, text) = call(&e.client, "profile_down", json!({"profile": "talos-lab"})).await;
    assert!(!err, "{text}");
    let listed: BTreeSet<u32> = prev["guests"]
        .as_array()
        .expect("g")
        .iter()
        .map(|g| g["vmid"].as_u64().expect("v") as u32)
        .collect();
    assert_eq!(listed, members.keys().copied().collect());
    let managed: Vec<(&str, &str)> = prev["guests"]
        .as_array()
        .expect("g")
        .iter()
        .filter_map(|g| Some((g["name"].as_str()?, g["ansible_managed"].as_str()?)))
        .collect();
    assert_eq!(
        managed,
        [("talos-lab-worker-2", "talos-lab-worker-2")],
        "{prev}"
    );
    assert!(
        prev["message"]
            .as_str()
            .expect("message")
            .contains("Ansible-managed"),
        "{prev}"
    );
    assert!(
        prev["partial"]
            .as_array()
            .expect("p")
            .iter()
            .any(|g| g["vmid"] == decoy)
    );
    let (err, _, text) = call(
        &e.client,
        "profile_down",
        json!({"profile": "talos-lab", "confirm": true}),
    )
    .await;
    assert!(
        err && text.contains("decoy") && text.contains("ignore_partial"),
        "{text}"
    );
    assert_eq!(tagged(&e.sim, &TAGS).len(), 5, "nothing deleted");
    let others: BTreeSet<u32> = e
        .sim
        .guest_placement()
        .keys()
        .copied()
        .filter(|v| !members.contains_key(v))
        .collect();
    let (err, down, text) = call(
        &e.client,
        "profile_down",
        json!({"profile": "talos-lab", "confirm": true, "ignore_partial": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert!(tagged(&e.sim, &TAGS).is_empty());
    let left: BTreeSet<u32> = e.sim.guest_placement().keys().copied().collect();
    assert_eq!(left, others, "only the profile's guests were deleted");
    assert!(left.contains(&decoy));
    let archived = PathBuf::from(down["archived_state"].as_str().expect("archived"));
    assert!(archived.join("secrets.yaml").is_file() && !state.exists());

    // Rebuild: one preview covering both; then down (nothing left) and up, the secrets reused.
    let (err, prev, text) = call(
        &e.client,
        "profile_rebuild",
        json!({"profile": "talos-lab", "ignore_partial": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(prev["executed"], false);
    assert_eq!(prev["up"]["guests"].as_array().expect("g").len(), 5);
    let (err, _, text) = call(
        &e.client,
        "profile_rebuild",
        json!({"profile": "talos-lab", "ignore_partial": true, "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(tagged(&e.sim, &TAGS).len(), 5);
    assert_eq!(
        std::fs::read_to_string(state.join("secrets.yaml")).expect("secrets"),
        secret_text,
        "secrets reused"
    );
    let gens = e
        .calls()
        .iter()
        .filter(|c| argv(c)[..2] == ["gen".to_string(), "secrets".to_string()])
        .count();
    assert_eq!(gens, 1, "no new secrets on rebuild");
    // The audit log records the mutating calls, never a secret.
    let audit =
        std::fs::read_to_string(e.dir.path().join("proxmox-manager/audit.jsonl")).expect("audit");
    assert!(
        audit.contains("profile_up")
            && audit.contains("profile_down")
            && audit.contains("profile_rebuild")
    );
    assert!(!audit.contains(&secret_line));
}

/// A DHCP Talos profile whose template has no guest agent: the address comes from the node's
/// neighbour table (`ip neigh` over SSH) by net0's MAC, and Talos is configured at that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dhcp_guest_without_agent_is_found_in_the_neighbour_table() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let clusters = dir.path().join("clusters");
    std::fs::create_dir_all(&clusters).expect("mkdir");
    let profile = common::lab_profile("dhcp-lab", "", 0, "[talos, dhcplab]", "clusters/dhcp")
        .replace("    count: 3\n", "    count: 1\n");
    std::fs::write(clusters.join("dhcp-lab.yaml"), profile).expect("profile");
    let fakes = common::fake_clis::FakeClis::install(dir.path());
    let config = common::write_ssh_config(dir.path(), &sim);
    let mut yaml = std::fs::read_to_string(&config).expect("config");
    yaml.push_str(&fakes.paths_yaml(&clusters));
    std::fs::write(&config, yaml).expect("config");
    let (client, _) =
        common::mcp::connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    let (err, plan, text) = call(&client, "profile_up", json!({"profile": "dhcp-lab"})).await;
    assert!(!err, "{text}");
    let address = plan["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["name"] == "address")
        .expect("address phase");
    assert!(
        address["detail"]
            .as_str()
            .expect("detail")
            .contains("neighbour table"),
        "{address}"
    );
    let (err, up, text) = call(
        &client,
        "profile_up",
        json!({"profile": "dhcp-lab", "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    let g = &up["guests"][0];
    let vmid = g["vmid"].as_u64().expect("vmid") as u32;
    // The simulator's DHCP lease for that guest.
    let lease = format!("10.20.{}.{}", (vmid / 250) % 250, vmid % 250 + 2);
    assert_eq!(g["address"], lease.as_str(), "{up}");
    let applied: Vec<String> = fakes
        .calls()
        .iter()
        .filter(|c| c["argv"][0] == "apply-config")
        .map(|c| c["argv"][3].as_str().expect("ip").to_string())
        .collect();
    assert_eq!(applied, [lease]);
}

/// `template_copies`: a guest placed on a node with a copy of the template is cloned from the
/// copy there (no clone on the template's node, no move); the others are cloned and moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_node_template_copy_is_cloned_on_its_node_without_a_move() {
    let e = env(common::TIME_SCALE, &[]).await;
    // A copy of the Talos template on pve02: cloned, moved there, converted.
    let (err, copy, text) = call(
        &e.client,
        "vm_create",
        json!({"template": "101", "name": "talos-copy-pve02", "tags": ["talos"]}),
    )
    .await;
    assert!(!err, "{text}");
    let copy = copy["vmid"].as_u64().expect("vmid");
    let (err, _, text) = call(
        &e.client,
        "vm_migrate",
        json!({"vmid": copy, "target": "pve02"}),
    )
    .await;
    assert!(!err, "{text}");
    let (err, _, text) = call(&e.client, "template_convert", json!({"vmid": copy})).await;
    assert!(!err, "{text}");
    let profile = common::lab_profile(
        "copy-lab",
        "  node_cidr: 10.32.0.0/24\n  addresses: static\n  gateway: 10.32.0.1\n",
        0,
        "[talos, copylab]",
        "clusters/copy",
    )
    .replace(
        "template: 101\n",
        &format!("template: 101\ntemplate_copies:\n  pve02: {copy}\n"),
    );
    std::fs::write(e.clusters().join("copy-lab.yaml"), profile).expect("profile");
    let (err, up, text) = call(
        &e.client,
        "profile_up",
        json!({"profile": "copy-lab", "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    let guests = up["guests"].as_array().expect("guests");
    let on_pve02: Vec<u64> = guests
        .iter()
        .filter(|g| g["node"] == "pve02")
        .map(|g| g["vmid"].as_u64().expect("v"))
        .collect();
    assert!(!on_pve02.is_empty(), "spread puts a guest on pve02: {up}");
    let requests = e.sim.requests();
    let posted = |path: String| {
        requests
            .iter()
            .any(|r| r.method == "POST" && r.path.ends_with(&path))
    };
    assert!(
        posted(format!("/nodes/pve02/qemu/{copy}/clone")),
        "cloned from the copy on pve02"
    );
    for g in guests {
        let vmid = g["vmid"].as_u64().expect("v");
        assert_eq!(
            g["template"].as_u64(),
            Some(if g["node"] == "pve02" { copy } else { 101 }),
            "{g}"
        );
        let moved = posted(format!("/qemu/{vmid}/migrate"));
        assert_eq!(
            moved,
            g["node"] == "pve03",
            "only a guest off pve01 without a copy moves: {g}"
        );
    }
    let placement = e.sim.guest_placement();
    for vmid in on_pve02 {
        assert_eq!(placement[&(vmid as u32)].node, "pve02");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_of_containers_is_shown_and_torn_down_but_not_built_from_a_container_template() {
    // pihole (1200) is a container carrying the profile's tags [dns, prod].
    let dns = "name: dns\ntype: vms\nnetwork:\n  pod_cidr: 10.63.0.0/16\nnodes:\n  controlplane:\n    count: 1\n    cores: 1\n    memory: 512\n    disk: 8G\ntemplate: 110\ntags: [dns, prod]\n".to_string();
    let e = env(common::TIME_SCALE, &[("dns", dns)]).await;
    let (err, s, text) = call(&e.client, "profile_status", json!({"profile": "dns"})).await;
    assert!(!err, "{text}");
    let g = &s["guests"][0];
    assert_eq!(
        (g["vmid"].as_u64(), g["address"].as_str()),
        (Some(1200), Some("10.10.0.53")),
        "{s}"
    );
    let (err, _, text) = call(&e.client, "profile_up", json!({"profile": "dns"})).await;
    assert!(
        err && text.contains("110 (debian-12-ct-tmpl) is a container template"),
        "{text}"
    );
    let (err, p, text) = call(&e.client, "profile_down", json!({"profile": "dns"})).await;
    assert!(!err, "{text}");
    assert_eq!(p["guests"][0]["vmid"], 1200, "{p}");
    assert!(
        p["guests"][0]["refused"].is_null(),
        "its config is read as a container's: {p}"
    );
    let (err, r, text) = call(
        &e.client,
        "profile_down",
        json!({"profile": "dns", "confirm": true, "ignore_partial": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["guests"][0]["outcome"], "deleted", "{r}");
    assert!(!e.sim.guest_placement().contains_key(&1200), "1200 is gone");
}

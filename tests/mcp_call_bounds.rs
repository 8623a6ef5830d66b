//! Issue 20: no read tool makes more API calls than a fixed number independent of the guest
//! count. Two generated clusters with the same nodes and ten times the guests; every read-only
//! tool of `tools/list` (and the previews of `node_evacuate` and `vm_delete`) is called on both
//! through MCP, and the simulator counts each call's API requests. A read tool added later
//! fails this test until it has a recipe here (or a reasoned exemption).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::common;

use proxmox_manager::pve::TaskFilter;
use proxmox_manager::sim::{GenerateSpec, Scenario, SimHandle};
use serde_json::{Value, json};

const NODES: usize = 6;
const SMALL: usize = 150;
const LARGE: usize = 1500;
const SEED: u64 = 20;

/// Read-only tools deliberately not called, with the reason. Empty: every read tool is called.
const EXEMPT: &[(&str, &str)] = &[];

/// How a tool's API calls on the large cluster may compare with the small one.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// The same number of calls on both clusters.
    Equal,
    /// At most `fixed` calls plus one per guest on the named node, on both clusters.
    /// Only `node_evacuate`'s preview: the plan needs every guest of the evacuated node's
    /// config (its disks, devices and local resources decide where it can go), which
    /// `/cluster/resources` does not carry; a node's guests are bounded by the node, not by
    /// the cluster.
    FixedPlusGuestsOn { fixed: u64 },
    /// At most this many calls on either cluster: the tool reads a bounded number of items
    /// (a page, a batch per node), so the small cluster may need fewer.
    AtMost(u64),
    /// The same number on both once each cluster's hand-started backups are taken off, one
    /// call each. Only `backup_jobs`: a `root@pam` vzdump task newer than the jobs' last runs
    /// could be a job's run until its log's first line says otherwise, so each costs one log
    /// read. That is the task history, not the guests (the node's task list returns at most
    /// 50); the generated clusters differ only because ten times the guests hold ten times the
    /// backup locks, each with its vzdump task.
    EqualBesidesHandStartedBackups,
    /// The same number on both once the snapshot configs are taken off. Only `disk_orphans`:
    /// a page holds 50 owners (whatever the guest count), and each owner's snapshots are read
    /// one config each — the guests' snapshot counts differ, not the page.
    EqualBesidesSnapshotConfigs,
}

/// Requests other than a snapshot's config (`.../snapshot/{name}/config`).
fn besides_snapshot_configs(c: &Counted) -> u64 {
    c.requests
        .iter()
        .filter(|r| !(r.contains("/snapshot/") && r.ends_with("/config")))
        .count() as u64
}

struct Recipe {
    label: String,
    tool: String,
    args: Value,
    bound: Bound,
}

/// What the calls need from one cluster, derived from its scenario.
struct Targets {
    node: String,
    other_node: String,
    vmid: u32,
    upid: String,
    runbook: String,
}

/// One call's outcome.
#[derive(Debug, Clone)]
struct Counted {
    calls: u64,
    requests: Vec<String>,
    error: Option<String>,
    millis: u128,
}

struct Cluster {
    sc: Scenario,
    sim: SimHandle,
    dir: tempfile::TempDir,
}

fn scenario(guests: usize) -> Scenario {
    Scenario::generate(&GenerateSpec {
        nodes: NODES,
        guests,
        seed: SEED,
        ..GenerateSpec::default()
    })
}

async fn start(guests: usize) -> Cluster {
    let t = Instant::now();
    let sc = scenario(guests);
    let sim = common::start_scenario(sc.clone()).await;
    eprintln!(
        "{NODES} nodes / {guests} guests generated and started in {} ms",
        t.elapsed().as_millis()
    );
    Cluster {
        sc,
        sim,
        dir: tempfile::tempdir().expect("tmp"),
    }
}

/// A config naming every node of the cluster, with a profile directory (and stand-ins for the
/// profile CLIs) and the fixture fleet-infra repository for the Ansible tools.
fn write_config(c: &Cluster) -> std::path::PathBuf {
    let dir = c.dir.path();
    let mut yaml = common::config_yaml(c.sim.addr().port(), &c.sim.fingerprint());
    let nodes: String =
        c.sc.nodes
            .iter()
            .map(|n| format!("    - name: {}\n      host: 127.0.0.1\n", n.name))
            .collect();
    let start = yaml.find("    - name: pve01").expect("node list");
    let end = yaml.find("\ndefaults:").expect("defaults");
    yaml.replace_range(start..end, nodes.trim_end_matches('\n'));
    let clusters = dir.join("clusters");
    std::fs::create_dir_all(&clusters).expect("mkdir");
    // a profile on the generated cluster (template 101 exists on both)
    let profile = common::lab_profile(
        "bounds-lab",
        "",
        2,
        "[talos, kubernetes, bounds]",
        "clusters/bounds",
    );
    std::fs::write(clusters.join("bounds-lab.yaml"), profile).expect("profile");
    let fakes = common::fake_clis::FakeClis::install(dir);
    yaml.push_str(&fakes.paths_yaml(&clusters));
    let repo = common::copy_fleet_infra(dir);
    yaml.push_str(&format!(
        "\nansible:\n  fleet_infra: {}\n  inventory:\n    - playbooks/inventories/annarchy.net/hosts.yaml\n    - playbooks/inventories/lab/hosts.ini\n",
        repo.display()
    ));
    let path = dir.join("cluster-config.yaml");
    std::fs::write(&path, yaml).expect("config");
    path
}

async fn targets(c: &Cluster) -> Targets {
    let sc = &c.sc;
    // A running guest on shared storage with snapshots, no lock, not HA-managed: the same
    // kind of guest on both clusters, so its reads take the same path.
    let vm = sc
        .vms
        .iter()
        .filter(|v| {
            v.running
                && !v.template
                && v.storage == "nfs-shared"
                && v.lock.is_none()
                && v.ha.is_none()
                && !v.protection
                && !v.snapshots.is_empty()
        })
        .min_by_key(|v| v.vmid)
        .expect("a plain running guest with snapshots on shared storage");
    let other = sc
        .nodes
        .iter()
        .find(|n| n.name != vm.node)
        .expect("another node")
        .name
        .clone();
    // The first node's last vzdump task (its log grows with the node's guests).
    let node = sc.nodes[0].name.clone();
    let pve = common::client_for(&c.sim, "root@pam!admin");
    let tasks = pve
        .list_tasks(
            &node,
            TaskFilter {
                typefilter: Some("vzdump".into()),
                ..TaskFilter::default()
            },
        )
        .await
        .expect("task list");
    let upid = tasks.first().expect("the nightly job ran").upid.clone();
    assert!(
        sc.vms.iter().any(|v| v.template && v.vmid == 101),
        "the profile's template 101"
    );
    Targets {
        node,
        other_node: other,
        vmid: vm.vmid,
        upid,
        runbook: String::new(),
    }
}

fn recipes(t: &Targets) -> Vec<Recipe> {
    use Bound::{Equal, EqualBesidesSnapshotConfigs};
    let r = |label: &str, tool: &str, args: Value, bound: Bound| Recipe {
        label: label.to_string(),
        tool: tool.to_string(),
        args,
        bound,
    };
    let (node, vmid) = (t.node.as_str(), t.vmid);
    vec![
        r("cluster_status", "cluster_status", json!({}), Equal),
        r(
            "cluster_status page 2",
            "cluster_status",
            json!({"page": 2}),
            Equal,
        ),
        r("node_status", "node_status", json!({"node": node}), Equal),
        // Reads the configs of the guests it may move, a batch per node above the band, more
        // only where those could not move: 4 listings + (max_moves / senders + 1) per sender
        // at first; the clusters differ in how many nodes are above the band.
        r(
            "cluster_balance",
            "cluster_balance",
            json!({}),
            Bound::AtMost(4 + 2 * NODES as u64 + 10),
        ),
        r("vm_list", "vm_list", json!({}), Equal),
        r("vm_list page 2", "vm_list", json!({"page": 2}), Equal),
        r("vm_list tag", "vm_list", json!({"tag": "prod"}), Equal),
        r(
            "vm_list node+status",
            "vm_list",
            json!({"node": node, "status": "running"}),
            Equal,
        ),
        r("vm_list name", "vm_list", json!({"name": "web-*"}), Equal),
        r(
            "vm_list templates",
            "vm_list",
            json!({"include_templates": true, "page_size": 20}),
            Equal,
        ),
        r("vm_get", "vm_get", json!({"vmid": vmid}), Equal),
        r(
            "snapshot_list",
            "snapshot_list",
            json!({"vmid": vmid}),
            Equal,
        ),
        r(
            "vm_migrate_check",
            "vm_migrate_check",
            json!({"vmid": vmid, "target": t.other_node}),
            Equal,
        ),
        r(
            "node_evacuate (preview)",
            "node_evacuate",
            json!({"node": node}),
            Bound::FixedPlusGuestsOn { fixed: 12 },
        ),
        r(
            "vm_delete (preview)",
            "vm_delete",
            json!({"vmid": vmid}),
            Equal,
        ),
        // The listing, the storage with the templates, and the config of each template on the
        // page (10 by default): the small cluster has fewer templates than a page.
        r(
            "template_list",
            "template_list",
            json!({}),
            Bound::AtMost(2 + 10),
        ),
        r(
            "template_list node",
            "template_list",
            json!({"node": node}),
            Bound::AtMost(2 + 10),
        ),
        r("storage_list", "storage_list", json!({}), Equal),
        r(
            "storage_content shared",
            "storage_content",
            json!({"storage": "nfs-shared"}),
            Equal,
        ),
        r(
            "storage_content local",
            "storage_content",
            json!({"storage": "local-lvm", "node": node}),
            Equal,
        ),
        r(
            "storage_content of a guest",
            "storage_content",
            json!({"storage": "nfs-shared", "vmid": vmid}),
            Equal,
        ),
        r("backup_list", "backup_list", json!({}), Equal),
        r(
            "backup_list of a guest",
            "backup_list",
            json!({"vmid": vmid}),
            Equal,
        ),
        r(
            "backup_jobs",
            "backup_jobs",
            json!({}),
            Bound::EqualBesidesHandStartedBackups,
        ),
        r(
            "disk_orphans",
            "disk_orphans",
            json!({}),
            EqualBesidesSnapshotConfigs,
        ),
        r(
            "disk_orphans node",
            "disk_orphans",
            json!({"node": node}),
            EqualBesidesSnapshotConfigs,
        ),
        r("task_status", "task_status", json!({"upid": t.upid}), Equal),
        r("task_log", "task_log", json!({"upid": t.upid}), Equal),
        r(
            "task_log tail",
            "task_log",
            json!({"upid": t.upid, "tail": true}),
            Equal,
        ),
        r("access_check", "access_check", json!({}), Equal),
        r("runbook_list", "runbook_list", json!({}), Equal),
        r(
            "runbook_get",
            "runbook_get",
            json!({"name": t.runbook}),
            Equal,
        ),
        r("ct_templates", "ct_templates", json!({}), Equal),
        r("profile_list", "profile_list", json!({}), Equal),
        r(
            "profile_validate",
            "profile_validate",
            json!({"profile": "bounds-lab"}),
            Equal,
        ),
        r(
            "profile_status",
            "profile_status",
            json!({"profile": "bounds-lab"}),
            Equal,
        ),
        r("ansible_inventory", "ansible_inventory", json!({}), Equal),
        r("ansible_playbooks", "ansible_playbooks", json!({}), Equal),
    ]
}

/// Calls every recipe on one cluster; returns each label's count and the read-only tools of
/// `tools/list`.
async fn measure(c: &Cluster) -> (BTreeMap<String, Counted>, BTreeSet<String>, Vec<Recipe>) {
    let cfg = write_config(c);
    let (client, _) =
        common::mcp::connect(&cfg, &common::token_env(&c.sim), c.dir.path(), &[]).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let read_only: BTreeSet<String> = tools
        .iter()
        .filter(|t| {
            t.annotations
                .as_ref()
                .and_then(|a| a.read_only_hint)
                .unwrap_or(false)
        })
        .map(|t| t.name.to_string())
        .collect();
    // The scenario's backups in progress end by themselves: wait for them, so every call
    // sees the same finished task history.
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while !c.sim.running_tasks().is_empty() {
        assert!(
            Instant::now() < deadline,
            "tasks still running: {:?}",
            c.sim.running_tasks()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut t = targets(c).await;
    let (err, out, text) = common::mcp::call(&client, "runbook_list", json!({})).await;
    assert!(!err, "runbook_list: {text}");
    t.runbook = out["runbooks"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("a runbook in {out}"))
        .to_string();
    let recipes = recipes(&t);
    let mut counted = BTreeMap::new();
    for r in &recipes {
        let before = c.sim.api_requests();
        let started = Instant::now();
        let (err, _, text) = common::mcp::call(&client, &r.tool, r.args.clone()).await;
        let millis = started.elapsed().as_millis();
        let calls = c.sim.api_requests() - before;
        let journal = c.sim.requests();
        let requests = journal
            .iter()
            .skip(journal.len().saturating_sub(calls as usize))
            .map(|q| format!("{} {}", q.method, q.path))
            .collect();
        counted.insert(
            r.label.clone(),
            Counted {
                calls,
                requests,
                error: err.then(|| text.chars().take(300).collect()),
                millis,
            },
        );
    }
    client.cancel().await.ok();
    (counted, read_only, recipes)
}

/// vzdump tasks the cluster started by hand (the scenario's guests in a backup when the
/// simulator starts), all newer than the nightly job's run.
fn hand_started_backups(sc: &Scenario) -> u64 {
    sc.vms
        .iter()
        .filter(|v| v.lock.as_deref() == Some("backup") && v.lock_secs.is_some())
        .count() as u64
}

fn guests_on(sc: &Scenario, node: &str) -> u64 {
    (sc.vms.iter().filter(|v| v.node == node).count()
        + sc.cts.iter().filter(|c| c.node == node).count()) as u64
}

/// The requests as `METHOD path` with numbers and UPIDs folded, counted: what grew.
fn shape(requests: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in requests {
        let folded: Vec<String> = r
            .split('/')
            .map(|s| {
                if s.starts_with("UPID") {
                    "{upid}".to_string()
                } else if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
                    "{n}".to_string()
                } else {
                    s.to_string()
                }
            })
            .collect();
        *out.entry(folded.join("/")).or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn read_tools_make_the_same_number_of_calls_at_ten_times_the_guests() {
    let small = start(SMALL).await;
    let large = start(LARGE).await;
    let (s, read_only, recipes) = measure(&small).await;
    let (l, _, _) = measure(&large).await;

    // Every read-only tool has a recipe or an exemption; no recipe names a tool that is gone.
    let covered: BTreeSet<&str> = recipes.iter().map(|r| r.tool.as_str()).collect();
    let missing: Vec<&String> = read_only
        .iter()
        .filter(|t| !covered.contains(t.as_str()) && !EXEMPT.iter().any(|(e, _)| e == t))
        .collect();
    assert!(
        missing.is_empty(),
        "read-only tools without a recipe in tests/mcp_call_bounds.rs: {missing:?} (add one with arguments valid on both clusters)"
    );
    for tool in &covered {
        assert!(
            read_only.contains(*tool) || ["node_evacuate", "vm_delete"].contains(tool),
            "{tool} has a recipe but is not a read-only tool of tools/list"
        );
    }

    let mut failures = Vec::new();
    let mut table = String::new();
    for r in &recipes {
        let (a, b) = (&s[&r.label], &l[&r.label]);
        for (which, c) in [("small", a), ("large", b)] {
            assert!(
                c.error.is_none(),
                "{} on the {which} cluster failed: {}",
                r.label,
                c.error.as_deref().unwrap_or_default()
            );
        }
        table.push_str(&format!(
            "  {:<28} {:>5} {:>5}   {:>5} ms {:>5} ms\n",
            r.label, a.calls, b.calls, a.millis, b.millis
        ));
        let verdict = match r.bound {
            Bound::Equal => (a.calls != b.calls).then(|| {
                format!(
                    "{}: {} API calls at {SMALL} guests, {} at {LARGE} (requests small {:?}, large {:?})",
                    r.label,
                    a.calls,
                    b.calls,
                    shape(&a.requests),
                    shape(&b.requests)
                )
            }),
            Bound::FixedPlusGuestsOn { fixed } => {
                let node = r.args["node"].as_str().expect("node");
                let (gs, gl) = (guests_on(&small.sc, node), guests_on(&large.sc, node));
                (a.calls > fixed + gs || b.calls > fixed + gl).then(|| {
                    format!(
                        "{}: {} / {} API calls, more than {fixed} + the guests on {node} ({gs} / {gl}): {:?}",
                        r.label,
                        a.calls,
                        b.calls,
                        shape(&b.requests)
                    )
                })
            }
            Bound::AtMost(max) => (a.calls > max || b.calls > max).then(|| {
                format!(
                    "{}: {} / {} API calls, more than {max}: {:?}",
                    r.label,
                    a.calls,
                    b.calls,
                    shape(&b.requests)
                )
            }),
            Bound::EqualBesidesSnapshotConfigs => {
                let (ps, pl) = (besides_snapshot_configs(a), besides_snapshot_configs(b));
                (ps != pl).then(|| {
                    format!(
                        "{}: {ps} API calls besides snapshot configs at {SMALL} guests, {pl} at {LARGE}: small {:?}, large {:?}",
                        r.label,
                        shape(&a.requests),
                        shape(&b.requests)
                    )
                })
            }
            Bound::EqualBesidesHandStartedBackups => {
                let (hs, hl) = (
                    hand_started_backups(&small.sc),
                    hand_started_backups(&large.sc),
                );
                (a.calls.checked_sub(hs) != b.calls.checked_sub(hl)).then(|| {
                    format!(
                        "{}: {} API calls at {SMALL} guests ({hs} hand-started backups), {} at {LARGE} ({hl}): small {:?}, large {:?}",
                        r.label,
                        a.calls,
                        b.calls,
                        shape(&a.requests),
                        shape(&b.requests)
                    )
                })
            }
        };
        failures.extend(verdict);
    }
    eprintln!(
        "API calls (and time) per read, {SMALL} vs {LARGE} guests on {NODES} nodes:\n{table}"
    );
    assert!(
        failures.is_empty(),
        "read tools whose API calls depend on the guest count:\n{}",
        failures.join("\n")
    );

    small.sim.shutdown().await;
    large.sim.shutdown().await;
}

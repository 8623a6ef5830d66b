//! Delegation to Ansible through the MCP protocol, with the real ansible-core against a copy of
//! the fixture fleet-infra repository (`tests/fixtures/fleet-infra`: an `ansible.cfg`, a YAML
//! and an INI inventory whose hosts carry the simulator's VMIDs, playbooks that run locally):
//! the playbooks listed, the inventory matched to the simulator's guests, a run previewed (the
//! exact command, the targeted hosts), run (recap, streamed progress, check mode, tags, a
//! failing host), cancelled (its whole process group gone), the repository unchanged by every
//! run; and the direct operations that must not fight Ansible: the allocator skips an
//! inventory VMID, `vm_create` refuses a name or address the inventory assigns to another
//! host, previews say which guests are Ansible-managed.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use common::mcp::{Client, RawSession, call, call_with, connect};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILRSnqBQw+QuXgQ2K9uvP5qlH4ipIsfZqXVUImG3kSLq ada@lab";

struct Setup {
    sim: proxmox_manager::sim::SimHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn repo(&self) -> PathBuf {
        self.dir.path().join("fleet-infra")
    }
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    async fn client(&self) -> (Client, common::mcp::Recorder) {
        connect(
            &self.config,
            &common::token_env(&self.sim),
            self.dir.path(),
            &[],
        )
        .await
    }
}

/// The simulator, a private copy of the fixture repository, and a config whose `ansible:`
/// section points at it with both inventories.
async fn setup() -> Setup {
    common::external::require("ansible-playbook");
    common::external::require("ansible-inventory");
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let repo = common::copy_fleet_infra(dir.path());
    std::fs::create_dir_all(dir.path().join("out")).expect("out dir");
    let yaml = format!(
        "{}\nansible:\n  fleet_infra: {}\n  inventory:\n    - playbooks/inventories/annarchy.net/hosts.yaml\n    - playbooks/inventories/lab/hosts.ini\n  timeout_secs: 600\n",
        common::config_yaml(sim.addr().port(), &sim.fingerprint()),
        repo.display()
    );
    let config = dir.path().join("cluster-config.yaml");
    std::fs::write(&config, yaml).expect("config");
    Setup { sim, dir, config }
}

/// Every file and directory under `root` with the SHA-256 of its content (directories: `dir`).
fn hash_tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).expect("read dir") {
            let e = e.expect("entry");
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let t = e.file_type().expect("type");
            if t.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &e.path(), out);
            } else {
                let bytes = std::fs::read(e.path()).expect("read file");
                out.insert(rel, common::images::sha256(&bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn host<'a>(inv: &'a Value, name: &str) -> &'a Value {
    inv["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {inv}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn playbooks_and_the_inventory_are_listed_and_matched_to_the_clusters_guests() {
    let s = setup().await;
    let (c, _) = s.client().await;

    let (err, list, text) = call(&c, "ansible_playbooks", json!({})).await;
    assert!(!err, "{text}");
    let pb = |file: &str| -> Value {
        list["playbooks"]
            .as_array()
            .expect("playbooks")
            .iter()
            .find(|p| p["file"] == file)
            .cloned()
            .unwrap_or_else(|| panic!("{file} not listed: {list}"))
    };
    let files: Vec<String> = list["playbooks"]
        .as_array()
        .expect("playbooks")
        .iter()
        .map(|p| p["file"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        files,
        [
            "env.yaml",
            "fail-one.yaml",
            "slow.yaml",
            "tagged.yaml",
            "talos-provision-vms.yaml",
            "touch.yaml"
        ],
        "inventories are not playbooks"
    );
    let touch = pb("touch.yaml");
    assert_eq!(
        touch["purpose"],
        "Write a marker file for every Talos host (changes something, supports check mode)."
    );
    assert_eq!(touch["plays"][0]["hosts"], "talos:!talos-worker-03");
    assert_eq!(touch["variables"][0]["name"], "out_dir");
    assert_eq!(touch["variables"][0]["source"], "documented");
    assert!(touch.get("check_mode_note").is_none(), "{touch}");
    let provision = pb("talos-provision-vms.yaml");
    assert_eq!(provision["variables"][0]["name"], "talos_version");
    assert_eq!(provision["variables"][0]["source"], "vars_prompt");
    assert_eq!(provision["variables"][0]["default"], "1.8.0");
    assert_eq!(strs(&provision["imports"]), ["touch.yaml"]);
    let tagged = pb("tagged.yaml");
    assert_eq!(
        strs(&tagged["plays"][0]["tags"]),
        ["deploy", "setup", "web"]
    );
    assert!(
        tagged["check_mode_note"]
            .as_str()
            .unwrap_or("")
            .contains("check_mode: false"),
        "{tagged}"
    );

    let (err, inv, text) = call(&c, "ansible_inventory", json!({})).await;
    assert!(!err, "{text}");
    // YAML inventory, matched by VMID.
    let cp = host(&inv, "talos-cp-01");
    assert_eq!(cp["vmid"], 1008);
    assert_eq!(cp["node"], "pve03");
    assert_eq!(cp["address"], "10.10.0.51");
    assert_eq!(strs(&cp["tags"]), ["kubernetes", "talos"]);
    assert_eq!(strs(&cp["groups"]), ["talos"]);
    assert_eq!(cp["guest"]["vmid"], 1008);
    assert_eq!(cp["guest"]["matched_by"], "vmid");
    assert_eq!(cp["guest"]["status"], "running");
    // INI inventory: by VMID, and by name with the address from an ipconfig value.
    let web = host(&inv, "web-01");
    assert_eq!(web["guest"]["vmid"], 1000);
    assert_eq!(strs(&web["groups"]), ["web"]);
    let k8s = host(&inv, "k8s-worker-01");
    assert_eq!(k8s["guest"]["vmid"], 1004);
    assert_eq!(k8s["guest"]["matched_by"], "name");
    assert_eq!(k8s["address"], "10.10.0.71");
    // Planned, not created yet: reserved.
    assert!(host(&inv, "talos-worker-03").get("guest").is_none());
    assert_eq!(inv["unclaimed_vmids"], json!([1015]));
    assert_eq!(inv["matched"], 5, "{inv}");

    let (err, talos, text) = call(&c, "ansible_inventory", json!({"group": "talos"})).await;
    assert!(!err, "{text}");
    assert_eq!(talos["hosts"].as_array().map(Vec::len), Some(4));
    let (err, _, text) = call(&c, "ansible_inventory", json!({"group": "nope"})).await;
    assert!(
        err && text.contains("nope") && text.contains("talos"),
        "{text}"
    );
    c.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_preview_shows_the_exact_command_and_the_targeted_hosts_and_runs_nothing() {
    let s = setup().await;
    let (c, _) = s.client().await;
    let repo = s.repo();
    let out = s.out();
    let (err, p, text) = call(
        &c,
        "ansible_run",
        json!({"playbook": "touch.yaml", "extra_vars": {"out_dir": out.display().to_string()}}),
    )
    .await;
    assert!(!err, "{text}");
    let expected = format!(
        "ansible-playbook -i {r}/playbooks/inventories/annarchy.net/hosts.yaml -i {r}/playbooks/inventories/lab/hosts.ini '--extra-vars={{\"out_dir\":\"{o}\"}}' {r}/playbooks/touch.yaml",
        r = repo.display(),
        o = out.display()
    );
    assert_eq!(p["command"], expected.as_str());
    assert_eq!(p["working_directory"], repo.display().to_string().as_str());
    assert_eq!(
        strs(&p["hosts"]),
        ["talos-cp-01", "talos-worker-01", "talos-worker-02"]
    );
    assert_eq!(p["plays"][0]["pattern"], "talos:!talos-worker-03");
    assert_eq!(p["executed"], false);
    assert!(text.contains("confirm: true"), "{text}");
    assert_eq!(
        std::fs::read_dir(&out).expect("out").count(),
        0,
        "a preview runs nothing"
    );

    // Check mode, tags and limit reach the command; the check-mode note is shown.
    let (err, p, text) = call(
        &c,
        "ansible_run",
        json!({"playbook": "tagged.yaml", "check": true, "diff": true, "tags": ["deploy"], "limit": "web-01"}),
    )
    .await;
    assert!(!err, "{text}");
    let cmd = p["command"].as_str().unwrap_or("");
    assert!(
        cmd.contains(" --check --diff --limit=web-01 --tags=deploy "),
        "{cmd}"
    );
    assert_eq!(strs(&p["hosts"]), ["web-01"]);
    assert!(
        p["check_mode_note"]
            .as_str()
            .unwrap_or("")
            .contains("for real"),
        "{p}"
    );

    // Only playbooks inside the playbook directory.
    std::os::unix::fs::symlink("/etc/hostname", repo.join("playbooks/escape.yaml"))
        .expect("symlink");
    for bad in [
        "../ansible.cfg",
        "/etc/hostname.yaml",
        "escape.yaml",
        "missing.yaml",
    ] {
        let (err, _, text) =
            call(&c, "ansible_run", json!({"playbook": bad, "confirm": true})).await;
        assert!(err && text.contains("`playbook`"), "{bad}: {text}");
    }
    // No secrets on a command line; no option smuggled in as a limit.
    let (err, _, text) = call(
        &c,
        "ansible_run",
        json!({"playbook": "touch.yaml", "extra_vars": {"db_password": "x"}}),
    )
    .await;
    assert!(err && text.contains("vault"), "{text}");
    let (err, _, text) = call(
        &c,
        "ansible_run",
        json!({"playbook": "touch.yaml", "limit": "--become"}),
    )
    .await;
    assert!(err && text.contains("limit"), "{text}");
    c.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_report_the_recap_failures_and_progress_and_never_write_in_the_repository() {
    let s = setup().await;
    let (c, rec) = s.client().await;
    let out = s.out();
    let before = hash_tree(&s.repo());
    let vars = json!({"out_dir": out.display().to_string()});

    // Check mode first: the changes are reported, nothing is written.
    let (err, r, text) = call(
        &c,
        "ansible_run",
        json!({"playbook": "touch.yaml", "extra_vars": vars, "check": true, "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["outcome"], "succeeded", "{r}");
    assert_eq!(r["recap"].as_array().map(Vec::len), Some(3), "{r}");
    assert!(
        r["recap"]
            .as_array()
            .expect("recap")
            .iter()
            .all(|h| h["changed"] == 1)
    );
    assert_eq!(
        std::fs::read_dir(&out).expect("out").count(),
        0,
        "check mode wrote"
    );

    // The real run, with progress.
    let (err, r, text) = call_with(
        &c,
        "ansible_run",
        json!({"playbook": "touch.yaml", "extra_vars": vars, "confirm": true}),
        true,
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["executed"], true);
    assert_eq!(r["outcome"], "succeeded", "{r}");
    assert_eq!(r["exit_code"], 0);
    assert_eq!(
        strs(&r["hosts"]),
        ["talos-cp-01", "talos-worker-01", "talos-worker-02"]
    );
    for row in r["recap"].as_array().expect("recap") {
        assert_eq!(
            (
                &row["ok"],
                &row["changed"],
                &row["failed"],
                &row["unreachable"]
            ),
            (&json!(1), &json!(1), &json!(0), &json!(0)),
            "{row}"
        );
    }
    for h in ["talos-cp-01", "talos-worker-01", "talos-worker-02"] {
        assert_eq!(
            std::fs::read_to_string(out.join(format!("{h}.txt"))).expect("marker"),
            "managed by ansible\n"
        );
    }
    assert!(
        r["log_tail"]
            .as_array()
            .expect("tail")
            .iter()
            .any(|l| l.as_str().unwrap_or("").starts_with("PLAY RECAP")),
        "{r}"
    );
    let progress = rec.progress.lock().expect("progress").clone();
    assert!(
        progress
            .iter()
            .any(|m| m.starts_with("TASK [Write the marker file]")),
        "{progress:?}"
    );
    assert!(
        progress
            .iter()
            .any(|m| m.starts_with("changed: [talos-cp-01]")),
        "{progress:?}"
    );

    // Tags select tasks.
    let (err, r, text) = call(
        &c,
        "ansible_run",
        json!({"playbook": "tagged.yaml", "tags": ["setup"], "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["recap"][0]["host"], "web-01");
    assert_eq!(r["recap"][0]["ok"], 1, "only the setup task: {r}");
    let (err, r, _) = call(
        &c,
        "ansible_run",
        json!({"playbook": "tagged.yaml", "confirm": true}),
    )
    .await;
    assert!(!err);
    assert_eq!(r["recap"][0]["ok"], 3, "{r}");

    // The user's environment, without the server's token.
    let (err, r, text) = call(
        &c,
        "ansible_run",
        json!({"playbook": "env.yaml", "extra_vars": vars, "confirm": true}),
    )
    .await;
    assert!(!err && r["outcome"] == "succeeded", "{text}");
    let env = std::fs::read_to_string(out.join("env.txt")).expect("env written");
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(env, format!("token=[] home=[{home}]\n"));

    // One host of two fails.
    let (err, r, text) = call(
        &c,
        "ansible_run",
        json!({"playbook": "fail-one.yaml", "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["outcome"], "failed", "{r}");
    assert_eq!(r["exit_code"], 2);
    let row = |h: &str| -> Value {
        r["recap"]
            .as_array()
            .expect("recap")
            .iter()
            .find(|x| x["host"] == h)
            .cloned()
            .unwrap_or_else(|| panic!("{h} not in the recap: {r}"))
    };
    assert_eq!(row("talos-worker-02")["failed"], 1);
    assert_eq!(row("talos-worker-01")["failed"], 0);
    assert_eq!(row("talos-worker-01")["skipped"], 1);
    assert_eq!(
        r["failed_tasks"],
        json!([{
            "host": "talos-worker-02",
            "task": "Check the data disk",
            "message": "data disk missing on talos-worker-02",
            "unreachable": false,
            "ignored": false
        }])
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("FAILED on talos-worker-02"),
        "{r}"
    );

    assert_eq!(
        hash_tree(&s.repo()),
        before,
        "the fleet-infra repository changed"
    );
    c.cancel().await.ok();
}

/// The process group of a process, from /proc.
fn pgrp_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid pgrp ...
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(2)?.parse().ok()
}

/// Every live process of a process group.
fn members(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            pgrp_of(*pid) == Some(pgid)
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_run_leaves_no_process_of_its_group_behind() {
    let s = setup().await;
    let out = s.out();
    let before = hash_tree(&s.repo());
    let mut raw = RawSession::start(&s.config, &common::token_env(&s.sim), s.dir.path()).await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "ansible_run",
        "arguments": {"playbook": "slow.yaml", "confirm": true,
                      "extra_vars": {"out_dir": out.display().to_string()}}}});
    raw.send(&call.to_string()).await;
    // The task's shell writes its pid, then sleeps.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let pid_file = out.join("slow.pid");
    let shell: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow task never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let group = pgrp_of(shell).expect("the task's process is alive");
    let own = pgrp_of(std::process::id()).expect("own group");
    assert_ne!(group, own, "the run has its own process group");
    assert!(members(group).len() >= 2, "ansible-playbook and its task");
    raw.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"stop"}}"#)
        .await;
    loop {
        let left = members(group);
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "processes of the cancelled run remain: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    raw.send(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#)
        .await;
    let seen = raw.read_until_id(3).await;
    assert!(
        !seen.iter().any(|l| l.contains(r#""id":2"#)),
        "no response to the cancelled request: {seen:?}"
    );
    assert_eq!(hash_tree(&s.repo()), before, "the repository changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_past_its_timeout_is_stopped_with_its_whole_process_group() {
    let s = setup().await;
    let (c, _) = s.client().await;
    let out = s.out();
    let (err, r, text) = call(
        &c,
        "ansible_run",
        json!({"playbook": "slow.yaml", "confirm": true, "timeout_secs": 15,
               "extra_vars": {"out_dir": out.display().to_string()}}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["outcome"], "timed_out", "{r}");
    assert!(r["exit_code"].is_null(), "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("stopped after 15 s"),
        "{r}"
    );
    // The task's shell had started (ansible-core starts in a few seconds even on a busy machine);
    // it is gone with its whole group.
    let shell: u32 = std::fs::read_to_string(out.join("slow.pid"))
        .expect("the slow task started")
        .trim()
        .parse()
        .expect("pid");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Some(group) = pgrp_of(shell) {
        let left = members(group);
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "processes of the timed-out run remain: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_operations_do_not_fight_the_inventory() {
    let s = setup().await;
    let (c, _) = s.client().await;
    // The lowest free id of vmid_ranges.vms is 1015, which the inventory gives talos-worker-03.
    let (err, r, text) = call(
        &c,
        "vm_create",
        json!({"template": "ubuntu-noble-tmpl", "name": "scratch-01", "ssh_keys": KEY}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(
        r["vmid"], 1016,
        "the inventory's vmid 1015 was skipped: {r}"
    );

    // The inventory's name for another VMID, and its static address, are refused.
    let (err, _, text) = call(
        &c,
        "vm_create",
        json!({"template": "ubuntu-noble-tmpl", "name": "talos-worker-03", "ssh_keys": KEY}),
    )
    .await;
    assert!(
        err && text.contains("`talos-worker-03`")
            && text.contains("vmid: 1015")
            && text.contains("allow_inventory_conflict"),
        "{text}"
    );
    let (err, _, text) = call(
        &c,
        "vm_create",
        json!({"template": "ubuntu-noble-tmpl", "name": "scratch-02", "ssh_keys": KEY,
               "ipconfig0": "ip=10.10.0.54/24,gw=10.10.0.1"}),
    )
    .await;
    assert!(
        err && text.contains("address 10.10.0.54") && text.contains("`talos-worker-03`"),
        "{text}"
    );
    let (err, _, text) = call(
        &c,
        "vm_create",
        json!({"template": "ubuntu-noble-tmpl", "name": "scratch-03", "ssh_keys": KEY, "vmid": 1015}),
    )
    .await;
    assert!(
        err && text.contains("vmid 1015 is assigned to inventory host `talos-worker-03`"),
        "{text}"
    );
    // The host Ansible expects (its name and VMID) is no conflict; an override is possible.
    let (err, r, text) = call(
        &c,
        "vm_create",
        json!({"template": "ubuntu-noble-tmpl", "name": "talos-worker-03", "vmid": 1015, "ssh_keys": KEY}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["vmid"], 1015);
    let (err, r, text) = call(
        &c,
        "vm_create",
        json!({"template": "ubuntu-noble-tmpl", "name": "scratch-04", "ssh_keys": KEY,
               "ipconfig0": "ip=10.10.0.54/24,gw=10.10.0.1", "allow_inventory_conflict": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["vmid"], 1017);

    // Previews say which guests are Ansible-managed.
    let (err, p, text) = call(&c, "vm_delete", json!({"vmid": 1008})).await;
    assert!(!err, "{text}");
    assert_eq!(p["ansible_managed"]["host"], "talos-cp-01");
    assert_eq!(p["ansible_managed"]["matched_by"], "vmid");
    assert!(
        p["message"]
            .as_str()
            .unwrap_or("")
            .contains("Ansible-managed"),
        "{p}"
    );
    let (err, p, _) = call(&c, "vm_delete", json!({"vmid": 1016})).await;
    assert!(!err);
    assert!(p.get("ansible_managed").is_none(), "{p}");
    let (err, p, text) = call(
        &c,
        "bulk_power",
        json!({"action": "shutdown", "tags": ["talos"]}),
    )
    .await;
    assert!(!err, "{text}");
    let managed: BTreeMap<u64, String> = p["guests"]
        .as_array()
        .expect("guests")
        .iter()
        .map(|g| {
            (
                g["vmid"].as_u64().unwrap_or(0),
                g["ansible_managed"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        managed.get(&1008).map(String::as_str),
        Some("talos-cp-01"),
        "{p}"
    );
    assert_eq!(
        managed.get(&1010).map(String::as_str),
        Some("talos-worker-02"),
        "{p}"
    );
    c.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_ansible_section_the_tools_say_how_to_configure_it() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (c, _) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    for tool in ["ansible_playbooks", "ansible_inventory"] {
        let (err, _, text) = call(&c, tool, json!({})).await;
        assert!(
            err && text.contains("not configured") && text.contains("fleet_infra"),
            "{tool}: {text}"
        );
    }
    let (err, p, _) = call(&c, "vm_delete", json!({"vmid": 1008})).await;
    assert!(!err && p.get("ansible_managed").is_none(), "{p}");
    c.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_the_ansible_programs_and_whether_the_inventory_parses() {
    let s = setup().await;
    let run = |config: &Path| {
        let out = std::process::Command::new(common::binary())
            .arg("check")
            .arg("--config")
            .arg(config)
            .env("PROXMOX_MANAGER_TOKEN", common::token_env(&s.sim))
            .env("XDG_STATE_HOME", s.dir.path())
            .env_remove("PROXMOX_MANAGER_CONFIG")
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .expect("check runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = tokio::task::block_in_place(|| run(&s.config));
    let line = |name: &str| -> String {
        text.lines()
            .find(|l| l.contains(&format!("] {name}: ")))
            .unwrap_or_else(|| panic!("no `{name}` line in:\n{text}"))
            .to_string()
    };
    let playbook = line("ansible-playbook");
    assert!(
        playbook.starts_with("[ok") && playbook.contains("[core 2."),
        "{text}"
    );
    assert!(line("ansible-inventory").starts_with("[ok"), "{text}");
    assert!(
        line("ansible inventory").starts_with("[ok")
            && line("ansible inventory").contains("7 host(s)"),
        "{text}"
    );

    // A broken inventory is a failure, with Ansible's reason.
    std::fs::write(
        s.repo().join("playbooks/inventories/lab/hosts.ini"),
        "[web\nweb-01\n",
    )
    .expect("break the copy");
    let text = tokio::task::block_in_place(|| run(&s.config));
    let bad = text
        .lines()
        .find(|l| l.contains("] ansible inventory: "))
        .unwrap_or_else(|| panic!("no inventory line in:\n{text}"));
    assert!(bad.starts_with("[FAIL]"), "{text}");
}

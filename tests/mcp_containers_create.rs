//! Issue 19's new container tools end to end through MCP against the simulator: `ct_create`
//! from a downloaded `vztmpl` volid (started, DHCP address reported), from an appliance name
//! after `ct_template_download`, and by cloning the container template 110; every refusal
//! before any write; the root password from `pass` sent only in the create's form body;
//! `ct_templates` listing both kinds; the download's API path and its `pveam` fallback over
//! SSH for the manager token (no Datastore.AllocateTemplate); `backup_restore` of a container
//! archive to a new vmid and over an existing container (previewed).

use crate::common;

use serde_json::{Value, json};

use common::mcp::{Client, Recorder, call, connect};
use proxmox_manager::sim::SimHandle;
use rmcp::ServiceExt;

const VOLID: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

struct Env {
    sim: SimHandle,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

async fn env(ssh: bool) -> Env {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = if ssh {
        common::write_ssh_config(dir.path(), &sim)
    } else {
        common::write_config(dir.path(), &sim)
    };
    Env { sim, dir, config }
}

impl Env {
    async fn manager(&self) -> Client {
        connect(
            &self.config,
            &common::token_env(&self.sim),
            self.dir.path(),
            &[],
        )
        .await
        .0
    }
    async fn admin(&self) -> Client {
        let admin = self.sim.token("root@pam!admin").expect("admin token");
        connect(
            &self.config,
            &format!("{}={}", admin.id, admin.secret),
            self.dir.path(),
            &[],
        )
        .await
        .0
    }
    fn writes(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    }
}

/// The guest row `vm_list` shows for `vmid` (containers included).
async fn listed(client: &Client, vmid: u64) -> Value {
    let (err, r, text) = call(client, "vm_list", json!({"page_size": 200})).await;
    assert!(!err, "{text}");
    r["vms"]
        .as_array()
        .and_then(|v| v.iter().find(|g| g["vmid"] == vmid))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_from_a_downloaded_template_starts_and_reports_its_address() {
    let e = env(false).await;
    let client = e.manager().await;
    let (err, r, text) = call(
        &client,
        "ct_create",
        json!({"template": VOLID, "hostname": "dns-02", "start": true, "cores": 2, "memory": 1024, "tags": ["dns"]}),
    )
    .await;
    assert!(!err, "{text}");
    let vmid = r["vmid"].as_u64().expect("vmid");
    assert!((1000..=9999).contains(&vmid), "{r}");
    assert_eq!(r["node"], "pve01", "the template's node: {r}");
    assert_eq!(r["storage"], "local-lvm", "defaults.storage: {r}");
    assert_eq!(r["method"], "template");
    assert_eq!(r["started"], true);
    assert_eq!(r["unprivileged"], true);
    assert_eq!(r["config"]["net0"], "name=eth0,bridge=vmbr0,ip=dhcp");
    assert_eq!(r["config"]["features"], "nesting=1");
    let ips: Vec<&str> = r["ip_addresses"]
        .as_array()
        .expect("ips")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        ips.len() == 1 && ips[0].parse::<std::net::Ipv4Addr>().is_ok(),
        "a DHCP address on eth0: {r}"
    );
    let row = listed(&client, vmid).await;
    assert_eq!(row["status"], "running", "{row}");
    // A static address is reported as configured, without starting.
    let (err, r, text) = call(
        &client,
        "ct_create",
        json!({"template": "debian-12-standard", "hostname": "static-01", "ipconfig": "ip=10.0.10.7/24,gw=10.0.10.1", "disk": 4}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["ip_addresses"], json!(["10.0.10.7"]), "{r}");
    assert_eq!(r["started"], false);
    assert_eq!(r["config"]["rootfs"], "local-lvm:4");
    assert_eq!(r["template"], VOLID, "the name resolved to the volid: {r}");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_happen_before_any_write() {
    let e = env(false).await;
    let client = e.manager().await;
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({"template": VOLID, "hostname": "x1", "node": "pve09"}),
            &["pve09", "pve01"],
        ),
        (
            json!({"template": VOLID, "hostname": "x2", "storage": "local"}),
            &["local", "rootdir", "local-lvm"],
        ),
        (
            json!({"template": VOLID, "hostname": "x3", "bridge": "vmbr9"}),
            &["vmbr9", "vmbr0"],
        ),
        (
            json!({"template": VOLID, "hostname": "bad_host!"}),
            &["hostname"],
        ),
        (
            json!({"template": VOLID, "hostname": "x4", "vmid": 1200}),
            &["1200", "in use"],
        ),
        (
            json!({"template": VOLID, "hostname": "x5", "vmid": 50000}),
            &["50000", "vmid_ranges.vms"],
        ),
        (
            json!({"template": "ubuntu-24.04-standard", "hostname": "x6"}),
            &[
                "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
                "ct_template_download",
            ],
        ),
        (
            json!({"template": 102, "hostname": "x7"}),
            &["VM", "vm_create"],
        ),
        (
            json!({"template": VOLID, "hostname": "x8", "ipconfig": "ip=10.0.0.5"}),
            &["ipconfig"],
        ),
        (
            json!({"template": VOLID, "hostname": "x9", "unprivileged": false, "nesting": true}),
            &["root@pam"],
        ),
    ];
    for (args, needles) in cases {
        let before = e.writes();
        let (err, _, text) = call(&client, "ct_create", args.clone()).await;
        assert!(err, "{args}: refused: {text}");
        for n in needles {
            assert!(text.contains(n), "{args}: names {n}: {text}");
        }
        assert_eq!(e.writes(), before, "{args}: nothing was written");
    }
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_appliance_is_downloaded_through_the_api_then_used() {
    let e = env(false).await;
    let admin = e.admin().await;
    let (err, r, text) = call(&admin, "ct_templates", json!({"name": "alpine"})).await;
    assert!(!err, "{text}");
    assert_eq!(r["index_node"], "pve01");
    assert_eq!(
        r["appliances"][0]["template"], "alpine-3.20-default_20240908_amd64.tar.xz",
        "{r}"
    );
    assert_eq!(r["appliances"][0]["downloaded"], false);
    assert!(text.len() < 8192, "bounded: {}", text.len());

    let (err, r, text) = call(
        &admin,
        "ct_template_download",
        json!({"template": "alpine-3.20"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["path"], "api", "{r}");
    assert_eq!(
        r["volid"],
        "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz"
    );
    assert!(
        r["upid"].as_str().is_some_and(|u| u.contains(":download:")),
        "{r}"
    );
    let before = e.writes();
    let (err, r, text) = call(
        &admin,
        "ct_template_download",
        json!({"template": "alpine-3.20-default_20240908_amd64.tar.xz"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["already_present"], true, "{r}");
    assert_eq!(e.writes(), before, "nothing downloaded twice");

    let (err, r, text) = call(&admin, "ct_templates", json!({})).await;
    assert!(!err, "{text}");
    let vols: Vec<&str> = r["downloaded"]
        .as_array()
        .expect("downloaded")
        .iter()
        .filter_map(|d| d["volid"].as_str())
        .collect();
    assert!(vols.contains(&VOLID), "{r}");
    assert!(
        vols.contains(&"local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz"),
        "{r}"
    );
    assert!(
        r["appliances"]
            .as_array()
            .expect("index")
            .iter()
            .any(
                |a| a["template"] == "alpine-3.20-default_20240908_amd64.tar.xz"
                    && a["downloaded"] == true
            ),
        "{r}"
    );

    let (err, r, text) = call(
        &admin,
        "ct_create",
        json!({"template": "alpine-3.20-default", "hostname": "alpine-01", "start": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(
        r["template"],
        "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz"
    );
    assert_eq!(r["started"], true);
    admin.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_may_not_download_falls_back_to_pveam_over_ssh() {
    // Without SSH the manager token's 403 is explained with both ways out.
    let e = env(false).await;
    let client = e.manager().await;
    let (err, _, text) = call(
        &client,
        "ct_template_download",
        json!({"template": "ubuntu-24.04-standard"}),
    )
    .await;
    assert!(err, "{text}");
    assert!(
        text.contains("Datastore.AllocateTemplate") && text.contains("ssh"),
        "{text}"
    );
    client.cancel().await.ok();

    let e = env(true).await;
    let client = e.manager().await;
    let (err, r, text) = call(
        &client,
        "ct_template_download",
        json!({"template": "ubuntu-24.04-standard", "node": "pve02"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["path"], "ssh", "{r}");
    assert_eq!(r["node"], "pve02");
    let ran: Vec<Vec<String>> = e
        .sim
        .ssh_commands()
        .iter()
        .map(|c| c.argv.clone())
        .collect();
    assert!(
        ran.iter().any(|a| a
            == &[
                "pveam",
                "download",
                "local",
                "ubuntu-24.04-standard_24.04-2_amd64.tar.zst"
            ]),
        "{ran:?}"
    );
    let (err, r, text) = call(
        &client,
        "ct_create",
        json!({"template": "ubuntu-24.04-standard", "node": "pve02", "hostname": "noble-01"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["node"], "pve02");
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_template_is_cloned_and_configured() {
    let e = env(false).await;
    let client = e.manager().await;
    let (err, r, text) = call(
        &client,
        "ct_create",
        json!({"template": 110, "hostname": "from-tmpl", "cores": 2, "memory": 768, "disk": 6, "start": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["method"], "clone", "{r}");
    assert_eq!(r["node"], "pve02");
    assert_eq!(r["template"], "ct 110");
    assert_eq!(r["started"], true);
    assert_eq!(
        r["storage"], "local-lvm",
        "a linked clone stays on the template's storage"
    );
    assert!(
        r["ip_addresses"].as_array().is_some_and(|a| !a.is_empty()),
        "{r}"
    );
    let vmid = r["vmid"].as_u64().expect("vmid");
    let row = listed(&client, vmid).await;
    assert_eq!(row["status"], "running", "{row}");
    // A clone only grows the template's disk.
    let (err, _, text) = call(
        &client,
        "ct_create",
        json!({"template": 110, "hostname": "too-small", "disk": 1}),
    )
    .await;
    assert!(err && text.contains("only grows"), "{text}");
    // Another node than the template's is refused before the clone.
    let before = e.writes();
    let (err, _, text) = call(
        &client,
        "ct_create",
        json!({"template": 110, "hostname": "elsewhere", "node": "pve01"}),
    )
    .await;
    assert!(err && text.contains("pve02"), "{text}");
    assert_eq!(e.writes(), before);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_root_password_comes_from_pass_and_never_shows() {
    common::external::require("pass");
    common::external::require("gpg");
    const ENTRY: &str = "annarchy.net/pve/ct-root";
    const SECRET: &str = "ct-r00t-S3cret-never-shown";
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let store = common::pass::PassStore::new();
    store.insert(ENTRY, &format!("{SECRET}\n"));
    let yaml = common::config_yaml(sim.addr().port(), &sim.fingerprint()).replace(
        "  ssh_user: root\n",
        &format!("  ssh_user: root\n  ct_password_pass_path: {ENTRY}\n"),
    );
    let config = dir.path().join("cluster-config.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let token = common::token_env(&sim);
    let (cfg, state, envs) = (config.clone(), dir.path().to_path_buf(), store.env_pairs());
    let transport =
        rmcp::transport::TokioChildProcess::new(rmcp::transport::ConfigureCommandExt::configure(
            tokio::process::Command::new(common::binary()),
            move |c| {
                c.arg("serve")
                    .arg("--config")
                    .arg(&cfg)
                    .args(["--task-poll-ms", "5"]);
                c.envs(envs.clone())
                    .env("PROXMOX_MANAGER_TOKEN", &token)
                    .env("XDG_STATE_HOME", &state)
                    .env_remove("PROXMOX_MANAGER_CONFIG")
                    .env_remove("SSH_AUTH_SOCK");
            },
        ))
        .expect("spawn server");
    let client = Recorder::default()
        .serve(transport)
        .await
        .expect("MCP handshake");
    let (err, r, text) = call(
        &client,
        "ct_create",
        json!({"template": VOLID, "hostname": "secret-01"}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["config"]["password"], "set from pass", "{r}");
    assert!(!text.contains(SECRET), "{text}");
    let create = sim
        .requests()
        .into_iter()
        .find(|q| q.method == "POST" && q.path.ends_with("/nodes/pve01/lxc"))
        .expect("the create request");
    assert!(
        create.params.iter().any(|p| p == "password"),
        "sent in the form: {:?}",
        create.params
    );
    let (err, _, text) = call(&client, "vm_list", json!({"page_size": 200})).await;
    assert!(!err && !text.contains(SECRET), "{text}");
    client.cancel().await.ok();
    // Nothing the server wrote (audit log included) holds it.
    for entry in walk(dir.path()) {
        if let Ok(body) = std::fs::read_to_string(&entry) {
            assert!(
                !body.contains(SECRET),
                "{} holds the password",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_archive_restores_as_a_container() {
    let e = env(false).await;
    let client = e.manager().await;
    // A fresh backup of a container, then its archive restored to a new vmid.
    let (err, r, text) = call(
        &client,
        "backup_now",
        json!({"vmids": [1200], "storage": "local"}),
    )
    .await;
    assert!(!err, "{text}");
    let archive = r["guests"][0]["volid"]
        .as_str()
        .unwrap_or_else(|| panic!("an archive: {r}"))
        .to_string();
    assert!(archive.contains("vzdump-lxc-1200-"), "{archive}");
    let (err, r, text) = call(&client, "backup_restore", json!({"archive": archive})).await;
    assert!(!err, "{text}");
    assert_eq!(r["executed"], false, "previewed: {r}");
    assert_eq!(r["guest_type"], "lxc");
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("as container")),
        "{r}"
    );
    let (err, r, text) = call(
        &client,
        "backup_restore",
        json!({"archive": archive, "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["executed"], true, "{r}");
    assert_eq!(
        r["storage"], "local-lvm",
        "a rootdir storage, not PVE's `local`: {r}"
    );
    assert_eq!(r["status_after"], "stopped", "{r}");
    let new = r["vmid"].as_u64().expect("vmid");
    assert_eq!(listed(&client, new).await["type"], "lxc");

    // Over a running container: refused before anything is sent.
    let before = e.writes();
    let (err, _, text) = call(
        &client,
        "backup_restore",
        json!({"archive": archive, "vmid": 1200, "force": true, "confirm": true}),
    )
    .await;
    assert!(err && text.contains("running"), "{text}");
    // Over a VM: refused.
    let (err, _, text) = call(
        &client,
        "backup_restore",
        json!({"archive": archive, "vmid": 1000, "force": true}),
    )
    .await;
    assert!(err && text.contains("type"), "{text}");
    // Over an existing container without force: refused, naming it.
    let (err, _, text) = call(
        &client,
        "backup_restore",
        json!({"archive": archive, "vmid": new}),
    )
    .await;
    assert!(
        err && text.contains(&format!("container {new}")) && text.contains("force"),
        "{text}"
    );
    assert_eq!(e.writes(), before);
    // Over the stopped restored container: previewed, then done.
    let (err, r, text) = call(
        &client,
        "backup_restore",
        json!({"archive": archive, "vmid": new, "force": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.contains("OVERWRITING container")),
        "{r}"
    );
    assert_eq!(e.writes(), before, "a preview changes nothing");
    let (err, r, text) = call(
        &client,
        "backup_restore",
        json!({"archive": archive, "vmid": new, "force": true, "confirm": true, "keep_macs": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["executed"], true);
    assert_eq!(r["new_macs"], false);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_after_the_create_names_the_container_that_exists() {
    let e = env(false).await;
    let client = e.manager().await;
    e.sim
        .fail_next_task("pve01", "vzstart", "startup for container '2000' failed");
    let (err, _, text) = call(
        &client,
        "ct_create",
        json!({"template": VOLID, "hostname": "half-made", "start": true}),
    )
    .await;
    assert!(err, "{text}");
    assert!(
        text.contains("(half-made) on pve01 was created")
            && text.contains("starting it")
            && text.contains("vm_delete"),
        "a partial result naming the container: {text}"
    );
    let (_, r, _) = call(&client, "vm_list", json!({"name": "half-made"})).await;
    assert_eq!(r["vms"][0]["status"], "stopped", "{r}");
    // A create task that fails leaves nothing behind: a plain error.
    e.sim
        .fail_next_task("pve01", "vzcreate", "unable to create CT - disk full");
    let (err, _, text) = call(
        &client,
        "ct_create",
        json!({"template": VOLID, "hostname": "never-made"}),
    )
    .await;
    assert!(
        err && text.contains("disk full") && !text.contains("was created"),
        "{text}"
    );
    let (_, r, _) = call(&client, "vm_list", json!({"name": "never-made"})).await;
    assert_eq!(r["vms"], json!([]), "{r}");
    client.cancel().await.ok();
}

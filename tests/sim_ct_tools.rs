//! The simulator's side of the container tools, as PVE answers them: a container's
//! `interfaces` (null while it is stopped; `lo` and each `netN` with its static address or a
//! DHCP lease once it runs) and `pveam available` / `pveam download` over SSH (pve-manager's
//! `PVE/CLI/pveam.pm`: `%-20s %s` rows; the download worker in the foreground, its log printed).

use crate::support;

use serde_json::Value;
use support::{Api, CLAUDE};

const SCALE: f64 = 0.002;

fn iface<'a>(rows: &'a Value, name: &str) -> &'a Value {
    rows.as_array()
        .and_then(|r| r.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {rows}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn interfaces_of_a_container_follow_its_state_and_net0() {
    let api = Api::new(SCALE).await;
    // pihole runs with a static address
    let (s, b) = api.get("/nodes/pve02/lxc/1200/interfaces").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(iface(&b["data"], "lo")["inet"], "127.0.0.1/8");
    let eth0 = iface(&b["data"], "eth0");
    assert_eq!(eth0["inet"], "10.10.0.53/24", "{b}");
    assert!(
        eth0["hwaddr"].as_str().is_some_and(|m| m.len() == 17),
        "{b}"
    );
    assert!(
        eth0["inet6"]
            .as_str()
            .is_some_and(|a| a.starts_with("fe80::")),
        "{b}"
    );
    // a stopped container: null (get_interfaces finds no pid)
    let (s, b) = api.get("/nodes/pve02/lxc/110/interfaces").await;
    assert_eq!((s, &b["data"]), (200, &Value::Null), "{b}");
    // a new container on DHCP gets a lease once it runs
    let upid = api
        .upid(
            CLAUDE,
            "POST",
            "/nodes/pve01/lxc",
            &[
                ("vmid", "2401"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
                ("storage", "local-lvm"),
                ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
            ],
        )
        .await;
    assert_eq!(api.wait(&upid).await, "OK");
    let (_, b) = api.get("/nodes/pve01/lxc/2401/interfaces").await;
    assert_eq!(b["data"], Value::Null);
    assert_eq!(
        api.run(CLAUDE, "POST", "/nodes/pve01/lxc/2401/status/start", &[])
            .await,
        "OK"
    );
    let (_, b) = api.get("/nodes/pve01/lxc/2401/interfaces").await;
    let inet = iface(&b["data"], "eth0")["inet"]
        .as_str()
        .unwrap_or_else(|| panic!("a lease: {b}"))
        .to_string();
    let (addr, prefix) = inet.split_once('/').expect("CIDR");
    assert!(
        addr.parse::<std::net::Ipv4Addr>().is_ok() && prefix == "24",
        "{inet}"
    );
    // an unknown container
    let (s, _) = api.get("/nodes/pve01/lxc/9999/interfaces").await;
    assert_eq!(s, 500, "no such container");
}

#[tokio::test(flavor = "multi_thread")]
async fn pveam_lists_the_index_and_downloads_in_the_foreground() {
    let api = Api::new(SCALE).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = support::SimSsh::new(&api, dir.path());
    let out = pool.run(&api, "pve02", &["pveam", "available"]).await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l
            == format!(
                "{:<20} {}",
                "system", "debian-12-standard_12.7-1_amd64.tar.zst"
            )),
        "{}",
        out.stdout
    );
    let out = pool
        .run(&api, "pve02", &["pveam", "available", "--section", "mail"])
        .await;
    assert_eq!((out.status, out.stdout.as_str()), (Some(0), ""), "{out:?}");
    let out = pool
        .run(
            &api,
            "pve02",
            &[
                "pveam",
                "download",
                "local",
                "alpine-3.20-default_20240908_amd64.tar.xz",
            ],
        )
        .await;
    assert_eq!(out.status, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("finished"),
        "the worker's log: {}",
        out.stdout
    );
    let (_, b) = api
        .get("/nodes/pve02/storage/local/content?content=vztmpl")
        .await;
    assert!(
        b["data"].as_array().is_some_and(|r| r
            .iter()
            .any(|i| i["volid"] == "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz")),
        "{b}"
    );
    // an unknown template: the parameter error as the CLI prints it
    let out = pool
        .run(
            &api,
            "pve02",
            &["pveam", "download", "local", "nope.tar.zst"],
        )
        .await;
    assert_eq!(out.status, Some(255), "{out:?}");
    assert!(out.stderr.contains("template: no such template"), "{out:?}");
    let out = pool.run(&api, "pve02", &["pveam", "frobnicate"]).await;
    assert_eq!(out.status, Some(255), "{out:?}");
}

//! Container reads: the node's list, a container's index, config (current, pending applied,
//! or a snapshot's), pending, status/current, interfaces, snapshots, and the appliance index
//! (`aplinfo`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::ct;
use crate::sim::api::Ctx;
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{MIB, Vm};

const INT_KEYS: &[&str] = &[
    "console",
    "cores",
    "cpuunits",
    "memory",
    "onboot",
    "protection",
    "snaptime",
    "swap",
    "template",
    "tty",
    "unprivileged",
];

fn vm_path(c: &Ctx) -> String {
    format!("/vms/{}", c.args.vmid)
}

/// One row of `/nodes/{node}/lxc` (pve-container `vmstatus`).
pub fn summary(vm: &Vm) -> Map<String, Value> {
    let mut m = Map::new();
    let running = vm.running;
    let (net, io) = (vm.uptime() * 2_300, vm.uptime() * 4_100);
    let maxswap = vm
        .get("swap")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(512)
        * MIB;
    m.insert("vmid".into(), json!(vm.vmid));
    m.insert("name".into(), json!(vm.name()));
    m.insert("type".into(), json!("lxc"));
    m.insert(
        "status".into(),
        json!(if running { "running" } else { "stopped" }),
    );
    m.insert("cpus".into(), json!(vm.cpus()));
    m.insert(
        "cpu".into(),
        json!(if running { vm.cpu_usage } else { 0.0 }),
    );
    m.insert("maxmem".into(), json!(vm.maxmem()));
    m.insert("mem".into(), json!(vm.mem()));
    m.insert("maxswap".into(), json!(maxswap));
    m.insert("swap".into(), json!(0));
    m.insert("maxdisk".into(), json!(vm.maxdisk()));
    m.insert(
        "disk".into(),
        json!(if running { vm.maxdisk() / 4 } else { 0 }),
    );
    m.insert("uptime".into(), json!(vm.uptime()));
    m.insert("netin".into(), json!(net));
    m.insert("netout".into(), json!(net / 2));
    m.insert("diskread".into(), json!(io));
    m.insert("diskwrite".into(), json!(io / 3));
    crate::sim::api::qemu::read::status_marks(&mut m, vm, running);
    m
}

pub fn list(c: &Ctx) -> ApiResult {
    c.validate()?;
    let node = &c.args.node;
    let mut audit = crate::sim::api::GuestAudit::new(c);
    let out: Vec<Value> =
        c.st.vms_on(node)
            .filter(|v| v.is_ct() && audit.visible(v.vmid))
            .map(|v| Value::Object(summary(v)))
            .collect();
    Ok(Reply::data(Value::Array(out)))
}

fn subdirs(names: &[&str]) -> ApiResult {
    Ok(Reply::data(Value::Array(
        names.iter().map(|n| json!({ "subdir": n })).collect(),
    )))
}

pub fn index(c: &Ctx) -> ApiResult {
    c.validate()?;
    ct(c.st, &c.args.node, &c.args.vmid)?;
    subdirs(&[
        "config",
        "pending",
        "status",
        "vncproxy",
        "termproxy",
        "vncwebsocket",
        "spiceproxy",
        "migrate",
        "clone",
        "rrd",
        "firewall",
        "rrddata",
        "snapshot",
        "resize",
        "move_volume",
        "feature",
        "template",
        "interfaces",
        "mtunnel",
        "mtunnelwebsocket",
        "remote_migrate",
    ])
}

pub fn status_index(c: &Ctx) -> ApiResult {
    c.validate()?;
    ct(c.st, &c.args.node, &c.args.vmid)?;
    subdirs(&[
        "current", "start", "stop", "shutdown", "reboot", "suspend", "resume",
    ])
}

/// Config values as the API types them.
pub fn typed(view: &BTreeMap<String, String>) -> Map<String, Value> {
    view.iter()
        .map(|(k, v)| {
            let val = if INT_KEYS.contains(&k.as_str()) {
                v.parse::<i64>()
                    .map(|n| json!(n))
                    .unwrap_or_else(|_| json!(v))
            } else if k == "cpulimit" {
                v.parse::<f64>()
                    .map(|n| json!(n))
                    .unwrap_or_else(|_| json!(v))
            } else {
                json!(v)
            };
            (k.clone(), val)
        })
        .collect()
}

pub fn config(c: &Ctx) -> ApiResult {
    c.require(&vm_path(c), &["VM.Audit"], false)?;
    c.validate()?;
    let snapshot = c.param("snapshot").filter(|s| !s.is_empty());
    if snapshot.is_some() && c.flag("current") {
        let e = "cannot use 'snapshot' parameter with 'current'";
        return Err(ApiError::Param(
            [("snapshot", e), ("current", e)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
    }
    let vm = ct(c.st, &c.args.node, &c.args.vmid)?;
    crate::sim::api::qemu::read::config_reply(vm, snapshot, c.flag("current"), typed)
}

pub fn pending(c: &Ctx) -> ApiResult {
    c.require(&vm_path(c), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = ct(c.st, &c.args.node, &c.args.vmid)?;
    let mut keys: Vec<&String> = vm.config.keys().chain(vm.pending.keys()).collect();
    keys.extend(vm.pending_delete.iter());
    keys.sort();
    keys.dedup();
    let typed_one = |k: &str, v: &str| {
        typed(&BTreeMap::from([(k.to_string(), v.to_string())]))
            .remove(k)
            .unwrap_or(Value::Null)
    };
    let out: Vec<Value> = keys
        .into_iter()
        .filter(|k| !matches!(k.as_str(), "digest" | "snapstate" | "lock"))
        .map(|k| {
            let mut m = Map::new();
            m.insert("key".into(), json!(k));
            if let Some(v) = vm.config.get(k) {
                m.insert("value".into(), typed_one(k, v));
            }
            if let Some(v) = vm.pending.get(k) {
                m.insert("pending".into(), typed_one(k, v));
            }
            if vm.pending_delete.contains(k) {
                m.insert("delete".into(), json!(1));
            }
            Value::Object(m)
        })
        .collect();
    Ok(Reply::data(Value::Array(out)))
}

pub fn status_current(c: &Ctx) -> ApiResult {
    c.require(&vm_path(c), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = ct(c.st, &c.args.node, &c.args.vmid)?;
    let mut m = summary(vm);
    let ha = if c.st.ha.is_managed(vm.vmid) {
        json!({ "managed": 1, "state": c.st.ha.services.get(&vm.vmid).map(|s| s.state.clone()) })
    } else {
        json!({ "managed": 0 })
    };
    m.insert("ha".into(), ha);
    Ok(Reply::data(Value::Object(m)))
}

/// `GET .../lxc/{vmid}/interfaces` (`LXC.pm ip`): `ip --json a` inside the container's network
/// namespace, one entry per interface with its last address of each family as `ADDR/PREFIX`;
/// no data (`null`) when the container is not running (pve-container `get_interfaces` finds
/// no pid and returns nothing).
pub fn interfaces(c: &Ctx) -> ApiResult {
    c.require(&vm_path(c), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = ct(c.st, &c.args.node, &c.args.vmid)?;
    if !vm.running {
        return Ok(Reply::data(Value::Null));
    }
    let mut out = vec![json!({
        "name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"
    })];
    let nets: BTreeMap<u32, &String> = vm
        .config
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("net")?.parse().ok()?, v)))
        .collect();
    for (i, net) in nets {
        let field = |name: &str| {
            net.split(',')
                .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let mac = field("hwaddr").unwrap_or_default().to_lowercase();
        let ifname = field("name").unwrap_or_else(|| format!("eth{i}"));
        let mut m = Map::new();
        m.insert("name".into(), json!(ifname));
        m.insert("hwaddr".into(), json!(mac));
        // `ip=dhcp` leases an address like a VM's DHCP; `manual` or none configures nothing.
        let ip = field("ip");
        if ip.as_deref().is_some_and(|ip| ip != "manual") {
            let (addr, prefix) = crate::sim::api::qemu::power::guest_ipv4(
                vm.vmid + i,
                ip.map(|ip| format!("ip={ip}")).as_deref(),
            );
            m.insert("inet".into(), json!(format!("{addr}/{prefix}")));
        }
        m.insert(
            "inet6".into(),
            json!(format!(
                "{}/64",
                crate::sim::api::qemu::power::link_local(&mac)
            )),
        );
        out.push(Value::Object(m));
    }
    Ok(Reply::data(Value::Array(out)))
}

pub fn snapshots(c: &Ctx) -> ApiResult {
    c.require(&vm_path(c), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = ct(c.st, &c.args.node, &c.args.vmid)?;
    let mut out: Vec<Value> = vm
        .snapshots
        .iter()
        .map(|(name, s)| {
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            m.insert(
                "description".into(),
                json!(s.get("description").cloned().unwrap_or_default()),
            );
            if let Some(t) = s.get("snaptime").and_then(|t| t.parse::<i64>().ok()) {
                m.insert("snaptime".into(), json!(t));
            }
            if let Some(p) = s.get("parent") {
                m.insert("parent".into(), json!(p));
            }
            Value::Object(m)
        })
        .collect();
    let mut cur = json!({ "name": "current", "description": "You are here!", "running": u8::from(vm.running) });
    if let Some(p) = vm.get("parent") {
        cur["parent"] = json!(p);
    }
    out.push(cur);
    Ok(Reply::data(Value::Array(out)))
}

pub fn snapshot_index(c: &Ctx) -> ApiResult {
    c.validate()?;
    subdirs(&["rollback", "config"])
}

pub fn snapshot_config(c: &Ctx) -> ApiResult {
    c.require(&vm_path(c), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = ct(c.st, &c.args.node, &c.args.vmid)?;
    let name = c.param("snapname").unwrap_or("");
    let snap = vm
        .snapshots
        .get(name)
        .ok_or_else(|| ApiError::Server(format!("snapshot '{name}' does not exist")))?;
    let mut m = typed(snap);
    m.remove("snapstate");
    Ok(Reply::data(Value::Object(m)))
}

/// An appliance of the index `pveam update` downloads (`aplinfo.dat`).
pub struct Appliance {
    pub template: &'static str,
    pub package: &'static str,
    pub headline: &'static str,
    pub description: &'static str,
    pub os: &'static str,
    pub version: &'static str,
    pub section: &'static str,
    pub size: u64,
}

pub const APPLIANCES: &[Appliance] = &[
    Appliance {
        template: "alpine-3.20-default_20240908_amd64.tar.xz",
        package: "alpine-3.20-default",
        headline: "Alpine Linux 3.20",
        description: "A small, simple, security-oriented Linux distribution based on musl libc and busybox.",
        os: "alpine",
        version: "3.20-0",
        section: "system",
        size: 3_141_240,
    },
    Appliance {
        template: "debian-12-standard_12.7-1_amd64.tar.zst",
        package: "debian-12-standard",
        headline: "Debian 12 Bookworm (standard)",
        description: "A small Debian Bookworm system including all standard packages.",
        os: "debian-12",
        version: "12.7-1",
        section: "system",
        size: 126_839_296,
    },
    Appliance {
        template: "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
        package: "ubuntu-24.04-standard",
        headline: "Ubuntu 24.04 Noble (standard)",
        description: "A small Ubuntu 24.04 Noble Numbat system including all standard packages.",
        os: "ubuntu-24.04",
        version: "24.04-2",
        section: "system",
        size: 141_557_760,
    },
];

/// The (stable) sha512 the index lists for an appliance.
pub fn sha512_of(a: &Appliance) -> String {
    Sha512::digest(a.template.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn appliance_row(a: &Appliance) -> Value {
    let source = format!("http://download.proxmox.com/images/{}", a.section);
    json!({
        "architecture": "amd64",
        "description": a.description,
        "headline": a.headline,
        "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
        "location": format!("{source}/{}", a.template),
        "maintainer": "Proxmox Support Team <support@proxmox.com>",
        "os": a.os,
        "package": a.package,
        "section": a.section,
        "sha512sum": sha512_of(a),
        "source": source,
        "template": a.template,
        "type": "lxc",
        "version": a.version,
    })
}

/// `GET /nodes/{node}/aplinfo`: every user may read the index.
pub fn aplinfo(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(Reply::data(Value::Array(
        APPLIANCES.iter().map(appliance_row).collect(),
    )))
}

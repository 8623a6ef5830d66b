//! Cluster-wide reads: `/version`, `/cluster/status`, `/cluster/resources` (silently filtered
//! by privileges, item 15; fields per item 29), `/cluster/nextid` (a JSON string, item 22) and
//! `/access/permissions` (item 16).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::sim::api::Ctx;
use crate::sim::api::listing::{Clocked, Template, TemplateBuilder, stand_in};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{State, Vm};

pub fn version(c: &Ctx) -> ApiResult {
    c.validate()?;
    let (v, rel, repo) = &c.st.version;
    Ok(Reply::data(
        json!({ "version": v, "release": rel, "repoid": repo }),
    ))
}

pub fn status(c: &Ctx) -> ApiResult {
    c.require("/", &["Sys.Audit"], false)?;
    c.validate()?;
    let st = c.st;
    let online = st.nodes.iter().filter(|n| n.online).count();
    let mut out = vec![json!({
        "type": "cluster", "id": "cluster", "name": st.cluster, "nodes": st.nodes.len(),
        "quorate": u8::from(online * 2 > st.nodes.len()), "version": st.nodes.len() + 2,
    })];
    for (i, n) in st.nodes.iter().enumerate() {
        out.push(json!({
            "type": "node", "id": format!("node/{}", n.name), "name": n.name, "nodeid": n.nodeid,
            "ip": n.ip, "online": u8::from(n.online), "local": u8::from(i == 0), "level": "",
        }));
    }
    Ok(Reply::data(Value::Array(out)))
}

pub fn resources(c: &Ctx) -> ApiResult {
    c.validate()?;
    let st = c.st;
    let ty = c.param("type");
    // The same state and caller give the same rows but for the clocked numbers: render once
    // per state generation, fill in the time per request (see `listing.rs`).
    let key = format!("{}|{}", ty.unwrap_or(""), c.authid());
    let now = crate::sim::state::now();
    if let Some(t) = st.listings.get(st.generation, st.writing, &key) {
        return Ok(Reply::raw(t.render(now)));
    }
    let t = std::sync::Arc::new(resources_template(c, ty)?);
    st.listings
        .put(st.generation, st.writing, key, std::sync::Arc::clone(&t));
    Ok(Reply::raw(t.render(now)))
}

fn resources_template(c: &Ctx, ty: Option<&str>) -> Result<Template, ApiError> {
    let st = c.st;
    let (vms, nodes, storages) = (
        ty.is_none() || ty == Some("vm"),
        ty.is_none() || ty == Some("node"),
        ty.is_none() || ty == Some("storage"),
    );
    // Rows are written straight into the body (no `Value` tree): at 10,000 guests the
    // listing is a few MB, and one pass over the guests computes every node's and storage's
    // usage ([`State::usage`]) instead of one pass per row.
    let mut out = JsonArray::with_capacity(
        usize::from(vms) * st.vms.len() * 360
            + usize::from(nodes) * st.nodes.len() * 200
            + usize::from(storages) * st.nodes.len() * st.storages.len() * 220,
    );
    if vms {
        let online: std::collections::BTreeMap<&str, bool> = st
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.online))
            .collect();
        let mut audit = crate::sim::api::GuestAudit::new(c);
        for vm in st.vms.values() {
            if audit.visible(vm.vmid) {
                let node_online = online.get(vm.node.as_str()).copied().unwrap_or(false);
                let mut row = vm_row(st, vm, node_online);
                if row.uptime.is_some() && vm.running {
                    // the numbers vm_row derives from the uptime, as holes
                    let guest = |mul, div| Clocked::Guest {
                        started_at: vm.started_at,
                        mul,
                        div,
                    };
                    let holes = [
                        ("diskread", guest(9_800, 1)),
                        ("diskwrite", guest(9_800, 2)),
                        ("netin", guest(3_100, 1)),
                        ("netout", guest(3_100, 3)),
                        ("uptime", guest(1, 1)),
                    ];
                    row.diskread = Some(stand_in(0));
                    row.diskwrite = Some(stand_in(1));
                    row.netin = Some(stand_in(2));
                    row.netout = Some(stand_in(3));
                    row.uptime = Some(stand_in(4));
                    out.push(&row)?;
                    out.rows.holes(&holes);
                } else {
                    out.push(&row)?;
                }
            }
        }
    }
    let usage = (nodes || storages).then(|| st.usage_now());
    if let (true, Some(u)) = (nodes, &usage) {
        for (i, n) in st.nodes.iter().enumerate() {
            let stats =
                (n.online && c.can(&format!("/nodes/{}", n.name), &["Sys.Audit"])).then(|| {
                    NodeStats {
                        cgroup_mode: 2,
                        cpu: u.node_cpu[i],
                        disk: u.rootfs[i],
                        level: "",
                        maxcpu: n.threads,
                        maxdisk: n.rootfs_total,
                        maxmem: n.mem_total,
                        mem: u.node_mem[i],
                    }
                });
            let hastate = if st.ha.active() {
                st.ha.node_status.get(&n.name).map(String::as_str)
            } else {
                None
            };
            let clocked = stats.is_some();
            out.push(&NodeRow {
                // `State::node_uptime`, as a hole
                uptime: clocked.then(|| stand_in(0)),
                stats,
                hastate,
                id: format!("node/{}", n.name),
                node: &n.name,
                status: if n.online { "online" } else { "offline" },
                ty: "node",
            })?;
            if clocked {
                out.rows.holes(&[(
                    "uptime",
                    Clocked::Node {
                        uptime0: n.uptime0,
                        started: st.started,
                    },
                )]);
            }
        }
    }
    if let (true, Some(u)) = (storages, &usage) {
        let visible: Vec<bool> = st
            .storages
            .iter()
            .map(|s| {
                c.can(
                    &format!("/storage/{}", s.id),
                    &["Datastore.Audit", "Datastore.AllocateSpace"],
                )
            })
            .collect();
        let contents: Vec<String> = st.storages.iter().map(|s| s.content.join(",")).collect();
        for (ni, n) in st.nodes.iter().enumerate() {
            for (si, s) in st.storages.iter().enumerate() {
                if !visible[si] {
                    continue;
                }
                out.push(&StorageRow {
                    content: &contents[si],
                    disk: n.online.then(|| u.storage(si, ni)),
                    id: format!("storage/{}/{}", n.name, s.id),
                    maxdisk: n.online.then_some(s.total),
                    node: &n.name,
                    plugintype: &s.stype,
                    shared: u8::from(s.shared),
                    status: if n.online { "available" } else { "unknown" },
                    storage: &s.id,
                    ty: "storage",
                })?;
            }
        }
    }
    Ok(out.finish())
}

/// A JSON array written row by row, as a template (see `listing.rs`).
struct JsonArray {
    rows: TemplateBuilder,
    empty: bool,
}

impl JsonArray {
    fn with_capacity(n: usize) -> JsonArray {
        let mut rows = TemplateBuilder::with_capacity(n + 2);
        rows.text().push('[');
        JsonArray { rows, empty: true }
    }
    fn push<T: Serialize>(&mut self, row: &T) -> Result<(), ApiError> {
        if !self.empty {
            self.rows.text().push(',');
        }
        self.empty = false;
        let text = serde_json::to_string(row)
            .map_err(|e| ApiError::Server(format!("cannot encode a row: {e}")))?;
        self.rows.text().push_str(&text);
        Ok(())
    }
    fn finish(mut self) -> Template {
        self.rows.text().push(']');
        self.rows.finish()
    }
}

// The rows' fields are declared in sorted order: the order `serde_json`'s map gives the rows
// other handlers build with `json!`.

/// A `type=node` row; the statistics only for an online node the caller may audit.
#[derive(Serialize)]
struct NodeRow<'a> {
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    stats: Option<NodeStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hastate: Option<&'a str>,
    id: String,
    node: &'a str,
    status: &'static str,
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime: Option<u64>,
}

#[derive(Serialize)]
struct NodeStats {
    #[serde(rename = "cgroup-mode")]
    cgroup_mode: u8,
    cpu: f64,
    disk: u64,
    level: &'static str,
    maxcpu: u32,
    maxdisk: u64,
    maxmem: u64,
    mem: u64,
}

/// A `type=storage` row (one per node and storage); usage only where the node is online.
#[derive(Serialize)]
struct StorageRow<'a> {
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<u64>,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    maxdisk: Option<u64>,
    node: &'a str,
    plugintype: &'a str,
    shared: u8,
    status: &'static str,
    storage: &'a str,
    #[serde(rename = "type")]
    ty: &'static str,
}

/// A `type=vm` row (item 29); the statistics only when the guest's node is online.
#[derive(Serialize)]
struct VmRow<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diskread: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diskwrite: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hastate: Option<String>,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maxcpu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maxdisk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maxmem: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mem: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memhost: Option<u64>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    netin: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    netout: Option<u64>,
    node: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a str>,
    template: u8,
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime: Option<u64>,
    vmid: u32,
}

fn vm_row<'a>(st: &State, vm: &'a Vm, node_online: bool) -> VmRow<'a> {
    let mut row = VmRow {
        cpu: None,
        disk: None,
        diskread: None,
        diskwrite: None,
        hastate: st.ha.hastate(vm.vmid),
        id: format!("{}/{}", if vm.is_ct() { "lxc" } else { "qemu" }, vm.vmid),
        lock: vm.get("lock"),
        maxcpu: None,
        maxdisk: None,
        maxmem: None,
        mem: None,
        memhost: None,
        name: vm.name(),
        netin: None,
        netout: None,
        node: &vm.node,
        status: "unknown",
        tags: vm.get("tags"),
        template: u8::from(vm.is_template()),
        ty: if vm.is_ct() { "lxc" } else { "qemu" },
        uptime: None,
        vmid: vm.vmid,
    };
    if !node_online {
        return row;
    }
    let running = vm.running;
    let uptime = vm.uptime();
    let (net, io) = (uptime * 3_100, uptime * 9_800);
    row.status = if running { "running" } else { "stopped" };
    row.maxcpu = Some(vm.cpus());
    row.cpu = Some(if running { vm.cpu_usage } else { 0.0 });
    row.maxmem = Some(vm.maxmem());
    row.mem = Some(vm.mem());
    row.memhost = Some(vm.memhost());
    row.maxdisk = Some(vm.maxdisk());
    row.disk = Some(0);
    row.netin = Some(net);
    row.netout = Some(net / 3);
    row.diskread = Some(io);
    row.diskwrite = Some(io / 2);
    row.uptime = Some(uptime);
    row
}

pub fn nextid(c: &Ctx) -> ApiResult {
    c.validate()?;
    if let Some(v) = c.param("vmid") {
        let id: u32 = v.parse().map_err(|_| {
            ApiError::param("vmid", format!("type check ('integer') failed - got '{v}'"))
        })?;
        if c.st.vms.contains_key(&id) {
            return Err(ApiError::param("vmid", format!("VM {id} already exists")));
        }
        return Ok(Reply::data(json!(id.to_string())));
    }
    let free = (100u32..1_000_000).find(|i| !c.st.vms.contains_key(i));
    match free {
        Some(id) => Ok(Reply::data(json!(id.to_string()))),
        None => Err(ApiError::Server(
            "unable to get any free VMID in range [100, 1000000)".into(),
        )),
    }
}

pub fn permissions(c: &Ctx) -> ApiResult {
    c.validate()?;
    let authid = c.authid();
    let target = c.param("userid").unwrap_or(authid);
    let owned_token = target.split_once('!').is_some_and(|(u, _)| u == authid);
    if target != authid && !owned_token {
        c.require("/access", &["Sys.Audit"], false)?;
    }
    if !c.st.access.exists(target) {
        return Err(ApiError::Server(format!("no such user/token '{target}'")));
    }
    let map = c.st.access.permission_map(target, c.param("path"));
    let out: Map<String, Value> = map
        .into_iter()
        .map(|(p, privs)| {
            (
                p,
                Value::Object(
                    privs
                        .into_iter()
                        .map(|(k, v)| (k, json!(u8::from(v))))
                        .collect(),
                ),
            )
        })
        .collect();
    Ok(Reply::data(Value::Object(out)))
}

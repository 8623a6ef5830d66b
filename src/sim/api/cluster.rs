//! Cluster-wide reads: `/version`, `/cluster/status`, `/cluster/resources` (silently filtered
//! by privileges, item 15; fields per item 29), `/cluster/nextid` (a JSON string, item 22) and
//! `/access/permissions` (item 16).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::sim::api::Ctx;
use crate::sim::api::listing::{Clocked, Row, Template, TemplateBuilder, stand_in};
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
    // usage ([`State::usage`]) instead of one pass per row. A guest's row is kept from the
    // last listing unless the guest or what else it shows changed since.
    let mut out = JsonArray::with_capacity(
        // the guests' rows are shared, not copied: only the commas between them
        usize::from(vms) * st.vms.len()
            + usize::from(nodes) * st.nodes.len() * 200
            + usize::from(storages) * st.nodes.len() * st.storages.len() * 220,
    );
    if vms {
        let online: crate::sim::state::NameMap<bool> = st
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.online))
            .collect();
        let mut audit = crate::sim::api::GuestAudit::new(c);
        // the rows of the guests unchanged since an earlier listing are kept (`guests.rs`)
        st.vms.each_derived(|vm, derived| {
            if !audit.visible(vm.vmid) {
                return Ok(());
            }
            let node_online = online.get(vm.node.as_str()).copied().unwrap_or(false);
            let hastate = st.ha.hastate(vm.vmid);
            let row = match &mut derived.row {
                Some(r) if r.node_online == node_online && r.hastate.as_deref() == hastate => r,
                kept => kept.insert(CachedRow {
                    node_online,
                    hastate: hastate.map(str::to_string),
                    row: std::sync::Arc::new(cut_vm_row(st, vm, node_online)?),
                }),
            };
            out.append(&row.row);
            Ok(())
        })?;
    }
    let usage = (nodes || storages).then(|| st.usage_now());
    if let (true, Some(u)) = (nodes, &usage) {
        for (i, n) in st.nodes.iter().enumerate() {
            push_node_row(&mut out, c, n, || {
                (u.node_cpu[i], u.rootfs[i], u.node_mem[i])
            })?;
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
                push_storage_row(&mut out, n, s, &contents[si], || u.storage(si, ni))?;
            }
        }
    }
    Ok(out.finish())
}

/// Appends node `n`'s row; `load` gives its CPU load and the rootfs and memory in use, asked
/// only when the row shows them (the node online, the caller allowed `Sys.Audit` on it).
fn push_node_row(
    out: &mut JsonArray,
    c: &Ctx,
    n: &crate::sim::state::Node,
    load: impl FnOnce() -> (f64, u64, u64),
) -> Result<(), ApiError> {
    let st = c.st;
    let stats = (n.online && c.can(&format!("/nodes/{}", n.name), &["Sys.Audit"])).then(|| {
        let (cpu, disk, mem) = load();
        NodeStats {
            cgroup_mode: 2,
            cpu,
            disk,
            level: "",
            maxcpu: n.threads,
            maxdisk: n.rootfs_total,
            maxmem: n.mem_total,
            mem,
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
    Ok(())
}

/// Appends the row of storage `s` on node `n` (`content` is its content types, joined);
/// `used` is asked only when the node is online.
fn push_storage_row(
    out: &mut JsonArray,
    n: &crate::sim::state::Node,
    s: &crate::sim::state::Storage,
    content: &str,
    used: impl FnOnce() -> u64,
) -> Result<(), ApiError> {
    out.push(&StorageRow {
        content,
        disk: n.online.then(used),
        id: format!("storage/{}/{}", n.name, s.id),
        maxdisk: n.online.then_some(s.total),
        node: &n.name,
        plugintype: &s.stype,
        shared: u8::from(s.shared),
        status: if n.online { "available" } else { "unknown" },
        storage: &s.id,
        ty: "storage",
    })
}

/// A guest's `/cluster/resources` row, kept with the guest (see `guests.rs`) along with what
/// else it was rendered from: its node's state and its HA state.
pub struct CachedRow {
    node_online: bool,
    hastate: Option<String>,
    /// Shared with the listings that show it.
    row: std::sync::Arc<Row>,
}

/// The row of `vm` with the numbers that grow with the clock cut out.
fn cut_vm_row(st: &State, vm: &Vm, node_online: bool) -> Result<Row, ApiError> {
    let mut row = vm_row(st, vm, node_online);
    let mut holes = Vec::new();
    if row.uptime.is_some() && vm.running {
        // the numbers vm_row derives from the uptime, as holes
        let guest = |mul, div| Clocked::Guest {
            started_at: vm.started_at,
            mul,
            div,
        };
        holes = vec![
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
    }
    Ok(Row::new(encode(&row)?, &holes))
}

fn encode<T: Serialize>(row: &T) -> Result<String, ApiError> {
    serde_json::to_string(row).map_err(|e| ApiError::Server(format!("cannot encode a row: {e}")))
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
        let text = encode(row)?;
        self.rows.text().push_str(&text);
        Ok(())
    }
    /// Appends a row cut beforehand.
    fn append(&mut self, row: &std::sync::Arc<Row>) {
        if !self.empty {
            self.rows.text().push(',');
        }
        self.empty = false;
        self.rows.append(row);
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
    hastate: Option<&'a str>,
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

fn vm_row<'a>(st: &'a State, vm: &'a Vm, node_online: bool) -> VmRow<'a> {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::sim::api::{PathArgs, run_as_root};
    use crate::sim::generate::GenerateSpec;
    use crate::sim::http::Req;
    use crate::sim::scenario::{HaSpec, Scenario};
    use crate::sim::state::{GuestKind, Shared};

    const NOW: i64 = 1_900_000_000;
    const CALLERS: &[&str] = &[
        "root@pam",
        "root@pam!admin",
        "claude-code@pve!automation",
        "auditor@pve!ro",
        "nosdn@pve!test",
    ];

    fn req(authid: &str) -> Req {
        Req {
            method: "GET".into(),
            path: "/cluster/resources".into(),
            params: BTreeMap::new(),
            authid: authid.into(),
            upload: None,
        }
    }

    /// `f` with the context of `authid`'s `GET /cluster/resources`.
    fn with_ctx<T>(st: &State, authid: &str, f: impl FnOnce(&Ctx) -> T) -> T {
        let (r, args) = (req(authid), PathArgs::default());
        f(&Ctx {
            st,
            req: &r,
            args: &args,
            spec: &[],
        })
    }

    /// The listing as served (rows kept with the guests).
    fn served(st: &State, authid: &str, ty: Option<&str>) -> String {
        with_ctx(st, authid, |c| {
            resources_template(c, ty).expect("listing").render(NOW)
        })
    }

    /// The listing rendered afresh as before rows were kept: every guest's row cut anew, every
    /// privilege checked on its own path, the usage from the per-item passes (the rows' shapes
    /// are the renderer's own).
    fn afresh(st: &State, authid: &str, ty: Option<&str>) -> String {
        with_ctx(st, authid, |c| afresh_in(c, ty))
    }

    fn afresh_in(c: &Ctx, ty: Option<&str>) -> String {
        let st = c.st;
        let (vms, nodes, storages) = (
            ty.is_none() || ty == Some("vm"),
            ty.is_none() || ty == Some("node"),
            ty.is_none() || ty == Some("storage"),
        );
        let mut out = JsonArray::with_capacity(0);
        if vms {
            let online: BTreeMap<&str, bool> = st
                .nodes
                .iter()
                .map(|n| (n.name.as_str(), n.online))
                .collect();
            for vm in st.vms.values() {
                if !c.can(&format!("/vms/{}", vm.vmid), &["VM.Audit"]) {
                    continue;
                }
                let node_online = online.get(vm.node.as_str()).copied().unwrap_or(false);
                let row = cut_vm_row(st, vm, node_online).expect("row");
                out.append(&Arc::new(row));
            }
        }
        if nodes {
            for n in &st.nodes {
                push_node_row(&mut out, c, n, || {
                    (st.node_cpu(n), st.rootfs_used(n), st.node_mem_used(n))
                })
                .expect("row");
            }
        }
        if storages {
            for n in &st.nodes {
                for s in &st.storages {
                    let visible = c.can(
                        &format!("/storage/{}", s.id),
                        &["Datastore.Audit", "Datastore.AllocateSpace"],
                    );
                    if visible {
                        push_storage_row(&mut out, n, s, &s.content.join(","), || {
                            st.storage_used(&s.id, Some(&n.name))
                        })
                        .expect("row");
                    }
                }
            }
        }
        out.finish().render(NOW)
    }

    /// Every caller's every listing, as served and afresh, must be the same bytes; `/nodes`
    /// too (its numbers come from the kept usage).
    fn check(shared: &Arc<Shared>, step: &str) {
        let st = shared.read();
        for authid in CALLERS {
            for ty in [None, Some("vm"), Some("node"), Some("storage")] {
                let (got, want) = (served(&st, authid, ty), afresh(&st, authid, ty));
                assert!(
                    got == want,
                    "after {step}: {authid} type={ty:?} differs from a listing rendered afresh"
                );
            }
        }
        // each storage's content, on two nodes (a shared storage's is the same on both),
        // whole and through each filter, as two of the callers see it
        let vmid = st.vms.keys().next().map(u32::to_string);
        let filters = [
            None,
            Some(("content", "images".to_string())),
            Some(("content", "rootdir".to_string())),
            vmid.map(|v| ("vmid", v)),
        ];
        for (n, s) in st
            .nodes
            .iter()
            .take(2)
            .flat_map(|n| st.storages.iter().map(move |s| (n, s)))
        {
            for filter in &filters {
                for authid in ["root@pam", "auditor@pve!ro"] {
                    let mut r = req(authid);
                    r.params
                        .extend(filter.iter().map(|(k, v)| (k.to_string(), v.clone())));
                    let args = PathArgs {
                        node: n.name.clone(),
                        storage: s.id.clone(),
                        ..PathArgs::default()
                    };
                    let c = Ctx {
                        st: &st,
                        req: &r,
                        args: &args,
                        spec: &[],
                    };
                    let (kept, fresh) = crate::sim::api::storage::content::kept_and_afresh(&c);
                    assert!(
                        kept == fresh,
                        "after {step}: {authid}'s content of {} on {} ({filter:?}) differs \
                         from a listing derived afresh",
                        s.id,
                        n.name
                    );
                }
            }
        }
        let u = st.usage();
        for (ni, n) in st.nodes.iter().enumerate() {
            // the kept index of each node's guests is the walk of every guest
            let indexed: Vec<u32> = st.vms_on(&n.name).map(|v| v.vmid).collect();
            let walked: Vec<u32> = st
                .vms
                .values()
                .filter(|v| v.node == n.name)
                .map(|v| v.vmid)
                .collect();
            assert_eq!(indexed, walked, "after {step}: the guests of {}", n.name);
            assert_eq!(u.node_mem[ni], st.node_mem_used(n), "after {step}");
            assert_eq!(u.node_cpu[ni].to_bits(), st.node_cpu(n).to_bits(), "{step}");
            assert_eq!(u.rootfs[ni], st.rootfs_used(n), "after {step}");
        }
    }

    fn put_config(shared: &Arc<Shared>, vmid: u32, params: &[(&str, &str)]) {
        let mut st = shared.lock();
        let vm = &st.vms[&vmid];
        let path = format!(
            "/nodes/{}/{}/{vmid}/config",
            vm.node,
            if vm.is_ct() { "lxc" } else { "qemu" }
        );
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        run_as_root(shared, &mut st, "PUT", &path, params).expect("config edit");
    }

    fn edit(shared: &Arc<Shared>, f: impl FnOnce(&mut State)) {
        f(&mut shared.lock());
    }

    fn first(shared: &Arc<Shared>, f: impl Fn(&Vm) -> bool) -> Option<u32> {
        let st = shared.read();
        st.vms.values().find(|v| f(v)).map(|v| v.vmid)
    }

    /// The rows and usage kept with the guests give the bytes of a listing rendered afresh
    /// after every kind of write a listing shows.
    #[test]
    fn kept_rows_give_the_bytes_of_a_fresh_listing_after_every_kind_of_write() {
        let generated = Scenario::generate(&GenerateSpec {
            nodes: 6,
            guests: 300,
            seed: 3,
            ..GenerateSpec::default()
        });
        for s in [generated, Scenario::embedded().expect("scenario")] {
            let state = State::from_scenario(&s).expect("state");
            let shared = Arc::new(Shared::new(state, 0.001));
            check(&shared, "start");
            // unchanged: the kept rows as they are
            check(&shared, "nothing");
            let running = |v: &Vm| v.running && v.kind == GuestKind::Qemu;
            let id = first(&shared, running).expect("a running VM");
            put_config(&shared, id, &[("description", "x")]);
            check(&shared, "a description");
            put_config(&shared, id, &[("name", "renamed"), ("tags", "a;b")]);
            check(&shared, "a rename and tags");
            put_config(&shared, id, &[("cores", "3"), ("memory", "3072")]);
            check(&shared, "cores and memory");
            if let Some(ct) = first(&shared, |v| v.is_ct()) {
                put_config(&shared, ct, &[("hostname", "ct-renamed")]);
                check(&shared, "a container's hostname");
            }
            edit(&shared, |st| {
                let vm = st.vms.get_mut(&id).expect("vm");
                let disk = vm.disk_refs().next().map(|d| d.key.to_string());
                if let Some(k) = disk {
                    let v = vm.config[&k].replace("size=", "size=1");
                    vm.config.insert(k, v);
                }
            });
            check(&shared, "a disk resize");
            // what only the content listings show: a RAM state, a cloud-init drive, a volume
            // freed while its config still names it
            edit(&shared, |st| {
                let vm = st.vms.get_mut(&id).expect("vm");
                let storage = vm
                    .disk_refs()
                    .next()
                    .map_or("local-lvm".into(), |d| d.storage.to_string());
                let mut snap = vm.config.clone();
                snap.insert("vmstate".into(), format!("{storage}:vm-{id}-state-t"));
                snap.insert("snaptime".into(), "1700000000".into());
                vm.snapshots.insert("t".into(), snap);
                vm.config.insert(
                    "ide2".into(),
                    format!("{storage}:vm-{id}-cloudinit,media=cdrom"),
                );
            });
            check(&shared, "a snapshot with its RAM and a cloud-init drive");
            edit(&shared, |st| {
                let vm = &st.vms[&id];
                let freed: Vec<String> = vm
                    .disk_refs()
                    .take(1)
                    .map(|d| format!("{}:{}", d.storage, d.volname))
                    .chain(
                        vm.get("ide2")
                            .map(|v| v.split(',').next().unwrap_or("").into()),
                    )
                    .collect();
                st.freed_volumes.extend(freed);
            });
            check(&shared, "a disk and a cloud-init drive freed");
            edit(&shared, |st| {
                let vm = st.vms.get_mut(&id).expect("vm");
                vm.config.insert("lock".into(), "backup".into());
            });
            check(&shared, "a lock");
            edit(&shared, |st| {
                let vm = st.vms.get_mut(&id).expect("vm");
                vm.running = false;
            });
            check(&shared, "a stop");
            edit(&shared, |st| {
                let vm = st.vms.get_mut(&id).expect("vm");
                vm.running = true;
                vm.started_at = NOW - 100;
                vm.cpu_usage = 0.25;
            });
            check(&shared, "a start");
            edit(&shared, |st| {
                let here = st.vms[&id].node.clone();
                let other = st.nodes.iter().map(|n| n.name.clone()).find(|n| *n != here);
                let vm = st.vms.get_mut(&id).expect("vm");
                vm.node = other.expect("another node");
            });
            check(&shared, "a migration");
            edit(&shared, |st| {
                let vm = st.vms.get_mut(&id).expect("vm");
                vm.config.insert("template".into(), "1".into());
            });
            check(&shared, "a conversion to a template");
            // what a row shows from outside its guest
            let node = shared.read().vms[&id].node.clone();
            edit(&shared, |st| {
                st.nodes
                    .iter_mut()
                    .filter(|n| n.name == node)
                    .for_each(|n| {
                        n.online = false;
                    });
            });
            check(&shared, "a node going offline");
            edit(&shared, |st| {
                st.nodes.iter_mut().for_each(|n| n.online = true);
            });
            check(&shared, "the node back");
            let spec: HaSpec = serde_json::from_value(serde_json::json!({})).expect("ha");
            edit(&shared, |st| {
                st.ha.resources.insert(id, spec);
            });
            check(&shared, "an HA resource added");
            edit(&shared, |st| {
                if let Some(s) = st.ha.services.values_mut().next() {
                    s.state = "migrate".into();
                }
            });
            check(&shared, "an HA service's state");
            edit(&shared, |st| {
                st.ha.resources.remove(&id);
            });
            check(&shared, "an HA resource removed");
            // privileges: one guest hidden from a caller, another shown to it
            let other = first(&shared, |v| v.vmid != id).expect("another guest");
            edit(&shared, |st| {
                for (path, role) in [(id, "NoAccess"), (other, "PVEAuditor")] {
                    st.access.acl.push(crate::sim::auth::AclEntry {
                        path: format!("/vms/{path}"),
                        ugid: "auditor@pve!ro".into(),
                        role: role.into(),
                        propagate: true,
                    });
                }
                st.access.acl.push(crate::sim::auth::AclEntry {
                    path: format!("/vms/{other}"),
                    ugid: "nosdn@pve".into(),
                    role: "NoAccess".into(),
                    propagate: true,
                });
            });
            check(&shared, "ACL entries on guests");
            edit(&shared, |st| {
                st.vms.remove(&other);
            });
            check(&shared, "a deletion");
            edit(&shared, |st| {
                let node = st.nodes[0].name.clone();
                let config = [
                    ("name", "created"),
                    ("memory", "2048"),
                    ("cores", "2"),
                    ("boot", "order=scsi0"),
                    ("scsi0", "local-lvm:vm-99999-disk-0,size=10G"),
                ];
                st.vms.insert(
                    99_999,
                    Vm {
                        vmid: 99_999,
                        kind: GuestKind::Qemu,
                        node,
                        running: true,
                        started_at: NOW - 5,
                        pid: 1,
                        cpu_usage: 0.5,
                        mem_usage: 0.5,
                        config: config
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        pending: BTreeMap::new(),
                        pending_delete: Default::default(),
                        snapshots: Default::default(),
                        paused: false,
                        started_instant: None,
                    },
                );
            });
            check(&shared, "a creation");
        }
    }
}

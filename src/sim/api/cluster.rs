//! Cluster-wide reads: `/version`, `/cluster/status`, `/cluster/resources` (silently filtered
//! by privileges, item 15; fields per item 29), `/cluster/nextid` (a JSON string, item 22) and
//! `/access/permissions` (item 16).

use serde_json::{Map, Value, json};

use crate::sim::api::Ctx;
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
    let mut out = Vec::new();
    if ty.is_none() || ty == Some("vm") {
        for vm in st.vms.values() {
            if c.can(&format!("/vms/{}", vm.vmid), &["VM.Audit"]) {
                out.push(vm_row(st, vm));
            }
        }
    }
    if ty.is_none() || ty == Some("node") {
        for n in &st.nodes {
            let mut row = json!({ "id": format!("node/{}", n.name), "type": "node", "node": n.name,
                "status": if n.online { "online" } else { "offline" } });
            if n.online && c.can(&format!("/nodes/{}", n.name), &["Sys.Audit"]) {
                let extra = json!({
                    "cpu": st.node_cpu(n), "maxcpu": n.threads, "mem": st.node_mem_used(n), "maxmem": n.mem_total,
                    "disk": st.rootfs_used(n), "maxdisk": n.rootfs_total, "uptime": st.node_uptime(n),
                    "level": "", "cgroup-mode": 2,
                });
                merge(&mut row, extra);
            }
            if let Some(h) = st
                .ha
                .active()
                .then(|| st.ha.node_status.get(&n.name))
                .flatten()
            {
                row["hastate"] = json!(h);
            }
            out.push(row);
        }
    }
    if ty.is_none() || ty == Some("storage") {
        for n in &st.nodes {
            for s in &st.storages {
                if !c.can(
                    &format!("/storage/{}", s.id),
                    &["Datastore.Audit", "Datastore.AllocateSpace"],
                ) {
                    continue;
                }
                let mut row = json!({
                    "id": format!("storage/{}/{}", n.name, s.id), "type": "storage", "storage": s.id,
                    "node": n.name, "plugintype": s.stype, "content": s.content.join(","),
                    "shared": u8::from(s.shared),
                    "status": if n.online { "available" } else { "unknown" },
                });
                if n.online {
                    merge(
                        &mut row,
                        json!({ "disk": st.storage_used(&s.id, Some(&n.name)), "maxdisk": s.total }),
                    );
                }
                out.push(row);
            }
        }
    }
    Ok(Reply::data(Value::Array(out)))
}

fn merge(row: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (row, extra) {
        a.extend(b);
    }
}

/// One `type=vm` row of `/cluster/resources` (item 29).
fn vm_row(st: &State, vm: &Vm) -> Value {
    let node_online = st.node(&vm.node).is_some_and(|n| n.online);
    let mut row = Map::new();
    row.insert("id".into(), json!(format!("qemu/{}", vm.vmid)));
    row.insert("type".into(), json!("qemu"));
    row.insert("vmid".into(), json!(vm.vmid));
    row.insert("node".into(), json!(vm.node));
    row.insert("name".into(), json!(vm.name()));
    row.insert("template".into(), json!(u8::from(vm.is_template())));
    if let Some(t) = vm.get("tags") {
        row.insert("tags".into(), json!(t));
    }
    if let Some(l) = vm.get("lock") {
        row.insert("lock".into(), json!(l));
    }
    if let Some(h) = st.ha.hastate(vm.vmid) {
        row.insert("hastate".into(), json!(h));
    }
    if !node_online {
        row.insert("status".into(), json!("unknown"));
        return Value::Object(row);
    }
    let running = vm.running;
    let (net, io) = (vm.uptime() * 3_100, vm.uptime() * 9_800);
    let stats = json!({
        "status": if running { "running" } else { "stopped" },
        "maxcpu": vm.cpus(), "cpu": if running { vm.cpu_usage } else { 0.0 },
        "maxmem": vm.maxmem(), "mem": vm.mem(), "memhost": vm.memhost(),
        "maxdisk": vm.maxdisk(), "disk": 0,
        "netin": net, "netout": net / 3, "diskread": io, "diskwrite": io / 2,
        "uptime": vm.uptime(),
    });
    if let Value::Object(m) = stats {
        row.extend(m);
    }
    Value::Object(row)
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

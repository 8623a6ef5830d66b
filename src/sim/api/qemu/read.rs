//! Guest reads: `/nodes/{node}/qemu` (filtered by VM.Audit), `.../config` (typed values plus
//! `digest`) and `.../status/current`. A guest asked for on the wrong node fails like PVE: 500
//! "Configuration file 'nodes/<node>/qemu-server/<vmid>.conf' does not exist".

use serde_json::{Map, Value, json};

use crate::sim::api::Ctx;
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::Vm;

const INT_KEYS: &[&str] = &[
    "acpi",
    "autostart",
    "balloon",
    "ciupgrade",
    "cores",
    "cpuunits",
    "freeze",
    "keephugepages",
    "kvm",
    "localtime",
    "migrate_speed",
    "numa",
    "onboot",
    "protection",
    "reboot",
    "shares",
    "smp",
    "snaptime",
    "sockets",
    "tablet",
    "tdf",
    "template",
    "vcpus",
];
const NUM_KEYS: &[&str] = &["cpulimit", "migrate_downtime"];

/// The guest `vmid` on `node`, or PVE's missing-config error.
pub fn lookup<'a>(c: &'a Ctx, node: &str, vmid: &str) -> Result<&'a Vm, ApiError> {
    let missing = || {
        ApiError::Server(format!(
            "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
        ))
    };
    let id: u32 = vmid.parse().map_err(|_| missing())?;
    c.st.vms
        .get(&id)
        .filter(|v| v.node == node)
        .ok_or_else(missing)
}

fn summary(vm: &Vm) -> Map<String, Value> {
    let mut m = Map::new();
    let running = vm.running;
    let (net, io) = (vm.uptime() * 3_100, vm.uptime() * 9_800);
    m.insert("vmid".into(), json!(vm.vmid));
    m.insert("name".into(), json!(vm.name()));
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
    m.insert("memhost".into(), json!(vm.memhost()));
    m.insert("maxdisk".into(), json!(vm.maxdisk()));
    m.insert("disk".into(), json!(0));
    m.insert("uptime".into(), json!(vm.uptime()));
    m.insert("netin".into(), json!(net));
    m.insert("netout".into(), json!(net / 3));
    m.insert("diskread".into(), json!(io));
    m.insert("diskwrite".into(), json!(io / 2));
    status_marks(&mut m, vm, running);
    if vm.get("serial0").is_some() {
        m.insert("serial".into(), json!(1));
    }
    m
}

pub fn list(c: &Ctx) -> ApiResult {
    c.validate()?;
    let node = &c.args.node;
    let mut audit = crate::sim::api::GuestAudit::new(c);
    let out: Vec<Value> =
        c.st.vms_on(node)
            .filter(|v| !v.is_ct() && audit.visible(v.vmid))
            .map(|v| Value::Object(summary(v)))
            .collect();
    Ok(Reply::data(Value::Array(out)))
}

pub fn config(c: &Ctx) -> ApiResult {
    c.require(&format!("/vms/{}", c.args.vmid), &["VM.Audit"], false)?;
    c.validate()?;
    if c.param("snapshot").is_some_and(|s| !s.is_empty()) && c.flag("current") {
        let e = "cannot use 'snapshot' parameter with 'current'";
        return Err(ApiError::Param(
            [("snapshot", e), ("current", e)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
    }
    let vm = lookup(c, &c.args.node, &c.args.vmid)?;
    let snapshot = c.param("snapshot").filter(|s| !s.is_empty());
    config_reply(vm, snapshot, c.flag("current"), typed)
}

/// The fields a guest's status row carries only when they apply, qemu or lxc alike: `pid`
/// while running, `template`, `tags`, `lock`.
pub fn status_marks(m: &mut Map<String, Value>, vm: &crate::sim::state::Vm, running: bool) {
    if running {
        m.insert("pid".into(), json!(vm.pid));
    }
    if vm.is_template() {
        m.insert("template".into(), json!(1));
    }
    if let Some(t) = vm.get("tags") {
        m.insert("tags".into(), json!(t));
    }
    if let Some(l) = vm.get("lock") {
        m.insert("lock".into(), json!(l));
    }
}

/// A guest's `GET .../config` answer, qemu or lxc (`typed` gives each its value types): a
/// snapshot's section (`load_snapshot_config`), else the config with pending values applied
/// unless `current=1` (qemu-server `vm_config`, pve-container's the same), with the digest.
pub fn config_reply(
    vm: &crate::sim::state::Vm,
    snapshot: Option<&str>,
    current: bool,
    typed: fn(&std::collections::BTreeMap<String, String>) -> Map<String, Value>,
) -> ApiResult {
    if let Some(s) = snapshot {
        let snap = vm
            .snapshots
            .get(s)
            .ok_or_else(|| ApiError::Server(format!("snapshot '{s}' does not exist")))?;
        let mut m = typed(snap);
        m.insert("digest".into(), json!(vm.digest()));
        return Ok(Reply::data(Value::Object(m)));
    }
    let mut view = vm.config.clone();
    if !current {
        for k in &vm.pending_delete {
            view.remove(k);
        }
        view.extend(vm.pending.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut m = typed(&view);
    m.insert("digest".into(), json!(vm.digest()));
    Ok(Reply::data(Value::Object(m)))
}

/// Config values as the API types them (integers and numbers where the schema says so).
pub fn typed(view: &std::collections::BTreeMap<String, String>) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in view {
        let val = if INT_KEYS.contains(&k.as_str()) {
            v.parse::<i64>()
                .map(|n| json!(n))
                .unwrap_or_else(|_| json!(v))
        } else if NUM_KEYS.contains(&k.as_str()) {
            v.parse::<f64>()
                .map(|n| json!(n))
                .unwrap_or_else(|_| json!(v))
        } else {
            json!(v)
        };
        m.insert(k.clone(), val);
    }
    m
}

pub fn status_current(c: &Ctx) -> ApiResult {
    c.require(&format!("/vms/{}", c.args.vmid), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = lookup(c, &c.args.node, &c.args.vmid)?;
    let mut m = summary(vm);
    let qmp = match (vm.running, vm.paused) {
        (true, true) => "paused",
        (true, false) => "running",
        _ => "stopped",
    };
    m.insert("qmpstatus".into(), json!(qmp));
    // `PVE::HA::Config::get_service_status`
    let ha = if c.st.ha.is_managed(vm.vmid) {
        json!({ "managed": 1, "state": c.st.ha.services.get(&vm.vmid).map(|s| s.state.clone()) })
    } else {
        json!({ "managed": 0 })
    };
    m.insert("ha".into(), ha);
    let agent = vm.get("agent").is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|x| x == "1" || x == "enabled=1")
    });
    if agent {
        m.insert("agent".into(), json!(1));
    }
    if vm.running {
        m.insert("running-machine".into(), json!("pc-q35-9.2+pve1"));
        m.insert("running-qemu".into(), json!("9.2.0"));
    }
    Ok(Reply::data(Value::Object(m)))
}

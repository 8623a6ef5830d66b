//! `rrddata` for nodes, guests and storages: the 70 samples PVE's RRD returns for the
//! `timeframe` (hour: 1 min steps, day: 30 min, week: 3 h, month: 12 h, year: 1 week,
//! decade: 10 weeks), ending at the last full step. Values are deterministic: the entity's
//! current figures with a gentle wave keyed by the sample time, so polling clients get stable,
//! plausible series. A stopped guest's samples are zero-load.

use serde_json::{Map, Value, json};

use crate::sim::api::Ctx;
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::params::{Param, Ty, opt};

/// Nodes also keep a `decade`; guests and storages do not (the schema's enums).
pub const NODE_TIMEFRAME: Ty = Ty::Enum(&["hour", "day", "week", "month", "year", "decade"]);
pub const TIMEFRAME: Ty = Ty::Enum(&["hour", "day", "week", "month", "year"]);
pub const CF: Param = opt("cf", Ty::Enum(&["AVERAGE", "MAX"]));

fn step(timeframe: &str) -> i64 {
    match timeframe {
        "hour" => 60,
        "day" => 1800,
        "week" => 10_800,
        "month" => 43_200,
        "year" => 604_800,
        _ => 6_048_000,
    }
}

/// A wave in [1-amp, 1+amp] for sample time `t` of series `key`.
fn wave(t: i64, key: u32, amp: f64) -> f64 {
    let phase = f64::from(key % 97) * 0.37;
    1.0 + amp * ((t as f64 / 5400.0) + phase).sin()
}

fn series(c: &Ctx, key: u32, sample: impl Fn(i64, f64) -> Map<String, Value>) -> ApiResult {
    let tf = c.param("timeframe").unwrap_or("hour");
    let max = c.param("cf") == Some("MAX");
    let step = step(tf);
    let end = crate::sim::state::now() / step * step;
    let out: Vec<Value> = (0..70)
        .rev()
        .map(|i| {
            let t = end - i * step;
            let w = wave(t, key, if max { 0.25 } else { 0.12 });
            let mut m = sample(t, w);
            m.insert("time".into(), json!(t));
            Value::Object(m)
        })
        .collect();
    Ok(Reply::data(Value::Array(out)))
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub fn node(c: &Ctx) -> ApiResult {
    c.require(&format!("/nodes/{}", c.args.node), &["Sys.Audit"], false)?;
    c.validate()?;
    let st = c.st;
    let Some(n) = st.node(&c.args.node) else {
        return Ok(Reply::data(json!([])));
    };
    let (cpu, mem, root) = (st.node_cpu(n), st.node_mem_used(n), st.rootfs_used(n));
    let (threads, memtotal, swaptotal, roottotal) =
        (n.threads, n.mem_total, n.swap_total, n.rootfs_total);
    series(c, n.nodeid, |_, w| {
        obj(json!({
            "cpu": (cpu * w).min(1.0), "maxcpu": threads, "loadavg": cpu * f64::from(threads) * w,
            "iowait": 0.002 * w, "memtotal": memtotal, "memused": (mem as f64 * w.min(1.05)) as u64,
            "swaptotal": swaptotal, "swapused": 0, "roottotal": roottotal, "rootused": root,
            "netin": 180_000.0 * w, "netout": 95_000.0 * w,
        }))
    })
}

pub fn vm(c: &Ctx) -> ApiResult {
    c.require(&format!("/vms/{}", c.args.vmid), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = crate::sim::api::qemu::read::lookup(c, &c.args.node, &c.args.vmid)?;
    let running = vm.running;
    let (cpu, mem) = (vm.cpu_usage, vm.mem_usage);
    let (maxmem, maxdisk) = (vm.maxmem(), vm.maxdisk());
    let cores = vm.cpus();
    let on = if running { 1.0 } else { 0.0 };
    series(c, vm.vmid, |_, w| {
        obj(json!({
            "cpu": (cpu * w * on).min(1.0), "maxcpu": cores, "mem": (maxmem as f64 * mem * w.min(1.05) * on) as u64,
            "maxmem": maxmem, "disk": 0, "maxdisk": maxdisk, "diskread": 52_000.0 * w * on,
            "diskwrite": 130_000.0 * w * on, "netin": 24_000.0 * w * on, "netout": 11_000.0 * w * on,
        }))
    })
}

pub fn storage(c: &Ctx) -> ApiResult {
    let sid = &c.args.storage;
    c.require(
        &format!("/storage/{sid}"),
        &["Datastore.Audit", "Datastore.AllocateSpace"],
        true,
    )?;
    c.validate()?;
    let Some(s) = c.st.storage(sid) else {
        return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
    };
    let (total, used) = (s.total, c.st.storage_used(sid, Some(&c.args.node)));
    let key = sid.bytes().map(u32::from).sum();
    series(c, key, |_, _| obj(json!({ "total": total, "used": used })))
}

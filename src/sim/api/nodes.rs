//! Node reads: `/nodes`, `/nodes/{node}/status` (real numbers consistent with running guests,
//! item 30), `/nodes/{node}/version` and `/nodes/{node}/network`.

use serde_json::{Value, json};

use crate::sim::api::Ctx;
use crate::sim::http::{ApiResult, Reply};
use crate::sim::state::{GIB, MIB};

pub fn index(c: &Ctx) -> ApiResult {
    c.validate()?;
    let st = c.st;
    // one pass over the guests for every node's load, not one per node
    let usage = st.usage_now();
    let mut out = Vec::new();
    for (i, n) in st.nodes.iter().enumerate() {
        let mut row = json!({ "node": n.name, "id": format!("node/{}", n.name), "type": "node",
            "status": if n.online { "online" } else { "offline" } });
        if n.online && c.can(&format!("/nodes/{}", n.name), &["Sys.Audit"]) {
            let extra = json!({
                "cpu": usage.node_cpu[i], "maxcpu": n.threads, "mem": usage.node_mem[i], "maxmem": n.mem_total,
                "disk": usage.rootfs[i], "maxdisk": n.rootfs_total, "uptime": st.node_uptime(n), "level": "",
                "ssl_fingerprint": fake_fingerprint(&n.name),
            });
            if let (Value::Object(a), Value::Object(b)) = (&mut row, extra) {
                a.extend(b);
            }
        }
        out.push(row);
    }
    Ok(Reply::data(Value::Array(out)))
}

/// Per-node fingerprint as pve-cluster would report it for the node's own pve-ssl.pem; the
/// simulator serves a single certificate, so this is informational only.
fn fake_fingerprint(node: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(format!("pve-ssl-{node}").as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn status(c: &Ctx) -> ApiResult {
    let node = &c.args.node;
    c.require(&format!("/nodes/{node}"), &["Sys.Audit"], false)?;
    c.validate()?;
    let st = c.st;
    let Some(n) = st.node(node) else {
        return Ok(Reply::data(Value::Null));
    };
    let used = st.node_mem_used(n);
    let free = n.mem_total - used;
    let cpu = st.node_cpu(n);
    let load = |f: f64| format!("{:.2}", cpu * n.threads as f64 * f);
    let swap_used = if used > n.mem_total / 10 * 8 {
        n.swap_total / 5
    } else {
        12 * MIB
    };
    let root_used = st.rootfs_used(n);
    let v = &st.version.0;
    Ok(Reply::data(json!({
        "cpu": cpu,
        "wait": 0.0012,
        "idle": 0,
        "uptime": st.node_uptime(n),
        "loadavg": [load(1.05), load(1.0), load(0.93)],
        "kversion": format!("Linux {} #1 SMP PREEMPT_DYNAMIC PMX {} (2025-11-04T12:00Z)", n.kernel, n.kernel),
        "pveversion": format!("pve-manager/{v}/{}", st.version.2.chars().take(16).collect::<String>()),
        "memory": { "total": n.mem_total, "used": used, "free": free, "available": free + (free / 8).min(2 * GIB) },
        "swap": { "total": n.swap_total, "used": swap_used, "free": n.swap_total.saturating_sub(swap_used) },
        "rootfs": { "total": n.rootfs_total, "used": root_used, "free": n.rootfs_total - root_used, "avail": (n.rootfs_total - root_used).saturating_sub(n.rootfs_total / 20) },
        "ksm": { "shared": 0 },
        "cpuinfo": {
            "model": n.cpu_model, "cpus": n.threads, "cores": n.cores / n.sockets.max(1), "sockets": n.sockets,
            "mhz": "2800.000", "hvm": "1", "user_hz": 100, "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx lm constant_tsc rep_good nopl xtopology cpuid pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm avx2 bmi1 bmi2",
        },
        "current-kernel": { "sysname": "Linux", "release": n.kernel, "machine": "x86_64",
            "version": format!("#1 SMP PREEMPT_DYNAMIC PMX {} (2025-11-04T12:00Z)", n.kernel) },
        "boot-info": { "mode": "efi", "secureboot": 0 },
    })))
}

pub fn version(c: &Ctx) -> ApiResult {
    c.validate()?;
    let (v, rel, repo) = &c.st.version;
    Ok(Reply::data(
        json!({ "version": v, "release": rel, "repoid": repo }),
    ))
}

/// `GET /nodes/{node}/network` (permissions `user: all`): every node has one uplink `eno1`
/// enslaved to the VLAN-aware bridge `vmbr0` carrying the node's address, as a default PVE
/// install does.
pub fn network(c: &Ctx) -> ApiResult {
    c.validate()?;
    let Some(n) = c.st.node(&c.args.node) else {
        return Ok(Reply::data(Value::Array(vec![])));
    };
    let eth = json!({ "iface": "eno1", "type": "eth", "method": "manual", "method6": "manual",
        "active": 1, "autostart": 1, "exists": 1, "families": ["inet"], "priority": 3 });
    let bridge = json!({ "iface": "vmbr0", "type": "bridge", "method": "static", "method6": "manual",
        "active": 1, "autostart": 1, "bridge_ports": "eno1", "bridge_stp": "off", "bridge_fd": "0",
        "bridge_vlan_aware": 1, "bridge_vids": "2-4094", "address": n.ip, "netmask": "24",
        "cidr": format!("{}/24", n.ip), "gateway": gateway(&n.ip), "families": ["inet"], "priority": 4 });
    let rows = match c.param("type") {
        None => vec![eth, bridge],
        Some("bridge" | "any_bridge" | "any_local_bridge") => vec![bridge],
        Some("eth") => vec![eth],
        Some(_) => vec![],
    };
    Ok(Reply::data(Value::Array(rows)))
}

fn gateway(ip: &str) -> String {
    match ip.rsplit_once('.') {
        Some((net, _)) => format!("{net}.1"),
        None => String::new(),
    }
}

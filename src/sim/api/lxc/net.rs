//! `GET /nodes/{node}/lxc/{vmid}/interfaces` as pve-container's `PVE::LXC::get_interfaces`
//! answers it: `ip --json a` inside the container's network namespace turned into rows of
//! `name`, `hwaddr`, `inet`, `inet6` (the last address of each family), plus the newer
//! `hardware-address` / `ip-addresses` fields; null while the container does not run.

use serde_json::{Value, json};

use super::ct;
use crate::sim::api::Ctx;
use crate::sim::http::{ApiResult, Reply};

pub fn interfaces(c: &Ctx) -> ApiResult {
    c.require(&format!("/vms/{}", c.args.vmid), &["VM.Audit"], false)?;
    c.validate()?;
    let vm = ct(c.st, &c.args.node, &c.args.vmid)?;
    if !vm.running {
        // find_lxc_pid fails; get_interfaces returns undef
        return Ok(Reply::data(Value::Null));
    }
    let mut rows = vec![row(
        "lo",
        "00:00:00:00:00:00",
        Some(("127.0.0.1", 8)),
        "::1/128",
    )];
    let mut nets: Vec<(&String, &String)> = vm
        .config
        .iter()
        .filter(|(k, _)| k.starts_with("net") && k[3..].parse::<u32>().is_ok())
        .collect();
    nets.sort_by_key(|(k, _)| k[3..].parse::<u32>().unwrap_or(0));
    for (_, net) in nets {
        let opt = |key: &str| {
            net.split(',')
                .find_map(|p| p.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        let name = opt("name").unwrap_or_else(|| "eth0".into());
        let mac = opt("hwaddr")
            .unwrap_or_else(|| "bc:24:11:00:00:00".into())
            .to_lowercase();
        // a static address as configured, a DHCP lease derived from the vmid, none for manual
        let v4 = match opt("ip").as_deref() {
            None | Some("manual") => None,
            Some(_) => Some(crate::sim::api::qemu::power::guest_ipv4(vm.vmid, Some(net))),
        };
        let ll = link_local(&mac);
        rows.push(row(
            &name,
            &mac,
            v4.as_ref().map(|(a, p)| (a.as_str(), *p)),
            &format!("{ll}/64"),
        ));
    }
    Ok(Reply::data(Value::Array(rows)))
}

fn row(name: &str, mac: &str, v4: Option<(&str, u32)>, v6: &str) -> Value {
    let (v6a, v6p) = v6.split_once('/').unwrap_or((v6, "64"));
    let mut addrs = Vec::new();
    if let Some((a, p)) = v4 {
        addrs.push(json!({"ip-address": a, "ip-address-type": "inet", "prefix": p}));
    }
    addrs.push(json!({"ip-address": v6a, "ip-address-type": "inet6", "prefix": v6p.parse::<u32>().unwrap_or(64)}));
    let mut m = json!({
        "name": name,
        "hwaddr": mac,
        "hardware-address": mac,
        "inet6": v6,
        "ip-addresses": addrs,
    });
    if let Some((a, p)) = v4 {
        m["inet"] = json!(format!("{a}/{p}"));
    }
    m
}

/// EUI-64 link-local address from a MAC.
fn link_local(mac: &str) -> String {
    let b: Vec<u8> = mac
        .split(':')
        .filter_map(|x| u8::from_str_radix(x, 16).ok())
        .collect();
    if b.len() != 6 {
        return "fe80::1".into();
    }
    format!(
        "fe80::{:x}:{:x}:{:x}:{:x}",
        u16::from(b[0] ^ 2) << 8 | u16::from(b[1]),
        u16::from(b[2]) << 8 | 0xff,
        0xfe00 | u16::from(b[3]),
        u16::from(b[4]) << 8 | u16::from(b[5])
    )
}

//! `ip neigh [show]` (iproute2): the node's neighbour table. A node learns a guest's address
//! once the guest has booted and talked on the bridge (DHCP, the first packets): every running,
//! unpaused guest on this node whose boot delay has passed appears with net0's MAC and its IPv4
//! (the static `ipconfig0` address, else its DHCP lease), plus the other nodes of the cluster on
//! `vmbr0`. Anything else `ip` is asked exits non-zero the way iproute2 does.

use super::exec::{Io, NodeCtx};

/// Seconds from a guest's start until it has an address (the guest agent's delay as well).
const BOOT_SECS: f64 = 15.0;

pub fn run(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["neigh"]
        | ["neigh", "show"]
        | ["neighbor"]
        | ["neighbor", "show"]
        | ["neighbour"]
        | ["neighbour", "show"] => neigh(ctx, io),
        [] => io.die("Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }"),
        [obj, ..] if matches!(*obj, "neigh" | "neighbor" | "neighbour") => io.die(&format!(
            "Command \"{}\" is unknown, try \"ip neigh help\".",
            words.get(1).copied().unwrap_or_default()
        )),
        [obj, ..] => io.die(&format!("Object \"{obj}\" is unknown, try \"ip help\".")),
    }
}

fn neigh(ctx: &NodeCtx, io: &mut Io) -> u32 {
    let boot = ctx.shared.scaled(BOOT_SECS);
    let st = ctx.lock();
    let mut out = String::new();
    for (i, n) in st.nodes.iter().enumerate() {
        if n.name != ctx.node && n.online {
            out.push_str(&format!(
                "{} dev vmbr0 lladdr 52:54:00:10:00:{:02x} REACHABLE\n",
                n.ip,
                i + 1
            ));
        }
    }
    for vm in st.vms.values() {
        let up = vm.started_instant.is_none_or(|t| t.elapsed() >= boot);
        if vm.node != ctx.node || !vm.running || vm.paused || !up {
            continue;
        }
        let Some(net0) = vm.get("net0") else { continue };
        let Some(mac) = net0
            .split(',')
            .next()
            .and_then(|m| m.split_once('='))
            .map(|(_, mac)| mac.to_lowercase())
        else {
            continue;
        };
        let bridge = net0
            .split(',')
            .find_map(|p| p.strip_prefix("bridge="))
            .unwrap_or("vmbr0");
        let (ip, _) = crate::sim::api::qemu::power::guest_ipv4(vm.vmid, vm.get("ipconfig0"));
        out.push_str(&format!("{ip} dev {bridge} lladdr {mac} REACHABLE\n"));
    }
    io.out(&out);
    0
}

//! `pct` on a node: `list` and `config <vmid>` (the API's own handlers, run in-process as
//! `root@pam`, printed as pct prints them); other subcommands exit like an unknown command.

use super::cmd_qm::{api_error, parse, print_config, vmid};
use super::exec::{Io, NodeCtx};
use crate::sim::api::run_as_root;

pub fn run(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["list", ..] => list(ctx, io),
        ["config", ..] => config(ctx, &args[1..], io),
        [cmd, ..] => io.die(&format!(
            "ERROR: unknown command 'pct {cmd}'\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]"
        )),
        [] => io.die("ERROR: no command specified\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]"),
    }
}

/// `pct list`: `%-10s %-10s %-12s %-20s` rows of the node's containers.
fn list(ctx: &NodeCtx, io: &mut Io) -> u32 {
    let st = ctx.lock();
    let row = |a: &str, b: &str, c: &str, d: &str| format!("{a:<10} {b:<10} {c:<12} {d:<20}\n");
    let mut s = row("VMID", "Status", "Lock", "Name");
    for vm in st.vms_on(&ctx.node).filter(|v| v.is_ct()) {
        let status = if vm.running { "running" } else { "stopped" };
        s.push_str(&row(
            &vm.vmid.to_string(),
            status,
            vm.get("lock").unwrap_or(""),
            &vm.name(),
        ));
    }
    io.out(&s);
    0
}

/// `pct config <vmid>`: `key: value` lines (pending values applied, no digest).
fn config(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "pct config <vmid> [OPTIONS]";
    let Ok((pos, opts)) = parse(io, args, 1, usage) else {
        return 255;
    };
    let Ok(id) = vmid(io, &pos[0], usage) else {
        return 255;
    };
    let path = format!("/nodes/{}/lxc/{id}/config", ctx.node);
    let result = {
        let mut st = ctx.lock();
        run_as_root(
            &ctx.shared,
            &mut st,
            "GET",
            &path,
            opts.into_iter().collect(),
        )
    };
    let data = match result {
        Ok(r) => r.data,
        Err(e) => return api_error(io, e, usage),
    };
    print_config(io, &data)
}

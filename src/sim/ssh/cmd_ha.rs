//! `ha-manager` on a node (pve-ha-manager `src/PVE/CLI/ha_manager.pm`): `status [--verbose]`
//! (`<type> <status>` lines of `/cluster/ha/status/current`), `config` (the resources),
//! `migrate`/`crm-command migrate <sid> <node>` and `crm-command node-maintenance
//! enable|disable <node>`, which queue CRM commands the simulated CRM acts on in its next round
//! (see `crate::sim::ha`). Other subcommands fail as PVE's CLI handler does (exit 255).

use serde_json::Value;

use super::cmd_qm::{api_error, parse};
use super::exec::{Io, NodeCtx};
use crate::sim::api::ha;
use crate::sim::http::ApiError;
use crate::sim::params;

const USAGE: &str = "USAGE: ha-manager <COMMAND> [ARGS] [OPTIONS]";

pub fn run(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["status", ..] => status(ctx, &args[1..], io),
        ["config", ..] => config(ctx, &args[1..], io),
        ["migrate", ..] => migrate(ctx, &args[1..], io, "ha-manager migrate <sid> <node>"),
        ["crm-command", "migrate", ..] => migrate(
            ctx,
            &args[2..],
            io,
            "ha-manager crm-command migrate <sid> <node>",
        ),
        [
            "crm-command",
            "node-maintenance",
            action @ ("enable" | "disable"),
            ..,
        ] => maintenance(ctx, &args[3..], io, action == &"enable"),
        ["crm-command", "node-maintenance", sub, ..] => io.die(&format!(
            "ERROR: unknown command 'ha-manager crm-command node-maintenance {sub}'\n{USAGE}"
        )),
        ["crm-command", sub, ..] => io.die(&format!(
            "ERROR: unknown command 'ha-manager crm-command {sub}'\n{USAGE}"
        )),
        [cmd, ..] => io.die(&format!(
            "ERROR: unknown command 'ha-manager {cmd}'\n{USAGE}"
        )),
        [] => io.die(&format!("ERROR: no command specified\n{USAGE}")),
    }
}

fn status(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "ha-manager status [OPTIONS]";
    let Ok((_, opts)) = parse(io, args, 0, usage) else {
        return 255;
    };
    let verbose = opts
        .iter()
        .any(|(k, v)| k == "verbose" && params::parse_bool(v) == Some(true));
    let st = ctx.lock();
    for e in ha::status_entries(&st) {
        let ty = e["type"].as_str().unwrap_or("");
        let status = e["status"].as_str().unwrap_or("");
        io.out(&format!("{ty} {status}\n"));
    }
    if verbose {
        drop(st);
        let mut st = ctx.lock();
        let data = crate::sim::api::run_as_root(
            &ctx.shared,
            &mut st,
            "GET",
            "/cluster/ha/status/manager_status",
            Default::default(),
        )
        .map(|r| r.data)
        .unwrap_or(Value::Null);
        io.out("full cluster state:\n");
        io.out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&data).unwrap_or_default()
        ));
    }
    0
}

fn config(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "ha-manager config [OPTIONS]";
    let Ok((_, opts)) = parse(io, args, 0, usage) else {
        return 255;
    };
    let mut st = ctx.lock();
    let data = match crate::sim::api::run_as_root(
        &ctx.shared,
        &mut st,
        "GET",
        "/cluster/ha/resources",
        opts.into_iter().collect(),
    ) {
        Ok(r) => r.data,
        Err(e) => return api_error(io, e, usage),
    };
    let mut rows: Vec<&Value> = data
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    rows.sort_by_key(|r| r["sid"].as_str().unwrap_or("").to_string());
    for r in rows {
        io.out(&format!("{}\n", r["sid"].as_str().unwrap_or("")));
        if let Value::Object(m) = r {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                let v = &m[k];
                if matches!(k.as_str(), "digest" | "sid" | "type" | "errors") {
                    continue;
                }
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                io.out(&format!("\t{k} {v}\n"));
            }
        }
        io.out("\n");
    }
    0
}

fn migrate(ctx: &NodeCtx, args: &[String], io: &mut Io, usage: &str) -> u32 {
    let Ok((pos, _)) = parse(io, args, 2, usage) else {
        return 255;
    };
    if !params::matches_node(&pos[1]) {
        return api_error(
            io,
            ApiError::param(
                "node",
                "invalid format - value does not look like a valid node name",
            ),
            usage,
        );
    }
    let mut st = ctx.lock();
    match ha::request_migrate(&mut st, &pos[0], &pos[1]) {
        Ok(_) => 0,
        Err(e) => api_error(io, e, usage),
    }
}

fn maintenance(ctx: &NodeCtx, args: &[String], io: &mut Io, enable: bool) -> u32 {
    let action = if enable { "enable" } else { "disable" };
    let usage = format!("ha-manager crm-command node-maintenance {action} <node>");
    let Ok((pos, _)) = parse(io, args, 1, &usage) else {
        return 255;
    };
    let node = &pos[0];
    if !params::matches_node(node) {
        return api_error(
            io,
            ApiError::param(
                "node",
                "invalid format - value does not look like a valid node name",
            ),
            &usage,
        );
    }
    let mut st = ctx.lock();
    if st.node(node).is_none() {
        return io.die(&format!("no such cluster node '{node}'"));
    }
    let cmd = if enable {
        "enable-node-maintenance"
    } else {
        "disable-node-maintenance"
    };
    st.ha.queue(format!("{cmd} {node}"));
    0
}

//! `pveam` on a node (pve-manager `PVE/CLI/pveam.pm`): `available [--section S]` prints the
//! appliance index as `%-20s %s` (section, template) lines; `download <storage> <template>`
//! runs `apl_download` as `root@pam` and, like every CLI worker, waits for it in the
//! foreground, printing its log. Other subcommands exit like an unknown command.

use std::collections::BTreeMap;

use super::cmd_qm::{api_error, parse, wait_task};
use super::exec::{Io, NodeCtx};
use crate::sim::api::run_as_root;

const USAGE: &str = "USAGE: pveam <COMMAND> [ARGS] [OPTIONS]";

pub async fn run(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["available", ..] => available(ctx, &args[1..], io),
        ["download", ..] => download(ctx, &args[1..], io).await,
        [cmd, ..] => io.die(&format!("ERROR: unknown command 'pveam {cmd}'\n{USAGE}")),
        [] => io.die(&format!("ERROR: no command specified\n{USAGE}")),
    }
}

fn call(
    ctx: &NodeCtx,
    method: &str,
    path: &str,
    params: BTreeMap<String, String>,
) -> crate::sim::http::ApiResult {
    let mut st = ctx.lock();
    run_as_root(&ctx.shared, &mut st, method, path, params)
}

/// `pveam available [--section <mail|system|turnkeylinux>]`.
fn available(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "pveam available  [OPTIONS]";
    let Ok((_, opts)) = parse(io, args, 0, usage) else {
        return 255;
    };
    let section = opts
        .iter()
        .find(|(k, _)| k == "section")
        .map(|(_, v)| v.clone());
    let path = format!("/nodes/{}/aplinfo", ctx.node);
    let data = match call(ctx, "GET", &path, BTreeMap::new()) {
        Ok(r) => r.data,
        Err(e) => return api_error(io, e, usage),
    };
    let mut out = String::new();
    for row in data.as_array().into_iter().flatten() {
        let sec = row["section"].as_str().unwrap_or("");
        if section.as_deref().is_some_and(|s| s != sec) {
            continue;
        }
        out.push_str(&format!(
            "{sec:<20} {}\n",
            row["template"].as_str().unwrap_or("")
        ));
    }
    io.out(&out);
    0
}

/// `pveam download <storage> <template>`.
async fn download(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "pveam download <storage> <template>";
    let Ok((pos, _)) = parse(io, args, 2, usage) else {
        return 255;
    };
    let path = format!("/nodes/{}/aplinfo", ctx.node);
    let params = BTreeMap::from([
        ("storage".to_string(), pos[0].clone()),
        ("template".to_string(), pos[1].clone()),
    ]);
    let upid = match call(ctx, "POST", &path, params) {
        Ok(r) => r.data.as_str().unwrap_or("").to_string(),
        Err(e) => return api_error(io, e, usage),
    };
    let (log, exit) = wait_task(ctx, &upid).await;
    for line in log {
        io.out(&format!("{line}\n"));
    }
    match exit.as_str() {
        "OK" => 0,
        e if e.starts_with("WARNINGS") => 0,
        e => io.die(e),
    }
}

//! `qm` on a node: `set`, `template`, `config`, `list` (and the snapshot commands of
//! [`super::cmd_qm_snapshot`]) run the API's own handlers in-process
//! as `root@pam` (same validation and logic as the HTTPS API, no ACL since root holds every
//! privilege), `disk import` / `importdisk` live in [`super::cmd_import`]. Errors are printed
//! as PVE's CLI handler prints them — `400 Parameter verification failed.` with one `key:
//! message` line per parameter and the usage line, or the plain message — with exit 255.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::super::http::{ApiError, ApiResult};
use super::exec::{Io, NodeCtx, Opts, pve_opts};
use crate::sim::api::run_as_root;

/// Boolean options whose value may be left out on the command line.
pub const BOOLS: &[&str] = &[
    "skiplock",
    "onboot",
    "protection",
    "template",
    "tablet",
    "acpi",
    "kvm",
    "numa",
    "autostart",
    "reboot",
    "localtime",
    "freeze",
    "current",
    "full",
];

pub async fn run(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["disk", "import", ..] => {
            super::cmd_import::run(ctx, &args[2..], io, "qm disk import").await
        }
        ["importdisk", ..] => super::cmd_import::run(ctx, &args[1..], io, "qm importdisk").await,
        ["set", ..] => set(ctx, &args[1..], io),
        ["template", ..] => template(ctx, &args[1..], io).await,
        ["config", ..] => config(ctx, &args[1..], io),
        ["list", ..] => list(ctx, io),
        [cmd @ ("snapshot" | "rollback" | "delsnapshot"), ..] => {
            super::cmd_qm_snapshot::task(ctx, cmd, &args[1..], io).await
        }
        ["listsnapshot", ..] => super::cmd_qm_snapshot::list(ctx, &args[1..], io),
        [cmd, ..] => io.die(&format!(
            "ERROR: unknown command 'qm {cmd}'\nUSAGE: qm <COMMAND> [ARGS] [OPTIONS]"
        )),
        [] => io.die("ERROR: no command specified\nUSAGE: qm <COMMAND> [ARGS] [OPTIONS]"),
    }
}

/// Prints an API error as the CLI does; returns 255.
pub fn api_error(io: &mut Io, e: ApiError, usage: &str) -> u32 {
    match e {
        ApiError::Param(errors) => {
            let mut s = String::from("400 Parameter verification failed.\n");
            for (k, m) in errors {
                s.push_str(&format!("{k}: {}\n", m.trim_end()));
            }
            s.push_str(usage);
            io.die(&s)
        }
        ApiError::Server(m) | ApiError::Forbidden(m) | ApiError::NotImplemented(m) => io.die(&m),
        ApiError::NoRoute => io.die("no route to host"),
    }
}

/// Positional arguments and options; `Err(status)` after printing a usage error.
pub fn parse(
    io: &mut Io,
    args: &[String],
    npos: usize,
    usage: &str,
) -> Result<(Vec<String>, Opts), u32> {
    let (pos, opts) = pve_opts(args, BOOLS).map_err(|e| io.die(&format!("400 {e}\n{usage}")))?;
    if pos.len() < npos {
        return Err(io.die(&format!("400 not enough arguments\n{usage}")));
    }
    if pos.len() > npos {
        return Err(io.die(&format!("400 too many arguments\n{usage}")));
    }
    Ok((pos, opts))
}

/// A `pve-vmid` argument.
pub fn vmid(io: &mut Io, v: &str, usage: &str) -> Result<u32, u32> {
    match v.parse::<u32>() {
        Ok(n) if (100..=999_999_999).contains(&n) => Ok(n),
        _ => Err(api_error(
            io,
            ApiError::param("vmid", "value does not look like a valid VM ID"),
            usage,
        )),
    }
}

fn as_root(ctx: &NodeCtx, method: &str, path: &str, params: BTreeMap<String, String>) -> ApiResult {
    let mut st = ctx.lock();
    run_as_root(&ctx.shared, &mut st, method, path, params)
}

/// `qm set <vmid> --key value ... [--delete keys]`: the config PUT.
fn set(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "qm set <vmid> [OPTIONS]";
    let Ok((pos, opts)) = parse(io, args, 1, usage) else {
        return 255;
    };
    let Ok(id) = vmid(io, &pos[0], usage) else {
        return 255;
    };
    let params: BTreeMap<String, String> = opts.into_iter().collect();
    let path = format!("/nodes/{}/qemu/{id}/config", ctx.node);
    if let Err(e) = as_root(ctx, "PUT", &path, params.clone()) {
        return api_error(io, e, usage);
    }
    let desc: Vec<String> = params
        .iter()
        .map(|(k, v)| {
            let v = if k == "cipassword" {
                "<hidden>"
            } else {
                v.as_str()
            };
            format!("-{k} {v}")
        })
        .collect();
    io.out(&format!("update VM {id}: {}\n", desc.join(" ")));
    0
}

/// `qm template <vmid> [--disk key]`: the template POST, waiting for its worker as the CLI
/// (which runs the worker in the foreground) does.
async fn template(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "qm template <vmid> [OPTIONS]";
    let Ok((pos, opts)) = parse(io, args, 1, usage) else {
        return 255;
    };
    let Ok(id) = vmid(io, &pos[0], usage) else {
        return 255;
    };
    let path = format!("/nodes/{}/qemu/{id}/template", ctx.node);
    let upid = match as_root(ctx, "POST", &path, opts.into_iter().collect()) {
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

/// Polls a task of this simulator until it stopped: (log, exitstatus).
pub async fn wait_task(ctx: &NodeCtx, upid: &str) -> (Vec<String>, String) {
    loop {
        {
            let st = ctx.lock();
            match st.tasks.find(upid) {
                None => return (Vec::new(), "task vanished".into()),
                Some(t) if !t.running() => {
                    return (
                        t.log.iter().map(str::to_string).collect(),
                        t.exitstatus.clone().unwrap_or_default(),
                    );
                }
                Some(_) => {}
            }
        }
        tokio::time::sleep(ctx.shared.scaled(0.5).max(Duration::from_millis(2))).await;
    }
}

/// `qm config <vmid> [--current]`: `key: value` lines, sorted, without the digest.
fn config(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "qm config <vmid> [OPTIONS]";
    let Ok((pos, opts)) = parse(io, args, 1, usage) else {
        return 255;
    };
    let Ok(id) = vmid(io, &pos[0], usage) else {
        return 255;
    };
    let path = format!("/nodes/{}/qemu/{id}/config", ctx.node);
    let data = match as_root(ctx, "GET", &path, opts.into_iter().collect()) {
        Ok(r) => r.data,
        Err(e) => return api_error(io, e, usage),
    };
    print_config(io, &data)
}

/// A config as `qm config` and `pct config` print it: `key: value` lines sorted by key,
/// without the digest, a description's newlines as `%0A`.
pub fn print_config(io: &mut Io, data: &Value) -> u32 {
    let Value::Object(map) = data else {
        return 0;
    };
    let mut keys: Vec<&String> = map.keys().filter(|k| *k != "digest").collect();
    keys.sort();
    for k in keys {
        let v = match &map[k] {
            Value::String(s) if k == "description" => s.replace('\n', "%0A"),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        io.out(&format!("{k}: {v}\n"));
    }
    0
}

/// `qm list`: the guests of this node, as qm prints them.
fn list(ctx: &NodeCtx, io: &mut Io) -> u32 {
    let st = ctx.lock();
    let mut s = format!(
        "{:>10} {:<20} {:<10} {:<10} {:>12} {:<10}\n",
        "VMID", "NAME", "STATUS", "MEM(MB)", "BOOTDISK(GB)", "PID"
    );
    for vm in st.vms_on(&ctx.node).filter(|v| !v.is_ct()) {
        let status = match (vm.running, vm.paused) {
            (true, true) => "paused",
            (true, false) => "running",
            _ => "stopped",
        };
        let pid = if vm.running { vm.pid } else { 0 };
        s.push_str(&format!(
            "{:>10} {:<20} {:<10} {:<10} {:>12.2} {:<10}\n",
            vm.vmid,
            vm.name(),
            status,
            vm.maxmem() >> 20,
            vm.maxdisk() as f64 / (1u64 << 30) as f64,
            pid
        ));
    }
    io.out(&s);
    0
}

//! `qm snapshot|rollback|delsnapshot|listsnapshot` on a node (qemu-server `CLI/qm.pm`): the
//! snapshot endpoints run in-process as `root@pam`; the first three wait for their worker as
//! the CLI does (printing its log, exit 255 when it fails), `listsnapshot` prints the tree as
//! pve-guest-common `GuestHelpers::print_snapshot_tree` does.

use std::collections::BTreeMap;

use serde_json::Value;

use super::cmd_qm::{api_error, vmid, wait_task};
use super::exec::{Io, NodeCtx, pve_opts};
use crate::sim::api::run_as_root;
use crate::sim::http::ApiResult;

/// Options that may come without a value.
const BOOLS: &[&str] = &["vmstate", "start", "force"];

fn as_root(ctx: &NodeCtx, method: &str, path: &str, params: BTreeMap<String, String>) -> ApiResult {
    let mut st = ctx.lock();
    run_as_root(&ctx.shared, &mut st, method, path, params)
}

/// `(vmid, snapname if wanted, options)`, or the exit status after a usage error.
fn parse(
    io: &mut Io,
    args: &[String],
    with_name: bool,
    usage: &str,
) -> Result<(u32, String, BTreeMap<String, String>), u32> {
    let (pos, opts) = pve_opts(args, BOOLS).map_err(|e| io.die(&format!("400 {e}\n{usage}")))?;
    let npos = if with_name { 2 } else { 1 };
    if pos.len() != npos {
        let what = if pos.len() < npos {
            "not enough"
        } else {
            "too many"
        };
        return Err(io.die(&format!("400 {what} arguments\n{usage}")));
    }
    let id = vmid(io, &pos[0], usage)?;
    let name = pos.get(1).cloned().unwrap_or_default();
    Ok((id, name, opts.into_iter().collect()))
}

/// A snapshot command that forks a worker: runs it and waits, as the CLI does.
pub async fn task(ctx: &NodeCtx, cmd: &str, args: &[String], io: &mut Io) -> u32 {
    let usage = match cmd {
        "snapshot" => "qm snapshot <vmid> <snapname> [OPTIONS]",
        "rollback" => "qm rollback <vmid> <snapname> [OPTIONS]",
        _ => "qm delsnapshot <vmid> <snapname> [OPTIONS]",
    };
    let Ok((id, name, mut params)) = parse(io, args, true, usage) else {
        return 255;
    };
    let base = format!("/nodes/{}/qemu/{id}/snapshot", ctx.node);
    let (method, path) = match cmd {
        "snapshot" => {
            params.insert("snapname".into(), name);
            ("POST", base)
        }
        "rollback" => ("POST", format!("{base}/{name}/rollback")),
        _ => ("DELETE", format!("{base}/{name}")),
    };
    let upid = match as_root(ctx, method, &path, params) {
        Ok(r) => r.data.as_str().unwrap_or("").to_string(),
        Err(e) => return api_error(io, e, usage),
    };
    let (log, exit) = wait_task(ctx, &upid).await;
    for line in log {
        io.out(&format!("{line}\n"));
    }
    if exit == "OK" || exit.starts_with("WARNINGS") {
        0
    } else {
        255
    }
}

/// `qm listsnapshot <vmid>`: the snapshot tree, oldest first, `current` last.
pub fn list(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "qm listsnapshot <vmid>";
    let Ok((id, _, params)) = parse(io, args, false, usage) else {
        return 255;
    };
    let path = format!("/nodes/{}/qemu/{id}/snapshot", ctx.node);
    let items = match as_root(ctx, "GET", &path, params) {
        Ok(r) => r.data.as_array().cloned().unwrap_or_default(),
        Err(e) => return api_error(io, e, usage),
    };
    io.out(&tree(&items));
    0
}

/// `print_snapshot_tree`: roots and children sorted by `snaptime` (entries without one last),
/// each line `<prefix> <name padded to 30 - prefix> <time> <first description line>`.
fn tree(items: &[Value]) -> String {
    let name = |v: &Value| v["name"].as_str().unwrap_or("").to_string();
    let known: Vec<String> = items.iter().map(name).collect();
    let mut children: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    let mut roots = Vec::new();
    for v in items {
        match v["parent"]
            .as_str()
            .filter(|p| known.iter().any(|k| k == p))
        {
            Some(p) => children.entry(p.to_string()).or_default().push(v),
            None => roots.push(v),
        }
    }
    let key = |v: &&Value| v["snaptime"].as_i64().unwrap_or(i64::MAX);
    roots.sort_by_key(key);
    for c in children.values_mut() {
        c.sort_by_key(key);
    }
    let mut out = String::new();
    let mut stack: Vec<(String, &Value)> = roots
        .iter()
        .rev()
        .map(|r| ("`->".to_string(), *r))
        .collect();
    while let Some((prefix, v)) = stack.pop() {
        let description = v["description"]
            .as_str()
            .filter(|d| !d.is_empty())
            .unwrap_or("no-description");
        // `m/(.*)$/m`: the first line
        let description = description.lines().next().unwrap_or("");
        let time = v["snaptime"]
            .as_i64()
            .map(crate::sim::api::qemu::migrate::stamp)
            .unwrap_or_default();
        let width = 30usize.saturating_sub(prefix.len());
        out.push_str(&format!(
            "{prefix} {:<width$} {time:<23} {description}\n",
            name(v)
        ));
        if let Some(kids) = children.get(&name(v)) {
            let deeper = format!(" {prefix}");
            for k in kids.iter().rev() {
                stack.push((deeper.clone(), k));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_tree_prints_like_qm() {
        let items = vec![
            json!({"name": "b", "parent": "a", "snaptime": 200, "description": "two\nlines"}),
            json!({"name": "a", "snaptime": 100, "description": ""}),
            json!({"name": "current", "parent": "b", "description": "You are here!"}),
        ];
        let t = super::tree(&items);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("`-> a ") && lines[0].ends_with(" no-description"));
        assert!(lines[0].contains("1970-01-01 00:01:40"));
        assert!(lines[1].starts_with(" `-> b ") && lines[1].ends_with(" two"));
        assert!(lines[2].starts_with("  `-> current ") && lines[2].ends_with("You are here!"));
        // names are padded to 30 columns minus the prefix
        assert_eq!(lines[0].find("1970"), Some(4 + 27 + 1));
    }
}

//! `pvesm path|list|alloc|free` (pve-storage's `PVE::CLI::pvesm`). `list` runs the API's
//! storage content handler as root and prints pvesm's table; `alloc` adds a loose image
//! volume (sizes in KiB unless suffixed `M`/`G`, as the API takes them), `free` removes file
//! volumes and loose images. Not modelled: freeing a disk a guest config carries.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::state::{GIB, MIB, State, Volume};
use super::super::volumes::{is_file_storage, new_disk_name};
use super::cmd_qm::{api_error, parse};
use super::exec::{Io, NodeCtx};
use crate::sim::api::run_as_root;
use crate::sim::api::storage::volume::path_of;

pub fn run(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("path") => path(ctx, rest, io),
        Some("list") => list(ctx, rest, io),
        Some("alloc") => alloc(ctx, rest, io),
        Some("free") => free(ctx, rest, io),
        Some(cmd) => io.die(&format!(
            "ERROR: unknown command 'pvesm {cmd}'\nUSAGE: pvesm <COMMAND> [ARGS] [OPTIONS]"
        )),
        None => io.die("ERROR: no command specified\nUSAGE: pvesm <COMMAND> [ARGS] [OPTIONS]"),
    }
}

/// `storage:volname` of an existing storage.
fn volume<'a>(st: &State, volid: &'a str) -> Result<(&'a str, &'a str), String> {
    let (sid, volname) = volid
        .split_once(':')
        .filter(|(s, v)| !s.is_empty() && !v.is_empty())
        .ok_or_else(|| format!("unable to parse volume ID '{volid}'"))?;
    st.storage(sid)
        .ok_or_else(|| format!("storage '{sid}' does not exist"))?;
    Ok((sid, volname))
}

fn path(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let Ok((pos, _)) = parse(io, args, 1, "pvesm path <volume>") else {
        return 255;
    };
    let st = ctx.lock();
    match volume(&st, &pos[0]) {
        Ok((sid, volname)) => {
            io.out(&format!("{}\n", path_of(&st, sid, volname)));
            0
        }
        Err(m) => io.die(&m),
    }
}

fn list(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "pvesm list <storage> [OPTIONS]";
    let Ok((pos, opts)) = parse(io, args, 1, usage) else {
        return 255;
    };
    let path = format!("/nodes/{}/storage/{}/content", ctx.node, pos[0]);
    let data = {
        let mut st = ctx.lock();
        match run_as_root(
            &ctx.shared,
            &mut st,
            "GET",
            &path,
            opts.into_iter().collect(),
        ) {
            Ok(r) => r.data,
            Err(e) => return api_error(io, e, usage),
        }
    };
    let items = data.as_array().cloned().unwrap_or_default();
    let str_of = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    let w = items
        .iter()
        .map(|i| str_of(i, "volid").len())
        .max()
        .unwrap_or(0);
    let mut s = format!(
        "{:<w$} {:<7} {:<9} {:>10} {}\n",
        "Volid", "Format", "Type", "Size", "VMID"
    );
    for i in &items {
        let vmid = i["vmid"]
            .as_u64()
            .map(|v| v.to_string())
            .unwrap_or_default();
        s.push_str(&format!(
            "{:<w$} {:<7} {:<9} {:>10} {vmid}\n",
            str_of(i, "volid"),
            str_of(i, "format"),
            str_of(i, "content"),
            i["size"].as_u64().unwrap_or(0)
        ));
    }
    io.out(&s);
    0
}

/// An allocation size: KiB, or `M`/`G` suffixed.
fn alloc_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'M' => (&s[..s.len() - 1], MIB),
        b'G' => (&s[..s.len() - 1], GIB),
        _ => (s, 1024),
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(mult)
}

fn alloc(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let usage = "pvesm alloc <storage> <vmid> <filename> <size> [OPTIONS]";
    let Ok((pos, opts)) = parse(io, args, 4, usage) else {
        return 255;
    };
    let Ok(vmid) = super::cmd_qm::vmid(io, &pos[1], usage) else {
        return 255;
    };
    let Some(size) = alloc_size(&pos[3]) else {
        let e =
            super::super::http::ApiError::param("size", "value does not match the regex pattern");
        return api_error(io, e, usage);
    };
    let format = opts
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.clone());
    let mut st = ctx.lock();
    match allocate(&mut st, &ctx.node, &pos[0], vmid, &pos[2], size, format) {
        Ok(volid) => {
            io.out(&format!("successfully created '{volid}'\n"));
            0
        }
        Err(m) => io.die(&m),
    }
}

fn allocate(
    st: &mut State,
    node: &str,
    sid: &str,
    vmid: u32,
    name: &str,
    size: u64,
    format: Option<String>,
) -> Result<String, String> {
    let storage = st
        .storage(sid)
        .ok_or_else(|| format!("storage '{sid}' does not exist"))?;
    let (file, shared, stype) = (
        is_file_storage(&storage.stype),
        storage.shared,
        storage.stype.clone(),
    );
    let base = storage.props.get("path").cloned().unwrap_or_default();
    let vg = storage.props.get("vgname").cloned().unwrap_or_default();
    let ext_fmt = name.rsplit_once('.').map(|(_, e)| e.to_string());
    let fmt = format
        .or(ext_fmt.filter(|_| file))
        .unwrap_or_else(|| if file { "qcow2" } else { "raw" }.into());
    if !file && fmt != "raw" {
        return Err(format!("unsupported format '{fmt}'"));
    }
    let volname = if name.is_empty() {
        let n = new_disk_name(st, sid, vmid, &mut Vec::new());
        if file {
            n.replace(".qcow2", &format!(".{fmt}"))
        } else {
            n
        }
    } else {
        if !name.starts_with(&format!("vm-{vmid}-")) {
            return Err(format!("illegal name '{name}' - should be 'vm-{vmid}-*'"));
        }
        if file && !name.ends_with(&format!(".{fmt}")) {
            return Err(format!(
                "illegal name '{name}' - wrong extension for format ('{fmt}')"
            ));
        }
        if file {
            format!("{vmid}/{name}")
        } else {
            name.to_string()
        }
    };
    let volid = format!("{sid}:{volname}");
    let here = |v: &Volume| shared || v.node.as_deref() == Some(node);
    let in_config = st
        .vms
        .values()
        .filter(|v| shared || v.node == node)
        .any(|v| {
            v.config
                .values()
                .any(|c| c.split(',').next() == Some(volid.as_str()))
        });
    if in_config || st.images.iter().any(|i| i.volid == volid && here(i)) {
        return Err(if file {
            format!("disk image '{base}/images/{volname}' already exists")
        } else if stype.starts_with("lvm") {
            format!(
                "lvcreate '{vg}/{volname}' error:   Logical Volume \"{volname}\" already exists in volume group \"{vg}\""
            )
        } else {
            format!("volume '{volid}' already exists")
        });
    }
    let image = st
        .storage(sid)
        .map(|storage| Volume::new_image(&volid, storage, node, fmt, size, vmid));
    st.images.extend(image);
    Ok(volid)
}

fn free(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let Ok((pos, _)) = parse(io, args, 1, "pvesm free <volume> [OPTIONS]") else {
        return 255;
    };
    let volid = pos[0].clone();
    let mut st = ctx.lock();
    let shared = match volume(&st, &volid) {
        Ok((sid, _)) => st.storage(sid).is_some_and(|s| s.shared),
        Err(m) => return io.die(&m),
    };
    let node = ctx.node.clone();
    let here =
        |v: &Volume| v.volid == volid && (shared || v.node.as_deref() == Some(node.as_str()));
    let user: BTreeMap<u32, ()> = st
        .vms
        .values()
        .filter(|v| shared || v.node == node)
        .filter(|v| {
            v.disks()
                .iter()
                .any(|d| format!("{}:{}", d.storage, d.volname) == volid)
        })
        .map(|v| (v.vmid, ()))
        .collect();
    if let Some(vmid) = user.keys().next() {
        return io.die(&format!(
            "sim: freeing volume '{volid}' that VM {vmid}'s config carries is not modelled"
        ));
    }
    let before = st.files.len() + st.images.len();
    st.files.retain(|v| !here(v));
    st.images.retain(|v| !here(v));
    if st.files.len() + st.images.len() == before {
        return io.die(&format!("volume '{volid}' does not exist"));
    }
    io.out(&format!("Removed volume '{volid}'\n"));
    0
}

//! `qm disk import <vmid> <source> <storage>` and its older alias `qm importdisk` (qemu-server
//! `PVE::CLI::qm` importdisk and `ImportDisk::do_import`).
//!
//! PVE's order: the guest's config must exist on this node and not be locked, the source must
//! be a file (a node path or a volume id, `can't find file`), the storage must exist, be
//! enabled and available here and hold `images`. Then the volume is allocated (named like the
//! storage plugin names it, raw on block storages, qcow2 on file storages unless `--format`),
//! the bytes "converted" for a scaled ~2 s per GiB (at most 10 s) with no lock held, and the
//! config gets the disk as the first free `unusedN` (or at `--target-disk`, an existing disk
//! there moving to `unusedN`) after checking the config again.

use super::super::guest::DriveValue;
use super::super::http::ApiError;
use super::super::state::{GIB, State, Volume, now, parse_size};
use super::super::volumes::{format_size, is_file_storage, new_disk_name};
use super::cmd_qm::{api_error, parse, vmid};
use super::exec::{Io, NodeCtx};
use super::fs;

/// What the first, locked phase decided.
struct Plan {
    volid: String,
    size: u64,
    target: Option<String>,
    /// What allocating printed (lvcreate's or qemu-img create's line).
    alloc_line: Option<String>,
}

pub async fn run(ctx: &NodeCtx, args: &[String], io: &mut Io, name: &str) -> u32 {
    let usage = format!("{name} <vmid> <source> <storage> [OPTIONS]");
    let Ok((pos, opts)) = parse(io, args, 3, &usage) else {
        return 255;
    };
    let Ok(id) = vmid(io, &pos[0], &usage) else {
        return 255;
    };
    let (mut format, mut target) = (None, None);
    for (k, v) in opts {
        let bad = |m: String| ApiError::param(&k, m);
        match k.as_str() {
            "format" if matches!(v.as_str(), "raw" | "qcow2" | "vmdk") => format = Some(v),
            "format" => {
                let m = format!(
                    "value '{v}' does not have a value in the enumeration 'raw, qcow2, vmdk'"
                );
                return api_error(io, bad(m), &usage);
            }
            "target-disk" if is_target(&v) => target = Some(v),
            "target-disk" => {
                let m =
                    format!("value '{v}' does not have a value in the enumeration of disk keys");
                return api_error(io, bad(m), &usage);
            }
            _ => {
                let m = "property is not defined in schema and the schema does not allow additional properties".to_string();
                return api_error(io, bad(m), &usage);
            }
        }
    }
    let (source, sid) = (&pos[1], &pos[2]);
    let plan = {
        let mut st = ctx.lock();
        match prepare(&mut st, &ctx.node, id, source, sid, format, target) {
            Ok(p) => p,
            Err(m) => return io.die(&m),
        }
    };
    io.out(&format!("importing disk '{source}' to VM {id} ...\n"));
    if let Some(l) = &plan.alloc_line {
        io.out(&format!("{l}\n"));
    }
    progress(ctx, io, plan.size).await;
    let attached = {
        let mut st = ctx.lock();
        attach(&mut st, &ctx.node, id, &plan)
    };
    match attached {
        Ok(key) => {
            io.out(&format!(
                "{key}: successfully imported disk '{}'\n",
                plan.volid
            ));
            0
        }
        Err(m) => io.die(&m),
    }
}

fn is_target(k: &str) -> bool {
    super::super::state::is_drive_key(k)
        || k.strip_prefix("unused")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `render_bytes` with one decimal: `64.0 MiB`.
fn render(n: u64) -> String {
    let mut v = n as f64;
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

/// `transferred X of Y (P%)` lines over the scaled conversion time, flushed as they come.
async fn progress(ctx: &NodeCtx, io: &mut Io, size: u64) {
    let total = (size as f64 / GIB as f64 * 2.0).min(10.0);
    for step in 0..=4u64 {
        if step > 0 {
            tokio::time::sleep(ctx.shared.scaled(total / 4.0)).await;
        }
        let done = size / 4 * step + if step == 4 { size % 4 } else { 0 };
        let pct = if size == 0 {
            100.0
        } else {
            done as f64 * 100.0 / size as f64
        };
        io.out(&format!(
            "transferred {} of {} ({pct:.2}%)\n",
            render(done),
            render(size)
        ));
        io.flush().await;
    }
}

/// The virtual size of the import source (a node path or a volume id) on `node`.
fn source_size(st: &State, node: &str, source: &str) -> Result<u64, String> {
    let missing = || format!("can't find file '{source}'");
    if !source.starts_with('/')
        && let Some((sid, volname)) = source.split_once(':')
    {
        let storage = st
            .storage(sid)
            .ok_or_else(|| format!("storage '{sid}' does not exist"))?;
        let here = |v: &Volume| storage.shared || v.node.as_deref() == Some(node);
        if let Some(f) = st.files.iter().find(|f| f.volid == source && here(f)) {
            return Ok(f.virtual_size.unwrap_or(f.size));
        }
        if let Some(f) = st.images.iter().find(|f| f.volid == source && here(f)) {
            return Ok(f.size);
        }
        return st.guest_disk_size(node, sid, volname).ok_or_else(missing);
    }
    let f = fs::stat(st, node, source).ok_or_else(missing)?;
    Ok(match f.format.as_str() {
        "qcow2" => f.virtual_size.unwrap_or(0),
        _ => f.size,
    })
}

fn prepare(
    st: &mut State,
    node: &str,
    vmid: u32,
    source: &str,
    sid: &str,
    format: Option<String>,
    target: Option<String>,
) -> Result<Plan, String> {
    let vm = st
        .vms
        .get(&vmid)
        .filter(|v| v.node == node)
        .ok_or_else(|| {
            format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
        })?;
    if let Some(l) = vm.get("lock") {
        return Err(format!("VM is locked ({l})"));
    }
    let size = source_size(st, node, source)?;
    let storage = st
        .storage(sid)
        .ok_or_else(|| format!("storage '{sid}' does not exist"))?;
    if storage.props.get("disable").is_some_and(|d| d != "0") {
        return Err(format!("storage '{sid}' is disabled"));
    }
    if !fs::available(storage, node) {
        return Err(format!("storage '{sid}' is not available on node '{node}'"));
    }
    if !storage.content.iter().any(|c| c == "images") {
        return Err(format!("storage {sid} does not support vm images"));
    }
    let stype = storage.stype.clone();
    let file = is_file_storage(&stype);
    let fmt = format.unwrap_or_else(|| if file { "qcow2" } else { "raw" }.to_string());
    if !file && fmt != "raw" {
        return Err(format!("unsupported format '{fmt}'"));
    }
    let mut name = new_disk_name(st, sid, vmid, &mut Vec::new());
    if file && fmt != "qcow2" {
        name = name.replace(".qcow2", &format!(".{fmt}"));
    }
    let volid = format!("{sid}:{name}");
    let alloc_line = match stype.as_str() {
        "lvmthin" | "lvm" => Some(format!("  Logical volume \"{name}\" created.")),
        _ if file => Some(format!(
            "Formatting '{}', fmt={fmt} size={size}",
            crate::sim::api::storage::volume::path_of(st, sid, &name)
        )),
        _ => None,
    };
    let image = st
        .storage(sid)
        .map(|storage| Volume::new_image(&volid, storage, node, fmt, size, vmid));
    st.images.extend(image);
    Ok(Plan {
        volid,
        size,
        target,
        alloc_line,
    })
}

/// Adds the new volume to the config (checked again: it may have changed meanwhile); on
/// failure the allocated volume is freed, as PVE's error path does.
fn attach(st: &mut State, node: &str, vmid: u32, plan: &Plan) -> Result<String, String> {
    let outcome = attach_to_config(st, node, vmid, plan);
    match &outcome {
        Err(_) => st.images.retain(|i| i.volid != plan.volid),
        Ok(key) if super::super::state::is_drive_key(key) => {
            st.images.retain(|i| i.volid != plan.volid)
        }
        Ok(_) => {}
    }
    outcome
}

fn attach_to_config(st: &mut State, node: &str, vmid: u32, plan: &Plan) -> Result<String, String> {
    let vm = st
        .vms
        .get_mut(&vmid)
        .filter(|v| v.node == node)
        .ok_or_else(|| {
            format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
        })?;
    if let Some(l) = vm.get("lock") {
        return Err(format!("VM is locked ({l})"));
    }
    let free_unused = |c: &std::collections::BTreeMap<String, String>| {
        (0u32..)
            .map(|n| format!("unused{n}"))
            .find(|k| !c.contains_key(k))
            .unwrap_or_default()
    };
    let key = plan
        .target
        .clone()
        .unwrap_or_else(|| free_unused(&vm.config));
    if key.starts_with("unused") {
        vm.config.insert(key.clone(), plan.volid.clone());
        return Ok(key);
    }
    let displaced = vm.config.get(&key).cloned();
    let value = format!("{},size={}", plan.volid, format_size(plan.size));
    vm.config.insert(key.clone(), value);
    // a disk already at the target becomes unused, keeping its size as a loose image
    if let Some(old) = displaced
        .map(|v| DriveValue::parse(&v))
        .filter(|d| !d.is_cdrom())
    {
        let slot = free_unused(&vm.config);
        vm.config.insert(slot, old.vol.clone());
        let size = old.opt("size").and_then(parse_size).unwrap_or(0);
        let sid = old.vol.split(':').next().unwrap_or("").to_string();
        let shared = st.storage(&sid).is_some_and(|s| s.shared);
        st.images.push(Volume {
            volid: old.vol.clone(),
            storage: sid,
            node: (!shared).then(|| node.to_string()),
            content: "images".into(),
            format: if old.vol.ends_with(".qcow2") {
                "qcow2"
            } else {
                "raw"
            }
            .into(),
            size,
            virtual_size: None,
            vmid: Some(vmid),
            ctime: now(),
            notes: None,
            protected: false,
            body: None,
        });
    }
    Ok(key)
}

//! `GET` and `DELETE /nodes/{node}/storage/{storage}/content/{volume}` (pve-storage
//! `API2/Storage/Content.pm` `info` and `delete`): volume attributes, and removal in an
//! `imgdel` task (id `<owner vmid>@<storage>`, or the storage alone). Like PVE's `vdisk_free`,
//! the delete looks at no guest config: file volumes, loose guest images (orphans, `unusedN`
//! disks), guest disks and snapshots' RAM states all go; a config that still names a removed
//! disk keeps naming it (the volume is then in [`State::freed_volumes`], gone from content, and
//! starting the guest fails as on PVE). A volume that does not exist is no error either: the
//! task ends OK (a file storage logs "disk image '<path>' does not exist"). What refuses a
//! delete is the storage: a base volume
//! linked clones use ("base volume '...' is still in use by linked clones"), and an LVM
//! volume a running guest holds open (`lvremove` "Logical volume vg/lv in use.").

use serde_json::{Value, json};

use crate::sim::api::storage::download::content_dir;
use crate::sim::api::{Ctx, WCtx};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{State, Volume};
use crate::sim::tasks::{NewTask, Outcome, finish, spawn_locked};

/// `real_volume_id`: the volume id from `{volume}` and the optional `{storage}`.
fn real_volume_id(storage: &str, volume: &str) -> Result<(String, String), ApiError> {
    match volume.split_once(':') {
        Some((sid, _)) if !storage.is_empty() && sid != storage => Err(ApiError::param(
            "volume",
            format!("storage ID mismatch ({sid} != {storage})\n"),
        )),
        Some((sid, _)) => Ok((volume.to_string(), sid.to_string())),
        None if storage.is_empty() => Err(ApiError::param(
            "volume",
            "no storage specified - incomplete volume ID",
        )),
        None => Ok((format!("{storage}:{volume}"), storage.to_string())),
    }
}

fn vtype(volname: &str) -> &str {
    match volname.split_once('/') {
        Some((t @ ("import" | "iso" | "vztmpl" | "backup" | "snippets"), _)) => t,
        _ => "images",
    }
}

fn owner(volname: &str) -> Option<u32> {
    let file = volname.split('/').next_back().unwrap_or(volname);
    let rest = file
        .strip_prefix("vm-")
        .or_else(|| file.strip_prefix("base-"))
        .or_else(|| file.strip_prefix("vzdump-qemu-"))
        .or_else(|| file.strip_prefix("vzdump-lxc-"))?;
    rest.split('-').next()?.parse().ok()
}

/// `PVE::Storage::check_volume_access` for reading.
fn check_read(c: &Ctx, sid: &str, volname: &str) -> Result<(), ApiError> {
    let storage = format!("/storage/{sid}");
    match (vtype(volname), owner(volname)) {
        ("iso" | "vztmpl" | "import", _) => c.require(
            &storage,
            &["Datastore.AllocateSpace", "Datastore.Audit"],
            true,
        ),
        ("backup", Some(v)) => {
            c.require(&storage, &["Datastore.AllocateSpace"], false)?;
            c.require(&format!("/vms/{v}"), &["VM.Backup"], false)
        }
        ("images", Some(v)) => {
            c.require(&storage, &["Datastore.Audit"], false)?;
            c.require(&format!("/vms/{v}"), &["VM.Config.Disk"], false)
        }
        _ => c.require(&storage, &["Datastore.Allocate"], false),
    }
}

fn file<'a>(st: &'a State, node: &str, volid: &str) -> Option<&'a Volume> {
    let shared = |sid: &str| st.storage(sid).is_some_and(|s| s.shared);
    st.files
        .iter()
        .find(|f| f.volid == volid && (shared(&f.storage) || f.node.as_deref() == Some(node)))
}

/// The on-disk path PVE reports for a volume.
pub fn path_of(st: &State, sid: &str, volname: &str) -> String {
    let Some(s) = st.storage(sid) else {
        return String::new();
    };
    match (s.props.get("path"), s.props.get("vgname")) {
        (Some(base), _) => match volname.split_once('/') {
            Some((t @ ("import" | "iso" | "vztmpl" | "backup" | "snippets"), f)) => {
                let dir = match t {
                    "backup" => format!("{base}/dump"),
                    "snippets" => format!("{base}/snippets"),
                    t => content_dir(base, t),
                };
                format!("{dir}/{f}")
            }
            _ => format!("{base}/images/{volname}"),
        },
        // a linked clone's volume is its own LV (`base-X/vm-Y` names the parent too)
        (None, Some(vg)) => format!(
            "/dev/{vg}/{}",
            volname.rsplit('/').next().unwrap_or(volname)
        ),
        (None, None) => format!("/dev/{sid}/{volname}"),
    }
}

pub fn info(c: &Ctx) -> ApiResult {
    let (volid, sid) = real_volume_id(&c.args.storage, &c.args.volume)?;
    let volname = volid.split_once(':').map(|x| x.1).unwrap_or("");
    check_read(c, &sid, volname)?;
    c.validate()?;
    let node = &c.args.node;
    let gone = || ApiError::Server(format!("volume '{volid}' does not exist"));
    let path = path_of(c.st, &sid, volname);
    if let Some(f) = file(c.st, node, &volid) {
        let mut v = json!({
            "path": path,
            "size": f.virtual_size.unwrap_or(f.size),
            "used": f.size,
            "format": f.format,
        });
        if f.content == "backup" {
            v["protected"] = json!(u8::from(f.protected));
            if let Some(n) = &f.notes {
                v["notes"] = json!(n);
            }
        }
        return Ok(Reply::data(v));
    }
    if c.st.freed_volumes.contains(&volid) {
        return Err(gone());
    }
    let shared = c.st.storage(&sid).is_some_and(|s| s.shared);
    let here = |n: Option<&str>| shared || n == Some(node.as_str());
    let image =
        c.st.images
            .iter()
            .find(|i| i.volid == volid && here(i.node.as_deref()));
    let state = || {
        c.st.vms
            .values()
            .filter(|v| here(Some(&v.node)))
            .flat_map(|v| crate::sim::snapshot::vmstate_volumes(c.st, v))
            .find(|v| v.volid == volid)
    };
    let size = match (image, state()) {
        (Some(i), _) => i.size,
        (None, Some(v)) => v.size,
        (None, None) => {
            c.st.vms
                .values()
                .filter(|v| here(Some(&v.node)))
                .flat_map(|v| v.disks())
                .find(|d| d.storage == sid && d.volname == volname)
                .ok_or_else(gone)?
                .size
        }
    };
    let format = if volname.ends_with(".qcow2") {
        "qcow2"
    } else {
        "raw"
    };
    Ok(Reply::data(json!({
        "path": path,
        "size": size,
        "used": size / 3,
        "format": format,
    })))
}

/// What a delete of a guest volume (not a file volume) removes.
enum GuestVolume {
    /// A loose image in [`State::images`].
    Image,
    /// A disk or RAM state a config names: freed, the config keeps naming it. The error, if
    /// the storage refuses to remove it.
    Referenced(Option<String>),
}

/// The guest volume `volid` as `node` sees it, if there is one.
fn guest_volume(
    st: &State,
    node: &str,
    sid: &str,
    volname: &str,
    volid: &str,
) -> Option<GuestVolume> {
    let s = st.storage(sid)?;
    let here = |n: Option<&str>| s.shared || n == Some(node);
    if st.freed_volumes.contains(volid) {
        return None;
    }
    if st
        .images
        .iter()
        .any(|i| i.volid == volid && here(i.node.as_deref()))
    {
        return Some(GuestVolume::Image);
    }
    let vms = || st.vms.values().filter(|v| here(Some(&v.node)));
    let is_state = vms().any(|v| {
        v.snapshots
            .values()
            .any(|x| x.get("vmstate").is_some_and(|x| x == volid))
    });
    let holder = vms().find(|v| {
        v.disks()
            .iter()
            .any(|d| d.storage == sid && d.volname == volname)
    });
    if !is_state && holder.is_none() {
        return None;
    }
    let file = volname.rsplit('/').next().unwrap_or(volname);
    // `vdisk_free`: "LVM-thin allows deletion of still referenced base volumes!"
    let base_used = file.starts_with("base-")
        && st
            .vms
            .values()
            .flat_map(|v| v.config.values())
            .any(|x| x.starts_with(&format!("{volid}/")));
    let error = if base_used {
        Some(format!(
            "base volume '{volname}' is still in use by linked clones"
        ))
    } else if matches!(s.stype.as_str(), "lvmthin" | "lvm") && holder.is_some_and(|v| v.running) {
        let vg = s.props.get("vgname").map(String::as_str).unwrap_or("pve");
        Some(format!(
            "lvremove '{vg}/{file}' error:   Logical volume {vg}/{file} in use."
        ))
    } else {
        None
    };
    Some(GuestVolume::Referenced(error))
}

pub fn delete(c: &mut WCtx) -> ApiResult {
    let (volid, sid) = real_volume_id(&c.args.storage, &c.args.volume)?;
    let volname = volid.split_once(':').map(|x| x.1).unwrap_or("").to_string();
    {
        let ro = c.ro();
        let storage = format!("/storage/{sid}");
        match (vtype(&volname), owner(&volname)) {
            ("backup", Some(v)) => {
                ro.require(&storage, &["Datastore.AllocateSpace"], false)?;
                ro.require(&format!("/vms/{v}"), &["VM.Backup"], false)?;
            }
            _ => ro.require(&storage, &["Datastore.Allocate"], false)?,
        }
        ro.validate()?;
    }
    let node = c.args.node.clone();
    if c.st.storage(&sid).is_none() {
        return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
    }
    // `None`: there is no such volume, which `free_image` does not mind (a file storage warns)
    let (protected, guest) = match file(c.st, &node, &volid) {
        Some(f) => (f.protected, Some(None)),
        None => (
            false,
            guest_volume(c.st, &node, &sid, &volname, &volid).map(Some),
        ),
    };
    let missing_path =
        c.st.storage(&sid)
            .filter(|s| s.props.contains_key("path"))
            .map(|_| path_of(c.st, &sid, &volname));
    let delay = c.param("delay").is_some();
    let user = c.authid().to_string();
    let vol2 = volid.clone();
    let node2 = node.clone();
    let sid2 = sid.clone();
    let remove = move |st: &mut State, injected: Option<String>| -> Outcome {
        let fail = |error: String| Outcome::Err {
            log: Vec::new(),
            error,
        };
        if let Some(error) = injected {
            return fail(error);
        }
        if protected {
            // `free_image`
            let (sid, volname) = vol2.split_once(':').unwrap_or(("", ""));
            return fail(format!(
                "cannot remove protected volume '{volname}' on '{sid}'"
            ));
        }
        let shared = st.storage(&sid2).is_some_and(|s| s.shared);
        let here = |n: Option<&str>| shared || n == Some(node2.as_str());
        let mut log = Vec::new();
        match guest {
            None => {
                if let Some(p) = missing_path {
                    log.push(format!("disk image '{p}' does not exist"));
                }
            }
            Some(None) => st
                .files
                .retain(|f| f.volid != vol2 || !here(f.node.as_deref())),
            Some(Some(GuestVolume::Image)) => st
                .images
                .retain(|i| i.volid != vol2 || !here(i.node.as_deref())),
            Some(Some(GuestVolume::Referenced(Some(error)))) => return fail(error),
            Some(Some(GuestVolume::Referenced(None))) => {
                st.freed_volumes.insert(vol2.clone());
            }
        }
        log.push(format!("Removed volume '{vol2}'"));
        Outcome::Ok { log, warnings: 0 }
    };
    // `$ownervm@$storeid`, or the storage id
    let id = match owner(&volname) {
        Some(v) => format!("{v}@{sid}"),
        None => sid.clone(),
    };
    let task = NewTask {
        node: &node,
        ttype: "imgdel",
        id: &id,
        user: &user,
        duration_secs: 0.2,
        log: Vec::new(),
    };
    if !delay {
        let upid = spawn_locked(c.shared, c.st, task, remove);
        return Ok(Reply::data(json!(upid)));
    }
    // with `delay`, PVE waits for the worker: removing a file ends well within it
    let (upid, injected, _) = crate::sim::tasks::register(c.shared, c.st, task);
    let outcome = remove(c.st, injected);
    let failed = match &outcome {
        Outcome::Err { error, .. } => Some(error.clone()),
        Outcome::Ok { .. } => None,
    };
    finish(c.st, &upid, outcome);
    match failed {
        Some(e) => Err(ApiError::Server(e)),
        None => Ok(Reply::data(Value::Null)),
    }
}

//! `GET` and `DELETE /nodes/{node}/storage/{storage}/content/{volume}` (pve-manager
//! `API2/Storage/Content.pm` `info` and `delete`): volume attributes, and removal of file
//! volumes (ISOs, templates, import images, backups) in an `imgdel` task. Guest disks are
//! shown but not deleted here (they belong to guest configs in the simulator).

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
        .or_else(|| file.strip_prefix("vzdump-qemu-"))?;
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
    let shared = c.st.storage(&sid).is_some_and(|s| s.shared);
    let disk =
        c.st.vms
            .values()
            .filter(|v| shared || v.node == *node)
            .flat_map(|v| v.disks())
            .find(|d| d.storage == sid && d.volname == volname)
            .ok_or_else(gone)?;
    let format = if volname.ends_with(".qcow2") {
        "qcow2"
    } else {
        "raw"
    };
    Ok(Reply::data(json!({
        "path": path,
        "size": disk.size,
        "used": disk.size / 3,
        "format": format,
    })))
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
    let Some(f) = file(c.st, &node, &volid) else {
        let in_use =
            c.st.vms
                .values()
                .flat_map(|v| v.disks())
                .any(|d| d.storage == sid && d.volname == volname);
        return Err(ApiError::Server(if in_use {
            format!(
                "volume '{volid}' is a guest disk: the simulator removes guest disks with their guest (or the guest's config)"
            )
        } else {
            format!("volume '{volid}' does not exist")
        }));
    };
    let protected = f.protected;
    let delay = c.param("delay").is_some();
    let user = c.authid().to_string();
    let vol2 = volid.clone();
    let remove = move |st: &mut State, injected: Option<String>| -> Outcome {
        if let Some(error) = injected {
            return Outcome::Err {
                log: Vec::new(),
                error,
            };
        }
        if protected {
            return Outcome::Err {
                log: Vec::new(),
                error: format!("volume '{vol2}' is protected"),
            };
        }
        st.files.retain(|f| f.volid != vol2);
        Outcome::Ok {
            log: vec![format!("Removed volume '{vol2}'")],
            warnings: 0,
        }
    };
    let task = NewTask {
        node: &node,
        ttype: "imgdel",
        id: "",
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

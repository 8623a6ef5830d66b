//! Storage reads: `/storage` (storage.cfg), `/nodes/{node}/storage` (usage with
//! `used`/`total`/`avail`) and `/nodes/{node}/storage/{storage}/content` (item 31). Guest disks
//! are listed from guest configs; everything else from the scenario's files.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::sim::api::Ctx;
use crate::sim::api::listing::TemplateBuilder;
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::state::{MIB, Storage};

fn visible(c: &Ctx, s: &Storage) -> bool {
    c.can(
        &format!("/storage/{}", s.id),
        &["Datastore.Audit", "Datastore.AllocateSpace"],
    )
}

pub fn storage_index(c: &Ctx) -> ApiResult {
    c.validate()?;
    let ty = c.param("type");
    let out: Vec<Value> =
        c.st.storages
            .iter()
            .filter(|s| ty.is_none_or(|t| t == s.stype) && visible(c, s))
            .map(|s| {
                let mut m = Map::new();
                m.insert("storage".into(), json!(s.id));
                m.insert("type".into(), json!(s.stype));
                m.insert("content".into(), json!(s.content.join(",")));
                for (k, v) in &s.props {
                    m.insert(k.clone(), json!(v));
                }
                if s.content.iter().any(|c| c == "backup") {
                    m.insert("prune-backups".into(), json!("keep-all=1"));
                }
                if s.stype == "nfs" {
                    m.insert("options".into(), json!("vers=4.2"));
                }
                m.insert(
                    "digest".into(),
                    json!("6f1c7a0d3b1e9e4b1e0f5d3c2a1b0c9d8e7f6a5b"),
                );
                Value::Object(m)
            })
            .collect();
    Ok(Reply::data(Value::Array(out)))
}

pub fn node_storage(c: &Ctx) -> ApiResult {
    c.validate()?;
    let node = &c.args.node;
    let wanted: Vec<&str> = c
        .param("content")
        .map(|s| s.split([',', ';', ' ']).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    let only = c.param("storage");
    // every storage's usage in one pass over the guests
    let usage = c.st.usage_now();
    let ni = c.st.nodes.iter().position(|n| n.name == *node);
    let mut out = Vec::new();
    for (si, s) in c.st.storages.iter().enumerate() {
        if only.is_some_and(|o| o != s.id) || !visible(c, s) {
            continue;
        }
        if !wanted.is_empty() && !wanted.iter().any(|w| s.content.iter().any(|x| x == w)) {
            continue;
        }
        let used = match ni {
            Some(ni) => usage.storage(si, ni),
            None => c.st.storage_used(&s.id, Some(node)),
        };
        let mut row = json!({
            "storage": s.id, "type": s.stype, "content": s.content.join(","),
            "shared": u8::from(s.shared), "active": 1, "enabled": 1,
            "total": s.total, "used": used, "avail": s.total - used,
            "used_fraction": used as f64 / s.total.max(1) as f64,
        });
        if c.flag("format") {
            let (def, sup) = if s.stype == "lvmthin" {
                ("raw", vec!["raw"])
            } else {
                ("qcow2", vec!["raw", "qcow2", "vmdk"])
            };
            row["formats"] = json!({ "default": def, "supported": sup });
        }
        out.push(row);
    }
    Ok(Reply::data(Value::Array(out)))
}

pub fn content(c: &Ctx) -> ApiResult {
    let (node, sid) = (&c.args.node, &c.args.storage);
    c.require(
        &format!("/storage/{sid}"),
        &["Datastore.Audit", "Datastore.AllocateSpace"],
        true,
    )?;
    c.validate()?;
    let st = c.st;
    // The answer depends on the state, the caller and the arguments only (a shared storage's
    // not on the node asked): rendered once per state generation (see `api/listing.rs`).
    let shared = st.storage(sid).is_some_and(|s| s.shared);
    let key = format!(
        "content|{}|{sid}|{:?}|{:?}|{}",
        if shared { "" } else { node.as_str() },
        c.param("content"),
        c.param("vmid"),
        c.authid()
    );
    if let Some(t) = st.listings.get(st.generation, st.writing, &key) {
        return Ok(Reply::raw(t.render(0)));
    }
    let out = content_rows(c)?;
    let mut b = TemplateBuilder::with_capacity(0);
    *b.text() = serde_json::to_string(&out)
        .map_err(|e| ApiError::Server(format!("cannot encode the listing: {e}")))?;
    let t = std::sync::Arc::new(b.finish());
    st.listings
        .put(st.generation, st.writing, key, std::sync::Arc::clone(&t));
    Ok(Reply::raw(t.render(0)))
}

/// One row of a content listing. The fields are in the order PVE's encoder writes them
/// (sorted), and the optional ones are left out when absent, as PVE does.
#[derive(Serialize)]
struct Row<'a> {
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctime: Option<i64>,
    format: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protected: Option<u8>,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtype: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vmid: Option<u32>,
    volid: Cow<'a, str>,
}

fn image_format(volid: &str) -> &'static str {
    if volid.ends_with(".qcow2") {
        "qcow2"
    } else {
        "raw"
    }
}

/// The rows of [`content`], afresh: only those its `content` and `vmid` filters and the
/// caller's privileges let through, built as they are found (a listing of tens of thousands of
/// volumes is mostly rows another filter would drop).
fn content_rows<'s>(c: &Ctx<'s>) -> Result<Vec<Row<'s>>, ApiError> {
    let (node, sid) = (&c.args.node, &c.args.storage);
    let st = c.st;
    let Some(s) = st.storage(sid) else {
        return Err(ApiError::Server(format!("storage '{sid}' does not exist")));
    };
    let content = c.param("content");
    let vmid: Option<u32> = c.param("vmid").and_then(|v| v.parse().ok());
    let wanted = |ct: &str, id: Option<u32>| {
        content.is_none_or(|want| want == ct) && vmid.is_none_or(|want| id == Some(want))
    };
    let mut items: Vec<Row<'s>> = Vec::new();
    for f in st
        .files
        .iter()
        .filter(|f| f.storage == s.id && (s.shared || f.node.as_deref() == Some(node.as_str())))
        .filter(|f| wanted(&f.content, f.vmid))
    {
        let backup = f.content == "backup";
        items.push(Row {
            content: &f.content,
            ctime: Some(f.ctime),
            format: &f.format,
            notes: f.notes.as_deref().filter(|_| backup),
            parent: None,
            // the plugin sets `protected` only for protected backups (a `.protected` file)
            protected: (backup && f.protected).then_some(1),
            size: f.size,
            subtype: backup.then(|| {
                if f.volid.contains("vzdump-lxc-") {
                    "lxc"
                } else {
                    "qemu"
                }
            }),
            used: (f.content == "import" || f.content == "iso").then_some(f.size),
            vmid: f.vmid,
            volid: Cow::Borrowed(&f.volid),
        });
    }
    // guest images only when they can pass the filters (a container's volumes are `rootdir`
    // content, a VM's `images`; a snapshot's RAM state and a cloud-init drive are `images`)
    let images_wanted = content.is_none_or(|ct| ct == "images" || ct == "rootdir");
    // a local storage's from its node's guests alone (64 nodes' listings are not each a walk
    // of every guest)
    let guests: Box<dyn Iterator<Item = &crate::sim::state::Vm>> = match (images_wanted, s.shared) {
        (false, _) => Box::new(std::iter::empty()),
        (true, true) => Box::new(st.vms.values()),
        (true, false) => Box::new(st.vms_on(node)),
    };
    for vm in guests {
        let kind = if vm.is_ct() { "rootdir" } else { "images" };
        if content.is_none_or(|want| want == kind) {
            for d in vm.disk_refs().filter(|d| {
                d.storage == s.id
                    && !st
                        .freed_volumes
                        .contains(&format!("{}:{}", d.storage, d.volname))
            }) {
                // PVE names a volume's guest from its name, not from the config holding it
                // (a disk attached by hand to another guest is still listed as its owner's)
                let owner = image_owner(d.volname).unwrap_or(vm.vmid);
                if vmid.is_some_and(|want| want != owner) {
                    continue;
                }
                items.push(Row {
                    content: kind,
                    ctime: Some(st.started - 86_400 * 90),
                    format: image_format(d.volname),
                    notes: None,
                    parent: linked_parent(d.volname),
                    protected: None,
                    size: d.size,
                    subtype: None,
                    used: Some(d.size / 3),
                    vmid: Some(owner),
                    volid: Cow::Owned(format!("{}:{}", s.id, d.volname)),
                });
            }
        }
        if !wanted("images", Some(vm.vmid)) {
            continue;
        }
        // snapshots' RAM states are images of the guest (disk snapshots are not listed)
        for v in crate::sim::snapshot::vmstate_volumes(st, vm)
            .into_iter()
            .filter(|v| v.storage == s.id)
        {
            items.push(Row {
                content: "images",
                ctime: Some(v.ctime),
                format: "raw",
                notes: None,
                parent: None,
                protected: None,
                size: v.size,
                subtype: None,
                used: Some(v.size / 2),
                vmid: Some(v.vmid),
                volid: Cow::Owned(v.volid),
            });
        }
        if let Some(ci) = vm.get("ide2").filter(|v| v.contains("cloudinit")) {
            let volid = ci.split(',').next().unwrap_or("");
            if volid
                .strip_prefix(s.id.as_str())
                .is_some_and(|r| r.starts_with(':'))
            {
                items.push(Row {
                    content: "images",
                    ctime: None,
                    format: image_format(volid),
                    notes: None,
                    parent: None,
                    protected: None,
                    size: 4 * MIB,
                    subtype: None,
                    used: None,
                    vmid: Some(vm.vmid),
                    volid: Cow::Borrowed(volid),
                });
            }
        }
    }
    for v in st
        .images
        .iter()
        .filter(|v| v.storage == s.id && (s.shared || v.node.as_deref() == Some(node.as_str())))
        .filter(|v| wanted("images", v.vmid))
    {
        items.push(Row {
            content: "images",
            ctime: Some(v.ctime),
            format: &v.format,
            notes: None,
            parent: None,
            protected: None,
            size: v.size,
            subtype: None,
            used: Some(v.size / 3),
            vmid: v.vmid,
            volid: Cow::Borrowed(&v.volid),
        });
    }
    // by volid, each volume once (two configs can hold the same disk; PVE lists volumes)
    items.sort_by(|a, b| a.volid.cmp(&b.volid));
    items.dedup_by(|a, b| a.volid == b.volid);
    let mut audit = crate::sim::api::GuestAudit::new(c);
    let mut allocate: Option<bool> = None;
    items.retain(|i| match i.vmid {
        // volumes owned by a guest need access to that guest (or Datastore.Allocate)
        Some(v) => {
            audit.visible(v)
                || *allocate.get_or_insert_with(|| {
                    c.can(&format!("/storage/{sid}"), &["Datastore.Allocate"])
                })
        }
        None => true,
    });
    Ok(items)
}

/// The guest a disk image belongs to, as PVE's storage plugins read it from the volume's name:
/// the VMID in its last path part (`vm-N-…`, `base-N-…`, `subvol-N-…`, `basevol-N-…`), so a
/// linked clone `100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2` is 1011's.
fn image_owner(volname: &str) -> Option<u32> {
    let file = volname.rsplit('/').next().unwrap_or(volname);
    let rest = ["vm-", "base-", "subvol-", "basevol-"]
        .iter()
        .find_map(|p| file.strip_prefix(p))?;
    rest.split('-').next()?.parse().ok()
}

/// The backing file of a file-based linked clone, as `qemu-img info` names it:
/// `100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2` -> `../100/base-100-disk-0.qcow2`.
fn linked_parent(volname: &str) -> Option<String> {
    let parts: Vec<&str> = volname.split('/').collect();
    match parts.as_slice() {
        [base_vmid, base, _, _] if base.starts_with("base-") => {
            Some(format!("../{base_vmid}/{base}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::image_owner;

    #[test]
    fn a_volumes_owner_is_the_vmid_its_name_gives() {
        assert_eq!(image_owner("vm-1004-disk-0"), Some(1004));
        assert_eq!(image_owner("base-100-disk-1"), Some(100));
        assert_eq!(image_owner("1005/vm-1005-disk-0.qcow2"), Some(1005));
        assert_eq!(
            image_owner("100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2"),
            Some(1011)
        );
        assert_eq!(image_owner("base-101-disk-0/vm-1012-disk-0"), Some(1012));
        assert_eq!(image_owner("subvol-2001-disk-0"), Some(2001));
        assert_eq!(image_owner("iso/debian.iso"), None);
    }
}

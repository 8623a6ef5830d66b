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
    let mut b = TemplateBuilder::with_capacity(0);
    *b.text() = content_json(c, Volumes::Kept)?;
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

/// A volume a guest's config names, as a content listing shows it: kept with the guest (see
/// `guests.rs`), so that after a write a listing of 30,000 volumes re-derives the written
/// guest's alone. The row does not depend on anything outside the guest but the simulator's
/// start time (a disk's `ctime`), fixed for the state's life; whether the volume was freed is
/// asked when listing.
pub struct GuestVolume {
    /// `storage:volname`.
    volid: Box<str>,
    /// The guest the listing names: from the volume's name for a disk.
    owner: u32,
    /// `images` or `rootdir`.
    content: &'static str,
    /// The row, encoded.
    row: Box<str>,
}

/// Where a listing takes the guests' volumes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Volumes {
    /// Those kept with the guests, derived for the guests that have none.
    Kept,
    /// Derived anew for every guest (what the kept ones are compared with in tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Afresh,
}

/// `vm`'s volumes, in the order PVE's listing would meet them before sorting (its disks in
/// config order, its snapshots' RAM states, its cloud-init drive).
fn guest_volumes(started: i64, vm: &crate::sim::state::Vm) -> Result<Vec<GuestVolume>, ApiError> {
    let mut out = Vec::new();
    let mut push = |content: &'static str, row: Row| -> Result<(), ApiError> {
        out.push(GuestVolume {
            volid: row.volid.as_ref().into(),
            owner: row.vmid.unwrap_or(vm.vmid),
            content,
            row: encode(&row)?.into(),
        });
        Ok(())
    };
    let kind = if vm.is_ct() { "rootdir" } else { "images" };
    for d in vm.disk_refs() {
        // PVE names a volume's guest from its name, not from the config holding it (a disk
        // attached by hand to another guest is still listed as its owner's)
        push(
            kind,
            Row {
                content: kind,
                ctime: Some(started - 86_400 * 90),
                format: image_format(d.volname),
                notes: None,
                parent: linked_parent(d.volname),
                protected: None,
                size: d.size,
                subtype: None,
                used: Some(d.size / 3),
                vmid: Some(image_owner(d.volname).unwrap_or(vm.vmid)),
                volid: Cow::Owned(format!("{}:{}", d.storage, d.volname)),
            },
        )?;
    }
    // snapshots' RAM states are images of the guest (disk snapshots are not listed)
    for v in crate::sim::snapshot::vm_vmstates(vm) {
        push(
            "images",
            Row {
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
            },
        )?;
    }
    if let Some(ci) = vm.get("ide2").filter(|v| v.contains("cloudinit")) {
        let volid = ci.split(',').next().unwrap_or("");
        push(
            "images",
            Row {
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
            },
        )?;
    }
    Ok(out)
}

fn encode(row: &Row) -> Result<String, ApiError> {
    serde_json::to_string(row).map_err(|e| ApiError::Server(format!("cannot encode a row: {e}")))
}

/// One row of a listing being assembled: its volid (the order), its guest (the privilege it
/// needs) and its encoding.
struct Item<'s> {
    volid: &'s str,
    /// The first 32 bytes of the volid after the storage's name, zero-padded, as numbers
    /// that order as they do: a storage's volids differ within them (`1000/vm-1000-disk-0.qcow2`,
    /// `backup/vzdump-qemu-1000-2026_…`), so sorting 30,000 compares numbers, and whole volids
    /// only where those are equal. None for a volid not starting `{sid}:`.
    key: Option<[u128; 2]>,
    vmid: Option<u32>,
    row: Cow<'s, str>,
}

impl<'s> Item<'s> {
    fn new(sid: &str, volid: &'s str, vmid: Option<u32>, row: Cow<'s, str>) -> Item<'s> {
        // every volid of the listing starts `{sid}:`: past it, the order is the volids'
        let key = volname(sid, volid).map(|rest| {
            let (rest, mut head) = (rest.as_bytes(), [0u8; 32]);
            let n = rest.len().min(32);
            head[..n].copy_from_slice(&rest[..n]);
            let (high, low) = head.split_at(16);
            [high, low].map(|h| u128::from_be_bytes(h.try_into().unwrap_or_default()))
        });
        Item {
            volid,
            key,
            vmid,
            row,
        }
    }
}

/// Sorts a listing's items by volid, keeping the first of each volid.
fn sort_by_volid(items: &mut Vec<Item>) {
    // should a volid not start `{sid}:`, the keys would not order it among the others: the
    // whole volids do
    if items.iter().any(|i| i.key.is_none()) {
        items.sort_by(|a, b| a.volid.cmp(b.volid));
    } else {
        items.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.volid.cmp(b.volid)));
    }
    items.dedup_by(|a, b| a.volid == b.volid);
}

/// What follows `{sid}:` in `volid`, if it starts so.
fn volname<'v>(sid: &str, volid: &'v str) -> Option<&'v str> {
    volid.strip_prefix(sid)?.strip_prefix(':')
}

/// The JSON array of [`content`], afresh but for the guests' kept volumes: only the rows its
/// `content` and `vmid` filters and the caller's privileges let through, encoded as they are
/// found (a listing of tens of thousands of volumes is mostly rows another filter would drop).
fn content_json(c: &Ctx, volumes: Volumes) -> Result<String, ApiError> {
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
    // guest images only when they can pass the filters (a container's volumes are `rootdir`
    // content, a VM's `images`; a snapshot's RAM state and a cloud-init drive are `images`),
    // and a local storage's from its node's guests alone (64 nodes' listings are not each a
    // walk of every guest)
    let mut kept: Vec<std::sync::Arc<[GuestVolume]>> = Vec::new();
    if content.is_none_or(|ct| ct == "images" || ct == "rootdir") {
        let mut keep = |vm: &crate::sim::state::Vm, d: &mut crate::sim::guests::Derived| {
            let v = match (&d.volumes, volumes) {
                (Some(v), Volumes::Kept) => std::sync::Arc::clone(v),
                (_, Volumes::Kept) => {
                    std::sync::Arc::clone(d.volumes.insert(guest_volumes(st.started, vm)?.into()))
                }
                (_, Volumes::Afresh) => guest_volumes(st.started, vm)?.into(),
            };
            kept.push(v);
            Ok::<_, ApiError>(())
        };
        if s.shared {
            st.vms.each_derived(&mut keep)?;
        } else {
            st.vms.each_derived_on(node, &mut keep)?;
        }
    }
    let mut items: Vec<Item> = Vec::new();
    for f in st
        .files
        .iter()
        .filter(|f| f.storage == s.id && (s.shared || f.node.as_deref() == Some(node.as_str())))
        .filter(|f| wanted(&f.content, f.vmid))
    {
        let backup = f.content == "backup";
        let row = Row {
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
        };
        items.push(Item::new(sid, &f.volid, f.vmid, Cow::Owned(encode(&row)?)));
    }
    for v in kept.iter().flat_map(|k| k.iter()).filter(|v| {
        volname(sid, &v.volid).is_some()
            && wanted(v.content, Some(v.owner))
            // a volume freed while a config still names it is gone from the storage
            && !st.freed_volumes.contains(&*v.volid)
    }) {
        items.push(Item::new(
            sid,
            &v.volid,
            Some(v.owner),
            Cow::Borrowed(&v.row),
        ));
    }
    for v in st
        .images
        .iter()
        .filter(|v| v.storage == s.id && (s.shared || v.node.as_deref() == Some(node.as_str())))
        .filter(|v| wanted("images", v.vmid))
    {
        let row = Row {
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
        };
        items.push(Item::new(sid, &v.volid, v.vmid, Cow::Owned(encode(&row)?)));
    }
    // by volid, each volume once (two configs can hold the same disk; PVE lists volumes)
    sort_by_volid(&mut items);
    let mut audit = crate::sim::api::GuestAudit::new(c);
    let mut allocate: Option<bool> = None;
    let mut text = String::with_capacity(2 + items.iter().map(|i| i.row.len() + 1).sum::<usize>());
    text.push('[');
    for i in items {
        let shown = match i.vmid {
            // volumes owned by a guest need access to that guest (or Datastore.Allocate)
            Some(v) => {
                audit.visible(v)
                    || *allocate.get_or_insert_with(|| {
                        c.can(&format!("/storage/{sid}"), &["Datastore.Allocate"])
                    })
            }
            None => true,
        };
        if shown {
            if text.len() > 1 {
                text.push(',');
            }
            text.push_str(&i.row);
        }
    }
    text.push(']');
    Ok(text)
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

/// The listing `c` asks for with the guests' kept volumes, and with every guest's derived
/// anew: the kept-rows test compares them after every kind of write (`api/cluster.rs`).
#[cfg(test)]
pub(crate) fn kept_and_afresh(c: &Ctx) -> (String, String) {
    let kept = content_json(c, Volumes::Kept).expect("listing");
    (kept, content_json(c, Volumes::Afresh).expect("listing"))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::{Item, image_owner, sort_by_volid};

    /// The keyed sort gives the order of the volids themselves, each once, the first kept.
    #[test]
    fn items_sort_as_their_volids_do() {
        let named = [
            "nfs:vm-1-disk-0",
            "nfs:vm-1-disk-0",
            "nfs:vm-10-disk-0",
            "nfs:vm-1",
            "nfs:vm-1-disk-00000000000000000000000000000002",
            "nfs:vm-1-disk-00000000000000000000000000000001",
            "nfs:vm-1-disk-000000000000000002",
            "nfs:vm-1-disk-000000000000000001",
            "nfs:100/base-100-disk-0.qcow2/1012/vm-1012-disk-0.qcow2",
            "nfs:100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2",
            "nfs:iso/debian.iso",
            "nfs:",
            "nfs:vm-1-disk-0\u{e9}",
        ];
        for odd in [None, Some("nfsx:vm-1"), Some("vm-2")] {
            let mut volids: Vec<&str> = named.iter().copied().chain(odd).collect();
            for turn in 0..volids.len() {
                volids.rotate_left(1);
                let mut items: Vec<Item> = volids
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Item::new("nfs", v, Some(i as u32), Cow::Borrowed("")))
                    .collect();
                sort_by_volid(&mut items);
                let mut want: Vec<(&str, Option<u32>)> = volids
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (*v, Some(i as u32)))
                    .collect();
                want.sort_by(|a, b| a.0.cmp(b.0));
                want.dedup_by(|a, b| a.0 == b.0);
                let got: Vec<(&str, Option<u32>)> =
                    items.iter().map(|i| (i.volid, i.vmid)).collect();
                assert_eq!(got, want, "{odd:?}, turn {turn}");
            }
        }
    }

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

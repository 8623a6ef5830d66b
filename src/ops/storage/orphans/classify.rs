//! What makes a volume an orphan, decided from storage listings and the configs of its owner
//! only (no I/O here): which owners one page covers, what a config references, and whether a
//! base volume may still carry linked clones.
//!
//! A volume belongs to the guest its name says (`vm-1099-disk-0`, `base-100-disk-0`; the
//! listing's `vmid`), as PVE itself assumes when `qm disk rescan` adopts volumes or a guest's
//! destruction frees its unreferenced disks. So an owner's configs (and its snapshots') decide
//! its volumes, with one exception the listing settles: a linked clone's config names its
//! template's base volume, so a base volume is kept while any volume listed on the same
//! storage names it as its parent.

use std::collections::{BTreeMap, BTreeSet};

use super::OrphanReason;
use crate::pve::StorageContentRow;

/// Owners per page at most: their configs (and snapshots') are what one call reads.
pub const OWNERS_PAGE: usize = 50;

/// Volumes of owners that do not exist, per page at most (unless one owner has more): each is
/// an orphan, so this bounds the answer of a cluster full of leftovers.
pub const MISSING_VOLUMES_PAGE: usize = 16;

/// A guest config (or a snapshot's) as PVE returns it.
pub type Config = BTreeMap<String, serde_json::Value>;

/// One storage as listed from one node (a shared storage once).
pub struct Listing {
    pub node: String,
    pub storage: String,
    pub shared: bool,
    /// PVE plugin type (`dir`, `nfs`, `lvmthin`, `rbd`, ...).
    pub plugin: String,
    pub items: Vec<Volume>,
    /// The base volumes its volumes name as their parent ([`named_bases`]).
    pub bases: BTreeSet<String>,
}

/// A listed volume: what deciding it and reporting it needs (the rest of its row is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub volid: String,
    /// Its owner, as the listing says.
    pub vmid: Option<u32>,
    /// Bytes.
    pub size: u64,
    pub format: Option<String>,
}

impl Volume {
    pub fn of(row: &StorageContentRow<'_>) -> Volume {
        Volume {
            volid: row.volid.clone().into_owned(),
            vmid: row.vmid,
            size: row.size.unwrap_or(0),
            format: row.format.as_deref().map(str::to_owned),
        }
    }
}

impl Listing {
    /// The listing of `rows`: their volumes, and the bases they name.
    pub fn of(
        node: String,
        storage: String,
        shared: bool,
        plugin: String,
        rows: &[StorageContentRow<'_>],
    ) -> Listing {
        Listing {
            node,
            storage,
            shared,
            plugin,
            items: rows.iter().map(Volume::of).collect(),
            bases: named_bases(rows.iter().map(|r| (&*r.volid, r.parent.as_deref()))),
        }
    }
}

/// What the configs read say: volumes in use, volumes held only as `unusedN`.
#[derive(Default)]
pub struct References {
    /// Each volume in use, with the first guest and config key found using it.
    pub used: BTreeMap<String, (u32, String)>,
    pub unused: BTreeMap<String, (u32, String)>,
    /// Guests whose configs could not all be read: their volumes are never orphans.
    pub unreadable: BTreeSet<u32>,
}

/// The volume ids a config value references: the volume itself, and for a linked clone also
/// its base (`base-100-disk-0/vm-1011-disk-0` → both).
pub fn volumes_of(value: &str) -> Vec<String> {
    let volume = value.split(',').next().unwrap_or("").trim();
    let Some((storage, rest)) = volume.split_once(':') else {
        return vec![];
    };
    if rest.is_empty() || rest == "cloudinit" {
        return vec![];
    }
    let parts: Vec<&str> = rest.split('/').collect();
    match parts
        .iter()
        .position(|p| p.starts_with("base-"))
        .filter(|i| i + 1 < parts.len())
    {
        // PVE lists a linked clone's image under its full name (`100/base-100-disk-0.qcow2/
        // 1011/vm-1011-disk-0.qcow2` on a directory storage) or its own (`vm-1011-disk-0` on
        // LVM-thin): all three names are in use.
        Some(i) => vec![
            volume.to_string(),
            format!("{storage}:{}", parts[..=i].join("/")),
            format!("{storage}:{}", parts[i + 1..].join("/")),
        ],
        None => vec![volume.to_string()],
    }
}

/// Config keys that hold a guest's volumes (`unusedN` separately).
pub fn is_volume_key(key: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "ide", "sata", "scsi", "virtio", "efidisk", "tpmstate", "mp", "rootfs",
    ];
    key == "vmstate"
        || PREFIXES.iter().any(|p| {
            key.strip_prefix(p).is_some_and(|n| {
                n.bytes().all(|b| b.is_ascii_digit()) && (*p == "rootfs") == n.is_empty()
            })
        })
}

impl References {
    /// Adds one config (or snapshot config) of guest `vmid`.
    pub fn add(&mut self, vmid: u32, config: &Config) {
        for (key, value) in config {
            let Some(text) = value.as_str() else { continue };
            if key.starts_with("unused") {
                for v in volumes_of(text) {
                    self.unused.insert(v, (vmid, key.clone()));
                }
            } else if is_volume_key(key) {
                for v in volumes_of(text) {
                    self.used.entry(v).or_insert_with(|| (vmid, key.clone()));
                }
            }
        }
    }
}

/// The file name of a base volume (`100/base-100-disk-0.qcow2` → `base-100-disk-0.qcow2`,
/// `base-100-disk-0` → itself); `None` for any other volume, a linked clone's included.
pub fn base_name(volid: &str) -> Option<&str> {
    let volname = volid.split_once(':').map_or(volid, |(_, v)| v);
    volname
        .rsplit('/')
        .next()
        .filter(|last| last.starts_with("base-"))
}

/// Base volumes (by file name) that volumes of a listing name as their parent: in the volume
/// id (`base-100-disk-0/vm-1011-disk-0`, `100/base-100-disk-0.qcow2/1011/…`) or the `parent`
/// field (`../100/base-100-disk-0.qcow2`; `…/base-100-disk-0@__base__` on block storages).
/// Each row is its volume id and parent.
pub fn named_bases<'r>(rows: impl Iterator<Item = (&'r str, Option<&'r str>)>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (volid, parent) in rows {
        let volname = volid.split_once(':').map_or("", |(_, v)| v);
        let parts: Vec<&str> = volname.split('/').collect();
        if let Some((_, before_last)) = parts.split_last() {
            out.extend(
                before_last
                    .iter()
                    .filter(|p| p.starts_with("base-"))
                    .map(|p| (*p).to_string()),
            );
        }
        if let Some(parent) = parent {
            out.extend(
                parent
                    .split(['/', '@'])
                    .filter(|p| p.starts_with("base-"))
                    .map(str::to_string),
            );
        }
    }
    out
}

/// Whether a listing of this storage type shows every linked clone with its base: file
/// storages do (PVE reads each qcow2's backing file and names the base in the volume id).
/// LVM-thin does not (PVE keeps no record of a thin clone's origin in its volume ids), and
/// for the other block storages we do not rely on it.
pub fn listing_shows_clones(plugin: &str) -> bool {
    matches!(plugin, "dir" | "nfs" | "cifs" | "glusterfs")
}

/// An owner VMID with volumes on the scanned storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub exists: bool,
    /// Volumes listed under it (a local storage once per node).
    pub volumes: usize,
}

/// Every owner of the listed volumes, by VMID (volumes without an owner are never orphans:
/// nothing can say whether a config uses them short of reading every config).
pub fn owners(listings: &[Listing], existing: &BTreeSet<u32>) -> BTreeMap<u32, Owner> {
    let mut out: BTreeMap<u32, Owner> = BTreeMap::new();
    for vmid in listings
        .iter()
        .flat_map(|l| &l.items)
        .filter_map(|i| i.vmid)
    {
        out.entry(vmid)
            .or_insert(Owner {
                exists: existing.contains(&vmid),
                volumes: 0,
            })
            .volumes += 1;
    }
    out
}

/// One page of owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePlan {
    /// Ascending.
    pub owners: Vec<u32>,
    pub next: Option<u32>,
}

/// Page `page` (from 1) of `owners` in VMID order: at most [`OWNERS_PAGE`] owners and at most
/// [`MISSING_VOLUMES_PAGE`] volumes of owners that do not exist (an owner is never split, so
/// one with more volumes than that has a page to itself). Pages depend on the listings only,
/// so every call draws the same boundaries and the pages hold every owner exactly once.
pub fn plan_page(owners: &BTreeMap<u32, Owner>, page: u32) -> PagePlan {
    let mut number = 1u32;
    let mut current: Vec<u32> = Vec::new();
    let mut missing = 0usize;
    for (vmid, o) in owners {
        let weight = if o.exists { 0 } else { o.volumes };
        if !current.is_empty()
            && (current.len() >= OWNERS_PAGE || missing + weight > MISSING_VOLUMES_PAGE)
        {
            if number == page {
                return PagePlan {
                    owners: current,
                    next: Some(page + 1),
                };
            }
            number += 1;
            current.clear();
            missing = 0;
        }
        current.push(*vmid);
        missing += weight;
    }
    PagePlan {
        owners: if number == page { current } else { vec![] },
        next: None,
    }
}

/// What one volume is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Orphan {
        reason: OrphanReason,
        detail: String,
        /// For an `unusedN` disk: its owner and the config key.
        unused: Option<(u32, String)>,
    },
    /// A config or snapshot uses it: this guest's, as this key.
    Referenced { by: u32, key: String },
    /// Its owner's configs could not all be read.
    Unreadable(u32),
    /// A base volume a listed linked clone names.
    BaseInUse,
    /// A base volume nothing read references, on a storage whose listing may not show its
    /// linked clones.
    BaseUnsure,
}

/// Decides one listed volume from its owner's configs (`refs`) and its listing: `named` are
/// the listing's [`named_bases`], `shows_clones` its [`listing_shows_clones`]. `None` for a
/// volume without an owner.
pub fn classify(
    item: &Volume,
    existing: &BTreeSet<u32>,
    refs: &References,
    named: &BTreeSet<String>,
    shows_clones: bool,
) -> Option<Verdict> {
    let vmid = item.vmid?;
    if refs.unreadable.contains(&vmid) {
        return Some(Verdict::Unreadable(vmid));
    }
    if let Some((by, key)) = refs.used.get(&item.volid) {
        return Some(Verdict::Referenced {
            by: *by,
            key: key.clone(),
        });
    }
    let unused = refs.unused.get(&item.volid);
    let (reason, detail) = match unused {
        _ if !existing.contains(&vmid) => (
            OrphanReason::OwnerMissing,
            format!("vm {vmid} does not exist"),
        ),
        Some((owner, key)) => (
            OrphanReason::Unused,
            format!("vm {owner} lists it as {key} (detached)"),
        ),
        None => (
            OrphanReason::Unreferenced,
            format!("vm {vmid} exists but no config or snapshot of it references this volume"),
        ),
    };
    if let Some(base) = base_name(&item.volid) {
        if named.contains(base) {
            return Some(Verdict::BaseInUse);
        }
        if !shows_clones {
            return Some(Verdict::BaseUnsure);
        }
    }
    Some(Verdict::Orphan {
        reason,
        detail,
        unused: unused.cloned().filter(|_| reason == OrphanReason::Unused),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(volid: &str, vmid: u32) -> Volume {
        Volume {
            volid: volid.into(),
            vmid: Some(vmid),
            size: 1,
            format: None,
        }
    }

    #[test]
    fn config_values_name_their_volumes_and_linked_clone_bases() {
        assert_eq!(
            volumes_of("local-lvm:vm-101-disk-0,iothread=1,size=32G"),
            ["local-lvm:vm-101-disk-0"]
        );
        assert_eq!(
            volumes_of("local-lvm:base-100-disk-0/vm-1011-disk-0,size=8G"),
            [
                "local-lvm:base-100-disk-0/vm-1011-disk-0",
                "local-lvm:base-100-disk-0",
                "local-lvm:vm-1011-disk-0"
            ]
        );
        assert_eq!(
            volumes_of("nfs-shared:100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2,size=60G"),
            [
                "nfs-shared:100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2",
                "nfs-shared:100/base-100-disk-0.qcow2",
                "nfs-shared:1011/vm-1011-disk-0.qcow2"
            ]
        );
        assert!(volumes_of("none,media=cdrom").is_empty());
        assert!(is_volume_key("scsi0") && is_volume_key("rootfs") && is_volume_key("vmstate"));
        assert!(!is_volume_key("unused0") && !is_volume_key("rootfs1") && !is_volume_key("net0"));
    }

    #[test]
    fn base_volumes_are_named_by_their_clones_in_the_volid_or_the_parent() {
        assert_eq!(
            base_name("nfs:100/base-100-disk-0.qcow2"),
            Some("base-100-disk-0.qcow2")
        );
        assert_eq!(
            base_name("local-lvm:base-100-disk-0"),
            Some("base-100-disk-0")
        );
        assert_eq!(base_name("local-lvm:base-100-disk-0/vm-1011-disk-0"), None);
        assert_eq!(base_name("nfs:1011/vm-1011-disk-0.qcow2"), None);
        let rows: Vec<StorageContentRow<'_>> = serde_json::from_str(
            r#"[
                {"volid": "nfs:100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2",
                 "vmid": 1011, "parent": "../100/base-100-disk-0.qcow2"},
                {"volid": "lvm:base-200-disk-0/vm-1012-disk-0", "vmid": 1012},
                {"volid": "rbd:vm-1013-disk-0", "vmid": "1013",
                 "parent": "pool/base-300-disk-0@__base__"},
                {"volid": "nfs:100/base-100-disk-1.qcow2", "vmid": 100, "format": "qcow2"}
            ]"#,
        )
        .expect("rows");
        let listing = Listing::of("n".into(), "s".into(), true, "nfs".into(), &rows);
        assert_eq!(
            listing.items[2],
            Volume {
                size: 0,
                ..item("rbd:vm-1013-disk-0", 1013)
            },
            "a row keeps its volume id, owner and size (none: 0)"
        );
        assert_eq!(listing.items[3].format.as_deref(), Some("qcow2"));
        let named = listing.bases;
        let want: BTreeSet<String> = [
            "base-100-disk-0.qcow2",
            "base-200-disk-0",
            "base-300-disk-0",
        ]
        .map(String::from)
        .into();
        assert_eq!(named, want, "a base does not name itself");
    }

    #[test]
    fn pages_hold_every_owner_once_and_bound_the_leftovers() {
        let mut owners = BTreeMap::new();
        for v in 100..220 {
            owners.insert(
                v,
                Owner {
                    exists: true,
                    volumes: 3,
                },
            );
        }
        // 30 leftovers of one deleted guest, then 25 deleted guests with one disk each
        owners.insert(
            900,
            Owner {
                exists: false,
                volumes: 30,
            },
        );
        for v in 901..926 {
            owners.insert(
                v,
                Owner {
                    exists: false,
                    volumes: 1,
                },
            );
        }
        let mut seen = Vec::new();
        let mut page = Some(1);
        while let Some(p) = page {
            let plan = plan_page(&owners, p);
            assert!(!plan.owners.is_empty(), "page {p} is empty");
            assert!(plan.owners.len() <= OWNERS_PAGE);
            let missing: usize = plan
                .owners
                .iter()
                .filter(|v| !owners[v].exists)
                .map(|v| owners[v].volumes)
                .sum();
            assert!(
                missing <= MISSING_VOLUMES_PAGE || plan.owners.len() == 1,
                "page {p}: {plan:?}"
            );
            seen.extend(plan.owners);
            page = plan.next;
        }
        assert_eq!(seen, owners.keys().copied().collect::<Vec<_>>());
        assert_eq!(plan_page(&owners, 1).owners, (100..150).collect::<Vec<_>>());
        assert_eq!(
            plan_page(&owners, 4).owners,
            vec![900],
            "one big owner alone"
        );
        assert_eq!(
            plan_page(&owners, 99),
            PagePlan {
                owners: vec![],
                next: None
            }
        );
        assert_eq!(
            plan_page(&BTreeMap::new(), 1),
            PagePlan {
                owners: vec![],
                next: None
            }
        );
    }

    #[test]
    fn verdicts_follow_the_owner_configs_and_keep_bases_in_doubt() {
        let existing: BTreeSet<u32> = [100, 1004, 1005, 1011].into();
        let mut refs = References::default();
        let cfg = |pairs: &[(&str, &str)]| -> Config {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), serde_json::json!(v)))
                .collect()
        };
        refs.add(
            1011,
            &cfg(&[(
                "scsi0",
                "nfs:100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2,size=8G",
            )]),
        );
        refs.add(1005, &cfg(&[("unused0", "nfs:1005/vm-1005-disk-2.qcow2")]));
        refs.unreadable.insert(1004);
        let none = BTreeSet::new();
        let verdict = |volid: &str, vmid: u32, named: &BTreeSet<String>, shows: bool| {
            classify(&item(volid, vmid), &existing, &refs, named, shows).expect("owned")
        };
        assert_eq!(
            verdict(
                "nfs:100/base-100-disk-0.qcow2/1011/vm-1011-disk-0.qcow2",
                1011,
                &none,
                true
            ),
            Verdict::Referenced {
                by: 1011,
                key: "scsi0".into()
            }
        );
        assert_eq!(
            verdict("lvm:vm-1004-disk-5", 1004, &none, true),
            Verdict::Unreadable(1004)
        );
        match verdict("nfs:1005/vm-1005-disk-2.qcow2", 1005, &none, true) {
            Verdict::Orphan {
                reason: OrphanReason::Unused,
                unused: Some((1005, key)),
                ..
            } => assert_eq!(key, "unused0"),
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            verdict("lvm:vm-1099-disk-0", 1099, &none, false),
            Verdict::Orphan {
                reason: OrphanReason::OwnerMissing,
                unused: None,
                ..
            }
        ));
        assert!(matches!(
            verdict("nfs:1011/vm-1011-disk-7.qcow2", 1011, &none, true),
            Verdict::Orphan {
                reason: OrphanReason::Unreferenced,
                ..
            }
        ));
        // a template's base volume: its clone's listing names it, or the storage may hide it
        let named: BTreeSet<String> = ["base-960-disk-0.qcow2".to_string()].into();
        assert_eq!(
            verdict("nfs:960/base-960-disk-0.qcow2", 960, &named, true),
            Verdict::BaseInUse
        );
        assert_eq!(
            verdict("lvm:base-970-disk-0", 970, &none, false),
            Verdict::BaseUnsure
        );
        assert!(matches!(
            verdict("nfs:980/base-980-disk-0.qcow2", 980, &none, true),
            Verdict::Orphan {
                reason: OrphanReason::OwnerMissing,
                ..
            }
        ));
        let ownerless = Volume {
            vmid: None,
            ..item("nfs:odd.raw", 0)
        };
        assert_eq!(classify(&ownerless, &existing, &refs, &none, true), None);
    }
}

//! The guests of the state, with what the cluster-wide listings derive from each one (its
//! `/cluster/resources` row, its share of the nodes' and storages' usage, its volumes in the
//! storages' content listings) kept until it changes. At 10,000 guests deriving all of them
//! costs most of a listing rendered after a write, which changes one or a few guests.
//!
//! Reads see the map itself (`Deref`); the only ways to change a guest are
//! [`Guests::get_mut`], [`Guests::insert`] and [`Guests::remove`], and each drops what was
//! derived from that guest. So what is kept is always what deriving afresh would give: the
//! type system, not every write handler, keeps it current.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::state::{GuestUsage, Vm};

#[derive(Default)]
pub struct Guests {
    map: BTreeMap<u32, Vm>,
    derived: Mutex<BTreeMap<u32, Derived>>,
    /// Each node's guests in vmid order, built when first needed after a change (a guest
    /// written may have moved): the per-node listings (64 nodes' storage contents, each
    /// node's `qemu`) then do not each walk all 10,000 guests.
    by_node: Mutex<Option<Arc<ByNode>>>,
}

type ByNode = BTreeMap<String, Vec<u32>>;

/// What is derived from one guest, each part when first needed.
#[derive(Default)]
pub struct Derived {
    pub usage: Option<GuestUsage>,
    /// Its `/cluster/resources` row (see `api/cluster.rs`), which also depends on things
    /// outside the guest: the row keeps them, to be compared before it is used again.
    pub row: Option<super::api::cluster::CachedRow>,
    /// Its volumes as storage content listings show them (see `api/storage/content.rs`).
    pub volumes: Option<Arc<[super::api::storage::content::GuestVolume]>>,
}

impl Guests {
    /// The guest for writing: what was derived from it is dropped.
    pub fn get_mut(&mut self, vmid: &u32) -> Option<&mut Vm> {
        self.forget(*vmid);
        self.map.get_mut(vmid)
    }

    pub fn insert(&mut self, vmid: u32, vm: Vm) -> Option<Vm> {
        self.forget(vmid);
        self.map.insert(vmid, vm)
    }

    pub fn remove(&mut self, vmid: &u32) -> Option<Vm> {
        self.forget(*vmid);
        self.map.remove(vmid)
    }

    fn forget(&mut self, vmid: u32) {
        self.derived
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&vmid);
        *self.by_node.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The guests on `node`, in vmid order.
    pub fn on_node<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a Vm> + 'a {
        let vmids = self.node_index().get(node).cloned().unwrap_or_default();
        vmids.into_iter().filter_map(|v| self.map.get(&v))
    }

    /// Each node's guests, built when first needed after a change.
    fn node_index(&self) -> Arc<ByNode> {
        let mut kept = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(kept.get_or_insert_with(|| {
            let mut by: ByNode = BTreeMap::new();
            for (vmid, vm) in &self.map {
                match by.get_mut(vm.node.as_str()) {
                    Some(v) => v.push(*vmid),
                    None => {
                        by.insert(vm.node.clone(), vec![*vmid]);
                    }
                }
            }
            Arc::new(by)
        }))
    }

    /// [`Guests::each_derived`] for the guests on `node` alone.
    pub fn each_derived_on<E>(
        &self,
        node: &str,
        mut f: impl FnMut(&Vm, &mut Derived) -> Result<(), E>,
    ) -> Result<(), E> {
        let index = self.node_index();
        let mut derived = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        for vmid in index.get(node).into_iter().flatten() {
            if let Some(vm) = self.map.get(vmid) {
                f(vm, derived.entry(*vmid).or_default())?;
            }
        }
        Ok(())
    }

    /// Calls `f` with each guest, in vmid order, and what is derived from it so far, to use
    /// and fill in (one pass at a time). Keep nothing in a [`Derived`] that depends on more
    /// than its guest without keeping that too, to compare.
    pub fn each_derived<E>(
        &self,
        mut f: impl FnMut(&Vm, &mut Derived) -> Result<(), E>,
    ) -> Result<(), E> {
        // a panicking holder replaced no entry half-way (each part is assigned whole)
        let mut derived = self.derived.lock().unwrap_or_else(|e| e.into_inner());
        // both maps are in vmid order: one walk finds the guests without an entry, another
        // pairs each guest with its entry (no lookup per guest)
        let missing: Vec<u32> = {
            let mut have = derived.keys().peekable();
            self.map
                .keys()
                .filter(|&&vmid| {
                    while have.next_if(|&&h| h < vmid).is_some() {}
                    have.next_if(|&&h| h == vmid).is_none()
                })
                .copied()
                .collect()
        };
        for vmid in missing {
            derived.insert(vmid, Derived::default());
        }
        let mut entries = derived.iter_mut();
        for (vmid, vm) in &self.map {
            match entries.find(|(k, _)| *k == vmid) {
                Some((_, d)) => f(vm, d)?,
                // every guest has an entry by now
                None => f(vm, &mut Derived::default())?,
            }
        }
        Ok(())
    }
}

impl From<BTreeMap<u32, Vm>> for Guests {
    fn from(map: BTreeMap<u32, Vm>) -> Guests {
        Guests {
            map,
            derived: Mutex::default(),
            by_node: Mutex::default(),
        }
    }
}

impl std::ops::Deref for Guests {
    type Target = BTreeMap<u32, Vm>;
    fn deref(&self) -> &BTreeMap<u32, Vm> {
        &self.map
    }
}

impl<'a> IntoIterator for &'a Guests {
    type Item = (&'a u32, &'a Vm);
    type IntoIter = std::collections::btree_map::Iter<'a, u32, Vm>;
    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

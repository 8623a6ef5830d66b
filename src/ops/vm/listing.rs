//! `vm_list` pages without re-reading the cluster for each one.
//!
//! Page 1 always reads `/cluster/resources` afresh and keeps the filtered, sorted result; the
//! following pages of the same filter are cut from it while it is younger than [`TTL`] and no
//! write has gone through this server's client since ([`crate::pve::Client::write_generation`]).
//! So walking every page costs one listing, and the pages are one consistent view: each guest
//! on exactly one page, even while guests change. Any other case reads afresh.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::inventory::{VmListArgs, VmSummary};

/// How long a listing serves later pages: a conversation's turns are seconds to a minute
/// apart.
pub const TTL: Duration = Duration::from_secs(120);

/// Listings kept (one per filter, the most recent ones).
const KEEP: usize = 4;

struct Entry {
    key: String,
    at: Instant,
    generation: u64,
    vms: Arc<Vec<VmSummary>>,
}

/// The recent filtered listings of `vm_list`.
#[derive(Default)]
pub struct ListingCache {
    entries: Mutex<Vec<Entry>>,
}

impl ListingCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The listing for this filter, when still valid.
    pub(crate) fn get(&self, key: &str, generation: u64) -> Option<Arc<Vec<VmSummary>>> {
        let mut entries = self.lock();
        entries.retain(|e| e.at.elapsed() < TTL && e.generation == generation);
        entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| Arc::clone(&e.vms))
    }

    pub(crate) fn put(&self, key: String, generation: u64, vms: Arc<Vec<VmSummary>>) {
        let mut entries = self.lock();
        entries.retain(|e| e.key != key);
        if entries.len() >= KEEP {
            entries.remove(0);
        }
        entries.push(Entry {
            key,
            at: Instant::now(),
            generation,
            vms,
        });
    }
}

/// The filter part of the arguments (everything but the page), as a cache key.
pub(crate) fn key(args: &VmListArgs) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}",
        args.tag,
        args.tags,
        args.tags_match,
        args.vmids,
        args.node,
        args.status,
        args.name,
        args.include_templates
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_or_another_filter_misses() {
        let c = ListingCache::default();
        let a = VmListArgs::default();
        let b = VmListArgs {
            node: Some("pve01".into()),
            ..VmListArgs::default()
        };
        let paged = VmListArgs {
            page: Some(3),
            ..VmListArgs::default()
        };
        assert_eq!(key(&a), key(&paged), "the page is not part of the filter");
        c.put(key(&a), 7, Arc::new(vec![]));
        assert!(c.get(&key(&a), 7).is_some());
        assert!(c.get(&key(&b), 7).is_none());
        assert!(c.get(&key(&a), 8).is_none(), "a write since invalidates");
        assert!(c.get(&key(&a), 7).is_none(), "and the entry is gone");
    }
}

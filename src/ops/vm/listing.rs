//! `vm_list` pages without re-reading the cluster for each one.
//!
//! Page 1 always reads `/cluster/resources` afresh and keeps the filtered, sorted result; the
//! following pages of the same filter are cut from it while it is younger than [`TTL`] and no
//! write has gone through this server's client since ([`crate::pve::Client::write_generation`]).
//! So walking every page costs one listing, and the pages are one consistent view: each guest
//! on exactly one page, even while guests change. Any other case reads afresh.
//!
//! A listing is kept compact ([`Kept`]): at 10,000 guests the summaries themselves are some
//! 4 MB of small allocations, the kept form about a fifth of that.

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
    vms: Arc<Kept>,
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
    pub(crate) fn get(&self, key: &str, generation: u64) -> Option<Arc<Kept>> {
        let mut entries = self.lock();
        entries.retain(|e| e.at.elapsed() < TTL && e.generation == generation);
        entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| Arc::clone(&e.vms))
    }

    pub(crate) fn put(&self, key: String, generation: u64, vms: Arc<Kept>) {
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

/// A span of [`Kept::text`].
#[derive(Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// One kept guest: [`VmSummary`]'s numbers, its recurring words (node, type, status, lock) as
/// indices into [`Kept::words`], its name and tags as spans of [`Kept::text`].
struct Row {
    vmid: u32,
    node: u16,
    kind: u16,
    status: u16,
    /// Index + 1, 0 for none.
    lock: u16,
    template: bool,
    name: Span,
    /// `tags.start` indexes [`Kept::tags`], `tags.len` counts them.
    tags: Span,
    vcpus: u64,
    memory_mib: u64,
    disk_gib: f64,
    uptime_s: u64,
}

/// A filtered, sorted listing as kept between pages: the same summaries, without a dozen
/// small allocations each.
pub(crate) struct Kept {
    rows: Vec<Row>,
    words: Vec<String>,
    tags: Vec<Span>,
    text: String,
}

impl Kept {
    /// `None` when the listing is too large for the compact form's indices (text over 4 GiB
    /// or more than 65,535 distinct words): the caller then keeps nothing.
    pub(crate) fn new(vms: &[VmSummary]) -> Option<Kept> {
        let mut k = Kept {
            rows: Vec::with_capacity(vms.len()),
            words: Vec::new(),
            tags: Vec::new(),
            text: String::new(),
        };
        let mut seen = std::collections::HashMap::new();
        let mut word = |k: &mut Kept, w: &str| -> Option<u16> {
            if let Some(&i) = seen.get(w) {
                return Some(i);
            }
            let i = u16::try_from(k.words.len()).ok()?;
            k.words.push(w.to_owned());
            seen.insert(w.to_owned(), i);
            Some(i)
        };
        for v in vms {
            let tags_start = u32::try_from(k.tags.len()).ok()?;
            for t in &v.tags {
                let span = k.span(t)?;
                k.tags.push(span);
            }
            let row = Row {
                vmid: v.vmid,
                node: word(&mut k, &v.node)?,
                kind: word(&mut k, &v.kind)?,
                status: word(&mut k, &v.status)?,
                lock: match &v.lock {
                    Some(l) => word(&mut k, l)?.checked_add(1)?,
                    None => 0,
                },
                template: v.template,
                name: k.span(&v.name)?,
                tags: Span {
                    start: tags_start,
                    len: u32::try_from(v.tags.len()).ok()?,
                },
                vcpus: v.vcpus,
                memory_mib: v.memory_mib,
                disk_gib: v.disk_gib,
                uptime_s: v.uptime_s,
            };
            k.rows.push(row);
        }
        k.rows.shrink_to_fit();
        k.tags.shrink_to_fit();
        k.text.shrink_to_fit();
        Some(k)
    }

    fn span(&mut self, s: &str) -> Option<Span> {
        let start = u32::try_from(self.text.len()).ok()?;
        let len = u32::try_from(s.len()).ok()?;
        start.checked_add(len)?;
        self.text.push_str(s);
        Some(Span { start, len })
    }

    fn str(&self, s: Span) -> &str {
        let start = s.start as usize;
        self.text
            .get(start..start + s.len as usize)
            .unwrap_or_default()
    }

    fn word_at(&self, i: u16) -> String {
        self.words.get(usize::from(i)).cloned().unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Summaries `start..start + count` (fewer at the end).
    pub(crate) fn summaries(&self, start: usize, count: usize) -> Vec<VmSummary> {
        self.rows
            .iter()
            .skip(start)
            .take(count)
            .map(|r| {
                let first = r.tags.start as usize;
                VmSummary {
                    vmid: r.vmid,
                    name: self.str(r.name).to_owned(),
                    node: self.word_at(r.node),
                    kind: self.word_at(r.kind),
                    status: self.word_at(r.status),
                    template: r.template,
                    tags: self
                        .tags
                        .iter()
                        .skip(first)
                        .take(r.tags.len as usize)
                        .map(|t| self.str(*t).to_owned())
                        .collect(),
                    lock: r.lock.checked_sub(1).map(|i| self.word_at(i)),
                    vcpus: r.vcpus,
                    memory_mib: r.memory_mib,
                    disk_gib: r.disk_gib,
                    uptime_s: r.uptime_s,
                }
            })
            .collect()
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
        c.put(key(&a), 7, Arc::new(Kept::new(&[]).expect("empty")));
        assert!(c.get(&key(&a), 7).is_some());
        assert!(c.get(&key(&b), 7).is_none());
        assert!(c.get(&key(&a), 8).is_none(), "a write since invalidates");
        assert!(c.get(&key(&a), 7).is_none(), "and the entry is gone");
    }

    fn summary(vmid: u32, name: &str, node: &str, tags: &[&str], lock: Option<&str>) -> VmSummary {
        VmSummary {
            vmid,
            name: name.into(),
            node: node.into(),
            kind: if vmid.is_multiple_of(2) {
                "qemu"
            } else {
                "lxc"
            }
            .into(),
            status: if vmid.is_multiple_of(3) {
                "running"
            } else {
                "stopped"
            }
            .into(),
            template: vmid.is_multiple_of(5),
            tags: tags.iter().map(|t| (*t).to_string()).collect(),
            lock: lock.map(Into::into),
            vcpus: u64::from(vmid % 7),
            memory_mib: u64::from(vmid) * 3,
            disk_gib: f64::from(vmid) / 4.0,
            uptime_s: u64::from(vmid) * 11,
        }
    }

    fn json(vms: &[VmSummary]) -> String {
        serde_json::to_string(vms).expect("serialises")
    }

    #[test]
    fn kept_rows_come_back_as_they_went_in() {
        let vms = vec![
            summary(100, "web-1", "pve1", &["prod", "web"], None),
            summary(101, "", "pve2", &[], Some("backup")),
            summary(102, "db;1", "pve1", &["", "a b", "ü"], Some("migrate")),
            summary(103, "web-1", "pve3", &["prod"], Some("backup")),
        ];
        let kept = Kept::new(&vms).expect("kept");
        assert_eq!(kept.len(), 4);
        assert_eq!(json(&kept.summaries(0, 10)), json(&vms));
        assert_eq!(json(&kept.summaries(1, 2)), json(&vms[1..3]));
        assert!(kept.summaries(4, 10).is_empty());
        assert_eq!(
            kept.words.len(),
            3 + 2 + 2 + 2,
            "nodes, types, statuses, locks once each"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_listing_round_trips(
            rows in proptest::collection::vec(
                (100u32..2000, ".{0,12}", "[a-c]{1,3}", proptest::collection::vec(".{0,6}", 0..4),
                 proptest::option::of("[a-z]{1,8}")),
                0..40,
            ),
            start in 0usize..50,
            count in 0usize..50,
        ) {
            let vms: Vec<VmSummary> = rows
                .iter()
                .map(|(vmid, name, node, tags, lock)| {
                    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                    summary(*vmid, name, node, &tags, lock.as_deref())
                })
                .collect();
            let kept = Kept::new(&vms).expect("kept");
            let want: Vec<VmSummary> = vms.iter().skip(start).take(count).cloned().collect();
            proptest::prop_assert_eq!(json(&kept.summaries(start, count)), json(&want));
        }
    }
}

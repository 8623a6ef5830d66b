//! One page of a list that grows with the cluster (nodes, pools, volumes, archives, moves), so
//! an answer stays a few KB however big the cluster is. Pages start at 1; the report says the
//! total and the next page, and the pages together hold every item exactly once.

use super::Error;

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub size: u32,
}

impl Page {
    /// `page` (default 1) and `size` (default `default`, at most `max`).
    ///
    /// # Errors
    /// A page 0 (pages start at 1).
    pub fn new(
        page: Option<u32>,
        size: Option<u32>,
        default: u32,
        max: u32,
    ) -> Result<Self, Error> {
        let page = page.unwrap_or(1);
        if page == 0 {
            return Err(Error::invalid("page", "pages start at 1"));
        }
        Ok(Self {
            page,
            size: size.unwrap_or(default).clamp(1, max.max(1)),
        })
    }

    fn start(self, total: usize) -> usize {
        (u64::from(self.page - 1) * u64::from(self.size)).min(total as u64) as usize
    }

    /// The page after this one, when `total` items leave one.
    #[must_use]
    pub fn next(self, total: usize) -> Option<u32> {
        (u64::from(self.page) * u64::from(self.size) < total as u64).then_some(self.page + 1)
    }

    /// Whether item `i` (0-based, of the whole list) is on this page.
    #[must_use]
    pub fn holds(self, i: usize) -> bool {
        let start = u64::from(self.page - 1) * u64::from(self.size);
        (i as u64) >= start && (i as u64) < start + u64::from(self.size)
    }

    /// This page of `items`, with the total and the next page.
    #[must_use]
    pub fn cut<T>(self, items: Vec<T>) -> (Vec<T>, u64, Option<u32>) {
        let total = items.len();
        let start = self.start(total);
        let next = self.next(total);
        let page = items
            .into_iter()
            .skip(start)
            .take(self.size as usize)
            .collect();
        (page, total as u64, next)
    }
}

/// One page of a sorted list, gathered without holding the whole list: items arrive in any
/// order (listing by listing), only those that can still be on the page or before it are kept
/// (a bounded heap), the rest are counted. `key` orders the list and must be unique per item.
pub struct Window<K: Ord, T> {
    page: Page,
    keep: usize,
    heap: std::collections::BinaryHeap<Keyed<K, T>>,
    total: usize,
}

struct Keyed<K, T>(K, T);

impl<K: Ord, T> PartialEq for Keyed<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<K: Ord, T> Eq for Keyed<K, T> {}
impl<K: Ord, T> PartialOrd for Keyed<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, T> Ord for Keyed<K, T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl<K: Ord, T> Window<K, T> {
    #[must_use]
    pub fn new(page: Page) -> Self {
        let keep = (u64::from(page.page) * u64::from(page.size)).min(1 << 20) as usize;
        Self {
            page,
            keep,
            heap: std::collections::BinaryHeap::with_capacity(keep.min(4096) + 1),
            total: 0,
        }
    }

    /// Counts an item, keeping it (made by `make` only then) while it sorts among the first
    /// `page × size`.
    pub fn push_with(&mut self, key: K, make: impl FnOnce() -> T) {
        self.total += 1;
        if self.heap.len() < self.keep {
            self.heap.push(Keyed(key, make()));
        } else if self.heap.peek().is_some_and(|last| key < last.0) {
            self.heap.pop();
            self.heap.push(Keyed(key, make()));
        }
    }

    /// The page (in key order), the total and the next page — what [`Page::cut`] gives for
    /// the whole sorted list.
    #[must_use]
    pub fn finish(self) -> (Vec<T>, u64, Option<u32>) {
        let total = self.total;
        let kept: Vec<T> = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|k| k.1)
            .collect();
        let start = self.page.start(total).min(kept.len());
        let page = kept.into_iter().skip(start).collect();
        (page, total as u64, self.page.next(total))
    }
}

/// Keeps the first `keep` lines, the last of them saying how many more there are and where
/// they are shown (`more`); returns how many there were in all.
pub fn cap_lines(lines: &mut Vec<String>, keep: usize, more: &str) -> u64 {
    let total = lines.len();
    if total > keep {
        lines.truncate(keep.saturating_sub(1));
        lines.push(format!("{} more: {more}", total - lines.len()));
    }
    total as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<u32> = (0..23).collect();
        let mut seen = Vec::new();
        let mut page = Some(1);
        while let Some(p) = page {
            let pg = Page::new(Some(p), Some(5), 10, 50).expect("page");
            let (cut, total, next) = pg.cut(items.clone());
            assert_eq!(total, 23);
            assert!(
                cut.iter()
                    .enumerate()
                    .all(|(i, _)| pg.holds((p as usize - 1) * 5 + i))
            );
            seen.extend(cut);
            page = next;
        }
        assert_eq!(seen, items);
        assert!(Page::new(Some(0), None, 10, 50).is_err());
        let far = Page::new(Some(99), None, 10, 50).expect("page");
        assert_eq!(far.cut(items.clone()), (vec![], 23, None));
        assert_eq!(Page::new(None, Some(1000), 10, 50).expect("page").size, 50);
    }

    #[test]
    fn a_window_gives_the_page_the_whole_sorted_list_gives() {
        // 97 items in a scrambled order, sorted descending like newest-first archives
        let items: Vec<u32> = (0..97).map(|i| (i * 37) % 97).collect();
        let mut sorted = items.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        for p in [1, 2, 7, 10, 11, 50] {
            let pg = Page::new(Some(p), Some(10), 10, 50).expect("page");
            let mut w = Window::new(pg);
            for i in &items {
                w.push_with(std::cmp::Reverse(*i), || *i);
            }
            assert_eq!(w.finish(), pg.cut(sorted.clone()), "page {p}");
        }
    }
}

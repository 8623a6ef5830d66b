//! Big listings served from a template: `/cluster/resources` at 10,000 guests is a few MB
//! whose rows change only when the state does — except the numbers that grow with the clock
//! (a running guest's uptime and the traffic counters derived from it, a node's uptime). A
//! listing is rendered once per state generation (every write lock bumps it, see
//! [`crate::sim::state::Shared::lock`]) into literal text with holes where those numbers go;
//! each request fills the holes with the current time's values. So every answer is exactly what
//! rendering afresh would give at that moment, in a fraction of the time.

use std::sync::{Arc, Mutex};

/// A number of a row that depends on the time of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clocked {
    /// `uptime * mul / div` of a guest running since `started_at` (Unix time).
    Guest { started_at: i64, mul: u64, div: u64 },
    /// `uptime0 + (now - started)` of a node.
    Node { uptime0: u64, started: i64 },
}

impl Clocked {
    fn value(self, now: i64) -> u64 {
        match self {
            Clocked::Guest {
                started_at,
                mul,
                div,
            } => (now - started_at).max(0) as u64 * mul / div,
            Clocked::Node { uptime0, started } => uptime0 + (now - started).max(0) as u64,
        }
    }
}

/// Stand-ins for the clocked numbers while a row is rendered: `u64::MAX - i` for hole `i`, 20
/// digits no real field reaches, found after their key (`"uptime":`) so a string value can
/// never be mistaken for one (its quotes are escaped).
pub fn stand_in(i: usize) -> u64 {
    u64::MAX - i as u64
}

enum Piece {
    Text(std::ops::Range<usize>),
    Hole(Clocked),
}

/// A rendered listing with holes.
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// The listing at `now` (Unix seconds).
    pub fn render(&self, now: i64) -> String {
        let mut out = String::with_capacity(self.text.len() + 16 * self.pieces.len() / 2);
        for p in &self.pieces {
            match p {
                Piece::Text(r) => out.push_str(&self.text[r.clone()]),
                Piece::Hole(c) => {
                    use std::fmt::Write;
                    let _ = write!(out, "{}", c.value(now));
                }
            }
        }
        out
    }
}

/// Builds a [`Template`] row by row.
pub struct TemplateBuilder {
    text: String,
    pieces: Vec<Piece>,
    done: usize,
}

impl TemplateBuilder {
    pub fn with_capacity(n: usize) -> TemplateBuilder {
        TemplateBuilder {
            text: String::with_capacity(n),
            pieces: Vec::new(),
            done: 0,
        }
    }

    /// The text so far, to append a row to.
    pub fn text(&mut self) -> &mut String {
        &mut self.text
    }

    /// The row just appended holds the stand-ins of `holes` (by their index, after the keys
    /// given): cut it there.
    pub fn holes(&mut self, holes: &[(&str, Clocked)]) {
        let mut at = self.done;
        for (i, (key, clocked)) in holes.iter().enumerate() {
            let needle = format!("\"{key}\":{}", stand_in(i));
            let Some(found) = self.text[at..].find(&needle) else {
                continue;
            };
            let number = at + found + key.len() + 3;
            self.pieces.push(Piece::Text(self.done..number));
            self.pieces.push(Piece::Hole(*clocked));
            self.done = at + found + needle.len();
            at = self.done;
        }
    }

    pub fn finish(mut self) -> Template {
        if self.done < self.text.len() {
            self.pieces.push(Piece::Text(self.done..self.text.len()));
        }
        Template {
            text: self.text,
            pieces: self.pieces,
        }
    }
}

/// Listings kept of the current generation: one per request kind (type filter, caller, and a
/// local storage's node — a 64-node cluster's local listings must not evict each other), up to
/// this many bytes of rendered text, the oldest going first.
const KEEP_BYTES: usize = 64 << 20;
/// ... and up to this many listings.
const KEEP: usize = 512;

/// The templates of the current state generation.
#[derive(Default)]
pub struct ListingCache {
    entries: Mutex<Vec<(u64, String, Arc<Template>)>>,
}

impl ListingCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, String, Arc<Template>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listing `key` of state `generation`; never while the state is locked for writing
    /// (`writing`), which may change it without a new generation yet.
    pub fn get(&self, generation: u64, writing: bool, key: &str) -> Option<Arc<Template>> {
        if writing {
            return None;
        }
        let mut e = self.lock();
        e.retain(|(g, _, _)| *g == generation);
        e.iter()
            .find(|(_, k, _)| k == key)
            .map(|(_, _, t)| Arc::clone(t))
    }

    pub fn put(&self, generation: u64, writing: bool, key: String, t: Arc<Template>) {
        if writing {
            return;
        }
        let mut e = self.lock();
        e.retain(|(g, k, _)| *g == generation && *k != key);
        let mut bytes: usize = t.text.len() + e.iter().map(|(_, _, t)| t.text.len()).sum::<usize>();
        while !e.is_empty() && (e.len() >= KEEP || bytes > KEEP_BYTES) {
            bytes -= e.remove(0).2.text.len();
        }
        e.push((generation, key, t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_filled_with_the_time_of_the_request() {
        let mut b = TemplateBuilder::with_capacity(64);
        b.text().push('[');
        let row = format!(
            "{{\"name\":\"\\\"uptime\\\":{s0}\",\"netin\":{s0},\"uptime\":{s1},\"vmid\":1}}",
            s0 = stand_in(0),
            s1 = stand_in(1)
        );
        b.text().push_str(&row);
        let g = Clocked::Guest {
            started_at: 100,
            mul: 3,
            div: 1,
        };
        let u = Clocked::Guest {
            started_at: 100,
            mul: 1,
            div: 1,
        };
        b.holes(&[("netin", g), ("uptime", u)]);
        b.text().push(']');
        let t = b.finish();
        assert_eq!(
            t.render(110),
            format!(
                "[{{\"name\":\"\\\"uptime\\\":{}\",\"netin\":30,\"uptime\":10,\"vmid\":1}}]",
                stand_in(0)
            )
        );
        assert!(t.render(90).contains("\"netin\":0,\"uptime\":0"));
        let c = ListingCache::default();
        let t = Arc::new(t);
        c.put(1, true, "k".into(), Arc::clone(&t));
        assert!(c.get(1, false, "k").is_none(), "nothing kept while writing");
        c.put(1, false, "k".into(), t);
        assert!(
            c.get(1, true, "k").is_none(),
            "nothing served while writing"
        );
        assert!(c.get(1, false, "k").is_some());
        assert!(c.get(2, false, "k").is_none(), "a write since invalidates");
        assert!(c.get(1, false, "k").is_none());
    }

    fn listing(bytes: usize) -> Arc<Template> {
        let mut b = TemplateBuilder::with_capacity(bytes);
        b.text().push_str(&"x".repeat(bytes));
        Arc::new(b.finish())
    }

    #[test]
    fn every_nodes_listing_is_kept_within_the_byte_budget() {
        let c = ListingCache::default();
        for node in 0..64 {
            c.put(1, false, format!("content|pve{node}"), listing(64 << 10));
        }
        for node in 0..64 {
            assert!(
                c.get(1, false, &format!("content|pve{node}")).is_some(),
                "pve{node}'s listing was evicted by the other nodes'"
            );
        }
        // Past the byte budget the oldest go first, the newest stays.
        c.put(1, false, "big".into(), listing(KEEP_BYTES - (32 << 10)));
        assert!(c.get(1, false, "big").is_some());
        assert!(c.get(1, false, "content|pve0").is_none());
        assert!(c.get(1, false, "content|pve63").is_none());
        let kept: usize = c.lock().iter().map(|(_, _, t)| t.text.len()).sum();
        assert!(kept <= KEEP_BYTES, "{kept} bytes kept");
    }
}

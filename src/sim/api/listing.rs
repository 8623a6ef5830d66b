//! Big listings served from a template: `/cluster/resources` at 10,000 guests is a few MB
//! whose rows change only when the state does — except the numbers that grow with the clock
//! (a running guest's uptime and the traffic counters derived from it, a node's uptime). A
//! listing is rendered once per state generation (every write lock bumps it, see
//! [`crate::sim::state::Shared::lock`]) into literal text with holes where those numbers go;
//! each request fills the holes with the current time's values. So every answer is exactly what
//! rendering afresh would give at that moment, in a fraction of the time. A listing of a new
//! generation is made mostly of rows kept from the last (a [`Row`] per guest, see
//! `guests.rs`), shared rather than copied.

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
    /// A row cut beforehand, shared with the other listings that show it.
    Row(Arc<Row>),
}

/// A rendered listing with holes.
pub struct Template {
    text: String,
    pieces: Vec<Piece>,
    /// The text held, its own and its rows'.
    bytes: usize,
    holes: usize,
}

impl Template {
    /// The listing at `now` (Unix seconds).
    pub fn render(&self, now: i64) -> String {
        // room for the longest numbers: filling never grows the listing again
        let mut out = String::with_capacity(self.bytes + 20 * self.holes);
        for p in &self.pieces {
            match p {
                Piece::Text(r) => out.push_str(&self.text[r.clone()]),
                Piece::Hole(c) => fill(&mut out, c.value(now)),
                Piece::Row(row) => row.render(&mut out, now),
            }
        }
        out
    }
}

/// Appends `n` in decimal: what `write!(out, "{n}")` appends, two digits at a time without
/// the formatting machinery (a listing has tens of thousands of holes, filled per request).
fn fill(out: &mut String, mut n: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    // always ASCII digits
    if let Ok(s) = std::str::from_utf8(&digits[at..]) {
        out.push_str(s);
    }
}

/// Builds a [`Template`] row by row.
pub struct TemplateBuilder {
    text: String,
    pieces: Vec<Piece>,
    done: usize,
    row_bytes: usize,
    holes: usize,
}

impl TemplateBuilder {
    pub fn with_capacity(n: usize) -> TemplateBuilder {
        TemplateBuilder {
            text: String::with_capacity(n),
            pieces: Vec::new(),
            done: 0,
            row_bytes: 0,
            holes: 0,
        }
    }

    /// The text so far, to append a row to.
    pub fn text(&mut self) -> &mut String {
        &mut self.text
    }

    /// The row just appended holds the stand-ins of `holes` (by their index, after the keys
    /// given): cut it there.
    pub fn holes(&mut self, holes: &[(&str, Clocked)]) {
        for (number, clocked) in find_holes(&self.text, self.done, holes) {
            self.pieces.push(Piece::Text(self.done..number.start));
            self.pieces.push(Piece::Hole(clocked));
            self.done = number.end;
            self.holes += 1;
        }
    }

    /// Appends a row cut beforehand, shared rather than copied: rendering gives what
    /// appending its text and cutting it would.
    pub fn append(&mut self, row: &Arc<Row>) {
        self.text_so_far();
        self.row_bytes += row.text.len();
        self.holes += row.holes.len();
        self.pieces.push(Piece::Row(Arc::clone(row)));
    }

    /// Ends a piece at the text written so far.
    fn text_so_far(&mut self) {
        if self.done < self.text.len() {
            self.pieces.push(Piece::Text(self.done..self.text.len()));
            self.done = self.text.len();
        }
    }

    pub fn finish(mut self) -> Template {
        self.text_so_far();
        Template {
            bytes: self.text.len() + self.row_bytes,
            holes: self.holes,
            text: self.text,
            pieces: self.pieces,
        }
    }
}

/// Where the stand-ins of `holes` are in `text` after `from`, in order (see
/// [`TemplateBuilder::holes`]).
fn find_holes(
    text: &str,
    from: usize,
    holes: &[(&str, Clocked)],
) -> Vec<(std::ops::Range<usize>, Clocked)> {
    let mut out = Vec::new();
    let mut at = from;
    for (i, (key, clocked)) in holes.iter().enumerate() {
        let needle = format!("\"{key}\":{}", stand_in(i));
        let Some(found) = text[at..].find(&needle) else {
            continue;
        };
        let number = at + found + key.len() + 3;
        at = at + found + needle.len();
        out.push((number..at, *clocked));
    }
    out
}

/// One row of a listing with its stand-ins found, to be appended to many listings
/// ([`TemplateBuilder::append`]) without searching it again.
pub struct Row {
    text: String,
    holes: Vec<(std::ops::Range<usize>, Clocked)>,
}

impl Row {
    /// `text` holding the stand-ins of `holes` (as [`TemplateBuilder::holes`]).
    pub fn new(text: String, holes: &[(&str, Clocked)]) -> Row {
        let holes = find_holes(&text, 0, holes);
        Row { text, holes }
    }

    /// Appends the row at `now` to `out`.
    fn render(&self, out: &mut String, now: i64) {
        let mut at = 0;
        for (number, clocked) in &self.holes {
            out.push_str(&self.text[at..number.start]);
            fill(out, clocked.value(now));
            at = number.end;
        }
        out.push_str(&self.text[at..]);
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
        // (a row shared by several listings counts in each)
        let mut bytes: usize = t.bytes + e.iter().map(|(_, _, t)| t.bytes).sum::<usize>();
        while !e.is_empty() && (e.len() >= KEEP || bytes > KEEP_BYTES) {
            bytes -= e.remove(0).2.bytes;
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

    #[test]
    fn holes_are_filled_in_decimal_as_formatting_would() {
        let mut values = vec![0, 1, 9, u64::MAX, u64::MAX - 1, 6_116_040 * 9_800];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1]);
            p = next;
        }
        for n in values {
            let mut out = String::from("x");
            fill(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
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
        let kept: usize = c.lock().iter().map(|(_, _, t)| t.bytes).sum();
        assert!(kept <= KEEP_BYTES, "{kept} bytes kept");
    }
}

//! Reading a vzdump task log per guest (pve-manager `PVE/VZDump.pm`): a job can end `OK` for
//! some guests and fail for others, and only the log says which.
//!
//! - `INFO: Starting Backup of VM 100 (qemu)`
//! - `INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-qemu-100-2026_12_02-21_00_00.vma.zst'`
//! - `INFO: Finished Backup of VM 100 (00:01:02)`
//! - `ERROR: Backup of VM 101 failed - <reason>`
//! - `INFO: starting new backup job: vzdump 100 101 --storage local ... --quiet 1` (scheduled
//!   runs pass `--quiet 1`; PVE does not print the job's id)

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::LazyLock;

use memchr::memmem;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

/// [`command`] looks for the command in this many first lines.
const HEAD: usize = 5;

/// The lines of a vzdump task log that [`command`] and [`guests`] read — its first lines and
/// every line about one guest's backup — decoded from the log's `[{n, t}]` without keeping the
/// rest: a run's log holds some thirty lines per guest, mostly progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptLines(pub Vec<String>);

/// The phrases of the lines [`guests`] reads, searched for with prebuilt (SIMD) searchers: every
/// line of a log is tested, and `str::contains` sets its searcher up again for each line.
static GUEST_PHRASES: LazyLock<[memmem::Finder<'static>; 2]> = LazyLock::new(|| {
    [
        memmem::Finder::new("Backup of VM "),
        memmem::Finder::new("creating vzdump archive '"),
    ]
});

/// Whether [`guests`] reads this line.
fn about_a_guest(line: &[u8]) -> bool {
    GUEST_PHRASES.iter().any(|f| f.find(line).is_some())
}

/// The longest line [`LogScan`] keeps whole; a longer one (no vzdump line is) is cut there.
const MAX_LINE: usize = 64 * 1024;

/// [`KeptLines`] of a log file read as it is inflated ([`crate::pve::FileRead`]): whole lines
/// are searched for the phrases in bulk, a piece at a time, and only the lines holding them
/// are cut out; a line split between pieces is carried over. Each kept line is what
/// `str::lines` gives (without `\n`, or `\r\n`), bytes that are not UTF-8 replaced.
#[derive(Debug, Default)]
pub struct LogScan {
    /// The start of a line the last piece ended inside.
    carry: Vec<u8>,
    /// Lines seen, counted up to [`HEAD`].
    seen: usize,
    kept: Vec<String>,
}

impl LogScan {
    fn keep(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.kept.push(match std::str::from_utf8(line) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(line).into_owned(),
        });
    }

    /// One whole line (without its `\n`), tested on its own.
    fn line(&mut self, line: &[u8]) {
        if self.seen < HEAD || about_a_guest(line) {
            self.keep(line);
        }
        self.seen = self.seen.saturating_add(1);
    }

    fn carry(&mut self, part: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.carry.len());
        self.carry.extend_from_slice(&part[..part.len().min(room)]);
    }

    /// Whole lines, each ending in `\n`, past the first [`HEAD`]: the phrases are searched
    /// for in all of them at once.
    fn bulk(&mut self, lines: &[u8]) {
        let line_start = |at: usize| memchr::memrchr(b'\n', &lines[..at]).map_or(0, |i| i + 1);
        let mut starts: Vec<usize> = GUEST_PHRASES
            .iter()
            .flat_map(|f| f.find_iter(lines))
            .map(line_start)
            .collect();
        starts.sort_unstable();
        starts.dedup();
        for s in starts {
            let end = memchr::memchr(b'\n', &lines[s..]).map_or(lines.len(), |i| s + i);
            self.keep(&lines[s..end]);
        }
    }
}

impl crate::pve::FileRead for LogScan {
    type Out = KeptLines;

    fn feed(&mut self, mut piece: &[u8]) {
        // the line carried over and the first HEAD lines, one at a time
        while !piece.is_empty() && (!self.carry.is_empty() || self.seen < HEAD) {
            let Some(i) = memchr::memchr(b'\n', piece) else {
                self.carry(piece);
                return;
            };
            self.carry(&piece[..i]);
            let line = std::mem::take(&mut self.carry);
            self.line(&line);
            self.carry = line;
            self.carry.clear();
            piece = &piece[i + 1..];
        }
        match memchr::memrchr(b'\n', piece) {
            Some(last) => {
                self.bulk(&piece[..=last]);
                self.carry(&piece[last + 1..]);
            }
            None => self.carry(piece),
        }
    }

    fn finish(mut self) -> KeptLines {
        if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            self.line(&line);
        }
        KeptLines(self.kept)
    }
}

impl<'de> Deserialize<'de> for KeptLines {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<KeptLines, D::Error> {
        #[derive(serde::Deserialize)]
        struct Line<'a> {
            #[serde(borrow)]
            t: Cow<'a, str>,
        }
        struct Lines;
        impl<'de> Visitor<'de> for Lines {
            type Value = KeptLines;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("task log lines")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeptLines, A::Error> {
                let mut out = Vec::new();
                let mut i = 0;
                while let Some(l) = seq.next_element::<Line<'de>>()? {
                    if i < HEAD || about_a_guest(l.t.as_bytes()) {
                        out.push(l.t.into_owned());
                    }
                    i += 1;
                }
                Ok(KeptLines(out))
            }
        }
        d.deserialize_seq(Lines)
    }
}

/// What the log says about one guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestRun {
    pub started: bool,
    /// The archive's file name (`vzdump-qemu-...`), when vzdump named it.
    pub archive: Option<String>,
    pub finished: bool,
    pub error: Option<String>,
}

/// Every guest the log mentions, by vmid.
pub fn guests(lines: &[String]) -> BTreeMap<u32, GuestRun> {
    const STARTING: &str = "Starting Backup of VM ";
    const FINISHED: &str = "Finished Backup of VM ";
    const FAILED: &str = "ERROR: Backup of VM ";
    const ARCHIVE: &str = "creating vzdump archive '";
    // built once: a run at 10,000 guests keeps some 30,000 lines
    static MARKS: LazyLock<[memmem::Finder<'static>; 4]> =
        LazyLock::new(|| [STARTING, FINISHED, FAILED, ARCHIVE].map(memmem::Finder::new));
    let [starting, finished, failed, archive] = &*MARKS;
    let after = |f: &memmem::Finder<'_>, line: &'_ str| -> Option<usize> {
        f.find(line.as_bytes()).map(|i| i + f.needle().len())
    };
    let mut out: BTreeMap<u32, GuestRun> = BTreeMap::new();
    let mut current: Option<u32> = None;
    for line in lines {
        if let Some(v) = after(starting, line).and_then(|i| leading_vmid(&line[i..])) {
            out.entry(v).or_default().started = true;
            current = Some(v);
        } else if let Some(v) = after(finished, line).and_then(|i| leading_vmid(&line[i..])) {
            out.entry(v).or_default().finished = true;
        } else if let Some(i) = after(failed, line) {
            let rest = &line[i..];
            if let Some(v) = leading_vmid(rest) {
                let reason = rest
                    .split_once(" failed - ")
                    .map_or("failed", |(_, r)| r)
                    .trim()
                    .to_string();
                out.entry(v).or_default().error = Some(reason);
            }
        } else if let Some(i) = after(archive, line) {
            let path = line[i..].split('\'').next().unwrap_or("");
            if let (Some(v), Some(name)) = (current, path.rsplit('/').next()) {
                out.entry(v).or_default().archive = Some(name.to_string());
            }
        }
    }
    out
}

/// The vzdump command a task log starts with (`INFO: starting new backup job: vzdump 100 101
/// --storage local --mode snapshot --quiet 1`): what it selected and where it wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub vmids: Vec<u32>,
    pub all: bool,
    pub pool: Option<String>,
    pub storage: Option<String>,
    /// Scheduled runs pass `--quiet 1` (PVE's scheduler); hand-started ones do not.
    pub quiet: bool,
    /// Only when the log names it (PVE itself does not print `--job-id`).
    pub job_id: Option<String>,
}

/// The command of a vzdump log, if its first lines have one.
pub fn command(lines: &[String]) -> Option<Command> {
    let line = lines
        .iter()
        .take(HEAD)
        .find(|l| l.contains("starting new backup job:"))?;
    let rest = line.split_once("starting new backup job:")?.1.trim();
    let rest = rest.strip_prefix("vzdump").unwrap_or(rest);
    let words: Vec<String> = rest
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .collect();
    let mut c = Command::default();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        if let Some(opt) = w.strip_prefix("--") {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => {
                    i += 1;
                    (opt.to_string(), words.get(i).cloned())
                }
            };
            let value = value.unwrap_or_default();
            match key.as_str() {
                "all" => c.all = value == "1",
                "pool" => c.pool = Some(value),
                "storage" => c.storage = Some(value),
                "quiet" => c.quiet = value == "1",
                "job-id" => c.job_id = Some(value),
                _ => {}
            }
        } else {
            c.vmids
                .extend(w.split(',').filter_map(|v| v.parse::<u32>().ok()));
        }
        i += 1;
    }
    c.vmids.sort_unstable();
    c.vmids.dedup();
    Some(c)
}

/// The VMID `rest` starts with.
fn leading_vmid(rest: &str) -> Option<u32> {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`LogScan`] fed `text` in pieces of `piece` bytes.
    fn scan(text: &str, piece: usize) -> KeptLines {
        use crate::pve::FileRead as _;
        let mut s = LogScan::default();
        for p in text.as_bytes().chunks(piece.max(1)) {
            s.feed(p);
        }
        s.finish()
    }

    #[test]
    fn a_log_file_is_read_a_piece_at_a_time() {
        // a character split between pieces is whole again in its line, and an invalid byte
        // is replaced, as `String::from_utf8_lossy` of the whole file would
        let mut text = String::from("h1\nh2\nh3\nh4\nh5\n");
        text.push_str("INFO: Starting Backup of VM 7 (qemu) \u{e9}t\u{e9}\nprogress\n");
        for piece in [1, 3, 4, usize::MAX] {
            let kept = scan(&text, piece).0;
            assert_eq!(kept.len(), 6, "{kept:?}");
            assert!(kept[5].ends_with("\u{e9}t\u{e9}"), "{kept:?}");
        }
        let mut bytes = b"h1\nh2\nh3\nh4\nh5\nBackup of VM 8 \xff\n".to_vec();
        let mut s = LogScan::default();
        use crate::pve::FileRead as _;
        for p in bytes.chunks(2) {
            s.feed(p);
        }
        assert_eq!(s.finish().0[5], "Backup of VM 8 \u{fffd}");
        // a line longer than MAX_LINE is cut there, the lines after it are read
        bytes = b"h\n".repeat(HEAD);
        bytes.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        bytes.extend(b"\nINFO: Finished Backup of VM 9 (00:00:01)\n");
        let mut s = LogScan::default();
        for p in bytes.chunks(1000) {
            s.feed(p);
        }
        let kept = s.finish().0;
        assert_eq!(kept.len(), HEAD + 1, "the long line is no guest's");
        assert_eq!(kept[HEAD], "INFO: Finished Backup of VM 9 (00:00:01)");
        let mut long = b"Backup of VM 9 ".to_vec();
        long.extend(std::iter::repeat_n(b'y', MAX_LINE * 2));
        let mut s = LogScan::default();
        s.feed(&b"h\n".repeat(HEAD));
        s.feed(&long[..10]);
        for p in long[10..].chunks(4096) {
            s.feed(p);
        }
        assert_eq!(s.finish().0[HEAD].len(), MAX_LINE);
    }

    #[test]
    fn a_job_with_one_guest_failed() {
        let lines: Vec<String> = [
            "INFO: starting new backup job: vzdump 1000 1001 --storage nfs-shared --mode snapshot --job-id nightly",
            "INFO: Starting Backup of VM 1000 (qemu)",
            "INFO: creating vzdump archive '/mnt/pve/nfs-shared/dump/vzdump-qemu-1000-2026_12_02-02_00_01.vma.zst'",
            "INFO: Finished Backup of VM 1000 (00:00:42)",
            "INFO: Starting Backup of VM 1001 (qemu)",
            "INFO: creating vzdump archive '/mnt/pve/nfs-shared/dump/vzdump-qemu-1001-2026_12_02-02_00_43.vma.zst'",
            "ERROR: Backup of VM 1001 failed - job failed with err -5 - Input/output error",
            "INFO: Backup job finished with errors",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let g = guests(&lines);
        assert!(g[&1000].finished && g[&1000].error.is_none());
        assert_eq!(
            g[&1000].archive.as_deref(),
            Some("vzdump-qemu-1000-2026_12_02-02_00_01.vma.zst")
        );
        assert_eq!(
            g[&1001].error.as_deref(),
            Some("job failed with err -5 - Input/output error")
        );
        let c = command(&lines).expect("a command");
        assert_eq!(c.vmids, [1000, 1001]);
        assert_eq!(c.storage.as_deref(), Some("nfs-shared"));
        assert_eq!(c.job_id.as_deref(), Some("nightly"));
        assert!(command(&lines[1..]).is_none());
        let scheduled: Vec<String> = vec![
            "INFO: starting new backup job: vzdump --all 1 --exclude 1002 --mode snapshot --notes-template '{{guestname}}' --quiet 1 --storage local".into(),
        ];
        let c = command(&scheduled).expect("a command");
        assert!(c.all && c.quiet && c.vmids.is_empty() && c.job_id.is_none());
    }

    #[test]
    fn the_kept_lines_read_the_same_as_the_whole_log() {
        let mut lines: Vec<String> = vec![
            "INFO: starting new backup job: vzdump --all 1 --quiet 1 --storage local".into(),
            "INFO: skip external VMs: 101, 102".into(),
        ];
        for v in [100u32, 103, 104] {
            lines.push(format!("INFO: Starting Backup of VM {v} (qemu)"));
            lines.push("INFO: status = running".into());
            lines.push(format!(
                "INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-qemu-{v}-2026_12_02-02_00_00.vma.zst'"
            ));
            lines.push(
                "INFO:  50% (1.0 GiB of 2.0 GiB) in 2s, read: 512.0 MiB/s, \"quoted\"".into(),
            );
            if v == 103 {
                lines.push(format!(
                    "ERROR: Backup of VM {v} failed - disk \"scsi0\" gone"
                ));
            } else {
                lines.push(format!("INFO: Finished Backup of VM {v} (00:00:04)"));
            }
        }
        lines.push("TASK ERROR: job errors".into());
        let rows: Vec<serde_json::Value> = lines
            .iter()
            .enumerate()
            .map(|(i, t)| serde_json::json!({"n": i + 1, "t": t}))
            .collect();
        let text = serde_json::to_string(&rows).expect("json");
        let kept: KeptLines = serde_json::from_str(&text).expect("decodes");
        assert!(
            kept.0.len() < lines.len(),
            "progress lines dropped: {kept:?}"
        );
        assert_eq!(guests(&kept.0), guests(&lines));
        assert_eq!(command(&kept.0), command(&lines));
        assert_eq!(
            guests(&kept.0)[&103].error.as_deref(),
            Some("disk \"scsi0\" gone")
        );
        // The file's text keeps the same lines, with `\n` or `\r\n` endings, with or
        // without a last one, however the inflated pieces fall (inside a line, inside `\r\n`,
        // one byte at a time).
        let file = lines.join("\n");
        for piece in [1, 2, 7, 64, 1000, usize::MAX] {
            assert_eq!(scan(&file, piece), kept, "pieces of {piece}");
            assert_eq!(
                scan(&(file.clone() + "\n"), piece),
                kept,
                "pieces of {piece}"
            );
            assert_eq!(scan(&lines.join("\r\n"), piece), kept, "pieces of {piece}");
        }
        let by_line: Vec<String> = file
            .lines()
            .enumerate()
            .filter(|(i, l)| *i < HEAD || about_a_guest(l.as_bytes()))
            .map(|(_, l)| l.to_owned())
            .collect();
        assert_eq!(scan(&file, 5).0, by_line);
        assert_eq!(scan("", 5).0, Vec::<String>::new());
        for piece in [1, 2, usize::MAX] {
            assert_eq!(scan("a\n\nb", piece).0, ["a", "", "b"]);
            assert_eq!(scan("\n\n", piece).0, ["", ""]);
        }
        // Unknown fields and an empty log are fine.
        let odd: KeptLines =
            serde_json::from_str(r#"[{"n":1,"t":"x","extra":true}]"#).expect("decodes");
        assert_eq!(odd.0, ["x"]);
        let none: KeptLines = serde_json::from_str("[]").expect("decodes");
        assert!(none.0.is_empty());
    }
}

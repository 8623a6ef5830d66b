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
fn about_a_guest(line: &str) -> bool {
    GUEST_PHRASES
        .iter()
        .any(|f| f.find(line.as_bytes()).is_some())
}

impl KeptLines {
    /// The kept lines of a log file's text (the log downloaded whole): the phrases are
    /// searched for in the whole text at once, and only the lines holding them are cut out.
    pub fn of_text(text: &str) -> KeptLines {
        let bytes = text.as_bytes();
        let line_start = |at: usize| memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
        let mut starts: Vec<usize> = GUEST_PHRASES
            .iter()
            .flat_map(|f| f.find_iter(bytes))
            .map(line_start)
            .collect();
        let mut at = 0;
        for _ in 0..HEAD {
            if at >= bytes.len() {
                break;
            }
            starts.push(at);
            at = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i + 1);
        }
        starts.sort_unstable();
        starts.dedup();
        KeptLines(
            starts
                .into_iter()
                .map(|s| {
                    let end = memchr::memchr(b'\n', &bytes[s..]).map_or(bytes.len(), |i| s + i);
                    // what `str::lines` gives: without the `\n`, or a `\r\n`
                    let line = &text[s..end];
                    line.strip_suffix('\r').unwrap_or(line).to_owned()
                })
                .collect(),
        )
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
                    if i < HEAD || about_a_guest(&l.t) {
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
    let mut out: BTreeMap<u32, GuestRun> = BTreeMap::new();
    let mut current: Option<u32> = None;
    for line in lines {
        if let Some(v) = after_vmid(line, "Starting Backup of VM ") {
            out.entry(v).or_default().started = true;
            current = Some(v);
        } else if let Some(v) = after_vmid(line, "Finished Backup of VM ") {
            out.entry(v).or_default().finished = true;
        } else if let Some(i) = line.find("ERROR: Backup of VM ") {
            let rest = &line[i + "ERROR: Backup of VM ".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(v) = digits.parse() {
                let reason = rest
                    .split_once(" failed - ")
                    .map_or("failed", |(_, r)| r)
                    .trim()
                    .to_string();
                out.entry(v).or_default().error = Some(reason);
            }
        } else if let Some(i) = line.find("creating vzdump archive '") {
            let path = &line[i + "creating vzdump archive '".len()..];
            let path = path.split('\'').next().unwrap_or("");
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

fn after_vmid(line: &str, marker: &str) -> Option<u32> {
    let i = line.find(marker)?;
    let digits: String = line[i + marker.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // without a last one.
        let file = lines.join("\n");
        assert_eq!(KeptLines::of_text(&file), kept);
        assert_eq!(KeptLines::of_text(&(file.clone() + "\n")), kept);
        assert_eq!(KeptLines::of_text(&lines.join("\r\n")), kept);
        let by_line: Vec<String> = file
            .lines()
            .enumerate()
            .filter(|(i, l)| *i < HEAD || about_a_guest(l))
            .map(|(_, l)| l.to_owned())
            .collect();
        assert_eq!(KeptLines::of_text(&file).0, by_line);
        assert_eq!(KeptLines::of_text("").0, Vec::<String>::new());
        assert_eq!(KeptLines::of_text("a\n\nb").0, ["a", "", "b"]);
        // Unknown fields and an empty log are fine.
        let odd: KeptLines =
            serde_json::from_str(r#"[{"n":1,"t":"x","extra":true}]"#).expect("decodes");
        assert_eq!(odd.0, ["x"]);
        let none: KeptLines = serde_json::from_str("[]").expect("decodes");
        assert!(none.0.is_empty());
    }
}

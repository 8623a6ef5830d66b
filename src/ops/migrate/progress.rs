//! Reading a migration task's log for progress: how much of what has been sent.
//!
//! qemu-server's `QemuMigrate.pm` logs the transfer as it goes, in a few shapes:
//! - live memory: `migration active, transferred 1.1 GiB of 4.0 GiB VM-state, 1.2 GiB/s`
//! - live local disks (drive-mirror): `drive-scsi0: transferred 1.0 GiB of 32.0 GiB (3.12%) in 5s`
//! - offline local disks (storage export/import through `dd`):
//!   `1073741824 bytes (1.1 GB, 1.0 GiB) copied, 10 s, 107 MB/s` — no total; the caller knows
//!   the disk's size from the plan.
//!
//! Sizes are PVE's `render_bytes` (`B`, `KiB`, `MiB`, `GiB`, `TiB`, `PiB`, one decimal or more).
//! Anything else in the log is not progress and yields `None`.

/// One transfer line.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// What is being sent: `VM-state`, a drive (`drive-scsi0`) or `disk`.
    pub what: String,
    pub done: u64,
    /// Known for memory and drive-mirror lines.
    pub total: Option<u64>,
}

impl Transfer {
    /// Percent done against `total`, or against `fallback_total` (the plan's transfer size).
    pub fn percent(&self, fallback_total: u64) -> Option<f64> {
        let total = self.total.unwrap_or(fallback_total);
        (total > 0).then(|| (self.done as f64 * 100.0 / total as f64).min(100.0))
    }
}

/// The transfer a log line reports, if it reports one.
pub fn parse_transfer(line: &str) -> Option<Transfer> {
    // Task log lines may carry a timestamp prefix ("2026-12-02 10:00:00 "): search, don't anchor.
    if let Some(i) = line.find("transferred ") {
        let rest = &line[i + "transferred ".len()..];
        let (done, rest) = size_prefix(rest)?;
        let rest = rest.trim_start().strip_prefix("of ")?;
        let (total, rest) = size_prefix(rest)?;
        let before = line[..i]
            .trim_end()
            .trim_end_matches(':')
            .trim_end_matches(',');
        let what = if rest.trim_start().starts_with("VM-state") {
            "VM-state".to_string()
        } else {
            before
                .rsplit([' ', '\t'])
                .next()
                .filter(|w| w.starts_with("drive-") || w.starts_with("mirror-"))
                .unwrap_or("disk")
                .to_string()
        };
        return Some(Transfer {
            what,
            done,
            total: Some(total),
        });
    }
    // dd: "<bytes> bytes (<si>, <iec>) copied, ..."
    let i = line.find(" bytes (")?;
    if !line[i..].contains(") copied") {
        return None;
    }
    let digits = line[..i].rsplit(' ').next()?;
    let done = digits.parse().ok()?;
    Some(Transfer {
        what: "disk".into(),
        done,
        total: None,
    })
}

/// A `render_bytes` size at the start of `s` ("1.5 GiB"), and the rest.
fn size_prefix(s: &str) -> Option<(u64, &str)> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let value: f64 = s[..end].parse().ok().filter(|v: &f64| v.is_finite())?;
    let rest = s[end..].trim_start();
    let unit_end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let mult: u64 = match &rest[..unit_end] {
        "B" | "" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "PiB" | "P" => 1 << 50,
        _ => return None,
    };
    Some(((value * mult as f64).round() as u64, &rest[unit_end..]))
}

/// `1.5 GiB` in PVE's style.
pub fn render_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn memory_mirror_and_dd_lines() {
        let t = parse_transfer(
            "2026-12-02 10:00:03 migration active, transferred 1.0 GiB of 4.0 GiB VM-state, 1.2 GiB/s",
        )
        .expect("memory line");
        assert_eq!(
            (t.what.as_str(), t.done, t.total),
            ("VM-state", GIB, Some(4 * GIB))
        );
        assert_eq!(t.percent(0), Some(25.0));

        let t = parse_transfer("drive-scsi0: transferred 8.0 GiB of 32.0 GiB (25.00%) in 5s")
            .expect("mirror line");
        assert_eq!(
            (t.what.as_str(), t.done, t.total),
            ("drive-scsi0", 8 * GIB, Some(32 * GIB))
        );

        let t = parse_transfer("1073741824 bytes (1.1 GB, 1.0 GiB) copied, 10 s, 107 MB/s")
            .expect("dd line");
        assert_eq!((t.done, t.total), (GIB, None));
        assert_eq!(t.percent(4 * GIB), Some(25.0));
    }

    #[test]
    fn other_lines_and_garbage_are_not_progress() {
        for line in [
            "starting migration of VM 101 to node 'pve02' (10.0.0.2)",
            "migration finished successfully (duration 00:00:05)",
            "transferred lots of things",
            "transferred 1.0 XiB of 2.0 GiB",
            "x bytes (1 GB) copied",
            "",
        ] {
            assert_eq!(parse_transfer(line), None, "{line}");
        }
    }

    #[test]
    fn render_bytes_like_pve() {
        assert_eq!(render_bytes(512), "512 B");
        assert_eq!(render_bytes(3 * GIB / 2), "1.5 GiB");
    }
}

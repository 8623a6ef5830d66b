//! Disk sizes as PVE writes them, what a size request means against the current size, and
//! which disk is the boot disk; pure.

use crate::pve::{DiskEntry, QemuConfig};

use crate::ops::Error;
use crate::ops::error::quote;

/// Bytes of a PVE size (`32G`, `528K`, `1.5T`, a bare number is bytes); `None` when malformed.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        'T' | 't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    Some((v * mult as f64).round() as u64)
}

/// Human size in PVE's style (`34G`, `512M`).
pub fn format_size(bytes: u64) -> String {
    for (unit, m) in [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ] {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    let g = bytes as f64 / (1u64 << 30) as f64;
    format!("{g:.2}G")
}

/// What a disk-size request means against the current size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskChange {
    /// Grow to this many bytes; the string is what PVE receives.
    Grow { to: u64, wire: String },
    /// Already that size.
    Same,
}

/// Plans a disk size change; pure. `+N` grows by N, a bare size is absolute.
///
/// # Errors
/// A malformed size, or a shrink (PVE cannot shrink disks; refused before any call).
pub fn plan_disk_change(current: u64, requested: &str, key: &str) -> Result<DiskChange, Error> {
    let r = requested.trim();
    let (relative, body) = match r.strip_prefix('+') {
        Some(b) => (true, b),
        None => (false, r),
    };
    let n = parse_size(body).filter(|n| *n > 0).ok_or_else(|| {
        Error::invalid(
            "disk",
            format!(
                "'{}' is not a size: write +10G to grow by 10 GiB or 50G for an absolute size",
                quote(requested)
            ),
        )
    })?;
    let to = if relative {
        current.saturating_add(n)
    } else {
        n
    };
    if to < current {
        return Err(Error::refused(format!(
            "{key} is {} and cannot shrink to {}: PVE does not shrink disks. Ask for at least {}, or grow with +N",
            format_size(current),
            format_size(to),
            format_size(current)
        )));
    }
    if to == current {
        return Ok(DiskChange::Same);
    }
    let wire = if relative {
        format!("+{}", body.to_uppercase())
    } else {
        body.to_uppercase()
    };
    Ok(DiskChange::Grow { to, wire })
}

/// The boot disk: first disk of `boot: order=`, else the first non-cdrom scsi/virtio/sata/ide.
pub fn boot_disk(config: &QemuConfig) -> Option<DiskEntry> {
    let disks: Vec<DiskEntry> = config
        .disks()
        .into_iter()
        .filter(|d| !d.is_cdrom && !d.is_unused && !d.volume.contains("cloudinit"))
        .collect();
    let order = config.get_str("boot").and_then(|b| {
        b.split(',')
            .find_map(|p| p.strip_prefix("order=").map(str::to_string))
    });
    if let Some(order) = order {
        for key in order.split(';') {
            if let Some(d) = disks.iter().find(|d| d.key == key) {
                return Some(d.clone());
            }
        }
    }
    ["scsi", "virtio", "sata", "ide"]
        .iter()
        .find_map(|p| disks.iter().find(|d| d.key.starts_with(p)).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32G"), Some(32 << 30));
        assert_eq!(parse_size("528K"), Some(528 << 10));
        assert_eq!(parse_size("1.5T"), Some(3 << 39));
        assert_eq!(parse_size("x"), None);
        assert_eq!(format_size(34 << 30), "34G");
    }

    #[test]
    fn disk_plans() {
        let g = 1u64 << 30;
        assert_eq!(
            plan_disk_change(32 * g, "+10G", "scsi0").expect("grow"),
            DiskChange::Grow {
                to: 42 * g,
                wire: "+10G".into()
            }
        );
        assert_eq!(
            plan_disk_change(32 * g, "50g", "scsi0").expect("abs"),
            DiskChange::Grow {
                to: 50 * g,
                wire: "50G".into()
            }
        );
        assert_eq!(
            plan_disk_change(32 * g, "32G", "scsi0").expect("same"),
            DiskChange::Same
        );
        let e = plan_disk_change(32 * g, "20G", "scsi0").expect_err("shrink");
        assert!(e.to_string().contains("cannot shrink"), "{e}");
        assert!(plan_disk_change(32 * g, "+0G", "scsi0").is_err());
    }
}

//! Volume and config helpers shared by the write endpoints: disk naming as PVE's storage
//! plugins name volumes, the linked-clone feature matrix, size parsing/formatting, tags
//! (semantics item 28) and fresh MACs/UUIDs.

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::state::{GIB, MIB, State};

/// Splits a tag list on `,`, `;`, space and NUL (pve-common `ParseUtils.pm`).
pub fn split_tags(s: &str) -> Vec<String> {
    s.split([',', ';', ' ', '\0'])
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// `pve-tag`: `^(?i)[a-z0-9_][a-z0-9_\-\+\.]*$`.
pub fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))
}

/// Tags as PVE writes them with the default tag style: lowercased, deduplicated, sorted,
/// `;`-joined.
pub fn normalize_tags(s: &str) -> String {
    let mut tags: Vec<String> = split_tags(s).iter().map(|t| t.to_lowercase()).collect();
    tags.sort();
    tags.dedup();
    tags.join(";")
}

/// Parses a resize `size` (`\+?\d+(\.\d+)?[KMGT]?`): whether it is relative, and bytes.
pub fn parse_resize(s: &str) -> Option<(bool, u64)> {
    let (plus, rest) = match s.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (num, mult) = match rest.chars().last()? {
        'K' => (&rest[..rest.len() - 1], 1024),
        'M' => (&rest[..rest.len() - 1], MIB),
        'G' => (&rest[..rest.len() - 1], GIB),
        'T' => (&rest[..rest.len() - 1], GIB * 1024),
        _ => (rest, 1),
    };
    let valid = !num.is_empty()
        && num
            .split_once('.')
            .map_or(num.bytes().all(|b| b.is_ascii_digit()), |(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|x| x.is_ascii_digit())
                    && b.bytes().all(|x| x.is_ascii_digit())
            });
    if !valid {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    Some((plus, (n * mult as f64) as u64))
}

/// PVE's `format_size` for config `size=`: the largest unit that divides exactly.
pub fn format_size(bytes: u64) -> String {
    const T: u64 = GIB * 1024;
    for (unit, m) in [("T", T), ("G", GIB), ("M", MIB), ("K", 1024)] {
        if bytes >= m && bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    bytes.to_string()
}

/// Whether a file-based storage type stores qcow2 images under `<vmid>/`.
pub fn is_file_storage(stype: &str) -> bool {
    matches!(
        stype,
        "dir" | "nfs" | "cifs" | "glusterfs" | "btrfs" | "cephfs"
    )
}

/// The storage 'clone' feature on the current state of a volume (PVE's
/// `volume_has_feature(clone)`): only base volumes (templates) of lvmthin, zfs(pool), rbd, or
/// qcow2 images on file storages support linked clones.
pub fn linked_clone_supported(stype: &str, volname: &str) -> bool {
    let file = volname.rsplit('/').next().unwrap_or(volname);
    if !file.starts_with("base-") {
        return false;
    }
    match stype {
        "lvmthin" | "zfspool" | "zfs" | "rbd" => true,
        t if is_file_storage(t) => file.ends_with(".qcow2"),
        _ => false,
    }
}

/// Every volname on `storage` owned by `vmid` (config, pending and loose files).
fn used_disk_numbers(st: &State, storage: &str, vmid: u32) -> Vec<u32> {
    let prefix = format!("vm-{vmid}-disk-");
    let mut out = Vec::new();
    let mut scan = |vol: &str| {
        let Some((s, name)) = vol.split(',').next().and_then(|v| v.split_once(':')) else {
            return;
        };
        if s != storage {
            return;
        }
        let file = name.rsplit('/').next().unwrap_or(name);
        if let Some(n) = file.strip_prefix(&prefix) {
            let digits: String = n.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(k) = digits.parse() {
                out.push(k);
            }
        }
    };
    for vm in st.vms.values() {
        vm.config.values().for_each(|v| scan(v));
        vm.pending.values().for_each(|v| scan(v));
        vm.snapshots
            .values()
            .flat_map(|s| s.values())
            .for_each(|v| scan(v));
    }
    st.files
        .iter()
        .chain(&st.images)
        .for_each(|f| scan(&f.volid));
    // a freed name a config still holds is not handed out again
    st.freed_volumes.iter().for_each(|v| scan(v));
    out
}

/// A fresh `vm-N-disk-K` volname on `storage` (`N/vm-N-disk-K.qcow2` on file storages);
/// `reserved` holds numbers taken in the same operation.
pub fn new_disk_name(st: &State, storage: &str, vmid: u32, reserved: &mut Vec<u32>) -> String {
    let used = used_disk_numbers(st, storage, vmid);
    let k = (0u32..)
        .find(|k| !used.contains(k) && !reserved.contains(k))
        .unwrap_or(0);
    reserved.push(k);
    let stype = st.storage(storage).map(|s| s.stype.as_str()).unwrap_or("");
    if is_file_storage(stype) {
        format!("{vmid}/vm-{vmid}-disk-{k}.qcow2")
    } else {
        format!("vm-{vmid}-disk-{k}")
    }
}

/// The volname of a linked clone of base volume `base` (as PVE's plugins name them:
/// `base-S-disk-K/vm-N-disk-J` on lvmthin/zfs/rbd, `S/base-S-disk-K.qcow2/N/vm-N-disk-J.qcow2`
/// on file storages).
pub fn linked_name(base: &str, child: &str) -> String {
    format!("{base}/{child}")
}

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn fresh_hex(seed: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Sha256::digest(format!("{seed}-{n}-{t}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new MAC in Proxmox's OUI (`BC:24:11:xx:xx:xx`).
pub fn new_mac(seed: &str) -> String {
    let h = fresh_hex(seed).to_uppercase();
    format!("BC:24:11:{}:{}:{}", &h[0..2], &h[2..4], &h[4..6])
}

/// A new random-looking (v4) UUID.
pub fn new_uuid(seed: &str) -> String {
    let h = fresh_hex(seed);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_normalise_like_pve() {
        assert_eq!(normalize_tags("Prod,web;db web\0Prod"), "db;prod;web");
        assert_eq!(normalize_tags(""), "");
        assert!(valid_tag("k8s-node_1.x+y") && !valid_tag("-x") && !valid_tag("a/b"));
        assert_eq!(split_tags(" a,,b "), vec!["a", "b"]);
    }

    #[test]
    fn resize_sizes_parse() {
        assert_eq!(parse_resize("+10G"), Some((true, 10 * GIB)));
        assert_eq!(parse_resize("32G"), Some((false, 32 * GIB)));
        assert_eq!(parse_resize("1.5G"), Some((false, GIB * 3 / 2)));
        assert_eq!(parse_resize("4096"), Some((false, 4096)));
        assert_eq!(parse_resize("+"), None);
        assert_eq!(parse_resize("1.G"), None);
        assert_eq!(parse_resize("G"), None);
        assert_eq!(format_size(32 * GIB), "32G");
        assert_eq!(format_size(528 * 1024), "528K");
        assert_eq!(format_size(GIB * 3 / 2), "1536M");
    }

    #[test]
    fn linked_clone_rules() {
        assert!(linked_clone_supported("lvmthin", "base-101-disk-0"));
        assert!(!linked_clone_supported("lvmthin", "vm-1007-disk-0"));
        assert!(linked_clone_supported("nfs", "100/base-100-disk-0.qcow2"));
        assert!(!linked_clone_supported("nfs", "100/base-100-disk-0.raw"));
        assert!(!linked_clone_supported("lvm", "base-100-disk-0"));
        assert!(linked_clone_supported("zfspool", "base-100-disk-0"));
        assert!(!linked_clone_supported("dir", "100/vm-100-disk-0.qcow2"));
    }
}

//! Turning scenario entries into live state: the qm-style config a compact guest spec expands
//! to (deterministic MACs, smbios uuid, vmgenid, disks named like PVE names them) and the
//! volume a scenario file entry describes (content type, format, owner vmid, vzdump ctime).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::scenario::{FileSpec, VmSpec};
use super::state::Volume;

fn hex_digest(input: &str) -> String {
    Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn file_volume(
    f: &FileSpec,
    storage: &str,
    volname: &str,
    started: i64,
    shared: bool,
) -> Volume {
    if let Some(image) = image_volume(f, storage, volname, started, shared) {
        return image;
    }
    let (content, rest) = volname.split_once('/').unwrap_or(("", volname));
    let format = match content {
        "iso" => "iso".to_string(),
        "vztmpl" => "tzst".to_string(),
        "snippets" => "snippet".to_string(),
        "import" => rest.rsplit('.').next().unwrap_or("raw").to_string(),
        "backup" => rest
            .split_once('.')
            .map(|(_, e)| e.to_string())
            .unwrap_or_default(),
        _ => "raw".to_string(),
    };
    // vzdump-qemu-1000-2026_11_20-02_00_03.vma.zst -> vmid 1000
    let vmid = rest
        .strip_prefix("vzdump-qemu-")
        .or_else(|| rest.strip_prefix("vzdump-lxc-"))
        .and_then(|r| r.split('-').next())
        .and_then(|v| v.parse().ok());
    let ctime = backup_ctime(rest).unwrap_or(started - 86_400 * 30);
    Volume {
        volid: f.volid.clone(),
        storage: storage.to_string(),
        node: if shared { None } else { f.node.clone() },
        content: content.to_string(),
        format,
        size: f.size,
        virtual_size: f.virtual_size,
        vmid,
        ctime,
        notes: f.notes.clone(),
        protected: f.protected,
        body: None,
    }
}

/// A guest image (`vm-N-...`/`base-N-...`, `N/vm-N-....qcow2` on file storages): content
/// `images`, owned by N, its format from the extension (`raw` without one).
fn image_volume(
    f: &FileSpec,
    storage: &str,
    volname: &str,
    started: i64,
    shared: bool,
) -> Option<Volume> {
    let file = volname.rsplit('/').next().unwrap_or(volname);
    if volname
        .split_once('/')
        .is_some_and(|(dir, _)| matches!(dir, "iso" | "vztmpl" | "snippets" | "import" | "backup"))
    {
        return None;
    }
    let rest = file
        .strip_prefix("vm-")
        .or_else(|| file.strip_prefix("base-"))?;
    let vmid: u32 = rest.split('-').next()?.parse().ok()?;
    let format = match file.rsplit_once('.') {
        Some((_, ext @ ("qcow2" | "vmdk" | "raw"))) => ext,
        _ => "raw",
    };
    Some(Volume {
        volid: f.volid.clone(),
        storage: storage.to_string(),
        node: if shared { None } else { f.node.clone() },
        content: "images".into(),
        format: format.into(),
        size: f.size,
        virtual_size: None,
        vmid: Some(vmid),
        ctime: started - 86_400 * 30,
        notes: None,
        protected: false,
        body: None,
    })
}

/// Unix time from a vzdump name's `YYYY_MM_DD-HH_MM_SS` stamp.
fn backup_ctime(name: &str) -> Option<i64> {
    let stamp = name.split('-').skip(3).take(2).collect::<Vec<_>>();
    let [date, time] = stamp.as_slice() else {
        return None;
    };
    let d: Vec<i64> = date.split('_').filter_map(|x| x.parse().ok()).collect();
    let t: Vec<i64> = time
        .split('.')
        .next()?
        .split('_')
        .filter_map(|x| x.parse().ok())
        .collect();
    let ([y, m, dd], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    Some(days_from_civil(*y, *m, *dd) * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Expands a compact guest spec into the config `qm config` would show.
pub fn expand_config(v: &VmSpec, started: i64) -> BTreeMap<String, String> {
    let h = hex_digest(&format!("sim-vm-{}", v.vmid));
    let uuid = |o: usize| {
        format!(
            "{}-{}-4{}-a{}-{}",
            &h[o..o + 8],
            &h[o + 8..o + 12],
            &h[o + 13..o + 16],
            &h[o + 17..o + 20],
            &h[o + 20..o + 32]
        )
    };
    let mac = format!("BC:24:11:{}:{}:{}", &h[40..42], &h[42..44], &h[44..46]).to_uppercase();
    let prefix = if v.template { "base" } else { "vm" };
    let disk = |n: u32| match v.storage.as_str() {
        "nfs-shared" | "local" => format!(
            "{}:{}/{prefix}-{}-disk-{n}.qcow2",
            v.storage, v.vmid, v.vmid
        ),
        _ => format!("{}:{prefix}-{}-disk-{n}", v.storage, v.vmid),
    };
    let ci = match v.storage.as_str() {
        "nfs-shared" | "local" => format!(
            "{}:{}/vm-{}-cloudinit.qcow2,media=cdrom",
            v.storage, v.vmid, v.vmid
        ),
        _ => format!("{}:vm-{}-cloudinit,media=cdrom", v.storage, v.vmid),
    };
    let mut c = BTreeMap::new();
    let mut set = |k: &str, val: String| {
        c.insert(k.to_string(), val);
    };
    set("agent", "1".into());
    set("bios", "ovmf".into());
    set("boot", "order=scsi0;net0".into());
    set("cores", v.cores.to_string());
    set("cpu", "x86-64-v2-AES".into());
    set(
        "efidisk0",
        format!("{},efitype=4m,pre-enrolled-keys=1,size=4M", disk(1)),
    );
    set("ide2", ci);
    set("ipconfig0", "ip=dhcp".into());
    set("machine", "q35".into());
    set("memory", v.memory.to_string());
    set(
        "meta",
        format!(
            "creation-qemu=9.2.0,ctime={}",
            started - 86_400 * 90 + v.vmid as i64
        ),
    );
    set("name", v.name.clone());
    set("net0", format!("virtio={mac},bridge=vmbr0,firewall=1"));
    set("numa", "0".into());
    set("ostype", "l26".into());
    set(
        "scsi0",
        format!("{},iothread=1,size={}G", disk(0), v.disk_gib),
    );
    set("scsihw", "virtio-scsi-single".into());
    set("serial0", "socket".into());
    set("smbios1", format!("uuid={}", uuid(0)));
    set("sockets", "1".into());
    set("vmgenid", uuid(16));
    if let Some(t) = &v.tags {
        set("tags", t.clone());
    }
    if let Some(l) = &v.lock {
        set("lock", l.clone());
    }
    if v.protection {
        set("protection", "1".into());
    }
    if v.template {
        set("template", "1".into());
    } else {
        set("onboot", "1".into());
    }
    for (k, val) in &v.config {
        c.insert(k.clone(), val.clone());
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_stamp_decodes() {
        assert_eq!(
            backup_ctime("vzdump-qemu-1000-2026_11_20-02_00_03.vma.zst"),
            Some(1_795_140_003)
        );
    }

    #[test]
    fn expanded_config_looks_like_qm() {
        let s = super::super::scenario::Scenario::embedded().expect("scenario");
        let tmpl = s.vms.iter().find(|v| v.vmid == 100).expect("template 100");
        let c = expand_config(tmpl, 1_800_000_000);
        assert_eq!(c.get("template").map(String::as_str), Some("1"));
        assert!(c.get("scsi0").is_some_and(|d| {
            d.starts_with("nfs-shared:100/base-100-disk-0.qcow2,iothread=1,size=4G")
        }));
        assert!(c.get("net0").is_some_and(
            |n| n.starts_with("virtio=BC:24:11:") && n.ends_with(",bridge=vmbr0,firewall=1")
        ));
        assert!(
            c.get("smbios1")
                .is_some_and(|u| u.len() == "uuid=".len() + 36)
        );
    }
}

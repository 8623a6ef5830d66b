//! Parameter specs of the write endpoints, hand-written from the schema (`endpoints.py`).

use std::sync::LazyLock;

use regex::Regex;

use crate::sim::params::{self, Param, Ty, idx, opt, req};

macro_rules! spec {
    ($($p:expr),* $(,)?) => {{
        const S: &[Param] = &[$($p),*];
        S
    }};
}

const NODE: Param = req("node", Ty::Node);
const VMID: Param = req("vmid", params::VMID);
const STR: Ty = Ty::Str { max_len: None };
const SKIPLOCK: Param = opt("skiplock", Ty::Bool);
const DIGEST: Param = opt("digest", Ty::Str { max_len: Some(40) });
const TIMEOUT: Param = opt("timeout", params::UINT);

pub static SIZE_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\+?\d+(\.\d+)?[KMGT]?$").ok());
static SERIAL_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(/dev/.+|socket)$").ok());

/// The disks `resize` and `template` accept.
pub const DISKS: &[&str] = &[
    "ide0",
    "ide1",
    "ide2",
    "ide3",
    "scsi0",
    "scsi1",
    "scsi2",
    "scsi3",
    "scsi4",
    "scsi5",
    "scsi6",
    "scsi7",
    "scsi8",
    "scsi9",
    "scsi10",
    "scsi11",
    "scsi12",
    "scsi13",
    "scsi14",
    "scsi15",
    "scsi16",
    "scsi17",
    "scsi18",
    "scsi19",
    "scsi20",
    "scsi21",
    "scsi22",
    "scsi23",
    "scsi24",
    "scsi25",
    "scsi26",
    "scsi27",
    "scsi28",
    "scsi29",
    "scsi30",
    "virtio0",
    "virtio1",
    "virtio2",
    "virtio3",
    "virtio4",
    "virtio5",
    "virtio6",
    "virtio7",
    "virtio8",
    "virtio9",
    "virtio10",
    "virtio11",
    "virtio12",
    "virtio13",
    "virtio14",
    "virtio15",
    "sata0",
    "sata1",
    "sata2",
    "sata3",
    "sata4",
    "sata5",
    "efidisk0",
    "tpmstate0",
];

pub const CLONE: &[Param] = spec![
    NODE,
    VMID,
    req("newid", params::VMID),
    opt("bwlimit", params::UINT),
    opt("description", STR),
    opt("format", Ty::Enum(&["raw", "qcow2", "vmdk"])),
    opt("full", Ty::Bool),
    opt("name", Ty::DnsName),
    opt("pool", STR),
    opt("snapname", Ty::ConfigId),
    opt("storage", Ty::StorageId),
    opt("target", Ty::Node),
];
pub const MIGRATE: &[Param] = spec![
    NODE,
    VMID,
    req("target", Ty::Node),
    opt("bwlimit", params::UINT),
    opt("force", Ty::Bool),
    opt("migration_network", Ty::Cidr),
    opt("migration_type", Ty::Enum(&["secure", "insecure"])),
    opt("online", Ty::Bool),
    opt("targetstorage", Ty::StoragePairList),
    opt("with-conntrack-state", Ty::Bool),
    opt("with-local-disks", Ty::Bool),
];
pub const TEMPLATE: &[Param] = spec![NODE, VMID, opt("disk", Ty::Enum(DISKS))];
pub const DESTROY: &[Param] = spec![
    NODE,
    VMID,
    opt("destroy-unreferenced-disks", Ty::Bool),
    opt("purge", Ty::Bool),
    SKIPLOCK,
];
pub const RESIZE: &[Param] = spec![
    NODE,
    VMID,
    req("disk", Ty::Enum(DISKS)),
    req("size", Ty::Pattern(&SIZE_RE)),
    DIGEST,
    SKIPLOCK,
];
pub const START: &[Param] = spec![
    NODE,
    VMID,
    opt("force-cpu", STR),
    opt("machine", STR),
    opt("migratedfrom", Ty::Node),
    opt("migration_network", STR),
    opt("migration_type", Ty::Enum(&["secure", "insecure"])),
    opt("nets-host-mtu", STR),
    SKIPLOCK,
    opt("stateuri", Ty::Str { max_len: Some(128) }),
    opt("targetstorage", STR),
    TIMEOUT,
    opt("with-conntrack-state", Ty::Bool),
];
pub const STOP: &[Param] = spec![
    NODE,
    VMID,
    opt("keepActive", Ty::Bool),
    opt("migratedfrom", Ty::Node),
    opt("overrule-shutdown", Ty::Bool),
    SKIPLOCK,
    TIMEOUT,
];
pub const SHUTDOWN: &[Param] = spec![
    NODE,
    VMID,
    opt("forceStop", Ty::Bool),
    opt("keepActive", Ty::Bool),
    SKIPLOCK,
    TIMEOUT,
];
pub const REBOOT: &[Param] = spec![NODE, VMID, TIMEOUT];
pub const SUSPEND: &[Param] = spec![
    NODE,
    VMID,
    SKIPLOCK,
    opt("statestorage", Ty::StorageId),
    opt("todisk", Ty::Bool),
];
pub const RESUME: &[Param] = spec![NODE, VMID, opt("nocheck", Ty::Bool), SKIPLOCK];

const POS: Ty = Ty::Int {
    min: Some(1),
    max: None,
};

/// The VM options that config writes and VM creation share, plus endpoint-specific extras.
macro_rules! vm_spec {
    ($($extra:expr),* $(,)?) => {
        spec![
            NODE,
            VMID,
            opt("agent", STR),
            opt("balloon", params::UINT),
            opt("bios", Ty::Enum(&["seabios", "ovmf"])),
            opt("boot", STR),
            opt("cicustom", STR),
            opt("cipassword", STR),
            opt("citype", Ty::Enum(&["configdrive2", "nocloud", "opennebula"])),
            opt("ciupgrade", Ty::Bool),
            opt("ciuser", STR),
            opt("cores", POS),
            opt("cpu", STR),
            opt("description", Ty::Str { max_len: Some(8192) }),
            opt("efidisk0", STR),
            opt("hookscript", STR),
            opt("hotplug", STR),
            idx("ide[n]", 3, STR),
            idx("ipconfig[n]", 31, STR),
            opt("kvm", Ty::Bool),
            opt("machine", STR),
            opt("memory", STR),
            opt("name", Ty::DnsName),
            opt("nameserver", STR),
            idx("net[n]", 31, STR),
            opt("numa", Ty::Bool),
            opt("onboot", Ty::Bool),
            opt("ostype", Ty::Enum(&[
                "other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10",
                "win11", "l24", "l26", "solaris",
            ])),
            opt("protection", Ty::Bool),
            idx("sata[n]", 5, STR),
            idx("scsi[n]", 30, STR),
            opt("scsihw", Ty::Enum(&[
                "lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi",
            ])),
            opt("searchdomain", STR),
            idx("serial[n]", 3, Ty::Pattern(&SERIAL_RE)),
            opt("sockets", POS),
            opt("sshkeys", STR),
            opt("startup", STR),
            opt("tags", Ty::TagList),
            opt("vga", STR),
            idx("virtio[n]", 15, STR),
            $($extra),*
        ]
    };
}

pub const CONFIG_POST: &[Param] = vm_spec![
    opt("delete", STR),
    DIGEST,
    opt("revert", STR),
    SKIPLOCK,
    opt(
        "background_delay",
        Ty::Int {
            min: Some(1),
            max: Some(30)
        }
    )
];
pub const CONFIG_PUT: &[Param] = vm_spec![opt("delete", STR), DIGEST, opt("revert", STR), SKIPLOCK];
/// `POST /nodes/{node}/qemu`: create, or restore with `archive` (`api::backup::restore`).
pub const CREATE: &[Param] = vm_spec![
    opt("archive", Ty::Str { max_len: Some(255) }),
    opt("bwlimit", params::UINT),
    opt("force", Ty::Bool),
    opt("live-restore", Ty::Bool),
    opt("pool", STR),
    opt("start", Ty::Bool),
    opt("storage", Ty::StorageId),
    opt("unique", Ty::Bool)
];

const CONTENT_UPLOAD: Ty = Ty::Enum(&["iso", "vztmpl", "import"]);
const CHECKSUM_ALGO: Ty = Ty::Enum(&["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]);
static URL_RE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^(?:https?://.*)$").ok());

pub const DOWNLOAD_URL: &[Param] = spec![
    NODE,
    req("storage", Ty::StorageId),
    req("url", Ty::Pattern(&URL_RE)),
    req("content", CONTENT_UPLOAD),
    req("filename", Ty::Str { max_len: Some(255) }),
    opt("checksum", STR),
    opt("checksum-algorithm", CHECKSUM_ALGO),
    opt("compression", STR),
    opt("verify-certificates", Ty::Bool),
];
static TMPFILE_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(?:/var/tmp/pveupload-[0-9a-f]+)$").ok());
pub const UPLOAD: &[Param] = spec![
    NODE,
    req("storage", Ty::StorageId),
    req("content", CONTENT_UPLOAD),
    req("filename", Ty::Str { max_len: Some(255) }),
    opt("checksum", STR),
    opt("checksum-algorithm", CHECKSUM_ALGO),
    opt("tmpfilename", Ty::Pattern(&TMPFILE_RE)),
];
pub const VOLUME_INFO: &[Param] = spec![NODE, opt("storage", Ty::StorageId), req("volume", STR)];
pub const VOLUME_DELETE: &[Param] = spec![
    NODE,
    opt("storage", Ty::StorageId),
    req("volume", STR),
    opt(
        "delay",
        Ty::Int {
            min: Some(1),
            max: Some(30)
        }
    ),
];

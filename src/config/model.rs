//! The validated configuration: every value checked, paths expanded, fingerprints decoded.
//! Built only by [`super::validate`] (or [`super::sim_config`]); consumers can rely on every
//! invariant documented here. Holds no secrets: credentials are resolved separately.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A validated `cluster-config.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file this came from (absolute when it was loaded from disk).
    pub path: PathBuf,
    pub cluster: Cluster,
    pub defaults: Defaults,
    pub vmid_ranges: VmidRanges,
    pub credentials: Credentials,
    /// Tag groups: group name -> tags (each a valid lowercase PVE tag).
    pub tags: BTreeMap<String, Vec<String>>,
    pub cloudinit: Cloudinit,
    pub api: Api,
    pub ssh: Ssh,
    pub ansible: Ansible,
    pub paths: Paths,
    pub limits: Limits,
    pub placement: Placement,
    /// JSON-lines audit log of mutating calls; `None` = no audit file.
    pub audit_log: Option<PathBuf>,
    /// Who approves destructive calls (`confirmations:` and `elicitation:`).
    pub confirmations: super::confirmations::Confirmations,
}

impl Config {
    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.cluster.nodes.iter().find(|n| n.name == name)
    }

    /// `https://HOST:PORT` of every node, in configuration order (for client failover).
    pub fn api_endpoints(&self) -> Vec<String> {
        self.cluster
            .nodes
            .iter()
            .map(|n| {
                if n.host.contains(':') {
                    format!("https://[{}]:{}", n.host, self.api.port)
                } else {
                    format!("https://{}:{}", n.host, self.api.port)
                }
            })
            .collect()
    }
}

/// `cluster:` — name and at least one node; node names unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub nodes: Vec<Node>,
}

/// One node: a valid PVE node name and a bare host name or IP address (IPv6 without brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub host: String,
    /// Overrides `ssh.port` for this node.
    pub ssh_port: Option<u16>,
}

/// `defaults:` applied to every operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// Syntactically valid PVE storage id (existence checked by `check`).
    pub storage: String,
    /// Syntactically valid bridge name (existence checked by `check`).
    pub network_bridge: String,
    pub bios: Bios,
    /// `q35`, `pc`, `pc-q35-X.Y`, `pc-i440fx-X.Y`, `virt...`.
    pub machine: String,
    pub cpu: String,
    pub scsi_controller: ScsiController,
    pub efidisk_pre_enrolled_keys: bool,
    pub guest_agent: bool,
}

/// PVE `bios`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bios {
    Seabios,
    Ovmf,
}

impl Bios {
    pub const ALL: [Bios; 2] = [Bios::Seabios, Bios::Ovmf];

    /// The value PVE expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Bios::Seabios => "seabios",
            Bios::Ovmf => "ovmf",
        }
    }
}

impl fmt::Display for Bios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// PVE `scsihw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScsiController {
    Lsi,
    Lsi53c810,
    VirtioScsiPci,
    VirtioScsiSingle,
    Megasas,
    Pvscsi,
}

impl ScsiController {
    pub const ALL: [ScsiController; 6] = [
        ScsiController::Lsi,
        ScsiController::Lsi53c810,
        ScsiController::VirtioScsiPci,
        ScsiController::VirtioScsiSingle,
        ScsiController::Megasas,
        ScsiController::Pvscsi,
    ];

    /// The value PVE expects.
    pub fn as_str(self) -> &'static str {
        match self {
            ScsiController::Lsi => "lsi",
            ScsiController::Lsi53c810 => "lsi53c810",
            ScsiController::VirtioScsiPci => "virtio-scsi-pci",
            ScsiController::VirtioScsiSingle => "virtio-scsi-single",
            ScsiController::Megasas => "megasas",
            ScsiController::Pvscsi => "pvscsi",
        }
    }
}

impl fmt::Display for ScsiController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `vmid_ranges:` — the two ranges do not overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmidRanges {
    pub templates: VmidRange,
    pub vms: VmidRange,
}

/// An inclusive VMID range with `100 <= start <= end <= 999_999_999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VmidRange {
    start: u32,
    end: u32,
}

impl VmidRange {
    /// Smallest VMID PVE accepts.
    pub const MIN: u32 = 100;
    /// Largest VMID PVE accepts.
    pub const MAX: u32 = 999_999_999;

    /// A range, or `None` unless `MIN <= start <= end <= MAX`.
    pub const fn new(start: u32, end: u32) -> Option<VmidRange> {
        if Self::MIN <= start && start <= end && end <= Self::MAX {
            Some(VmidRange { start, end })
        } else {
            None
        }
    }

    /// The seed's template range, 100-999.
    pub const SEED_TEMPLATES: VmidRange = VmidRange::known(100, 999);
    /// The seed's VM range, 1000-9999.
    pub const SEED_VMS: VmidRange = VmidRange::known(1000, 9999);

    // Only for constants: an invalid literal fails the build, never a running server.
    const fn known(start: u32, end: u32) -> VmidRange {
        match VmidRange::new(start, end) {
            Some(r) => r,
            None => panic!("invalid VmidRange constant"),
        }
    }

    pub fn contains(&self, id: u32) -> bool {
        self.start <= id && id <= self.end
    }

    pub fn start(&self) -> u32 {
        self.start
    }

    pub fn end(&self) -> u32 {
        self.end
    }

    pub fn overlaps(&self, other: &VmidRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for VmidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// `credentials:` — where the token comes from (see [`super::credentials::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `pass` entry name (relative, no leading `-`, no `..`).
    pub pass_path: Option<String>,
    /// Token file, `~` expanded, relative paths resolved against the config file's directory.
    pub token_file: Option<PathBuf>,
    /// SSH user (default `root`).
    pub ssh_user: String,
    /// `pass` entry whose first line is the root password `ct_create` gives new containers.
    pub ct_password_pass_path: Option<String>,
}

/// `cloudinit:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloudinit {
    pub default_user: String,
    /// Local file of SSH public keys, `~` expanded.
    pub ssh_keys_source: Option<PathBuf>,
    /// Absolute directory on the nodes (default `/var/lib/vz/snippets/`).
    pub vendor_snippet_path: String,
}

/// `api:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// Default 8006.
    pub port: u16,
    pub tls: TlsSetting,
    /// Per request; default 30 s.
    pub timeout: Duration,
}

/// How node certificates are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetting {
    /// The system's CA roots.
    System,
    /// This PEM CA file (path expanded).
    CaFile(PathBuf),
    /// SHA-256 of the leaf certificate's DER.
    Fingerprint([u8; 32]),
}

impl TlsSetting {
    /// `AB:CD:...`, uppercase, colon-separated, as the PVE GUI shows it.
    pub fn format_fingerprint(fp: &[u8; 32]) -> String {
        fp.iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// `ssh:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    /// Default 22.
    pub port: u16,
    pub key_file: Option<PathBuf>,
    /// `pass` entry holding the key file's passphrase.
    pub key_passphrase_pass_path: Option<String>,
    /// Default true.
    pub use_agent: bool,
    /// `None` = the ssh module's default, `~/.ssh/known_hosts` of the server's user.
    pub known_hosts: Option<PathBuf>,
    /// Default false: unknown host keys are refused.
    pub trust_on_first_use: bool,
}

/// `ansible:` — the integration is on when `fleet_infra` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ansible {
    /// The fleet-infra checkout (absolute).
    pub fleet_infra: Option<PathBuf>,
    /// Inventories passed with `-i` (absolute; relative ones were resolved against
    /// `fleet_infra`). Empty: the repository's `ansible.cfg` names the inventory.
    pub inventory: Vec<PathBuf>,
    /// The playbook directory, relative to `fleet_infra` (default `playbooks`; never absolute,
    /// never with `..`).
    pub playbook_dir: PathBuf,
    /// `ansible-playbook`; `None` = found on PATH.
    pub ansible_playbook: Option<PathBuf>,
    /// Arguments added to every run.
    pub extra_args: Vec<String>,
    /// Longest run (default one hour).
    pub timeout: Duration,
    pub host_vars: AnsibleHostVars,
}

impl Default for Ansible {
    fn default() -> Self {
        Ansible {
            fleet_infra: None,
            inventory: Vec::new(),
            playbook_dir: PathBuf::from("playbooks"),
            ansible_playbook: None,
            extra_args: Vec::new(),
            timeout: Duration::from_secs(3600),
            host_vars: AnsibleHostVars::default(),
        }
    }
}

/// `ansible.host_vars`: host variable names tried in order, each list non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsibleHostVars {
    pub vmid: Vec<String>,
    pub node: Vec<String>,
    pub address: Vec<String>,
    pub tags: Vec<String>,
}

impl Default for AnsibleHostVars {
    fn default() -> Self {
        let v = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        AnsibleHostVars {
            vmid: v(&["proxmox_vmid", "vmid"]),
            node: v(&["proxmox_node", "node"]),
            address: v(&["ansible_host", "proxmox_ipconfig0", "ipconfig0"]),
            tags: v(&["proxmox_tags_parsed", "proxmox_tags", "tags"]),
        }
    }
}

/// `paths:` — `None` = the built-in defaults of the consuming module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paths {
    pub runbooks: Option<PathBuf>,
    pub clusters: Option<PathBuf>,
    /// Directories local uploads may come from (`~` expanded, relative to the config file);
    /// `None` = the Downloads directory and the working directory.
    pub uploads: Option<Vec<PathBuf>>,
    /// External programs of the cluster profiles; `None` = found on PATH.
    pub talosctl: Option<PathBuf>,
    pub flux: Option<PathBuf>,
    pub kubectl: Option<PathBuf>,
}

/// `limits:` — both at least 1, `per_node_parallel <= max_parallel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Default 4.
    pub max_parallel: u32,
    /// Default 2.
    pub per_node_parallel: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_parallel: 4,
            per_node_parallel: 2,
        }
    }
}

/// `placement:` — validated: ratios and band positive and finite, the pin tag a PVE tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Default 1.0 (never overcommit memory).
    pub memory_ratio: f64,
    /// Default 2.0.
    pub vcpu_ratio: f64,
    /// Bytes; default 2 GiB.
    pub host_reserve: u64,
    /// Default `pinned`.
    pub pin_tag: String,
    /// Default 0.15.
    pub balance_band: f64,
    /// Bytes per second; default 110 MiB/s (a busy 1 GbE link).
    pub migration_bandwidth: u64,
}

// Validation keeps every ratio finite (no NaN), so equality is reflexive.
impl Eq for Placement {}

impl Default for Placement {
    fn default() -> Placement {
        Placement {
            memory_ratio: 1.0,
            vcpu_ratio: 2.0,
            host_reserve: 2 << 30,
            pin_tag: "pinned".into(),
            balance_band: 0.15,
            migration_bandwidth: 110 << 20,
        }
    }
}

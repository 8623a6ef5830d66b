//! The raw serde shape of `cluster-config.yaml`: exactly the seed's keys plus optional
//! extensions, `deny_unknown_fields` everywhere, doc comments that become the JSON Schema's
//! descriptions. Nothing here is checked beyond YAML types: validation (`validate.rs`) turns a
//! [`RawConfig`] into a [`super::Config`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// The whole `cluster-config.yaml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "proxmox-manager cluster configuration")]
pub struct RawConfig {
    /// The Proxmox VE cluster this server manages.
    pub cluster: RawCluster,
    /// Settings applied to every operation unless a call overrides them.
    pub defaults: RawDefaults,
    /// VMID ranges reserved for templates and for VMs; they must not overlap.
    pub vmid_ranges: RawVmidRanges,
    /// Where the API token comes from, and the SSH user. The environment variable
    /// `PROXMOX_MANAGER_TOKEN` (`user@realm!name=secret`) always wins.
    #[serde(default)]
    pub credentials: RawCredentials,
    /// Named tag groups (group name -> PVE tags), e.g. `templates: ["template"]`.
    #[serde(default)]
    pub tags: BTreeMap<String, Vec<String>>,
    /// Cloud-init settings for VMs created from cloud-init templates.
    pub cloudinit: RawCloudinit,
    /// How to reach the PVE API (optional; defaults: port 8006, system CA roots, 30 s).
    #[serde(default)]
    pub api: RawApi,
    /// SSH access to the nodes, for what the API cannot do (optional).
    #[serde(default)]
    pub ssh: RawSsh,
    /// fleet-infra Ansible integration (optional).
    #[serde(default)]
    pub ansible: RawAnsible,
    /// Where runbooks and cluster profiles live (optional; relative to this file's directory).
    #[serde(default)]
    pub paths: RawPaths,
    /// Concurrency limits for batch operations (optional).
    #[serde(default)]
    pub limits: RawLimits,
    /// How guests are placed and moved: overcommit ratios, host reserve, the do-not-move tag
    /// (optional).
    #[serde(default)]
    pub placement: RawPlacement,
    /// Append-only JSON-lines audit log of every mutating call (optional; `~` expands to $HOME).
    #[serde(default)]
    pub audit_log: Option<String>,
    /// Who approves destructive calls: `auto` (default: the person in the MCP client's
    /// confirmation dialog when the client supports elicitation, else `confirm: true`),
    /// `elicit` (refuse destructive calls from clients that cannot ask the person) or
    /// `argument` (`confirm: true` alone, for scripted clients).
    #[serde(default)]
    pub confirmations: Option<String>,
    /// The confirmation dialog: how long it waits, when the person types a name (optional).
    #[serde(default)]
    pub elicitation: super::confirmations::RawElicitation,
}

/// `cluster:` — the cluster and its nodes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// Cluster name, e.g. `annarchy.net`.
    pub name: String,
    /// Every node, with the host name or IP address its API answers on.
    pub nodes: Vec<RawNode>,
}

/// One entry of `cluster.nodes`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// PVE node name, e.g. `pve01` (letters, digits and inner hyphens).
    #[schemars(pattern(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$"))]
    pub name: String,
    /// Host name or IP address of the node, without scheme or port (see `api.port`).
    pub host: String,
    /// SSH port of this node when it differs from `ssh.port`.
    #[serde(default)]
    pub ssh_port: Option<u16>,
}

/// `defaults:` — applied to every operation; per-call overrides win.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Storage for new disks, e.g. `local-lvm` (must exist on the cluster: `check` verifies).
    pub storage: String,
    /// Bridge for new network devices, e.g. `vmbr0` (`check` verifies it exists).
    pub network_bridge: String,
    /// Firmware: `seabios` or `ovmf` (UEFI).
    #[schemars(extend("enum" = ["seabios", "ovmf"]))]
    pub bios: String,
    /// QEMU machine type: `q35`, `pc`, or a versioned form such as `pc-q35-9.0`.
    pub machine: String,
    /// CPU type, e.g. `host` or `x86-64-v2-AES`.
    pub cpu: String,
    /// SCSI controller model: lsi, lsi53c810, virtio-scsi-pci, virtio-scsi-single, megasas, pvscsi.
    #[schemars(extend("enum" = ["lsi", "lsi53c810", "virtio-scsi-pci", "virtio-scsi-single", "megasas", "pvscsi"]))]
    pub scsi_controller: String,
    /// Whether new EFI disks get the distribution's Secure Boot keys pre-enrolled.
    #[serde(default)]
    pub efidisk_pre_enrolled_keys: bool,
    /// Whether new VMs get the QEMU guest agent enabled.
    #[serde(default = "default_true")]
    pub guest_agent: bool,
}

/// `vmid_ranges:` — each `START-END`, inclusive.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVmidRanges {
    /// VMIDs for templates, e.g. `100-999`.
    #[schemars(pattern(r"^\s*\d+\s*-\s*\d+\s*$"))]
    pub templates: String,
    /// VMIDs for VMs, e.g. `1000-9999`.
    #[schemars(pattern(r"^\s*\d+\s*-\s*\d+\s*$"))]
    pub vms: String,
}

/// `credentials:` — where the API token is read from. Secrets never live in this file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    /// `pass` entry holding the token: line 1 the token id (`user@realm!name`), line 2 the secret.
    #[serde(default)]
    pub pass_path: Option<String>,
    /// File holding the token: one line `user@realm!name=secret`, or id and secret on two lines.
    /// Keep it mode 0600. `~` expands to $HOME; relative paths are relative to this file.
    #[serde(default)]
    pub token_file: Option<String>,
    /// User for SSH to the nodes.
    #[serde(default = "default_ssh_user")]
    pub ssh_user: String,
    /// `pass` entry whose first line is the root password of containers `ct_create` makes
    /// (read with `pass show`, sent only in the create request, never shown or logged).
    #[serde(default)]
    pub ct_password_pass_path: Option<String>,
}

impl Default for RawCredentials {
    fn default() -> RawCredentials {
        RawCredentials {
            pass_path: None,
            token_file: None,
            ssh_user: default_ssh_user(),
            ct_password_pass_path: None,
        }
    }
}

/// `cloudinit:` — defaults for cloud-init VMs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCloudinit {
    /// Default cloud-init user name.
    pub default_user: String,
    /// Local file with the SSH public keys to install (`~` expands to $HOME).
    #[serde(default)]
    pub ssh_keys_source: Option<String>,
    /// Directory on the nodes where vendor snippets are written (absolute path on the node).
    #[serde(default)]
    pub vendor_snippet_path: Option<String>,
}

/// `api:` — how to reach the PVE REST API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// API port on every node.
    #[serde(default = "default_api_port")]
    pub port: u16,
    /// TLS trust: `ca_file` or `fingerprint` (not both); neither = the system's CA roots.
    #[serde(default)]
    pub tls: RawTls,
    /// Per-request timeout in seconds (1-3600).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl Default for RawApi {
    fn default() -> RawApi {
        RawApi {
            port: default_api_port(),
            tls: RawTls::default(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

/// `api.tls:` — how the node certificates are verified.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of the CA that signed the node certificates (e.g. a copy of
    /// `/etc/pve/pve-root-ca.pem`).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// SHA-256 fingerprint of the node certificate as the PVE GUI shows it: 64 hex digits,
    /// colons optional, any case.
    #[serde(default)]
    #[schemars(pattern(r"^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$"))]
    pub fingerprint: Option<String>,
}

/// `ssh:` — SSH to the nodes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    /// SSH port on every node.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Private key file (`~` expands to $HOME).
    #[serde(default)]
    pub key_file: Option<String>,
    /// `pass` entry whose first line is the key file's passphrase (read by the server with
    /// `pass show`, never logged).
    #[serde(default)]
    pub key_passphrase_pass_path: Option<String>,
    /// Whether to use the ssh-agent at $SSH_AUTH_SOCK.
    #[serde(default = "default_true")]
    pub use_agent: bool,
    /// known_hosts file used to verify host keys (default `~/.ssh/known_hosts`).
    #[serde(default)]
    pub known_hosts: Option<String>,
    /// Accept and record an unknown host key on first contact (default false: refuse).
    #[serde(default)]
    pub trust_on_first_use: bool,
}

impl Default for RawSsh {
    fn default() -> RawSsh {
        RawSsh {
            port: default_ssh_port(),
            key_file: None,
            key_passphrase_pass_path: None,
            use_agent: true,
            known_hosts: None,
            trust_on_first_use: false,
        }
    }
}

/// `ansible:` — delegation to fleet-infra playbooks.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAnsible {
    /// Checkout of fleet-infra, e.g. `~/src/github.com/adamancini/fleet-infra`. Setting it
    /// turns the Ansible integration on. The server never writes inside it.
    #[serde(default)]
    pub fleet_infra: Option<String>,
    /// Inventory file(s) passed with `-i` (one path or a list; relative paths are relative to
    /// `fleet_infra`). Without it, the repository's `ansible.cfg` names the inventory.
    #[serde(default)]
    pub inventory: Option<RawInventory>,
    /// Directory of the playbooks, relative to `fleet_infra` (default `playbooks`).
    #[serde(default)]
    pub playbook_dir: Option<String>,
    /// The `ansible-playbook` program (default: found on PATH). `ansible-inventory` is looked
    /// for beside it.
    #[serde(default)]
    pub ansible_playbook: Option<String>,
    /// Arguments added to every `ansible-playbook` run, e.g. `["--forks", "5"]`.
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Longest `ansible-playbook` run in seconds before it is stopped (default 3600).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Host variables that carry the Proxmox facts of an inventory host, each a list of names
    /// tried in order (defaults follow community.proxmox).
    #[serde(default)]
    pub host_vars: RawAnsibleHostVars,
}

/// `ansible.inventory`: one path or several.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawInventory {
    One(String),
    Many(Vec<String>),
}

/// `ansible.host_vars`: which host variables hold a guest's VMID, node, address and tags.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAnsibleHostVars {
    /// Default `[proxmox_vmid, vmid]`.
    #[serde(default)]
    pub vmid: Option<Vec<String>>,
    /// Default `[proxmox_node, node]`.
    #[serde(default)]
    pub node: Option<Vec<String>>,
    /// Default `[ansible_host, proxmox_ipconfig0, ipconfig0]` (`ip=` of an ipconfig value is
    /// read; a `/prefix` is dropped).
    #[serde(default)]
    pub address: Option<Vec<String>>,
    /// Default `[proxmox_tags_parsed, proxmox_tags, tags]` (a list, or a `;`/`,` separated
    /// string).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// `paths:` — knowledge files.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    /// Directory of runbooks (markdown).
    #[serde(default)]
    pub runbooks: Option<String>,
    /// Directory of cluster profiles (YAML).
    #[serde(default)]
    pub clusters: Option<String>,
    /// Directories local files may be uploaded from (`template_from_iso` with a local path).
    /// Default: the Downloads directory ($XDG_DOWNLOAD_DIR, else ~/Downloads) and the server's
    /// working directory. Only regular files (not symlinks) inside them are accepted.
    #[serde(default)]
    pub uploads: Option<Vec<String>>,
    /// `talosctl` for Talos cluster profiles (default: found on PATH).
    #[serde(default)]
    pub talosctl: Option<String>,
    /// `flux` for a profile's Flux bootstrap (default: found on PATH).
    #[serde(default)]
    pub flux: Option<String>,
    /// `kubectl` for a profile's Kubernetes health (default: found on PATH).
    #[serde(default)]
    pub kubectl: Option<String>,
}

/// `limits:` — bounded fan-out.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Operations running at once in one batch.
    #[serde(default = "default_max_parallel")]
    pub max_parallel: u32,
    /// Of those, at most this many on one node (at most `max_parallel`).
    #[serde(default = "default_per_node_parallel")]
    pub per_node_parallel: u32,
}

impl Default for RawLimits {
    fn default() -> RawLimits {
        RawLimits {
            max_parallel: default_max_parallel(),
            per_node_parallel: default_per_node_parallel(),
        }
    }
}

/// `placement:` — the capacity rules of every plan (migration, evacuation, balance) and of
/// `cluster_status`'s overcommit flags.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPlacement {
    /// Configured memory of running guests per byte of a node's memory budget (physical
    /// memory minus `host_reserve_gib`); 1.0 = never overcommit memory.
    #[serde(default = "default_memory_ratio")]
    pub memory_ratio: f64,
    /// vCPUs of running guests per physical thread.
    #[serde(default = "default_vcpu_ratio")]
    pub vcpu_ratio: f64,
    /// Memory kept for the host on every node (hypervisor, ZFS ARC, page cache), GiB.
    #[serde(default = "default_host_reserve_gib")]
    pub host_reserve_gib: f64,
    /// Guests carrying this tag are never moved by an evacuation or a balance, and
    /// `vm_migrate` refuses them unless asked explicitly.
    #[serde(default = "default_pin_tag")]
    pub pin_tag: String,
    /// How far a node's memory load may be from the cluster mean before `cluster_balance`
    /// suggests moves (0.15 = 15 points).
    #[serde(default = "default_balance_band")]
    pub balance_band: f64,
    /// Bandwidth between nodes for migration time estimates, MiB/s.
    #[serde(default = "default_migration_mib_s")]
    pub migration_mib_s: u64,
}

impl Default for RawPlacement {
    fn default() -> RawPlacement {
        RawPlacement {
            memory_ratio: default_memory_ratio(),
            vcpu_ratio: default_vcpu_ratio(),
            host_reserve_gib: default_host_reserve_gib(),
            pin_tag: default_pin_tag(),
            balance_band: default_balance_band(),
            migration_mib_s: default_migration_mib_s(),
        }
    }
}

fn default_memory_ratio() -> f64 {
    1.0
}
fn default_vcpu_ratio() -> f64 {
    2.0
}
fn default_host_reserve_gib() -> f64 {
    2.0
}
fn default_pin_tag() -> String {
    "pinned".to_string()
}
fn default_balance_band() -> f64 {
    0.15
}
fn default_migration_mib_s() -> u64 {
    110
}

fn default_true() -> bool {
    true
}

fn default_ssh_user() -> String {
    "root".to_string()
}

fn default_api_port() -> u16 {
    8006
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_ssh_port() -> u16 {
    22
}

fn default_max_parallel() -> u32 {
    4
}

fn default_per_node_parallel() -> u32 {
    2
}

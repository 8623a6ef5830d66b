//! Raw -> validated configuration. Collects every problem (key path, what is wrong, the fix)
//! instead of stopping at the first, so one run of `check` shows everything to correct.
//! Purely syntactic: whether storages and bridges exist is checked against the cluster by
//! `check`, not here. Environment access (`$HOME` for `~`) goes through an injected closure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Env;
use super::error::{ConfigError, Problem};
use super::model::{
    Ansible, AnsibleHostVars, Api, Bios, Cloudinit, Cluster, Config, Credentials, Defaults, Limits,
    Node, Paths, Placement, ScsiController, Ssh, TlsSetting, VmidRange, VmidRanges,
};
use super::raw::{RawConfig, RawDefaults, RawInventory};
use super::syntax::{
    check_host, expand_path, parse_fingerprint, valid_bridge, valid_cpu, valid_machine,
    valid_node_name, valid_storage_id, valid_tag,
};

/// Environment variable naming the pass entry of the API token; overrides
/// `credentials.pass_path`.
pub const PASS_PATH_ENV: &str = "PROXMOX_MANAGER_PASS_PATH";

/// Default directory for vendor snippets on PVE's `local` storage.
pub const DEFAULT_SNIPPET_PATH: &str = "/var/lib/vz/snippets/";

/// Validate `raw` (read from `origin`), returning every problem found.
///
/// # Errors
/// [`ConfigError::Invalid`] with one [`Problem`] per wrong value.
pub fn validate(raw: RawConfig, origin: &Path, env: Env<'_>) -> Result<Config, ConfigError> {
    let base = origin.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut v = Validator {
        problems: Vec::new(),
        base,
        env,
    };
    let cluster = v.cluster(&raw);
    let defaults = v.defaults(&raw.defaults);
    let vmid_ranges = v.vmid_ranges(&raw);
    let credentials = Credentials {
        // `$PROXMOX_MANAGER_PASS_PATH` (the Claude Code plugin's "pass entry" setting) wins over
        // the file's `credentials.pass_path`; empty counts as unset.
        pass_path: match env(PASS_PATH_ENV).filter(|p| !p.trim().is_empty()) {
            Some(p) => v.pass_path(&format!("${PASS_PATH_ENV}"), &p),
            None => raw
                .credentials
                .pass_path
                .as_deref()
                .and_then(|p| v.pass_path("credentials.pass_path", p)),
        },
        token_file: v.opt_path(
            "credentials.token_file",
            raw.credentials.token_file.as_deref(),
        ),
        ssh_user: v.ssh_user(&raw.credentials.ssh_user),
        ct_password_pass_path: raw
            .credentials
            .ct_password_pass_path
            .as_deref()
            .and_then(|p| v.pass_path("credentials.ct_password_pass_path", p)),
    };
    v.tags(&raw);
    let cloudinit = v.cloudinit(&raw);
    let api = v.api(&raw);
    let ssh = Ssh {
        port: v.port("ssh.port", raw.ssh.port, 22),
        key_file: v.opt_path("ssh.key_file", raw.ssh.key_file.as_deref()),
        key_passphrase_pass_path: raw
            .ssh
            .key_passphrase_pass_path
            .as_deref()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty()),
        use_agent: raw.ssh.use_agent,
        known_hosts: v.opt_path("ssh.known_hosts", raw.ssh.known_hosts.as_deref()),
        trust_on_first_use: raw.ssh.trust_on_first_use,
    };
    let ansible = v.ansible(&raw);
    let paths = Paths {
        runbooks: v.opt_path("paths.runbooks", raw.paths.runbooks.as_deref()),
        clusters: v.opt_path("paths.clusters", raw.paths.clusters.as_deref()),
        uploads: raw.paths.uploads.as_ref().map(|dirs| {
            dirs.iter()
                .enumerate()
                .filter_map(|(i, d)| v.opt_path(&format!("paths.uploads[{i}]"), Some(d)))
                .collect()
        }),
        talosctl: v.opt_path("paths.talosctl", raw.paths.talosctl.as_deref()),
        flux: v.opt_path("paths.flux", raw.paths.flux.as_deref()),
        kubectl: v.opt_path("paths.kubectl", raw.paths.kubectl.as_deref()),
    };
    let limits = v.limits(&raw);
    let placement = v.placement(&raw);
    let audit_log = v.opt_path("audit_log", raw.audit_log.as_deref());
    let confirmations =
        super::confirmations::validate(raw.confirmations.as_deref(), &raw.elicitation)
            .unwrap_or_else(|problems| {
                for (key, message, fix) in problems {
                    v.problem(key, message, fix);
                }
                Default::default()
            });

    let vmid_ranges = match vmid_ranges {
        Some(r) if v.problems.is_empty() => r,
        _ => {
            if v.problems.is_empty() {
                // Defensive: every path returning no ranges records a problem first.
                v.problem(
                    "vmid_ranges",
                    "could not be read",
                    "write them as START-END, e.g. 100-999",
                );
            }
            return Err(ConfigError::Invalid {
                path: origin.to_path_buf(),
                problems: v.problems,
            });
        }
    };
    Ok(Config {
        path: origin.to_path_buf(),
        cluster,
        defaults,
        vmid_ranges,
        credentials,
        tags: raw.tags,
        cloudinit,
        api,
        ssh,
        ansible,
        paths,
        limits,
        placement,
        audit_log,
        confirmations,
    })
}

struct Validator<'a> {
    problems: Vec<Problem>,
    base: PathBuf,
    env: Env<'a>,
}

impl Validator<'_> {
    fn problem(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem::new(key, message, fix));
    }

    fn cluster(&mut self, raw: &RawConfig) -> Cluster {
        if raw.cluster.name.trim().is_empty() {
            self.problem(
                "cluster.name",
                "is empty",
                "name the cluster, e.g. `name: annarchy.net`",
            );
        }
        if raw.cluster.nodes.is_empty() {
            self.problem(
                "cluster.nodes",
                "lists no node",
                "add at least one node: `- name: pve01` with `host: pve01.example.net`",
            );
        }
        let mut seen = BTreeSet::new();
        let mut nodes = Vec::new();
        for (i, n) in raw.cluster.nodes.iter().enumerate() {
            let key = format!("cluster.nodes[{i}]");
            if !valid_node_name(&n.name) {
                self.problem(
                    format!("{key}.name"),
                    format!("'{}' is not a valid PVE node name", n.name),
                    "use letters, digits and inner hyphens (at most 63), exactly as `pvecm nodes` shows it, e.g. pve01",
                );
            } else if !seen.insert(n.name.to_ascii_lowercase()) {
                self.problem(
                    format!("{key}.name"),
                    format!("node '{}' is listed twice", n.name),
                    "list every node once",
                );
            }
            let host = match check_host(&n.host) {
                Ok(h) => h,
                Err((message, fix)) => {
                    self.problem(format!("{key}.host"), message, fix);
                    n.host.clone()
                }
            };
            if n.ssh_port == Some(0) {
                self.problem(
                    format!("{key}.ssh_port"),
                    "is 0",
                    "give the node's SSH port (1-65535), or leave it out to use ssh.port",
                );
            }
            nodes.push(Node {
                name: n.name.clone(),
                host,
                ssh_port: n.ssh_port,
            });
        }
        Cluster {
            name: raw.cluster.name.trim().to_string(),
            nodes,
        }
    }

    fn defaults(&mut self, d: &RawDefaults) -> Defaults {
        if !valid_storage_id(&d.storage) {
            self.problem(
                "defaults.storage",
                format!("'{}' is not a valid PVE storage id", d.storage),
                "use the storage id as `pvesm status` lists it (lowercase letters, digits, - _ .), e.g. local-lvm",
            );
        }
        if !valid_bridge(&d.network_bridge) {
            self.problem(
                "defaults.network_bridge",
                format!("'{}' is not a valid bridge name", d.network_bridge),
                "use the bridge's interface name (at most 15 of letters, digits, - _ .), e.g. vmbr0",
            );
        }
        let bios = Bios::ALL
            .into_iter()
            .find(|b| b.as_str() == d.bios)
            .unwrap_or_else(|| {
                self.problem(
                    "defaults.bios",
                    format!("'{}' is not a PVE bios", d.bios),
                    "use one of: seabios, ovmf (UEFI)",
                );
                Bios::Seabios
            });
        if !valid_machine(&d.machine) {
            self.problem(
                "defaults.machine",
                format!("'{}' is not a QEMU machine type PVE accepts", d.machine),
                "use q35, pc, or a versioned type such as pc-q35-9.0 or pc-i440fx-9.0",
            );
        }
        if !valid_cpu(&d.cpu) {
            self.problem(
                "defaults.cpu",
                format!("'{}' is not a CPU type", d.cpu),
                "use a PVE CPU type, e.g. host, x86-64-v2-AES or kvm64",
            );
        }
        let scsi = ScsiController::ALL
            .into_iter()
            .find(|s| s.as_str() == d.scsi_controller);
        let scsi_controller = scsi.unwrap_or_else(|| {
            let all: Vec<&str> = ScsiController::ALL.iter().map(|s| s.as_str()).collect();
            self.problem(
                "defaults.scsi_controller",
                format!("'{}' is not a PVE SCSI controller", d.scsi_controller),
                format!("use one of: {}", all.join(", ")),
            );
            ScsiController::VirtioScsiSingle
        });
        Defaults {
            storage: d.storage.clone(),
            network_bridge: d.network_bridge.clone(),
            bios,
            machine: d.machine.clone(),
            cpu: d.cpu.clone(),
            scsi_controller,
            efidisk_pre_enrolled_keys: d.efidisk_pre_enrolled_keys,
            guest_agent: d.guest_agent,
        }
    }

    fn vmid_ranges(&mut self, raw: &RawConfig) -> Option<VmidRanges> {
        let t = self.range(
            "vmid_ranges.templates",
            &raw.vmid_ranges.templates,
            "100-999",
        );
        let v = self.range("vmid_ranges.vms", &raw.vmid_ranges.vms, "1000-9999");
        let (templates, vms) = (t?, v?);
        if templates.overlaps(&vms) {
            let from = templates.start().max(vms.start());
            let to = templates.end().min(vms.end());
            self.problem(
                "vmid_ranges",
                format!("templates {templates} and vms {vms} overlap ({from}-{to})"),
                "make them disjoint, e.g. templates: 100-999 and vms: 1000-9999",
            );
            return None;
        }
        Some(VmidRanges { templates, vms })
    }

    fn range(&mut self, key: &str, text: &str, example: &str) -> Option<VmidRange> {
        let form = format!("write it as START-END, e.g. {example}");
        let Some((a, b)) = text.split_once('-') else {
            self.problem(key, format!("'{text}' is not a range"), form);
            return None;
        };
        let (a, b) = (a.trim(), b.trim());
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            self.problem(key, format!("'{text}' is not a range of two numbers"), form);
            return None;
        }
        let (Ok(start), Ok(end)) = (a.parse::<u64>(), b.parse::<u64>()) else {
            self.problem(key, format!("'{text}' has a number too large"), form);
            return None;
        };
        if start > end {
            self.problem(key, format!("'{text}' ends before it starts"), form);
            return None;
        }
        if start < u64::from(VmidRange::MIN) {
            self.problem(
                key,
                format!("'{text}' starts below 100, the smallest VMID PVE allows"),
                format!("start at 100 or above, e.g. {example}"),
            );
            return None;
        }
        if end > u64::from(VmidRange::MAX) {
            self.problem(
                key,
                format!("'{text}' ends above 999999999, the largest VMID PVE allows"),
                format!("end at 999999999 or below, e.g. {example}"),
            );
            return None;
        }
        let (start, end) = (u32::try_from(start).ok()?, u32::try_from(end).ok()?);
        VmidRange::new(start, end)
    }

    fn pass_path(&mut self, key: &str, p: &str) -> Option<String> {
        let p = p.trim();
        let bad = if p.is_empty() {
            Some((
                "is empty",
                "name the pass entry, e.g. annarchy.net/pve/api-token, or remove the key",
            ))
        } else if p.starts_with('-') {
            Some((
                "starts with '-', which pass would read as an option",
                "name the entry without a leading '-'",
            ))
        } else if p.starts_with('/') {
            Some((
                "is absolute",
                "give the entry name relative to the password store, e.g. annarchy.net/pve/api-token",
            ))
        } else if p.split('/').any(|s| s == "..") {
            Some((
                "contains '..'",
                "give the entry name inside the password store, without '..'",
            ))
        } else if p.ends_with(".gpg") {
            Some(("ends with .gpg", "drop the .gpg suffix: pass adds it"))
        } else if p.chars().any(char::is_control) {
            Some((
                "contains a control character",
                "write the entry name on one line",
            ))
        } else {
            None
        };
        match bad {
            Some((message, fix)) => {
                self.problem(key, message, fix);
                None
            }
            None => Some(p.to_string()),
        }
    }

    fn ssh_user(&mut self, user: &str) -> String {
        if user.is_empty()
            || user
                .chars()
                .any(|c| c.is_whitespace() || c == '@' || c == ':')
        {
            self.problem(
                "credentials.ssh_user",
                format!("'{user}' is not a user name"),
                "give the SSH login name on the nodes, e.g. root",
            );
        }
        user.to_string()
    }

    fn tags(&mut self, raw: &RawConfig) {
        for (group, tags) in &raw.tags {
            if group.trim().is_empty() {
                self.problem(
                    "tags",
                    "has a group with an empty name",
                    "name every tag group, e.g. `templates: [\"template\"]`",
                );
            }
            if tags.is_empty() {
                self.problem(
                    format!("tags.{group}"),
                    "lists no tag",
                    "list at least one tag, or remove the group",
                );
            }
            for (i, tag) in tags.iter().enumerate() {
                if valid_tag(tag) {
                    continue;
                }
                let lower = tag.to_lowercase();
                let fix = if lower != *tag && valid_tag(&lower) {
                    format!("write it in lowercase: {lower}")
                } else {
                    "use lowercase letters, digits and _ - + . (not starting with - + .), e.g. kubernetes".to_string()
                };
                self.problem(
                    format!("tags.{group}[{i}]"),
                    format!("'{tag}' is not a valid PVE tag"),
                    fix,
                );
            }
        }
    }

    fn cloudinit(&mut self, raw: &RawConfig) -> Cloudinit {
        let c = &raw.cloudinit;
        let user = c.default_user.trim();
        if user.is_empty() || user.chars().any(|ch| ch.is_whitespace() || ch == ':') {
            self.problem(
                "cloudinit.default_user",
                format!("'{}' is not a user name", c.default_user),
                "give the login name cloud-init creates, e.g. ada",
            );
        }
        let snippets = c
            .vendor_snippet_path
            .as_deref()
            .unwrap_or(DEFAULT_SNIPPET_PATH);
        if !snippets.starts_with('/') || snippets.split('/').any(|s| s == "..") {
            self.problem(
                "cloudinit.vendor_snippet_path",
                format!("'{snippets}' is not an absolute path on the nodes without '..'"),
                "give the snippets directory of a storage with content `snippets`, e.g. /var/lib/vz/snippets/",
            );
        }
        Cloudinit {
            default_user: user.to_string(),
            ssh_keys_source: self
                .opt_path("cloudinit.ssh_keys_source", c.ssh_keys_source.as_deref()),
            vendor_snippet_path: snippets.to_string(),
        }
    }

    fn api(&mut self, raw: &RawConfig) -> Api {
        let port = self.port("api.port", raw.api.port, 8006);
        let timeout_secs = raw.api.timeout_secs;
        if !(1..=3600).contains(&timeout_secs) {
            self.problem(
                "api.timeout_secs",
                format!("{timeout_secs} is out of range"),
                "give seconds between 1 and 3600 (default 30)",
            );
        }
        let tls = &raw.api.tls;
        let fingerprint = tls.fingerprint.as_deref().and_then(|f| match parse_fingerprint(f) {
            Some(fp) => Some(fp),
            None => {
                self.problem(
                    "api.tls.fingerprint",
                    format!("'{f}' is not a SHA-256 fingerprint (64 hex digits, colons optional)"),
                    "copy it from the node's Certificates panel, or run `openssl x509 -noout -fingerprint -sha256 -in /etc/pve/local/pve-ssl.pem` on the node",
                );
                None
            }
        });
        let ca_file = self.opt_path("api.tls.ca_file", tls.ca_file.as_deref());
        let tls = match (
            ca_file,
            fingerprint,
            tls.ca_file.is_some() && tls.fingerprint.is_some(),
        ) {
            (_, _, true) => {
                self.problem(
                    "api.tls",
                    "ca_file and fingerprint are both set",
                    "keep one: ca_file to trust a CA, or fingerprint to pin the node certificate",
                );
                TlsSetting::System
            }
            (Some(ca), _, false) => TlsSetting::CaFile(ca),
            (None, Some(fp), false) => TlsSetting::Fingerprint(fp),
            (None, None, false) => TlsSetting::System,
        };
        Api {
            port,
            tls,
            timeout: Duration::from_secs(timeout_secs),
        }
    }

    fn port(&mut self, key: &str, port: u16, default: u16) -> u16 {
        if port == 0 {
            self.problem(
                key,
                "0 is not a port",
                format!("give a port between 1 and 65535 (default {default})"),
            );
            return default;
        }
        port
    }

    fn limits(&mut self, raw: &RawConfig) -> Limits {
        let max = raw.limits.max_parallel;
        let per = raw.limits.per_node_parallel;
        if max == 0 {
            self.problem("limits.max_parallel", "is 0", "give at least 1 (default 4)");
        }
        if per == 0 {
            self.problem(
                "limits.per_node_parallel",
                "is 0",
                "give at least 1 (default 2)",
            );
        } else if max != 0 && per > max {
            self.problem(
                "limits.per_node_parallel",
                format!("{per} is more than limits.max_parallel ({max})"),
                "make it at most max_parallel",
            );
        }
        Limits {
            max_parallel: max,
            per_node_parallel: per,
        }
    }

    fn placement(&mut self, raw: &RawConfig) -> Placement {
        let p = &raw.placement;
        let mut ratio = |key: &str, v: f64, default: f64, max: f64| {
            if v.is_finite() && v > 0.0 && v <= max {
                v
            } else {
                self.problem(
                    key,
                    format!("{v} is not a ratio between 0 and {max}"),
                    format!("give a positive number, e.g. {default} (the default)"),
                );
                default
            }
        };
        let memory_ratio = ratio("placement.memory_ratio", p.memory_ratio, 1.0, 4.0);
        let vcpu_ratio = ratio("placement.vcpu_ratio", p.vcpu_ratio, 2.0, 64.0);
        let balance_band = ratio("placement.balance_band", p.balance_band, 0.15, 1.0);
        let reserve_gib =
            if p.host_reserve_gib.is_finite() && (0.0..=4096.0).contains(&p.host_reserve_gib) {
                p.host_reserve_gib
            } else {
                self.problem(
                    "placement.host_reserve_gib",
                    format!("{} is not a size in GiB", p.host_reserve_gib),
                    "give the memory kept for the host, e.g. 2 (the default)",
                );
                2.0
            };
        if !valid_tag(&p.pin_tag) {
            self.problem(
                "placement.pin_tag",
                format!("{:?} is not a PVE tag", p.pin_tag),
                "use lowercase letters, digits and _-+. (e.g. pinned)",
            );
        }
        if p.migration_mib_s == 0 {
            self.problem(
                "placement.migration_mib_s",
                "is 0",
                "give the bandwidth between nodes in MiB/s, e.g. 110 (the default)",
            );
        }
        Placement {
            memory_ratio,
            vcpu_ratio,
            host_reserve: (reserve_gib * (1u64 << 30) as f64) as u64,
            pin_tag: p.pin_tag.clone(),
            balance_band,
            migration_bandwidth: p.migration_mib_s.max(1).saturating_mul(1 << 20),
        }
    }

    /// Expand `~`, resolve relative paths against the config file's directory.
    /// `ansible:`: paths resolved (inventories against `fleet_infra`), the playbook directory
    /// kept inside the repository, host variable names checked.
    fn ansible(&mut self, raw: &RawConfig) -> Ansible {
        let a = &raw.ansible;
        let d = Ansible::default();
        let fleet_infra = self.opt_path("ansible.fleet_infra", a.fleet_infra.as_deref());
        let listed: Vec<String> = match &a.inventory {
            None => Vec::new(),
            Some(RawInventory::One(p)) => vec![p.clone()],
            Some(RawInventory::Many(ps)) => ps.clone(),
        };
        let mut inventory = Vec::new();
        for (i, p) in listed.iter().enumerate() {
            let key = if listed.len() == 1 {
                "ansible.inventory".to_string()
            } else {
                format!("ansible.inventory[{i}]")
            };
            let base = fleet_infra.clone().unwrap_or_else(|| self.base.clone());
            match expand_path(p, &base, self.env) {
                Ok(path) => inventory.push(path),
                Err((message, fix)) => self.problem(key, message, fix),
            }
        }
        if fleet_infra.is_none() && (!listed.is_empty() || a.playbook_dir.is_some()) {
            self.problem(
                "ansible.fleet_infra",
                "is missing while other ansible settings are given",
                "set it to the fleet-infra checkout, e.g. ~/src/github.com/adamancini/fleet-infra",
            );
        }
        let playbook_dir = match a.playbook_dir.as_deref() {
            None => d.playbook_dir.clone(),
            Some(p) => {
                let path = Path::new(p.trim());
                let escapes = path.is_absolute()
                    || p.trim().is_empty()
                    || path
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir));
                if escapes {
                    self.problem(
                        "ansible.playbook_dir",
                        format!("'{p}' is not a directory inside fleet_infra"),
                        "give a path relative to fleet_infra without '..', e.g. playbooks (or . for the repository root)",
                    );
                    d.playbook_dir.clone()
                } else {
                    path.to_path_buf()
                }
            }
        };
        let ansible_playbook =
            self.opt_path("ansible.ansible_playbook", a.ansible_playbook.as_deref());
        for (i, arg) in a.extra_args.iter().enumerate() {
            if arg.len() > 1024 || arg.chars().any(char::is_control) {
                self.problem(
                    format!("ansible.extra_args[{i}]"),
                    "is longer than 1024 characters or contains a control character",
                    "give one plain argument per list item",
                );
            }
        }
        let timeout = match a.timeout_secs {
            None => d.timeout,
            Some(t) if (1..=86_400).contains(&t) => Duration::from_secs(t),
            Some(t) => {
                self.problem(
                    "ansible.timeout_secs",
                    format!("{t} is out of range"),
                    "give 1 to 86400 seconds",
                );
                d.timeout
            }
        };
        let mut names = |key: &str, given: &Option<Vec<String>>, default: &[String]| {
            let Some(list) = given else {
                return default.to_vec();
            };
            let valid = !list.is_empty()
                && list.iter().all(|n| {
                    !n.is_empty()
                        && n.len() <= 128
                        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !n.starts_with(|c: char| c.is_ascii_digit())
                });
            if !valid {
                self.problem(
                    format!("ansible.host_vars.{key}"),
                    "must be a non-empty list of Ansible variable names",
                    "write names such as proxmox_vmid (letters, digits, _; not starting with a digit)",
                );
                return default.to_vec();
            }
            list.clone()
        };
        let hv = &a.host_vars;
        let host_vars = AnsibleHostVars {
            vmid: names("vmid", &hv.vmid, &d.host_vars.vmid),
            node: names("node", &hv.node, &d.host_vars.node),
            address: names("address", &hv.address, &d.host_vars.address),
            tags: names("tags", &hv.tags, &d.host_vars.tags),
        };
        Ansible {
            fleet_infra,
            inventory,
            playbook_dir,
            ansible_playbook,
            extra_args: a.extra_args.clone(),
            timeout,
            host_vars,
        }
    }

    fn opt_path(&mut self, key: &str, p: Option<&str>) -> Option<PathBuf> {
        let p = p?;
        match expand_path(p, &self.base, self.env) {
            Ok(path) => Some(path),
            Err((message, fix)) => {
                self.problem(key, message, fix);
                None
            }
        }
    }
}

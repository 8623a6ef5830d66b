//! Configuration: `cluster-config.yaml` in exactly the seed format (plus optional extensions),
//! from the raw serde shape ([`raw::RawConfig`], `deny_unknown_fields`, JSON Schema for editors)
//! to the validated [`Config`]; where the file is looked up; and the API token
//! ([`credentials`]: `$PROXMOX_MANAGER_TOKEN`, a token file, or `pass show`).
//!
//! Owns nothing else, and must not `use crate::` anything outside `crate::config`. Holds no
//! secrets except inside [`credentials::TokenCredential`], whose Debug is redacted.
//!
//! Every environment lookup goes through an injectable `&dyn Fn(&str) -> Option<String>` (the
//! `*_with` functions) so tests never mutate the process environment.

pub mod confirmations;
pub mod credentials;
mod error;
mod load;
mod model;
pub mod profile;
pub mod raw;
mod syntax;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use confirmations::{ConfirmMode, Confirmations};
pub use error::{ConfigError, LookedAt, Position, Problem};
pub use load::{CONFIG_ENV, CONFIG_FILE, load_with, locate_with, parse_raw, parse_with};
pub use model::{
    Ansible, AnsibleHostVars, Api, Bios, Cloudinit, Cluster, Config, Credentials, Defaults, Limits,
    Node, Paths, Placement, ScsiController, Ssh, TlsSetting, VmidRange, VmidRanges,
};
pub use raw::RawConfig;
pub use syntax::valid_tag;
pub use validate::{DEFAULT_SNIPPET_PATH, PASS_PATH_ENV};

/// How the environment is read: `|name| std::env::var(name).ok()` in production.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, as an [`Env`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Find the configuration file: `--config` (must exist), else `$PROXMOX_MANAGER_CONFIG`, else
/// `$XDG_CONFIG_HOME/proxmox-manager/cluster-config.yaml` (`~/.config/...` when unset).
///
/// # Errors
/// See [`locate_with`].
pub fn locate(cli: Option<&Path>) -> Result<PathBuf, ConfigError> {
    locate_with(cli, &process_env)
}

/// Read, parse and validate the configuration at `path`.
///
/// # Errors
/// See [`load_with`].
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &process_env)
}

/// Parse and validate `text` that came from `origin`.
///
/// # Errors
/// See [`parse_with`].
pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    parse_with(text, origin, &process_env)
}

/// JSON Schema (draft 2020-12) of `cluster-config.yaml`, for editors (yaml-language-server).
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(RawConfig).to_value()
}

/// The configuration `serve --sim` uses: the seed's defaults, cluster `sim.annarchy.net`, nodes
/// pve01..pve03 all at 127.0.0.1, the simulator's port, its certificate pinned by fingerprint.
/// Credentials come from the simulator itself, so `pass_path` and `token_file` are unset.
pub fn sim_config(api_port: u16, fingerprint: [u8; 32]) -> Config {
    let nodes = ["pve01", "pve02", "pve03"]
        .into_iter()
        .map(|n| Node {
            name: n.to_string(),
            host: "127.0.0.1".to_string(),
            ssh_port: None,
        })
        .collect();
    Config {
        path: PathBuf::from("<simulator>"),
        cluster: Cluster {
            name: "sim.annarchy.net".to_string(),
            nodes,
        },
        defaults: Defaults {
            storage: "local-lvm".to_string(),
            network_bridge: "vmbr0".to_string(),
            bios: Bios::Ovmf,
            machine: "q35".to_string(),
            cpu: "host".to_string(),
            scsi_controller: ScsiController::VirtioScsiSingle,
            efidisk_pre_enrolled_keys: false,
            guest_agent: true,
        },
        vmid_ranges: VmidRanges {
            templates: VmidRange::SEED_TEMPLATES,
            vms: VmidRange::SEED_VMS,
        },
        credentials: Credentials {
            pass_path: None,
            token_file: None,
            ssh_user: "root".to_string(),
            ct_password_pass_path: None,
        },
        tags: [
            ("templates", vec!["template"]),
            ("talos", vec!["talos", "kubernetes"]),
            ("cloudinit", vec!["cloudinit"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
        .collect(),
        cloudinit: Cloudinit {
            default_user: "ada".to_string(),
            ssh_keys_source: None,
            vendor_snippet_path: DEFAULT_SNIPPET_PATH.to_string(),
        },
        api: Api {
            port: api_port,
            tls: TlsSetting::Fingerprint(fingerprint),
            timeout: Duration::from_secs(30),
        },
        ssh: Ssh {
            port: 22,
            key_file: None,
            key_passphrase_pass_path: None,
            use_agent: false,
            known_hosts: None,
            trust_on_first_use: false,
        },
        ansible: Ansible::default(),
        paths: Paths::default(),
        limits: Limits::default(),
        placement: Placement::default(),
        audit_log: None,
        confirmations: Default::default(),
    }
}

/// The effective configuration as JSON, for display (e.g. an MCP resource). It contains no
/// secret: credentials appear only as the pass entry name and token file path.
pub fn redacted_json(cfg: &Config) -> serde_json::Value {
    use serde_json::json;
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let tls = match &cfg.api.tls {
        TlsSetting::System => json!({ "mode": "system" }),
        TlsSetting::CaFile(p) => json!({ "mode": "ca_file", "ca_file": p.display().to_string() }),
        TlsSetting::Fingerprint(fp) => {
            json!({ "mode": "fingerprint", "fingerprint": TlsSetting::format_fingerprint(fp) })
        }
    };
    json!({
        "path": cfg.path.display().to_string(),
        "cluster": {
            "name": cfg.cluster.name,
            "nodes": cfg.cluster.nodes.iter().map(|n| json!({ "name": n.name, "host": n.host, "ssh_port": n.ssh_port })).collect::<Vec<_>>(),
        },
        "defaults": {
            "storage": cfg.defaults.storage,
            "network_bridge": cfg.defaults.network_bridge,
            "bios": cfg.defaults.bios.as_str(),
            "machine": cfg.defaults.machine,
            "cpu": cfg.defaults.cpu,
            "scsi_controller": cfg.defaults.scsi_controller.as_str(),
            "efidisk_pre_enrolled_keys": cfg.defaults.efidisk_pre_enrolled_keys,
            "guest_agent": cfg.defaults.guest_agent,
        },
        "vmid_ranges": {
            "templates": cfg.vmid_ranges.templates.to_string(),
            "vms": cfg.vmid_ranges.vms.to_string(),
        },
        "credentials": {
            "pass_path": cfg.credentials.pass_path,
            "token_file": path(&cfg.credentials.token_file),
            "ssh_user": cfg.credentials.ssh_user,
            "ct_password_pass_path": cfg.credentials.ct_password_pass_path,
        },
        "tags": cfg.tags,
        "cloudinit": {
            "default_user": cfg.cloudinit.default_user,
            "ssh_keys_source": path(&cfg.cloudinit.ssh_keys_source),
            "vendor_snippet_path": cfg.cloudinit.vendor_snippet_path,
        },
        "api": { "port": cfg.api.port, "tls": tls, "timeout_secs": cfg.api.timeout.as_secs() },
        "ssh": {
            "port": cfg.ssh.port,
            "key_file": path(&cfg.ssh.key_file),
            "key_passphrase_pass_path": cfg.ssh.key_passphrase_pass_path,
            "use_agent": cfg.ssh.use_agent,
            "known_hosts": path(&cfg.ssh.known_hosts),
            "trust_on_first_use": cfg.ssh.trust_on_first_use,
        },
        "ansible": {
            "fleet_infra": path(&cfg.ansible.fleet_infra),
            "inventory": cfg.ansible.inventory.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "playbook_dir": cfg.ansible.playbook_dir.display().to_string(),
            "ansible_playbook": path(&cfg.ansible.ansible_playbook),
            "extra_args": cfg.ansible.extra_args,
            "timeout_secs": cfg.ansible.timeout.as_secs(),
            "host_vars": {
                "vmid": cfg.ansible.host_vars.vmid,
                "node": cfg.ansible.host_vars.node,
                "address": cfg.ansible.host_vars.address,
                "tags": cfg.ansible.host_vars.tags,
            },
        },
        "paths": {
            "runbooks": path(&cfg.paths.runbooks),
            "clusters": path(&cfg.paths.clusters),
            "uploads": cfg.paths.uploads.as_ref().map(|d| d.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()),
        },
        "limits": { "max_parallel": cfg.limits.max_parallel, "per_node_parallel": cfg.limits.per_node_parallel },
        "placement": {
            "memory_ratio": cfg.placement.memory_ratio,
            "vcpu_ratio": cfg.placement.vcpu_ratio,
            "host_reserve_bytes": cfg.placement.host_reserve,
            "pin_tag": cfg.placement.pin_tag,
            "balance_band": cfg.placement.balance_band,
            "migration_bandwidth_bytes_s": cfg.placement.migration_bandwidth,
        },
        "audit_log": path(&cfg.audit_log),
        "confirmations": cfg.confirmations.mode.as_str(),
        "elicitation": {
            "timeout_secs": cfg.confirmations.timeout.as_secs(),
            "typed_name_above": cfg.confirmations.typed_name_above,
        },
    })
}

#[cfg(test)]
mod load_tests;
#[cfg(test)]
mod tests;

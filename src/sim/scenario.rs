//! The scenario file (`config/sim.yaml`): the serde shape of a simulated cluster's starting
//! state — nodes, storages, files on storages, guests, users/tokens/roles/ACLs and seeded tasks.
//! Owns parsing only; turning a scenario into live state is `state.rs`' job. Token secrets are
//! never part of a scenario: they are generated when the simulator starts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SimError;

const EMBEDDED: &str = include_str!("../../config/sim.yaml");

/// A whole simulated cluster.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Cluster name as shown by `/cluster/status`.
    pub cluster: String,
    /// pve-manager version reported by `/version`.
    pub version: VersionSpec,
    pub nodes: Vec<NodeSpec>,
    pub storages: Vec<StorageSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    pub vms: Vec<VmSpec>,
    /// LXC containers (see `crate::sim::lxc`); they share the vmid space with `vms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cts: Vec<super::lxc::CtSpec>,
    /// Custom roles; built-in roles (Administrator, PVEAuditor, ...) always exist.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, Vec<String>>,
    pub users: Vec<UserSpec>,
    pub acl: Vec<AclSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSpec>,
    /// HA node-affinity rules (PVE 9's `/cluster/ha/rules`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ha_rules: Vec<HaRuleSpec>,
    /// HA groups (PVE 8's `/cluster/ha/groups`). With a 9.x `version` they appear as the
    /// node-affinity rules `ha-group-<group>` PVE 9 migrates them to, and the groups endpoints
    /// answer that they have been migrated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ha_groups: Vec<HaGroupSpec>,
    /// Backup jobs (`jobs.cfg`), optionally with their last scheduled run seeded into the task
    /// archive (see `crate::sim::backup`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_jobs: Vec<super::backup::BackupJobSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    pub version: String,
    pub release: String,
    pub repoid: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    pub ip: String,
    pub cpu_model: String,
    pub sockets: u32,
    /// Physical cores (all sockets).
    pub cores: u32,
    /// Logical threads (all sockets).
    pub threads: u32,
    pub memory_gib: u64,
    pub swap_gib: u64,
    pub rootfs_gib: u64,
    /// Memory the host itself uses, without guests.
    pub base_mem_gib: f64,
    /// Host CPU load without guests (fraction 0..1).
    pub base_cpu: f64,
    /// Uptime in seconds at simulator start.
    pub uptime: u64,
    pub kernel: String,
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub online: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSpec {
    pub id: String,
    /// `dir`, `lvmthin`, `nfs`.
    #[serde(rename = "type")]
    pub stype: String,
    pub content: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared: bool,
    /// Capacity; per node for local storages, once for shared ones.
    pub total_gib: u64,
    /// Space used by things the simulator does not model (filesystem overhead, other data).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub base_used_gib: f64,
    /// `path` (dir, nfs mount point), `vgname`/`thinpool` (lvmthin), `server`/`export` (nfs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub props: BTreeMap<String, String>,
}

/// A volume that does not belong to a guest's config: ISO, cloud image, snippet, template,
/// backup — or a guest image no config drive carries (`vm-N-disk-K` on a storage for images: an
/// orphan of a deleted guest, a leftover, or a disk a config lists as `unusedN`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Full volume id, e.g. `local:iso/debian-12.iso`.
    pub volid: String,
    /// Node holding it; omit for shared storages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub size: u64,
    /// Disk images: the virtual size `qemu-img info` reports (default: the file size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protected: bool,
}

/// A guest. The simulator expands this into a full qm-style config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub running: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub template: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// With `lock: backup`: a `vzdump` task runs for this many seconds (× time scale) from
    /// the start and clears the lock when it ends, as a backup job would. Omit to hold the
    /// lock until released ([`crate::sim::SimHandle::release_lock`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub protection: bool,
    pub cores: u32,
    /// MiB.
    pub memory: u64,
    /// Storage of the boot disk (scsi0) and efidisk.
    pub storage: String,
    /// Boot disk size in GiB.
    pub disk_gib: u64,
    /// Seconds the guest has been running at simulator start.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub uptime: u64,
    /// CPU usage (fraction of its vCPUs) while running.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub cpu_usage: f64,
    /// Guest memory usage (fraction of maxmem) while running.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub mem_usage: f64,
    /// Extra or overriding config keys, written exactly as in a qm config.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// The guest OS ignores ACPI power-button events: `status/shutdown` never completes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignores_acpi: bool,
    /// HA-managed (`vm:<vmid>` in `resources.cfg`): `true` for PVE's defaults (`state:
    /// started`, `max_restart: 1`, `max_relocate: 1`) or the resource's options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaField>,
    /// Snapshots the guest has (its config's `[name]` sections), oldest first; the current
    /// state's `parent` is the last one unless `config: { parent: ... }` names another.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotSpec>,
}

/// A snapshot of a scenario guest: the guest's config as it was (the expanded config with
/// `config` applied on top), `snaptime` = simulator start - `snaptime_ago`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    /// A `pve-configid` (`[a-z][a-z0-9_-]+`, at most 40 characters), not `current`/`pending`.
    pub name: String,
    /// The snapshot this one was taken after (omit for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Taken with RAM (`vmstate=1` on a running guest): a `vm-N-state-<name>` volume on the
    /// storage PVE picks for it, and `runningmachine`/`runningcpu` in the section.
    #[serde(default, skip_serializing_if = "is_false")]
    pub vmstate: bool,
    /// Seconds before simulator start the snapshot was taken.
    pub snaptime_ago: u64,
    /// Config keys that differed when the snapshot was taken (`key: value` as in a qm config).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// A guest's `ha:` entry: `true`/`false`, or the HA resource's options.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum HaField {
    Flag(bool),
    Spec(HaSpec),
}

impl HaField {
    /// The resource options, `None` when the guest is not HA-managed.
    pub fn spec(&self) -> Option<HaSpec> {
        match self {
            HaField::Flag(false) => None,
            HaField::Flag(true) => Some(HaSpec::default()),
            HaField::Spec(s) => Some(s.clone()),
        }
    }
}

/// Options of an HA resource (`ha-manager add vm:N --state ...`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HaSpec {
    /// `started` (default), `stopped`, `disabled` or `ignored`.
    #[serde(default = "default_ha_state")]
    pub state: String,
    /// A group of `ha_groups` (PVE 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default = "default_one")]
    pub max_restart: u32,
    #[serde(default = "default_one")]
    pub max_relocate: u32,
    /// PVE 9: migrate back to the highest-priority node of its node-affinity rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Default for HaSpec {
    fn default() -> Self {
        HaSpec {
            state: default_ha_state(),
            group: None,
            max_restart: 1,
            max_relocate: 1,
            failback: None,
            comment: None,
        }
    }
}

/// A PVE 9 HA node-affinity rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HaRuleSpec {
    pub rule: String,
    /// `vm:1012,vm:1013`.
    pub resources: String,
    /// `pve01:2,pve02:1,pve03` (priority defaults to 0).
    pub nodes: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A PVE 8 HA group.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HaGroupSpec {
    pub group: String,
    /// `pve01:2,pve02:1,pve03`.
    pub nodes: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub restricted: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nofailback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

fn default_ha_state() -> String {
    "started".to_string()
}

fn default_one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub userid: String,
    /// Login password for `POST /access/ticket` (a simulator's test password; users without
    /// one cannot log in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    pub name: String,
    pub privsep: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AclSpec {
    pub path: String,
    /// `user@realm` or `user@realm!token`.
    pub ugid: String,
    pub role: String,
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub propagate: bool,
}

/// A finished task in a node's task archive.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub node: String,
    #[serde(rename = "type")]
    pub ttype: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub user: String,
    /// Seconds before simulator start that the task started.
    pub ago: u64,
    pub duration: u64,
    /// `OK`, `WARNINGS: N` or an error text (then the log ends in `TASK ERROR: <text>`).
    pub exitstatus: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
}

pub(crate) fn default_true() -> bool {
    true
}

impl Scenario {
    /// The scenario shipped in `config/sim.yaml`.
    ///
    /// # Errors
    /// Only if the embedded file is broken (a build-time mistake the tests catch).
    pub fn embedded() -> Result<Scenario, SimError> {
        Self::parse(EMBEDDED, "embedded config/sim.yaml")
    }

    /// Reads and parses a scenario file.
    ///
    /// # Errors
    /// [`SimError::Scenario`] if the file cannot be read or does not match the shape.
    pub fn from_file(path: &Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| SimError::Scenario {
            origin: path.display().to_string(),
            message: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Scenario, SimError> {
        yaml_serde::from_str(text).map_err(|e| SimError::Scenario {
            origin: origin.to_string(),
            message: e.to_string(),
        })
    }
}

// `skip_serializing_if` helpers: a written scenario leaves out what the defaults hold.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
pub(crate) fn is_true(b: &bool) -> bool {
    *b
}
pub(crate) fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}
pub(crate) fn is_zero_u64(x: &u64) -> bool {
    *x == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_scenario_parses() {
        let s = Scenario::embedded().expect("embedded scenario parses");
        assert_eq!(s.nodes.len(), 3);
        assert!(s.vms.iter().any(|v| v.lock.is_some()));
        assert!(s.vms.iter().any(|v| v.protection));
    }

    #[test]
    fn from_file_rejects_unknown_fields_and_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, EMBEDDED).expect("write");
        assert_eq!(
            Scenario::from_file(&good).expect("parses").vms.len(),
            Scenario::embedded().expect("e").vms.len()
        );
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, format!("{EMBEDDED}\nsurprise: 1\n")).expect("write");
        let err = Scenario::from_file(&bad)
            .expect_err("unknown field rejected")
            .to_string();
        assert!(
            err.contains("bad.yaml") && err.contains("surprise"),
            "{err}"
        );
        let missing = Scenario::from_file(&dir.path().join("none.yaml"))
            .expect_err("missing file")
            .to_string();
        assert!(missing.contains("cannot read the file"), "{missing}");
    }

    #[test]
    fn inconsistent_scenarios_are_rejected() {
        let mut s = Scenario::embedded().expect("scenario");
        s.vms[0].node = "pve99".into();
        let err = super::super::state::State::from_scenario(&s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown node 'pve99'"), "{err}");
    }
}

//! Scenarios for large clusters: [`Scenario::generate`] builds N nodes of varied, realistic
//! sizes and M guests (mostly running, some stopped, some templates, a few with local disks on
//! `local-lvm`, the rest on a shared NFS export or a Ceph RBD pool, a few HA-managed, a few
//! pinned by a tag, a few locked — a backup running, a migration that left its lock — a few
//! protected, some with snapshots), a nightly backup job with its last run, and a short task
//! history per node; deterministic for a seed (the same spec gives the same scenario, and the
//! same bytes through [`Scenario::to_yaml`]). Running guest memory stays under
//! [`GenerateSpec::max_node_fill`] of every node, so any one node can be evacuated. Storages
//! are named as in `config/sim.yaml` (`local`, `local-lvm`, `nfs-shared`) plus `ceph-rbd`, and
//! users, tokens, roles and ACLs are the embedded scenario's.
//!
//! `proxmox-manager sim --generate 64x10000 --seed 1 --scenario-out FILE` writes one
//! ([`parse_size_spec`] reads the `NxM`).

use std::collections::BTreeMap;

use super::backup::{BackupJobSpec, LastRunSpec};
use super::scenario::{
    AclSpec, FileSpec, HaField, NodeSpec, Scenario, SnapshotSpec, StorageSpec, TaskSpec, TokenSpec,
    UserSpec, VersionSpec, VmSpec,
};

/// What [`Scenario::generate`] builds.
#[derive(Debug, Clone)]
pub struct GenerateSpec {
    pub nodes: usize,
    pub guests: usize,
    pub seed: u64,
    /// Share of the guests that are templates (on shared storage, ids from 100).
    pub template_fraction: f64,
    /// Share of the non-template guests that are stopped.
    pub stopped_fraction: f64,
    /// Share of the guests whose disks are on `local-lvm` (the rest on shared storage).
    pub local_disk_fraction: f64,
    /// Share of the shared-storage guests on the Ceph RBD pool `ceph-rbd` (the rest on
    /// `nfs-shared`).
    pub ceph_fraction: f64,
    /// Share of the running shared-storage guests that are HA-managed.
    pub ha_fraction: f64,
    /// Share of the guests tagged [`GenerateSpec::pin_tag`].
    pub pinned_fraction: f64,
    pub pin_tag: String,
    /// Running guests' memory stays at or below this share of each node's memory (guests that
    /// would not fit anywhere are created stopped).
    pub max_node_fill: f64,
    /// Share of the running guests holding a lock: most a `backup` whose vzdump task ends by
    /// itself (within an hour × the time scale), some a `migrate` lock a failed migration
    /// left behind.
    pub lock_fraction: f64,
    /// Share of the shared-storage guests with snapshots (one to three).
    pub snapshot_fraction: f64,
    /// Share of the `db` guests with `protection: 1`.
    pub protected_fraction: f64,
    /// A nightly backup job of every guest to `nfs-shared`, its last run seeded (archives and
    /// tasks), a few guests failing.
    pub backup_job: bool,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        GenerateSpec {
            nodes: 16,
            guests: 400,
            seed: 1,
            template_fraction: 0.03,
            stopped_fraction: 0.15,
            local_disk_fraction: 0.1,
            ceph_fraction: 0.5,
            ha_fraction: 0.05,
            pinned_fraction: 0.03,
            pin_tag: "pinned".into(),
            max_node_fill: 0.5,
            lock_fraction: 0.004,
            snapshot_fraction: 0.05,
            protected_fraction: 0.3,
            backup_job: true,
        }
    }
}

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Node sizes, smallest first: (memory GiB, sockets, cores, threads, cpu model). A cluster
/// uses five neighbours of this ladder, weighted by [`SIZE_WEIGHTS`]: the smallest five whose
/// average holds the guests' running memory under [`GenerateSpec::max_node_fill`] (dense
/// clusters get bigger nodes, as real ones do).
const NODE_PROFILES: &[(u64, u32, u32, u32, &str)] = &[
    (128, 1, 16, 32, "AMD EPYC 7302P 16-Core Processor"),
    (256, 1, 24, 48, "AMD EPYC 7443P 24-Core Processor"),
    (384, 2, 56, 112, "Intel(R) Xeon(R) Gold 6330 CPU @ 2.00GHz"),
    (512, 2, 64, 128, "AMD EPYC 9354 32-Core Processor"),
    (768, 2, 96, 192, "AMD EPYC 9474F 48-Core Processor"),
    (1024, 2, 128, 256, "AMD EPYC 9554 64-Core Processor"),
    (1536, 2, 192, 384, "AMD EPYC 9654 96-Core Processor"),
    (2048, 2, 192, 384, "AMD EPYC 9654 96-Core Processor"),
    (3072, 2, 256, 512, "AMD EPYC 9754 128-Core Processor"),
];

/// Shares of the five sizes a cluster uses, smallest first.
const SIZE_WEIGHTS: [u32; 5] = [20, 35, 25, 15, 5];

/// Guest memory sizes (GiB), drawn uniformly: mostly small guests.
const GUEST_MEM_GIB: [u64; 9] = [1, 1, 2, 2, 2, 4, 4, 8, 16];

/// The first of the five node sizes for this many guests per node.
fn size_window(spec: &GenerateSpec, nodes: usize) -> usize {
    let mean_guest = GUEST_MEM_GIB.iter().sum::<u64>() as f64 / GUEST_MEM_GIB.len() as f64;
    let running = 1.0 - spec.template_fraction - spec.stopped_fraction;
    let per_node = spec.guests as f64 / nodes as f64 * running.max(0.0) * mean_guest;
    // 10 % headroom: first-fit placement does not fill every node to the limit
    let need = per_node / spec.max_node_fill.clamp(0.05, 1.0) * 1.1;
    let total: u32 = SIZE_WEIGHTS.iter().sum();
    let last = NODE_PROFILES.len() - SIZE_WEIGHTS.len();
    (0..=last)
        .find(|&start| {
            let mean: f64 = SIZE_WEIGHTS
                .iter()
                .zip(&NODE_PROFILES[start..])
                .map(|(w, p)| f64::from(*w) * p.0 as f64)
                .sum::<f64>()
                / f64::from(total);
            mean >= need
        })
        .unwrap_or(last)
}

const ROLES: &[&str] = &[
    "web",
    "app",
    "api",
    "db",
    "cache",
    "k8s-worker",
    "ci",
    "mon",
    "mail",
    "proxy",
];

impl Scenario {
    /// A large scenario, the same for the same spec.
    pub fn generate(spec: &GenerateSpec) -> Scenario {
        let mut rng = Rng(spec.seed ^ 0x5eed_0fc1_u64);
        let n_nodes = spec.nodes.max(1);
        let width = n_nodes.to_string().len().max(2);
        let total_weight: u32 = SIZE_WEIGHTS.iter().sum();
        let profiles = &NODE_PROFILES[size_window(spec, n_nodes)..];
        let mut nodes = Vec::with_capacity(n_nodes);
        for i in 0..n_nodes {
            let mut w = rng.below(total_weight as usize) as u32;
            let k = SIZE_WEIGHTS
                .iter()
                .position(|sw| {
                    if w < *sw {
                        true
                    } else {
                        w -= sw;
                        false
                    }
                })
                .unwrap_or(0);
            let p = &profiles[k];
            nodes.push(NodeSpec {
                name: format!("pve{:0width$}", i + 1),
                ip: format!("10.10.{}.{}", i / 200, 11 + i % 200),
                cpu_model: p.4.to_string(),
                sockets: p.1,
                cores: p.2,
                threads: p.3,
                memory_gib: p.0,
                swap_gib: 8,
                rootfs_gib: 94,
                base_mem_gib: 2.0 + (p.0 as f64 / 64.0).min(6.0),
                base_cpu: 0.01 + rng.unit() * 0.04,
                uptime: 86_400 + rng.below(200) as u64 * 86_400 + rng.below(86_400) as u64,
                kernel: "6.14.11-4-pve".into(),
                online: true,
            });
        }
        let n_templates = ((spec.guests as f64 * spec.template_fraction).round() as usize)
            .min(spec.guests)
            .min(899);
        let shared_gib = 4000u64.max(spec.guests as u64 * 120);
        let storages = vec![
            StorageSpec {
                id: "local".into(),
                stype: "dir".into(),
                content: vec![
                    "iso".into(),
                    "vztmpl".into(),
                    "snippets".into(),
                    "import".into(),
                    "backup".into(),
                ],
                shared: false,
                total_gib: 94,
                base_used_gib: 9.4,
                props: BTreeMap::from([("path".into(), "/var/lib/vz".into())]),
            },
            StorageSpec {
                id: "local-lvm".into(),
                stype: "lvmthin".into(),
                content: vec!["images".into(), "rootdir".into()],
                shared: false,
                total_gib: 1800,
                base_used_gib: 0.0,
                props: BTreeMap::from([
                    ("vgname".into(), "pve".into()),
                    ("thinpool".into(), "data".into()),
                ]),
            },
            StorageSpec {
                id: "nfs-shared".into(),
                stype: "nfs".into(),
                content: vec![
                    "images".into(),
                    "iso".into(),
                    "backup".into(),
                    "import".into(),
                ],
                shared: true,
                total_gib: shared_gib,
                base_used_gib: shared_gib as f64 * 0.1,
                props: BTreeMap::from([
                    ("server".into(), "10.10.250.50".into()),
                    ("export".into(), "/srv/pve".into()),
                    ("path".into(), "/mnt/pve/nfs-shared".into()),
                ]),
            },
            StorageSpec {
                id: "ceph-rbd".into(),
                stype: "rbd".into(),
                content: vec!["images".into(), "rootdir".into()],
                shared: true,
                total_gib: shared_gib,
                base_used_gib: shared_gib as f64 * 0.05,
                props: BTreeMap::from([
                    ("pool".into(), "vm-pool".into()),
                    ("krbd".into(), "0".into()),
                ]),
            },
        ];
        let files = vec![FileSpec {
            volid: "nfs-shared:iso/ubuntu-24.04.3-live-server-amd64.iso".into(),
            node: None,
            size: 3_213_064_192,
            virtual_size: None,
            notes: None,
            protected: false,
        }];
        // running memory per node (MiB) against its budget
        let budget: Vec<u64> = nodes
            .iter()
            .map(|n| (n.memory_gib as f64 * 1024.0 * spec.max_node_fill) as u64)
            .collect();
        let mut used = vec![0u64; nodes.len()];
        let mut vms = Vec::with_capacity(spec.guests);
        for t in 0..n_templates {
            let node = rng.below(nodes.len());
            vms.push(VmSpec {
                vmid: 100 + t as u32,
                node: nodes[node].name.clone(),
                name: format!("tmpl-{}", t + 1),
                running: false,
                template: true,
                tags: Some("template".into()),
                lock: None,
                lock_secs: None,
                protection: false,
                cores: 2,
                memory: 2048,
                storage: "nfs-shared".into(),
                disk_gib: 4 + rng.below(4) as u64 * 4,
                uptime: 0,
                cpu_usage: 0.0,
                mem_usage: 0.0,
                config: BTreeMap::new(),
                snapshots: Vec::new(),
                ignores_acpi: false,
                ha: None,
            });
        }
        let mut backed_up = Vec::new();
        let mems_gib = GUEST_MEM_GIB;
        let cores: [u32; 7] = [1, 2, 2, 2, 4, 4, 8];
        for g in 0..spec.guests - n_templates {
            let vmid = 1000 + g as u32;
            let memory = rng.pick(&mems_gib) * 1024;
            let cores = *rng.pick(&cores);
            let local = rng.chance(spec.local_disk_fraction);
            let pinned = rng.chance(spec.pinned_fraction);
            let mut running = !rng.chance(spec.stopped_fraction);
            let start = rng.below(nodes.len());
            let fits = (0..nodes.len())
                .map(|k| (start + k) % nodes.len())
                .find(|i| used[*i] + memory <= budget[*i]);
            let node = match (running, fits) {
                (true, Some(i)) => {
                    used[i] += memory;
                    i
                }
                (true, None) => {
                    running = false;
                    start
                }
                (false, _) => start,
            };
            let ha = running && !local && rng.chance(spec.ha_fraction / 0.8);
            let role = *rng.pick(ROLES);
            let env = if rng.chance(0.6) { "prod" } else { "staging" };
            let mut tags = vec![role.to_string(), env.to_string()];
            if pinned {
                tags.push(spec.pin_tag.clone());
            }
            tags.sort();
            let storage = if local {
                "local-lvm"
            } else if rng.chance(spec.ceph_fraction) {
                "ceph-rbd"
            } else {
                "nfs-shared"
            };
            let (lock, lock_secs) = if running && !ha && rng.chance(spec.lock_fraction) {
                if rng.chance(0.75) {
                    (
                        Some("backup".to_string()),
                        Some(300.0 + rng.below(3300) as f64),
                    )
                } else {
                    (Some("migrate".to_string()), None)
                }
            } else {
                (None, None)
            };
            let protection = role == "db" && rng.chance(spec.protected_fraction);
            // snapshots on shared storage only: local ones would keep the guest from migrating
            let snapshots = if !local && rng.chance(spec.snapshot_fraction) {
                snapshots(&mut rng)
            } else {
                Vec::new()
            };
            backed_up.push(vmid);
            vms.push(VmSpec {
                vmid,
                node: nodes[node].name.clone(),
                name: format!("{role}-{vmid}"),
                running,
                template: false,
                tags: Some(tags.join(";")),
                lock,
                lock_secs,
                protection,
                cores,
                memory,
                storage: storage.into(),
                disk_gib: 8 + rng.below(25) as u64 * 8,
                uptime: if running {
                    3600 + rng.below(90 * 86_400) as u64
                } else {
                    0
                },
                cpu_usage: if running {
                    0.01 + rng.unit() * 0.5
                } else {
                    0.0
                },
                mem_usage: if running {
                    0.3 + rng.unit() * 0.55
                } else {
                    0.0
                },
                config: BTreeMap::new(),
                snapshots,
                ignores_acpi: false,
                ha: ha.then_some(HaField::Flag(true)),
            });
        }
        let mut tasks = Vec::new();
        for n in &nodes {
            let here: Vec<u32> = vms
                .iter()
                .filter(|v| v.node == n.name && v.running)
                .map(|v| v.vmid)
                .collect();
            tasks.extend(node_tasks(&mut rng, &n.name, &here));
        }
        let mut backup_jobs = Vec::new();
        if spec.backup_job && !backed_up.is_empty() {
            // a few guests failed last night
            let mut failed = BTreeMap::new();
            for _ in 0..(backed_up.len() / 500).max(1) {
                let v = backed_up[rng.below(backed_up.len())];
                failed.insert(v, "job failed with err -5 - Input/output error".to_string());
            }
            backup_jobs.push(BackupJobSpec {
                id: "backup-nightly".into(),
                schedule: "02:00".into(),
                storage: Some("nfs-shared".into()),
                vmid: None,
                all: true,
                exclude: None,
                pool: None,
                node: None,
                mode: Some("snapshot".into()),
                compress: Some("zstd".into()),
                enabled: true,
                notes_template: Some("{{guestname}}".into()),
                comment: Some("every guest, every night".into()),
                prune_backups: Some("keep-last=3".into()),
                repeat_missed: false,
                last_run: Some(LastRunSpec { failed }),
            });
        }
        let (roles, users, acl) = match Scenario::embedded() {
            Ok(e) => (e.roles, e.users, e.acl),
            Err(_) => (
                BTreeMap::new(),
                vec![UserSpec {
                    userid: "root@pam".into(),
                    password: None,
                    tokens: vec![TokenSpec {
                        name: "admin".into(),
                        privsep: false,
                        comment: String::new(),
                    }],
                }],
                vec![AclSpec {
                    path: "/".into(),
                    ugid: "root@pam".into(),
                    role: "Administrator".into(),
                    propagate: true,
                }],
            ),
        };
        Scenario {
            cluster: format!("sim-large-{n_nodes}"),
            version: VersionSpec {
                version: "9.1.1".into(),
                release: "9.1".into(),
                repoid: "42ab3dc1e7b4a9f0".into(),
            },
            nodes,
            storages,
            files,
            vms,
            cts: Vec::new(),
            roles,
            users,
            acl,
            tasks,
            ha_rules: Vec::new(),
            ha_groups: Vec::new(),
            backup_jobs,
        }
    }

    /// The scenario as a YAML file `Scenario::from_file` reads back (fields at their defaults
    /// left out); the same scenario always gives the same bytes.
    ///
    /// # Errors
    /// Only if serialization fails (a bug).
    pub fn to_yaml(&self) -> Result<String, super::SimError> {
        yaml_serde::to_string(self).map_err(|e| super::SimError::Scenario {
            origin: "scenario".into(),
            message: format!("cannot write it as YAML: {e}"),
        })
    }
}

/// Reads a cluster size `NxM` (`64x10000`: 64 nodes, 10,000 guests).
///
/// # Errors
/// A message naming the value, the expected form and the limits.
pub fn parse_size_spec(s: &str) -> Result<(usize, usize), String> {
    let bad = || {
        format!(
            "cluster size '{s}' is not NODESxGUESTS: write it like 64x10000 (1 to {MAX_NODES} nodes, 1 to {MAX_GUESTS} guests)"
        )
    };
    let (n, m) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    let m: usize = m.trim().parse().map_err(|_| bad())?;
    if !(1..=MAX_NODES).contains(&n) || !(1..=MAX_GUESTS).contains(&m) {
        return Err(bad());
    }
    Ok((n, m))
}

/// The largest cluster [`parse_size_spec`] accepts (node names `pveNN`, node addresses in
/// 10.10.0.0/16).
pub const MAX_NODES: usize = 1000;
/// Guests: VMIDs from 1000 stay below PVE's limit (999,999,999) by far; the bound keeps a
/// typo from filling the disk.
pub const MAX_GUESTS: usize = 200_000;

/// One to three snapshots, oldest first, each after the one before.
fn snapshots(rng: &mut Rng) -> Vec<SnapshotSpec> {
    const NAMES: &[(&str, &str)] = &[
        ("baseline", "after provisioning"),
        ("pre-upgrade", "before the OS upgrade"),
        ("before-patch", "before the monthly patch run"),
    ];
    let n = 1 + rng.below(3);
    let mut ago = 86_400 * (30 + rng.below(150) as u64);
    let mut out: Vec<SnapshotSpec> = Vec::with_capacity(n);
    for (name, description) in NAMES.iter().take(n) {
        out.push(SnapshotSpec {
            name: (*name).to_string(),
            parent: out.last().map(|p| p.name.clone()),
            description: Some((*description).to_string()),
            vmstate: false,
            snaptime_ago: ago,
            config: BTreeMap::new(),
        });
        ago = ago
            .saturating_sub(86_400 * (1 + rng.below(20) as u64))
            .max(3600);
    }
    out
}

/// A node's recent task history: guest starts, a migration, an update check.
fn node_tasks(rng: &mut Rng, node: &str, guests: &[u32]) -> Vec<TaskSpec> {
    let mut out = Vec::new();
    let user = "root@pam".to_string();
    let pick = |rng: &mut Rng| guests.get(rng.below(guests.len())).copied();
    let mut ago = 3600 * (2 + rng.below(20) as u64);
    for k in 0..4 {
        let (ttype, id, duration, log) = match (k, pick(rng)) {
            (0, _) => (
                "aptupdate",
                String::new(),
                6,
                vec!["starting apt-get update".to_string()],
            ),
            (1, Some(v)) => (
                "qmigrate",
                v.to_string(),
                40 + rng.below(200) as u64,
                vec![
                    format!("starting migration of VM {v}"),
                    "migration finished successfully".into(),
                ],
            ),
            (_, Some(v)) => ("qmstart", v.to_string(), 2, Vec::new()),
            (_, None) => continue,
        };
        out.push(TaskSpec {
            node: node.to_string(),
            ttype: ttype.to_string(),
            id,
            user: user.clone(),
            ago,
            duration,
            exitstatus: "OK".into(),
            log,
        });
        ago += 3600 * (1 + rng.below(30) as u64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::state::State;

    #[test]
    fn generation_is_deterministic_per_seed() {
        let spec = GenerateSpec {
            nodes: 8,
            guests: 200,
            seed: 42,
            ..GenerateSpec::default()
        };
        let a = format!("{:?}", Scenario::generate(&spec));
        let b = format!("{:?}", Scenario::generate(&spec));
        assert_eq!(a, b);
        let other = GenerateSpec { seed: 43, ..spec };
        assert_ne!(a, format!("{:?}", Scenario::generate(&other)));
    }

    #[test]
    fn one_pass_usage_matches_the_per_item_functions() {
        let s = Scenario::generate(&GenerateSpec {
            nodes: 8,
            guests: 600,
            seed: 9,
            ..GenerateSpec::default()
        });
        let st = State::from_scenario(&s).expect("state");
        let u = st.usage();
        for (ni, n) in st.nodes.iter().enumerate() {
            assert_eq!(u.node_mem[ni], st.node_mem_used(n), "{}", n.name);
            assert_eq!(
                u.node_cpu[ni].to_bits(),
                st.node_cpu(n).to_bits(),
                "{}",
                n.name
            );
            assert_eq!(u.rootfs[ni], st.rootfs_used(n), "{}", n.name);
            for (si, sto) in st.storages.iter().enumerate() {
                assert_eq!(
                    u.storage(si, ni),
                    st.storage_used(&sto.id, Some(&n.name)),
                    "{} {}",
                    n.name,
                    sto.id
                );
            }
        }
    }

    #[test]
    fn sizes_parse_with_clear_errors() {
        assert_eq!(parse_size_spec("64x10000"), Ok((64, 10_000)));
        assert_eq!(parse_size_spec(" 3X5 "), Ok((3, 5)));
        for bad in ["64", "x", "0x5", "5x0", "-1x5", "64x10000x2", "a x b"] {
            let e = parse_size_spec(bad).expect_err(bad);
            assert!(
                e.contains(&format!("'{bad}'")) && e.contains("64x10000"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_large_cluster_is_accepted_and_evacuable() {
        let spec = GenerateSpec {
            nodes: 64,
            guests: 2000,
            seed: 7,
            ..GenerateSpec::default()
        };
        let s = Scenario::generate(&spec);
        assert_eq!(s.nodes.len(), 64);
        assert_eq!(s.vms.len(), 2000);
        let st = State::from_scenario(&s).expect("the state accepts the generated scenario");
        assert_eq!(st.vms.len(), 2000);
        // realistic mix
        let count = |f: &dyn Fn(&VmSpec) -> bool| s.vms.iter().filter(|v| f(v)).count();
        let running = count(&|v| v.running);
        assert!(running > 1400, "{running} running");
        assert!(count(&|v| v.template) > 20);
        assert!(count(&|v| !v.running && !v.template) > 150);
        assert!(count(&|v| v.storage == "local-lvm") > 100);
        assert!(count(&|v| v.ha.is_some()) > 40);
        assert!(count(&|v| v.tags.as_deref().is_some_and(|t| t.contains("pinned"))) > 20);
        assert!(
            s.vms
                .iter()
                .all(|v| (1024..=16 * 1024).contains(&v.memory) && (1..=8).contains(&v.cores))
        );
        let sizes: std::collections::BTreeSet<u64> = s.nodes.iter().map(|n| n.memory_gib).collect();
        assert!(sizes.len() >= 3, "varied node sizes: {sizes:?}");
        // running memory per node stays under the fill limit; the cluster has room to spare
        let mut per_node: BTreeMap<&str, u64> = BTreeMap::new();
        for v in s.vms.iter().filter(|v| v.running) {
            *per_node.entry(v.node.as_str()).or_default() += v.memory;
        }
        let mut total_mem = 0;
        for n in &s.nodes {
            let used = per_node.get(n.name.as_str()).copied().unwrap_or(0);
            assert!(
                used as f64 <= n.memory_gib as f64 * 1024.0 * 0.5,
                "{}",
                n.name
            );
            total_mem += n.memory_gib * 1024;
        }
        let running_mem: u64 = per_node.values().sum();
        assert!((running_mem as f64) < total_mem as f64 * 0.5);
        // every node's running guests fit into the others' free memory
        for n in &s.nodes {
            let own = per_node.get(n.name.as_str()).copied().unwrap_or(0);
            let free_elsewhere: u64 = s
                .nodes
                .iter()
                .filter(|m| m.name != n.name)
                .map(|m| m.memory_gib * 1024 - per_node.get(m.name.as_str()).copied().unwrap_or(0))
                .sum();
            assert!(own < free_elsewhere);
        }
    }
}

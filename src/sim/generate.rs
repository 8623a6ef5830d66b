//! Scenarios for large clusters: [`Scenario::generate`] builds N nodes of varied, realistic
//! sizes and M guests (mostly running, some stopped, some templates, a few with local disks on
//! `local-lvm`, a few HA-managed, a few pinned by a tag), deterministic for a seed. Running
//! guest memory stays under [`GenerateSpec::max_node_fill`] of every node, so any one node can
//! be evacuated. Storages are named as in `config/sim.yaml` (`local`, `local-lvm`,
//! `nfs-shared`), and users, tokens, roles and ACLs are the embedded scenario's.

use std::collections::BTreeMap;

use super::scenario::{
    AclSpec, FileSpec, HaField, NodeSpec, Scenario, StorageSpec, TokenSpec, UserSpec, VersionSpec,
    VmSpec,
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
    /// Share of the guests whose disks are on `local-lvm` (the rest on `nfs-shared`).
    pub local_disk_fraction: f64,
    /// Share of the running shared-storage guests that are HA-managed.
    pub ha_fraction: f64,
    /// Share of the guests tagged [`GenerateSpec::pin_tag`].
    pub pinned_fraction: f64,
    pub pin_tag: String,
    /// Running guests' memory stays at or below this share of each node's memory (guests that
    /// would not fit anywhere are created stopped).
    pub max_node_fill: f64,
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
            ha_fraction: 0.05,
            pinned_fraction: 0.03,
            pin_tag: "pinned".into(),
            max_node_fill: 0.5,
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

/// (memory GiB, sockets, cores, threads, cpu model, weight).
const NODE_PROFILES: &[(u64, u32, u32, u32, &str, u32)] = &[
    (128, 1, 16, 32, "AMD EPYC 7302P 16-Core Processor", 20),
    (256, 1, 24, 48, "AMD EPYC 7443P 24-Core Processor", 35),
    (
        384,
        2,
        56,
        112,
        "Intel(R) Xeon(R) Gold 6330 CPU @ 2.00GHz",
        25,
    ),
    (512, 2, 64, 128, "AMD EPYC 9354 32-Core Processor", 15),
    (768, 2, 96, 192, "AMD EPYC 9474F 48-Core Processor", 5),
];

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
        let total_weight: u32 = NODE_PROFILES.iter().map(|p| p.5).sum();
        let mut nodes = Vec::with_capacity(n_nodes);
        for i in 0..n_nodes {
            let mut w = rng.below(total_weight as usize) as u32;
            let p = NODE_PROFILES
                .iter()
                .find(|p| {
                    if w < p.5 {
                        true
                    } else {
                        w -= p.5;
                        false
                    }
                })
                .unwrap_or(&NODE_PROFILES[0]);
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
        let mems_gib: [u64; 9] = [1, 1, 2, 2, 2, 4, 4, 8, 16];
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
            vms.push(VmSpec {
                vmid,
                node: nodes[node].name.clone(),
                name: format!("{role}-{vmid}"),
                running,
                template: false,
                tags: Some(tags.join(";")),
                lock: None,
                lock_secs: None,
                protection: false,
                cores,
                memory,
                storage: if local { "local-lvm" } else { "nfs-shared" }.into(),
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
                snapshots: Vec::new(),
                ignores_acpi: false,
                ha: ha.then_some(HaField::Flag(true)),
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
            roles,
            users,
            acl,
            tasks: Vec::new(),
            ha_rules: Vec::new(),
            ha_groups: Vec::new(),
            backup_jobs: Vec::new(),
        }
    }
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

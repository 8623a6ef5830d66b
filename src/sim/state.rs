//! The cluster state model: nodes, storages, volumes, guests (with qm-style configs), access
//! control and tasks, built from a [`Scenario`]. Everything lives behind one `RwLock` in
//! [`Shared`]: read handlers share it ([`Shared::read`]), writes take it alone
//! ([`Shared::lock`]); both hold it briefly and never across an `.await`, so later issues
//! (clone, migrate, ...) mutate state through the same helpers without lock ordering concerns,
//! and a large listing never blocks the other reads.

use std::collections::BTreeMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::SimError;
use super::auth::Access;
use super::scenario::Scenario;
use super::seed;
use super::tasks::TaskRegistry;

pub const GIB: u64 = 1024 * 1024 * 1024;
pub const MIB: u64 = 1024 * 1024;

/// State shared by the HTTP handlers and the task engine.
pub struct Shared {
    state: RwLock<State>,
    /// 1.0 = real PVE durations.
    pub time_scale: f64,
    /// What clients asked for, newest last, bounded: a debugging aid for users of the
    /// simulator and the input of the schema-conformance test of the client.
    journal: Mutex<std::collections::VecDeque<RecordedRequest>>,
    /// HTTP requests received by the API front since start (every one, answered or refused).
    pub requests: std::sync::atomic::AtomicU64,
}

/// One request as received: method, path below `/api2/json`, and the names of the query and
/// body parameters (never their values, which may carry secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub params: Vec<String>,
}

/// Requests kept in the journal; older ones are dropped first.
pub const JOURNAL_LIMIT: usize = 10_000;

impl Shared {
    pub fn new(state: State, time_scale: f64) -> Shared {
        Shared {
            state: RwLock::new(state),
            time_scale,
            journal: Mutex::new(std::collections::VecDeque::new()),
            requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn record(&self, r: RecordedRequest) {
        let mut j = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        if j.len() == JOURNAL_LIMIT {
            j.pop_front();
        }
        j.push_back(r);
    }

    pub fn journal(&self) -> Vec<RecordedRequest> {
        let j = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        j.iter().cloned().collect()
    }

    /// A PVE duration scaled by the time scale (saturating, never panicking).
    pub fn scaled(&self, secs: f64) -> std::time::Duration {
        std::time::Duration::try_from_secs_f64(secs * self.time_scale)
            .unwrap_or(std::time::Duration::from_secs(86_400 * 365))
    }

    /// Locks the state for writing (alone). A poisoned lock (a panicking holder) still yields
    /// the data: the simulator prefers serving a possibly half-updated state to failing every
    /// request.
    pub fn lock(&self) -> StateWrite<'_> {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.writing = true;
        StateWrite(st, true)
    }

    /// Locks the state for reading, shared with other readers (poisoning as [`Shared::lock`]).
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The state locked for writing. Whoever holds it may change anything, so letting go of it
/// starts a new generation: a listing rendered before, or meanwhile, is not served again —
/// unless the holder declares it changed nothing a listing shows ([`StateWrite::unchanged`]).
pub struct StateWrite<'a>(RwLockWriteGuard<'a, State>, bool);

impl StateWrite<'_> {
    /// The holder changed nothing any listing is rendered from (the HA manager's idle round,
    /// which only stamps its own clock): letting go keeps the current generation, so the big
    /// listings rendered before stay valid instead of being rendered again by the next reader.
    pub fn unchanged(&mut self) {
        self.1 = false;
    }
}

impl std::ops::Deref for StateWrite<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl std::ops::DerefMut for StateWrite<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

impl Drop for StateWrite<'_> {
    fn drop(&mut self) {
        self.0.writing = false;
        if self.1 {
            self.0.generation = self.0.generation.wrapping_add(1);
        }
    }
}

pub struct State {
    pub cluster: String,
    pub version: (String, String, String),
    pub nodes: Vec<Node>,
    pub storages: Vec<Storage>,
    pub files: Vec<Volume>,
    /// Guest image volumes no config drive carries (imported disks referenced as `unusedN`,
    /// `pvesm alloc` results, orphans): `content` is `images`, `virtual_size` unused.
    pub images: Vec<Volume>,
    /// Volumes removed from their storage (`DELETE .../content/{volume}`) while a config —
    /// a drive, or a snapshot's drive or `vmstate` — still names them: PVE frees them without
    /// looking at configs, so the reference dangles (see `snapshot.rs`).
    pub freed_volumes: std::collections::BTreeSet<String>,
    /// Plain (non-storage) files of each node's filesystem, written over SSH.
    pub node_files: BTreeMap<String, BTreeMap<String, super::ssh::fs::NodeFile>>,
    /// The guests, with what the listings derive from each (see `guests.rs`).
    pub vms: super::guests::Guests,
    pub access: Access,
    pub tasks: TaskRegistry,
    /// Unix time of simulator start; uptimes grow from here.
    pub started: i64,
    /// Fault injection set through `SimHandle` (see `faults.rs`).
    pub faults: super::faults::Faults,
    /// HA resources, rules and the CRM's state (see `ha.rs`).
    pub ha: super::ha::HaState,
    /// Backup jobs, archived guest configs, backup faults (see `backup/`).
    pub backup: super::backup::BackupState,
    /// Bumped by every write lock ([`Shared::lock`]): what a rendered listing was made of.
    pub generation: u64,
    /// Locked for writing: the state may change under a reader (a handler run as root inside
    /// a write), so nothing is served from or kept in the caches meanwhile.
    pub writing: bool,
    /// Big listings of the current generation (see `api/listing.rs`).
    pub listings: super::api::listing::ListingCache,
    /// [`State::usage`] of the current generation.
    usage_cache: Mutex<Option<(u64, std::sync::Arc<Usage>)>>,
}

pub struct Node {
    pub name: String,
    pub nodeid: u32,
    pub ip: String,
    pub online: bool,
    pub cpu_model: String,
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
    pub mem_total: u64,
    pub swap_total: u64,
    pub rootfs_total: u64,
    pub base_mem: u64,
    pub base_cpu: f64,
    pub uptime0: u64,
    pub kernel: String,
}

pub struct Storage {
    pub id: String,
    pub stype: String,
    pub content: Vec<String>,
    pub shared: bool,
    pub total: u64,
    pub base_used: u64,
    pub props: BTreeMap<String, String>,
}

/// A volume that is not a guest disk (guest disks are derived from configs).
#[derive(Clone)]
pub struct Volume {
    pub volid: String,
    pub storage: String,
    /// `None` on shared storage.
    pub node: Option<String>,
    pub content: String,
    pub format: String,
    pub size: u64,
    /// Disk images (`import` content): the image's virtual size; `None` = the file size.
    pub virtual_size: Option<u64>,
    pub vmid: Option<u32>,
    pub ctime: i64,
    pub notes: Option<String>,
    pub protected: bool,
    /// The bytes' digests (and the bytes of small files) when the simulator saw them
    /// (written over SSH/SFTP); `None` for seeded and API-created volumes.
    pub body: Option<Body>,
}

impl Volume {
    /// A freshly allocated guest disk image not (yet) in any config: what `qm disk import`
    /// and `pvesm alloc` create.
    pub fn new_image(
        volid: &str,
        storage: &Storage,
        node: &str,
        format: String,
        size: u64,
        vmid: u32,
    ) -> Volume {
        Volume {
            volid: volid.to_string(),
            storage: storage.id.clone(),
            node: (!storage.shared).then(|| node.to_string()),
            content: "images".into(),
            format,
            size,
            virtual_size: None,
            vmid: Some(vmid),
            ctime: now(),
            notes: None,
            protected: false,
            body: None,
        }
    }
}

/// What the simulator keeps of a file's bytes: digests always, the bytes themselves only for
/// small files (see `ssh::fs::KEEP_CONTENT`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body {
    /// Lowercase hex.
    pub sha256: String,
    /// Lowercase hex.
    pub sha512: String,
    pub content: Option<Vec<u8>>,
}

/// What kind of guest a [`Vm`] is: a QEMU VM (`qemu-server/<vmid>.conf`) or an LXC container
/// (`lxc/<vmid>.conf`, see `api/lxc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GuestKind {
    #[default]
    Qemu,
    Lxc,
}

pub struct Vm {
    pub vmid: u32,
    pub kind: GuestKind,
    pub node: String,
    pub running: bool,
    /// Unix time the guest started (when running).
    pub started_at: i64,
    pub pid: u32,
    pub cpu_usage: f64,
    pub mem_usage: f64,
    /// The config as PVE stores it (`key: value` lines), without `digest`.
    pub config: BTreeMap<String, String>,
    /// Pending changes (the config's `[PENDING]` section), applied at the next start/stop.
    pub pending: BTreeMap<String, String>,
    /// Keys pending deletion.
    pub pending_delete: std::collections::BTreeSet<String>,
    /// The config's snapshot sections (`[name]`) by name (see `snapshot.rs`).
    pub snapshots: super::snapshot::Snapshots,
    /// Paused by `status/suspend` (still `running`, qmpstatus `paused`).
    pub paused: bool,
    /// When the simulator started the guest (`None` for guests running since the scenario
    /// began, which count as started long ago).
    pub started_instant: Option<std::time::Instant>,
}

/// [`Disk`] borrowed from the config line it was parsed from.
#[derive(Clone, Copy)]
pub struct DiskRef<'a> {
    pub key: &'a str,
    pub storage: &'a str,
    pub volname: &'a str,
    pub size: u64,
}

/// A guest disk parsed from a config drive line.
pub struct Disk {
    pub key: String,
    pub storage: String,
    pub volname: String,
    pub size: u64,
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn hex_digest(input: &str) -> String {
    let d = Sha256::digest(input.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl State {
    /// Builds live state from a scenario, validating cross-references.
    ///
    /// # Errors
    /// [`SimError::Scenario`] when a guest, file, task or ACL names an unknown node, storage,
    /// user or role.
    pub fn from_scenario(s: &Scenario) -> Result<State, SimError> {
        let started = now();
        let bad = |m: String| SimError::Scenario {
            origin: "scenario".into(),
            message: m,
        };
        let nodes: Vec<Node> = s
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Node {
                name: n.name.clone(),
                nodeid: i as u32 + 1,
                ip: n.ip.clone(),
                online: n.online,
                cpu_model: n.cpu_model.clone(),
                sockets: n.sockets,
                cores: n.cores,
                threads: n.threads,
                mem_total: n.memory_gib * GIB,
                swap_total: n.swap_gib * GIB,
                rootfs_total: n.rootfs_gib * GIB,
                base_mem: (n.base_mem_gib * GIB as f64) as u64,
                base_cpu: n.base_cpu,
                uptime0: n.uptime,
                kernel: n.kernel.clone(),
            })
            .collect();
        let storages: Vec<Storage> = s
            .storages
            .iter()
            .map(|st| Storage {
                id: st.id.clone(),
                stype: st.stype.clone(),
                content: st.content.clone(),
                shared: st.shared,
                total: st.total_gib * GIB,
                base_used: (st.base_used_gib * GIB as f64) as u64,
                props: st.props.clone(),
            })
            .collect();
        let has_node = |n: &str| nodes.iter().any(|x| x.name == n);
        let mut files = Vec::new();
        for f in &s.files {
            let (storage, volname) = f
                .volid
                .split_once(':')
                .ok_or_else(|| bad(format!("file '{}' is not a volume id", f.volid)))?;
            let st = storages
                .iter()
                .find(|x| x.id == storage)
                .ok_or_else(|| bad(format!("file '{}' names unknown storage", f.volid)))?;
            if !st.shared && !f.node.as_deref().is_some_and(has_node) {
                return Err(bad(format!(
                    "file '{}' on local storage needs a known node",
                    f.volid
                )));
            }
            files.push(seed::file_volume(f, storage, volname, started, st.shared));
        }
        let (images, files): (Vec<Volume>, Vec<Volume>) =
            files.into_iter().partition(|f| f.content == "images");
        let mut vms = BTreeMap::new();
        for (i, v) in s.vms.iter().enumerate() {
            if !has_node(&v.node) {
                return Err(bad(format!(
                    "vm {} is on unknown node '{}'",
                    v.vmid, v.node
                )));
            }
            if !storages.iter().any(|x| x.id == v.storage) {
                return Err(bad(format!(
                    "vm {} uses unknown storage '{}'",
                    v.vmid, v.storage
                )));
            }
            let mut config = seed::expand_config(v, started);
            let snapshots = super::snapshot::from_spec(v, &mut config, started, &storages)
                .map_err(|m| bad(format!("vm {}: {m}", v.vmid)))?;
            let vm = Vm {
                vmid: v.vmid,
                kind: GuestKind::Qemu,
                node: v.node.clone(),
                running: v.running && !v.template,
                started_at: started - v.uptime as i64,
                pid: 2000 + 1187 * i as u32,
                cpu_usage: v.cpu_usage,
                mem_usage: v.mem_usage,
                config,
                pending: BTreeMap::new(),
                pending_delete: Default::default(),
                snapshots,
                paused: false,
                started_instant: None,
            };
            if vms.insert(v.vmid, vm).is_some() {
                return Err(bad(format!("vmid {} appears twice", v.vmid)));
            }
        }
        super::lxc::seed(s, &storages, started, &mut vms).map_err(bad)?;
        let mut faults = super::faults::Faults::default();
        faults
            .ignores_acpi
            .extend(s.vms.iter().filter(|v| v.ignores_acpi).map(|v| v.vmid));
        let access = Access::from_scenario(s).map_err(bad)?;
        let tasks = TaskRegistry::from_scenario(s, started).map_err(bad)?;
        let ha = super::ha::HaState::from_scenario(s).map_err(bad)?;
        let mut state = State {
            cluster: s.cluster.clone(),
            version: (
                s.version.version.clone(),
                s.version.release.clone(),
                s.version.repoid.clone(),
            ),
            nodes,
            storages,
            files,
            images,
            freed_volumes: Default::default(),
            node_files: BTreeMap::new(),
            vms: vms.into(),
            access,
            tasks,
            started,
            faults,
            ha,
            backup: Default::default(),
            generation: 0,
            writing: false,
            listings: Default::default(),
            usage_cache: Mutex::new(None),
        };
        super::ha::init(&mut state);
        super::backup::seed(&mut state, &s.backup_jobs).map_err(bad)?;
        Ok(state)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn storage(&self, id: &str) -> Option<&Storage> {
        self.storages.iter().find(|s| s.id == id)
    }

    /// The size of guest disk `sid:volname` as `node` sees it (any node for shared storage).
    pub fn guest_disk_size(&self, node: &str, sid: &str, volname: &str) -> Option<u64> {
        let shared = self.storage(sid).is_some_and(|s| s.shared);
        self.vms
            .values()
            .filter(|v| shared || v.node == node)
            .flat_map(|v| v.disks())
            .find(|d| d.storage == sid && d.volname == volname)
            .map(|d| d.size)
    }

    pub fn node_uptime(&self, n: &Node) -> u64 {
        n.uptime0 + (now() - self.started).max(0) as u64
    }

    /// VMs on a node, in vmid order.
    pub fn vms_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Vm> + 'a {
        self.vms.on_node(node)
    }

    /// Memory used on a node: host base plus what running guests use from the host's view.
    pub fn node_mem_used(&self, n: &Node) -> u64 {
        let guests: u64 = self
            .vms_on(&n.name)
            .filter(|v| v.running)
            .map(|v| v.memhost())
            .sum();
        (n.base_mem + guests).min(n.mem_total.saturating_sub(256 * MIB))
    }

    /// CPU usage of a node (fraction of all threads).
    pub fn node_cpu(&self, n: &Node) -> f64 {
        let guests: f64 = self
            .vms_on(&n.name)
            .filter(|v| v.running)
            .map(|v| v.cpu_usage * v.cpus() as f64)
            .sum();
        let c = n.base_cpu + guests / n.threads.max(1) as f64;
        (c.min(1.0) * 1e4).round() / 1e4
    }

    pub fn rootfs_used(&self, n: &Node) -> u64 {
        // the root filesystem carries `local` on a default install
        self.storage_used(&self.storage_local_dir(), Some(&n.name))
            .min(n.rootfs_total)
    }

    fn storage_local_dir(&self) -> String {
        "local".to_string()
    }

    /// Bytes used on a storage (on `node` for local storages).
    pub fn storage_used(&self, storage: &str, node: Option<&str>) -> u64 {
        let Some(st) = self.storage(storage) else {
            return 0;
        };
        let on_node = |n: Option<&str>| st.shared || n == node;
        let files: u64 = self
            .files
            .iter()
            .filter(|f| f.storage == storage && on_node(f.node.as_deref()))
            .map(|f| f.size)
            .sum();
        let disks: u64 = self
            .vms
            .values()
            .filter(|v| on_node(Some(&v.node)))
            .flat_map(|v| v.disk_refs())
            .filter(|d| d.storage == storage)
            .map(|d| written(st, d.volname, d.size))
            .sum();
        (st.base_used + files + disks).min(st.total)
    }

    /// [`State::usage`], computed once per state generation (a write lock starts a new one):
    /// every `/nodes` and `/nodes/{node}/storage` needs it, and at 10,000 guests the pass is
    /// tens of milliseconds.
    pub fn usage_now(&self) -> std::sync::Arc<Usage> {
        if self.writing {
            return std::sync::Arc::new(self.usage());
        }
        let mut c = self.usage_cache.lock().unwrap_or_else(|e| e.into_inner());
        match c.as_ref() {
            Some((g, u)) if *g == self.generation => std::sync::Arc::clone(u),
            _ => {
                let u = std::sync::Arc::new(self.usage());
                *c = Some((self.generation, std::sync::Arc::clone(&u)));
                u
            }
        }
    }

    /// Every node's guest load and every storage's usage in one pass over the guests and the
    /// volumes: what the cluster-wide listings (`/cluster/resources`, `/nodes`) need, with the
    /// same numbers as [`State::node_mem_used`], [`State::node_cpu`], [`State::rootfs_used`] and
    /// [`State::storage_used`] (each of those is a pass of its own).
    pub fn usage(&self) -> Usage {
        let node_ix: NameMap<usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let storage_ix: NameMap<usize> = self
            .storages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let (n_nodes, n_storages) = (self.nodes.len(), self.storages.len());
        let mut guest_mem = vec![0u64; n_nodes];
        let mut guest_cpu = vec![0f64; n_nodes];
        // per storage: one total for shared storages, one per node for local ones
        let mut shared_used = vec![0u64; n_storages];
        let mut local_used = vec![vec![0u64; n_nodes]; n_storages];
        for f in &self.files {
            let Some(&si) = storage_ix.get(f.storage.as_str()) else {
                continue;
            };
            if self.storages[si].shared {
                shared_used[si] += f.size;
            } else if let Some(&ni) = f.node.as_deref().and_then(|n| node_ix.get(n)) {
                local_used[si][ni] += f.size;
            }
        }
        // vmid order, as the per-node passes sum (the CPU sum is a float); what each guest
        // adds is kept from earlier passes for the guests unchanged since
        let Ok(()) = self.vms.each_derived(|v, derived| {
            let g = derived.usage.get_or_insert_with(|| GuestUsage::of(v));
            let ni = node_ix.get(v.node.as_str()).copied();
            if let Some(ni) = ni.filter(|_| v.running) {
                guest_mem[ni] += g.memhost;
                guest_cpu[ni] += g.cpu;
            }
            for &(ref storage, size, linked) in &g.disks {
                let Some(&si) = storage_ix.get(storage.as_str()) else {
                    continue;
                };
                let st = &self.storages[si];
                let w = written_as(st, linked, size);
                if st.shared {
                    shared_used[si] += w;
                } else if let Some(ni) = ni {
                    local_used[si][ni] += w;
                }
            }
            Ok::<(), std::convert::Infallible>(())
        });
        let storage_used: Vec<Vec<u64>> = self
            .storages
            .iter()
            .enumerate()
            .map(|(si, st)| {
                (0..n_nodes)
                    .map(|ni| {
                        let used = if st.shared {
                            shared_used[si]
                        } else {
                            local_used[si][ni]
                        };
                        (st.base_used + used).min(st.total)
                    })
                    .collect()
            })
            .collect();
        let local_dir = storage_ix.get(self.storage_local_dir().as_str()).copied();
        let node_mem = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.base_mem + guest_mem[i]).min(n.mem_total.saturating_sub(256 * MIB)))
            .collect();
        let node_cpu = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let c = n.base_cpu + guest_cpu[i] / n.threads.max(1) as f64;
                (c.min(1.0) * 1e4).round() / 1e4
            })
            .collect();
        let rootfs = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                local_dir
                    .map(|si| storage_used_at(&storage_used, si, i))
                    .unwrap_or(0)
                    .min(n.rootfs_total)
            })
            .collect();
        Usage {
            node_mem,
            node_cpu,
            rootfs,
            storage_used,
        }
    }
}

/// Node or storage names to what is looked up by them once per guest or disk in the listings'
/// passes: hashed with FNV-1a, as a tree compares them byte by byte at every level and SipHash
/// (safe against chosen keys, which the scenario's own names are not) costs more than the
/// rest of a pass.
pub type NameMap<'a, V> = std::collections::HashMap<&'a str, V, BuildHasherDefault<Fnv>>;

pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn storage_used_at(t: &[Vec<u64>], si: usize, ni: usize) -> u64 {
    t.get(si).and_then(|r| r.get(ni)).copied().unwrap_or(0)
}

/// Bytes a guest disk occupies on its storage. Thin provisioning: count what guests actually
/// wrote, not the virtual size; a linked clone (`base-.../vm-...`) only holds its own changes.
fn written(st: &Storage, volname: &str, size: u64) -> u64 {
    written_as(st, is_linked_clone(volname), size)
}

fn is_linked_clone(volname: &str) -> bool {
    volname.contains("base-") && volname.contains("/vm-")
}

/// [`written`] of a disk known to be a linked clone or not.
fn written_as(st: &Storage, linked: bool, size: u64) -> u64 {
    if linked {
        size / 20
    } else if st.stype == "lvmthin" {
        size / 3
    } else {
        size / 2
    }
}

/// What one guest adds to [`State::usage`], derived from the guest alone (kept until it
/// changes, see `guests.rs`).
pub struct GuestUsage {
    /// [`Vm::memhost`].
    memhost: u64,
    /// The guest's CPU load in threads, when it runs.
    cpu: f64,
    /// [`Vm::disk_refs`]: storage, size, and whether the volume is a linked clone.
    disks: Vec<(String, u64, bool)>,
}

impl GuestUsage {
    fn of(v: &Vm) -> GuestUsage {
        GuestUsage {
            memhost: v.memhost(),
            cpu: v.cpu_usage * v.cpus() as f64,
            disks: v
                .disk_refs()
                .map(|d| (d.storage.to_string(), d.size, is_linked_clone(d.volname)))
                .collect(),
        }
    }
}

/// The result of [`State::usage`], by the indexes of `State::nodes` and `State::storages`.
pub struct Usage {
    /// [`State::node_mem_used`] of each node.
    pub node_mem: Vec<u64>,
    /// [`State::node_cpu`] of each node.
    pub node_cpu: Vec<f64>,
    /// [`State::rootfs_used`] of each node.
    pub rootfs: Vec<u64>,
    /// [`State::storage_used`] of each storage (outer) on each node (inner).
    storage_used: Vec<Vec<u64>>,
}

impl Usage {
    /// [`State::storage_used`] of storage `si` on node `ni`.
    pub fn storage(&self, si: usize, ni: usize) -> u64 {
        storage_used_at(&self.storage_used, si, ni)
    }
}

impl Vm {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.config.get(key).map(String::as_str)
    }
    pub fn is_ct(&self) -> bool {
        self.kind == GuestKind::Lxc
    }
    pub fn name(&self) -> String {
        if self.is_ct() {
            return self
                .get("hostname")
                .map(str::to_string)
                .unwrap_or_else(|| format!("CT{}", self.vmid));
        }
        self.get("name")
            .map(str::to_string)
            .unwrap_or_else(|| format!("VM {}", self.vmid))
    }
    pub fn is_template(&self) -> bool {
        self.get("template") == Some("1")
    }
    pub fn cpus(&self) -> u32 {
        let num = |k: &str, d: u32| self.get(k).and_then(|s| s.parse().ok()).unwrap_or(d);
        num("vcpus", num("cores", 1) * num("sockets", 1))
    }
    pub fn maxmem(&self) -> u64 {
        let mib: u64 = self
            .get("memory")
            .and_then(|m| {
                m.split(',')
                    .find_map(|p| p.strip_prefix("current=").or(Some(p)))
            })
            .and_then(|s| s.parse().ok())
            .unwrap_or(512);
        mib * MIB
    }
    pub fn mem(&self) -> u64 {
        if self.running {
            (self.maxmem() as f64 * self.mem_usage) as u64
        } else {
            0
        }
    }
    /// Host view: the guest's RSS is a little above what the guest reports.
    pub fn memhost(&self) -> u64 {
        if self.running {
            (self.mem() as f64 * 1.04) as u64
        } else {
            0
        }
    }
    pub fn uptime(&self) -> u64 {
        if self.running {
            (now() - self.started_at).max(0) as u64
        } else {
            0
        }
    }
    /// Disks referenced by the config (excluding cdrom/cloud-init drives).
    pub fn disks(&self) -> Vec<Disk> {
        self.disk_refs()
            .map(|d| Disk {
                key: d.key.to_string(),
                storage: d.storage.to_string(),
                volname: d.volname.to_string(),
                size: d.size,
            })
            .collect()
    }
    /// [`Vm::disks`] borrowed from the config, without allocating.
    pub fn disk_refs(&self) -> impl Iterator<Item = DiskRef<'_>> + '_ {
        let ct = self.is_ct();
        self.config
            .iter()
            .filter(move |(k, _)| {
                if ct {
                    super::lxc::is_volume_key(k)
                } else {
                    is_drive_key(k)
                }
            })
            .filter_map(|(k, v)| parse_drive(k, v))
    }
    /// Size of the boot disk (the first disk in `boot: order=`, else the first disk).
    pub fn maxdisk(&self) -> u64 {
        if self.is_ct() {
            return self
                .disk_refs()
                .find(|d| d.key == "rootfs")
                .map(|d| d.size)
                .unwrap_or(0);
        }
        let boot = self
            .get("boot")
            .and_then(|b| b.strip_prefix("order="))
            .unwrap_or("");
        boot.split(';')
            .find_map(|k| self.disk_refs().find(|d| d.key == k))
            .or_else(|| {
                self.disk_refs()
                    .find(|d| d.key != "efidisk0" && d.key != "tpmstate0")
            })
            .map(|d| d.size)
            .unwrap_or(0)
    }
    /// Digest of the config, as PVE reports it (40 hex characters).
    pub fn digest(&self) -> String {
        let mut text: String = self
            .config
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        // the pending section is part of the file the digest covers
        if !self.pending.is_empty() || !self.pending_delete.is_empty() {
            text.push_str("\n[PENDING]\n");
            for (k, v) in &self.pending {
                text.push_str(&format!("{k}: {v}\n"));
            }
            if !self.pending_delete.is_empty() {
                let d: Vec<&str> = self.pending_delete.iter().map(String::as_str).collect();
                text.push_str(&format!("delete: {}\n", d.join(",")));
            }
        }
        // so are the snapshot sections
        for (name, snap) in &self.snapshots {
            text.push_str(&format!("\n[{name}]\n"));
            for (k, v) in snap {
                text.push_str(&format!("{k}: {v}\n"));
            }
        }
        hex_digest(&text)[..40].to_string()
    }
}

pub fn is_drive_key(k: &str) -> bool {
    let idx = |p: &str| {
        k.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    idx("scsi") || idx("virtio") || idx("sata") || idx("ide") || k == "efidisk0" || k == "tpmstate0"
}

fn parse_drive<'a>(key: &'a str, value: &'a str) -> Option<DiskRef<'a>> {
    let (vol, opts) = value.split_once(',').unwrap_or((value, ""));
    let opts = || opts.split(',');
    if opts().any(|o| o == "media=cdrom") || vol.contains("cloudinit") {
        return None;
    }
    let (storage, volname) = vol.split_once(':')?;
    let size = opts()
        .find_map(|o| o.strip_prefix("size="))
        .and_then(parse_size)
        .unwrap_or(0);
    Some(DiskRef {
        key,
        storage,
        volname,
        size,
    })
}

/// Parses PVE disk sizes (`32G`, `528K`, `3584M`, plain bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], MIB),
        'G' => (&s[..s.len() - 1], GIB),
        'T' => (&s[..s.len() - 1], GIB * 1024),
        _ => (s, 1),
    };
    num.parse::<f64>().ok().map(|n| (n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("32G"), Some(32 * GIB));
        assert_eq!(parse_size("528K"), Some(528 * 1024));
        assert_eq!(parse_size("x"), None);
    }
}

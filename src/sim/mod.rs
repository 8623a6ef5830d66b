//! The PVE simulator: a faithful, stateful imitation of a Proxmox VE 9.1 cluster's REST API,
//! served over HTTPS on loopback, built from the API schema and `shared/notes/pve-semantics.md`
//! — never bent to suit our client. It must not use anything of ours outside `crate::sim`.
//!
//! Layout: [`scenario`] (the YAML shape), `state` (cluster model behind one mutex), `auth`
//! (tokens, roles, ACLs, privsep), `params` (validation in PVE's wording), `tasks` (UPIDs and
//! the task engine), `http` (TLS server, envelope, status lines), `api` (routing, node proxy
//! rules) and one `api_*` module per area: `api_clone` (clone, template), `api_qemu_write`
//! (config writes, pending, resize), `api_power` (power, destroy, guest agent), `api_create`
//! (VM creation with `import-from`), `api_download` (download-url, fetching from loopback
//! only), `api_upload` (multipart uploads, parsed in `multipart`) and `api_volume` (volume
//! info and delete).
//!
//! Next to the API, each node has an SSH server (`ssh`: the node-side commands our product
//! runs — `wget`, `qemu-img`, `qm disk import`, `pvesm`, `pveum`, SFTP — on the same state),
//! driven through [`SimHandle::authorize_ssh_key`], [`SimHandle::ssh_addr`],
//! [`SimHandle::ssh_known_hosts`], [`SimHandle::ssh_commands`], [`SimHandle::node_file`] and
//! [`SimHandle::set_ssh_online`].
//!
//! Migration (`api::qemu::migrate`: `POST`/`GET .../migrate`, a `qmigrate` task whose log
//! grows while it runs) and HA (`ha`: resources, rules, the CRM's queue and its loop, node
//! maintenance over SSH with `ha-manager`). Observers for tests: [`SimHandle::guest_placement`],
//! [`SimHandle::node_memory`], [`SimHandle::ha_log`]. Large clusters: [`Scenario::generate`]
//! ([`generate`]).
//!
//! Backups (`backup`, `api::backup`): vzdump, restore, backup jobs and their seeded last runs;
//! [`SimHandle::fail_backup_of`], [`SimHandle::clear_backup_failure`],
//! [`SimHandle::run_backup_job`], [`SimHandle::archive_config`].
//!
//! Fault injection ([`SimHandle::hold_lock`], [`SimHandle::release_lock`],
//! [`SimHandle::hold_lock_for`], [`SimHandle::hold_backup`], [`SimHandle::flock_timeout`],
//! [`SimHandle::fail_next_task`],
//! [`SimHandle::slow_node`], [`SimHandle::set_guest_ignores_acpi`],
//! [`SimHandle::set_node_online`]) lives in `faults`.

mod api;
mod auth;
mod backup;
mod faults;
pub mod generate;
mod guest;
mod guests;
mod ha;
mod http;
mod lxc;
mod multipart;
mod observe;
mod observe_config;
mod params;
pub mod scenario;
mod seed;
mod snapshot;
mod ssh;
mod state;
mod tasks;
mod ticket;
mod tls;
mod volumes;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::{ENDPOINTS, ServedEndpoint, served_endpoints};
pub use backup::{BackupJobSpec, LastRunSpec};
pub use generate::GenerateSpec;
pub use observe::GuestPlacement;
pub use scenario::{HaGroupSpec, HaRuleSpec, HaSpec, Scenario};
pub use snapshot::SnapshotInfo;
pub use ssh::{NodeFileInfo, SshCommandRecord};
pub use state::RecordedRequest;

use state::{Shared, State};

/// Everything that can go wrong starting or driving the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator scenario {origin} is invalid: {message}; fix the file and start again")]
    Scenario { origin: String, message: String },
    #[error("simulator tls setup failed: {0}; this is a bug, please report it")]
    Tls(String),
    #[error("simulator cannot listen on {addr}: {source}; pick another address or free the port")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("simulator has no node '{0}'; use one of the scenario's node names")]
    UnknownNode(String),
    #[error("simulator has no guest {0}; use one of the scenario's vmids")]
    UnknownVm(u32),
    #[error("this simulator call needs a tokio runtime; call it from async code")]
    NoRuntime,
    #[error(
        "simulator cannot authorize this ssh key ({0}); pass one OpenSSH public key line like `ssh-ed25519 AAAA... comment`"
    )]
    SshKey(String),
}

/// How to start the simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub scenario: Scenario,
    /// Usually `127.0.0.1:0` (an ephemeral port).
    pub listen: SocketAddr,
    /// 1.0 = real PVE durations (task run times, the 3 s auth-failure delay); tests use ~0.001-0.01.
    pub time_scale: f64,
}

/// An API token of the running simulator. `Debug` hides the secret.
#[derive(Clone)]
pub struct SimToken {
    /// `user@realm!name`.
    pub id: String,
    pub secret: String,
    pub note: String,
}

impl fmt::Debug for SimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("note", &self.note)
            .finish()
    }
}

/// A running simulator. Dropping it without [`SimHandle::shutdown`] leaves the server running
/// until the runtime ends.
pub struct SimHandle {
    addr: SocketAddr,
    ca_pem: String,
    fingerprint: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    server: JoinHandle<()>,
    ssh: ssh::SshNodes,
}

/// Starts the simulator.
///
/// # Errors
/// [`SimError::Scenario`] for inconsistent scenarios, [`SimError::Bind`] if the address is
/// taken, [`SimError::Tls`] if certificate generation fails.
pub async fn start(opts: SimOptions) -> Result<SimHandle, SimError> {
    let state = State::from_scenario(&opts.scenario)?;
    let names: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let tls = tls::generate(&names)?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: opts.listen,
        source,
    })?;
    let time_scale = if opts.time_scale.is_finite() && opts.time_scale >= 0.0 {
        opts.time_scale
    } else {
        1.0
    };
    let shared = Arc::new(Shared::new(state, time_scale));
    {
        // scenario backups that end by themselves (`lock_secs`)
        let mut st = shared.lock();
        for v in &opts.scenario.vms {
            if let (Some("backup"), Some(secs)) = (v.lock.as_deref(), v.lock_secs) {
                faults::start_backup(&shared, &mut st, v.vmid, secs);
            }
        }
    }
    let cancel = CancellationToken::new();
    tokio::spawn(ha::run(Arc::clone(&shared), cancel.clone()));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    let server = tokio::spawn(http::serve(
        listener,
        acceptor,
        Arc::clone(&shared),
        cancel.clone(),
    ));
    tracing::info!(%addr, "pve simulator listening");
    let ssh = match ssh::start(&shared, opts.listen.ip(), &cancel).await {
        Ok(s) => s,
        Err(e) => {
            cancel.cancel();
            return Err(e);
        }
    };
    Ok(SimHandle {
        addr,
        ca_pem: tls.ca_pem,
        fingerprint: tls.fingerprint,
        shared,
        cancel,
        server,
        ssh,
    })
}

impl SimHandle {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// SHA-256 of the leaf certificate, `AB:CD:...`.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }
    /// PEM of the CA that signed the leaf.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }
    pub fn tokens(&self) -> Vec<SimToken> {
        let st = self.shared.lock();
        st.access
            .tokens
            .iter()
            .map(|(id, t)| SimToken {
                id: id.clone(),
                secret: t.secret.clone(),
                note: t.comment.clone(),
            })
            .collect()
    }
    pub fn token(&self, id: &str) -> Option<SimToken> {
        self.tokens().into_iter().find(|t| t.id == id)
    }
    /// Fault injection: an offline node answers `/nodes/<it>/...` with 595 and shows offline;
    /// its SSH server drops connections and refuses new ones.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`] if the scenario has no such node.
    pub fn set_node_online(&self, node: &str, online: bool) -> Result<(), SimError> {
        let mut st = self.shared.lock();
        let n = st
            .nodes
            .iter_mut()
            .find(|n| n.name == node)
            .ok_or_else(|| SimError::UnknownNode(node.to_string()))?;
        n.online = online;
        drop(st);
        self.ssh.set_node_up(node, online);
        Ok(())
    }
    /// Volume ids of the file volumes (ISOs, templates, import images, backups, snippets) on
    /// `storage` as seen from `node`, sorted.
    pub fn files(&self, node: &str, storage: &str) -> Vec<String> {
        let st = self.shared.lock();
        let shared = st.storage(storage).is_some_and(|s| s.shared);
        let mut out: Vec<String> = st
            .files
            .iter()
            .filter(|f| f.storage == storage && (shared || f.node.as_deref() == Some(node)))
            .map(|f| f.volid.clone())
            .collect();
        out.sort();
        out
    }
    /// Adds a file volume `storage:volname` (e.g. `import/noble.qcow2`) of `size` bytes on
    /// `node` (ignored for shared storages); `virtual_size` for disk images. A guest image
    /// name (`vm-1099-disk-0`) adds a loose image of that guest, referenced by no config.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`] / [`SimError::Scenario`] for an unknown node or storage.
    pub fn add_file(
        &self,
        node: &str,
        storage: &str,
        volname: &str,
        size: u64,
        virtual_size: Option<u64>,
    ) -> Result<(), SimError> {
        let mut st = self.shared.lock();
        if st.node(node).is_none() {
            return Err(SimError::UnknownNode(node.to_string()));
        }
        let Some(shared) = st.storage(storage).map(|s| s.shared) else {
            return Err(SimError::Scenario {
                origin: "add_file".into(),
                message: format!("no storage '{storage}'"),
            });
        };
        let spec = scenario::FileSpec {
            volid: format!("{storage}:{volname}"),
            node: Some(node.to_string()),
            size,
            virtual_size,
            notes: None,
            protected: false,
        };
        let v = seed::file_volume(&spec, storage, volname, state::now(), shared);
        // a guest image (`vm-N-disk-K`) is a loose image of guest N, as in a scenario
        let list = if v.content == "images" {
            &mut st.images
        } else {
            &mut st.files
        };
        list.retain(|f| f.volid != v.volid || f.node != v.node);
        list.push(v);
        Ok(())
    }
    /// Requests received so far (method, path, parameter names; never values), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.journal()
    }
    /// Stops accepting connections and closes open ones.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(e) = self.server.await {
            tracing::debug!("simulator server task ended abnormally: {e}");
        }
        self.ssh.join().await;
    }
}

//! The simulator's SSH front: one SSH server per node on loopback (russh), answering the
//! node-side commands our product runs, against the same state the HTTPS API shows.
//!
//! Modelled:
//! - the server ([`server`]): a real Ed25519 host key per node made at start, `root` only,
//!   publickey only, keys authorized through [`SimHandle::authorize_ssh_key`]; several
//!   channels per connection; nodes going offline ([`SimHandle::set_ssh_online`],
//!   [`SimHandle::set_node_online`]) drop connections and come back on the same port;
//! - exec requests ([`exec`]): one command line, split like a POSIX shell would ([`shell`]),
//!   the client's `timeout` wrapper stripped, a trailing `> PATH` honoured; any other shell
//!   syntax is refused with exit 2 and journaled, so tests prove our client quotes everything;
//! - the node filesystem ([`fs`]): plain files and the storages' content directories, where a
//!   file is the storage's volume;
//! - commands, worded like the real tools: `wget`, `curl` ([`cmd_fetch`]), `sha256sum`,
//!   `sha512sum`, `rm`, `test` ([`cmd_files`]), `qemu-img info|resize` ([`cmd_qemu_img`]),
//!   `qm disk import|importdisk` ([`cmd_import`]), `qm set|template|config|list` ([`cmd_qm`]),
//!   `qm snapshot|rollback|delsnapshot|listsnapshot` ([`cmd_qm_snapshot`]), `pvesm
//!   path|list|alloc|free` ([`cmd_pvesm`]), `pveum role|user|acl` ([`cmd_pveum`]),
//!   `ha-manager status|config|migrate|crm-command node-maintenance enable|disable` ([`cmd_ha`]);
//! - the SFTP subsystem ([`sftp`]): create/write/close/setstat/stat/read/remove;
//! - helpers: streamed file bytes and digests ([`blob`]), PVE's CLI output formats
//!   ([`cli_out`]).
//!
//! Not modelled: interactive shells and PTYs, stdin (discarded), environment requests, port
//! forwarding, other users, password auth, enforcing the `timeout`, any program not listed.

mod blob;
mod cli_out;
mod cmd_fetch;
mod cmd_files;
mod cmd_ha;
mod cmd_import;
mod cmd_ip;
mod cmd_pct;
mod cmd_pveam;
mod cmd_pvesm;
mod cmd_pveum;
mod cmd_qemu_img;
mod cmd_qm;
mod cmd_qm_snapshot;
mod exec;
pub mod fs;
mod server;
mod sftp;
mod shell;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use russh::keys::{HashAlg, PublicKey};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::state::Shared;
use super::{SimError, SimHandle};

/// Commands kept in the journal; older ones are dropped first.
const JOURNAL_LIMIT: usize = 10_000;

/// One command line received over SSH, as run (or refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCommandRecord {
    pub node: String,
    /// The raw command line of the exec request.
    pub line: String,
    /// Its words after removing the `timeout` wrapper and the `> PATH` redirect; empty when
    /// the line was refused for shell syntax.
    pub argv: Vec<String>,
    pub status: u32,
    /// The line held an unquoted shell operator and nothing was run.
    pub shell_syntax: bool,
}

/// A node's plain file as [`SimHandle::node_file`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFileInfo {
    pub size: u64,
    /// The bytes, for files of at most 64 KiB.
    pub content: Option<Vec<u8>>,
}

/// State shared by all nodes' SSH servers.
#[derive(Default)]
pub struct SshShared {
    authorized: Mutex<Vec<PublicKey>>,
    journal: Mutex<std::collections::VecDeque<SshCommandRecord>>,
}

impl SshShared {
    fn record(&self, r: SshCommandRecord) {
        let mut j = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        if j.len() == JOURNAL_LIMIT {
            j.pop_front();
        }
        j.push_back(r);
    }
}

/// One node's SSH endpoint.
pub struct NodeSsh {
    name: String,
    addr: SocketAddr,
    host_key: PublicKey,
    /// `set_ssh_online`.
    enabled: AtomicBool,
    /// `set_node_online`.
    node_up: AtomicBool,
    /// Effective: both of the above.
    online: watch::Sender<bool>,
}

impl NodeSsh {
    fn refresh(&self) {
        let on = self.enabled.load(Ordering::SeqCst) && self.node_up.load(Ordering::SeqCst);
        self.online.send_replace(on);
    }
}

/// The SSH servers of all nodes.
pub struct SshNodes {
    shared: Arc<SshShared>,
    nodes: Vec<Arc<NodeSsh>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts one SSH server per node on `ip`, ephemeral ports.
///
/// # Errors
/// [`SimError::Bind`] when a listener cannot be bound.
pub async fn start(
    shared: &Arc<Shared>,
    ip: IpAddr,
    cancel: &CancellationToken,
) -> Result<SshNodes, SimError> {
    let ssh = Arc::new(SshShared::default());
    let names: Vec<(String, bool)> = {
        let st = shared.lock();
        st.nodes
            .iter()
            .map(|n| (n.name.clone(), n.online))
            .collect()
    };
    let mut nodes = Vec::new();
    let mut tasks = Vec::new();
    for (name, up) in names {
        let (listener, addr) = server::bind(ip).await.map_err(|source| SimError::Bind {
            addr: SocketAddr::new(ip, 0),
            source,
        })?;
        let key = server::host_key();
        let node = Arc::new(NodeSsh {
            name: name.clone(),
            addr,
            host_key: key.public_key().clone(),
            enabled: AtomicBool::new(true),
            node_up: AtomicBool::new(up),
            online: watch::channel(up).0,
        });
        let ctx = Arc::new(exec::NodeCtx {
            node: name,
            shared: Arc::clone(shared),
            ssh: Arc::clone(&ssh),
        });
        let config = server::config(key, shared.scaled(1.0));
        tasks.push(tokio::spawn(server::serve(
            listener,
            config,
            Arc::clone(&node),
            ctx,
            cancel.clone(),
        )));
        tracing::info!(node = %node.name, %addr, "pve simulator ssh listening");
        nodes.push(node);
    }
    Ok(SshNodes {
        shared: ssh,
        nodes,
        tasks,
    })
}

impl SshNodes {
    fn node(&self, name: &str) -> Option<&Arc<NodeSsh>> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Follows `set_node_online`: an offline node refuses SSH too.
    pub fn set_node_up(&self, name: &str, up: bool) {
        if let Some(n) = self.node(name) {
            n.node_up.store(up, Ordering::SeqCst);
            n.refresh();
        }
    }

    /// Waits for the accept loops (after the cancellation token fired).
    pub async fn join(self) {
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::debug!("simulator ssh task ended abnormally: {e}");
            }
        }
    }
}

/// `[host]:port` as known_hosts writes a non-22 port.
fn host_pattern(addr: &SocketAddr) -> String {
    match addr.port() {
        22 => addr.ip().to_string(),
        p => format!("[{}]:{p}", addr.ip()),
    }
}

impl SimHandle {
    /// Lets `openssh_public_key` (one `authorized_keys`-style line: `ssh-ed25519 AAAA...
    /// comment`, no options) log in as `root` on every node.
    ///
    /// # Errors
    /// [`SimError::SshKey`] when the line is not an OpenSSH public key.
    pub fn authorize_ssh_key(&self, openssh_public_key: &str) -> Result<(), SimError> {
        let key = PublicKey::from_openssh(openssh_public_key.trim())
            .map_err(|e| SimError::SshKey(e.to_string()))?;
        let mut keys = self
            .ssh
            .shared
            .authorized
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        keys.push(key);
        Ok(())
    }

    /// Every node with its SSH address, in scenario order.
    pub fn ssh_nodes(&self) -> Vec<(String, SocketAddr)> {
        self.ssh
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.addr))
            .collect()
    }

    /// The SSH address of `node`.
    pub fn ssh_addr(&self, node: &str) -> Option<SocketAddr> {
        self.ssh.node(node).map(|n| n.addr)
    }

    /// OpenSSH `known_hosts` lines for all nodes: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn ssh_known_hosts(&self) -> String {
        self.ssh
            .nodes
            .iter()
            .filter_map(|n| {
                let key = n.host_key.to_openssh().ok()?;
                Some(format!("{} {}\n", host_pattern(&n.addr), key.trim()))
            })
            .collect()
    }

    /// `SHA256:...` of `node`'s host key, as `ssh-keygen -l` prints it.
    pub fn ssh_host_fingerprint(&self, node: &str) -> Option<String> {
        self.ssh
            .node(node)
            .map(|n| n.host_key.fingerprint(HashAlg::Sha256).to_string())
    }

    /// Command lines received over SSH so far, oldest first.
    pub fn ssh_commands(&self) -> Vec<SshCommandRecord> {
        let j = self
            .ssh
            .shared
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        j.iter().cloned().collect()
    }

    /// The file at `path` on `node` (a plain file or a storage volume), if any.
    pub fn node_file(&self, node: &str, path: &str) -> Option<NodeFileInfo> {
        let st = self.shared.lock();
        fs::stat(&st, node, path).map(|f| NodeFileInfo {
            size: f.size,
            content: f.body.content,
        })
    }

    /// All plain (non-storage) files of `node`, sorted.
    pub fn node_paths(&self, node: &str) -> Vec<String> {
        let st = self.shared.lock();
        st.node_files
            .get(node)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Fault injection: `false` closes `node`'s SSH connections and refuses new ones; `true`
    /// accepts again on the same port.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`] if the scenario has no such node.
    pub fn set_ssh_online(&self, node: &str, online: bool) -> Result<(), SimError> {
        let n = self
            .ssh
            .node(node)
            .ok_or_else(|| SimError::UnknownNode(node.to_string()))?;
        n.enabled.store(online, Ordering::SeqCst);
        n.refresh();
        Ok(())
    }
}

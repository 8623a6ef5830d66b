//! A session against the embedded simulator (`serve --sim`, `call --sim`, `check --sim`): the
//! composition root that joins [`crate::sim`] to the client side, so `main.rs` only hands over.
//! It lives outside `server`/`ops` because those may not depend on the simulator.
//!
//! - The nodes (names, SSH ports) and the cluster name come from the scenario, not a fixed list.
//! - With a configuration file, its settings other than the cluster connection apply (defaults,
//!   VMID ranges, tags, cloud-init, limits, paths, ansible); the cluster, API, credentials and
//!   SSH settings are replaced by the simulator's.
//! - A simulated session never writes the user's real audit log or runbook directory: both live
//!   in its own state directory (`$XDG_STATE_HOME/proxmox-manager/sim/`, `~/.local/state/...`
//!   when unset), and every audit record is marked `"simulated": true`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{self, Config, Node, TlsSetting};
use crate::ops;
use crate::sim;

/// The manager token the session uses (the least-privilege account of the design).
pub const SIM_TOKEN: &str = "claude-code@pve!automation";

/// How to start a simulated session.
#[derive(Debug, Clone)]
pub struct SimSessionOptions {
    /// `embedded` or the path of a scenario file.
    pub scenario: String,
    /// Simulator time scale (1.0 = real PVE task durations).
    pub time_scale: f64,
    /// A `cluster-config.yaml` whose non-connection settings apply.
    pub config: Option<PathBuf>,
    /// Where the session's audit log and runbooks live; `None` = [`default_state_dir`].
    pub state_dir: Option<PathBuf>,
}

/// A running simulator and everything a client needs to manage it.
pub struct SimSession {
    pub handle: sim::SimHandle,
    pub config: Config,
    pub credential: config::credentials::TokenCredential,
    pub shell: Arc<ops::NodeShell>,
    /// The session's own directory (audit log, runbooks).
    pub state_dir: PathBuf,
}

impl SimSession {
    /// The operation context: the session's config and token, SSH to the simulated nodes, and
    /// an audit log of its own whose records say `"simulated": true`.
    ///
    /// # Errors
    /// When the client cannot be built.
    pub fn context(&self) -> Result<ops::Context, ops::Error> {
        let mut ctx = ops::Context::new(self.config.clone(), self.credential.clone())?;
        ctx.audit = Arc::new(ops::audit::AuditLog::simulated(
            self.state_dir.join("audit.jsonl"),
        ));
        ctx.ssh = Some(self.shell.clone());
        Ok(ctx)
    }
}

/// `$XDG_STATE_HOME/proxmox-manager/sim` (`~/.local/state/...` when unset), else a directory
/// under the system's temp dir.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|b| b.join("proxmox-manager/sim"))
        .unwrap_or_else(|| std::env::temp_dir().join("proxmox-manager-sim"))
}

fn load_scenario(scenario: &str) -> Result<sim::Scenario, String> {
    if scenario == "embedded" {
        sim::Scenario::embedded().map_err(|e| e.to_string())
    } else {
        sim::Scenario::from_file(Path::new(scenario)).map_err(|e| e.to_string())
    }
}

/// Starts only the simulator (the `sim` command).
///
/// # Errors
/// When the scenario cannot be read or the simulator cannot listen.
pub async fn start_sim(
    scenario: &str,
    time_scale: f64,
    listen: std::net::SocketAddr,
) -> Result<sim::SimHandle, String> {
    start_scenario(load_scenario(scenario)?, time_scale, listen).await
}

/// Starts the simulator on `scenario`, then hands back to the system the memory building its
/// state freed (a 10,000-guest scenario's seeded backup runs leave tens of MiB of it).
///
/// # Errors
/// When the simulator cannot listen.
pub async fn start_scenario(
    scenario: sim::Scenario,
    time_scale: f64,
    listen: std::net::SocketAddr,
) -> Result<sim::SimHandle, String> {
    let handle = sim::start(sim::SimOptions {
        scenario,
        listen,
        time_scale,
    })
    .await
    .map_err(|e| format!("simulator failed to start: {e}"))?;
    crate::server::memory::trim_after_start();
    Ok(handle)
}

/// Starts the simulator and builds the client side of a session against it.
///
/// # Errors
/// When the scenario or the configuration file is invalid, the simulator cannot start, or the
/// scenario lacks the manager token.
pub async fn start(opts: &SimSessionOptions) -> Result<SimSession, String> {
    // The configuration first: a bad file fails before anything listens.
    let user_config = match &opts.config {
        Some(path) => Some(config::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let scenario = load_scenario(&opts.scenario)?;
    let cluster_name = scenario.cluster.clone();
    let listen = "127.0.0.1:0"
        .parse()
        .map_err(|e: std::net::AddrParseError| e.to_string())?;
    let handle = start_scenario(scenario, opts.time_scale, listen).await?;
    let token = handle.token(SIM_TOKEN).ok_or_else(|| {
        format!("the scenario has no {SIM_TOKEN} token; add it to the scenario's users")
    })?;
    let fingerprint =
        crate::pve::parse_fingerprint(&handle.fingerprint()).map_err(|e| e.to_string())?;
    let state_dir = opts.state_dir.clone().unwrap_or_else(default_state_dir);
    let nodes: Vec<(String, u16)> = handle
        .ssh_nodes()
        .into_iter()
        .map(|(name, addr)| (name, addr.port()))
        .collect();
    let cfg = session_config(
        user_config,
        &cluster_name,
        &nodes,
        handle.addr().port(),
        fingerprint,
        &state_dir,
    );
    let shell = Arc::new(sim_shell(&handle, &cfg)?);
    let credential = config::credentials::TokenCredential {
        id: token.id,
        secret: SecretString::from(token.secret),
        source: config::credentials::CredentialSource::Simulator,
    };
    tracing::info!(url = %handle.url(), state_dir = %state_dir.display(), "using the embedded simulated cluster");
    Ok(SimSession {
        handle,
        config: cfg,
        credential,
        shell,
        state_dir,
    })
}

/// The configuration of a simulated session: the user's file (or the built-in simulator
/// defaults) with the cluster connection replaced by the simulator's and the audit log and
/// runbook directory moved into `state_dir`. Pure.
pub fn session_config(
    user: Option<Config>,
    cluster_name: &str,
    nodes: &[(String, u16)],
    api_port: u16,
    fingerprint: [u8; 32],
    state_dir: &Path,
) -> Config {
    let sim = config::sim_config(api_port, fingerprint);
    let mut cfg = match user {
        Some(user) => Config {
            path: user.path.clone(),
            ..user
        },
        None => sim.clone(),
    };
    cfg.cluster.name = cluster_name.to_string();
    cfg.cluster.nodes = nodes
        .iter()
        .map(|(name, port)| Node {
            name: name.clone(),
            host: "127.0.0.1".to_string(),
            ssh_port: Some(*port),
        })
        .collect();
    cfg.api = config::Api {
        port: api_port,
        tls: TlsSetting::Fingerprint(fingerprint),
        timeout: cfg.api.timeout.max(Duration::from_secs(1)),
    };
    // The simulator's token and in-memory SSH key, never the user's.
    cfg.credentials = sim.credentials;
    cfg.ssh = sim.ssh;
    cfg.audit_log = Some(state_dir.join("audit.jsonl"));
    cfg.paths.runbooks = Some(state_dir.join("runbooks"));
    cfg
}

/// SSH to the simulator's nodes: a fresh Ed25519 key held only in memory and authorized
/// there, the simulator's host keys pinned.
fn sim_shell(handle: &sim::SimHandle, cfg: &Config) -> Result<ops::NodeShell, String> {
    use crate::ssh::{HostKeyPolicy, PoolOptions, SshAuth, SshPool};
    use russh::keys::{PrivateKey, ssh_key::private::Ed25519Keypair};
    use sha2::{Digest, Sha256};
    // 32 bytes from the OS CSPRNG (three v4 UUIDs, hashed), without another rand crate.
    let mut h = Sha256::new();
    for _ in 0..3 {
        h.update(uuid::Uuid::new_v4().as_bytes());
    }
    let seed: [u8; 32] = h.finalize().into();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|e| format!("encoding the session key: {e}"))?;
    handle
        .authorize_ssh_key(&public)
        .map_err(|e| e.to_string())?;
    let policy = HostKeyPolicy::pinned(&handle.ssh_known_hosts()).map_err(|e| e.to_string())?;
    let opts = PoolOptions::new(
        cfg.credentials.ssh_user.clone(),
        SshAuth::Key(Arc::new(key)),
        policy,
    );
    Ok(ops::NodeShell::new(SshPool::new(opts), cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_config_keeps_user_settings_and_replaces_the_connection() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("cluster-config.yaml");
        std::fs::write(
            &file,
            "cluster:\n  name: home\n  nodes:\n    - name: pve01\n      host: pve01.example\n\
             defaults:\n  storage: local-zfs\n  network_bridge: vmbr1\n  bios: seabios\n  machine: q35\n  cpu: host\n  scsi_controller: virtio-scsi-single\n  efidisk_pre_enrolled_keys: false\n  guest_agent: true\n\
             vmid_ranges:\n  templates: 200-299\n  vms: 5000-5999\n\
             credentials:\n  pass_path: home/pve/token\n  ssh_user: admin\n\
             tags:\n  templates: [\"tmpl\"]\n\
             cloudinit:\n  default_user: bob\n  vendor_snippet_path: /var/lib/vz/snippets/\n\
             audit_log: /tmp/real-audit.jsonl\n",
        )
        .expect("write");
        let user = config::load(&file).expect("valid config");
        let state = dir.path().join("state");
        let nodes = vec![("lab1".to_string(), 2201), ("lab2".to_string(), 2202)];
        let cfg = session_config(Some(user), "lab", &nodes, 18006, [1; 32], &state);
        assert_eq!(cfg.cluster.name, "lab");
        let names: Vec<&str> = cfg.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["lab1", "lab2"]);
        assert_eq!(cfg.cluster.nodes[1].ssh_port, Some(2202));
        assert_eq!(cfg.api_endpoints()[0], "https://127.0.0.1:18006");
        assert_eq!(cfg.vmid_ranges.vms.to_string(), "5000-5999");
        assert_eq!(cfg.defaults.storage, "local-zfs");
        assert_eq!(cfg.cloudinit.default_user, "bob");
        assert_eq!(cfg.credentials.pass_path, None);
        assert_eq!(cfg.credentials.ssh_user, "root");
        assert_eq!(cfg.audit_log, Some(state.join("audit.jsonl")));
        assert_eq!(cfg.paths.runbooks, Some(state.join("runbooks")));
    }
}

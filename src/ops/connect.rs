//! Building the PVE client from the validated configuration and resolved credentials.

use std::sync::Arc;

use crate::config::{self, Config, TlsSetting, credentials::TokenCredential};
use crate::pve;

use super::Error;
use super::allocate::Allocator;
use super::audit::AuditLog;
use super::node_ssh::NodeShell;
use super::run::Timeouts;

/// What every operation needs: the client, the configuration it was built from, how long to
/// wait, and the server-wide VMID allocator and audit log.
#[derive(Clone)]
pub struct Context {
    pub client: pve::Client,
    pub config: Arc<Config>,
    pub timeouts: Timeouts,
    pub allocator: Arc<Allocator>,
    pub audit: Arc<AuditLog>,
    /// SSH to the nodes, when the config gives a way to authenticate.
    pub ssh: Option<Arc<NodeShell>>,
    /// Evacuation plans recently previewed, so a stale confirmation can say what changed.
    pub previews: Arc<crate::ops::migrate::Previews>,
    /// The Ansible inventory, read (a subprocess) at most once per TTL.
    pub ansible: Arc<crate::ops::ansible::InventoryCache>,
    /// Recent `vm_list` listings, so later pages do not re-read the cluster.
    pub listings: Arc<crate::ops::vm::listing::ListingCache>,
    /// Finished backup tasks' logs, as `backup_jobs` read them.
    pub run_logs: Arc<crate::ops::backup::RunLogs>,
}

impl Context {
    /// Connects nothing yet: the client is lazy, the first request opens the connection.
    ///
    /// # Errors
    /// When the token id is malformed or the TLS settings cannot be turned into a client
    /// (for example an unreadable CA file).
    pub fn new(config: Config, credential: TokenCredential) -> Result<Self, Error> {
        let client = pve::Client::new(client_options(&config, credential)?)?;
        let audit = Arc::new(AuditLog::new(config.audit_log.as_deref()));
        Ok(Context {
            client,
            config: Arc::new(config),
            timeouts: Timeouts::default(),
            allocator: Arc::default(),
            audit,
            ssh: None,
            previews: Arc::default(),
            ansible: Arc::default(),
            listings: Arc::default(),
            run_logs: Arc::default(),
        })
    }
}

impl Context {
    /// A context around a client built elsewhere — for tests of operations against an
    /// in-memory node ([`pve::fake::FakePve`]), where decisions run with paused time.
    pub fn with_client(config: Config, client: pve::Client) -> Self {
        let audit = Arc::new(AuditLog::new(config.audit_log.as_deref()));
        Context {
            client,
            config: Arc::new(config),
            timeouts: Timeouts::default(),
            allocator: Arc::default(),
            audit,
            ssh: None,
            previews: Arc::default(),
            ansible: Arc::default(),
            listings: Arc::default(),
            run_logs: Arc::default(),
        }
    }
}

/// The client options a configuration asks for: one endpoint per configured node (tried in
/// order when a node cannot be reached), the TLS mode, the token and the request timeout.
///
/// # Errors
/// When the credential's token id is not of the form `user@realm!name`.
pub fn client_options(
    config: &Config,
    credential: TokenCredential,
) -> Result<pve::ClientOptions, Error> {
    let endpoints = config.api_endpoints();
    let tls = match &config.api.tls {
        TlsSetting::System => pve::TlsMode::SystemRoots,
        TlsSetting::CaFile(path) => pve::TlsMode::CaFile(path.clone()),
        TlsSetting::Fingerprint(fp) => pve::TlsMode::Fingerprint(*fp),
    };
    let token = pve::ApiToken::new(credential.id, credential.secret)?;
    Ok(pve::ClientOptions {
        endpoints,
        tls,
        token,
        timeout: config.api.timeout,
        max_retries: 3,
    })
}

/// Resolves credentials for a configuration and builds the context.
///
/// # Errors
/// When no credential source yields a token, or the client cannot be built.
pub fn from_config(config: Config) -> Result<Context, Error> {
    let credential =
        config::credentials::resolve(&config).map_err(|e| Error::Setup(e.to_string()))?;
    let passphrase = config::credentials::ssh_passphrase(&config, &config::process_env)
        .map_err(|e| Error::Setup(e.to_string()))?;
    let ssh = NodeShell::from_config(&config, passphrase).map(Arc::new);
    let mut ctx = Context::new(config, credential)?;
    ctx.ssh = ssh;
    Ok(ctx)
}

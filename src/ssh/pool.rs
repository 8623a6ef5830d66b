//! The connection pool: one authenticated SSH connection per `host:port`, many channels over
//! it, transparent reconnect when it dropped, bounded concurrency per node.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::PublicKeyOrCertificate;
use russh::{Channel, Disconnect};
use tokio::sync::{Mutex, Semaphore};

use super::auth::{self, SshAuth};
use super::exec::{self, ExecOptions, ExecOutput};
use super::{Command, Error, HostKeyPolicy};

/// A node's SSH endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
}

impl SshTarget {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        SshTarget {
            host: host.into(),
            port,
        }
    }
}

/// How the pool connects. Build with [`PoolOptions::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Remote user (`credentials.ssh_user`).
    pub user: String,
    pub auth: SshAuth,
    pub host_keys: HostKeyPolicy,
    /// Limit for TCP connect + handshake + authentication, and for opening a channel.
    pub connect_timeout: Duration,
    /// Keepalive probe interval; a connection that misses three is considered dead.
    pub keepalive: Duration,
    /// Channels open at once per node. OpenSSH's `MaxSessions` defaults to 10 per connection,
    /// so stay at or below that.
    pub max_channels_per_host: usize,
}

impl PoolOptions {
    /// Defaults: 10 s connect timeout, 15 s keepalive, 8 channels per node.
    pub fn new(user: impl Into<String>, auth: SshAuth, host_keys: HostKeyPolicy) -> Self {
        PoolOptions {
            user: user.into(),
            auth,
            host_keys,
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
            max_channels_per_host: 8,
        }
    }
}

/// Connections to many nodes, shared by all callers (`Arc<SshPool>`).
pub struct SshPool {
    opts: PoolOptions,
    config: Arc<client::Config>,
    /// Held only to look up or insert a node's slot, never across I/O, so a slow node does not
    /// hold up calls to the others.
    hosts: Mutex<HashMap<SshTarget, Arc<HostSlot>>>,
    connects: AtomicU64,
}

/// One node's connection and channel budget.
struct HostSlot {
    /// Held while (re)connecting, so concurrent calls to a node whose connection is missing
    /// wait for the one connect in progress instead of each opening (and authenticating,
    /// and possibly trusting-on-first-use) a connection of their own.
    conn: Mutex<Option<Arc<Handle<Verifier>>>>,
    /// Bounds open channels on the one connection: sshd refuses sessions past `MaxSessions`,
    /// and a node importing disks should not also run fifty other commands.
    channels: Semaphore,
}

impl std::fmt::Debug for SshPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshPool")
            .field("opts", &self.opts)
            .field("connects", &self.connects())
            .finish()
    }
}

impl SshPool {
    pub fn new(opts: PoolOptions) -> Self {
        let config = client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(opts.keepalive),
            keepalive_max: 3,
            ..Default::default()
        };
        SshPool {
            opts,
            config: Arc::new(config),
            hosts: Mutex::new(HashMap::new()),
            connects: AtomicU64::new(0),
        }
    }

    /// How many connections this pool has established so far (reuse keeps it at one per node).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Run `cmd` on `target` and wait for it to finish.
    ///
    /// A non-zero exit status is not an error: it is in [`ExecOutput::status`].
    ///
    /// # Errors
    ///
    /// Connection, host key and authentication errors; [`Error::Timeout`] after
    /// `opts.timeout`; [`Error::Channel`] when the connection breaks mid-command.
    pub async fn exec(
        &self,
        target: &SshTarget,
        cmd: &Command,
        opts: ExecOptions,
    ) -> Result<ExecOutput, Error> {
        let slot = self.slot(target).await;
        let _permit = slot.channels.acquire().await.map_err(|_| Error::Channel {
            host: target.host.clone(),
            command: cmd.summary(),
            reason: "the pool is shutting down".into(),
            may_have_run: false,
        })?;
        let channel = self.open_channel(&slot, target, &cmd.summary()).await?;
        tracing::debug!(host = %target.host, command = %cmd.summary(), "ssh exec");
        exec::run(channel, &target.host, cmd, &opts).await
    }

    /// Write `data` to `remote_path` on `target` over SFTP and set its permission bits.
    ///
    /// # Errors
    ///
    /// As [`SshPool::exec`], plus [`Error::Sftp`].
    pub async fn upload(
        &self,
        target: &SshTarget,
        data: &[u8],
        remote_path: &str,
        mode: u32,
    ) -> Result<(), Error> {
        self.upload_reader(target, data, remote_path, mode).await
    }

    /// Stream a local file to `remote_path` on `target` over SFTP.
    ///
    /// # Errors
    ///
    /// As [`SshPool::upload`], plus [`Error::Io`] when the local file cannot be read.
    pub async fn upload_file(
        &self,
        target: &SshTarget,
        local: &Path,
        remote_path: &str,
        mode: u32,
    ) -> Result<(), Error> {
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|source| Error::Io {
                context: format!("cannot open {} for upload", local.display()),
                source,
            })?;
        self.upload_reader(target, file, remote_path, mode).await
    }

    async fn upload_reader<R: tokio::io::AsyncRead + Unpin>(
        &self,
        target: &SshTarget,
        reader: R,
        remote_path: &str,
        mode: u32,
    ) -> Result<(), Error> {
        let slot = self.slot(target).await;
        let _permit = slot.channels.acquire().await.map_err(|_| Error::Sftp {
            host: target.host.clone(),
            remote_path: remote_path.to_owned(),
            reason: "the pool is shutting down".into(),
        })?;
        let channel = self.open_channel(&slot, target, "sftp").await?;
        super::upload::sftp_write(channel, &target.host, reader, remote_path, mode).await
    }

    /// Close every connection (they also close when the pool is dropped).
    pub async fn close(&self) {
        let slots: Vec<Arc<HostSlot>> = self.hosts.lock().await.drain().map(|(_, s)| s).collect();
        for slot in slots {
            if let Some(h) = slot.conn.lock().await.take() {
                let _ = h.disconnect(Disconnect::ByApplication, "", "en").await;
            }
        }
    }

    async fn slot(&self, target: &SshTarget) -> Arc<HostSlot> {
        let mut hosts = self.hosts.lock().await;
        hosts
            .entry(target.clone())
            .or_insert_with(|| {
                Arc::new(HostSlot {
                    conn: Mutex::new(None),
                    channels: Semaphore::new(self.opts.max_channels_per_host.max(1)),
                })
            })
            .clone()
    }

    /// Open a session channel, reconnecting once if the pooled connection turns out dead.
    /// Retrying is safe: nothing was sent to the node on the dead connection.
    async fn open_channel(
        &self,
        slot: &HostSlot,
        target: &SshTarget,
        what: &str,
    ) -> Result<Channel<Msg>, Error> {
        let handle = self.handle(slot, target).await?;
        let first = match self.try_open(&handle).await {
            Ok(ch) => return Ok(ch),
            Err(e) => e,
        };
        tracing::info!(host = %target.host, port = target.port, reason = %first, "ssh connection lost, reconnecting");
        {
            let mut conn = slot.conn.lock().await;
            if conn.as_ref().is_some_and(|h| Arc::ptr_eq(h, &handle)) {
                *conn = None;
            }
        }
        let handle = self.handle(slot, target).await?;
        self.try_open(&handle)
            .await
            .map_err(|reason| Error::Channel {
                host: target.host.clone(),
                command: what.to_owned(),
                reason,
                may_have_run: false,
            })
    }

    async fn try_open(&self, handle: &Handle<Verifier>) -> Result<Channel<Msg>, String> {
        if handle.is_closed() {
            return Err("connection closed".into());
        }
        match tokio::time::timeout(self.opts.connect_timeout, handle.channel_open_session()).await {
            Ok(Ok(ch)) => Ok(ch),
            Ok(Err(e)) => Err(format!("cannot open a channel: {e}")),
            Err(_) => Err("opening a channel timed out".into()),
        }
    }

    /// The live connection of `slot`, connecting if there is none.
    async fn handle(
        &self,
        slot: &HostSlot,
        target: &SshTarget,
    ) -> Result<Arc<Handle<Verifier>>, Error> {
        let mut conn = slot.conn.lock().await;
        if let Some(h) = conn.as_ref().filter(|h| !h.is_closed()) {
            return Ok(h.clone());
        }
        let handle = Arc::new(self.connect(target).await?);
        *conn = Some(handle.clone());
        Ok(handle)
    }

    async fn connect(&self, target: &SshTarget) -> Result<Handle<Verifier>, Error> {
        let connect_err = |reason: String| Error::Connect {
            host: target.host.clone(),
            port: target.port,
            reason,
        };
        let timeout = self.opts.connect_timeout;
        let verifier = Verifier {
            host: target.host.clone(),
            port: target.port,
            policy: self.opts.host_keys.clone(),
        };
        let addr = (target.host.as_str(), target.port);
        let connecting = client::connect(self.config.clone(), addr, verifier);
        let mut handle = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => {
                return Err(connect_err(format!(
                    "no ssh handshake within {}s",
                    timeout.as_secs()
                )));
            }
            Ok(Err(VerifierError::HostKey(e))) => return Err(e),
            Ok(Err(VerifierError::Ssh(e))) => return Err(connect_err(e.to_string())),
            Ok(Ok(h)) => h,
        };
        let authenticating =
            auth::authenticate(&mut handle, &target.host, &self.opts.user, &self.opts.auth);
        match tokio::time::timeout(timeout, authenticating).await {
            Err(_) => Err(connect_err(format!(
                "authentication did not finish within {}s",
                timeout.as_secs()
            ))),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => {
                self.connects.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(host = %target.host, port = target.port, user = %self.opts.user, "ssh connected");
                Ok(handle)
            }
        }
    }
}

/// The russh handler: checks the server key against the policy, nothing else.
pub(crate) struct Verifier {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
}

/// Lets a host key refusal come out of `client::connect` as our own error, not a generic one.
#[derive(Debug)]
pub(crate) enum VerifierError {
    Ssh(russh::Error),
    HostKey(Error),
}

impl From<russh::Error> for VerifierError {
    fn from(e: russh::Error) -> Self {
        VerifierError::Ssh(e)
    }
}

impl client::Handler for Verifier {
    type Error = VerifierError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        self.policy
            .verify(&self.host, self.port, &key.public_key())
            .map(|()| true)
            .map_err(VerifierError::HostKey)
    }
}

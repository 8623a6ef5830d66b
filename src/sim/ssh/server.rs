//! One russh server per node on loopback: Ed25519 host key made at start, `root` with an
//! authorized public key only, exec requests run by [`super::exec`], the `sftp` subsystem by
//! [`super::sftp`]. A node that is offline (`set_node_online`) or has SSH switched off
//! (`set_ssh_online`) drops new TCP connections at once and has its open ones disconnected;
//! the listener stays bound, so it comes back on the same port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, Disconnect, MethodKind, MethodSet};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::exec::{self, NodeCtx};
use super::{NodeSsh, SshShared};

/// A fresh Ed25519 host key (seeded from the OS RNG through uuid v4, hashed).
pub fn host_key() -> PrivateKey {
    let mut h = Sha256::new();
    h.update(uuid::Uuid::new_v4().as_bytes());
    h.update(uuid::Uuid::new_v4().as_bytes());
    h.update(uuid::Uuid::new_v4().as_bytes());
    let seed: [u8; 32] = h.finalize().into();
    PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &seed,
    ))
}

/// The server configuration of one node.
pub fn config(key: PrivateKey, rejection: Duration) -> Arc<russh::server::Config> {
    Arc::new(russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: rejection,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    })
}

/// Accepts connections for `node` until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    node: Arc<NodeSsh>,
    ctx: Arc<NodeCtx>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((sock, _peer)) = accepted else {
            continue;
        };
        if !*node.online.borrow() {
            drop(sock);
            continue;
        }
        let handler = Conn {
            ctx: Arc::clone(&ctx),
            channels: HashMap::new(),
        };
        tokio::spawn(connection(
            sock,
            Arc::clone(&config),
            handler,
            node.online.subscribe(),
            cancel.clone(),
        ));
    }
}

async fn connection(
    sock: tokio::net::TcpStream,
    config: Arc<russh::server::Config>,
    handler: Conn,
    mut online: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    let started = tokio::select! {
        _ = cancel.cancelled() => return,
        _ = went_offline(&mut online) => return,
        s = russh::server::run_stream(config, sock, handler) => s,
    };
    let Ok(mut session) = started else { return };
    let handle = session.handle();
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = went_offline(&mut online) => {}
        _ = &mut session => return,
    }
    let _ = handle
        .disconnect(
            Disconnect::ByApplication,
            "node went away".into(),
            "en".into(),
        )
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), session).await;
}

/// Resolves once the node's effective online flag is false.
async fn went_offline(rx: &mut watch::Receiver<bool>) {
    loop {
        if !*rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One client connection.
struct Conn {
    ctx: Arc<NodeCtx>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl Conn {
    fn allowed(&self, user: &str, key: &PublicKey) -> Auth {
        if user == "root" && self.ctx.ssh.is_authorized(key) {
            Auth::Accept
        } else {
            Auth::reject()
        }
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.allowed(user, offer.public_key))
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.allowed(user, key.public_key))
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // stdin is not read by any modelled command: drop our end so it is discarded
        self.channels.remove(&channel);
        session.channel_success(channel)?;
        let line = String::from_utf8_lossy(data).into_owned();
        let ctx = Arc::clone(&self.ctx);
        let handle = session.handle();
        tokio::spawn(async move {
            let mut io = exec::Io::to_channel(handle.clone(), channel);
            let status = exec::run_line(&ctx, &line, &mut io).await;
            io.flush().await;
            let _ = handle.exit_status_request(channel, status).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // the simulator runs commands, not interactive shells
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match (name, self.channels.remove(&channel)) {
            ("sftp", Some(ch)) => {
                session.channel_success(channel)?;
                let handler = super::sftp::Sftp::new(Arc::clone(&self.ctx));
                russh_sftp::server::run(ch.into_stream(), handler).await;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }
}

/// Binds a node's listener.
pub async fn bind(ip: std::net::IpAddr) -> Result<(TcpListener, SocketAddr), std::io::Error> {
    let l = TcpListener::bind((ip, 0)).await?;
    let addr = l.local_addr()?;
    Ok((l, addr))
}

impl SshShared {
    pub fn is_authorized(&self, key: &PublicKey) -> bool {
        self.authorized
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|k| k.key_data() == key.key_data())
    }
}

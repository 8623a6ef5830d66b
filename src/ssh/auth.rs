//! Client authentication: a private key file (optionally passphrase-protected) or an
//! ssh-agent. The passphrase lives in a [`SecretString`] and is exposed only to the key
//! decoder.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{self, PrivateKeyWithHashAlg};
use secrecy::{ExposeSecret, SecretString};

use super::Error;

/// How we prove who we are to the node.
#[derive(Clone)]
pub enum SshAuth {
    /// An OpenSSH private key file; `passphrase` when it is encrypted (e.g. read from `pass`).
    KeyFile {
        path: PathBuf,
        passphrase: Option<SecretString>,
    },
    /// Keys held by an ssh-agent: at `socket`, or at `$SSH_AUTH_SOCK` when `None`.
    Agent { socket: Option<PathBuf> },
    /// A key held in memory only (the embedded simulator's session key); never written out.
    Key(Arc<keys::PrivateKey>),
}

impl fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SshAuth::KeyFile { path, passphrase } => f
                .debug_struct("KeyFile")
                .field("path", path)
                .field("passphrase", &passphrase.as_ref().map(|_| "[REDACTED]"))
                .finish(),
            SshAuth::Agent { socket } => f.debug_struct("Agent").field("socket", socket).finish(),
            SshAuth::Key(k) => f
                .debug_tuple("Key")
                .field(
                    &k.public_key()
                        .fingerprint(keys::HashAlg::Sha256)
                        .to_string(),
                )
                .finish(),
        }
    }
}

/// Public-key authentication with `key`; `Ok(false)` when the server refused it.
async fn with_key<H: russh::client::Handler>(
    session: &mut Handle<H>,
    user: &str,
    key: Arc<keys::PrivateKey>,
    fail: &impl Fn(String) -> Error,
) -> Result<bool, Error> {
    let hash = session
        .best_supported_rsa_hash()
        .await
        .map_err(|e| fail(format!("negotiating the signature algorithm: {e}")))?
        .flatten();
    let result = session
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(result.success())
}

/// Authenticate an established session as `user`.
pub(crate) async fn authenticate<H: russh::client::Handler>(
    session: &mut Handle<H>,
    host: &str,
    user: &str,
    auth: &SshAuth,
) -> Result<(), Error> {
    let fail = |reason: String| Error::Auth {
        user: user.to_owned(),
        host: host.to_owned(),
        reason,
    };
    match auth {
        SshAuth::KeyFile { path, passphrase } => {
            let key = keys::load_secret_key(path, passphrase.as_ref().map(|p| p.expose_secret()))
                .map_err(|e| {
                let hint = if passphrase.is_some() {
                    "wrong passphrase or unreadable key"
                } else {
                    "the key may be encrypted: configure its passphrase"
                };
                fail(format!("cannot load key {}: {e} ({hint})", path.display()))
            })?;
            if with_key(session, user, Arc::new(key), &fail).await? {
                Ok(())
            } else {
                Err(fail(format!(
                    "the server refused key {}; add its public key to ~{user}/.ssh/authorized_keys on the node",
                    path.display()
                )))
            }
        }
        SshAuth::Key(key) => {
            if with_key(session, user, Arc::clone(key), &fail).await? {
                Ok(())
            } else {
                Err(fail("the server refused the in-memory session key".into()))
            }
        }
        SshAuth::Agent { socket } => {
            let mut agent = match socket {
                Some(p) => AgentClient::connect_uds(p).await,
                None => AgentClient::connect_env().await,
            }
            .map_err(|e| {
                fail(format!(
                    "cannot reach the ssh-agent: {e}; is SSH_AUTH_SOCK set and the agent running?"
                ))
            })?;
            let identities = agent
                .request_identities()
                .await
                .map_err(|e| fail(format!("cannot list ssh-agent keys: {e}")))?;
            let hash = session
                .best_supported_rsa_hash()
                .await
                .map_err(|e| fail(format!("negotiating the signature algorithm: {e}")))?
                .flatten();
            let count = identities.len();
            for identity in identities {
                let AgentIdentity::PublicKey { key, .. } = identity else {
                    continue;
                };
                let result = session
                    .authenticate_publickey_with(user, key, hash, &mut agent)
                    .await
                    .map_err(|e| fail(format!("ssh-agent signing failed: {e}")))?;
                if result.success() {
                    return Ok(());
                }
            }
            Err(fail(format!(
                "none of the {count} ssh-agent keys was accepted; `ssh-add` the right key or add it to authorized_keys on the node"
            )))
        }
    }
}

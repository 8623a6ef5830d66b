//! The one error type of the SSH layer. Messages are lowercase, name the host and the cause,
//! and say what to do next. They never contain a key passphrase, and never a full command line
//! (arguments may carry secrets): only the program name, see [`super::Command::summary`].

/// Everything that can go wrong talking to a node over SSH.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TCP connect, SSH handshake or transport failure before anything ran: safe to retry.
    #[error(
        "cannot connect to {host}:{port} over ssh: {reason}; check that sshd runs there and the address is reachable"
    )]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },

    /// The server presented a key that known_hosts does not list for this host and port.
    #[error(
        "host key of {host}:{port} is unknown (presented {fingerprint}); refusing to connect. To trust it: {fix}"
    )]
    UnknownHostKey {
        host: String,
        port: u16,
        /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
        fingerprint: String,
        /// The command that records the key, to run after checking the fingerprint out of band.
        fix: String,
    },

    /// known_hosts lists a different key of the same type for this host: possible
    /// man-in-the-middle, or a reinstalled node. Never trusted automatically.
    #[error(
        "host key of {host}:{port} changed: it no longer matches line {line} of {known_hosts} (presented {fingerprint}); refusing to connect. If the node was reinstalled, check the fingerprint on its console, then run `ssh-keygen -R {} -f {known_hosts}` and trust the new key",
        known_hosts_name(host, *port)
    )]
    HostKeyChanged {
        host: String,
        port: u16,
        known_hosts: String,
        line: usize,
        fingerprint: String,
    },

    /// The server's key is not the key pinned for this host in memory.
    #[error(
        "host key of {host}:{port} is not the pinned key (presented {fingerprint}, pinned {pinned}); refusing to connect"
    )]
    PinnedKeyMismatch {
        host: String,
        port: u16,
        fingerprint: String,
        pinned: String,
    },

    /// known_hosts could not be read, parsed or (with trust-on-first-use) written.
    #[error("cannot use known_hosts file {path}: {reason}")]
    KnownHosts { path: String, reason: String },

    /// The server refused our identity, or the key could not be loaded.
    #[error("ssh authentication as {user} on {host} failed: {reason}")]
    Auth {
        user: String,
        host: String,
        reason: String,
    },

    /// The command did not finish in time. The connection is kept; the remote process may still
    /// be running.
    #[error(
        "`{command}` on {host} did not finish within {seconds}s; it may still be running there"
    )]
    Timeout {
        host: String,
        /// Program name only (see [`super::Command::summary`]).
        command: String,
        seconds: u64,
    },

    /// A channel could not be opened or broke while a command ran. `may_have_run` says whether
    /// the command could have been started (then a retry is not automatically safe).
    #[error("ssh channel to {host} failed during `{command}`: {reason}{}", if *.may_have_run { " (the command may have run)" } else { " (the command did not start)" })]
    Channel {
        host: String,
        command: String,
        reason: String,
        may_have_run: bool,
    },

    /// SFTP upload failed.
    #[error("sftp upload to {host}:{remote_path} failed: {reason}")]
    Sftp {
        host: String,
        remote_path: String,
        reason: String,
    },

    /// Local I/O (reading a file to upload, ...).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The name known_hosts files use for a host: `host` on port 22, `'[host]:port'` otherwise
/// (quoted for the shell).
fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        super::quote(host)
    } else {
        super::quote(&format!("[{host}]:{port}"))
    }
}

impl Error {
    /// Whether retrying the same operation cannot do something twice: nothing reached the node.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Channel { may_have_run, .. } => !may_have_run,
            _ => false,
        }
    }
}

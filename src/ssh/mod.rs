//! The SSH layer: commands on Proxmox nodes that the REST API does not offer (`qm disk import`,
//! writing snippets). A pool keeps one authenticated connection per node and multiplexes
//! channels over it; host keys are checked against known_hosts; every command line is built
//! from quoted words.
//!
//! Depends on nothing of ours: callers pass plain parameters (user, key path, known_hosts path).

mod auth;
mod error;
mod exec;
mod host_keys;
mod pool;
mod quote;
mod upload;

pub use auth::SshAuth;
pub use error::Error;
pub use exec::{ExecOptions, ExecOutput, KILL_AFTER, MAX_CAPTURE, OutputFn};
pub use host_keys::{HostKeyPolicy, fingerprint};
pub use pool::{PoolOptions, SshPool, SshTarget};
pub use quote::{Command, quote};

//! The PVE REST client: everything about talking to the Proxmox VE API and nothing else.
//!
//! Owns the wire: token authentication ([`ApiToken`]), TLS trust ([`TlsMode`]: system roots, a
//! CA file, or a pinned leaf fingerprint), PVE's envelope and error statuses, lenient decoding of
//! Perl-shaped JSON ([`perl`]), typed UPIDs ([`Upid`]), task status/log and [`wait_task`].
//! QEMU writes (clone, config, power, destroy, resize, template) answer [`Upid`]s; the
//! classifiers [`Error::lock_contention`], [`Error::is_vmid_taken`] and
//! [`Error::is_agent_not_running`] read PVE's texts from early HTTP errors and failed tasks alike.
//!
//! Retry policy: GETs are retried by the client on retryable failures (connect errors,
//! timeouts, broken connections, 502/503/504) with backoff from 200 ms doubling to 2 s; POST,
//! PUT and DELETE are never retried once they may have been sent. Any request fails over to
//! the next endpoint when the connection could not be made at all. See [`Error::is_retryable`].
//!
//! Must not depend on any other module of this crate; knows nothing of MCP, SSH or YAML.

mod access;
mod backup;
pub use backup::{BackupJob, NotBackedUp};
mod client;
mod cluster;
mod envelope;
mod error;
mod error_class;
pub mod fake;
mod locate;
mod lxc;
pub use lxc::{GuestType, LxcInterface, guest_path};
mod lxc_create;
pub use lxc_create::{Appliance, CloneLxc, CreateLxc};
mod migrate;
mod nodes;
pub mod perl;
mod qemu;
mod qemu_config;
mod qemu_write;
mod qemu_write_types;
mod snapshot;
pub use snapshot::SnapshotItem;
mod storage;
pub use storage::DownloadUrl;
mod storage_types;
mod task_types;
mod tasks;
mod tls;
mod token;
mod types;
mod upid;
mod wait;

pub use client::{Client, ClientOptions, Transport, path_segment};
pub use envelope::FileRead;
pub use error::Error;
pub use migrate::{
    HaGroup, HaResource, HaRule, LocalDisk, MigrateLxc, MigratePrecondition, MigrateQemu,
    ha_node_names,
};
pub use qemu_config::{DiskEntry, QemuConfig};
pub use qemu_write::encode_sshkeys;
pub use qemu_write_types::{
    AgentInterface, AgentInterfaceStatistics, AgentIpAddress, CloneQemu, DeleteQemu,
    QemuPendingItem, ShutdownQemu, StartQemu, StopQemu,
};
pub use storage_types::{NodeStorage, StorageConfigItem, StorageContentItem, StorageContentRow};
pub use task_types::{TaskListItem, TaskLogLine, TaskStatus, exit_success};
pub use tasks::{TaskFilter, TaskLogPage};
pub use tls::{
    TlsMode, format_fingerprint, parse_fingerprint, sha256_fingerprint, warm_up as warm_up_tls,
};
pub use token::ApiToken;
pub use types::{
    ClusterResource, ClusterStatusItem, CpuInfo, Extra, MemoryInfo, NodeListItem, NodeStatus,
    QemuListItem, QemuStatus, ResourceKind, ResourcePlace, ResourceType, RootFsInfo, split_tags,
};
pub use upid::Upid;
pub use wait::{ProgressFn, TaskOutcome, TaskProgress, WaitOptions, wait_task};

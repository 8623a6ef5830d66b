//! Backups: `vzdump` (answers a UPID, or the literal `OK` when none of the guests is on the
//! node), the scheduled jobs of `/cluster/backup` (with the computed `next-run`), and the
//! guests no job covers.

use serde::Deserialize;

use super::client::{Client, path_segment};
use super::error::Error;
use super::upid::Upid;

/// One job of `GET /cluster/backup`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BackupJob {
    #[serde(default, deserialize_with = "super::perl::string_or_empty")]
    pub id: String,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub schedule: Option<String>,
    /// Unix time of the next run (absent for a disabled job).
    #[serde(
        default,
        rename = "next-run",
        deserialize_with = "super::perl::opt_i64"
    )]
    pub next_run: Option<i64>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub storage: Option<String>,
    /// Comma-separated vmids.
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub vmid: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub all: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub pool: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub exclude: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub node: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "super::perl::opt_bool")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub comment: Option<String>,
}

/// One row of `GET /cluster/backup-info/not-backed-up`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NotBackedUp {
    #[serde(default, deserialize_with = "super::perl::opt_u32")]
    pub vmid: Option<u32>,
    #[serde(default, deserialize_with = "super::perl::opt_string")]
    pub name: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "super::perl::opt_string")]
    pub kind: Option<String>,
}

impl Client {
    /// `POST /nodes/{node}/vzdump`: `None` when PVE answered `OK` (no selected guest there).
    pub async fn vzdump(
        &self,
        node: &str,
        params: &[(&str, String)],
    ) -> Result<Option<Upid>, Error> {
        let path = format!("/nodes/{}/vzdump", path_segment(node));
        let answer: String = self.post(&path, params).await?;
        if answer.starts_with("UPID:") {
            answer.parse::<Upid>().map(Some)
        } else {
            Ok(None)
        }
    }

    /// `GET /cluster/backup`.
    pub async fn list_backup_jobs(&self) -> Result<(Vec<BackupJob>, Vec<String>), Error> {
        self.get_list("/cluster/backup", &[]).await
    }

    /// `GET /cluster/backup-info/not-backed-up`.
    pub async fn not_backed_up(&self) -> Result<(Vec<NotBackedUp>, Vec<String>), Error> {
        self.get_list("/cluster/backup-info/not-backed-up", &[])
            .await
    }
}

//! Task reads: list, status, log (with `total`) and the log tail used in failure reports.

use reqwest::Method;

use super::client::{Client, path_segment};
use super::envelope;
use super::error::Error;
use super::task_types::{TaskListItem, TaskLogLine, TaskStatus};
use super::upid::Upid;

/// Filters of `GET /nodes/{node}/tasks`; `None`/`false` leave PVE's defaults.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub vmid: Option<u32>,
    /// Task type, e.g. `qmclone`.
    pub typefilter: Option<String>,
    pub userfilter: Option<String>,
    /// Only failed tasks.
    pub errors: bool,
    /// `active`, `archive` (PVE default) or `all`.
    pub source: Option<String>,
    /// `running`, `ok`, `error`, `warning`... (comma-separated).
    pub statusfilter: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub start: Option<u32>,
    pub limit: Option<u32>,
}

impl TaskFilter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let mut push = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                q.push((k, v));
            }
        };
        push("vmid", self.vmid.map(|v| v.to_string()));
        push("typefilter", self.typefilter.clone());
        push("userfilter", self.userfilter.clone());
        push("errors", self.errors.then(|| "1".to_owned()));
        push("source", self.source.clone());
        push("statusfilter", self.statusfilter.clone());
        push("since", self.since.map(|v| v.to_string()));
        push("until", self.until.map(|v| v.to_string()));
        push("start", self.start.map(|v| v.to_string()));
        push("limit", self.limit.map(|v| v.to_string()));
        q
    }
}

/// A page of a task log plus the total line count PVE reported.
#[derive(Debug, Clone)]
pub struct TaskLogPage {
    pub lines: Vec<TaskLogLine>,
    pub total: Option<u64>,
}

fn task_path(upid: &Upid, leaf: &str) -> String {
    format!(
        "/nodes/{}/tasks/{}/{leaf}",
        path_segment(upid.node()),
        upid.to_path_segment()
    )
}

impl Client {
    /// `GET /nodes/{node}/tasks`. A token sees only its own tasks unless it has Sys.Audit.
    pub async fn list_tasks(
        &self,
        node: &str,
        filter: TaskFilter,
    ) -> Result<Vec<TaskListItem>, Error> {
        let query = filter.query();
        Ok(self
            .get_list(&format!("/nodes/{}/tasks", path_segment(node)), &query)
            .await?
            .0)
    }

    /// `GET /nodes/{upid.node}/tasks/{upid}/status`.
    pub async fn get_task_status(&self, upid: &Upid) -> Result<TaskStatus, Error> {
        self.get(&task_path(upid, "status"), &[]).await
    }

    /// `GET /nodes/{upid.node}/tasks/{upid}/log?start=&limit=`; `start` is 0-based, line
    /// numbers `n` in the answer are 1-based.
    pub async fn get_task_log(
        &self,
        upid: &Upid,
        start: u64,
        limit: u64,
    ) -> Result<Vec<TaskLogLine>, Error> {
        Ok(self.get_task_log_page(upid, start, limit).await?.lines)
    }

    /// Like [`Client::get_task_log`], keeping PVE's `total`.
    pub async fn get_task_log_page(
        &self,
        upid: &Upid,
        start: u64,
        limit: u64,
    ) -> Result<TaskLogPage, Error> {
        let (path, reply) = self.task_log_reply(upid, start, limit).await?;
        let lines = envelope::decode("GET", &path, &reply)?;
        Ok(TaskLogPage {
            lines,
            total: reply.total(),
        })
    }

    /// `GET /nodes/{upid.node}/tasks/{upid}/log?start=&limit=` decoded straight into `T` (the
    /// `data` array of `{n, t}`): for a caller that keeps only some lines of a long log rather
    /// than every line as a [`TaskLogLine`]. A long log is decoded off the runtime's workers ([`envelope::decode_large`]).
    pub async fn get_task_log_as<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        upid: &Upid,
        start: u64,
        limit: u64,
    ) -> Result<T, Error> {
        let (path, reply) = self.task_log_reply(upid, start, limit).await?;
        envelope::decode_large("GET", path, reply).await
    }

    /// `GET .../tasks/{upid}/log?start=&limit=`: its path and the reply, undecoded.
    async fn task_log_reply(
        &self,
        upid: &Upid,
        start: u64,
        limit: u64,
    ) -> Result<(String, envelope::Reply), Error> {
        let path = task_path(upid, "log");
        let query = [("start", start.to_string()), ("limit", limit.to_string())];
        let reply = self.execute(Method::GET, &path, &query).await?;
        Ok((path, reply))
    }

    /// The last `count` lines of a task's log (two requests at most).
    pub async fn get_task_log_tail(&self, upid: &Upid, count: u64) -> Result<Vec<String>, Error> {
        let first = self.get_task_log_page(upid, 0, count.max(1)).await?;
        let lines = match first.total {
            Some(total) if total > count => self.get_task_log(upid, total - count, count).await?,
            _ => first.lines,
        };
        Ok(lines.into_iter().map(|l| l.t).collect())
    }
}

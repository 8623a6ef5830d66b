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
    /// than every line as a [`TaskLogLine`]. A long log is decoded off the runtime's workers
    /// ([`envelope::decode_large`]).
    pub async fn get_task_log_as<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        upid: &Upid,
        start: u64,
        limit: u64,
    ) -> Result<T, Error> {
        let (path, reply) = self.task_log_reply(upid, start, limit).await?;
        envelope::decode_large("GET", path, reply).await
    }

    /// `GET .../tasks/{upid}/log?download=1` (pve-manager 7.3-5 and later): the whole log as the
    /// file it is, gzipped on the wire, handed to `read` as it is inflated. For a long log that is a
    /// fraction of the work of the JSON `[{n, t}]` lines, for PVE (`gzip -c` of the file, not a
    /// hash and a JSON object per line) and for us. Inflating it and `read` run on Tokio's
    /// blocking pool when it is large. `Ok(None)` when this PVE does not know `download` (its
    /// 400 names the parameter): read the lines with [`Client::get_task_log_as`] instead.
    pub async fn read_task_log_file<R>(
        &self,
        upid: &Upid,
        mut read: R,
    ) -> Result<Option<R::Out>, Error>
    where
        R: envelope::FileRead + Send + 'static,
        R::Out: Send + 'static,
    {
        let path = task_path(upid, "log");
        let query = [("download", "1".to_owned())];
        let reply = match self.execute(Method::GET, &path, &query).await {
            Ok(r) => r,
            Err(Error::Api {
                status: 400,
                errors,
                ..
            }) if errors.contains_key("download") => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let (size, shown) = (reply.work_size(), path.clone());
        envelope::off_runtime("GET", &shown, size, move || {
            reply
                .read_file("GET", &path, &mut read)
                .map(|()| Some(read.finish()))
        })
        .await
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::pve::fake::FakePve;

    #[tokio::test]
    async fn a_pve_without_the_log_download_is_told_from_a_failure() {
        let fake = FakePve::new();
        let upid: Upid = "UPID:pve01:0002A4A1:16082044:6B10CD20:vzdump::root@pam:"
            .parse()
            .expect("a upid");
        let path = task_path(&upid, "log");
        // pve-manager before 7.3-5: the parameter is not in the schema
        fake.on_with("GET", &path, |q| {
            if q.params.iter().any(|(k, _)| k == "download") {
                (
                    400,
                    json!({"data": null, "message": "Parameter verification failed.\n",
                        "errors": {"download": "property is not defined in schema and the schema does not allow additional properties\n"}}),
                )
            } else {
                (200, json!({"data": [{"n": 1, "t": "x"}], "total": 1}))
            }
        });
        let c = fake.client();
        let none = c.read_task_log_file(&upid, Vec::new()).await;
        assert!(matches!(none, Ok(None)), "{none:?}");
        // any other refusal is an error, not a missing download
        fake.once("GET", &path, 403, json!("Permission check failed"));
        let e = c.read_task_log_file(&upid, Vec::new()).await;
        assert!(matches!(e, Err(Error::Forbidden { .. })), "{e:?}");
        // and JSON where the file was asked for is not read as the file
        fake.once("GET", &path, 200, json!([{"n": 1, "t": "x"}]));
        let e = c.read_task_log_file(&upid, Vec::new()).await;
        assert!(matches!(e, Err(Error::Decode { .. })), "{e:?}");
    }
}

//! Cluster-wide reads: `/cluster/tasks` (recent and running tasks of all nodes), `/cluster/log`
//! (task start/end entries, newest first), `/cluster/options` (datacenter.cfg) and `/pools`
//! (+ `{poolid}`; the scenario defines no pools). HA reads are in [`super::ha`].

use serde_json::{Value, json};

use crate::sim::api::Ctx;
use crate::sim::api::tasks::{list_row, owns};
use crate::sim::http::{ApiError, ApiResult, Reply};
use crate::sim::tasks::Task;

/// Tasks the caller may see: its own, or any on nodes where it has `Sys.Audit`.
fn visible<'a>(c: &'a Ctx) -> impl Iterator<Item = &'a Task> + 'a {
    c.st.tasks.tasks.iter().filter(move |t| {
        owns(c.authid(), t) || c.can(&format!("/nodes/{}", t.node), &["Sys.Audit"])
    })
}

pub fn tasks(c: &Ctx) -> ApiResult {
    c.validate()?;
    let mut rows: Vec<&Task> = visible(c).collect();
    rows.sort_by_key(|t| std::cmp::Reverse(t.starttime));
    let out: Vec<Value> = rows
        .into_iter()
        .take(100)
        .map(|t| {
            let mut r = list_row(t);
            r["saved"] = json!(if t.running() { "0" } else { "1" });
            r
        })
        .collect();
    Ok(Reply::data(Value::Array(out)))
}

pub fn log(c: &Ctx) -> ApiResult {
    c.validate()?;
    let max: usize = c.param("max").and_then(|m| m.parse().ok()).unwrap_or(50);
    // without Sys.Syslog on / a user sees only its own entries
    let all = c.can("/", &["Sys.Syslog"]);
    let mut entries: Vec<(i64, Value)> = Vec::new();
    for t in
        c.st.tasks
            .tasks
            .iter()
            .filter(|t| all || owns(c.authid(), t))
    {
        let entry = |time: i64, msg: String| {
            json!({ "time": time, "node": t.node, "user": t.user, "tag": "pvedaemon", "pid": t.pid,
                "pri": 6, "msg": msg })
        };
        entries.push((
            t.starttime,
            entry(t.starttime, format!("starting task {}", t.upid)),
        ));
        if let (Some(end), Some(status)) = (t.endtime, &t.exitstatus) {
            entries.push((end, entry(end, format!("end task {} {status}", t.upid))));
        }
    }
    entries.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
    let out: Vec<Value> = entries
        .into_iter()
        .take(max)
        .enumerate()
        .map(|(i, (_, mut e))| {
            e["n"] = json!(i + 1);
            e["uid"] = json!(format!("{:08X}", i + 1));
            e
        })
        .collect();
    Ok(Reply::data(Value::Array(out)))
}

pub fn options(c: &Ctx) -> ApiResult {
    c.require("/", &["Sys.Audit"], false)?;
    c.validate()?;
    Ok(Reply::data(
        json!({ "keyboard": "en-us", "mac_prefix": "BC:24:11", "console": "xtermjs" }),
    ))
}

pub fn pools(c: &Ctx) -> ApiResult {
    c.validate()?;
    Ok(Reply::data(json!([])))
}

pub fn pool(c: &Ctx) -> ApiResult {
    let poolid = c.param("poolid").unwrap_or("");
    c.require(&format!("/pool/{poolid}"), &["Pool.Audit"], false)?;
    c.validate()?;
    Err(ApiError::Server(format!("pool '{poolid}' does not exist")))
}

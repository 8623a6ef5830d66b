//! Task reads: `/nodes/{node}/tasks` (archive/active lists with PVE's filters),
//! `.../tasks/{upid}/status` (exitstatus only when stopped; `user` split into user and
//! `tokenid`) and `.../tasks/{upid}/log` (`[{n,t}]` + `total`). Visibility per item 19: a
//! token sees its own tasks; Sys.Audit on `/nodes/{node}` sees all.

use serde_json::{Value, json};

use crate::sim::api::Ctx;
use crate::sim::http::{ApiError, ApiResult, Download, Reply};
use crate::sim::tasks::{Task, upid_parses};

pub(crate) fn owns(authid: &str, t: &Task) -> bool {
    t.user == authid || t.user.split_once('!').is_some_and(|(u, _)| u == authid)
}

pub(crate) fn list_row(t: &Task) -> Value {
    let mut m = json!({ "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime,
        "type": t.ttype, "id": t.id, "user": t.user });
    if let Some(e) = &t.exitstatus {
        m["status"] = json!(e);
    }
    if let Some(e) = t.endtime {
        m["endtime"] = json!(e);
    }
    m
}

/// Appends `s` as a JSON string. Log lines seldom hold a character JSON escapes: those are
/// found in one pass over the bytes and copied whole; the others go through serde_json.
fn push_json_str(out: &mut String, s: &str) {
    let escapes = s.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if escapes {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// `ok`, `warning`, `error` or `unknown` for `statusfilter`.
fn status_class(t: &Task) -> &'static str {
    match t.exitstatus.as_deref() {
        None => "unknown",
        Some("OK") => "ok",
        Some(e) if e.starts_with("WARNINGS: ") => "warning",
        Some("unexpected status") => "unknown",
        Some(_) => "error",
    }
}

pub fn list(c: &Ctx) -> ApiResult {
    c.validate()?;
    let node = &c.args.node;
    let audit = c.can(&format!("/nodes/{node}"), &["Sys.Audit"]);
    let num = |k: &str, d: i64| c.param(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(d);
    let (start, limit) = (
        num("start", 0).max(0) as usize,
        num("limit", 50).max(0) as usize,
    );
    let source = c.param("source").unwrap_or("archive");
    let statuses: Vec<String> = c
        .param("statusfilter")
        .map(|s| {
            s.split([',', ';', ' '])
                .map(|x| x.trim().to_lowercase())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut tasks: Vec<&Task> =
        c.st.tasks
            .tasks
            .iter()
            .filter(|t| t.node == *node)
            .filter(|t| audit || owns(c.authid(), t))
            .filter(|t| match source {
                "active" => t.running(),
                "all" => true,
                _ => !t.running(),
            })
            .filter(|t| !c.flag("errors") || t.exitstatus.as_deref() != Some("OK"))
            .filter(|t| c.param("typefilter").is_none_or(|f| t.ttype == f))
            .filter(|t| c.param("userfilter").is_none_or(|f| t.user.contains(f)))
            .filter(|t| c.param("vmid").is_none_or(|v| t.id == v))
            .filter(|t| {
                c.param("since")
                    .is_none_or(|_| t.starttime >= num("since", 0))
            })
            .filter(|t| {
                c.param("until")
                    .is_none_or(|_| t.starttime <= num("until", 0))
            })
            .filter(|t| statuses.is_empty() || statuses.iter().any(|s| s == status_class(t)))
            .collect();
    tasks.sort_by(|a, b| b.starttime.cmp(&a.starttime).then(b.upid.cmp(&a.upid)));
    let total = tasks.len();
    let page: Vec<Value> = tasks
        .into_iter()
        .skip(start)
        .take(if limit == 0 { usize::MAX } else { limit })
        .map(list_row)
        .collect();
    Ok(Reply {
        data: Value::Array(page),
        total: Some(total),
        raw: None,
        download: None,
    })
}

/// The task named by the path, with PVE's 400s and the owner-or-Sys.Audit rule.
fn task<'a>(c: &'a Ctx) -> Result<&'a Task, ApiError> {
    c.validate()?;
    let (node, upid) = (&c.args.node, &c.args.upid);
    if !upid_parses(upid) {
        return Err(ApiError::param("upid", "unable to parse worker upid"));
    }
    let t =
        c.st.tasks
            .find(upid)
            .filter(|t| t.node == *node)
            .ok_or_else(|| ApiError::param("upid", "no such task"))?;
    if !owns(c.authid(), t) {
        c.require(&format!("/nodes/{node}"), &["Sys.Audit"], false)?;
    }
    Ok(t)
}

pub fn status(c: &Ctx) -> ApiResult {
    let t = task(c)?;
    let (user, tokenid) = match t.user.split_once('!') {
        Some((u, tok)) => (u.to_string(), Some(tok.to_string())),
        None => (t.user.clone(), None),
    };
    let mut m = json!({ "upid": t.upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime,
        "type": t.ttype, "id": t.id, "user": user, "status": if t.running() { "running" } else { "stopped" } });
    if let Some(tok) = tokenid {
        m["tokenid"] = json!(tok);
    }
    if let Some(e) = &t.exitstatus {
        m["exitstatus"] = json!(e);
    }
    Ok(Reply::data(m))
}

pub fn log(c: &Ctx) -> ApiResult {
    let t = task(c)?;
    let num = |k: &str, d: usize| {
        c.param(k)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(d)
    };
    if c.flag("download") {
        return download(c, t);
    }
    let (start, limit) = (num("start", 0), num("limit", 50));
    let limit = if limit == 0 { 50 } else { limit };
    // Written straight into one buffer sized up front, with room for the envelope
    // (`http::render_ok` wraps it in place): a backup job's log holds tens of thousands of
    // lines, and a `Value`, or even a string, per line cost more than the rest of the request.
    let lines = || t.log.iter().enumerate().skip(start).take(limit);
    let size: usize = lines().map(|(_, l)| l.len() + 24).sum();
    let mut raw = String::with_capacity(size + 64);
    let mut n = itoa::Buffer::new();
    raw.push('[');
    for (i, l) in lines() {
        if raw.len() > 1 {
            raw.push(',');
        }
        raw.push_str("{\"n\":");
        raw.push_str(n.format(i + 1));
        raw.push_str(",\"t\":");
        push_json_str(&mut raw, l);
        raw.push('}');
    }
    raw.push(']');
    Ok(Reply {
        data: Value::Null,
        total: Some(t.log.len()),
        raw: Some(raw),
        download: None,
    })
}

/// `data` as a gzip member (RFC 1952) of stored deflate blocks (RFC 1951, 3.2.4): what any
/// gzip reader inflates, for a copy and a CRC (a deflate encoder's stored mode still runs its
/// match finder: 78% of serving a log).
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 65_535;
    let blocks = data.len().div_ceil(BLOCK).max(1);
    let mut out = Vec::with_capacity(data.len() + blocks * 5 + 18);
    // magic, deflate, no flags, no mtime, no extra flags, OS unknown
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    // an empty member is one empty final block
    let mut chunks = data.chunks(BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    // ISIZE: the size modulo 2^32
    out.extend_from_slice(&((data.len() & 0xffff_ffff) as u32).to_le_bytes());
    out
}

/// `.../log?download=1` (pve-manager since 7.3-5): the log file as it is, `text/plain`, gzipped
/// when over 1 KiB (PVE pipes it through `gzip -c`), as an attachment named after the task.
/// The simulator's gzip stores without compressing: the format and headers are PVE's, and the
/// CPU a measurement spends is not the simulator's deflate.
fn download(c: &Ctx, t: &Task) -> ApiResult {
    if c.param("start").is_some() || c.param("limit").is_some() {
        return Err(ApiError::Server(
            "'download' cannot be used together with 'start' or 'limit' parameters".into(),
        ));
    }
    let file = t.log.text().as_bytes();
    let (body, encoding) = if file.len() > 1024 {
        (gzip_stored(file), Some("gzip"))
    } else {
        (file.to_vec(), None)
    };
    let started = crate::sim::api::qemu::migrate::stamp(t.starttime).replace(' ', "T");
    Ok(Reply {
        data: Value::Null,
        total: None,
        raw: None,
        download: Some(Download {
            body,
            content_type: "text/plain",
            encoding,
            filename: format!("task-{}-{}-{started}Z.log", t.node, t.ttype),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::push_json_str;

    #[test]
    fn log_lines_render_as_serde_json_renders_them() {
        for line in [
            "INFO:  12% (3.8 GiB of 32.0 GiB) in 30s, read: 128.0 MiB/s, write: 120.5 MiB/s",
            "",
            "INFO: creating vzdump archive '/mnt/pve/nfs/dump/vzdump-qemu-100.vma.zst'",
            "say \"hi\" to C:\\temp",
            "tab\tnewline\nbell\u{7} nul\u{0} del\u{7f}",
            "notes: {{guestname}} – Grüße ✓",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, line);
            assert_eq!(
                out,
                serde_json::to_string(line).expect("encodes"),
                "{line:?}"
            );
        }
    }

    #[test]
    fn stored_gzip_inflates_to_its_data() {
        use std::io::Read as _;
        for size in [0usize, 1, 1024, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let gz = super::gzip_stored(&data);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .expect("inflates");
            assert_eq!(back, data, "{size} bytes");
        }
    }
}

//! The PVE client against a scripted in-process HTTP server (plain HTTP: TLS is covered by
//! `pve_tls.rs`). Checks what goes on the wire (header, form body, query) and how each kind of
//! answer is mapped: envelope, errors, retries, failover, timeouts, `find_vm`, `wait_task`.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_pve::{Reply, SECRET, Server, client, fail, ok, options, serve};
use proxmox_manager::pve::{
    Client, Error, ResourceType, TaskProgress, Upid, WaitOptions, wait_task,
};
use tokio_util::sync::CancellationToken;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A port nothing listens on (bound, then released).
async fn dead_endpoint() -> Result<String, std::io::Error> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(format!("http://{addr}"))
}

#[tokio::test]
async fn get_sends_token_and_decodes_lenient_data() -> TestResult {
    let server = serve(|_, _| ok(serde_json::json!({"data": {"version": "9.1.1", "release": 9.1, "repoid": "abc", "new": 1}}))).await?;
    let v = client(&server)?.get_version().await?;
    assert_eq!(v.version, "9.1.1");
    assert_eq!(v.release.as_deref(), Some("9.1"));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/api2/json/version");
    assert_eq!(
        seen[0].auth,
        format!("PVEAPIToken=claude-code@pve!automation={SECRET}")
    );
    Ok(())
}

#[tokio::test]
async fn form_body_escapes_plus_and_semicolon_and_delete_uses_query() -> TestResult {
    let server = serve(|_, _| ok(serde_json::json!({"data": null}))).await?;
    let c = client(&server)?;
    let () = c
        .put(
            "/nodes/pve01/qemu/100/resize",
            &[("disk", "scsi0".into()), ("size", "+10G".into())],
        )
        .await?;
    let () = c
        .post("/nodes/pve01/qemu/100/config", &[("tags", "a;b".into())])
        .await?;
    let () = c
        .delete("/nodes/pve01/qemu/100", &[("purge", "1".into())])
        .await?;
    let seen = server.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].body, "disk=scsi0&size=%2B10G");
    assert_eq!(seen[0].content_type, "application/x-www-form-urlencoded");
    assert_eq!(seen[1].body, "tags=a%3Bb");
    assert_eq!(seen[2].method, "DELETE");
    assert_eq!(seen[2].query, "purge=1");
    assert_eq!(seen[2].body, "");
    Ok(())
}

#[tokio::test]
async fn error_statuses_are_mapped() -> TestResult {
    let server = serve(|seen, _| match seen.path.as_str() {
        "/api2/json/p400" => fail(400, Some("Parameter verification failed."), r#"{"data":null,"message":"Parameter verification failed.\n","errors":{"vmid":"VM 100 already exists\n"}}"#),
        "/api2/json/p500old" => fail(500, Some("VM is locked (backup)"), r#"{"data":null}"#),
        "/api2/json/p401" => fail(401, Some("Authentication failed!"), ""),
        "/api2/json/p403" => fail(403, Some("Permission check failed (/vms/100, VM.Audit)"), r#"{"data":null,"message":"Permission check failed (/vms/100, VM.Audit)\n"}"#),
        "/api2/json/nodes/pve03/status" => fail(595, Some("No route to host"), ""),
        _ => fail(501, Some("Method 'GET /x' not implemented"), ""),
    })
    .await?;
    let mut opts = options(vec![server.url.clone()])?;
    opts.max_retries = 0;
    let c = Client::new(opts)?;
    let e = c.post::<()>("/p400", &[]).await.err();
    assert!(
        matches!(&e, Some(Error::Api { status: 400, errors, .. }) if errors.get("vmid").map(String::as_str) == Some("VM 100 already exists")),
        "{e:?}"
    );
    let e = c.get::<()>("/p500old", &[]).await.err();
    assert!(
        matches!(&e, Some(Error::Api { status: 500, message, .. }) if message == "VM is locked (backup)"),
        "{e:?}"
    );
    let e = c.get::<()>("/p401", &[]).await.err();
    assert!(
        matches!(&e, Some(Error::Unauthorized { message, .. }) if message == "Authentication failed!"),
        "{e:?}"
    );
    let e = c.get::<()>("/p403", &[]).await.err();
    assert!(
        matches!(&e, Some(Error::Forbidden { missing: Some((p, v)), .. }) if p == "/vms/100" && v == "VM.Audit"),
        "{e:?}"
    );
    let e = c.get_node_status("pve03").await.err();
    let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        matches!(&e, Some(Error::NodeOffline { node, .. }) if node == "pve03"),
        "{e:?}"
    );
    assert!(
        text.contains(
            "node pve03 is offline or unreachable from the cluster (595 No route to host)"
        ),
        "{text}"
    );
    let e = c.get::<()>("/x", &[]).await.err();
    assert!(matches!(&e, Some(Error::Api { status: 501, .. })), "{e:?}");
    Ok(())
}

#[tokio::test]
async fn gets_retry_on_503_writes_and_500_do_not() -> TestResult {
    let server = serve(|seen, _| match seen.path.as_str() {
        "/api2/json/flaky" => fail(503, Some("Service Unavailable"), ""),
        "/api2/json/locked" => fail(500, Some("VM is locked (clone)"), ""),
        _ => ok(serde_json::json!({"data": 1})),
    })
    .await?;
    let mut opts = options(vec![server.url.clone()])?;
    opts.max_retries = 2;
    let c = Client::new(opts)?;
    let e = c.get::<u32>("/flaky", &[]).await.err();
    assert!(matches!(&e, Some(Error::Api { status: 503, .. })), "{e:?}");
    assert!(e.as_ref().is_some_and(Error::is_retryable));
    assert_eq!(server.seen().len(), 3, "1 try + 2 retries");
    let e = c.post::<u32>("/flaky", &[]).await.err();
    assert!(!e.as_ref().is_some_and(Error::is_retryable));
    assert_eq!(server.seen().len(), 4, "a POST is never retried");
    let e = c.get::<u32>("/locked", &[]).await.err();
    assert!(!e.as_ref().is_some_and(Error::is_retryable));
    assert_eq!(
        server.seen().len(),
        5,
        "500 is a semantic error, not retried"
    );
    Ok(())
}

#[tokio::test]
async fn get_recovers_after_transient_503() -> TestResult {
    let server = serve(|_, n| {
        if n < 2 {
            fail(503, None, "")
        } else {
            ok(serde_json::json!({"data": "101"}))
        }
    })
    .await?;
    assert_eq!(client(&server)?.get_next_id(None).await?, 101);
    assert_eq!(server.seen().len(), 3);
    Ok(())
}

#[tokio::test]
async fn connect_failure_fails_over_to_next_endpoint() -> TestResult {
    let server = serve(|_, _| ok(serde_json::json!({"data": null}))).await?;
    let dead = dead_endpoint().await?;
    let c = Client::new(options(vec![dead.clone(), server.url.clone()])?)?;
    let () = c.post("/nodes/pve01/qemu/100/status/start", &[]).await?;
    assert_eq!(
        server.seen().len(),
        1,
        "the never-sent POST went to the live endpoint once"
    );

    let mut opts = options(vec![dead.clone()])?;
    opts.max_retries = 0;
    let e = Client::new(opts)?.get_version().await.err();
    assert!(
        matches!(&e, Some(Error::Connect { endpoint, .. }) if *endpoint == dead),
        "{e:?}"
    );
    assert!(e.as_ref().is_some_and(Error::is_retryable));
    Ok(())
}

#[tokio::test]
async fn timeout_is_reported_and_only_gets_retry() -> TestResult {
    let server = serve(|_, _| Reply {
        delay: Some(Duration::from_secs(3)),
        ..ok(serde_json::json!({"data": null}))
    })
    .await?;
    let mut opts = options(vec![server.url.clone()])?;
    opts.timeout = Duration::from_millis(200);
    opts.max_retries = 1;
    let c = Client::new(opts)?;
    let e = c.post::<()>("/nodes/pve01/qemu/100/clone", &[]).await.err();
    assert!(
        matches!(&e, Some(Error::Timeout { method, .. }) if method == "POST"),
        "{e:?}"
    );
    assert!(!e.as_ref().is_some_and(Error::is_retryable));
    assert_eq!(server.seen().len(), 1);
    let e = c.get::<()>("/version", &[]).await.err();
    assert!(matches!(&e, Some(Error::Timeout { .. })), "{e:?}");
    assert_eq!(server.seen().len(), 3, "GET tried twice");
    Ok(())
}

#[tokio::test]
async fn find_vm_resolves_node_from_cluster_resources() -> TestResult {
    let server = serve(|seen, _| {
        assert_eq!(seen.query, "type=vm");
        ok(serde_json::json!({"data": [
            {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "pve02", "status": "running", "template": 0},
            {"id": "lxc/101", "type": "lxc", "vmid": "101", "node": "pve01"}
        ]}))
    })
    .await?;
    let c = client(&server)?;
    let vm = c.find_vm(100).await?;
    assert_eq!(vm.node.as_deref(), Some("pve02"));
    assert_eq!(
        c.get_cluster_resources(Some(ResourceType::Vm)).await?.len(),
        2
    );
    let e = c
        .find_vm(999)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.starts_with("vm 999 does not exist in the cluster"), "{e}");
    Ok(())
}

const UPID: &str = "UPID:pve02:0002A1B3:00C8D2F1:6745A3B2:qmclone:9000:claude-code@pve!automation:";

/// A task that runs for `running_polls` status polls, then stops with `exit`.
async fn task_server(
    running_polls: usize,
    exit: &'static str,
) -> Result<(Server, Arc<AtomicUsize>), std::io::Error> {
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let server = serve(move |seen, _| {
        if seen.path.ends_with("/status") {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < running_polls {
                ok(serde_json::json!({"data": {"upid": UPID, "status": "running", "node": "pve02", "pid": "172467"}}))
            } else {
                ok(serde_json::json!({"data": {"upid": UPID, "status": "stopped", "exitstatus": exit}}))
            }
        } else if seen.path.ends_with("/log") {
            let all: Vec<serde_json::Value> = (1..=25)
                .map(|n| serde_json::json!({"n": n, "t": format!("line {n}")}))
                .collect();
            let q: std::collections::HashMap<String, String> = form_urlencoded::parse(seen.query.as_bytes()).into_owned().collect();
            let start: usize = q.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
            let limit: usize = q.get("limit").and_then(|s| s.parse().ok()).unwrap_or(50);
            let page: Vec<_> = all.iter().skip(start).take(limit).cloned().collect();
            ok(serde_json::json!({"data": page, "total": all.len()}))
        } else {
            fail(501, Some("not implemented"), "")
        }
    })
    .await?;
    Ok((server, polls))
}

fn fast_wait() -> WaitOptions {
    WaitOptions {
        deadline: Duration::from_secs(10),
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(20),
        ..WaitOptions::default()
    }
}

#[tokio::test]
async fn wait_task_counts_warnings_as_success_and_reports_progress() -> TestResult {
    let (server, _) = task_server(2, "WARNINGS: 2").await?;
    let c = client(&server)?;
    let upid: Upid = UPID.parse()?;
    let progress: Arc<Mutex<Vec<TaskProgress>>> = Arc::default();
    let sink = progress.clone();
    let mut opts = fast_wait();
    opts.progress = Some(Arc::new(move |p| {
        if let Ok(mut v) = sink.lock() {
            v.push(p);
        }
    }));
    let out = wait_task(&c, &upid, opts).await?;
    assert_eq!(out.warnings, 2);
    assert_eq!(out.exitstatus, "WARNINGS: 2");
    let progress = progress.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(progress.len(), 3, "one callback per poll");
    assert_eq!(progress[2].latest_log_line.as_deref(), Some("line 25"));
    assert_eq!(progress[2].status, "stopped");
    let status_path = server
        .seen()
        .iter()
        .find(|s| s.path.ends_with("/status"))
        .map(|s| s.path.clone());
    assert_eq!(
        status_path.as_deref(),
        Some(
            "/api2/json/nodes/pve02/tasks/UPID%3Apve02%3A0002A1B3%3A00C8D2F1%3A6745A3B2%3Aqmclone%3A9000%3Aclaude-code%40pve%21automation%3A/status"
        )
    );
    Ok(())
}

#[tokio::test]
async fn wait_task_failure_carries_exitstatus_and_log_tail() -> TestResult {
    let (server, _) = task_server(1, "clone failed: no space left on device").await?;
    let upid: Upid = UPID.parse()?;
    let e = wait_task(&client(&server)?, &upid, fast_wait()).await.err();
    let Some(Error::TaskFailed {
        exitstatus,
        log_tail,
        ..
    }) = &e
    else {
        return Err(format!("expected TaskFailed, got {e:?}").into());
    };
    assert_eq!(exitstatus, "clone failed: no space left on device");
    assert_eq!(log_tail.len(), 10);
    assert_eq!(log_tail.first().map(String::as_str), Some("line 16"));
    assert_eq!(log_tail.last().map(String::as_str), Some("line 25"));
    let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        text.starts_with("task qmclone 9000 on node pve02 failed: clone failed"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn wait_task_deadline_and_cancellation() -> TestResult {
    let (server, polls) = task_server(usize::MAX, "OK").await?;
    let c = client(&server)?;
    let upid: Upid = UPID.parse()?;
    let mut opts = fast_wait();
    opts.deadline = Duration::from_millis(100);
    let e = wait_task(&c, &upid, opts).await.err();
    assert!(
        matches!(&e, Some(Error::TaskTimeout { upid: u }) if *u == upid),
        "{e:?}"
    );
    assert!(polls.load(Ordering::SeqCst) >= 2);

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let mut opts = fast_wait();
    opts.cancel = Some(cancel);
    opts.progress = Some(Arc::new(move |p: TaskProgress| {
        if p.polls >= 2 {
            trigger.cancel();
        }
    }));
    let e = wait_task(&c, &upid, opts).await.err();
    assert!(
        matches!(&e, Some(Error::Cancelled { upids_running }) if upids_running == &vec![upid.clone()]),
        "{e:?}"
    );
    Ok(())
}

/// An independent PVE look-alike sends a count where a boolean is documented (`online: 3`) and
/// a list where a string belongs: the lists still decode, the odd fields become warnings that
/// name the row and the field, and the strict callers get the rows too.
#[tokio::test]
async fn odd_optional_values_in_lists_are_warnings_not_failures() {
    let server = serve(|seen, _| match seen.path.as_str() {
        "/api2/json/cluster/status" => ok(serde_json::json!({"data": [
            {"type": "cluster", "id": "cluster", "name": "lab", "quorate": 1, "nodes": 2},
            {"type": "node", "id": "node/pve01", "name": "pve01", "online": 1, "ip": "10.0.0.1"},
            {"type": "node", "id": "node/pve02", "name": "pve02", "online": 3, "level": ["x"]},
        ]})),
        "/api2/json/cluster/resources" => ok(serde_json::json!({"data": [
            {"id": "node/pve01", "type": "node", "node": "pve01", "status": "online", "maxmem": "lots"},
            {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "pve01", "template": "maybe"},
        ]})),
        _ => fail(404, None, "no"),
    })
    .await
    .expect("fake");
    let c = client(&server).expect("client");
    let (status, warnings) = c.get_cluster_status_reporting().await.expect("decodes");
    assert_eq!(status.len(), 3);
    assert_eq!(status[2].name, "pve02");
    assert_eq!(status[2].online, None);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("node/pve02") && w.contains("`online`") && w.contains("ignored")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("`level`")),
        "{warnings:?}"
    );
    let (rows, warnings) = c
        .get_cluster_resources_reporting(None)
        .await
        .expect("decodes");
    assert_eq!(rows.len(), 2);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("qemu/100") && w.contains("`template`")),
        "{warnings:?}"
    );
    assert_eq!(
        c.get_cluster_status()
            .await
            .expect("strict callers too")
            .len(),
        3
    );
}

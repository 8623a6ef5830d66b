//! The PVE client's QEMU write operations against a scripted in-process HTTP server: the exact
//! method, path, query and form body each one puts on the wire (`+` as `%2B`, `;` as `%3B`,
//! DELETE parameters only in the query, `sshkeys` encoded twice), how UPID and `null` answers
//! decode, and the error classifiers on PVE's own texts, early and inside a task.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_pve::{Server, fail, ok, options, serve};
use proxmox_manager::pve::{
    Client, CloneQemu, DeleteQemu, Error, ShutdownQemu, StartQemu, StopQemu, Upid, WaitOptions,
    encode_sshkeys, wait_task,
};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Without retries: every call puts exactly one request on the wire.
fn client(server: &Server) -> Result<Client, Error> {
    let mut opts = options(vec![server.url.clone()])?;
    opts.max_retries = 0;
    Client::new(opts)
}

const FORM: &str = "application/x-www-form-urlencoded";

fn upid(kind: &str) -> String {
    format!("UPID:pve01:0002A1B3:00C8D2F1:6745A3B2:{kind}:100:claude-code@pve!automation:")
}

/// Answers every request with a UPID whose type is the last path segment (`qmdestroy` for
/// the VM itself).
async fn upid_server() -> Result<Server, std::io::Error> {
    serve(|seen, _| {
        let kind = seen.path.rsplit('/').next().unwrap_or("x");
        let kind = if kind == "100" { "qmdestroy" } else { kind };
        ok(json!({ "data": upid(kind) }))
    })
    .await
}

/// Answers every request with `{"data": null}`, as older PVE releases do for some writes.
async fn null_server() -> Result<Server, std::io::Error> {
    serve(|_, _| ok(json!({ "data": null }))).await
}

fn is_invalid_input(e: &Option<Error>) -> bool {
    matches!(e, Some(Error::InvalidInput { .. }))
}

#[tokio::test]
async fn clone_posts_only_set_fields_and_returns_the_upid() -> TestResult {
    let server = upid_server().await?;
    let c = client(&server)?;
    let p = CloneQemu {
        newid: 105,
        name: Some("web01".into()),
        full: Some(true),
        storage: Some("local-lvm".into()),
        pool: Some("lab".into()),
        description: Some("a+b; c".into()),
        ..CloneQemu::default()
    };
    let u = c.clone_qemu("pve01", 100, &p).await?;
    assert_eq!((u.task_type(), u.node()), ("clone", "pve01"));
    let s = server.last()?;
    assert_eq!(s.content_type, FORM);
    assert_eq!(
        s.wire(),
        "POST /nodes/pve01/qemu/100/clone \
         newid=105&name=web01&description=a%2Bb%3B+c&full=1&storage=local-lvm&pool=lab"
    );

    let e = c
        .clone_qemu("pve01", 100, &CloneQemu::default())
        .await
        .err();
    assert!(is_invalid_input(&e), "{e:?}");
    let text = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.starts_with("cannot clone vm 100: new vmid 0"),
        "{text}"
    );
    assert_eq!(server.seen().len(), 1, "an invalid newid is not sent");
    Ok(())
}

#[tokio::test]
async fn config_update_encodes_values_once_and_sshkeys_twice() -> TestResult {
    let server = upid_server().await?;
    let c = client(&server)?;
    let keys = "ssh-ed25519 AAAAC3+x/y= me@host\nssh-rsa AAAAB3 you@host";
    let encoded = encode_sshkeys(keys);
    assert_eq!(
        encoded,
        "ssh-ed25519%20AAAAC3%2Bx%2Fy%3D%20me%40host%0Assh-rsa%20AAAAB3%20you%40host"
    );
    let params: Vec<(String, String)> = [
        ("tags", "prod;web"),
        ("sshkeys", encoded.as_str()),
        ("delete", "net1"),
        ("delete", "ide2,unused0"),
        ("cores", "4"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let u = c
        .update_qemu_config("pve01", 100, &params, Some("0123abcd"))
        .await?;
    assert_eq!(u.as_ref().map(Upid::task_type), Some("config"));
    let s = server.last()?;
    assert_eq!(s.content_type, FORM);
    assert_eq!(
        s.wire(),
        "POST /nodes/pve01/qemu/100/config tags=prod%3Bweb\
         &sshkeys=ssh-ed25519%2520AAAAC3%252Bx%252Fy%253D%2520me%2540host%250Assh-rsa%2520AAAAB3%2520you%2540host\
         &cores=4&delete=net1%2Cide2%2Cunused0&digest=0123abcd"
    );
    // PVE form-decodes the body first (giving the caller's URL-encoded keys back), then
    // URL-decodes `sshkeys` itself (giving the original text).
    let sshkeys = form_urlencoded::parse(s.body.as_bytes())
        .find(|(k, _)| k == "sshkeys")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert_eq!(sshkeys, encode_sshkeys(keys));
    assert_eq!(
        percent_encoding::percent_decode_str(&sshkeys).decode_utf8()?,
        keys
    );
    Ok(())
}

#[tokio::test]
async fn config_update_null_answer_and_sync_put() -> TestResult {
    let server = null_server().await?;
    let c = client(&server)?;
    let params = vec![("memory".to_owned(), "4096".to_owned())];
    let u = c.update_qemu_config("pve01", 100, &params, None).await?;
    assert!(u.is_none());
    c.set_qemu_config_sync("pve01", 100, &params, Some("d1"))
        .await?;
    let s = server.last()?;
    assert_eq!(s.content_type, FORM);
    assert_eq!(
        server.wires(),
        [
            "POST /nodes/pve01/qemu/100/config memory=4096",
            "PUT /nodes/pve01/qemu/100/config memory=4096&digest=d1",
        ]
    );
    let e = c.set_qemu_config_sync("pve01", 100, &[], None).await.err();
    assert!(is_invalid_input(&e), "{e:?}");
    assert_eq!(server.seen().len(), 2, "an empty change is not sent");
    Ok(())
}

#[tokio::test]
async fn power_actions_use_pve_wire_names() -> TestResult {
    let server = upid_server().await?;
    let c = client(&server)?;
    let stop = StopQemu {
        timeout: Some(30),
        overrule_shutdown: Some(true),
    };
    let shutdown = ShutdownQemu {
        timeout: Some(60),
        force_stop: Some(true),
        keep_active: Some(false),
    };
    let upids = [
        c.start_qemu("pve01", 100, &StartQemu { timeout: Some(90) })
            .await?,
        c.stop_qemu("pve01", 100, &stop).await?,
        c.shutdown_qemu("pve01", 100, &shutdown).await?,
        c.reboot_qemu("pve01", 100, Some(120)).await?,
        c.start_qemu("pve01", 100, &StartQemu::default()).await?,
        c.reboot_qemu("pve01", 100, None).await?,
    ];
    let kinds: Vec<&str> = upids.iter().map(Upid::task_type).collect();
    assert_eq!(
        kinds,
        ["start", "stop", "shutdown", "reboot", "start", "reboot"]
    );
    assert_eq!(
        server.wires(),
        [
            "POST /nodes/pve01/qemu/100/status/start timeout=90",
            "POST /nodes/pve01/qemu/100/status/stop timeout=30&overrule-shutdown=1",
            "POST /nodes/pve01/qemu/100/status/shutdown timeout=60&forceStop=1&keepActive=0",
            "POST /nodes/pve01/qemu/100/status/reboot timeout=120",
            "POST /nodes/pve01/qemu/100/status/start",
            "POST /nodes/pve01/qemu/100/status/reboot",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn delete_sends_parameters_only_in_the_query() -> TestResult {
    let server = upid_server().await?;
    let c = client(&server)?;
    let p = DeleteQemu {
        purge: Some(true),
        destroy_unreferenced_disks: Some(true),
        skiplock: None,
    };
    let u = c.delete_qemu("pve01", 100, &p).await?;
    assert_eq!(u.task_type(), "qmdestroy");
    assert_eq!(
        server.last()?.content_type,
        "",
        "no body, so no content type"
    );
    c.delete_qemu("pve01", 100, &DeleteQemu::default()).await?;
    assert_eq!(
        server.wires(),
        [
            "DELETE /nodes/pve01/qemu/100?purge=1&destroy-unreferenced-disks=1",
            "DELETE /nodes/pve01/qemu/100",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn resize_keeps_the_plus_and_accepts_upid_or_null() -> TestResult {
    let server = upid_server().await?;
    let c = client(&server)?;
    let u = c
        .resize_qemu_disk("pve01", 100, "scsi0", "+10G", Some("abc"))
        .await?;
    assert_eq!(u.as_ref().map(Upid::task_type), Some("resize"));
    assert_eq!(server.last()?.content_type, FORM);
    let absolute = c
        .resize_qemu_disk("pve01", 100, "virtio1", "40G", None)
        .await?;
    assert!(absolute.is_some());
    for (disk, size) in [("scsi0", "-5G"), ("scsi0", "10 GB"), ("", "+1G")] {
        let e = c
            .resize_qemu_disk("pve01", 100, disk, size, None)
            .await
            .err();
        assert!(is_invalid_input(&e), "{size}: {e:?}");
    }
    assert_eq!(
        server.wires(),
        [
            "PUT /nodes/pve01/qemu/100/resize disk=scsi0&size=%2B10G&digest=abc",
            "PUT /nodes/pve01/qemu/100/resize disk=virtio1&size=40G",
        ],
        "invalid sizes are not sent"
    );
    let old = null_server().await?;
    let r = client(&old)?
        .resize_qemu_disk("pve01", 100, "scsi0", "+1G", None)
        .await?;
    assert!(r.is_none(), "older pve answers null");
    Ok(())
}

#[tokio::test]
async fn template_conversion_upid_or_null() -> TestResult {
    let server = upid_server().await?;
    let u = client(&server)?
        .convert_qemu_to_template("pve01", 100)
        .await?;
    assert_eq!(u.as_ref().map(Upid::task_type), Some("template"));
    assert_eq!(server.wires(), ["POST /nodes/pve01/qemu/100/template"]);
    let old = null_server().await?;
    let u = client(&old)?.convert_qemu_to_template("pve01", 100).await?;
    assert!(u.is_none());
    Ok(())
}

#[tokio::test]
async fn a_write_answered_with_something_else_than_a_upid_is_a_decode_error() -> TestResult {
    let server = serve(|_, _| ok(json!({ "data": "OK" }))).await?;
    let c = client(&server)?;
    let e = c
        .start_qemu("pve01", 100, &StartQemu::default())
        .await
        .err();
    assert!(matches!(&e, Some(Error::Decode { .. })), "{e:?}");
    Ok(())
}

#[tokio::test]
async fn pending_and_agent_interfaces_decode_leniently() -> TestResult {
    let server = serve(|seen, _| match seen.path.as_str() {
        p if p.ends_with("/pending") => ok(json!({"data": [
            {"key": "cores", "value": 2, "pending": 4},
            {"key": "name", "value": "web01"},
            {"key": "net1", "value": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "delete": "1"}
        ]})),
        p if p.ends_with("/agent/network-get-interfaces") => ok(json!({"data": {"result": [
            {"name": "lo", "hardware-address": "00:00:00:00:00:00",
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
            {"name": "eth0", "hardware-address": "bc:24:11:aa:bb:cc",
             "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.0.5", "prefix": "24"},
                              {"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64}],
             "statistics": {"rx-bytes": "1024", "tx-bytes": 2048}}
        ]}})),
        _ => fail(501, Some("Method not implemented"), json!({"data": null})),
    })
    .await?;
    let c = client(&server)?;
    let pending = c.get_qemu_pending("pve01", 100).await?;
    assert_eq!(pending.len(), 3);
    assert_eq!(pending[0].pending.as_deref(), Some("4"));
    assert!(!pending[1].is_pending() && pending[2].is_pending_delete());
    let ifaces = c.get_qemu_agent_interfaces("pve01", 100).await?;
    assert_eq!(ifaces.len(), 2);
    assert!(ifaces[0].is_loopback());
    let eth0 = &ifaces[1];
    assert_eq!(eth0.hardware_address.as_deref(), Some("bc:24:11:aa:bb:cc"));
    assert_eq!(eth0.ip_addresses[0].prefix, Some(24));
    assert!(eth0.ip_addresses[0].is_ipv4() && eth0.ip_addresses[1].is_ipv6());
    let rx = eth0.statistics.as_ref().and_then(|s| s.rx_bytes);
    assert_eq!(rx, Some(1024));
    assert_eq!(
        server.wires(),
        [
            "GET /nodes/pve01/qemu/100/pending",
            "GET /nodes/pve01/qemu/100/agent/network-get-interfaces",
        ]
    );
    Ok(())
}

#[tokio::test]
async fn early_errors_are_classified_from_message_reason_or_parameter_errors() -> TestResult {
    let server = serve(|seen, _| match seen.path.trim_start_matches("/api2/json") {
        // PVE 8.3+: the text in the body's message.
        "/nodes/pve01/qemu/100/clone" => fail(
            500,
            Some("unable to create VM 105: config file already exists"),
            json!({"data": null, "message": "unable to create VM 105: config file already exists\n"}),
        ),
        // Older PVE: the text only in the reason phrase.
        "/nodes/pve01/qemu/100/status/start" => {
            fail(500, Some("VM is locked (backup)"), json!({"data": null}))
        }
        "/nodes/pve01/qemu/100/agent/network-get-interfaces" => fail(
            500,
            Some("QEMU guest agent is not running"),
            json!({"data": null, "message": "QEMU guest agent is not running\n"}),
        ),
        "/cluster/nextid" => fail(
            400,
            Some("Parameter verification failed."),
            json!({"data": null, "message": "Parameter verification failed.\n",
                   "errors": {"vmid": "VM 105 already exists\n"}}),
        ),
        _ => fail(
            500,
            Some("VM 105 already exists on node 'pve02'"),
            json!({"data": null, "message": "VM 105 already exists on node 'pve02'\n"}),
        ),
    })
    .await?;
    let c = client(&server)?;
    let clone = CloneQemu {
        newid: 105,
        ..CloneQemu::default()
    };
    let e = c.clone_qemu("pve01", 100, &clone).await.err();
    assert!(e.as_ref().is_some_and(Error::is_vmid_taken), "{e:?}");
    assert_eq!(e.as_ref().and_then(Error::lock_contention), None);

    let e = c
        .start_qemu("pve01", 100, &StartQemu::default())
        .await
        .err();
    let lock = e.as_ref().and_then(Error::lock_contention);
    assert_eq!(lock.as_deref(), Some("backup"), "{e:?}");
    assert!(!e.as_ref().is_some_and(Error::is_vmid_taken));

    let e = c.get_next_id(Some(105)).await.err();
    assert!(e.as_ref().is_some_and(Error::is_vmid_taken), "{e:?}");
    let e = c.clone_qemu("pve02", 100, &clone).await.err();
    assert!(e.as_ref().is_some_and(Error::is_vmid_taken), "{e:?}");

    let e = c.get_qemu_agent_interfaces("pve01", 100).await.err();
    assert!(matches!(&e, Some(Error::Api { status: 500, .. })), "{e:?}");
    assert!(e.as_ref().is_some_and(Error::is_agent_not_running));
    assert!(!e.as_ref().is_some_and(Error::is_vmid_taken));
    Ok(())
}

#[tokio::test]
async fn in_task_clone_failures_are_classified_after_wait_task() -> TestResult {
    const FILE_LOCK: &str = "can't lock file '/var/lock/qemu-server/lock-105.conf' - got timeout";
    const TAKEN: &str = "unable to create VM 105: config file already exists";
    let exits: Arc<Mutex<Vec<&'static str>>> = Arc::new(Mutex::new(vec![TAKEN, FILE_LOCK]));
    let polls = Arc::new(AtomicUsize::new(0));
    let (exits_s, polls_s) = (exits.clone(), polls.clone());
    let server = serve(move |seen, _| {
        if seen.path.ends_with("/clone") {
            return ok(json!({"data": upid("qmclone")}));
        }
        let exit = exits_s.lock().ok().and_then(|v| v.last().copied());
        let exit = exit.unwrap_or("OK");
        if seen.path.ends_with("/status") {
            polls_s.fetch_add(1, Ordering::SeqCst);
            ok(json!({"data": {"upid": upid("qmclone"), "status": "stopped", "exitstatus": exit}}))
        } else {
            ok(
                json!({"data": [{"n": 1, "t": "create full clone of drive scsi0"},
                               {"n": 2, "t": format!("TASK ERROR: {exit}")}], "total": 2}),
            )
        }
    })
    .await?;
    let c = client(&server)?;
    let clone = CloneQemu {
        newid: 105,
        ..CloneQemu::default()
    };
    let opts = || WaitOptions {
        deadline: Duration::from_secs(10),
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(20),
        ..WaitOptions::default()
    };
    let task = c.clone_qemu("pve01", 100, &clone).await?;
    let e = wait_task(&c, &task, opts()).await.err();
    assert!(matches!(&e, Some(Error::TaskFailed { .. })), "{e:?}");
    let lock = e.as_ref().and_then(Error::lock_contention);
    assert_eq!(lock.as_deref(), Some("lock-105.conf (file lock)"));
    assert!(!e.as_ref().is_some_and(Error::is_vmid_taken));

    if let Ok(mut v) = exits.lock() {
        v.pop();
    }
    let task = c.clone_qemu("pve01", 100, &clone).await?;
    let e = wait_task(&c, &task, opts()).await.err();
    assert!(e.as_ref().is_some_and(Error::is_vmid_taken), "{e:?}");
    assert_eq!(e.as_ref().and_then(Error::lock_contention), None);
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    Ok(())
}

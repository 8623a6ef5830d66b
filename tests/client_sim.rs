//! The PVE client against the simulator over real HTTPS: typed reads, PVE's errors as the
//! client reports them, privilege separation, offline nodes, task waiting, TLS modes and
//! endpoint failover.

use crate::common;

use std::time::Duration;

use proxmox_manager::pve::{
    ApiToken, Client, ClientOptions, Error, ResourceKind, ResourceType, TaskFilter, TlsMode, Upid,
    WaitOptions, parse_fingerprint, wait_task,
};
use secrecy::SecretString;

use common::{AUDITOR, MANAGER};

#[tokio::test]
async fn typed_reads_decode_the_simulated_cluster() {
    let sim = common::start_sim().await;
    let c = common::client_for(&sim, MANAGER);

    let v = c.get_version().await.expect("version");
    assert!(v.version.starts_with("9."), "{v:?}");

    let status = c.get_cluster_status().await.expect("cluster status");
    assert_eq!(status.iter().filter(|i| i.item_type == "node").count(), 3);
    assert!(
        status
            .iter()
            .any(|i| i.item_type == "cluster" && i.quorate == Some(true))
    );

    let vms = c
        .get_cluster_resources(Some(ResourceType::Vm))
        .await
        .expect("vm rows");
    assert!(
        vms.len() >= 15
            && vms
                .iter()
                .all(|r| matches!(r.kind, ResourceKind::Qemu | ResourceKind::Lxc))
    );
    assert!(
        vms.iter().any(|r| matches!(r.kind, ResourceKind::Lxc)),
        "containers decode as lxc"
    );
    assert!(
        vms.iter().any(|r| r.lock.as_deref() == Some("backup")),
        "the locked guest shows its lock"
    );
    assert!(vms.iter().any(|r| r.is_template()));
    assert!(
        vms.iter().any(|r| r.tag_list().len() >= 2),
        "tags decode from the ;-joined string"
    );
    let storage = c
        .get_cluster_resources(Some(ResourceType::Storage))
        .await
        .expect("storage rows");
    assert!(
        storage
            .iter()
            .all(|r| matches!(r.kind, ResourceKind::Storage))
    );

    let next = c
        .get_next_id(None)
        .await
        .expect("nextid is a string on the wire, a number here");
    assert!(next >= 100 && vms.iter().all(|r| r.vmid != Some(next)));
    match c.get_next_id(Some(1000)).await {
        Err(Error::Api {
            status: 400,
            errors,
            ..
        }) => {
            assert!(
                errors
                    .get("vmid")
                    .is_some_and(|m| m.contains("1000 already exists")),
                "{errors:?}"
            )
        }
        other => panic!("taken vmid must be a 400 with a vmid error, got {other:?}"),
    }

    let row = c.find_vm(1005).await.expect("find 1005");
    let node = row.node.clone().expect("node");
    let cfg = c.get_qemu_config(&node, 1005).await.expect("config");
    assert!(cfg.name().is_some() && !cfg.disks().is_empty());
    let st = c.get_qemu_status(&node, 1005).await.expect("status");
    assert!(st.status == "running" || st.status == "stopped");
    assert!(matches!(
        c.find_vm(4242).await,
        Err(Error::VmNotFound { vmid: 4242 })
    ));

    let other = if node == "pve01" { "pve02" } else { "pve01" };
    let err = c
        .get_qemu_config(other, 1005)
        .await
        .expect_err("wrong node");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let ns = c.get_node_status("pve01").await.expect("node status");
    assert!(ns.memory.as_ref().and_then(|m| m.total).unwrap_or(0) > 0);
    let content = c
        .list_storage_content("pve01", "local", Some("iso"))
        .await
        .expect("content");
    assert!(!content.is_empty() && content.iter().all(|i| i.content.as_deref() == Some("iso")));
    let perms = c.get_permissions(None).await.expect("permissions");
    assert!(
        perms
            .get("/")
            .is_some_and(|p| p.contains_key("VM.Allocate"))
    );
}

#[tokio::test]
async fn privilege_separated_token_gets_the_intersection() {
    let sim = common::start_sim().await;
    let c = common::client_for(&sim, AUDITOR);
    // The token holds PVEAuditor on /vms only: guests are visible, nodes are not.
    let rows = c
        .get_cluster_resources(None)
        .await
        .expect("resources filter silently");
    assert!(rows.iter().any(|r| matches!(r.kind, ResourceKind::Qemu)));
    assert!(
        !rows
            .iter()
            .any(|r| matches!(r.kind, ResourceKind::Node) && r.maxmem.is_some())
    );
    match c.get_node_status("pve01").await {
        Err(
            e @ Error::Forbidden {
                missing: Some(_), ..
            },
        ) => {
            let text = e.to_string();
            assert!(
                text.contains("Sys.Audit on /nodes/pve01")
                    && text.contains(
                        "pveum role modify ClaudeCodeManager --append 1 --privs Sys.Audit"
                    ),
                "the privilege, its path and what to grant: {text}"
            )
        }
        other => panic!("expected 403 naming the missing privilege, got {other:?}"),
    }
}

#[tokio::test]
async fn offline_node_and_bad_token_are_reported_as_such() {
    let sim = common::start_sim().await;
    let c = common::client_for(&sim, MANAGER);
    sim.set_node_online("pve03", false).expect("fault");
    match c.get_node_status("pve03").await {
        Err(e @ Error::NodeOffline { .. }) => {
            assert!(e.to_string().contains("pve03"), "{e}");
            assert!(
                !e.is_retryable(),
                "an offline node is not a transient failure"
            );
        }
        other => panic!("expected NodeOffline, got {other:?}"),
    }
    let token = ApiToken::new(
        MANAGER,
        SecretString::from("00000000-0000-0000-0000-000000000000"),
    )
    .expect("id");
    let mut opts = ClientOptions::new(vec![sim.url()], token);
    opts.tls = TlsMode::Fingerprint(parse_fingerprint(&sim.fingerprint()).expect("fp"));
    let bad = Client::new(opts).expect("client");
    let err = bad.get_version().await.expect_err("bad secret");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("00000000-0000"),
        "no secret in errors: {err}"
    );
}

async fn seeded(c: &Client, node: &str, ttype: &str) -> Upid {
    let tasks = c
        .list_tasks(
            node,
            TaskFilter {
                typefilter: Some(ttype.into()),
                ..Default::default()
            },
        )
        .await
        .expect("task list");
    let t = tasks
        .first()
        .unwrap_or_else(|| panic!("no seeded {ttype} task on {node}"));
    t.upid.parse().expect("valid upid")
}

#[tokio::test]
async fn waiting_for_tasks_distinguishes_ok_warnings_and_errors() {
    let sim = common::start_sim().await;
    let c = common::client_for(&sim, "root@pam!admin");
    let fast = || WaitOptions {
        poll_initial: Duration::from_millis(10),
        poll_max: Duration::from_millis(50),
        ..Default::default()
    };

    let ok = wait_task(&c, &seeded(&c, "pve01", "vzdump").await, fast())
        .await
        .expect("vzdump OK");
    assert_eq!((ok.exitstatus.as_str(), ok.warnings), ("OK", 0));
    let warn = wait_task(&c, &seeded(&c, "pve01", "qmstart").await, fast())
        .await
        .expect("WARNINGS is success");
    assert_eq!(warn.warnings, 1);
    match wait_task(&c, &seeded(&c, "pve02", "qmclone").await, fast()).await {
        Err(Error::TaskFailed {
            exitstatus,
            log_tail,
            ..
        }) => {
            assert!(exitstatus.contains("clone failed"), "{exitstatus}");
            assert!(
                log_tail.iter().any(|l| l.contains("TASK ERROR")),
                "{log_tail:?}"
            );
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_modes_against_the_simulator() {
    let sim = common::start_sim().await;
    let token = || {
        ApiToken::new(
            MANAGER,
            SecretString::from(sim.token(MANAGER).expect("t").secret),
        )
        .expect("id")
    };

    let dir = tempfile::tempdir().expect("tmp");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem()).expect("write ca");
    let mut opts = ClientOptions::new(vec![sim.url()], token());
    opts.tls = TlsMode::CaFile(ca);
    Client::new(opts)
        .expect("client")
        .get_version()
        .await
        .expect("CA file trusts the simulator");

    let mut opts = ClientOptions::new(vec![sim.url()], token());
    opts.tls = TlsMode::Fingerprint([0xAB; 32]);
    let err = Client::new(opts)
        .expect("client")
        .get_version()
        .await
        .expect_err("wrong pin");
    let text = err.to_string();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(
        text.contains(&sim.fingerprint()),
        "names the presented fingerprint: {text}"
    );

    let opts = ClientOptions::new(vec![sim.url()], token());
    let err = Client::new(opts)
        .expect("client")
        .get_version()
        .await
        .expect_err("system roots do not trust it");
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
}

#[tokio::test]
async fn unreachable_endpoint_fails_over_to_the_next() {
    let sim = common::start_sim().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("https://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let t = sim.token(MANAGER).expect("t");
    let mk = |eps: Vec<String>| {
        let mut o = ClientOptions::new(
            eps,
            ApiToken::new(t.id.clone(), SecretString::from(t.secret.clone())).expect("id"),
        );
        o.tls = TlsMode::Fingerprint(parse_fingerprint(&sim.fingerprint()).expect("fp"));
        o.max_retries = 0;
        Client::new(o).expect("client")
    };
    let err = mk(vec![dead.clone()])
        .get_version()
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(err, Error::Connect { .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert!(err.to_string().contains(&dead), "names the endpoint: {err}");
    mk(vec![dead, sim.url()])
        .get_version()
        .await
        .expect("second endpoint answers");
}

//! The PVE client against the embedded simulator over real HTTPS: every typed read decodes,
//! TLS by CA and by pin, errors (401, 403, 400, 595) map to the right variants, `find_vm`,
//! `nextid`, permissions, and `wait_task` on the scenario's finished tasks.

use std::time::Duration;

use proxmox_manager::pve::{
    ApiToken, Client, ClientOptions, Error, ResourceType, TaskFilter, TlsMode, Upid, WaitOptions,
    parse_fingerprint, wait_task,
};
use proxmox_manager::sim::{self, Scenario, SimHandle, SimOptions};
use secrecy::SecretString;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLAUDE: &str = "claude-code@pve!automation";
const ROOT: &str = "root@pam!admin";
const AUDITOR: &str = "auditor@pve!ro";

async fn start() -> Result<SimHandle, Box<dyn std::error::Error>> {
    let opts = SimOptions {
        scenario: Scenario::embedded()?,
        listen: "127.0.0.1:0".parse()?,
        time_scale: 0.001,
    };
    Ok(sim::start(opts).await?)
}

fn client_as(
    h: &SimHandle,
    id: &str,
    secret: Option<&str>,
) -> Result<Client, Box<dyn std::error::Error>> {
    let t = h.token(id).ok_or("token missing from the scenario")?;
    let secret = secret.map_or(t.secret, str::to_owned);
    let token = ApiToken::new(t.id, SecretString::from(secret))?;
    let mut opts = ClientOptions::new(vec![h.url()], token);
    opts.tls = TlsMode::Fingerprint(parse_fingerprint(&h.fingerprint())?);
    opts.timeout = Duration::from_secs(10);
    Ok(Client::new(opts)?)
}

#[tokio::test]
async fn typed_reads_decode_against_the_simulator() -> TestResult {
    let h = start().await?;
    let c = client_as(&h, ROOT, None)?;
    assert!(!c.get_version().await?.version.is_empty());
    let status = c.get_cluster_status().await?;
    assert!(status.iter().any(|s| s.item_type == "node"));
    let nodes = c.list_nodes().await?;
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        let st = c.get_node_status(&n.node).await?;
        assert!(st.memory.and_then(|m| m.total).unwrap_or(0) > 0);
        assert!(!c.get_node_version(&n.node).await?.version.is_empty());
        for vm in c.list_qemu(&n.node).await? {
            let cfg = c.get_qemu_config(&n.node, vm.vmid).await?;
            assert!(cfg.cores() >= 1);
            let cur = c.get_qemu_status(&n.node, vm.vmid).await?;
            assert!(
                cur.status == "running" || cur.status == "stopped",
                "{}",
                cur.status
            );
        }
        for s in c.list_node_storage(&n.node).await? {
            let _ = c.list_storage_content(&n.node, &s.storage, None).await?;
        }
        let _ = c.list_tasks(&n.node, TaskFilter::default()).await?;
    }
    assert!(!c.list_storage_config().await?.is_empty());
    let all = c.get_cluster_resources(None).await?;
    assert!(all.iter().any(|r| r.vmid == Some(1000)));
    let vms = c.get_cluster_resources(Some(ResourceType::Vm)).await?;
    assert!(vms.iter().all(|r| r.vmid.is_some()));
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn find_vm_nextid_and_permissions() -> TestResult {
    let h = start().await?;
    let c = client_as(&h, CLAUDE, None)?;
    assert_eq!(c.find_vm(1004).await?.node.as_deref(), Some("pve02"));
    let e = c
        .find_vm(4242)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.starts_with("vm 4242 does not exist in the cluster"),
        "{e}"
    );
    let next = c.get_next_id(None).await?;
    assert!(next >= 100);
    let e = c.get_next_id(Some(1000)).await.err();
    assert!(
        matches!(&e, Some(Error::Api { status: 400, errors, .. }) if errors.contains_key("vmid")),
        "{e:?}"
    );
    let perms = c.get_permissions(None).await?;
    assert!(
        perms.get("/").is_some_and(|p| p.contains_key("VM.Audit")),
        "{perms:?}"
    );
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn errors_map_to_variants() -> TestResult {
    let h = start().await?;
    let bad = client_as(&h, CLAUDE, Some("00000000-0000-0000-0000-000000000000"))?;
    let e = bad.get_version().await.err();
    assert!(matches!(e, Some(Error::Unauthorized { .. })), "{e:?}");

    let auditor = client_as(&h, AUDITOR, None)?;
    let e = auditor.get_node_status("pve01").await.err();
    assert!(
        matches!(
            &e,
            Some(Error::Forbidden {
                missing: Some(_),
                ..
            })
        ),
        "{e:?}"
    );

    let root = client_as(&h, ROOT, None)?;
    h.set_node_online("pve03", false)?;
    let e = root.get_node_status("pve03").await.err();
    assert!(
        matches!(&e, Some(Error::NodeOffline { node, .. }) if node == "pve03"),
        "{e:?}"
    );
    assert!(!e.as_ref().is_some_and(Error::is_retryable));
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ca_file_mode_trusts_the_simulator() -> TestResult {
    let h = start().await?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("pve-root-ca.pem");
    std::fs::write(&ca, h.ca_pem())?;
    let t = h.token(ROOT).ok_or("token")?;
    let mut opts = ClientOptions::new(
        vec![h.url()],
        ApiToken::new(t.id, SecretString::from(t.secret))?,
    );
    opts.tls = TlsMode::CaFile(ca);
    assert!(!Client::new(opts)?.get_version().await?.version.is_empty());
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn wait_task_on_finished_scenario_tasks() -> TestResult {
    let h = start().await?;
    let c = client_as(&h, ROOT, None)?;
    let opts = || WaitOptions {
        deadline: Duration::from_secs(5),
        ..WaitOptions::default()
    };
    let mut seen_warning = false;
    let mut seen_failure = false;
    for node in ["pve01", "pve02"] {
        let filter = TaskFilter {
            source: Some("all".into()),
            ..TaskFilter::default()
        };
        for t in c.list_tasks(node, filter).await? {
            let upid: Upid = t.upid.parse()?;
            assert_eq!(upid.node(), node);
            match wait_task(&c, &upid, opts()).await {
                Ok(out) if out.warnings > 0 => seen_warning = true,
                Ok(_) => {}
                Err(Error::TaskFailed {
                    exitstatus,
                    log_tail,
                    ..
                }) => {
                    assert!(exitstatus.starts_with("clone failed"), "{exitstatus}");
                    assert!(!log_tail.is_empty());
                    seen_failure = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    assert!(
        seen_warning,
        "the qmstart with WARNINGS: 1 counts as success"
    );
    assert!(seen_failure, "the failed qmclone is reported as TaskFailed");
    h.shutdown().await;
    Ok(())
}

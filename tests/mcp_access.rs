//! `access_check` through MCP against the simulator, with its three tokens: the
//! least-privilege manager, the read-only auditor and the full admin.

use crate::common;

use serde_json::{Value, json};

use common::mcp::{call, connect};

async fn access_check(token_id: &str) -> Value {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let t = sim.token(token_id).expect("scenario token");
    let (c, _) = connect(&config, &format!("{}={}", t.id, t.secret), dir.path(), &[]).await;
    let (err, s, text) = call(&c, "access_check", json!({})).await;
    assert!(!err, "{text}");
    assert_eq!(s["token"], token_id, "{s}");
    assert!(
        s["pve_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("9.")),
        "{s}"
    );
    s
}

fn toolset<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["toolsets"]
        .as_array()
        .expect("toolsets")
        .iter()
        .find(|t| t["toolset"] == name)
        .unwrap_or_else(|| panic!("toolset {name} in {s}"))
}

fn tool<'a>(set: &'a Value, name: &str) -> &'a Value {
    set["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["tool"] == name)
        .unwrap_or_else(|| panic!("tool {name} in {set}"))
}

/// A tool PVE will not refuse and that loses nothing: of the toolset, counted, not listed.
fn quietly_ready(set: &Value, name: &str) -> bool {
    let of_set = proxmox_manager::server::Catalogue::full()
        .tools
        .iter()
        .any(|t| t.name == name);
    assert!(of_set, "{name} is a tool");
    set["ready_tools"].as_u64().is_some_and(|n| n > 0)
        && !set["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .any(|t| t["tool"] == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn manager_token_is_ready_everywhere_and_downloads_use_ssh() {
    let s = access_check(common::MANAGER).await;
    for set in s["toolsets"].as_array().expect("toolsets") {
        assert_eq!(set["status"], "ready", "{set}");
    }
    let fallback = s["ssh_fallback"].as_array().expect("ssh_fallback");
    assert_eq!(fallback.len(), 1, "{s}");
    let f = fallback[0].as_str().expect("text");
    assert!(
        f.contains("template_from_cloud_image")
            && f.contains("Datastore.AllocateTemplate")
            && f.contains("Sys.AccessNetwork"),
        "{f}"
    );
    let img = tool(toolset(&s, "template"), "template_from_cloud_image");
    assert_eq!(img["ready"], true);
    assert!(
        img["note"].as_str().is_some_and(|n| n.contains("SSH")),
        "{img}"
    );
    // the download privileges are what the template toolset's grant adds
    assert!(
        toolset(&s, "template")["grant"]
            .as_str()
            .is_some_and(|g| g.contains("Datastore.AllocateTemplate")),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auditor_token_reads_guests_but_cannot_write() {
    // auditor@pve!ro is privilege-separated with PVEAuditor on /vms only.
    let s = access_check(common::AUDITOR).await;
    let vm = toolset(&s, "vm");
    assert_eq!(vm["status"], "partial", "{vm}");
    assert!(quietly_ready(vm, "vm_list"), "{vm}");
    assert!(quietly_ready(vm, "vm_get"), "{vm}");
    let create = tool(vm, "vm_create");
    assert_eq!(create["ready"], false);
    let missing = create["missing"].as_array().expect("missing");
    for want in ["VM.Clone", "VM.Allocate", "VM.PowerMgmt"] {
        assert!(
            missing
                .iter()
                .any(|m| m["privilege"] == want && m["path"] == "/vms"),
            "{want} on /vms in {create}"
        );
    }
    assert!(
        missing
            .iter()
            .any(|m| m["privilege"] == "Datastore.AllocateSpace" && m["path"] == "/storage"),
        "{create}"
    );
    let grant = vm["grant"].as_str().expect("grant");
    assert!(
        grant.starts_with("pveum role modify ClaudeCodeManager --append 1 --privs \"")
            && grant.contains("VM.Clone")
            && grant.contains("VM.PowerMgmt"),
        "{grant}"
    );
    // the token has nothing on /nodes: node reads are refused, tasks it started still readable
    let cluster = toolset(&s, "cluster");
    assert_eq!(tool(cluster, "node_status")["ready"], false, "{cluster}");
    // readable with a note: only the tasks this token started
    assert_eq!(tool(cluster, "task_status")["ready"], true, "{cluster}");
    assert_eq!(toolset(&s, "runbook")["status"], "ready");
    assert!(
        s["message"]
            .as_str()
            .is_some_and(|m| m.contains("vm (partial)")),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_token_is_ready_without_ssh_fallback() {
    let s = access_check("root@pam!admin").await;
    for set in s["toolsets"].as_array().expect("toolsets") {
        assert_eq!(set["status"], "ready", "{set}");
        assert!(set.get("grant").is_none(), "{set}");
        for t in set["tools"].as_array().expect("tools") {
            assert!(
                t.get("missing").is_none(),
                "nothing missing, nothing listed: {t}"
            );
            assert_eq!(t["ready"], true, "{t}");
        }
    }
    assert_eq!(s["ssh_fallback"], json!([]), "{s}");
    let counted: u64 = s["toolsets"]
        .as_array()
        .expect("toolsets")
        .iter()
        .filter_map(|t| t["ready_tools"].as_u64())
        .sum();
    assert_eq!(
        counted,
        proxmox_manager::server::Catalogue::full().tools.len() as u64,
        "every tool counted once: {s}"
    );
}

//! End to end through the MCP protocol: the rmcp client spawns the real binary, which reads a
//! real config file, takes its token from the environment, and talks HTTPS (pinned
//! fingerprint) to a simulator started by this test.

use crate::common;

use serde_json::json;

use common::mcp::call;

async fn connect(config: &std::path::Path, token: &str, extra: &[&str]) -> common::mcp::Client {
    // The config's directory doubles as the audit log's state directory.
    let state = config.parent().expect("config dir").to_path_buf();
    common::mcp::connect(config, token, &state, extra).await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_inspects_the_cluster() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::write_config(dir.path(), &sim);
    let client = connect(&config, &common::token_env(&sim), &[]).await;

    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("proxmox-manager")
    );
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or("")
            .contains("confirm: true")
    );

    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(
        tools.len() >= 9,
        "tools: {:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );

    let (err, s, text) = call(&client, "cluster_status", json!({})).await;
    assert!(!err, "cluster_status failed: {text}");
    let nodes = s["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert_eq!(n["status"], "online");
        assert!(n["cpus"].as_u64().unwrap_or(0) > 0, "{n}");
        assert!(n["memory_total"].as_u64().unwrap_or(0) > 0, "{n}");
        assert!(n["memory_used"].as_u64().unwrap_or(0) > 0, "{n}");
    }
    assert!(!s["storage"].as_array().expect("storage").is_empty());
    assert!(
        s["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains("overcommitted")),
        "the scenario's overcommitted node is reported: {}",
        s["warnings"]
    );

    let (err, s, text) = call(&client, "vm_list", json!({"page_size": 4})).await;
    assert!(!err, "{text}");
    assert_eq!(s["vms"].as_array().map(Vec::len), Some(4));
    assert!(s["total"].as_u64().unwrap_or(0) >= 12);
    assert_eq!(s["next_page"], 2);
    assert!(
        s["vms"]
            .as_array()
            .expect("vms")
            .iter()
            .all(|v| v.get("template").is_none()),
        "a guest that is no template carries no template flag"
    );

    let (err, s, text) = call(&client, "vm_list", json!({"status": "bogus"})).await;
    assert!(err && text.contains("status"), "{text} {s}");

    let (err, s, _) = call(&client, "vm_list", json!({"node": "pve03"})).await;
    assert!(!err);
    let first = s["vms"][0].clone();
    assert!(
        s["vms"]
            .as_array()
            .expect("vms")
            .iter()
            .all(|v| v["node"] == "pve03")
    );

    let vmid = first["vmid"].as_u64().expect("vmid");
    let (err, s, text) = call(&client, "vm_get", json!({"vmid": vmid})).await;
    assert!(!err, "{text}");
    assert_eq!(s["node"], "pve03");
    assert!(!s["disks"].as_array().expect("disks").is_empty());
    assert!(!s["nics"].as_array().expect("nics").is_empty());

    let (err, _, text) = call(&client, "vm_get", json!({"vmid": 4242})).await;
    assert!(err);
    assert!(text.contains("4242"), "{text}");

    let (err, s, text) = call(&client, "template_list", json!({})).await;
    assert!(!err, "{text}");
    assert!(
        s["templates"]
            .as_array()
            .expect("templates")
            .iter()
            .all(|t| t["vmid"].as_u64().unwrap_or(0) < 1000)
    );

    let (err, s, text) = call(&client, "storage_list", json!({})).await;
    assert!(!err, "{text}");
    let names: Vec<&str> = s["storage"]
        .as_array()
        .expect("storage")
        .iter()
        .filter_map(|x| x["storage"].as_str())
        .collect();
    for want in ["local", "local-lvm", "nfs-shared"] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert_eq!(
        names.iter().filter(|n| **n == "nfs-shared").count(),
        1,
        "shared storage listed once"
    );

    let (err, s, text) = call(
        &client,
        "storage_content",
        json!({"storage": "local", "node": "pve01", "content": "iso"}),
    )
    .await;
    assert!(!err, "{text}");
    assert!(
        s["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["content"] == "iso")
    );

    let (err, _, text) = call(&client, "storage_content", json!({"storage": "local"})).await;
    assert!(
        err && text.contains("node"),
        "local storage needs a node: {text}"
    );

    let (err, _, text) = call(&client, "node_status", json!({"node": "pve09"})).await;
    assert!(
        err && text.contains("pve09") && text.contains("pve01"),
        "{text}"
    );

    client.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_node_is_reported_as_such() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::write_config(dir.path(), &sim);
    sim.set_node_online("pve02", false)
        .expect("fault injection");
    let client = connect(&config, &common::token_env(&sim), &[]).await;

    let (err, s, text) = call(&client, "cluster_status", json!({})).await;
    assert!(!err, "{text}");
    assert!(
        s["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains("pve02 is offline")),
        "{}",
        s["warnings"]
    );

    let (err, _, text) = call(&client, "storage_list", json!({"node": "pve02"})).await;
    assert!(err, "{text}");
    assert!(text.contains("pve02") && text.contains("offline"), "{text}");
    client.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_and_toolsets_trim_the_server() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::write_config(dir.path(), &sim);
    let client = connect(
        &config,
        &common::token_env(&sim),
        &["--toolsets", "storage", "--read-only"],
    )
    .await;
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["disk_orphans", "storage_content", "storage_list"]
    );
    client.cancel().await.expect("close");
}

//! Template tools end to end through MCP against the simulator: listing with linked clones,
//! converting a VM, and deleting with a preview that refuses while clones depend on it.

use crate::common;

use serde_json::{Value, json};

use common::mcp::{Client, call, connect};

async fn template(c: &Client, vmid: u64) -> Option<Value> {
    let (err, t, text) = call(c, "template_list", json!({})).await;
    assert!(!err, "{text}");
    t["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|x| x["vmid"] == vmid)
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn list_convert_and_delete_templates() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (c, _) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;

    // The scenario's ci-runner (1011) is a linked clone of template 100.
    let t100 = template(&c, 100).await.expect("template 100");
    assert!(
        t100["linked_clones"]
            .as_array()
            .expect("clones")
            .iter()
            .any(|v| v == 1011),
        "{t100}"
    );
    assert!(t100["ostype"].is_string(), "{t100}");

    let (err, s, text) = call(&c, "template_delete", json!({"vmid": 100})).await;
    assert!(!err, "{text}");
    assert_eq!(s["executed"], false);
    assert!(
        s["blocked_by"].as_str().is_some_and(|b| b.contains("1011")),
        "{s}"
    );
    let (err, _, text) = call(&c, "template_delete", json!({"vmid": 100, "confirm": true})).await;
    assert!(err && text.contains("linked clones"), "{text}");
    assert!(template(&c, 100).await.is_some(), "nothing was deleted");

    let (err, s, text) = call(
        &c,
        "vm_create",
        json!({"template": "100", "name": "golden-01", "start": true}),
    )
    .await;
    assert!(!err, "{text}");
    let vmid = s["vmid"].as_u64().expect("vmid");
    let (err, _, text) = call(&c, "template_convert", json!({"vmid": vmid})).await;
    assert!(
        err && text.contains("running"),
        "a running VM is refused: {text}"
    );
    let (err, _, text) = call(&c, "vm_shutdown", json!({"vmid": vmid})).await;
    assert!(!err, "{text}");
    let (err, s, text) = call(&c, "template_convert", json!({"vmid": vmid})).await;
    assert!(!err, "{text}");
    assert!(
        s["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains("vmid_ranges.templates"))
    );
    let converted = template(&c, vmid).await.expect("listed as a template");
    assert_eq!(converted["in_template_range"], false);
    let (err, _, text) = call(&c, "template_convert", json!({"vmid": vmid})).await;
    assert!(err && text.contains("already is a template"), "{text}");

    let (err, _, text) = call(&c, "template_delete", json!({"vmid": 1000})).await;
    assert!(err && text.contains("not a template"), "{text}");
    let (err, s, text) = call(
        &c,
        "template_delete",
        json!({"vmid": vmid, "confirm": true}),
    )
    .await;
    assert!(!err && s["executed"] == true, "{text}");
    assert!(template(&c, vmid).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn iso_install_vm_then_template() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (c, _) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;

    let iso = "local:iso/debian-12.12.0-amd64-netinst.iso";
    let (err, s, text) = call(
        &c,
        "template_from_iso",
        json!({"iso": iso, "name": "debian-install", "start": true, "disk_size": "20G"}),
    )
    .await;
    assert!(!err, "{text}");
    let vmid = s["vmid"].as_u64().expect("vmid");
    assert!((100..=999).contains(&vmid));
    assert_eq!(s["node"], "pve01", "the node holding the ISO");
    assert!(
        s["console"]
            .as_str()
            .is_some_and(|x| x.contains(&format!("vmid={vmid}"))),
        "{s}"
    );
    let (_, v, _) = call(&c, "vm_get", json!({"vmid": vmid})).await;
    assert_eq!(v["status"], "running");
    assert!(
        v["disks"]
            .as_array()
            .expect("disks")
            .iter()
            .any(|d| d["media"] == "cdrom" && d["volume"] == iso),
        "{v}"
    );

    let (err, _, text) = call(&c, "vm_shutdown", json!({"vmid": vmid})).await;
    assert!(!err, "{text}");
    let (err, _, text) = call(&c, "template_convert", json!({"vmid": vmid})).await;
    assert!(!err, "{text}");
    assert!(template(&c, vmid).await.is_some());

    let (err, _, text) = call(
        &c,
        "template_from_iso",
        json!({"iso": "local:iso/nope.iso", "name": "x-install", "node": "pve01"}),
    )
    .await;
    assert!(
        err && text.contains("debian-12.12.0-amd64-netinst.iso"),
        "lists the ISOs that exist: {text}"
    );
}

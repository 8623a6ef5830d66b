//! `template_from_iso` with `replace`: the old template is kept while the new one is only an
//! installation VM, and `template_convert` deletes it once the new template exists.

use crate::common;

use serde_json::{Value, json};

use common::mcp::{call, connect};

fn named<'a>(list: &'a Value, name: &str) -> Vec<&'a Value> {
    list["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .filter(|t| t["name"] == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_iso_replacement_keeps_the_old_template_until_the_new_one_is_converted() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (c, _) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    let args = json!({"iso": "local:iso/debian-12.12.0-amd64-netinst.iso", "node": "pve01",
        "name": "talos-1.8-tmpl", "replace": true, "confirm": true});
    let (err, r, text) = call(&c, "template_from_iso", args).await;
    assert!(!err, "{text}");
    let new = r["vmid"].as_u64().expect("vmid");
    assert_eq!(r["replaced"]["vmid"], 101, "{r}");
    assert_eq!(r["replaced"]["executed"], false, "not deleted yet: {r}");
    assert!(
        r["next"]
            .as_str()
            .unwrap_or("")
            .contains("template_convert deletes it"),
        "{r}"
    );
    let (_, t, _) = call(&c, "template_list", json!({})).await;
    assert_eq!(
        named(&t, "talos-1.8-tmpl").len(),
        1,
        "the old template is still there while the OS is installed: {t}"
    );

    let (err, r, text) = call(&c, "template_convert", json!({"vmid": new})).await;
    assert!(!err, "{text}");
    assert_eq!(r["replaced"]["vmid"], 101, "{r}");
    assert_eq!(r["replaced"]["executed"], true, "{r}");
    let (_, t, _) = call(&c, "template_list", json!({})).await;
    let now = named(&t, "talos-1.8-tmpl");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["vmid"], new);
    let cfg: Value = common::client_for(&sim, common::MANAGER)
        .get(&format!("/nodes/pve01/qemu/{new}/config"), &[])
        .await
        .expect("config");
    assert!(
        !cfg["description"]
            .as_str()
            .unwrap_or("")
            .contains("replaces template"),
        "the note is gone: {cfg}"
    );
}

/// The template builds check the disk storage (and every format) before they download,
/// upload or create anything.
#[tokio::test(flavor = "multi_thread")]
async fn template_builds_refuse_a_bad_storage_before_fetching_anything() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (c, _) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    let mutations = || {
        sim.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .count()
    };
    let before = mutations();
    for (tool, args, expect) in [
        (
            "template_from_cloud_image",
            json!({"image_url": "https://images.example/noble.img", "name": "cloud-x",
                   "node": "pve01", "storage": "nosuch"}),
            "storage nosuch on node pve01",
        ),
        (
            "template_from_cloud_image",
            json!({"image_url": "https://images.example/noble.img", "name": "cloud-x",
                   "node": "pve01", "storage": "local"}),
            "images",
        ),
        (
            "template_import_disk",
            json!({"image_url": "https://images.example/disk.qcow2", "name": "disk-x",
                   "node": "pve01;id", "storage": "local-lvm"}),
            "node",
        ),
        (
            "template_from_iso",
            json!({"iso": "https://isos.example/netinst.iso", "name": "iso-x",
                   "node": "pve01", "storage": "nosuch"}),
            "storage nosuch on node pve01",
        ),
        (
            "template_from_iso",
            json!({"iso": "local:iso/debian-12.12.0-amd64-netinst.iso", "name": "iso-x",
                   "node": "pve01", "disk_size": "x".repeat(100_000)}),
            "disk_size",
        ),
    ] {
        let (err, _, text) = call(&c, tool, args).await;
        assert!(err, "{tool} accepted it");
        assert!(text.contains(expect), "{tool}: {text}");
        assert!(
            text.len() < 1000,
            "{tool}: bounded error, {} bytes",
            text.len()
        );
    }
    assert_eq!(mutations(), before, "nothing was downloaded or created");
}

/// The cluster's default bridge is checked on the build's node, and an ISO build's size on
/// the node, before anything is fetched or created (issue 13, item 6).
#[tokio::test(flavor = "multi_thread")]
async fn template_builds_refuse_a_missing_bridge_or_an_oversized_vm_before_fetching_anything() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let text = std::fs::read_to_string(&config).expect("config");
    let bad_bridge = dir.path().join("bad-bridge.yaml");
    std::fs::write(
        &bad_bridge,
        text.replace("network_bridge: vmbr0", "network_bridge: vmbr9"),
    )
    .expect("write");
    let mutations = || {
        sim.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .count()
    };
    let before = mutations();
    let (c, _) = connect(&bad_bridge, &common::token_env(&sim), dir.path(), &[]).await;
    for (tool, args) in [
        (
            "template_from_cloud_image",
            json!({"image_url": "https://images.example/noble.img", "name": "cloud-x",
                   "node": "pve01"}),
        ),
        (
            "template_from_iso",
            json!({"iso": "https://isos.example/netinst.iso", "name": "iso-x", "node": "pve01"}),
        ),
    ] {
        let (err, _, text) = call(&c, tool, args).await;
        assert!(
            err && text.contains("bridge vmbr9 on node pve01") && text.contains("vmbr0"),
            "{tool}: {text}"
        );
    }
    let (c, _) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    let (err, _, text) = call(
        &c,
        "template_from_iso",
        json!({"iso": "https://isos.example/netinst.iso", "name": "iso-x", "node": "pve03",
               "cores": 500}),
    )
    .await;
    assert!(err && text.contains("more than node"), "{text}");
    assert_eq!(mutations(), before, "nothing was downloaded or created");
}

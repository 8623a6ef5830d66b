//! Templates from images end to end through MCP: a real qcow2 made by `qemu-img`, served from
//! a loopback HTTP server, downloaded, imported and converted by the simulator over the API.

use crate::common;

use serde_json::json;

use common::images::{qcow2, sha256};
use common::mcp::{call, connect};

async fn serve_image(bytes: Vec<u8>) -> String {
    common::images::serve("noble.qcow2", bytes).await
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_image_to_template_over_the_api() {
    let image = qcow2();
    let digest = sha256(&image);
    let url = serve_image(image).await;
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let admin = sim.token("root@pam!admin").expect("admin token");
    let (c, _) = connect(
        &config,
        &format!("{}={}", admin.id, admin.secret),
        dir.path(),
        &[],
    )
    .await;

    let (err, s, text) = call(&c, "template_from_cloud_image", json!({
        "image_url": url, "checksum": digest, "name": "noble-test-tmpl", "disk_size": "2G", "node": "pve02"
    })).await;
    assert!(!err, "{text}");
    assert_eq!(s["path"]["path"], "api", "{s}");
    let vmid = s["vmid"].as_u64().expect("vmid");
    assert!(
        (100..=999).contains(&vmid),
        "from vmid_ranges.templates: {vmid}"
    );
    assert_eq!(s["disk_size"], "2G");
    let (_, t, _) = call(&c, "template_list", json!({})).await;
    let tpl = t["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|x| x["vmid"] == vmid)
        .cloned()
        .expect("listed");
    let tags: Vec<&str> = tpl["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(
        tags.contains(&"template") && tags.contains(&"cloudinit"),
        "{tags:?}"
    );
    let (_, v, _) = call(&c, "vm_get", json!({"vmid": vmid})).await;
    assert_eq!(v["template"], true);
    assert_eq!(v["cloudinit"]["ciuser"], "ada");
    assert!(
        v["disks"]
            .as_array()
            .expect("disks")
            .iter()
            .any(|d| d["media"] == "cloudinit")
    );
    assert!(
        !sim.files("pve02", "local")
            .iter()
            .any(|f| f.contains("noble.qcow2")),
        "the download was removed"
    );

    let (err, _, text) = call(
        &c,
        "template_from_cloud_image",
        json!({"image_url": url, "name": "noble-test-tmpl"}),
    )
    .await;
    assert!(
        err && text.contains("already exists"),
        "same name refused: {text}"
    );

    let wrong = format!("sha256:{}", "0".repeat(64));
    let (err, _, text) = call(
        &c,
        "template_from_cloud_image",
        json!({"image_url": url, "checksum": wrong, "name": "bad-sum", "node": "pve02"}),
    )
    .await;
    assert!(err && text.contains("checksum"), "{text}");
    assert!(
        !sim.files("pve02", "local")
            .iter()
            .any(|f| f.contains("noble.qcow2")),
        "a bad download leaves nothing"
    );
    let (_, t, _) = call(&c, "template_list", json!({})).await;
    assert!(
        !t["templates"]
            .as_array()
            .expect("templates")
            .iter()
            .any(|x| x["name"] == "bad-sum")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn least_privilege_token_without_ssh_is_told_both_ways_to_enable_the_build() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let (c, _) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    let (err, _, text) = call(
        &c,
        "template_from_cloud_image",
        json!({"image_url": "http://127.0.0.1:9/x.qcow2", "name": "t"}),
    )
    .await;
    assert!(err, "{text}");
    assert!(
        text.contains("Datastore.AllocateTemplate") && text.contains("Sys.AccessNetwork"),
        "{text}"
    );
    assert!(text.contains("ssh is not configured"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_image_to_template_over_the_api() {
    let url = common::images::serve("appliance.qcow2", qcow2()).await;
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_config(dir.path(), &sim);
    let admin = sim.token("root@pam!admin").expect("admin token");
    let (c, _) = connect(
        &config,
        &format!("{}={}", admin.id, admin.secret),
        dir.path(),
        &[],
    )
    .await;
    let (err, s, text) = call(
        &c,
        "template_import_disk",
        json!({"image_url": url, "name": "appliance-tmpl", "tags": ["appliance"]}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(s["disk_size"], "64M", "kept the image's size: {s}");
    let vmid = s["vmid"].as_u64().expect("vmid");
    let (_, v, _) = call(&c, "vm_get", json!({"vmid": vmid})).await;
    assert_eq!(v["template"], true);
    assert!(
        !v["disks"]
            .as_array()
            .expect("disks")
            .iter()
            .any(|d| d["media"] == "cloudinit"),
        "no cloud-init drive: {v}"
    );
    let tags: Vec<&str> = v["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert_eq!(tags, vec!["appliance", "template"]);
}

//! Runbooks through the MCP protocol: the shipped runbooks listed and rendered for this
//! cluster, saving a new one (preview writes nothing, confirm writes exactly the preview,
//! shipped names and traversal refused), a user runbook overriding a shipped one, and the
//! resources and prompts listed and readable.

use crate::common;

use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams, ResourceContents};
use serde_json::{Value, json};

use common::mcp::{Client, call, connect};

struct Setup {
    _sim: proxmox_manager::sim::SimHandle,
    dir: tempfile::TempDir,
    client: Client,
}

impl Setup {
    fn user_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("my-runbooks")
    }
}

async fn setup() -> Setup {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let runbooks = dir.path().join("my-runbooks");
    let yaml = format!(
        "{}\npaths:\n  runbooks: {}\n",
        common::config_yaml(sim.addr().port(), &sim.fingerprint()),
        runbooks.display()
    );
    let config = dir.path().join("cluster-config.yaml");
    std::fs::write(&config, yaml).expect("config");
    let (client, _) = connect(&config, &common::token_env(&sim), dir.path(), &[]).await;
    Setup {
        _sim: sim,
        dir,
        client,
    }
}

const DEBIAN: &str = "---
name: debian-cloud-template
description: Debian 12 generic cloud image as a cloud-init template
image_type: cloudinit
requires: [ssh, api]
---

# Debian cloud template

## Parameters
- image_url: Debian generic cloud image (default: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2)
- name: Template name (default: debian-12-tmpl)
- storage: Storage for the disks (default: config.defaults.storage)

## Steps
1. Build the template from {image_url} as {name} on {storage} — `template_from_cloud_image`
2. Check it is listed — `template_list`
";

fn names(list: &Value) -> Vec<(String, String)> {
    list["runbooks"]
        .as_array()
        .expect("runbooks")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_string(),
                r["source"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn shipped_runbooks_are_listed_and_rendered_for_this_cluster() {
    let s = setup().await;
    let (err, list, text) = call(&s.client, "runbook_list", json!({})).await;
    assert!(!err, "{text}");
    let listed = names(&list);
    for n in [
        "create-cloudinit-template",
        "create-iso-template",
        "import-qcow2-template",
    ] {
        assert!(
            listed.contains(&(n.to_string(), "shipped".to_string())),
            "{listed:?}"
        );
    }
    assert!(
        list["runbooks"]
            .as_array()
            .expect("runbooks")
            .iter()
            .all(|r| r["problems"].as_array().is_some_and(Vec::is_empty)),
        "shipped runbooks validate against the real tools: {list}"
    );

    let (err, r, text) = call(
        &s.client,
        "runbook_get",
        json!({"name": "create-cloudinit-template", "parameters": {"image_url": "https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img", "name": "ubuntu-noble-tmpl", "vmid": 9000}}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(r["ready"], true, "{r}");
    let param = |n: &str| {
        r["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(param("storage")["value"], "local-lvm");
    assert_eq!(param("storage")["from"], "config");
    assert_eq!(param("disk_size")["value"], "32G");
    assert_eq!(param("disk_size")["from"], "default");
    assert_eq!(param("name")["from"], "call");
    let calls = r["calls"].as_array().expect("calls");
    let build = calls
        .iter()
        .find(|c| c["tool"] == "template_from_cloud_image")
        .expect("the build call");
    assert_eq!(build["arguments"]["name"], "ubuntu-noble-tmpl");
    assert_eq!(build["arguments"]["vmid"], 9000, "a number: {build}");
    assert_eq!(build["arguments"]["storage"], "local-lvm");
    assert_eq!(build["arguments"]["disk_size"], "32G");
    assert!(calls.iter().any(|c| c["tool"] == "template_list"));

    let (err, r, _) = call(
        &s.client,
        "runbook_get",
        json!({"name": "create-cloudinit-template"}),
    )
    .await;
    assert!(!err);
    assert_eq!(r["ready"], false);
    assert_eq!(r["missing"], json!(["image_url", "name"]), "{r}");

    let (err, _, text) = call(&s.client, "runbook_get", json!({"name": "no-such-runbook"})).await;
    assert!(err && text.contains("create-cloudinit-template"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn saving_previews_then_writes_exactly_the_preview_and_refuses_what_it_must() {
    let s = setup().await;
    let target = s.user_dir().join("debian-cloud-template.md");

    let (err, p, text) = call(&s.client, "runbook_save", json!({"content": DEBIAN})).await;
    assert!(!err, "{text}");
    assert_eq!(p["executed"], false);
    assert!(p["diff"].is_null(), "new runbook: {p}");
    assert!(!target.exists(), "a preview writes nothing");

    let (err, w, text) = call(
        &s.client,
        "runbook_save",
        json!({"content": DEBIAN, "confirm": true}),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(w["executed"], true);
    let written = std::fs::read_to_string(&target).expect("written");
    assert_eq!(written, p["normalised"].as_str().expect("normalised"));

    let (_, list, _) = call(&s.client, "runbook_list", json!({})).await;
    assert!(names(&list).contains(&("debian-cloud-template".into(), "user".into())));

    let changed = DEBIAN.replace("debian-12-tmpl", "debian-bookworm-tmpl");
    let (err, d, text) = call(&s.client, "runbook_save", json!({"content": changed})).await;
    assert!(!err, "{text}");
    let diff = d["diff"].as_str().expect("a diff against the saved one");
    assert!(
        diff.contains("-- name: Template name (default: debian-12-tmpl)")
            && diff.contains("+- name: Template name (default: debian-bookworm-tmpl)"),
        "{diff}"
    );

    let shipped = DEBIAN.replace(
        "name: debian-cloud-template",
        "name: create-cloudinit-template",
    );
    let (err, _, text) = call(
        &s.client,
        "runbook_save",
        json!({"content": shipped, "confirm": true}),
    )
    .await;
    assert!(err && text.contains("shipped"), "{text}");

    let evil = DEBIAN.replace("name: debian-cloud-template", "name: ../../evil");
    let (err, _, text) = call(
        &s.client,
        "runbook_save",
        json!({"content": evil, "confirm": true}),
    )
    .await;
    assert!(err && text.contains("name"), "{text}");
    assert!(!s.dir.path().join("evil.md").exists());

    let broken = DEBIAN.replace(
        "2. Check it is listed — `template_list`",
        "2. Check it on {nodee} — `template_lst`",
    );
    let (err, _, text) = call(&s.client, "runbook_save", json!({"content": broken})).await;
    assert!(err, "{text}");
    assert!(
        text.contains("<content>:17") && text.contains("nodee") && text.contains("template_lst"),
        "file, line and reason for each problem: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_runbook_overrides_the_shipped_one_and_resources_and_prompts_are_served() {
    let s = setup().await;
    std::fs::create_dir_all(s.user_dir()).expect("dir");
    let own = DEBIAN
        .replace(
            "name: debian-cloud-template",
            "name: create-cloudinit-template",
        )
        .replace("Debian 12 generic", "Our own");
    std::fs::write(s.user_dir().join("create-cloudinit-template.md"), &own).expect("write");

    let (_, list, _) = call(&s.client, "runbook_list", json!({})).await;
    let entry = list["runbooks"]
        .as_array()
        .expect("runbooks")
        .iter()
        .find(|r| r["name"] == "create-cloudinit-template")
        .cloned()
        .expect("listed once");
    assert_eq!(entry["source"], "user");
    assert_eq!(entry["overrides_shipped"], true);

    let resources = s.client.list_all_resources().await.expect("resources/list");
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(uris.contains(&"config://cluster-config"), "{uris:?}");
    assert!(uris.contains(&"runbook://create-iso-template"), "{uris:?}");
    let read = |uri: &str| {
        let c = s.client.clone();
        let uri = uri.to_string();
        async move {
            let r = c
                .read_resource(ReadResourceRequestParams::new(uri))
                .await
                .expect("resources/read");
            match r.contents.into_iter().next() {
                Some(ResourceContents::TextResourceContents { text, .. }) => text,
                other => panic!("expected text, got {other:?}"),
            }
        }
    };
    let own_text = read("runbook://create-cloudinit-template").await;
    assert!(
        own_text.contains("Our own"),
        "the user's runbook wins: {own_text}"
    );
    let config: Value = serde_json::from_str(&read("config://cluster-config").await).expect("JSON");
    assert_eq!(config["defaults"]["storage"], "local-lvm");
    let token = common::token_env(&s._sim);
    let secret = token.split_once('=').map(|x| x.1).unwrap_or("");
    assert!(
        !config.to_string().contains(secret),
        "no secret in the config resource"
    );

    let prompts = s.client.list_all_prompts().await.expect("prompts/list");
    let mut names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "create_template",
            "evacuate_node",
            "ingest_runbook",
            "spin_up_cluster"
        ]
    );
    let mut args = serde_json::Map::new();
    args.insert("source".into(), json!("https://example.org/howto"));
    let p = s
        .client
        .get_prompt(GetPromptRequestParams::new("ingest_runbook").with_arguments(args))
        .await
        .expect("prompts/get");
    let text = serde_json::to_string(&p.messages).expect("json");
    assert!(
        text.contains("https://example.org/howto") && text.contains("runbook_save"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runbook_skeleton_is_a_resource_and_no_prompt_sends_the_model_to_a_prompt() {
    let s = setup().await;
    let resources = s.client.list_all_resources().await.expect("resources/list");
    let skeleton = resources
        .iter()
        .find(|r| r.uri == "runbook://_template")
        .unwrap_or_else(|| panic!("runbook://_template is not listed: {resources:?}"));
    assert_eq!(skeleton.mime_type.as_deref(), Some("text/markdown"));
    assert!(
        skeleton
            .description
            .as_deref()
            .is_some_and(|d| d.contains("runbook_save")),
        "the listing says what the skeleton is for: {skeleton:?}"
    );
    let r = s
        .client
        .read_resource(ReadResourceRequestParams::new("runbook://_template"))
        .await
        .expect("resources/read runbook://_template");
    match r.contents.into_iter().next() {
        Some(ResourceContents::TextResourceContents {
            text, mime_type, ..
        }) => {
            assert_eq!(text, proxmox_manager::ops::RUNBOOK_TEMPLATE);
            assert_eq!(mime_type.as_deref(), Some("text/markdown"));
        }
        other => panic!("expected the skeleton's text, got {other:?}"),
    }
    // The skeleton is not a runbook: runbook_list does not offer it.
    let (_, list, _) = call(&s.client, "runbook_list", json!({})).await;
    let names: Vec<&str> = list["runbooks"]
        .as_array()
        .expect("runbooks")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(!names.contains(&"_template"), "{names:?}");

    // A prompt's text goes to the model, which cannot invoke prompts (in Claude Code only the
    // user can, as slash commands): no prompt may send it to another prompt.
    let prompts = s.client.list_all_prompts().await.expect("prompts/list");
    let names: Vec<String> = prompts.iter().map(|p| p.name.to_string()).collect();
    for p in &prompts {
        let mut args = serde_json::Map::new();
        for a in p.arguments.iter().flatten() {
            args.insert(a.name.clone(), json!("pve02"));
        }
        let got = s
            .client
            .get_prompt(GetPromptRequestParams::new(p.name.clone()).with_arguments(args))
            .await
            .unwrap_or_else(|e| panic!("prompts/get {}: {e}", p.name));
        let text = serde_json::to_string(&got.messages).expect("json");
        for other in &names {
            assert!(
                !text.contains(other.as_str()),
                "prompt {} tells the model to use the prompt {other}: {text}",
                p.name
            );
        }
        if p.name == "ingest_runbook" {
            assert!(
                text.contains("runbook://_template"),
                "ingest_runbook points at the skeleton: {text}"
            );
        }
    }
}

/// A FIFO and a symlink named `*.md` in the user runbook directory (the symlink pointing at a
/// file outside it): two concurrent `runbook_list` calls and `resources/read` answer promptly,
/// name the skipped entries, never read the link's target, and the server keeps serving.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn fifos_and_symlinks_in_the_runbook_dir_neither_hang_nor_leak() {
    let s = setup().await;
    std::fs::create_dir_all(s.user_dir()).expect("dir");
    let status = std::process::Command::new("mkfifo")
        .arg(s.user_dir().join("pipe.md"))
        .status()
        .expect("mkfifo (coreutils) runs");
    assert!(status.success());
    let outside = s.dir.path().join("outside.md");
    std::fs::write(
        &outside,
        DEBIAN.replace("Debian 12 generic", "OUTSIDE-CONTENT"),
    )
    .expect("write");
    std::os::unix::fs::symlink(&outside, s.user_dir().join("linked.md")).expect("symlink");

    let deadline = std::time::Duration::from_secs(30);
    let both = async {
        tokio::join!(
            call(&s.client, "runbook_list", json!({})),
            call(&s.client, "runbook_list", json!({}))
        )
    };
    let ((e1, list, text), (e2, _, _)) = tokio::time::timeout(deadline, both)
        .await
        .expect("runbook_list answers while a FIFO sits in the directory");
    assert!(!e1 && !e2, "{text}");
    let problems = |name: &str| {
        list["runbooks"]
            .as_array()
            .expect("runbooks")
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["problems"].to_string())
            .unwrap_or_else(|| panic!("{name} listed: {list}"))
    };
    assert!(problems("pipe").contains("a FIFO"), "{list}");
    assert!(problems("linked").contains("symbolic link"), "{list}");
    assert!(!list.to_string().contains("OUTSIDE-CONTENT"), "{list}");

    for uri in ["runbook://linked", "runbook://pipe"] {
        let r = tokio::time::timeout(
            deadline,
            s.client
                .read_resource(ReadResourceRequestParams::new(uri.to_string())),
        )
        .await
        .expect("resources/read answers");
        let err = r.expect_err("a skipped entry is not served").to_string();
        assert!(
            err.contains("not followed") || err.contains("not a regular file"),
            "{uri}: {err}"
        );
        assert!(!err.contains("OUTSIDE-CONTENT"), "{err}");
    }
    let resources = tokio::time::timeout(deadline, s.client.list_all_resources())
        .await
        .expect("resources/list answers")
        .expect("resources/list");
    assert!(
        resources
            .iter()
            .any(|r| r.uri == "runbook://create-iso-template")
    );
    // Still responsive for everything else.
    let (err, _, text) = tokio::time::timeout(
        deadline,
        call(
            &s.client,
            "runbook_get",
            json!({"name": "create-iso-template"}),
        ),
    )
    .await
    .expect("runbook_get answers");
    assert!(!err, "{text}");
}

//! The tool ops: list, get (rendering), save, text, and where user runbooks live.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::tests_parse::{GOOD, catalog};
use super::{
    Error, RunbookGetArgs, RunbookListArgs, RunbookSaveArgs, RunbookSource, runbook_get,
    runbook_list, runbook_text, user_runbook_dir_with,
};
use crate::config::{Config, sim_config};

pub(super) fn config(dir: &Path) -> Config {
    let mut c = sim_config(8006, [0; 32]);
    c.paths.runbooks = Some(dir.to_path_buf());
    c
}

pub(super) fn get(c: &Config, name: &str, params: Value) -> Result<super::RunbookGetReport, Error> {
    let parameters: Map<String, Value> = match params {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    runbook_get(
        c,
        &catalog(),
        &RunbookGetArgs {
            name: name.to_string(),
            parameters,
        },
    )
}

#[test]
fn args_deny_unknown_fields() {
    assert!(serde_json::from_value::<RunbookListArgs>(json!({})).is_ok());
    assert!(serde_json::from_value::<RunbookListArgs>(json!({"x": 1})).is_err());
    let a: RunbookGetArgs = serde_json::from_value(json!({"name": "n"})).expect("parses");
    assert!(a.parameters.is_empty());
    assert!(serde_json::from_value::<RunbookGetArgs>(json!({"name": "n", "params": {}})).is_err());
    let s: RunbookSaveArgs = serde_json::from_value(json!({"content": "x"})).expect("parses");
    assert!(!s.confirm);
}

#[test]
fn renders_defaults_config_values_and_calls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = config(tmp.path());
    let r = get(
        &c,
        "create-cloudinit-template",
        json!({"image_url": "https://img/noble.img", "name": "ubuntu-noble-tmpl"}),
    )
    .expect("renders");
    assert!(r.ready);
    assert!(r.missing.is_empty());
    assert_eq!(r.source, RunbookSource::Shipped);
    let p = |n: &str| r.parameters.iter().find(|p| p.name == n).expect(n);
    assert_eq!(
        (p("storage").value.as_deref(), p("storage").from.as_str()),
        (Some("local-lvm"), "config")
    );
    assert_eq!(
        (
            p("disk_size").value.as_deref(),
            p("disk_size").from.as_str()
        ),
        (Some("32G"), "default")
    );
    assert_eq!(
        (p("vmid").value.clone(), p("vmid").from.as_str()),
        (None, "optional")
    );
    assert_eq!(p("name").from, "call");
    assert_eq!(r.steps.len(), 11);
    assert_eq!(r.steps[1].text, "Resize the image to 32G");
    assert!(r.steps[10].text.contains("ubuntu-noble-tmpl is listed"));
    let first = r.steps[0].call.as_ref().expect("call");
    assert_eq!(first.tool, "template_from_cloud_image");
    assert_eq!(
        Value::Object(first.arguments.clone()),
        json!({"image_url": "https://img/noble.img", "name": "ubuntu-noble-tmpl", "disk_size": "32G", "storage": "local-lvm"})
    );
    // Ten steps share one call; the verification is a second, argument-less call.
    assert_eq!(r.calls.len(), 2);
    assert_eq!(r.calls[0], *first);
    assert_eq!(r.calls[1].tool, "template_list");
    assert!(r.calls[1].arguments.is_empty());
    assert!(r.message.starts_with("Ready"), "{}", r.message);
}

#[test]
fn missing_required_parameters_are_listed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = get(&config(tmp.path()), "create-cloudinit-template", json!({})).expect("renders");
    assert!(!r.ready);
    assert_eq!(r.missing, ["image_url", "name"]);
    assert!(
        r.parameters
            .iter()
            .any(|p| p.name == "name" && p.from == "missing")
    );
    assert!(
        r.steps[0].text.contains("{image_url}"),
        "{}",
        r.steps[0].text
    );
    assert!(r.message.contains("image_url, name"), "{}", r.message);
}

#[test]
fn call_values_override_and_integers_become_numbers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = config(tmp.path());
    let base = json!({"iso": "local:iso/debian.iso", "name": "debian-tmpl", "storage": "ceph", "vmid": "9001"});
    let r = get(&c, "create-iso-template", base).expect("renders");
    assert!(r.ready);
    let create = r.steps[1].call.as_ref().expect("call");
    assert_eq!(create.tool, "template_from_iso");
    assert_eq!(create.arguments["vmid"], json!(9001));
    assert_eq!(create.arguments["storage"], json!("ceph"));
    assert_eq!(create.arguments["disk_size"], json!("32G"));
    assert_eq!(create.arguments["name"], json!("debian-tmpl"));
    let start = r.steps[2].call.as_ref().expect("call");
    assert_eq!(
        Value::Object(start.arguments.clone()),
        json!({"vmid": 9001})
    );
    assert!(r.steps[3].call.is_none() && r.steps[3].tool.is_none());
    assert!(r.message.contains("have no tool"), "{}", r.message);
    // A JSON number stays a number; a non-integer parameter stays a string.
    let r = get(
        &c,
        "create-iso-template",
        json!({"iso": "x", "name": "123", "vmid": 9002, "disk_size": 64}),
    )
    .expect("renders");
    let create = &r.calls[1].arguments;
    assert_eq!(create["vmid"], json!(9002));
    assert_eq!(create["name"], json!("123"));
    assert_eq!(create["disk_size"], json!(64));
    assert_eq!(r.parameters[0].from, "call");
}

#[test]
fn open_vmid_is_pointed_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = get(
        &config(tmp.path()),
        "create-iso-template",
        json!({"iso": "x", "name": "n"}),
    )
    .expect("renders");
    assert!(
        !r.steps[2]
            .call
            .as_ref()
            .expect("call")
            .arguments
            .contains_key("vmid")
    );
    assert!(
        r.message.contains("`vm_start` without vmid"),
        "{}",
        r.message
    );
}

#[test]
fn unknown_parameters_and_names_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = config(tmp.path());
    match get(&c, "create-iso-template", json!({"bogus": 1, "iso": "x"})) {
        Err(Error::InvalidArgument { arg, reason }) => {
            assert_eq!(arg, "parameters");
            assert!(
                reason.contains("bogus") && reason.contains("iso, name, vmid"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    match get(&c, "create-iso-template", json!({"name": ["a"]})) {
        Err(Error::InvalidArgument { reason, .. }) => assert!(reason.contains("`name`")),
        other => panic!("{other:?}"),
    }
    for name in ["no-such-runbook", "../create-iso-template", "a/b"] {
        match get(&c, name, json!({})) {
            Err(Error::NotFound { what, hint }) => {
                assert!(what.contains(name));
                assert!(
                    hint.contains("create-cloudinit-template, create-iso-template"),
                    "{hint}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        runbook_text(&c, "nope"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn user_runbooks_override_shipped_ones_and_bad_files_are_listed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let c = config(dir);
    let shipped_iso = runbook_text(&c, "create-iso-template").expect("shipped").0;
    let mine = shipped_iso.replace(
        "description: Create a VM template by installing an OS from an installer ISO",
        "description: Our ISO procedure",
    );
    std::fs::write(dir.join("create-iso-template.md"), &mine).expect("write");
    std::fs::write(dir.join("broken.md"), "no frontmatter\n").expect("write");
    std::fs::write(dir.join("renamed.md"), GOOD).expect("write");
    std::fs::write(dir.join("_draft.md"), "ignored").expect("write");
    std::fs::write(dir.join("notes.txt"), "ignored").expect("write");

    let list = runbook_list(&c, &catalog()).expect("lists");
    assert_eq!(list.user_dir, dir.display().to_string());
    let names: Vec<&str> = list.runbooks.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "broken",
            "create-cloudinit-template",
            "create-iso-template",
            "import-qcow2-template",
            "renamed"
        ]
    );
    let iso = &list.runbooks[2];
    assert_eq!(
        (iso.source, iso.overrides_shipped),
        (RunbookSource::User, true)
    );
    assert_eq!(iso.description, "Our ISO procedure");
    assert!(iso.problems.is_empty(), "{:?}", iso.problems);
    let cloud = &list.runbooks[1];
    assert_eq!(
        (cloud.source, cloud.overrides_shipped),
        (RunbookSource::Shipped, false)
    );
    assert!(cloud.problems.is_empty(), "{:?}", cloud.problems);
    let broken = &list.runbooks[0];
    assert!(broken.problems[0].ends_with("broken.md:1: missing frontmatter: the file must start with a `---` line, the YAML keys name, description, image_type, requires, and a closing `---`"), "{:?}", broken.problems);
    assert!(
        list.runbooks[4]
            .problems
            .iter()
            .any(|p| p.contains("renamed.md:2: name `demo` differs"))
    );

    let r = get(&c, "create-iso-template", json!({})).expect("renders");
    assert_eq!(
        (r.source, r.description.as_str()),
        (RunbookSource::User, "Our ISO procedure")
    );
    assert_eq!(
        runbook_text(&c, "create-iso-template").expect("text"),
        (mine, RunbookSource::User)
    );
    match get(&c, "broken", json!({})) {
        Err(Error::Setup(m)) => assert!(m.contains("broken.md:1: missing frontmatter"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Without a user dir there are just the shipped runbooks.
    let none = runbook_list(&config(&dir.join("absent")), &catalog()).expect("lists");
    assert_eq!(none.runbooks.len(), 3);
    assert!(
        none.runbooks
            .iter()
            .all(|r| r.source == RunbookSource::Shipped)
    );
}

#[test]
fn user_dir_comes_from_config_xdg_or_home() {
    let mut c = sim_config(8006, [0; 32]);
    let env = |xdg: Option<&'static str>, home: Option<&'static str>| {
        move |k: &str| match k {
            "XDG_CONFIG_HOME" => xdg.map(str::to_string),
            "HOME" => home.map(str::to_string),
            _ => None,
        }
    };
    let xdg = env(Some("/x"), Some("/h"));
    assert_eq!(
        user_runbook_dir_with(&c, &xdg),
        PathBuf::from("/x/proxmox-manager/runbooks")
    );
    let home = env(Some("relative"), Some("/h"));
    assert_eq!(
        user_runbook_dir_with(&c, &home),
        PathBuf::from("/h/.config/proxmox-manager/runbooks")
    );
    c.paths.runbooks = Some(PathBuf::from("/srv/runbooks"));
    assert_eq!(
        user_runbook_dir_with(&c, &xdg),
        PathBuf::from("/srv/runbooks")
    );
}

#[test]
fn explicit_step_arguments_are_the_only_ones_and_keep_their_types() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = config(tmp.path());
    let r = get(
        &c,
        "create-iso-template",
        json!({"iso": "local:iso/debian.iso", "name": "debian-tmpl", "vmid": 901}),
    )
    .expect("renders");
    let first = r.steps[0].call.clone().expect("a call");
    assert_eq!(first.tool, "storage_content");
    assert_eq!(
        Value::Object(first.arguments),
        json!({"storage": "local", "content": "iso"}),
        "no vmid, no disk storage; node left out while unknown"
    );
    let r = get(
        &c,
        "create-iso-template",
        json!({"iso": "local:iso/debian.iso", "name": "debian-tmpl", "node": "pve02"}),
    )
    .expect("renders");
    let first = r.steps[0].call.clone().expect("a call");
    assert_eq!(first.arguments.get("node"), Some(&json!("pve02")));
}

#[test]
fn explicit_step_arguments_are_validated_and_normalised() {
    use super::parse::parse;
    let text = super::tests_parse::GOOD.replace(
        " — `vm_start`",
        " — `vm_start(bogus={vmid}, vmid={vmid},  broken)`",
    );
    let problems = super::validate("<content>", &text, &super::tests_parse::catalog(), None);
    let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("expected `argument=value`")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("has no argument `bogus`")),
        "{reasons:?}"
    );
    let fine = super::tests_parse::GOOD.replace(" — `vm_start`", " — `vm_start( vmid={vmid} )`");
    let (rb, problems) = parse("<content>", &fine);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(super::render::normalise(&rb).contains("— `vm_start(vmid={vmid})`"));
}

/// A FIFO and a symlink named `*.md` in the user directory: listing answers at once (it never
/// opens the FIFO) and names both as skipped; get and text refuse them the same way `runbook_save`
/// refuses to write through them.
#[cfg(unix)]
#[test]
fn fifos_and_symlinks_in_the_user_dir_are_reported_not_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("rb");
    std::fs::create_dir_all(&dir).expect("dir");
    let status = std::process::Command::new("mkfifo")
        .arg(dir.join("pipe.md"))
        .status()
        .expect("mkfifo (coreutils) runs");
    assert!(status.success());
    let secret = tmp.path().join("outside.md");
    std::fs::write(&secret, GOOD.replace("name: demo", "name: linked")).expect("write");
    std::os::unix::fs::symlink(&secret, dir.join("linked.md")).expect("symlink");
    std::fs::write(dir.join("demo.md"), GOOD).expect("write");
    let c = config(&dir);

    let started = std::time::Instant::now();
    let list = runbook_list(&c, &catalog()).expect("list");
    let by_name = |n: &str| {
        list.runbooks
            .iter()
            .find(|r| r.name == n)
            .unwrap_or_else(|| panic!("{n} listed"))
    };
    let pipe = by_name("pipe");
    assert!(
        pipe.problems
            .iter()
            .any(|p| p.contains("a FIFO") && p.contains("skipped")),
        "{:?}",
        pipe.problems
    );
    let linked = by_name("linked");
    assert!(
        linked.problems.iter().any(|p| p.contains("symbolic link")),
        "{:?}",
        linked.problems
    );
    assert!(linked.description.is_empty(), "the link target is not read");
    assert!(by_name("demo").problems.is_empty());
    // The FIFO was never opened: no read timeout was waited out.
    assert!(
        started.elapsed() < super::store::READ_TIMEOUT,
        "{:?}",
        started.elapsed()
    );

    for name in ["pipe", "linked"] {
        let err = runbook_text(&c, name).expect_err(name).to_string();
        assert!(
            err.contains(name) && (err.contains("skipped") || err.contains("not followed")),
            "{err}"
        );
        let err = get(&c, name, json!({})).expect_err(name).to_string();
        assert!(
            err.contains("not a regular file") || err.contains("not followed"),
            "{err}"
        );
    }
}

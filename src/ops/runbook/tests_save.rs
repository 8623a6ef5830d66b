//! `runbook_save`: preview, confirm, diff, refusals.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::tests_ops::{config, get};
use super::tests_parse::{GOOD, catalog};
use super::{Error, RunbookSaveArgs, RunbookSource, runbook_save};
use crate::config::Config;

fn save(c: &Config, content: &str, confirm: bool) -> Result<super::RunbookSaveReport, Error> {
    runbook_save(
        c,
        &catalog(),
        &RunbookSaveArgs {
            content: content.to_string(),
            confirm,
        },
    )
}

#[test]
fn save_previews_then_writes_exactly_the_normalised_text() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("runbooks");
    let c = config(&dir);
    let messy = GOOD
        .replace("# Demo", "#   Demo   ")
        .replace(" — `vm_start`", " -- `vm_start`");
    let preview = save(&c, &messy, false).expect("preview");
    assert!(!preview.executed);
    assert!(preview.diff.is_none());
    assert!(
        preview.message.contains("preview only"),
        "{}",
        preview.message
    );
    assert_eq!(preview.normalised, GOOD);
    assert_eq!(PathBuf::from(&preview.path), dir.join("demo.md"));
    assert!(
        !dir.exists(),
        "a preview writes nothing, not even the directory"
    );

    let done = save(&c, &messy, true).expect("saved");
    assert!(done.executed);
    assert_eq!(
        std::fs::read_to_string(dir.join("demo.md")).expect("read"),
        done.normalised
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("demo.md")), 0o644);
        assert_eq!(mode(&dir), 0o700);
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["demo.md"], "no temporary file is left behind");

    let changed = GOOD.replace("Demo runbook", "Demo runbook, second edition");
    let second = save(&c, &changed, false).expect("preview");
    let diff = second.diff.expect("diff against the saved file");
    assert!(diff.contains("--- a/demo.md\n+++ b/demo.md\n"), "{diff}");
    assert!(diff.contains("-description: Demo runbook\n"), "{diff}");
    assert!(
        diff.contains("+description: Demo runbook, second edition\n"),
        "{diff}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("demo.md")).expect("read"),
        GOOD
    );
    save(&c, &changed, true).expect("saved");
    assert_eq!(
        std::fs::read_to_string(dir.join("demo.md")).expect("read"),
        changed
    );
    let same = save(&c, &changed, false).expect("preview");
    assert_eq!(same.diff.as_deref(), Some(""));

    let r = get(&c, "demo", json!({"vmid": 7})).expect("renders the saved runbook");
    assert_eq!(r.source, RunbookSource::User);
    assert_eq!(r.steps[0].text, "Start 7");
}

#[test]
fn save_refuses_shipped_names_bad_names_and_bad_content() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let c = config(tmp.path());
    let shipped = GOOD.replace("name: demo", "name: create-iso-template");
    match save(&c, &shipped, false) {
        Err(Error::Refused { reason }) => {
            assert!(reason.contains("create-iso-template-local"), "{reason}");
            assert!(reason.contains("by hand"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    for bad in ["../x", "a/b", "x.md", "/etc/passwd", "Demo"] {
        match save(
            &c,
            &GOOD.replace("name: demo", &format!("name: {bad}")),
            true,
        ) {
            Err(Error::InvalidArgument { arg, reason }) => {
                assert_eq!(arg, "content");
                assert!(reason.contains("<content>:2: name"), "{reason}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let broken = GOOD
        .replace("image_type: none", "image_type: vmdk")
        .replace("2. Look", "3. Look");
    match save(&c, &broken, true) {
        Err(Error::InvalidArgument { reason, .. }) => {
            assert!(reason.starts_with("2 problem(s)"), "{reason}");
            assert!(reason.contains("\n<content>:4: image_type"), "{reason}");
            assert!(
                reason.contains("\n<content>:16: step numbered 3"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_dir(tmp.path()).expect("dir").count(), 0);
}

#[cfg(unix)]
#[test]
fn save_refuses_to_replace_a_symlink() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let elsewhere = tmp.path().join("elsewhere.txt");
    std::fs::write(&elsewhere, "keep").expect("write");
    let dir = tmp.path().join("rb");
    std::fs::create_dir(&dir).expect("mkdir");
    std::os::unix::fs::symlink(&elsewhere, dir.join("demo.md")).expect("symlink");
    assert!(matches!(
        save(&config(&dir), GOOD, true),
        Err(Error::Refused { .. })
    ));
    assert_eq!(std::fs::read_to_string(&elsewhere).expect("read"), "keep");
}

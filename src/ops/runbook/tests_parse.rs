//! Parsing, validation and normalisation of runbook markdown.

use super::parse::{Problem, parse};
use super::render::normalise;
use super::store::{RUNBOOK_TEMPLATE, SHIPPED};
use super::validate::check;
use super::{ToolCatalog, validate};

/// The server's tools that the shipped runbooks use, with their argument names.
pub(super) fn catalog() -> ToolCatalog {
    let t = |name: &str, args: &[&str]| {
        (
            name.to_string(),
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        )
    };
    ToolCatalog::new([
        t(
            "template_from_cloud_image",
            &[
                "image_url",
                "checksum",
                "name",
                "vmid",
                "node",
                "disk_size",
                "storage",
                "tags",
                "replace",
                "confirm",
            ],
        ),
        t(
            "template_import_disk",
            &[
                "image_url",
                "image_path",
                "checksum",
                "name",
                "vmid",
                "node",
                "disk_size",
                "storage",
                "tags",
                "replace",
                "confirm",
            ],
        ),
        t(
            "template_from_iso",
            &[
                "iso",
                "checksum",
                "name",
                "vmid",
                "node",
                "storage",
                "iso_storage",
                "disk_size",
                "cores",
                "memory",
                "start",
                "tags",
                "replace",
                "confirm",
            ],
        ),
        t("template_convert", &["vmid", "allow_outside_ranges"]),
        t("template_list", &[]),
        t("vm_get", &["vmid"]),
        t("vm_start", &["vmid", "allow_outside_ranges"]),
        t(
            "vm_shutdown",
            &[
                "vmid",
                "timeout_s",
                "force_after_timeout",
                "confirm",
                "allow_outside_ranges",
            ],
        ),
        t("storage_content", &["storage", "node", "content", "vmid"]),
    ])
}

/// A valid runbook; the line numbers of the tests below refer to it.
pub(super) const GOOD: &str = "---
name: demo
description: Demo runbook
image_type: none
requires: [api]
---

# Demo

## Parameters
- vmid: The VM
- storage: Storage (default: config.defaults.storage)

## Steps
1. Start {vmid} — `vm_start`
2. Look at the console (manual)
";

fn problems(text: &str) -> Vec<Problem> {
    validate("f.md", text, &catalog(), Some("demo"))
}

/// Exactly one problem, on `line`, whose reason contains `reason`.
fn assert_one(text: &str, line: usize, reason: &str) {
    let p = problems(text);
    assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
    assert_eq!(p[0].line, line, "{p:#?}");
    assert_eq!(p[0].file, "f.md");
    assert!(p[0].reason.contains(reason), "{p:#?}");
}

/// At least a problem on `line` whose reason contains `reason`.
fn assert_has(text: &str, line: usize, reason: &str) {
    let p = problems(text);
    assert!(
        p.iter()
            .any(|p| p.line == line && p.reason.contains(reason)),
        "no problem at line {line} with {reason:?}: {p:#?}"
    );
}

fn good_with(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replacen(from, to, 1)
}

#[test]
fn shipped_runbooks_are_valid_and_canonical() {
    for (name, text) in SHIPPED {
        let (rb, p) = check(name, text, &catalog(), Some(name));
        assert!(p.is_empty(), "{name}: {p:#?}");
        assert_eq!(normalise(&rb), text, "{name} is not in canonical form");
    }
    let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "create-cloudinit-template",
            "create-iso-template",
            "import-qcow2-template"
        ]
    );
}

#[test]
fn template_is_a_valid_canonical_example() {
    let (rb, p) = check("<content>", RUNBOOK_TEMPLATE, &catalog(), None);
    assert!(p.is_empty(), "{p:#?}");
    assert_eq!(normalise(&rb), RUNBOOK_TEMPLATE);
}

#[test]
fn shipped_cloudinit_runbook_has_the_seed_steps() {
    let (rb, _) = parse("x", SHIPPED[0].1);
    assert_eq!(rb.steps.len(), 11);
    assert!(
        rb.steps[..10]
            .iter()
            .all(|s| s.tool.as_deref() == Some("template_from_cloud_image"))
    );
    assert_eq!(rb.steps[10].tool.as_deref(), Some("template_list"));
    assert_eq!(rb.requires.len(), 2);
}

#[test]
fn good_runbook_is_valid() {
    assert_eq!(problems(GOOD), Vec::new());
}

#[test]
fn frontmatter_problems() {
    assert_has(GOOD.trim_start_matches("---\n"), 1, "missing frontmatter");
    assert_has(&good_with("---\n\n# Demo", "\n# Demo"), 1, "never closed");
    assert_one(
        &good_with("description: Demo runbook", "description: a: b: c"),
        3,
        "not valid YAML",
    );
    assert_one(
        &good_with("description: Demo runbook\n", ""),
        1,
        "required key `description`",
    );
    assert_one(&good_with("name: demo", "name: Demo_X"), 2, "not valid");
    assert_one(&good_with("name: demo", "name: ../x"), 2, "not valid");
    assert_one(
        &good_with("description: Demo runbook", "description: ''"),
        3,
        "non-empty",
    );
    assert_one(
        &good_with("image_type: none", "image_type: vmdk"),
        4,
        "image_type must be one of cloudinit, iso, qcow2, none",
    );
    assert_one(
        &good_with("requires: [api]", "requires: [api, winrm]"),
        5,
        "unknown entry",
    );
    assert_one(
        &good_with("requires: [api]", "requires: api"),
        5,
        "must be a list",
    );
    assert_one(
        &good_with("requires: [api]\n", "requires: [api]\nauthor: me\n"),
        6,
        "unknown frontmatter key `author`",
    );
}

#[test]
fn name_must_match_file_stem() {
    let p = validate("f.md", GOOD, &catalog(), Some("other"));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].line, 2);
    assert!(
        p[0].reason
            .contains("differs from the file name `other.md`")
    );
    // Content that has no file yet is not checked against a stem.
    assert!(validate("<content>", GOOD, &catalog(), None).is_empty());
}

#[test]
fn section_problems() {
    assert_one(&good_with("# Demo", "Demo"), 8, "expected a `# Title` line");
    assert_has(
        &good_with("## Parameters", "## Params"),
        8,
        "missing `## Parameters`",
    );
    assert_one(
        &good_with("## Steps", "## Procedure"),
        8,
        "missing `## Steps`",
    );
    assert_one(
        &good_with(
            "1. Start {vmid} — `vm_start`\n2. Look at the console (manual)\n",
            "",
        ),
        14,
        "has no steps",
    );
    assert_one(
        &format!("{GOOD}\n## Parameters\n- x: y\n"),
        18,
        "second `## Parameters` section",
    );
}

#[test]
fn parameter_problems() {
    let extra = |line: &str| good_with("\n\n## Steps", &format!("\n{line}\n\n## Steps"));
    assert_one(&extra("* oops"), 13, "expected a parameter line");
    assert_one(
        &extra("- Disk-Size: Size (default: 32G)"),
        13,
        "parameter name `Disk-Size` is not valid",
    );
    assert_one(
        &extra("- vmid: Again"),
        13,
        "duplicate parameter `vmid` (first declared on line 11)",
    );
    assert_one(&extra("- size: Size (default: )"), 13, "empty default");
    assert_one(&extra("- size: (default: 3)"), 13, "says nothing");
    assert_one(
        &good_with("config.defaults.storage", "config.defaults.nope"),
        12,
        "unknown config reference `config.defaults.nope`",
    );
}

#[test]
fn step_problems() {
    let last = "2. Look at the console (manual)";
    assert_one(
        &good_with(last, "3. Look at the console"),
        16,
        "step numbered 3, expected 2",
    );
    assert_one(
        &good_with(last, "2. Look at {node}"),
        16,
        "placeholder `{node}` is not a declared parameter (declared: vmid, storage)",
    );
    assert_one(
        &good_with(last, "2. Look — `vm_teleport`"),
        16,
        "unknown tool `vm_teleport`",
    );
    assert_one(&good_with(last, "Look at it"), 16, "expected a step line");
    assert_one(&good_with(last, "2. — `vm_get`"), 16, "no text");
}

#[test]
fn every_problem_is_reported_in_line_order() {
    let text = GOOD
        .replace("image_type: none", "image_type: vmdk")
        .replace("- storage:", "- vmid:")
        .replace("2. Look at the console (manual)", "5. Look at {x} — `nope`");
    let p = problems(&text);
    let shown: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert_eq!(p.len(), 5, "{shown:#?}");
    assert!(shown[0].starts_with("f.md:4: image_type"));
    assert!(shown[1].starts_with("f.md:12: duplicate parameter"));
    assert!(shown[2].starts_with("f.md:16: step numbered 5"));
    assert!(shown[3].starts_with("f.md:16: placeholder `{x}`"));
    assert!(shown[4].starts_with("f.md:16: unknown tool `nope`"));
}

#[test]
fn tool_separators_and_sections_in_any_order() {
    let text = "---\nname: demo\ndescription: d\nimage_type: iso\nrequires: []\n---\n# T\n\n## Steps\n1. A {vmid} -- `vm_start`\n2. B - `vm_get`\n3. C — `vm_shutdown`\n\n## Parameters\n- vmid: V\n";
    let (rb, p) = check("f.md", text, &catalog(), Some("demo"));
    assert!(p.is_empty(), "{p:#?}");
    let tools: Vec<_> = rb.steps.iter().map(|s| s.tool.as_deref()).collect();
    assert_eq!(
        tools,
        [Some("vm_start"), Some("vm_get"), Some("vm_shutdown")]
    );
    // Order of sections is kept; separators become em dashes.
    assert!(normalise(&rb).contains("## Steps\n1. A {vmid} — `vm_start`\n2. B — `vm_get`\n"));
    assert!(normalise(&rb).ends_with("## Parameters\n- vmid: V\n"));
}

#[test]
fn normalise_canonicalises_messy_input() {
    let messy = "---\r\nrequires: [api, api]\r\nimage_type: none\r\ndescription: 'Fix: things'   \r\nname: demo\r\n---\r\n\r\n\r\n#   Demo   \r\nIntro line.   \r\n\r\n## Parameters   \r\n\r\n-   vmid  :   The VM   \r\n* size: Size ( default : 8G )\r\n- snap: Name (optional :  kept note )\r\n\r\n\r\n## Steps\r\n1.   Start {vmid}   --   `vm_start`  \r\n\r\n## Notes\r\n\r\n```sh\r\n## not a heading\r\n```\r\n  indented stays  \r\n\r\n";
    let (rb, p) = check("<content>", messy, &catalog(), None);
    assert!(p.is_empty(), "{p:#?}");
    let expected = "---
name: demo
description: \"Fix: things\"
image_type: none
requires: [api]
---

# Demo

Intro line.

## Parameters
- vmid: The VM
- size: Size (default: 8G)
- snap: Name (optional: kept note)

## Steps
1. Start {vmid} — `vm_start`

## Notes
```sh
## not a heading
```
  indented stays
";
    let n = normalise(&rb);
    assert_eq!(n, expected);
    let (again, p) = check("<content>", &n, &catalog(), None);
    assert!(p.is_empty(), "{p:#?}");
    assert_eq!(normalise(&again), n, "normalising is idempotent");
}

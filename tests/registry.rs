//! Registry invariants of the tool catalogue: what MCP clients need to accept every tool.

use std::collections::BTreeSet;

use proxmox_manager::server::{Catalogue, TOOLSETS, ToolFilter, tool_spec, tool_specs, toolset_of};
use serde_json::Value;

#[test]
fn names_are_unique_short_and_plain() {
    let cat = Catalogue::full();
    let mut seen = BTreeSet::new();
    for t in &cat.tools {
        assert!(seen.insert(t.name.to_string()), "duplicate tool {}", t.name);
        // Claude Code exposes mcp__plugin_proxmox-manager_pve__<tool>: 33 + 31 = 64 characters.
        assert!(
            t.name.len() <= 31,
            "{} is longer than 31 characters",
            t.name
        );
        assert!(
            t.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{}",
            t.name
        );
    }
}

#[test]
fn every_tool_sets_all_four_annotations_and_a_description() {
    for t in Catalogue::full().tools {
        let a = t
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no annotations", t.name));
        assert!(a.title.is_some(), "{} has no title", t.name);
        assert!(a.read_only_hint.is_some(), "{} readOnlyHint unset", t.name);
        assert!(
            a.destructive_hint.is_some(),
            "{} destructiveHint unset",
            t.name
        );
        assert!(
            a.idempotent_hint.is_some(),
            "{} idempotentHint unset",
            t.name
        );
        assert!(
            a.open_world_hint.is_some(),
            "{} openWorldHint unset",
            t.name
        );
        if a.read_only_hint == Some(true) {
            assert_eq!(
                a.destructive_hint,
                Some(false),
                "{} is read-only yet destructive",
                t.name
            );
        }
        assert!(
            t.description
                .as_deref()
                .is_some_and(|d| d.trim().len() > 20),
            "{} lacks a description",
            t.name
        );
    }
}

#[test]
fn input_and_output_schemas_have_object_roots() {
    for t in Catalogue::full().tools {
        let input = Value::Object((*t.input_schema).clone());
        assert_eq!(
            input["type"], "object",
            "{} input root is not an object",
            t.name
        );
        for k in ["anyOf", "oneOf", "allOf", "not"] {
            assert!(input.get(k).is_none(), "{} input has top-level {k}", t.name);
        }
        let output = t
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no output schema", t.name));
        assert_eq!(
            Value::Object((**output).clone())["type"],
            "object",
            "{} output root is not an object",
            t.name
        );
    }
}

#[test]
fn every_tool_has_one_spec_in_a_known_toolset_and_every_spec_a_tool() {
    let cat = Catalogue::full();
    let names: BTreeSet<String> = cat.tools.iter().map(|t| t.name.to_string()).collect();
    let specs = tool_specs();
    let spec_names: BTreeSet<String> = specs.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, spec_names, "routes and specs differ");
    assert_eq!(specs.len(), spec_names.len(), "a tool is declared twice");
    for s in &specs {
        assert!(
            TOOLSETS.iter().any(|t| t.name == s.toolset),
            "{} names unknown toolset `{}`",
            s.name,
            s.toolset
        );
        assert!(toolset_of(s.name).is_some());
    }
    for set in TOOLSETS {
        assert!(!set.tools().is_empty(), "toolset {} has no tool", set.name);
    }
}

#[test]
fn annotations_come_from_the_specs() {
    for t in Catalogue::full().tools {
        let spec = tool_spec(&t.name).expect("spec");
        let a = t.annotations.as_ref().expect("annotations");
        assert_eq!(a.read_only_hint, Some(spec.read_only()), "{}", t.name);
        assert_eq!(
            a.destructive_hint,
            Some(spec.destructive_hint()),
            "{}",
            t.name
        );
        assert_eq!(a.idempotent_hint, Some(spec.idempotent), "{}", t.name);
        assert_eq!(a.open_world_hint, Some(spec.open_world), "{}", t.name);
        assert_eq!(a.title.as_deref(), Some(spec.title), "{}", t.name);
    }
}

#[test]
fn tool_filter_rules() {
    let f = ToolFilter {
        toolsets: vec!["vm".into()],
        read_only: false,
    };
    let spec = |n: &str| tool_spec(n).expect("spec");
    assert!(f.keeps(spec("vm_list")));
    assert!(f.keeps(spec("vm_delete")));
    assert!(!f.keeps(spec("storage_list")));
    let ro = ToolFilter {
        toolsets: vec![],
        read_only: true,
    };
    assert!(ro.keeps(spec("vm_list")));
    assert!(!ro.keeps(spec("vm_delete")), "read-only wins");
    let both = ToolFilter {
        toolsets: vec!["vm".into()],
        read_only: true,
    };
    assert!(
        !both.keeps(spec("vm_create")),
        "read-only wins over toolsets"
    );
    let bad = ToolFilter {
        toolsets: vec!["vms".into()],
        read_only: false,
    };
    let err = bad.validate().expect_err("unknown toolset");
    assert!(err.contains("vms") && err.contains("cluster"), "{err}");
}

/// A file of the repository.
fn repo_file(file: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The tool names in `text` written with the plugin prefix Claude Code uses.
fn prefixed_tools(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter_map(|w| w.strip_prefix("mcp__plugin_proxmox-manager_pve__"))
        .map(str::to_string)
        .collect()
}

/// Tool names the skill and the agent mention.
fn mentioned_tools(file: &str) -> Vec<String> {
    prefixed_tools(&repo_file(file))
}

#[test]
fn skill_and_agent_name_only_existing_tools_and_preapprove_only_read_only_ones() {
    let cat = Catalogue::full();
    for file in ["skill/proxmox-manager/SKILL.md", "agent/proxmox-manager.md"] {
        let names = mentioned_tools(file);
        assert!(!names.is_empty(), "{file} names no tool");
        for n in names {
            let tool = cat.tools.iter().find(|t| t.name == n.as_str());
            let tool = tool.unwrap_or_else(|| panic!("{file} names {n}, which is not a tool"));
            if file.starts_with("skill/") {
                let ro = tool.annotations.as_ref().and_then(|a| a.read_only_hint);
                assert_eq!(
                    ro,
                    Some(true),
                    "the skill pre-approves {n}, which is not read-only"
                );
            }
        }
    }
}

#[test]
fn every_destructive_tool_takes_confirm() {
    for t in Catalogue::full().tools {
        let destructive = t.annotations.as_ref().and_then(|a| a.destructive_hint);
        if destructive == Some(true) {
            let props = t.input_schema.get("properties").and_then(|p| p.as_object());
            let confirm = props.and_then(|p| p.get("confirm"));
            assert_eq!(
                confirm.and_then(|c| c.get("type")).and_then(|t| t.as_str()),
                Some("boolean"),
                "{} is destructive but takes no `confirm: bool`",
                t.name
            );
        }
    }
}

/// The names after `key:` in a frontmatter line of `file`, without the plugin prefix.
fn frontmatter_tools(file: &str, key: &str) -> Vec<String> {
    let text = repo_file(file);
    let line = text
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{file} has no `{key}:` in its frontmatter"));
    prefixed_tools(line)
}

#[test]
fn the_skill_preapproves_every_read_only_tool_and_explains_every_tool() {
    let cat = Catalogue::full();
    let mut read_only: Vec<String> = cat
        .tools
        .iter()
        .filter(|t| t.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true))
        .map(|t| t.name.to_string())
        .collect();
    read_only.sort();
    let mut allowed = frontmatter_tools("skill/proxmox-manager/SKILL.md", "allowed-tools");
    allowed.sort();
    assert_eq!(
        allowed, read_only,
        "allowed-tools is exactly the read-only tools"
    );

    let skill = repo_file("skill/proxmox-manager/SKILL.md");
    let body = skill
        .splitn(3, "---")
        .nth(2)
        .expect("body after frontmatter");
    for t in &cat.tools {
        assert!(
            body.contains(&format!("`{}`", t.name)),
            "the skill's body never says when to use `{}`",
            t.name
        );
    }
}

#[test]
fn the_agent_may_use_every_tool() {
    let mut tools = frontmatter_tools("agent/proxmox-manager.md", "tools");
    tools.sort();
    let mut all: Vec<String> = Catalogue::full()
        .tools
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    all.sort();
    assert_eq!(tools, all, "the agent's tools are the whole catalogue");
}

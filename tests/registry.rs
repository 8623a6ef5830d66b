//! Registry invariants of the tool catalogue (what MCP clients need to accept every tool), and
//! of the Claude Code skill and agent that route Claude to those tools.

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
fn every_argument_that_makes_a_call_destructive_is_an_argument_and_needs_confirm() {
    for t in Catalogue::full().tools {
        let spec = tool_spec(&t.name).expect("spec");
        let props = t.input_schema.get("properties").and_then(|p| p.as_object());
        for a in spec.confirm_args {
            assert!(
                props.is_some_and(|p| p.contains_key(*a)),
                "{}: confirm argument `{a}` is not an input",
                t.name
            );
        }
        if spec.destructive_hint() {
            assert!(
                props.is_some_and(|p| p.contains_key("confirm")),
                "{} can destroy but takes no `confirm`",
                t.name
            );
        }
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

/// How Claude Code names the plugin's MCP tools (and, after a `/`, its prompts).
const PREFIX: &str = "mcp__plugin_proxmox-manager_pve__";
const SKILL_DIR: &str = "skill/proxmox-manager";
const AGENT: &str = "agent/proxmox-manager.md";
/// The server's prompts (tests/mcp_runbooks.rs checks the server serves exactly these). In
/// Claude Code only the user can run them, as slash commands.
const PROMPTS: &[&str] = &[
    "create_template",
    "evacuate_node",
    "ingest_runbook",
    "spin_up_cluster",
];
/// The Claude Code tools the agent has besides the MCP tools: reading files and web pages (a
/// runbook's source, the skill's reference files) and the MCP resources (`runbook://`,
/// `config://`).
const AGENT_EXTRA_TOOLS: &[&str] = &[
    "ListMcpResourcesTool",
    "ReadMcpResourceTool",
    "Read",
    "WebFetch",
];

/// The skill's files (SKILL.md and its reference files), as repository paths, sorted.
fn skill_files() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SKILL_DIR);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .map(|f| format!("{SKILL_DIR}/{f}"))
        .collect();
    files.sort();
    files
}

/// A name written with the plugin prefix: a tool, or a prompt's slash command (`/` before it).
struct Mention {
    name: String,
    slash: bool,
}

/// Every prefixed name in `text`.
fn prefixed(text: &str) -> Vec<Mention> {
    text.match_indices(PREFIX)
        .map(|(at, _)| {
            let rest = &text[at + PREFIX.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            Mention {
                name: rest[..end].to_string(),
                slash: text[..at].ends_with('/'),
            }
        })
        .collect()
}

/// The words in backticks that look like a tool of one of the toolsets (`vm_…`, `task_…`).
fn backticked_tool_like(text: &str) -> Vec<String> {
    let domains = [
        "cluster", "node", "task", "vm", "template", "storage", "runbook", "access", "rbac",
    ];
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && domains.iter().any(|d| w.starts_with(&format!("{d}_")))
        })
        .map(str::to_string)
        .collect()
}

fn frontmatter(text: &str) -> &str {
    text.strip_prefix("---\n")
        .and_then(|t| t.split_once("\n---\n"))
        .map(|(f, _)| f)
        .expect("a file starting with --- frontmatter ---")
}

fn body(text: &str) -> &str {
    text.strip_prefix("---\n")
        .and_then(|t| t.split_once("\n---\n"))
        .map_or(text, |(_, b)| b)
}

/// The value of `key:` in the frontmatter of `text`.
fn frontmatter_value<'a>(text: &'a str, key: &str) -> &'a str {
    frontmatter(text)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no `{key}:` in the frontmatter"))
        .trim()
}

fn read_only_tools() -> Vec<String> {
    let mut v: Vec<String> = Catalogue::full()
        .tools
        .iter()
        .filter(|t| t.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true))
        .map(|t| t.name.to_string())
        .collect();
    v.sort();
    v
}

fn all_tools() -> Vec<String> {
    let mut v: Vec<String> = Catalogue::full()
        .tools
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn skill_and_agent_name_only_existing_tools_and_prompts_only_as_slash_commands() {
    let tools = all_tools();
    let mut files = skill_files();
    files.push(AGENT.to_string());
    for file in &files {
        let text = repo_file(file);
        for m in prefixed(&text) {
            if m.slash {
                assert!(
                    PROMPTS.contains(&m.name.as_str()),
                    "{file}: /{PREFIX}{} is not a prompt of the server",
                    m.name
                );
            } else {
                assert!(
                    tools.contains(&m.name),
                    "{file} names {PREFIX}{}, which is not a tool",
                    m.name
                );
            }
        }
        for w in backticked_tool_like(&text) {
            assert!(
                tools.contains(&w),
                "{file} names `{w}`, which is not a tool"
            );
        }
        // The model cannot invoke a prompt: a prompt is named only as the slash command the
        // user types, never as something for the model to use.
        for p in PROMPTS {
            let slash = format!("/{PREFIX}{p}");
            assert!(
                !text.replace(&slash, "").contains(p),
                "{file} names the prompt {p} other than as the user's slash command {slash}"
            );
        }
    }
    // The slash commands the skill offers exist, one per prompt.
    let skill = repo_file(&format!("{SKILL_DIR}/SKILL.md"));
    for p in PROMPTS {
        assert!(
            skill.contains(&format!("`/{PREFIX}{p}")),
            "SKILL.md does not tell the user about /{PREFIX}{p}"
        );
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

#[test]
fn the_skill_preapproves_exactly_the_read_only_tools_and_its_files_explain_every_tool() {
    let skill = repo_file(&format!("{SKILL_DIR}/SKILL.md"));
    let allowed = frontmatter_value(&skill, "allowed-tools");
    let mut names: Vec<String> = allowed
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.strip_prefix(PREFIX)
                .unwrap_or_else(|| panic!("allowed-tools has {w}, not a tool of the plugin"))
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        read_only_tools(),
        "allowed-tools is exactly the read-only tools"
    );

    let bodies: String = skill_files()
        .iter()
        .map(|f| body(&repo_file(f)).to_string())
        .collect();
    for t in all_tools() {
        assert!(
            bodies.contains(&format!("`{t}`")),
            "no file of the skill says when to use `{t}`"
        );
    }
}

#[test]
fn the_skill_routes_to_its_reference_files_and_advertises_only_what_works_today() {
    let skill = repo_file(&format!("{SKILL_DIR}/SKILL.md"));
    for file in skill_files() {
        let name = file.rsplit('/').next().expect("file name");
        assert!(
            name.ends_with(".md"),
            "{file}: the skill holds markdown only"
        );
        if name != "SKILL.md" {
            assert!(
                skill.contains(&format!("]({name})")),
                "SKILL.md does not link its reference file {name}"
            );
        }
    }
    for text in skill_files().iter().map(|f| repo_file(f)) {
        for (at, _) in text.match_indices("](") {
            let target = &text[at + 2..];
            let target = &target[..target.find(')').expect("closing )")];
            if !target.contains("://") {
                assert!(
                    skill_files().contains(&format!("{SKILL_DIR}/{target}")),
                    "a link to {target}, which is not a file of the skill"
                );
            }
        }
    }
    // The description decides when the skill loads: it names what this version does, cluster
    // profiles (spin up, tear down, Talos, Flux) and Ansible delegation included.
    let description = frontmatter_value(&skill, "description").to_lowercase();
    for area in ["profile", "ansible", "snapshot", "migrat", "container"] {
        assert!(
            description.contains(area),
            "the skill's description does not name `{area}`, so the skill would not load for it"
        );
    }
    assert!(
        skill.len() < 6_000,
        "SKILL.md stays a short router ({} bytes): details go into its reference files",
        skill.len()
    );
}

#[test]
fn the_agent_may_use_every_tool_and_the_mcp_resources_and_follows_the_skills_safety_rules() {
    let agent = repo_file(AGENT);
    let listed: Vec<&str> = frontmatter_value(&agent, "tools")
        .split(',')
        .map(str::trim)
        .collect();
    let mut mcp: Vec<String> = listed
        .iter()
        .filter_map(|t| t.strip_prefix(PREFIX))
        .map(str::to_string)
        .collect();
    mcp.sort();
    assert_eq!(
        mcp,
        all_tools(),
        "the agent's MCP tools are the whole catalogue"
    );
    let mut other: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|t| !t.starts_with(PREFIX))
        .collect();
    other.sort_unstable();
    let mut want = AGENT_EXTRA_TOOLS.to_vec();
    want.sort_unstable();
    assert_eq!(
        other, want,
        "besides the MCP tools the agent has exactly these Claude Code tools"
    );

    // The safety rules are kept in one place, the skill's safety.md, which the agent reads.
    let safety = format!("${{CLAUDE_PLUGIN_ROOT}}/{SKILL_DIR}/safety.md");
    assert!(agent.contains(&safety), "the agent points at {safety}");
    assert!(skill_files().contains(&format!("{SKILL_DIR}/safety.md")));
    for (file, text) in skill_files()
        .into_iter()
        .filter(|f| !f.ends_with("/safety.md"))
        .chain([AGENT.to_string()])
        .map(|f| {
            let t = repo_file(&f);
            (f, t)
        })
    {
        for rule in ["allow_outside_ranges", "pass show", "passphrase"] {
            assert!(
                !text.contains(rule),
                "{file} restates a safety rule (`{rule}`): it belongs in safety.md only"
            );
        }
    }
}

/// The README's shell block that installs the skill and the agent for a server added by hand.
fn readme_by_hand_recipe() -> String {
    let readme = repo_file("README.md");
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(code, _)| code))
        .find(|code| code.contains("sed -i") && code.contains(PREFIX))
        .expect("the README shows the sed recipe for a server added by hand")
        .to_string()
}

#[test]
fn the_readme_recipe_renames_the_skill_and_agent_for_a_server_added_by_hand_as_pve() {
    let home = tempfile::tempdir().expect("home");
    let out = std::process::Command::new("sh")
        .arg("-ec")
        .arg(readme_by_hand_recipe())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOME", home.path())
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "the README recipe fails: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let skill_dir = home.path().join(".claude/skills/proxmox-manager");
    let agent_file = home.path().join(".claude/agents/proxmox-manager.md");
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&skill_dir)
        .expect("skill copied")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), skill_files().len(), "every skill file copied");
    files.push(agent_file.clone());
    for f in &files {
        let text = read(f);
        for plugin_only in [
            PREFIX,
            "plugin:proxmox-manager:pve",
            "${CLAUDE_PLUGIN_ROOT}",
        ] {
            assert!(
                !text.contains(plugin_only),
                "{} still says {plugin_only}",
                f.display()
            );
        }
    }

    let by_hand = "mcp__pve__";
    let skill = read(&skill_dir.join("SKILL.md"));
    let mut allowed: Vec<String> = frontmatter_value(&skill, "allowed-tools")
        .split([' ', ','])
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.strip_prefix(by_hand)
                .unwrap_or_else(|| panic!("allowed-tools has {w}"))
                .to_string()
        })
        .collect();
    allowed.sort();
    assert_eq!(allowed, read_only_tools());
    for p in PROMPTS {
        assert!(skill.contains(&format!("`/{by_hand}{p}")), "/{by_hand}{p}");
    }

    let agent = read(&agent_file);
    let mut tools: Vec<String> = frontmatter_value(&agent, "tools")
        .split(',')
        .filter_map(|t| t.trim().strip_prefix(by_hand))
        .map(str::to_string)
        .collect();
    tools.sort();
    assert_eq!(tools, all_tools());
    let safety = skill_dir.join("safety.md");
    assert!(
        agent.contains(&safety.display().to_string()) && safety.is_file(),
        "the agent points at the copied {}",
        safety.display()
    );
}

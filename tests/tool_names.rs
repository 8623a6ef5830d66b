//! Every tool name a message mentions is a real tool: the string literals of `src/` (outside the
//! simulator, whose texts are PVE's) are scanned for snake_case words with a tool-like prefix,
//! and each must be in the registry or in the explicit allow-list of non-tool identifiers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const PREFIXES: &[&str] = &[
    "vm_",
    "template_",
    "cluster_",
    "node_",
    "storage_",
    "task_",
    "runbook_",
    "access_",
    "rbac_",
    "backup_",
    "snapshot_",
    "profile_",
    "ansible_",
    "bulk_",
    "disk_",
    "iso_",
    "get_",
];

/// Words with a tool-like prefix that are not tool names (config keys, argument and field
/// names, prompt names, module paths), each deliberately listed.
const NOT_TOOLS: &[&str] = &[
    // argument names
    "disk_size",
    "iso_storage",
    // the config key of a disk (`scsi0`) in vm_resize messages
    "disk_key",
    // a deliberately unknown tool in the runbook validator's tests
    "vm_teleport",
    // a cluster profile's key (`network.node_cidr`)
    "node_cidr",
    "template_copies",
    // Ansible's host variable (ansible.host_vars defaults)
    "ansible_host",
    // the config key ansible.ansible_playbook
    "ansible_playbook",
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "sim") {
                continue;
            }
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The contents of the string literals in Rust source (comments skipped, raw strings read).
fn string_literals(src: &str) -> Vec<String> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            'r' if (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
                && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    i += 1;
                    continue;
                }
                j += 1;
                let start = j;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (0..hashes).all(|k| c.get(j + 1 + k) == Some(&'#')) {
                        break;
                    }
                    j += 1;
                }
                out.push(c[start..j.min(c.len())].iter().collect());
                i = j + 1 + hashes;
            }
            '"' => {
                let mut j = i + 1;
                let mut s = String::new();
                while j < c.len() && c[j] != '"' {
                    if c[j] == '\\' {
                        j += 1;
                    }
                    if let Some(ch) = c.get(j) {
                        s.push(*ch);
                    }
                    j += 1;
                }
                out.push(s);
                i = j + 1;
            }
            '\'' => {
                // A char literal ('x', '\n', '"'), or a lifetime.
                if c.get(i + 1) == Some(&'\\') {
                    let mut j = i + 2;
                    while j < c.len() && c[j] != '\'' {
                        j += 1;
                    }
                    i = j + 1;
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Snake_case words with a tool-like prefix, `{placeholders}` of format strings removed.
fn tool_like_words(text: &str) -> Vec<String> {
    let mut cleaned = String::new();
    let mut depth = 0;
    for ch in text.chars() {
        match ch {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            _ if depth == 0 => cleaned.push(ch),
            _ => {}
        }
    }
    cleaned
        .split(|ch: char| !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'))
        .filter(|w| {
            PREFIXES
                .iter()
                .any(|p| w.starts_with(p) && w.len() > p.len() && !w.ends_with('_'))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_tool_name_in_a_message_is_a_registered_tool() {
    let tools: BTreeSet<String> = proxmox_manager::server::ProxmoxServer::all_tools()
        .list_all()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let mut files = Vec::new();
    rs_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    let mut unknown = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        for lit in string_literals(&text) {
            for w in tool_like_words(&lit) {
                if !tools.contains(&w) && !NOT_TOOLS.contains(&w.as_str()) {
                    unknown.insert(format!("{w}  ({})", f.display()));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "string literals name tools that do not exist (fix the message, or add a real non-tool identifier to NOT_TOOLS):\n{}",
        unknown.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_scanner_finds_names_in_strings_and_skips_comments() {
    let src = r##"
        // "vm_bogus" in a comment
        let a = "use vm_list or {vm_name}";
        let b = r#"call template_fake"#;
        let c = '"'; let d = "get_next_id";
    "##;
    let words: Vec<String> = string_literals(src)
        .iter()
        .flat_map(|s| tool_like_words(s))
        .collect();
    assert_eq!(words, ["vm_list", "template_fake", "get_next_id"]);
}

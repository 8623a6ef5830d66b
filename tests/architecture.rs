//! The module rules of the design, checked on the source. Every path a file names — `crate::…`
//! anywhere, `super::…` resolved against the file's own module, `use` groups — is turned into
//! the absolute module it reaches, then held against the rules:
//!
//! - `server -> ops -> {pve, ssh, config}`; `pve`, `ssh` and `config` use nothing of ours;
//! - `sim` uses nothing of ours (it is an independent implementation of PVE);
//! - `pve` knows nothing of MCP, SSH or YAML;
//! - the planners (`ops::plan`) do no I/O: no client, no SSH, no runtime, no files;
//! - `main.rs` parses arguments and hands over to the binary's `commands`: no logic of its own.

use std::path::{Path, PathBuf};

const MODULES: [&str; 6] = ["config", "ops", "pve", "server", "sim", "ssh"];

fn allowed(module: &str) -> &'static [&'static str] {
    match module {
        "server" => &["ops", "config", "pve"],
        "ops" => &["pve", "ssh", "config"],
        _ => &[],
    }
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file: `src/ops/vm/create.rs` -> `["ops", "vm", "create"]`,
/// `src/ops/vm/mod.rs` -> `["ops", "vm"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

/// Code of a line without its `//` comment (good enough: our strings rarely hold `//`
/// followed by a path).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Absolute module paths (first two segments) the text reaches through `crate::` or
/// `super::`, from a file whose module path is `here`. A `#[cfg(test)] mod tests` block
/// inside a file is one level deeper: its `super::` is the file itself, which never leaves
/// the file's module, so it is resolved the same way.
fn referenced(text: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = code(line);
        // `crate::a::b`
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                for part in group.split([',', '}']) {
                    let name = ident(part.trim());
                    if !name.is_empty() {
                        found.push(vec![name]);
                    }
                }
                continue;
            }
            let a = ident(rest);
            let after = &rest[a.len()..];
            let b = after.strip_prefix("::").map(ident).unwrap_or_default();
            found.push([a, b].into_iter().filter(|s| !s.is_empty()).collect());
        }
        // `super::super::x` (a `use super::*` stays inside the module).
        let mut rest = code;
        while let Some(i) = rest.find("super::") {
            let start = &rest[i..];
            let mut ups = 0;
            let mut tail = start;
            while let Some(t) = tail.strip_prefix("super::") {
                ups += 1;
                tail = t;
            }
            rest = tail;
            let name = ident(tail);
            if name.is_empty() || ups > here.len() {
                continue;
            }
            let mut path: Vec<String> = here[..here.len() - ups].to_vec();
            path.push(name);
            found.push(path);
        }
    }
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn files_of(module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rs_files(&src().join(module), &mut files);
    files
}

#[test]
fn modules_respect_the_dependency_rule() {
    let src = src();
    let mut violations = Vec::new();
    for module in MODULES {
        for f in files_of(module) {
            let text = std::fs::read_to_string(&f).expect("read source");
            let here = module_of(&src, &f);
            for r in referenced(&text, &here) {
                let Some(top) = r.first() else { continue };
                if MODULES.contains(&top.as_str())
                    && top != module
                    && !allowed(module).contains(&top.as_str())
                {
                    violations.push(format!("{} uses {}", f.display(), r.join("::")));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependency rule broken:\n{}",
        violations.join("\n")
    );
}

/// External crates a module must not name.
#[test]
fn the_wire_layer_knows_nothing_of_mcp_ssh_or_yaml_and_the_planners_do_no_io() {
    let mut violations = Vec::new();
    let rules: [(&str, &[&str]); 2] = [
        (
            "pve",
            &[
                "rmcp::",
                "russh",
                "yaml_serde::",
                "crate::ssh",
                "crate::config",
            ],
        ),
        (
            "ops/plan",
            &[
                "crate::pve",
                "crate::ssh",
                "tokio::",
                "reqwest::",
                "std::fs",
                "std::process",
                "std::net",
                "async fn",
                ".await",
                "Context",
            ],
        ),
    ];
    for (module, banned) in rules {
        // Test files may build inputs from wire types; the rule is about the planners.
        let is_test = |f: &Path| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == "tests.rs" || n.ends_with("tests.rs"))
        };
        for f in files_of(module).into_iter().filter(|f| !is_test(f)) {
            let text = std::fs::read_to_string(&f).expect("read");
            for (n, line) in text.lines().enumerate() {
                for b in banned {
                    if code(line).contains(b) {
                        violations.push(format!("{}:{}: {b}", f.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// `main.rs` parses arguments and hands over to `commands`: it holds no PVE calls, no SSH, no
/// operation logic, and stays small.
#[test]
fn main_is_thin() {
    let text = std::fs::read_to_string(src().join("main.rs")).expect("main.rs");
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines <= 300, "main.rs has {lines} non-blank lines");
    for banned in [
        "ctx.client.",
        "reqwest::",
        "russh",
        ".get_qemu",
        "Command::new(",
    ] {
        assert!(
            !text.lines().any(|l| code(l).contains(banned)),
            "main.rs does `{banned}` itself"
        );
    }
}

#[test]
fn the_checker_sees_a_violation() {
    let here: Vec<String> = vec!["ops".into(), "vm".into(), "create".into()];
    assert_eq!(
        referenced("use crate::pve::Client; // crate::sim in a comment", &here),
        vec![vec!["pve".to_string(), "Client".to_string()]]
    );
    assert!(
        referenced("use crate::{ops, sim::SimHandle};", &here).contains(&vec!["sim".to_string()])
    );
    // `super::super::super::server` from ops/vm/create is `server`.
    assert_eq!(
        referenced("use super::super::super::server::x;", &here),
        vec![vec!["server".to_string()]]
    );
    assert_eq!(
        referenced("use super::power::Run;", &here),
        vec![vec![
            "ops".to_string(),
            "vm".to_string(),
            "power".to_string()
        ]]
    );
    assert!(referenced("use super::*;", &here).is_empty());
}

/// Cargo builds one integration binary, `tests/suite.rs` (`autotests = false`): a test file that
/// is not one of its modules would silently never run.
#[test]
fn every_test_file_is_in_the_suite() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let suite = std::fs::read_to_string(tests.join("suite.rs")).expect("tests/suite.rs");
    let declared: Vec<&str> = suite
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&tests).expect("tests/").flatten() {
        let path = entry.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|x| x == "rs")
            && stem != "suite"
            && !declared.contains(&stem)
        {
            missing.push(stem.to_string());
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "tests/{{{}}}.rs are not modules of tests/suite.rs: add `mod NAME;` there, or they never run",
        missing.join(",")
    );
}

/// Every `#[tool]` names its schemas from `server::schema`: left to the macro, rmcp generates
/// them through caches that keep two more copies of each for the life of the thread.
#[test]
fn every_tool_takes_its_schemas_from_server_schema() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut tools = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source");
        for (at, _) in text.match_indices("#[tool(") {
            tools += 1;
            let attr = &text[at..at + text[at..].find(")]").expect("attribute end")];
            assert!(
                attr.contains("input_schema = crate::server::schema::input::<")
                    && attr.contains("output_schema = crate::server::schema::output::<"),
                "{}: a #[tool] without input_schema/output_schema from server::schema: {attr}",
                f.display()
            );
        }
    }
    assert!(
        tools >= 50,
        "only {tools} #[tool] attributes found under src/server"
    );
}

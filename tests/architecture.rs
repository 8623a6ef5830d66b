//! The dependency rule of the design, checked on the source: `server -> ops -> {pve, ssh,
//! config}`; `sim` depends on nothing of ours; `pve` and `config` on nothing of ours.

use std::path::Path;

const MODULES: [&str; 6] = ["config", "ops", "pve", "server", "sim", "ssh"];

fn allowed(module: &str) -> &'static [&'static str] {
    match module {
        "server" => &["ops", "config", "pve"],
        "ops" => &["pve", "ssh", "config"],
        _ => &[],
    }
}

fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
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

/// Modules of ours a source text refers to through `crate::x` (in `use` lines or paths).
fn referenced(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
        // `use crate::{a, b}` form.
        if let Some(i) = code.find("crate::{") {
            for part in code[i + 8..].split([',', '}', ' ']) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        }
    }
    found
}

#[test]
fn modules_respect_the_dependency_rule() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for module in MODULES {
        let mut files = Vec::new();
        rs_files(&src.join(module), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read source");
            for r in referenced(&text) {
                if MODULES.contains(&r.as_str())
                    && r != module
                    && !allowed(module).contains(&r.as_str())
                {
                    violations.push(format!("{} uses crate::{r}", f.display()));
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

#[test]
fn the_checker_sees_a_violation() {
    assert_eq!(
        referenced("use crate::pve::Client; // crate::sim in a comment"),
        vec!["pve"]
    );
    assert!(referenced("use crate::{ops, sim::SimHandle};").contains(&"sim".to_string()));
}

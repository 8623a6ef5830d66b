//! The YAML frontmatter of a runbook: every key checked, problems at the key's line.

use super::parse::{Collector, Runbook, valid_name};
use super::{ImageType, Requirement};

/// Reads the frontmatter; returns the index of the first body line.
pub(super) fn read(lines: &[&str], rb: &mut Runbook, c: &mut Collector<'_>) -> usize {
    if lines.first().map(|l| l.trim_end()) != Some("---") {
        c.add(
            1,
            "missing frontmatter: the file must start with a `---` line, the YAML keys name, description, image_type, requires, and a closing `---`",
        );
        return 0;
    }
    let Some(close) = lines.iter().skip(1).position(|l| l.trim_end() == "---") else {
        c.add(1, "frontmatter is never closed by a `---` line");
        return lines.len();
    };
    let close = close + 1;
    // A leading empty line makes YAML's line numbers (also in its messages) the file's.
    let yaml = format!("\n{}", lines[1..close].join("\n"));
    // Line of a top-level key, for problems about it (the opening `---` when not found).
    let key_line = |key: &str| {
        lines[1..close]
            .iter()
            .position(|l| {
                l.strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
            })
            .map_or(1, |i| i + 2)
    };
    let map = match yaml_serde::from_str::<yaml_serde::Value>(&yaml) {
        Ok(yaml_serde::Value::Mapping(m)) => m,
        Ok(yaml_serde::Value::Null) => yaml_serde::Mapping::new(),
        Ok(_) => {
            c.add(2, "frontmatter must be YAML `key: value` lines");
            return close + 1;
        }
        Err(e) => {
            let line = e.location().map_or(1, |l| l.line());
            c.add(line, format!("frontmatter is not valid YAML: {e}"));
            return close + 1;
        }
    };
    let mut seen = Vec::new();
    for (k, v) in &map {
        let Some(key) = k.as_str() else {
            c.add(1, "frontmatter keys must be strings");
            continue;
        };
        let line = key_line(key);
        seen.push(key.to_string());
        match key {
            "name" => {
                rb.name_line = line;
                match v.as_str() {
                    Some(n) if valid_name(n) => rb.name = n.to_string(),
                    Some(n) => c.add(
                        line,
                        format!(
                            "name `{n}` is not valid: use lowercase letters, digits and `-`, starting with a letter or digit, at most 64 characters"
                        ),
                    ),
                    None => c.add(line, "name must be a string"),
                }
            }
            "description" => match v.as_str().map(str::trim) {
                Some(d) if !d.is_empty() => rb.description = d.to_string(),
                _ => c.add(line, "description must be a non-empty string"),
            },
            "image_type" => match v.as_str().and_then(ImageType::parse) {
                Some(t) => rb.image_type = Some(t),
                None => c.add(
                    line,
                    format!(
                        "image_type must be one of {}",
                        ImageType::ALL.map(ImageType::as_str).join(", ")
                    ),
                ),
            },
            "requires" => match v.as_sequence() {
                Some(seq) => {
                    for item in seq {
                        match item.as_str().and_then(Requirement::parse) {
                            Some(r) if !rb.requires.contains(&r) => rb.requires.push(r),
                            Some(_) => {}
                            None => c.add(
                                line,
                                format!("requires: unknown entry {item:?}; allowed: ssh, api"),
                            ),
                        }
                    }
                }
                None => c.add(line, "requires must be a list, e.g. [ssh, api] or []"),
            },
            other => c.add(
                line,
                format!(
                    "unknown frontmatter key `{other}`; allowed: name, description, image_type, requires"
                ),
            ),
        }
    }
    for key in ["name", "description", "image_type", "requires"] {
        if !seen.iter().any(|s| s == key) {
            c.add(1, format!("frontmatter lacks the required key `{key}`"));
        }
    }
    close + 1
}

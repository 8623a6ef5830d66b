//! Checks across sections and against the outside world: placeholders, tools, file name.

use super::ToolCatalog;
use super::parse::{Problem, Runbook, parse, placeholders};

/// Parses and validates runbook `text`, returning the runbook and ALL problems (empty = valid).
///
/// `file` names the source in problems (`<content>` for text that has no file yet); `stem` is
/// the file name without `.md` for files loaded from disk, and the frontmatter `name` must equal
/// it. Every tool a step names must be in `catalog`.
pub(crate) fn check(
    file: &str,
    text: &str,
    catalog: &ToolCatalog,
    stem: Option<&str>,
) -> (Runbook, Vec<Problem>) {
    let (rb, mut problems) = parse(file, text);
    let mut add = |line: usize, reason: String| {
        problems.push(Problem {
            file: file.to_string(),
            line,
            reason,
        });
    };
    if let Some(stem) = stem
        && !rb.name.is_empty()
        && rb.name != stem
    {
        add(
            rb.name_line,
            format!(
                "name `{}` differs from the file name `{stem}.md`: rename the file to `{}.md` or change the name",
                rb.name, rb.name
            ),
        );
    }
    for step in &rb.steps {
        let in_args = step
            .args
            .iter()
            .flatten()
            .flat_map(|(_, v)| placeholders(v).map(|(_, ph)| ph));
        for ph in placeholders(&step.text).map(|(_, ph)| ph).chain(in_args) {
            if rb.parameter(ph).is_none() {
                let declared: Vec<&str> = rb.parameters.iter().map(|p| p.name.as_str()).collect();
                add(
                    step.line,
                    format!(
                        "placeholder `{{{ph}}}` is not a declared parameter (declared: {})",
                        if declared.is_empty() {
                            "none".to_string()
                        } else {
                            declared.join(", ")
                        }
                    ),
                );
            }
        }
        if let Some(tool) = &step.tool
            && !catalog.has(tool)
        {
            add(
                step.line,
                format!(
                    "unknown tool `{tool}`; a step names one of this server's tools, or none for a manual step"
                ),
            );
        }
        if let (Some(tool), Some(args)) = (&step.tool, &step.args)
            && let Some(accepted) = catalog.arguments(tool)
        {
            for (k, _) in args.iter().filter(|(k, _)| !accepted.contains(k)) {
                let known: Vec<&str> = accepted.iter().map(String::as_str).collect();
                add(
                    step.line,
                    format!(
                        "`{tool}` has no argument `{k}` (it takes: {})",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    problems.sort_by_key(|p| p.line);
    (rb, problems)
}

/// Validates runbook `text`: every problem, each with file, 1-based line and reason; empty when
/// the runbook is valid.
///
/// `file` names the source in problems (use `<content>` for text that has no file yet); `stem`
/// is the file name without `.md` for a file loaded from disk (its frontmatter `name` must equal
/// it), `None` otherwise. Every tool a step names must be in `catalog`.
pub fn validate(file: &str, text: &str, catalog: &ToolCatalog, stem: Option<&str>) -> Vec<Problem> {
    check(file, text, catalog, stem).1
}

//! Runbook markdown → [`Runbook`], collecting every syntax problem with its line.
//!
//! Parsing never stops at the first problem: it records each one and goes on, so that a writer
//! (often the model) can fix them all in one round. Checks across sections (placeholders) and
//! against the outside world (the tool catalogue, the file name) are in `validate`.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::{ImageType, Requirement};

/// One thing wrong with a runbook, at a 1-based line of a file (`<content>` for text that has
/// no file yet). `Display` is `FILE:LINE: REASON`, the way compilers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file path, or `<content>`.
    pub file: String,
    /// 1-based line the problem is on.
    pub line: usize,
    /// What is wrong and, where it helps, what is allowed.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// The `config.<path>` references a parameter default may use.
pub(crate) const CONFIG_REFS: [&str; 11] = [
    "defaults.storage",
    "defaults.network_bridge",
    "defaults.bios",
    "defaults.machine",
    "defaults.cpu",
    "defaults.scsi_controller",
    "vmid_ranges.templates",
    "vmid_ranges.vms",
    "cloudinit.default_user",
    "cloudinit.vendor_snippet_path",
    "credentials.ssh_user",
];

/// A parameter's default: a literal or a value of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DefaultValue {
    Literal(String),
    /// One of [`CONFIG_REFS`], without the `config.` prefix.
    Config(String),
}

/// Whether a parameter must be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParamKind {
    Required,
    /// `(optional)` or `(optional: NOTE)`.
    Optional(Option<String>),
    Default(DefaultValue),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parameter {
    pub name: String,
    pub meaning: String,
    pub kind: ParamKind,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub number: usize,
    pub text: String,
    pub tool: Option<String>,
    /// Explicit arguments (`` `tool(arg=value, other={param})` ``): only these go into the
    /// step's call. `None`: every parameter the tool accepts does.
    pub args: Option<Vec<(String, String)>>,
    pub line: usize,
}

/// The `##` sections in file order; `Parameters` and `Steps` hold their content in [`Runbook`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Section {
    Parameters,
    Steps,
    Other { heading: String, lines: Vec<String> },
}

/// A parsed runbook. Fields a broken file lacks stay empty; it is usable only when parsing
/// reported no problem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Runbook {
    pub name: String,
    /// Line of the `name:` key (for the file-stem check).
    pub name_line: usize,
    pub description: String,
    pub image_type: Option<ImageType>,
    pub requires: Vec<Requirement>,
    pub title: String,
    /// Text between the title and the first `##` section, verbatim.
    pub intro: Vec<String>,
    pub sections: Vec<Section>,
    pub parameters: Vec<Parameter>,
    pub steps: Vec<Step>,
}

impl Runbook {
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

static NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9-]{0,63}$").expect("valid regex"));
static PARAM_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9_]*$").expect("valid regex"));
static PARAM_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-*]\s+([^:\s]+)\s*:\s*(.*)$").expect("valid regex"));
static SUFFIX_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.*?)\s*\(\s*(default|optional)(?:\s*:\s*(.*?))?\s*\)$").expect("valid regex")
});
static STEP_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d+)\.\s+(.*)$").expect("valid regex"));
static TOOL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:(.*?)\s+)?(?:—|--|-)\s+`([^`]+)`$").expect("valid regex"));
static CALL_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-z][a-z0-9_]*)\((.*)\)$").expect("valid regex"));
static ARG_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-z][a-z0-9_]*)=(.+)$").expect("valid regex"));
static PLACEHOLDER_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{([A-Za-z0-9_-]+)\}").expect("valid regex"));

/// Whether `name` is a valid runbook name (also what makes it safe as a file name).
pub(crate) fn valid_name(name: &str) -> bool {
    NAME_RE.is_match(name)
}

/// The `{name}` placeholders of a step text, with their byte ranges.
pub(crate) fn placeholders(text: &str) -> impl Iterator<Item = (std::ops::Range<usize>, &str)> {
    PLACEHOLDER_RE.captures_iter(text).filter_map(|c| {
        let whole = c.get(0)?;
        Some((whole.range(), c.get(1)?.as_str()))
    })
}

/// Gathers the problems of one file.
pub(super) struct Collector<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Collector<'_> {
    pub(super) fn add(&mut self, line: usize, reason: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            line,
            reason: reason.into(),
        });
    }
}

/// Parses `text` (from `file`), returning what could be read and every syntax problem.
pub(crate) fn parse(file: &str, text: &str) -> (Runbook, Vec<Problem>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut c = Collector {
        file,
        problems: Vec::new(),
    };
    let mut rb = Runbook::default();
    let body_start = super::frontmatter::read(&lines, &mut rb, &mut c);
    body(&lines, body_start, &mut rb, &mut c);
    (rb, c.problems)
}

/// A `##` section as read: heading, its line, and its `(line, text)` lines.
type RawSection = (String, usize, Vec<(usize, String)>);

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// Reads title, intro and sections from `lines[start..]`.
fn body(lines: &[&str], start: usize, rb: &mut Runbook, c: &mut Collector<'_>) {
    let mut i = start;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    let title_line = i + 1;
    match lines.get(i).and_then(|l| l.trim().strip_prefix("# ")) {
        Some(t) if !t.trim().is_empty() => {
            rb.title = t.trim().to_string();
            i += 1;
        }
        _ => c.add(
            title_line.min(lines.len().max(1)),
            "expected a `# Title` line after the frontmatter",
        ),
    }
    let mut in_fence = false;
    let mut current: Option<RawSection> = None;
    let mut intro = Vec::new();
    for (idx, raw) in lines.iter().enumerate().skip(i) {
        let line = raw.trim_end();
        if is_fence(line) {
            in_fence = !in_fence;
        }
        let heading = if in_fence || is_fence(line) {
            None
        } else {
            line.strip_prefix("## ").map(str::trim)
        };
        if let Some(h) = heading {
            if let Some(sec) = current.take() {
                finish_section(sec, rb, c);
            }
            current = Some((h.to_string(), idx + 1, Vec::new()));
        } else if let Some((_, _, body)) = current.as_mut() {
            body.push((idx + 1, line.to_string()));
        } else {
            intro.push(line.to_string());
        }
    }
    if let Some(sec) = current.take() {
        finish_section(sec, rb, c);
    }
    rb.intro = trim_blank(intro);
    let at = title_line.min(lines.len().max(1));
    if !rb.sections.contains(&Section::Parameters) {
        c.add(
            at,
            "missing `## Parameters` section (it may be empty when the runbook takes none)",
        );
    }
    if !rb.sections.contains(&Section::Steps) {
        c.add(at, "missing `## Steps` section");
    }
}

fn trim_blank(mut lines: Vec<String>) -> Vec<String> {
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let first = lines.iter().position(|l| !l.trim().is_empty());
    lines.drain(..first.unwrap_or(lines.len()));
    lines
}

fn finish_section((heading, line, body): RawSection, rb: &mut Runbook, c: &mut Collector<'_>) {
    let kind = if heading.eq_ignore_ascii_case("parameters") {
        Section::Parameters
    } else if heading.eq_ignore_ascii_case("steps") {
        Section::Steps
    } else {
        let lines = trim_blank(body.into_iter().map(|(_, l)| l).collect());
        rb.sections.push(Section::Other { heading, lines });
        return;
    };
    if rb.sections.contains(&kind) {
        c.add(line, format!("second `## {heading}` section"));
        return;
    }
    let content = body.into_iter().filter(|(_, l)| !l.trim().is_empty());
    if kind == Section::Parameters {
        for (n, l) in content {
            parameter(n, l.trim(), rb, c);
        }
    } else {
        for (n, l) in content {
            step(n, l.trim(), rb, c);
        }
        if rb.steps.is_empty() {
            c.add(line, "the `## Steps` section has no steps");
        }
    }
    rb.sections.push(kind);
}

fn parameter(line: usize, text: &str, rb: &mut Runbook, c: &mut Collector<'_>) {
    let Some(cap) = PARAM_RE.captures(text) else {
        c.add(
            line,
            "expected a parameter line `- NAME: MEANING`, optionally ending in `(default: VALUE)`, `(optional)` or `(optional: NOTE)`",
        );
        return;
    };
    let name = cap.get(1).map_or("", |m| m.as_str());
    let rest = cap.get(2).map_or("", |m| m.as_str()).trim();
    if !PARAM_NAME_RE.is_match(name) {
        c.add(
            line,
            format!(
                "parameter name `{name}` is not valid: use lowercase letters, digits and `_`, starting with a letter"
            ),
        );
        return;
    }
    let (meaning, kind) = match SUFFIX_RE.captures(rest) {
        Some(s) => {
            let meaning = s.get(1).map_or("", |m| m.as_str()).trim();
            let value = s.get(3).map(|m| m.as_str().trim().to_string());
            let kind = if s.get(2).is_some_and(|m| m.as_str() == "default") {
                match value.filter(|v| !v.is_empty()) {
                    Some(v) => match v.strip_prefix("config.") {
                        Some(path) if CONFIG_REFS.contains(&path) => {
                            ParamKind::Default(DefaultValue::Config(path.to_string()))
                        }
                        Some(_) => {
                            c.add(
                                line,
                                format!(
                                    "unknown config reference `{v}`; known: {}",
                                    CONFIG_REFS.map(|r| format!("config.{r}")).join(", ")
                                ),
                            );
                            return;
                        }
                        None => ParamKind::Default(DefaultValue::Literal(v)),
                    },
                    None => {
                        c.add(line, format!("parameter `{name}` has an empty default"));
                        return;
                    }
                }
            } else {
                ParamKind::Optional(value.filter(|v| !v.is_empty()))
            };
            (meaning.to_string(), kind)
        }
        None => (rest.to_string(), ParamKind::Required),
    };
    if meaning.is_empty() {
        c.add(
            line,
            format!("parameter `{name}` says nothing about what it means"),
        );
        return;
    }
    if let Some(first) = rb.parameter(name) {
        c.add(
            line,
            format!(
                "duplicate parameter `{name}` (first declared on line {})",
                first.line
            ),
        );
        return;
    }
    rb.parameters.push(Parameter {
        name: name.to_string(),
        meaning,
        kind,
        line,
    });
}

fn step(line: usize, text: &str, rb: &mut Runbook, c: &mut Collector<'_>) {
    let Some(cap) = STEP_RE.captures(text) else {
        c.add(
            line,
            "expected a step line `N. TEXT`, optionally ending in ` — `tool_name``",
        );
        return;
    };
    let expected = rb.steps.len() + 1;
    let number = cap.get(1).and_then(|m| m.as_str().parse::<usize>().ok());
    if number != Some(expected) {
        c.add(
            line,
            format!(
                "step numbered {}, expected {expected}: number steps 1, 2, 3, ... without gaps",
                cap.get(1).map_or("", |m| m.as_str())
            ),
        );
    }
    let rest = cap.get(2).map_or("", |m| m.as_str()).trim();
    let (text, tool) = match TOOL_RE.captures(rest) {
        Some(t) => (
            t.get(1).map_or("", |m| m.as_str()).trim(),
            t.get(2).map(|m| m.as_str().trim().to_string()),
        ),
        None => (rest, None),
    };
    if text.is_empty() {
        c.add(line, "step has no text saying what it does");
    }
    let (tool, args) = match tool {
        Some(t) => match CALL_RE.captures(&t) {
            Some(cap) => {
                let name = cap.get(1).map_or("", |m| m.as_str()).to_string();
                let args = call_args(line, cap.get(2).map_or("", |m| m.as_str()), c);
                (Some(name), Some(args))
            }
            None => (Some(t), None),
        },
        None => (None, None),
    };
    rb.steps.push(Step {
        number: expected,
        text: text.to_string(),
        tool,
        args,
        line,
    });
}

/// `arg=value, other={param}` of an explicit call; `value` runs to the next comma.
fn call_args(line: usize, inner: &str, c: &mut Collector<'_>) -> Vec<(String, String)> {
    let mut args: Vec<(String, String)> = Vec::new();
    for piece in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match ARG_RE.captures(piece) {
            Some(cap) => {
                let k = cap.get(1).map_or("", |m| m.as_str()).to_string();
                let v = cap.get(2).map_or("", |m| m.as_str()).trim().to_string();
                if args.iter().any(|(x, _)| *x == k) {
                    c.add(line, format!("argument `{k}` is given twice"));
                } else {
                    args.push((k, v));
                }
            }
            None => c.add(
                line,
                format!("expected `argument=value` in the call, got `{piece}`"),
            ),
        }
    }
    args
}

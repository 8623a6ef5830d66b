//! Canonical markdown of a parsed runbook, and a runbook rendered with parameter values.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Config;

use super::parse::{DefaultValue, ParamKind, Runbook, Section, placeholders};
use super::{Error, Requirement, RunbookSource, ToolCatalog};

/// `runbook_get` arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookGetArgs {
    /// As `runbook_list` shows it.
    #[schemars(length(max = 64), regex(pattern = r"^[a-z0-9][a-z0-9._-]*$"))]
    pub name: String,
    /// By parameter name, e.g. `{"vmid": 9001}`; omitted ones take their default, missing required
    /// ones are reported; undeclared names are refused.
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

/// A parameter with the value the runbook will use.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RenderedParameter {
    /// Parameter name.
    pub name: String,
    /// What the parameter means, from the runbook.
    pub meaning: String,
    /// The value used; absent for an optional parameter not given and a missing required one.
    pub value: Option<String>,
    /// Where the value comes from: `call` (the parameters you passed), `config` (the cluster
    /// configuration), `default` (the runbook's literal default), `optional` (not given, the
    /// tool decides), `missing` (required and not given: ask the user).
    pub from: String,
}

/// One tool call, ready to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCall {
    /// The tool to call.
    pub tool: String,
    /// Its arguments: every runbook parameter with a known value that the tool accepts.
    pub arguments: Map<String, Value>,
}

/// A step with its placeholders filled in.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RenderedStep {
    /// 1-based step number.
    pub number: usize,
    /// What the step does; `{param}` placeholders are replaced by known values and left as
    /// they are where the value is not known.
    pub text: String,
    /// The tool that performs this step; absent for a manual step (done by a person).
    pub tool: Option<String>,
    /// The call that performs this step; absent for a manual step.
    pub call: Option<ToolCall>,
}

/// A runbook rendered for execution.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunbookGetReport {
    /// Runbook name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// `shipped` or `user` (a user runbook overrides a shipped one of the same name).
    pub source: RunbookSource,
    /// What the runbook needs: `api` (PVE API) and/or `ssh` (SSH to the nodes).
    pub requires: Vec<Requirement>,
    /// Every declared parameter with its value and where it comes from.
    pub parameters: Vec<RenderedParameter>,
    /// Required parameters without a value: ask the user, then call `runbook_get` again.
    pub missing: Vec<String>,
    /// True when no required parameter is missing.
    pub ready: bool,
    /// The steps, in order.
    pub steps: Vec<RenderedStep>,
    /// The distinct tool calls, in step order (one call may perform several steps).
    pub calls: Vec<ToolCall>,
    /// What to do next.
    pub message: String,
}

/// The value of a `config.<path>` reference (one of `parse::CONFIG_REFS`).
pub(crate) fn config_value(config: &Config, path: &str) -> Option<String> {
    Some(match path {
        "defaults.storage" => config.defaults.storage.clone(),
        "defaults.network_bridge" => config.defaults.network_bridge.clone(),
        "defaults.bios" => config.defaults.bios.as_str().to_string(),
        "defaults.machine" => config.defaults.machine.clone(),
        "defaults.cpu" => config.defaults.cpu.clone(),
        "defaults.scsi_controller" => config.defaults.scsi_controller.as_str().to_string(),
        "vmid_ranges.templates" => config.vmid_ranges.templates.to_string(),
        "vmid_ranges.vms" => config.vmid_ranges.vms.to_string(),
        "cloudinit.default_user" => config.cloudinit.default_user.clone(),
        "cloudinit.vendor_snippet_path" => config.cloudinit.vendor_snippet_path.clone(),
        "credentials.ssh_user" => config.credentials.ssh_user.clone(),
        _ => return None,
    })
}

/// `description` as a YAML scalar: plain when it reads back unchanged, else double-quoted.
fn yaml_scalar(s: &str) -> String {
    let plain_ok = !s.contains('\n')
        && matches!(yaml_serde::from_str::<yaml_serde::Value>(s), Ok(yaml_serde::Value::String(ref v)) if v == s);
    if plain_ok {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

/// The canonical text of a valid runbook: frontmatter keys in fixed order, one blank line
/// between blocks, parameters and steps re-rendered, other sections verbatim.
pub(crate) fn normalise(rb: &Runbook) -> String {
    let mut out = Vec::new();
    out.push("---".to_string());
    out.push(format!("name: {}", rb.name));
    out.push(format!("description: {}", yaml_scalar(&rb.description)));
    out.push(format!(
        "image_type: {}",
        rb.image_type.map_or("none", |t| t.as_str())
    ));
    let req: Vec<&str> = rb.requires.iter().map(|r| r.as_str()).collect();
    out.push(format!("requires: [{}]", req.join(", ")));
    out.push("---".to_string());
    out.push(String::new());
    out.push(format!("# {}", rb.title));
    if !rb.intro.is_empty() {
        out.push(String::new());
        out.extend(rb.intro.iter().cloned());
    }
    for section in &rb.sections {
        out.push(String::new());
        match section {
            Section::Parameters => {
                out.push("## Parameters".to_string());
                for p in &rb.parameters {
                    let suffix = match &p.kind {
                        ParamKind::Required => String::new(),
                        ParamKind::Optional(None) => " (optional)".to_string(),
                        ParamKind::Optional(Some(note)) => format!(" (optional: {note})"),
                        ParamKind::Default(DefaultValue::Literal(v)) => {
                            format!(" (default: {v})")
                        }
                        ParamKind::Default(DefaultValue::Config(path)) => {
                            format!(" (default: config.{path})")
                        }
                    };
                    out.push(format!("- {}: {}{suffix}", p.name, p.meaning));
                }
            }
            Section::Steps => {
                out.push("## Steps".to_string());
                for s in &rb.steps {
                    match (&s.tool, &s.args) {
                        (Some(t), Some(args)) => {
                            let args: Vec<String> =
                                args.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            out.push(format!(
                                "{}. {} — `{t}({})`",
                                s.number,
                                s.text,
                                args.join(", ")
                            ));
                        }
                        (Some(t), None) => out.push(format!("{}. {} — `{t}`", s.number, s.text)),
                        (None, _) => out.push(format!("{}. {}", s.number, s.text)),
                    }
                }
            }
            Section::Other { heading, lines } => {
                out.push(format!("## {heading}"));
                out.extend(lines.iter().cloned());
            }
        }
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// Whether a parameter carries an integer for the tools (`vmid`, `*_vmid`, sizes in units).
fn integer_parameter(name: &str) -> bool {
    name == "vmid"
        || name.ends_with("_vmid")
        || matches!(name, "cores" | "sockets" | "memory" | "count")
}

/// A call value: JSON numbers stay numbers, integer parameters given as digits become numbers.
fn argument(name: &str, given: Option<&Value>, value: &str) -> Value {
    if let Some(v @ Value::Number(_)) = given {
        return v.clone();
    }
    match value.parse::<u64>() {
        Ok(n) if integer_parameter(name) => Value::from(n),
        _ => Value::String(value.to_string()),
    }
}

/// The arguments of an explicit call: placeholders filled in; an argument whose placeholder has
/// no value is left out (the tool then applies its own default); `true`/`false` are booleans.
fn explicit_arguments<'a>(
    args: &[(String, String)],
    known: &impl Fn(&str) -> Option<&'a str>,
    given: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, raw) in args {
        let mut value = raw.clone();
        let mut complete = true;
        let found: Vec<_> = placeholders(raw).collect();
        for (range, ph) in found.into_iter().rev() {
            match known(ph) {
                Some(v) => value.replace_range(range, v),
                None => complete = false,
            }
        }
        if !complete {
            continue;
        }
        // `{param}` alone keeps the type the caller gave it.
        let whole = placeholders(raw)
            .next()
            .filter(|(r, _)| r.len() == raw.len())
            .map(|(_, ph)| ph);
        let v = match value.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => argument(k, whole.and_then(|ph| given.get(ph)), &value),
        };
        out.insert(k.clone(), v);
    }
    out
}

/// Renders a valid runbook with the call's `parameters`.
pub(crate) fn render(
    rb: &Runbook,
    source: RunbookSource,
    config: &Config,
    catalog: &ToolCatalog,
    given: &Map<String, Value>,
) -> Result<RunbookGetReport, Error> {
    let unknown: Vec<&str> = given
        .keys()
        .filter(|k| rb.parameter(k).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let declared: Vec<&str> = rb.parameters.iter().map(|p| p.name.as_str()).collect();
        return Err(Error::invalid(
            "parameters",
            format!(
                "runbook {} does not declare {}; it declares: {}",
                rb.name,
                unknown.join(", "),
                if declared.is_empty() {
                    "no parameters".to_string()
                } else {
                    declared.join(", ")
                }
            ),
        ));
    }
    let mut parameters = Vec::new();
    for p in &rb.parameters {
        let (value, from) = match given.get(&p.name) {
            Some(Value::String(s)) => (Some(s.clone()), "call"),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => (Some(v.to_string()), "call"),
            Some(_) => {
                return Err(Error::invalid(
                    "parameters",
                    format!("`{}` must be a string or a number", p.name),
                ));
            }
            None => match &p.kind {
                ParamKind::Default(DefaultValue::Literal(v)) => (Some(v.clone()), "default"),
                ParamKind::Default(DefaultValue::Config(path)) => {
                    (config_value(config, path), "config")
                }
                ParamKind::Optional(_) => (None, "optional"),
                ParamKind::Required => (None, "missing"),
            },
        };
        parameters.push(RenderedParameter {
            name: p.name.clone(),
            meaning: p.meaning.clone(),
            value,
            from: from.to_string(),
        });
    }
    let known = |name: &str| {
        parameters
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.as_deref())
    };
    let missing: Vec<String> = parameters
        .iter()
        .filter(|p| p.from == "missing")
        .map(|p| p.name.clone())
        .collect();
    let mut steps = Vec::new();
    let mut calls: Vec<ToolCall> = Vec::new();
    for s in &rb.steps {
        let mut text = s.text.clone();
        let found: Vec<_> = placeholders(&s.text).collect();
        for (range, ph) in found.into_iter().rev() {
            if let Some(v) = known(ph) {
                text.replace_range(range, v);
            }
        }
        let call = s.tool.as_ref().map(|tool| {
            let arguments: Map<String, Value> = match &s.args {
                Some(args) => explicit_arguments(args, &known, given),
                None => {
                    let accepted = catalog.arguments(tool);
                    parameters
                        .iter()
                        .filter(|p| accepted.is_some_and(|a| a.contains(&p.name)))
                        .filter_map(|p| {
                            let v = p.value.as_deref()?;
                            Some((p.name.clone(), argument(&p.name, given.get(&p.name), v)))
                        })
                        .collect()
                }
            };
            ToolCall {
                tool: tool.clone(),
                arguments,
            }
        });
        if let Some(c) = &call
            && !calls.contains(c)
        {
            calls.push(c.clone());
        }
        steps.push(RenderedStep {
            number: s.number,
            text,
            tool: s.tool.clone(),
            call,
        });
    }
    let manual = steps.iter().filter(|s| s.tool.is_none()).count();
    // Declared parameters a step's tool accepts but that have no value (yet).
    let later: Vec<String> = steps
        .iter()
        .filter_map(|s| {
            let tool = s.tool.as_deref()?;
            let accepted = catalog.arguments(tool)?;
            let open: Vec<&str> = parameters
                .iter()
                .filter(|p| p.value.is_none() && accepted.contains(&p.name))
                .map(|p| p.name.as_str())
                .collect();
            (!open.is_empty()).then(|| format!("`{tool}` without {}", open.join(", ")))
        })
        .fold(Vec::new(), |mut acc, e| {
            if !acc.contains(&e) {
                acc.push(e);
            }
            acc
        });
    let mut message = if missing.is_empty() {
        format!(
            "Ready: {} steps, {} distinct tool calls. Make the calls in order and tell the user what each will change; a call that would destroy something (such as `replace`) returns a preview and needs `confirm: true` after the user agrees.",
            steps.len(),
            calls.len()
        )
    } else {
        format!(
            "Not ready: required parameters missing: {}. Ask the user for them, then call runbook_get again with them in `parameters`.",
            missing.join(", ")
        )
    };
    if !later.is_empty() {
        message.push_str(&format!(
            " Calls leave out parameters that have no value ({}): the tool then applies its own default, or, for a value an earlier step decides (such as an auto-assigned VMID), add it from that step's result.",
            later.join("; ")
        ));
    }
    if manual > 0 {
        message.push_str(&format!(
            " {manual} step(s) have no tool: a person does them (tell the user what to do and wait)."
        ));
    }
    Ok(RunbookGetReport {
        name: rb.name.clone(),
        description: rb.description.clone(),
        source,
        requires: rb.requires.clone(),
        ready: missing.is_empty(),
        parameters,
        missing,
        steps,
        calls,
        message,
    })
}

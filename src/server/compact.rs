//! The catalogue as compact as it can be without losing what a model needs to call a tool:
//! applied to every tool in the registry, so a new tool gets it without doing anything.
//!
//! - no `$schema` (MCP's default dialect is the one schemars writes, JSON Schema 2020-12);
//! - no `"default": null` (an optional argument left out is the default; the description says
//!   what that means when it matters);
//! - a description does not restate a default the schema holds: `(default 180)` goes when
//!   the property says `"default": 180`;
//! - input schemas do not spell out the defaults every client assumes: `"default": false` on a
//!   boolean, `[]` on an array, `{}` on an object (the argument types read an omitted value
//!   so, with `#[serde(default)]`);
//! - an optional input is its schema, not `anyOf` it or `null` (the server still reads an
//!   explicit `null` as absent, as it does for the plain types `portable` rewrites);
//! - output schemas do not say `"minimum": 0` of an integer (every count and size is one, and
//!   nothing validates what the server itself sends);
//! - descriptions are one line (the source wraps doc comments at 100 columns; a JSON `\n`
//!   costs two bytes where a space costs one), tool descriptions included.
//!
//! Shared definitions stay shared: schemars already writes each type once under `$defs` and
//! refers to it with `$ref`. [`measure`] gives the figures the tool snapshot test prints and
//! bounds.

use rmcp::model::{JsonObject, Tool};
use serde_json::Value;
use std::sync::Arc;

/// Rewrites `tool`'s schemas in place (see the module docs).
pub fn compact(tool: &mut Tool) {
    one_line_description(tool);
    compact_schema(Arc::make_mut(&mut tool.input_schema), Side::Input);
    if let Some(out) = tool.output_schema.as_mut() {
        compact_schema(Arc::make_mut(out), Side::Output);
    }
}

/// Puts `tool`'s description on one line.
pub fn one_line_description(tool: &mut Tool) {
    if let Some(d) = tool.description.as_mut()
        && d.contains('\n')
    {
        *d = one_line(d).into();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Input,
    Output,
}

fn one_line(d: &str) -> String {
    d.split('\n').map(str::trim).collect::<Vec<_>>().join(" ")
}

fn compact_schema(schema: &mut JsonObject, side: Side) {
    schema.remove("$schema");
    walk_object(schema, side);
}

/// The one non-null branch of `anyOf: [X, {"type": "null"}]`.
fn non_null_branch(map: &JsonObject) -> Option<JsonObject> {
    let Some(Value::Array(branches)) = map.get("anyOf") else {
        return None;
    };
    let is_null = |b: &Value| {
        b.as_object()
            .is_some_and(|o| o.len() == 1 && o.get("type") == Some(&Value::from("null")))
    };
    match branches.as_slice() {
        [a, b] if is_null(b) && !is_null(a) => a.as_object().cloned(),
        [a, b] if is_null(a) && !is_null(b) => b.as_object().cloned(),
        _ => None,
    }
}

fn walk_object(map: &mut JsonObject, side: Side) {
    if matches!(map.get("default"), Some(Value::Null)) {
        map.remove("default");
    }
    if side == Side::Output
        && map.get("minimum") == Some(&Value::from(0))
        && map.get("type") == Some(&Value::from("integer"))
    {
        map.remove("minimum");
    }
    if let Some(default) = map.get("default").map(Value::to_string)
        && let Some(Value::String(d)) = map.get_mut("description")
    {
        for phrase in [
            format!(" (default {default})"),
            format!("(default {default})"),
        ] {
            if d.contains(&phrase) {
                *d = d.replace(&phrase, "");
            }
        }
    }
    if side == Side::Input {
        let implied = match map.get("default") {
            Some(Value::Bool(false)) => map.get("type") == Some(&Value::from("boolean")),
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        };
        if implied {
            map.remove("default");
        }
        if let Some(branch) = non_null_branch(map)
            && branch.keys().all(|k| !map.contains_key(k))
        {
            map.remove("anyOf");
            map.extend(branch);
        }
    }
    if let Some(Value::String(d)) = map.get_mut("description") {
        // Source doc comments wrap at 100 columns; a model reads one line.
        if d.contains('\n') {
            *d = one_line(d);
        }
    }
    for (k, v) in map.iter_mut() {
        // `properties` maps argument names to schemas: a property called `default` or
        // `minimum` is not the keyword.
        if k == "properties"
            && let Value::Object(props) = v
        {
            props.values_mut().for_each(|p| walk(p, side));
        } else {
            walk(v, side);
        }
    }
}

fn walk(v: &mut Value, side: Side) {
    match v {
        Value::Object(m) => walk_object(m, side),
        Value::Array(items) => items.iter_mut().for_each(|i| walk(i, side)),
        _ => {}
    }
}

/// Catalogue sizes in bytes of compact JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueSize {
    pub tools: usize,
    /// Names, descriptions and input schemas: what a model reads to choose and call a tool.
    pub model_facing: usize,
    /// Output schemas.
    pub output: usize,
}

impl CatalogueSize {
    /// Model-facing bytes per tool (0 without tools).
    pub fn model_facing_per_tool(&self) -> usize {
        self.model_facing.checked_div(self.tools).unwrap_or(0)
    }
    /// Output-schema bytes per tool (0 without tools).
    pub fn output_per_tool(&self) -> usize {
        self.output.checked_div(self.tools).unwrap_or(0)
    }
}

/// Measures `tools` as `tools/list` sends them.
pub fn measure(tools: &[Tool]) -> CatalogueSize {
    let len = |v: &Value| serde_json::to_string(v).map(|s| s.len()).unwrap_or(0);
    let mut size = CatalogueSize {
        tools: tools.len(),
        model_facing: 0,
        output: 0,
    };
    for t in tools {
        size.model_facing += len(&serde_json::json!({
            "name": t.name,
            "description": t.description,
            "inputSchema": t.input_schema,
        }));
        if let Some(o) = &t.output_schema {
            size.output += len(&Value::Object((**o).clone()));
        }
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_schema_and_restated_defaults_go() {
        let input = json!({"$schema": "x", "type": "object", "properties": {
            "start": {"type": "boolean", "default": false,
                      "description": "Start it\nonce done (default false)."},
            "node": {"type": "string", "default": null, "description": "A node (default false)."},
            "timeout_s": {"type": "integer", "default": 180, "description": "Seconds (default 180)."},
            "tags": {"type": "array", "default": [], "items": {"type": "string"}},
            "default": {"type": "boolean", "default": true},
            "mode": {"anyOf": [{"$ref": "#/$defs/Mode"}, {"type": "null"}], "description": "How."}
        }});
        let output = json!({"type": "object", "properties": {
            "size": {"type": "integer", "minimum": 0},
            "delta": {"type": "integer", "minimum": -5},
            "gone": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]}
        }});
        let obj = |v: Value| Arc::new(v.as_object().cloned().unwrap_or_default());
        let mut t = Tool::new("t", "Does\nthings.", obj(input));
        t.output_schema = Some(obj(output));
        compact(&mut t);
        assert_eq!(t.description.as_deref(), Some("Does things."));
        let s = Value::Object((*t.input_schema).clone());
        assert!(s.get("$schema").is_none());
        let p = &s["properties"];
        assert_eq!(p["start"]["description"], "Start it once done.");
        assert!(
            p["start"].get("default").is_none(),
            "an omitted boolean is false"
        );
        assert!(p["node"].get("default").is_none());
        assert_eq!(
            p["node"]["description"], "A node (default false).",
            "only a default the schema holds is dropped from the text"
        );
        assert_eq!(p["timeout_s"]["description"], "Seconds.");
        assert_eq!(p["timeout_s"]["default"], 180, "a real default stays");
        assert!(p["tags"].get("default").is_none());
        assert_eq!(p["default"]["default"], true, "a property is not a keyword");
        assert_eq!(
            p["mode"],
            json!({"$ref": "#/$defs/Mode", "description": "How."}),
            "an optional input is its schema"
        );
        let o = Value::Object((**t.output_schema.as_ref().expect("output")).clone());
        assert!(o["properties"]["size"].get("minimum").is_none());
        assert_eq!(o["properties"]["delta"]["minimum"], -5);
        assert!(o["properties"]["gone"]["anyOf"][0].get("minimum").is_none());
    }
}

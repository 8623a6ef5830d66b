//! The catalogue as compact as it can be without losing what a model needs to call a tool:
//! applied to every tool in the registry, so a new tool gets it without doing anything.
//!
//! - no `$schema` (MCP's default dialect is the one schemars writes, JSON Schema 2020-12);
//! - no `"default": null` (an optional argument left out is the default; the description says
//!   what that means when it matters);
//! - a description does not restate a default the schema holds: `(default false)` goes when
//!   the property says `"default": false`.
//!
//! Shared definitions stay shared: schemars already writes each type once under `$defs` and
//! refers to it with `$ref`. [`measure`] gives the figures the tool snapshot test prints and
//! bounds.

use rmcp::model::{JsonObject, Tool};
use serde_json::Value;
use std::sync::Arc;

/// Rewrites `tool`'s schemas in place (see the module docs).
pub fn compact(tool: &mut Tool) {
    compact_schema(Arc::make_mut(&mut tool.input_schema));
    if let Some(out) = tool.output_schema.as_mut() {
        compact_schema(Arc::make_mut(out));
    }
}

fn compact_schema(schema: &mut JsonObject) {
    schema.remove("$schema");
    walk_object(schema);
}

fn walk_object(map: &mut JsonObject) {
    if matches!(map.get("default"), Some(Value::Null)) {
        map.remove("default");
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
    if let Some(Value::String(d)) = map.get_mut("description") {
        // Source doc comments wrap at 100 columns; a model reads one line.
        if d.contains('\n') {
            *d = d.replace('\n', " ");
        }
    }
    for v in map.values_mut() {
        walk(v);
    }
}

fn walk(v: &mut Value) {
    match v {
        Value::Object(m) => walk_object(m),
        Value::Array(items) => items.iter_mut().for_each(walk),
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
            "node": {"type": "string", "default": null, "description": "A node (default false)."}
        }});
        let mut t = Tool::new(
            "t",
            "d",
            Arc::new(input.as_object().cloned().unwrap_or_default()),
        );
        compact(&mut t);
        let s = Value::Object((*t.input_schema).clone());
        assert!(s.get("$schema").is_none());
        assert_eq!(
            s["properties"]["start"]["description"],
            "Start it once done."
        );
        assert_eq!(
            s["properties"]["start"]["default"], false,
            "the schema keeps the default"
        );
        assert!(s["properties"]["node"].get("default").is_none());
        assert_eq!(
            s["properties"]["node"]["description"], "A node (default false).",
            "only a default the schema holds is dropped from the text"
        );
    }
}

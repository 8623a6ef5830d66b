//! Tool schemas in the most portable JSON Schema spelling.
//!
//! schemars writes an `Option<T>` as `"type": ["T", "null"]` and a `u32` with
//! `"format": "uint32"`. Both are legal JSON Schema, but clients that map tool schemas onto a
//! single-`type` dialect (OpenAPI-style function declarations) reject or mangle them, and
//! validators warn about the unknown formats (the MCP Inspector's `--strict` check reports
//! both). So, for every tool:
//! - input schemas drop `null` from a type list: an optional argument is simply left out, and
//!   the server still accepts an explicit `null` (serde reads it as absent);
//! - output schemas, which do carry `null` values, spell a type list as `anyOf` branches with
//!   one `type` each;
//! - formats that JSON Schema 2020-12 does not define (`uint32`, `int64`, `double`, ...) are
//!   removed; the `minimum`/`maximum` schemars writes beside them stay.

use rmcp::model::{JsonObject, Tool};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Formats defined by JSON Schema 2020-12 (validation vocabulary, section 7.3).
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Keywords that describe a schema as a whole and stay outside the `anyOf` branches.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

/// Rewrites `tool`'s input and output schemas in place (see the module docs).
pub fn make_portable(tool: &mut Tool) {
    rewrite(Arc::make_mut(&mut tool.input_schema), Side::Input);
    if let Some(out) = tool.output_schema.as_mut() {
        rewrite(Arc::make_mut(out), Side::Output);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Input,
    Output,
}

fn rewrite(schema: &mut JsonObject, side: Side) {
    // Children first, so a branch made below is already portable.
    for value in schema.values_mut() {
        walk(value, side);
    }
    if let Some(Value::String(f)) = schema.get("format")
        && !STANDARD_FORMATS.contains(&f.as_str())
    {
        schema.remove("format");
    }
    let Some(Value::Array(types)) = schema.get("type") else {
        return;
    };
    let mut types: Vec<Value> = types.clone();
    if side == Side::Input {
        types.retain(|t| t != "null");
        if let Some(Value::Array(choices)) = schema.get_mut("enum") {
            choices.retain(|c| !c.is_null());
        }
    }
    match types.len() {
        0 => {
            schema.remove("type");
        }
        1 => {
            schema.insert("type".into(), types.remove(0));
        }
        _ => split_into_branches(schema, types),
    }
}

/// `{"type": [A, B], k: v, description}` -> `{"anyOf": [{"type": A, k: v}, {"type": B}],
/// description}`: keywords other than annotations travel with the non-null branches.
fn split_into_branches(schema: &mut JsonObject, types: Vec<Value>) {
    schema.remove("type");
    let keywords: Map<String, Value> = schema
        .iter()
        .filter(|(k, _)| !ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for k in keywords.keys() {
        schema.remove(k);
    }
    let branches = types
        .into_iter()
        .map(|t| {
            let mut branch = Map::new();
            if t != "null" {
                branch.extend(keywords.clone());
                if let Some(Value::Array(choices)) = branch.get_mut("enum") {
                    choices.retain(|c| !c.is_null());
                }
            }
            branch.insert("type".into(), t);
            Value::Object(branch)
        })
        .collect();
    schema.insert("anyOf".into(), Value::Array(branches));
}

fn walk(value: &mut Value, side: Side) {
    match value {
        Value::Object(map) => rewrite(map, side),
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, side)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(input: Value, output: Value) -> Tool {
        let obj = |v: Value| Arc::new(v.as_object().expect("object").clone());
        let mut t = Tool::new("t", "d", obj(input));
        t.output_schema = Some(obj(output));
        t
    }

    #[test]
    fn nullable_inputs_lose_null_and_outputs_become_any_of() {
        let schema = json!({"type": "object", "properties": {
            "node": {"type": ["string", "null"], "description": "a node"},
            "page": {"type": ["integer", "null"], "format": "uint32", "minimum": 0},
            "when": {"type": "string", "format": "date-time"},
            "mode": {"type": ["string", "null"], "enum": ["a", "b", null]}
        }});
        let mut t = tool(schema.clone(), schema);
        make_portable(&mut t);
        let input = Value::Object((*t.input_schema).clone());
        assert_eq!(
            input["properties"]["node"],
            json!({"type": "string", "description": "a node"})
        );
        assert_eq!(
            input["properties"]["page"],
            json!({"type": "integer", "minimum": 0})
        );
        assert_eq!(
            input["properties"]["when"]["format"], "date-time",
            "standard formats stay"
        );
        assert_eq!(input["properties"]["mode"]["enum"], json!(["a", "b"]));

        let output = Value::Object((*t.output_schema.expect("output")).clone());
        assert_eq!(
            output["properties"]["node"],
            json!({"description": "a node", "anyOf": [{"type": "string"}, {"type": "null"}]})
        );
        assert_eq!(
            output["properties"]["page"],
            json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]})
        );
        assert_eq!(
            output["properties"]["mode"],
            json!({"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}]})
        );
    }

    #[test]
    fn nested_definitions_and_items_are_rewritten() {
        let schema = json!({"type": "object", "$defs": {"Disk": {"type": "object", "properties": {
            "size": {"type": ["integer", "null"], "format": "uint64"}}}},
            "properties": {"tags": {"type": ["array", "null"], "items": {"type": "string"}}}});
        let mut t = tool(schema.clone(), schema);
        make_portable(&mut t);
        let text = serde_json::to_string(&*t.input_schema).expect("json")
            + &serde_json::to_string(&t.output_schema).expect("json");
        assert!(!text.contains("uint64"), "{text}");
        assert!(!text.contains(r#"["integer","null"]"#), "{text}");
        let output = Value::Object((*t.output_schema.expect("output")).clone());
        assert_eq!(
            output["properties"]["tags"],
            json!({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]})
        );
    }
}

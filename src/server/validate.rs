//! Arguments checked against the tool's own input schema before the tool runs: lengths,
//! patterns, numeric ranges, item counts and enumerations — the constraints each argument
//! type declares with schemars attributes, so the schema a client sees is the rule that is
//! enforced. A violation is a tool error the model can act on (which argument, what rule, a
//! short prefix of what it sent), never a call that reaches PVE.
//!
//! Types are serde's to check: a value of another JSON type than the schema says is left
//! alone here (some clients send nested objects as JSON strings, which the argument types
//! accept), and a missing or unknown field is serde's error as well.

use regex::Regex;
use serde_json::{Map, Value};

/// How much of a rejected value an error quotes.
const QUOTE: usize = 40;

/// Checks `args` against `schema` (an input schema with `properties` and `$defs`).
///
/// # Errors
/// The first violation, naming the argument path and the rule.
pub fn arguments(
    schema: &Map<String, Value>,
    args: Option<&Map<String, Value>>,
) -> Result<(), String> {
    let Some(args) = args else { return Ok(()) };
    let root = Value::Object(schema.clone());
    let defs = schema.get("$defs").and_then(Value::as_object);
    check_object(&root, args, "", defs)
}

fn check_object(
    schema: &Value,
    obj: &Map<String, Value>,
    path: &str,
    defs: Option<&Map<String, Value>>,
) -> Result<(), String> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, value) in obj {
        if let Some(p) = props.get(name) {
            let here = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            check(p, value, &here, defs)?;
        }
    }
    Ok(())
}

/// Follows `$ref: "#/$defs/Name"`.
fn resolve<'a>(schema: &'a Value, defs: Option<&'a Map<String, Value>>) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/$defs/")
            .and_then(|n| defs.and_then(|d| d.get(n)))
            .unwrap_or(schema),
        None => schema,
    }
}

fn quote(s: &str) -> String {
    let mut q: String = s.chars().take(QUOTE).collect();
    if s.chars().count() > QUOTE {
        q.push('…');
    }
    format!("{q:?}")
}

fn check(
    schema: &Value,
    value: &Value,
    path: &str,
    defs: Option<&Map<String, Value>>,
) -> Result<(), String> {
    let schema = resolve(schema, defs);
    if value.is_null() {
        return Ok(());
    }
    // A choice of shapes (optional values, enums of several forms): the value must satisfy
    // one branch whose type matches, when any branch's type matches at all.
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let typed: Vec<&Value> = branches
                .iter()
                .map(|b| resolve(b, defs))
                .filter(|b| type_matches(b, value))
                .collect();
            if typed.is_empty() {
                return Ok(());
            }
            let mut first_err = None;
            for b in typed {
                match check(b, value, path, defs) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            return Err(first_err.unwrap_or_default());
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && type_matches(schema, value)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(format!(
            "argument `{path}` must be one of {} (got {})",
            names.join(", "),
            quote(&value.to_string())
        ));
    }
    if let Some(c) = schema.get("const")
        && type_matches(schema, value)
        && c != value
    {
        return Err(format!("argument `{path}` must be {c}"));
    }
    match value {
        Value::String(s) => string(schema, s, path),
        Value::Number(_) => number(schema, value, path),
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                return Err(format!(
                    "argument `{path}` has {} items; at most {max} are allowed",
                    items.len()
                ));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                return Err(format!(
                    "argument `{path}` has {} items; at least {min} are needed",
                    items.len()
                ));
            }
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check(item, v, &format!("{path}[{i}]"), defs)?;
                }
            }
            Ok(())
        }
        Value::Object(o) => check_object(schema, o, path, defs),
        _ => Ok(()),
    }
}

/// Whether the schema's `type` admits the value (no `type`: anything).
fn type_matches(schema: &Value, value: &Value) -> bool {
    let one = |t: &str| match t {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    };
    match schema.get("type") {
        None => true,
        Some(Value::String(t)) => one(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(one),
        Some(_) => true,
    }
}

fn string(schema: &Value, s: &str, path: &str) -> Result<(), String> {
    if !type_matches(schema, &Value::String(String::new())) {
        return Ok(());
    }
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        return Err(format!(
            "argument `{path}` is {len} characters long; at most {max} are allowed (it starts {})",
            quote(s)
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        return Err(format!(
            "argument `{path}` must be at least {min} characters long"
        ));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        // JSON Schema patterns are unanchored: the argument types anchor their own.
        match Regex::new(p) {
            Ok(rx) if !rx.is_match(s) => {
                return Err(format!(
                    "argument `{path}` does not have the required form {p} (got {})",
                    quote(s)
                ));
            }
            Ok(_) => {}
            Err(e) => tracing::error!(path, pattern = p, error = %e, "unusable schema pattern"),
        }
    }
    Ok(())
}

fn number(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let Some(x) = v.as_f64() else { return Ok(()) };
    if schema.get("type").and_then(Value::as_str) == Some("integer") && !(v.is_i64() || v.is_u64())
    {
        return Ok(());
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && x > max
    {
        return Err(format!(
            "argument `{path}` is {v}; at most {max} is allowed"
        ));
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && x < min
    {
        return Err(format!(
            "argument `{path}` is {v}; at least {min} is needed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: Value, args: Value) -> Result<(), String> {
        arguments(schema.as_object().expect("schema"), args.as_object())
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "bridge": {"type": "string", "maxLength": 10, "pattern": "^[-_.a-zA-Z0-9]+$"},
                "cores": {"type": "integer", "minimum": 1, "maximum": 512},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 4}},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "net": {"$ref": "#/$defs/Net"},
                "opt": {"anyOf": [{"$ref": "#/$defs/Net"}, {"type": "null"}]}
            },
            "$defs": {"Net": {"type": "object", "properties": {
                "ip": {"type": "string", "maxLength": 5}}}}
        })
    }

    #[test]
    fn constraints_of_the_schema_are_enforced() {
        assert!(
            run(
                schema(),
                json!({"bridge": "vmbr0", "cores": 4, "tags": ["a"]})
            )
            .is_ok()
        );
        let e = run(schema(), json!({"bridge": "vmbr0,firewall=0"})).expect_err("too long");
        assert!(e.contains("`bridge`") && e.contains("at most 10"), "{e}");
        let e = run(schema(), json!({"bridge": "vmbr;0"})).expect_err("pattern");
        assert!(e.contains("required form"), "{e}");
        let e = run(schema(), json!({"cores": 2147483648u64})).expect_err("range");
        assert!(e.contains("at most 512"), "{e}");
        assert!(run(schema(), json!({"cores": 0})).is_err());
        assert!(run(schema(), json!({"tags": ["a", "b", "c"]})).is_err());
        let e = run(schema(), json!({"tags": ["a", "toolong"]})).expect_err("item");
        assert!(e.contains("`tags[1]`"), "{e}");
        assert!(run(schema(), json!({"mode": "c"})).is_err());
        let e = run(schema(), json!({"net": {"ip": "1.2.3.4/24"}})).expect_err("nested");
        assert!(e.contains("`net.ip`"), "{e}");
        assert!(run(schema(), json!({"opt": {"ip": "1.2.3.4/24"}})).is_err());
        assert!(run(schema(), json!({"opt": null})).is_ok());
    }

    #[test]
    fn other_types_are_left_to_serde_and_errors_quote_a_short_prefix() {
        // A nested object sent as a JSON string, a number as a string: serde decides.
        assert!(run(schema(), json!({"net": "{\"ip\": \"x\"}", "cores": "4"})).is_ok());
        let long = "v".repeat(1_000_000);
        let e = run(schema(), json!({"bridge": long})).expect_err("long");
        assert!(e.len() < 200, "{} bytes", e.len());
        assert!(e.contains("1000000 characters"), "{e}");
    }
}

//! Every argument is bounded by the tool's own input schema, and the bound is enforced before
//! anything is sent: for each tool, a string one character past its `maxLength`, a number
//! past its `maximum`, an array past its `maxItems` is refused as a tool error naming the
//! argument, quoting only a short prefix, and the simulator receives no request.

use crate::common;

use proxmox_manager::server::Catalogue;
use serde_json::{Map, Value, json};

/// Resolves `$ref: #/$defs/X` against the tool's schema.
fn resolve<'a>(schema: &'a Value, root: &'a Map<String, Value>) -> &'a Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|n| root.get("$defs").and_then(|d| d.get(n)))
        .unwrap_or(schema)
}

/// The property's schema without the `null` branch of an optional value.
fn non_null<'a>(p: &'a Value, root: &'a Map<String, Value>) -> &'a Value {
    let p = resolve(p, root);
    if let Some(branches) = p.get("anyOf").and_then(Value::as_array)
        && let Some(b) = branches
            .iter()
            .map(|b| resolve(b, root))
            .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
    {
        return b;
    }
    p
}

/// A value just past the property's bound, when it declares one.
fn past_the_bound(p: &Value) -> Option<Value> {
    match p.get("type").and_then(Value::as_str) {
        Some("string") => {
            let max = p.get("maxLength")?.as_u64()? as usize;
            Some(Value::String("a".repeat(max + 1)))
        }
        Some("integer") => Some(json!(p.get("maximum")?.as_u64()? + 1)),
        Some("array") => {
            let max = p.get("maxItems")?.as_u64()? as usize;
            Some(Value::Array(vec![json!("x"); max + 1]))
        }
        _ => None,
    }
}

#[test]
fn every_string_array_and_integer_argument_declares_its_bound() {
    let mut unbounded = Vec::new();
    for t in Catalogue::full().tools {
        let root = &*t.input_schema;
        let Some(props) = root.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for (name, p) in props {
            let p = non_null(p, root);
            let bounded = match p.get("type").and_then(Value::as_str) {
                Some("string") => p.get("maxLength").is_some() || p.get("enum").is_some(),
                Some("integer") => p.get("maximum").is_some(),
                Some("array") => p.get("maxItems").is_some(),
                _ => true,
            };
            if !bounded {
                unbounded.push(format!("{}.{name}", t.name));
            }
        }
    }
    assert!(
        unbounded.is_empty(),
        "arguments without a bound in their schema: {unbounded:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_argument_past_its_bound_is_refused_before_anything_is_sent() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = common::write_config(dir.path(), &sim);
    let (client, _) = common::mcp::connect(&cfg, &common::token_env(&sim), dir.path(), &[]).await;
    let mut checked = 0;
    for t in Catalogue::full().tools {
        let root = &*t.input_schema;
        let Some(props) = root.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for (name, p) in props {
            let Some(bad) = past_the_bound(non_null(p, root)) else {
                continue;
            };
            let before = sim.requests().len();
            let args = json!({ name.clone(): bad, "confirm": true });
            let args = if props.contains_key("confirm") {
                args
            } else {
                json!({ name.clone(): args[name].clone() })
            };
            let (err, _, text) = common::mcp::call(&client, &t.name, args).await;
            assert!(err, "{}.{name} past its bound was accepted: {text}", t.name);
            assert!(
                text.contains(&format!("`{name}")) && text.len() < 400,
                "{}.{name}: {text}",
                t.name
            );
            assert_eq!(
                sim.requests().len(),
                before,
                "{}.{name}: a request reached PVE",
                t.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} bounds exercised");
    client.cancel().await.ok();
}

//! Every tool's input and output schema, generated the way rmcp generates them (JSON Schema
//! 2020-12; an output schema for what `Serialize` writes; the root's `title` and `description`
//! left out) but not kept anywhere else. rmcp's own helpers keep each schema they generate in
//! caches of the generating thread for the life of that thread, twice over (as generated and as
//! served): beside the router's copy that was most of the server's memory after start-up. So
//! every `#[tool]` names these instead of letting the macro call rmcp's.

use std::sync::Arc;

use rmcp::model::JsonObject;
use rmcp::schemars::JsonSchema;
use rmcp::schemars::generate::SchemaSettings;
use serde_json::Value;

/// A tool's input schema: what `T` accepts.
pub fn input<T: JsonSchema>() -> Arc<JsonObject> {
    root::<T>(SchemaSettings::draft2020_12())
}

/// A tool's output schema: what `T` writes.
pub fn output<T: JsonSchema>() -> Arc<JsonObject> {
    root::<T>(SchemaSettings::draft2020_12().for_serialize())
}

fn root<T: JsonSchema>(settings: SchemaSettings) -> Arc<JsonObject> {
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut object = match serde_json::to_value(schema) {
        Ok(Value::Object(object)) => object,
        // A schema is always an object; the catalogue tests would show anything else.
        _ => JsonObject::new(),
    };
    object.remove("title");
    object.remove("description");
    Arc::new(object)
}

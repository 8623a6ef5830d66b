//! Every tool's input and output schema, generated the way rmcp generates them (JSON Schema
//! 2020-12; an output schema for what `Serialize` writes; the root's `title` and `description`
//! left out) but not kept anywhere else. rmcp's own helpers keep each schema they generate in
//! caches of the generating thread for the life of that thread, twice over (as generated and as
//! served): beside the router's copy that was most of the server's memory after start-up. So
//! every `#[tool]` names these instead of letting the macro call rmcp's.
//!
//! The server itself does not generate them: it serves the checked-in catalogue
//! (`tools/tools.json`, embedded at build time; see `registry::all_routes`), which a test keeps
//! equal to what generation writes; generating every tool's schemas cost 2–3 ms of start-up.
//! So outside [`generating`] these return an empty placeholder the registry replaces.

use std::cell::Cell;
use std::sync::Arc;

use rmcp::model::JsonObject;
use rmcp::schemars::JsonSchema;
use rmcp::schemars::generate::SchemaSettings;
use serde_json::Value;

thread_local! {
    /// Whether the routers built on this thread generate their schemas. Per thread, so a test
    /// generating the catalogue never races a server being built on another thread.
    static GENERATE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `build` with schema generation on for this thread: the routers it builds carry the
/// schemas their types describe.
pub fn generating<R>(build: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            GENERATE.with(|g| g.set(self.0));
        }
    }
    let _reset = Reset(GENERATE.with(|g| g.replace(true)));
    build()
}

/// A tool's input schema: what `T` accepts (a placeholder outside [`generating`]).
pub fn input<T: JsonSchema>() -> Arc<JsonObject> {
    if GENERATE.with(Cell::get) {
        root::<T>(SchemaSettings::draft2020_12())
    } else {
        Arc::default()
    }
}

/// A tool's output schema: what `T` writes (a placeholder outside [`generating`]).
pub fn output<T: JsonSchema>() -> Arc<JsonObject> {
    if GENERATE.with(Cell::get) {
        root::<T>(SchemaSettings::draft2020_12().for_serialize())
    } else {
        Arc::default()
    }
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

//! The checked-in catalogue must match the code: every change to a tool's name, description,
//! annotations or schema shows in review. Regenerate with
//! `cargo run -- tools --write tools/`.

use proxmox_manager::server::{Catalogue, render_markdown, snapshot_json};

fn check(file: &str, generated: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join(file);
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "tools/{file} is out of date with the code; run `cargo run -- tools --write tools/` and commit the result"
    );
}

#[test]
fn tools_readme_matches_the_code() {
    check("README.md", &render_markdown(&Catalogue::full()));
}

#[test]
fn tools_json_matches_the_code() {
    check("tools.json", &snapshot_json(&Catalogue::full()));
}

/// What the catalogue costs a model: names, descriptions and input schemas (what it reads to
/// pick and call a tool), and the output schemas, in bytes of compact JSON as `tools/list`
/// sends them. Printed on every run (`cargo test --test suite tools_snapshot -- --nocapture`).
/// Where the model-facing average stands now (1,198 bytes with 44 tools, from 1,295 before the
/// compaction of issue 20); the goal is 900, reached by shorter descriptions. Lower it as
/// they shrink; never raise it.
const MODEL_FACING_CEILING: usize = 1200;

#[test]
fn the_model_facing_catalogue_does_not_grow_per_tool() {
    let cat = Catalogue::full();
    let size = proxmox_manager::server::compact::measure(&cat.tools);
    println!(
        "catalogue: {} tools; model-facing {} bytes ({} per tool); output schemas {} bytes ({} per tool)",
        size.tools,
        size.model_facing,
        size.model_facing_per_tool(),
        size.output,
        size.output_per_tool()
    );
    assert!(
        size.model_facing_per_tool() <= MODEL_FACING_CEILING,
        "the model-facing catalogue averages {} bytes per tool (ceiling {MODEL_FACING_CEILING}, goal 900): shorten descriptions, say only what the schema cannot",
        size.model_facing_per_tool()
    );
}

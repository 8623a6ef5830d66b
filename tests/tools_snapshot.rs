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

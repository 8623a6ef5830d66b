//! The shipped `config/cluster-config.example.yaml` through the public API, the JSON Schema
//! against the parser (every key the parser accepts is in the schema, a typo is not), and the
//! enums we hand-wrote against PVE's API schema in `../shared/pve-api/apidata.json` (skipped
//! with a message when that file is absent, e.g. outside the workspace).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proxmox_manager::config::{
    Bios, ConfigError, ScsiController, json_schema, load_with, parse_raw,
};
use serde_json::Value;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster-config.example.yaml")
}

fn home_env(k: &str) -> Option<String> {
    (k == "HOME").then(|| "/home/ada".to_string())
}

#[test]
fn shipped_example_loads() {
    let c = load_with(&example_path(), &home_env).expect("example is valid");
    assert!(c.path.is_absolute());
    assert_eq!(c.cluster.name, "annarchy.net");
    assert_eq!(c.cluster.nodes.len(), 3);
    assert_eq!(c.vmid_ranges.vms.to_string(), "1000-9999");
}

/// Keys of a YAML mapping that the schema node at `schema` does not allow, as dotted paths.
fn keys_outside_schema(
    root: &Value,
    schema: &Value,
    yaml: &yaml_serde::Value,
    at: &str,
    out: &mut Vec<String>,
) {
    let schema = resolve(root, schema);
    match yaml {
        yaml_serde::Value::Mapping(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties");
            for (k, v) in map {
                let key = k.as_str().unwrap_or("?");
                let path = if at.is_empty() {
                    key.to_string()
                } else {
                    format!("{at}.{key}")
                };
                match (props.and_then(|p| p.get(key)), extra) {
                    (Some(sub), _) => keys_outside_schema(root, sub, v, &path, out),
                    (None, Some(Value::Object(sub))) => {
                        keys_outside_schema(root, &Value::Object(sub.clone()), v, &path, out)
                    }
                    _ => out.push(path),
                }
            }
        }
        yaml_serde::Value::Sequence(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    keys_outside_schema(root, item, v, &format!("{at}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(name) => &root["$defs"][name],
        None => schema,
    }
}

const FULL: &str = r#"
cluster: { name: c, nodes: [ { name: pve01, host: pve01.example.net } ] }
defaults: { storage: local-lvm, network_bridge: vmbr0, bios: ovmf, machine: q35, cpu: host,
            scsi_controller: virtio-scsi-single, efidisk_pre_enrolled_keys: false, guest_agent: true }
vmid_ranges: { templates: 100-999, vms: 1000-9999 }
credentials: { pass_path: a/b, token_file: /t, ssh_user: root }
tags: { templates: [template] }
cloudinit: { default_user: ada, ssh_keys_source: /k, vendor_snippet_path: /var/lib/vz/snippets/ }
api: { port: 8006, tls: { ca_file: /ca.pem }, timeout_secs: 30 }
ssh: { port: 22, key_file: /k, use_agent: true, known_hosts: /kh, trust_on_first_use: false }
ansible: { fleet_infra: /f, inventory: /i }
paths: { runbooks: /r, clusters: /c }
limits: { max_parallel: 4, per_node_parallel: 2 }
audit_log: /a
"#;

#[test]
fn schema_allows_every_key_the_parser_accepts_and_rejects_typos() {
    let schema = json_schema();
    parse_raw(FULL, Path::new("full.yaml")).expect("parser accepts every key");
    let yaml: yaml_serde::Value = yaml_serde::from_str(FULL).expect("yaml");
    let mut outside = Vec::new();
    keys_outside_schema(&schema, &schema, &yaml, "", &mut outside);
    assert_eq!(outside, Vec::<String>::new());

    let typo = FULL.replace("storage: local-lvm", "stroage: local-lvm");
    let yaml: yaml_serde::Value = yaml_serde::from_str(&typo).expect("yaml");
    let mut outside = Vec::new();
    keys_outside_schema(&schema, &schema, &yaml, "", &mut outside);
    assert_eq!(outside, ["defaults.stroage"]);
    let err = parse_raw(&typo, Path::new("full.yaml")).expect_err("parser rejects it too");
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err}");
}

#[test]
fn schema_shows_defaults_and_enums() {
    let s = json_schema();
    let defs = &s["$defs"];
    assert_eq!(defs["RawApi"]["properties"]["port"]["default"], 8006);
    assert_eq!(defs["RawApi"]["properties"]["timeout_secs"]["default"], 30);
    assert_eq!(
        defs["RawLimits"]["properties"]["max_parallel"]["default"],
        4
    );
    let bios: Vec<&str> = Bios::ALL.iter().map(|b| b.as_str()).collect();
    assert_eq!(
        defs["RawDefaults"]["properties"]["bios"]["enum"],
        serde_json::json!(bios)
    );
    let scsi: Vec<&str> = ScsiController::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        defs["RawDefaults"]["properties"]["scsi_controller"]["enum"],
        serde_json::json!(scsi)
    );
}

/// `bios` and `scsihw` of POST /nodes/{node}/qemu in PVE's schema.
fn pve_enums() -> Option<BTreeMap<&'static str, Vec<String>>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pve-api/apidata.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "skipping: {} not found (PVE API schema lives outside the repository)",
            path.display()
        );
        return None;
    };
    let tree: Value = serde_json::from_str(&text).expect("apidata.json is JSON");
    fn find<'a>(nodes: &'a Value, path: &str) -> Option<&'a Value> {
        nodes.as_array()?.iter().find_map(|n| {
            if n["path"] == path {
                Some(n)
            } else {
                find(&n["children"], path)
            }
        })
    }
    let props = &find(&tree, "/nodes/{node}/qemu").expect("endpoint in schema")["info"]["POST"]["parameters"]
        ["properties"];
    let list = |k: &str| -> Vec<String> {
        props[k]["enum"]
            .as_array()
            .expect("enum")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    Some(BTreeMap::from([
        ("bios", list("bios")),
        ("scsihw", list("scsihw")),
    ]))
}

#[test]
fn hand_written_enums_match_pve_schema() {
    let Some(pve) = pve_enums() else { return };
    let bios: Vec<String> = Bios::ALL.iter().map(|b| b.as_str().to_string()).collect();
    assert_eq!(pve["bios"], bios);
    let scsi: Vec<String> = ScsiController::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    assert_eq!(pve["scsihw"], scsi);
}

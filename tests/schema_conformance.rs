//! Schema conformance against the official PVE API schema (`../shared/pve-api/apidata.json`,
//! or `$PVE_APIDATA`): every endpoint and parameter the simulator serves, and every request
//! the client sends while exercising each read operation, must exist there. The schema is
//! AGPL data and is never copied into this repository; without it the tests say so and stop.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use proxmox_manager::{config, ops, pve, sim};
use regex::Regex;
use serde_json::Value;

struct SchemaEndpoint {
    path: String,
    regex: Regex,
    /// Static segments, to prefer `/nodes/{node}/qemu` over `/nodes/{node}/{x}`-like templates.
    statics: usize,
    info: BTreeMap<String, Value>,
}

fn schema_path() -> PathBuf {
    std::env::var_os("PVE_APIDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/pve-api/apidata.json")
        })
}

fn load_schema() -> Option<Vec<SchemaEndpoint>> {
    let path = schema_path();
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "SKIPPED: the PVE API schema is not at {} (set PVE_APIDATA to check conformance)",
            path.display()
        );
        return None;
    };
    let tree: Value = serde_json::from_str(&text).expect("apidata.json is JSON");
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = tree.as_array().expect("root is a list").iter().collect();
    while let Some(node) = stack.pop() {
        if let Some(children) = node["children"].as_array() {
            stack.extend(children.iter());
        }
        let Some(path) = node["path"].as_str() else {
            continue;
        };
        let info: BTreeMap<String, Value> = node["info"]
            .as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default();
        let rx = path
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    "[^/]+".to_string()
                } else {
                    regex::escape(s)
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        out.push(SchemaEndpoint {
            path: path.to_string(),
            regex: Regex::new(&format!("^{rx}$")).expect("path regex"),
            statics: path
                .split('/')
                .filter(|s| !s.is_empty() && !s.starts_with('{'))
                .count(),
            info,
        });
    }
    Some(out)
}

/// Parameter names the schema allows for one method, with `net[n]` turned into a pattern.
fn allows(info: &Value, param: &str) -> bool {
    let Some(props) = info["parameters"]["properties"].as_object() else {
        return false;
    };
    props.keys().any(|k| match k.strip_suffix("[n]") {
        Some(prefix) => param
            .strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
        None => k == param,
    })
}

fn lookup<'a>(
    schema: &'a [SchemaEndpoint],
    method: &str,
    path: &str,
) -> Option<(&'a SchemaEndpoint, &'a Value)> {
    let path = if path.is_empty() { "/" } else { path };
    schema
        .iter()
        .filter(|e| e.regex.is_match(path))
        .max_by_key(|e| e.statics)
        .and_then(|e| e.info.get(method).map(|i| (e, i)))
}

#[test]
fn every_endpoint_and_parameter_the_simulator_serves_is_in_the_schema() {
    let Some(schema) = load_schema() else { return };
    let served = sim::served_endpoints();
    assert!(served.len() >= 20, "the simulator lists its endpoints");
    let mut problems = Vec::new();
    for ep in &served {
        // The API root index is PVE::API2's own `index`; the dump starts at its children.
        if (ep.method, ep.path) == ("GET", "/") {
            continue;
        }
        let found = schema.iter().find(|e| e.path == ep.path);
        let Some(info) = found.and_then(|e| e.info.get(ep.method)) else {
            problems.push(format!("{} {} is not in the schema", ep.method, ep.path));
            continue;
        };
        for p in &ep.params {
            if !allows(info, p) {
                problems.push(format!(
                    "{} {}: parameter `{p}` is not in the schema",
                    ep.method, ep.path
                ));
            }
        }
        for (p, values) in &ep.enums {
            let allowed: BTreeSet<&str> = info["parameters"]["properties"][*p]["enum"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for v in *values {
                if !allowed.contains(v) {
                    problems.push(format!(
                        "{} {}: `{p}` accepts `{v}`, which the schema does not list",
                        ep.method, ep.path
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "simulator drifts from the PVE schema:\n{}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_the_client_sends_is_in_the_schema() {
    let Some(schema) = load_schema() else { return };
    let sim = common::start_sim().await;

    // Every read operation the tools use, through the same ops layer.
    let t = sim.token(common::MANAGER).expect("token");
    let cfg = config::sim_config(
        sim.addr().port(),
        pve::parse_fingerprint(&sim.fingerprint()).expect("fp"),
    );
    let cred = config::credentials::TokenCredential {
        id: t.id,
        secret: secrecy::SecretString::from(t.secret),
        source: config::credentials::CredentialSource::Simulator,
    };
    let ctx = ops::Context::new(cfg.clone(), cred).expect("context");
    ops::cluster_status(&ctx, &ops::ClusterStatusArgs::default())
        .await
        .expect("cluster_status");
    ops::node_status(
        &ctx,
        &ops::NodeStatusArgs {
            node: "pve01".into(),
            page: None,
            page_size: None,
        },
    )
    .await
    .expect("node_status");
    ops::vm_list(&ctx, &ops::VmListArgs::default())
        .await
        .expect("vm_list");
    ops::vm_get(&ctx, &ops::VmGetArgs { vmid: 1000 })
        .await
        .expect("vm_get");
    ops::template_list(&ctx, &ops::TemplateListArgs::default())
        .await
        .expect("template_list");
    ops::storage_list(
        &ctx,
        &ops::StorageListArgs {
            node: Some("pve01".into()),
            ..Default::default()
        },
    )
    .await
    .expect("storage_list");
    ops::storage_content(
        &ctx,
        &ops::StorageContentArgs {
            storage: "local".into(),
            node: Some("pve01".into()),
            content: Some("iso".into()),
            vmid: None,
            page: None,
            page_size: None,
        },
    )
    .await
    .expect("storage_content");
    let c = &ctx.client;
    let tasks = c
        .list_tasks(
            "pve01",
            pve::TaskFilter {
                limit: Some(5),
                source: Some("all".into()),
                ..Default::default()
            },
        )
        .await
        .expect("tasks");
    let upid = tasks[0].upid.clone();
    ops::task_status(&ctx, &ops::TaskStatusArgs { upid: upid.clone() })
        .await
        .expect("task_status");
    ops::task_log(
        &ctx,
        &ops::TaskLogArgs {
            upid,
            start: None,
            limit: Some(5),
            tail: true,
        },
    )
    .await
    .expect("task_log");
    let cred = config::credentials::TokenCredential {
        id: common::MANAGER.into(),
        secret: secrecy::SecretString::from(sim.token(common::MANAGER).expect("t").secret),
        source: config::credentials::CredentialSource::Simulator,
    };
    let report = ops::check(
        cfg,
        Ok(cred),
        Ok(None),
        &proxmox_manager::server::tool_specs(),
    )
    .await;
    assert!(
        report.ok,
        "doctor against the simulator: {:?}",
        report.items
    );
    // Typed client calls not covered above.
    c.get_next_id(Some(4000)).await.expect("nextid");
    c.list_nodes().await.expect("nodes");
    c.get_node_version("pve02").await.expect("node version");
    c.list_qemu("pve02").await.expect("qemu list");
    c.list_storage_config().await.expect("storage.cfg");
    c.get_permissions(Some("/vms")).await.expect("permissions");

    let journal = sim.requests();
    let distinct: BTreeSet<(String, String)> = journal
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert!(
        distinct.len() >= 15,
        "the sweep exercised the client: {distinct:?}"
    );
    let mut problems = Vec::new();
    for r in &journal {
        match lookup(&schema, &r.method, &r.path) {
            None => problems.push(format!("{} {} is not in the schema", r.method, r.path)),
            Some((ep, info)) => {
                for p in &r.params {
                    if !allows(info, p) {
                        problems.push(format!(
                            "{} {} ({}): parameter `{p}` is not in the schema",
                            r.method, r.path, ep.path
                        ));
                    }
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "the client sends what PVE does not define:\n{}",
        problems.join("\n")
    );
}

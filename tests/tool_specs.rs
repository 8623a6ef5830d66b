//! The tool specs against PVE itself: every endpoint a spec declares exists in the official
//! API schema (`../shared/pve-api/apidata.json`, or `$PVE_APIDATA`) with privileges that pass
//! the schema's permission check; and every request a tool really sends to the simulator is
//! one its spec declares. The schema is AGPL data, read from outside the repository; without it
//! the tests say so and stop.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use proxmox_manager::ops::spec::ToolSpec;
use proxmox_manager::server::tool_specs;
use serde_json::{Value, json};

/// `(method, path template)` -> the endpoint's `permissions` object.
type Schema = BTreeMap<(String, String), Value>;

fn load_schema() -> Option<Schema> {
    let path = std::env::var_os("PVE_APIDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/pve-api/apidata.json")
        });
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "SKIPPED: the PVE API schema is not at {} (set PVE_APIDATA)",
            path.display()
        );
        return None;
    };
    let tree: Value = serde_json::from_str(&text).expect("apidata.json is JSON");
    let mut out = Schema::new();
    let mut stack: Vec<&Value> = tree.as_array().expect("root is a list").iter().collect();
    while let Some(node) = stack.pop() {
        if let Some(children) = node["children"].as_array() {
            stack.extend(children.iter());
        }
        let (Some(path), Some(info)) = (node["path"].as_str(), node["info"].as_object()) else {
            continue;
        };
        for (method, i) in info {
            out.insert((method.clone(), path.to_string()), i["permissions"].clone());
        }
    }
    Some(out)
}

/// `/vms/{newid}` and `/vms/{vmid}` are the same kind of object path.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a grant on `granted` covers `wanted` (the same object, or an ancestor of it).
fn covers(granted: &str, wanted: &str) -> bool {
    let (g, w) = (shape(granted), shape(wanted));
    g == w || g == "/" || w.starts_with(&format!("{g}/"))
}

/// The privileges a token holding exactly what the spec declares for one endpoint has: every
/// privilege of an "all" need, the first of an "any" need (the one `grant` commands add).
fn grants(spec_needs: &[proxmox_manager::ops::spec::Need]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for n in spec_needs {
        let privs: Vec<&str> = if n.any {
            n.privs.iter().take(1).copied().collect()
        } else {
            n.privs.to_vec()
        };
        for p in privs {
            out.push((n.path.to_string(), p.to_string()));
        }
    }
    out
}

/// Evaluates a schema `check` expression against the grants. `Err` names what fails.
fn satisfied(check: &Value, grants: &[(String, String)]) -> Result<(), String> {
    let items = check.as_array().ok_or("check is not a list")?;
    let op = items.first().and_then(Value::as_str).unwrap_or("");
    match op {
        "perm" => {
            let path = items.get(1).and_then(Value::as_str).unwrap_or("");
            let privs: Vec<&str> = items
                .get(2)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let rest: Vec<&str> = items.iter().skip(3).filter_map(Value::as_str).collect();
            if rest.contains(&"require_param") {
                // An alternative that applies only when a parameter we never send is given.
                return Err(format!("{path} needs a parameter the tool does not send"));
            }
            let has = |p: &str| grants.iter().any(|(g, gp)| gp == p && covers(g, path));
            let ok = if rest.contains(&"any") {
                privs.iter().any(|p| has(p))
            } else {
                privs.iter().all(|p| has(p))
            };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{} of {privs:?} on {path}",
                    if rest.contains(&"any") { "one" } else { "all" }
                ))
            }
        }
        "and" => items[1..].iter().try_for_each(|c| satisfied(c, grants)),
        "or" => {
            let errs: Vec<String> = items[1..]
                .iter()
                .filter_map(|c| satisfied(c, grants).err())
                .collect();
            if errs.len() < items.len() - 1 {
                Ok(())
            } else {
                Err(errs.join(" or "))
            }
        }
        // Checks on the calling user itself (own tickets, own tokens): nothing to grant.
        "userid-group" | "userid-param" | "perm-modify" => Ok(()),
        other => Err(format!("unknown check `{other}`")),
    }
}

/// Privileges a `user: all` endpoint's description names in quotes (`'SDN.Use'`).
fn described_privileges(description: &str) -> Vec<String> {
    description
        .split('\'')
        .skip(1)
        .step_by(2)
        .filter(|w| {
            w.split('.').count() >= 2
                && w.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        })
        .map(str::to_string)
        .collect()
}

/// Privileges a description names that do not apply to how our tools call the endpoint.
const NOT_APPLICABLE: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/nodes/{node}/qemu",
        "VM.Backup",
        "restore over an existing VM: backup_restore declares it (QEMU_RESTORE); creates from a template pass no archive",
    ),
    (
        "POST",
        "/nodes/{node}/lxc",
        "VM.Backup",
        "restore over an existing container: backup_restore declares it (LXC_RESTORE); ct_create passes no archive",
    ),
    (
        "POST",
        "/nodes/{node}/vzdump",
        "Datastore.Allocate",
        "prune-backups: backup_now never sets it",
    ),
    (
        "POST",
        "/nodes/{node}/vzdump",
        "Sys.Modify",
        "bwlimit, performance and ionice: backup_now never sets them",
    ),
    (
        "DELETE",
        "/nodes/{node}/storage/{storage}/content/{volume}",
        "VM.Backup",
        "backup volumes: no tool deletes backups yet",
    ),
    (
        "DELETE",
        "/nodes/{node}/storage/{storage}/content/{volume}",
        "Datastore.AllocateSpace",
        "the backup-volume alternative: tools delete images and ISOs",
    ),
    (
        "GET",
        "/access/permissions",
        "Sys.Audit",
        "another user's permissions: the token reads its own",
    ),
    (
        "GET",
        "/nodes/{node}/tasks/{upid}/status",
        "Sys.Audit",
        "another user's tasks: a tool waits for the tasks it started (task_status declares it)",
    ),
    (
        "GET",
        "/nodes/{node}/tasks/{upid}/log",
        "Sys.Audit",
        "another user's tasks: a tool reads the tasks it started (task_log declares it)",
    ),
];

#[test]
fn every_declared_endpoint_is_in_the_schema_with_the_privileges_it_checks() {
    let Some(schema) = load_schema() else { return };
    let mut problems = Vec::new();
    let mut checked = 0;
    for spec in tool_specs() {
        for e in spec.calls {
            let key = (e.method.to_string(), e.path.to_string());
            let Some(perms) = schema.get(&key) else {
                problems.push(format!(
                    "{}: {} {} is not in the schema",
                    spec.name, e.method, e.path
                ));
                continue;
            };
            let g = grants(e.needs);
            if let Some(check) = perms.get("check") {
                checked += 1;
                if let Err(why) = satisfied(check, &g) {
                    problems.push(format!(
                        "{}: {} {} checks {check}; the spec lacks {why}",
                        spec.name, e.method, e.path
                    ));
                }
            }
            if let Some(text) = perms.get("description").and_then(Value::as_str) {
                for p in described_privileges(text) {
                    let declared = e.needs.iter().any(|n| n.privs.contains(&p.as_str()));
                    let exempt = NOT_APPLICABLE.iter().any(|(m, path, priv_, _)| {
                        *m == e.method && *path == e.path && *priv_ == p
                    });
                    if !declared && !exempt {
                        problems.push(format!(
                            "{}: {} {} says \"{text}\"; the spec does not declare {p}",
                            spec.name, e.method, e.path
                        ));
                    }
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 20, "only {checked} schema checks compared");
}

#[test]
fn the_permission_evaluator_reads_the_schema_forms() {
    let g = vec![
        ("/vms/{vmid}".to_string(), "VM.Clone".to_string()),
        ("/vms/{vmid}".to_string(), "VM.Allocate".to_string()),
    ];
    let clone = json!([
        "and",
        ["perm", "/vms/{vmid}", ["VM.Clone"]],
        [
            "or",
            ["perm", "/vms/{newid}", ["VM.Allocate"]],
            [
                "perm",
                "/pool/{pool}",
                ["VM.Allocate"],
                "require_param",
                "pool"
            ]
        ]
    ]);
    assert!(satisfied(&clone, &g).is_ok());
    assert!(satisfied(&clone, &g[..1]).is_err(), "VM.Allocate missing");
    let any = json!([
        "perm",
        "/vms/{vmid}",
        ["VM.Config.Disk", "VM.Config.CPU"],
        "any",
        1
    ]);
    assert!(satisfied(&any, &[("/".into(), "VM.Config.CPU".into())]).is_ok());
    assert!(satisfied(&any, &[("/storage".into(), "VM.Config.CPU".into())]).is_err());
    assert_eq!(
        described_privileges("You need 'VM.Allocate' on /vms and 'SDN.Use' on any bridge."),
        ["VM.Allocate", "SDN.Use"]
    );
}

/// Which spec endpoint a simulator journal entry is: the template whose static segments match.
fn template_of<'a>(spec: &'a ToolSpec, method: &str, path: &str) -> Option<&'a str> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    spec.calls
        .iter()
        .filter(|e| e.method == method)
        .map(|e| e.path)
        .find(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segs.len()
                && ts
                    .iter()
                    .zip(&segs)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_a_tool_sends_is_declared_in_its_spec() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = common::write_config(dir.path(), &sim);
    let (client, _) = common::mcp::connect(&cfg, &common::token_env(&sim), dir.path(), &[]).await;
    // One call of every tool that reaches PVE, acting where it can (the manager token).
    let (err, made, text) = common::mcp::call(
        &client,
        "vm_create",
        json!({"template": 100, "name": "spec-check", "start": true, "wait_for_ip": false}),
    )
    .await;
    assert!(!err, "vm_create: {text}");
    let vm = made["vmid"].as_u64().expect("vmid");
    let calls: Vec<(&str, Value)> = vec![
        ("cluster_status", json!({})),
        ("node_status", json!({"node": "pve01"})),
        ("vm_list", json!({})),
        ("vm_get", json!({"vmid": 1000})),
        ("template_list", json!({})),
        ("storage_list", json!({})),
        (
            "storage_content",
            json!({"storage": "local", "node": "pve01"}),
        ),
        ("access_check", json!({})),
        ("cluster_balance", json!({})),
        ("vm_migrate_check", json!({"vmid": 1000, "target": "pve02"})),
        ("vm_migrate", json!({"vmid": 1003, "target": "pve02"})),
        ("node_evacuate", json!({"node": "pve03"})),
        ("bulk_power", json!({"action": "start", "tags": ["web"]})),
        (
            "bulk_snapshot",
            json!({"name": "spec-{date}", "tags": ["web"]}),
        ),
        ("snapshot_list", json!({"vmid": 1000})),
        ("disk_orphans", json!({})),
        (
            "disk_orphans_delete",
            json!({"volids": ["local-lvm:vm-1099-disk-0"]}),
        ),
        ("vm_set_tags", json!({"vmid": vm, "add": ["spec"]})),
        ("vm_resize", json!({"vmid": vm, "cores": 2, "disk": "+1G"})),
        ("vm_reboot", json!({"vmid": vm})),
        ("vm_shutdown", json!({"vmid": vm})),
        ("vm_start", json!({"vmid": vm})),
        ("vm_stop", json!({"vmid": vm, "confirm": true})),
        ("template_convert", json!({"vmid": vm})),
        ("template_delete", json!({"vmid": vm, "confirm": true})),
        ("vm_delete", json!({"vmid": 1007, "confirm": true})),
        ("ct_templates", json!({})),
        (
            "ct_create",
            json!({"template": 110, "hostname": "spec-ct", "disk": 6, "start": true}),
        ),
        (
            "ct_create",
            json!({"template": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", "hostname": "spec-ct2", "start": true}),
        ),
        (
            "backup_restore",
            json!({"archive": "local:backup/vzdump-lxc-1200-2026_11_21-01_30_04.tar.zst", "confirm": true}),
        ),
    ];
    let mut problems = BTreeSet::new();
    let mut seen = 0;
    for (tool, args) in calls {
        let before = sim.requests().len();
        let (_err, _, text) = common::mcp::call(&client, tool, args).await;
        let spec = proxmox_manager::server::tool_spec(tool).expect("spec");
        for r in sim.requests().into_iter().skip(before) {
            seen += 1;
            if template_of(spec, &r.method, &r.path).is_none() {
                problems.insert(format!(
                    "{tool} sent {} {} which its spec does not declare ({})",
                    r.method,
                    r.path,
                    text.chars().take(120).collect::<String>()
                ));
            }
        }
    }
    assert!(seen > 40, "the sweep sent only {seen} requests");
    assert!(
        problems.is_empty(),
        "{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
    client.cancel().await.ok();
}

fn perms(entries: &[(&str, Vec<String>)]) -> proxmox_manager::ops::Permissions {
    entries
        .iter()
        .map(|(path, privs)| {
            (
                path.to_string(),
                privs.iter().map(|p| (p.clone(), 1u8)).collect(),
            )
        })
        .collect()
}

fn evaluate(
    p: &proxmox_manager::ops::Permissions,
    pve_major: u32,
) -> Vec<proxmox_manager::ops::ToolsetAccess> {
    let input = proxmox_manager::ops::AccessInput {
        perms: p,
        pve_major,
        node: "pve01",
        bridge: "vmbr0",
        ssh_configured: true,
    };
    proxmox_manager::ops::evaluate_access(&input, &tool_specs()).0
}

/// The role `rbac bootstrap` creates is enough for every tool on PVE 8 and 9 — including
/// SDN.Use on the bridge, which the seed's role lacks.
#[test]
fn the_bootstrapped_role_makes_every_toolset_ready() {
    for major in [8, 9] {
        let (privs, notes) = proxmox_manager::ops::role_privileges(major, false);
        assert!(
            privs.iter().any(|p| p == "SDN.Use"),
            "PVE {major}: {privs:?}"
        );
        assert!(notes.iter().any(|n| n.contains("SDN.Use")), "{notes:?}");
        for set in evaluate(&perms(&[("/", privs.clone())]), major) {
            assert_eq!(set.status, "ready", "PVE {major}: {set:?}");
        }
    }
    // The seed's role as written (no SDN.Use) is refused where PVE checks the bridge.
    let seed: Vec<String> = proxmox_manager::ops::access::SEED_PRIVILEGES
        .iter()
        .map(|p| p.to_string())
        .collect();
    let sets = evaluate(&perms(&[("/", seed)]), 8);
    let vm = sets.iter().find(|s| s.toolset == "vm").expect("vm");
    let create = vm.tools.iter().find(|t| t.tool == "vm_create").expect("t");
    assert!(!create.ready);
    assert!(
        create
            .missing
            .iter()
            .any(|m| m.privilege == "SDN.Use" && m.path == "/sdn/zones/localnetwork/vmbr0"),
        "{create:?}"
    );
}

#[test]
fn a_read_only_token_gets_the_grant_for_the_write_tools() {
    let sets = evaluate(&perms(&[("/vms", vec!["VM.Audit".into()])]), 9);
    let vm = sets.iter().find(|s| s.toolset == "vm").expect("vm");
    assert_eq!(vm.status, "partial");
    assert!(vm.tools.iter().any(|t| t.tool == "vm_list" && t.ready));
    let grant = vm.grant.as_deref().expect("grant");
    assert!(grant.starts_with("pveum role modify ClaudeCodeManager --append 1 --privs \""));
    assert!(grant.contains("VM.Clone") && grant.contains("VM.GuestAgent.Audit"));
    let runbook = sets.iter().find(|s| s.toolset == "runbook").expect("rb");
    assert_eq!(runbook.status, "ready");
    assert!(runbook.grant.is_none());
}

#[test]
fn the_guest_agent_privilege_follows_the_pve_version() {
    let p = perms(&[("/", vec!["VM.Audit".into(), "VM.Monitor".into()])]);
    for (major, ok) in [(8, true), (9, false)] {
        let sets = evaluate(&p, major);
        let vm_get = sets
            .iter()
            .flat_map(|s| s.tools.iter())
            .find(|t| t.tool == "vm_get")
            .expect("vm_get");
        assert!(vm_get.ready, "optional only");
        assert_eq!(vm_get.missing.is_empty(), ok, "PVE {major}: {vm_get:?}");
    }
}

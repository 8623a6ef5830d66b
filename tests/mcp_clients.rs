//! Other real MCP clients against the real binary: the MCP Inspector CLI (`--strict` schema
//! portability check of `tools/list`, a read-only call, a tool error), the MCP conformance
//! suite's generic server scenarios over Streamable HTTP, and the official Python `mcp` client
//! holding a short conversation over HTTP with a bearer token.
//!
//! The npm clients are pinned in `.ci/clients` (`npm ci --prefix .ci/clients`); the Python SDK
//! is `pip install mcp==2.3.0`. `bash .ci/run` installs both.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::clients;

fn inspector(home: &Path) -> Command {
    let mut cmd = Command::new(clients::bin("inspector"));
    cmd.envs(clients::quiet_env(home)).current_dir(home);
    cmd.arg("--cli")
        .arg(common::binary())
        .args(["serve", "--sim", "--sim-time-scale", "0.01"]);
    cmd
}

#[test]
fn inspector_strict_tools_list_finds_no_portability_problem() {
    let home = tempfile::tempdir().expect("home");
    let run = clients::run(inspector(home.path()).args(["--method", "tools/list", "--strict"]));
    assert!(run.ok(), "inspector --strict tools/list failed\n{run}");
    // Warnings are printed as "Warning: tool ..." with a summary line; none may appear.
    assert!(
        !run.stderr.contains("Warning:") && !run.stderr.contains("warnings across"),
        "schema portability warnings\n{}",
        run.stderr
    );
    let listed: serde_json::Value = serde_json::from_str(&run.stdout).expect("tools/list JSON");
    let tools = listed["tools"].as_array().expect("tools");
    let catalogue = proxmox_manager::server::Catalogue::full();
    assert_eq!(
        tools.len(),
        catalogue.tools.len(),
        "every tool of the catalogue is listed"
    );
}

#[test]
fn inspector_calls_a_read_only_tool_and_sees_tool_errors() {
    let home = tempfile::tempdir().expect("home");
    let run = clients::run(inspector(home.path()).args([
        "--method",
        "tools/call",
        "--tool-name",
        "vm_list",
        "--tool-arg",
        "tag=prod",
    ]));
    assert!(run.ok(), "inspector tools/call vm_list failed\n{run}");
    let result: serde_json::Value = serde_json::from_str(&run.stdout).expect("result JSON");
    let vms = result["structuredContent"]["vms"].as_array().expect("vms");
    assert!(!vms.is_empty(), "{result}");
    assert!(
        vms.iter().all(|v| v["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&"prod".into()))),
        "the tag filter reached the server: {result}"
    );
    assert!(run.stderr.trim().is_empty(), "no validator noise\n{run}");

    // A tool error is an `isError` result, which the Inspector reports with exit status 5.
    let run = clients::run(inspector(home.path()).args([
        "--method",
        "tools/call",
        "--tool-name",
        "vm_get",
        "--tool-arg",
        "vmid=99999",
    ]));
    assert_eq!(run.code, Some(5), "{run}");
    assert!(
        run.stdout.contains("99999"),
        "the error names the VM\n{run}"
    );
}

/// Server scenarios of `@modelcontextprotocol/conformance` 0.1.11 that apply to any server.
/// The others exercise the SDK's own test server (`test_simple_text`, `test_image_content`,
/// sampling, elicitation, completion, subscriptions, fixed test resources and prompts) and fail
/// on every application server; `logging-set-level` applies to servers that declare the
/// `logging` capability, which this one does not (it sends no log notifications: progress
/// goes through `notifications/progress`, diagnostics to stderr).
const GENERIC_SCENARIOS: &[&str] = &[
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "server-sse-polling",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
];

#[tokio::test(flavor = "multi_thread")]
async fn conformance_suite_generic_server_scenarios_pass_over_http() {
    // The suite sends no bearer token: loopback with --no-auth, as its DNS-rebinding scenario
    // describes (a local server without authentication must check Host and Origin).
    let (_server, url) = common::http::start("127.0.0.1:0", &["--no-auth"], None).await;
    let home = tempfile::tempdir().expect("home");
    let conformance = clients::bin("conformance");
    tokio::task::spawn_blocking(move || {
        let mut failed = Vec::new();
        for scenario in GENERIC_SCENARIOS {
            let run = clients::run(
                Command::new(&conformance)
                    .envs(clients::quiet_env(home.path()))
                    .current_dir(home.path())
                    .args(["server", "--url", &url, "--scenario", scenario]),
            );
            if !run.ok() || !run.stdout.contains(", 0 failed") {
                failed.push(format!("{scenario}\n{run}"));
            }
        }
        assert!(
            failed.is_empty(),
            "conformance scenarios failed:\n{}",
            failed.join("\n")
        );
    })
    .await
    .expect("conformance runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn official_python_client_converses_over_http() {
    const BEARER: &str = "py-http-bearer-5c1d";
    let (_server, url) = common::http::start("127.0.0.1:0", &[], Some(BEARER)).await;
    let script = clients::repo().join("tests/python/e2e_http.py");
    let probe = Command::new(crate::common::external::require("python3"))
        .args(["-c", "import mcp"])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the Python MCP SDK is missing: run `./test.sh` (it installs .ci/requirements-test.txt into .ci/venv and puts it first on PATH)"
    );
    let run = tokio::task::spawn_blocking(move || {
        clients::run(
            Command::new(crate::common::external::require("python3"))
                .arg(script)
                .arg(&url)
                .env("MCP_BEARER", BEARER),
        )
    })
    .await
    .expect("python runs");
    assert!(run.ok(), "python client over HTTP failed\n{run}");
    assert!(run.stdout.contains("2 conversations passed"), "{run}");
}

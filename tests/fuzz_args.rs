//! Bad input, through the MCP protocol: one server process against the simulator gets
//! hundreds of random and malformed argument objects for every tool (wrong types, missing
//! fields, huge and negative numbers, unicode, very long strings, nesting, nulls, extra keys,
//! shell metacharacters) from a small seeded PRNG. Nothing destructive can run: `confirm` is
//! always stripped, a `vmid` never names a VM (never an integer in 100-9999), and the tools
//! that could create something without `confirm` always miss their required `name`.
//!
//! The server must never panic, must answer every request (a result or a JSON-RPC error)
//! within a deadline, must report tool failures as `isError: true` with a message, and must
//! still work afterwards.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Calls per tool.
const PER_TOOL: usize = 300;
/// Requests in flight at once.
const BATCH: usize = 50;
/// A batch must be answered within this.
const BATCH_DEADLINE: Duration = Duration::from_secs(30);

/// Tools that may create something when their arguments happen to be valid and no `confirm`
/// is needed: they always lose `name` (required by each), so they can only be refused.
const CREATORS: &[&str] = &[
    "vm_create",
    "template_from_cloud_image",
    "template_from_iso",
    "template_import_disk",
];

/// splitmix64: small, seedable, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const STRINGS: &[&str] = &[
    "",
    " ",
    "pve01",
    "pve99",
    "local",
    "local-lvm",
    "nosuchstorage",
    "ubuntu-noble-tmpl",
    "UPID:pve01:00001234:00005678:65000000:qmstart:1000:root@pam:",
    "UPID:garbage",
    "; rm -rf / #",
    "$(touch /tmp/pwned)",
    "`reboot`",
    "a && b || c | d > e < f",
    "'\"\\",
    "../../../../etc/passwd",
    "/dev/zero",
    "file:///etc/shadow",
    "http://127.0.0.1:1/x.img",
    "https://[::1",
    "line\nbreak\r\n",
    "nul\u{0}byte",
    "ünïcödé 日本語 🦀 \u{202e}rtl",
    "\u{feff}bom",
    "-1",
    "1000",
    "0x10",
    "1e999",
    "NaN",
    "true",
    "null",
    "{}",
    "[]",
    "sha256:zz",
    "2G",
    "-5G",
    "99999999999999999999T",
    "virtio0",
    "template",
    "%s%n%x",
    "${HOME}",
];

const NUMBERS: &[f64] = &[
    0.0,
    -1.0,
    1.5,
    -0.0,
    1e308,
    -1e308,
    4294967296.0,
    18446744073709551616.0,
    1e-300,
];

fn long_string(rng: &mut Rng) -> String {
    let unit = rng.pick(&["a", "é", "🦀", "; ", "\\", "%"]);
    unit.repeat(1 + rng.below(70_000))
}

fn random_number(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => json!(i64::MIN),
        1 => json!(u64::MAX),
        2 => json!(rng.next() as i64),
        3 => json!(-(rng.below(100_000) as i64)),
        4 => json!(rng.below(100_000)),
        _ => json!(*rng.pick(NUMBERS)),
    }
}

/// Any JSON value, nested up to `depth`.
fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let kinds = if depth == 0 { 6 } else { 8 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => random_number(rng),
        3 => Value::String(rng.pick(STRINGS).to_string()),
        4 => Value::String(long_string(rng)),
        5 => Value::String(format!("{}{}", rng.pick(STRINGS), rng.pick(STRINGS))),
        6 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(5) {
                let k = rng.pick(STRINGS).to_string();
                m.insert(k, random_value(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

/// A value of roughly the schema's type (often subtly wrong), or anything at all.
fn value_for(rng: &mut Rng, schema: &Value) -> Value {
    if rng.chance(35) {
        return random_value(rng, 3);
    }
    let ty = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .get(rng.below(ts.len().max(1)))
            .and_then(Value::as_str)
            .unwrap_or("string")
            .to_string(),
        _ => "string".into(),
    };
    match ty.as_str() {
        "integer" | "number" => random_number(rng),
        "boolean" => Value::Bool(rng.chance(50)),
        "null" => Value::Null,
        "array" => Value::Array(
            (0..rng.below(6))
                .map(|_| {
                    if rng.chance(70) {
                        Value::String(rng.pick(STRINGS).to_string())
                    } else {
                        random_value(rng, 2)
                    }
                })
                .collect(),
        ),
        "object" => random_value(rng, 3),
        _ => {
            if rng.chance(10) {
                Value::String(long_string(rng))
            } else {
                Value::String(rng.pick(STRINGS).to_string())
            }
        }
    }
}

/// A vmid that names no VM: never a number (or numeric string) in 100-9999.
fn defuse_vmid(rng: &mut Rng, v: &mut Value) {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    if n.is_some_and(|n| (100.0..10_000.0).contains(&n)) {
        *v = json!(*rng.pick(&[0_i64, 1, 99, -100, 10_000_000, 999_999_999]));
    }
}

/// The arguments for one call: usually an object built from the schema with fields dropped,
/// retyped and added; sometimes not an object at all.
fn arguments(rng: &mut Rng, tool: &str, schema: &Value) -> Value {
    if rng.chance(5) {
        return random_value(rng, 2);
    }
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut args = Map::new();
    for (name, prop) in &props {
        if rng.chance(70) {
            args.insert(name.clone(), value_for(rng, prop));
        }
    }
    for i in 0..rng.below(4) {
        args.insert(
            format!("extra_{i}_{}", rng.pick(STRINGS)),
            random_value(rng, 2),
        );
    }
    args.remove("confirm");
    if CREATORS.contains(&tool) {
        args.remove("name");
    }
    if let Some(v) = args.get_mut("vmid") {
        defuse_vmid(rng, v);
    }
    Value::Object(args)
}

struct Server {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    /// Responses read while waiting for others.
    pending: HashMap<u64, Value>,
}

impl Server {
    async fn send(&mut self, msg: &Value) {
        let line = format!("{msg}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("the server still reads its stdin");
        self.stdin.flush().await.expect("flush");
    }

    /// Reads until every id in `ids` has its response; panics after `deadline`.
    async fn responses(&mut self, ids: &[u64], deadline: Duration) -> HashMap<u64, Value> {
        let start = Instant::now();
        let mut out = HashMap::new();
        for id in ids {
            if let Some(v) = self.pending.remove(id) {
                out.insert(*id, v);
            }
        }
        while out.len() < ids.len() {
            let left = deadline.saturating_sub(start.elapsed());
            let missing: Vec<_> = ids.iter().filter(|i| !out.contains_key(i)).collect();
            let line = tokio::time::timeout(left, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no response within {deadline:?} for ids {missing:?}"))
                .expect("read stdout")
                .unwrap_or_else(|| panic!("the server closed stdout; unanswered: {missing:?}"));
            let msg: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            let Some(id) = msg.get("id").and_then(Value::as_u64) else {
                continue; // a notification
            };
            if msg.get("result").is_none() && msg.get("error").is_none() {
                continue; // a request from the server
            }
            if ids.contains(&id) {
                out.insert(id, msg);
            } else {
                self.pending.insert(id, msg);
            }
        }
        out
    }

    async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        self.responses(&[id], BATCH_DEADLINE)
            .await
            .remove(&id)
            .expect("response")
    }
}

/// A result with `isError: true` must say why; a JSON-RPC error must have a message.
fn check_response(tool: &str, args: &Value, resp: &Value, tally: &mut [usize; 3]) {
    if let Some(err) = resp.get("error") {
        let msg = err["message"].as_str().unwrap_or("");
        assert!(
            !msg.trim().is_empty() && err["code"].is_i64(),
            "{tool}: JSON-RPC error without code or message: {resp} for {args}"
        );
        tally[2] += 1;
        return;
    }
    let result = &resp["result"];
    assert!(result.is_object(), "{tool}: no result object: {resp}");
    if result["isError"] == true {
        let text: String = result["content"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|x| x["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        assert!(
            !text.trim().is_empty(),
            "{tool}: isError without a message: {resp} for {args}"
        );
        tally[1] += 1;
    } else {
        tally[0] += 1;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_and_malformed_arguments_never_break_the_server() {
    let sim = common::start_sim().await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = common::write_ssh_config(dir.path(), &sim);
    let stderr_path = dir.path().join("server.stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child = tokio::process::Command::new(common::binary())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--task-poll-ms", "5", "--lock-wait-s", "2"])
        .env("PROXMOX_MANAGER_TOKEN", common::token_env(&sim))
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env_remove("PROXMOX_MANAGER_CONFIG")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn server");
    let stdin = child.stdin.take().expect("stdin");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut s = Server {
        child,
        stdin,
        lines,
        pending: HashMap::new(),
    };
    let started = Instant::now();

    s.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "fuzz", "version": "1"}}),
    )
    .await;
    s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    let list = s.request(2, "tools/list", json!({})).await;
    let tools: Vec<(String, Value)> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().expect("name").to_string(),
                t["inputSchema"].clone(),
            )
        })
        .collect();
    assert!(tools.len() >= 20, "{list}");

    let mut rng = Rng(0x005E_ED0F_F022);
    let mut next_id = 100_u64;
    let mut tallies: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for (tool, schema) in &tools {
        let tally = tallies.entry(tool.clone()).or_default();
        let mut done = 0;
        while done < PER_TOOL {
            let mut sent: Vec<(u64, Value)> = Vec::new();
            for _ in 0..BATCH.min(PER_TOOL - done) {
                let args = arguments(&mut rng, tool, schema);
                let id = next_id;
                next_id += 1;
                let mut params = json!({"name": tool, "arguments": args.clone()});
                // Now and then, the arguments go missing altogether.
                if rng.chance(3) {
                    params = json!({"name": tool});
                }
                s.send(
                    &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}),
                )
                .await;
                sent.push((id, args));
            }
            let ids: Vec<u64> = sent.iter().map(|(id, _)| *id).collect();
            let mut answers = s.responses(&ids, BATCH_DEADLINE).await;
            for (id, args) in &sent {
                let resp = answers.remove(id).expect("answered");
                check_response(tool, args, &resp, tally);
            }
            done += sent.len();
        }
    }

    // Protocol-level garbage: an unknown tool, a non-object params, a missing name.
    for (i, params) in [
        json!({"name": "no_such_tool", "arguments": {}}),
        json!({"name": "vm_get", "arguments": [1, 2]}),
        json!({"arguments": {"vmid": 1}}),
        json!({"name": 12, "arguments": null}),
    ]
    .into_iter()
    .enumerate()
    {
        let id = 10 + i as u64;
        let resp = s.request(id, "tools/call", params.clone()).await;
        let mut t = [0; 3];
        check_response("(protocol)", &params, &resp, &mut t);
        assert_eq!(t[0], 0, "{params} should fail: {resp}");
    }

    // `params` that is not an object is dropped by rmcp without any answer (a JSON-RPC
    // -32602 would be correct); all that is asked here is that the server survives it.
    s.send(&json!({"jsonrpc": "2.0", "id": 15, "method": "tools/call", "params": "a string"}))
        .await;

    // Still alive and working.
    let list = s.request(20, "tools/list", json!({})).await;
    assert_eq!(
        list["result"]["tools"].as_array().map(Vec::len),
        Some(tools.len()),
        "{list}"
    );
    let status = s
        .request(
            21,
            "tools/call",
            json!({"name": "cluster_status", "arguments": {}}),
        )
        .await;
    assert!(
        status["result"].is_object() && status["result"]["isError"] != true,
        "{status}"
    );
    // No VM the simulator started with was touched.
    for vmid in [100, 1000, 1002, 1007] {
        let id = 30 + vmid as u64;
        let r = s
            .request(
                id,
                "tools/call",
                json!({"name": "vm_get", "arguments": {"vmid": vmid}}),
            )
            .await;
        assert!(r["result"]["isError"] != true, "vm {vmid} still there: {r}");
    }

    drop(s.stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), s.child.wait()).await;
    let _ = s.child.start_kill();
    let stderr = std::fs::read_to_string(&stderr_path).expect("read stderr");
    assert!(
        !stderr.contains("panicked"),
        "the server panicked:\n{stderr}"
    );
    let total: usize = tallies.values().map(|t| t.iter().sum::<usize>()).sum();
    eprintln!(
        "{total} calls in {:?}; per tool [ok, isError, JSON-RPC error]: {tallies:?}",
        started.elapsed()
    );
    assert_eq!(total, tools.len() * PER_TOOL);
}

//! The real binary over stdio: every frame gets exactly one answer, malformed ones a JSON-RPC
//! error with the right code and (when recoverable) id, and the server keeps serving.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

struct Server {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    async fn start() -> Self {
        let mut child = Command::new(common::binary())
            .args(["serve", "--sim", "--sim-time-scale", "0.01"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn server");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut s = Self {
            _child: child,
            stdin,
            stdout,
        };
        s.send(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},
                "clientInfo":{"name":"framing-test","version":"1"}}})
            .to_string()
            .as_bytes(),
        )
        .await;
        let init = s.reply().await;
        assert_eq!(init["id"], 0, "{init}");
        s.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        s
    }

    async fn send(&mut self, frame: &[u8]) {
        self.stdin.write_all(frame).await.expect("write");
        self.stdin.write_all(b"\n").await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    /// The next line on stdout, within a minute.
    async fn reply(&mut self) -> Value {
        read_reply(&mut self.stdout).await
    }

    /// A ping answered next proves the previous frame got exactly one reply and the server
    /// still serves.
    async fn ping(&mut self, tag: &str) {
        let id = format!("ping-{tag}");
        self.send(
            json!({"jsonrpc":"2.0","id":id,"method":"ping"})
                .to_string()
                .as_bytes(),
        )
        .await;
        let r = self.reply().await;
        assert_eq!(r["id"], json!(id), "the next line answers the ping: {r}");
        assert!(r.get("error").is_none(), "{r}");
    }

    async fn call(&mut self, id: u64, tool: &str, args: Value) -> Value {
        self.send(
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
                   "params":{"name":tool,"arguments":args}})
            .to_string()
            .as_bytes(),
        )
        .await;
        let r = self.reply().await;
        assert_eq!(r["id"], id, "{r}");
        r
    }
}

async fn read_reply(stdout: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
        .await
        .expect("a reply within a minute")
        .expect("read")
        .expect("the server is still running");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply is JSON ({e}): {line}"))
}

fn assert_error(r: &Value, code: i64, id: &Value, what: &str) {
    assert_eq!(r["error"]["code"], code, "{what}: {r}");
    assert_eq!(&r["id"], id, "{what}: {r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {r}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_malformed_frame_gets_one_answer_and_the_server_keeps_serving() {
    let mut s = Server::start().await;
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":{}0{}}}}}"#,
        "[".repeat(125),
        "]".repeat(125)
    );
    let cases: Vec<(&str, Vec<u8>, i64, Value)> = vec![
        ("nesting of 125 levels", deep.into_bytes(), -32700, json!(1)),
        (
            "a lone surrogate",
            br#"{"jsonrpc":"2.0","id":2,"method":"ping","params":{"s":"\ud800"}}"#.to_vec(),
            -32700,
            json!(2),
        ),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\",\"params\":{\"s\":\"\xc3\x28\"}}"
                .to_vec(),
            -32700,
            json!(3),
        ),
        (
            "NaN",
            br#"{"jsonrpc":"2.0","id":"four","method":"ping","params":{"n":NaN}}"#.to_vec(),
            -32700,
            json!("four"),
        ),
        (
            "a NUL byte",
            b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}\x00".to_vec(),
            -32700,
            json!(5),
        ),
        (
            "two messages on one line",
            br#"{"jsonrpc":"2.0","id":6,"method":"ping"}{"jsonrpc":"2.0","id":7,"method":"ping"}"#
                .to_vec(),
            -32700,
            json!(6),
        ),
        ("no JSON at all", b"hello".to_vec(), -32700, Value::Null),
        (
            "JSON but no JSON-RPC message",
            br#"{"id":8,"hello":"world"}"#.to_vec(),
            -32600,
            json!(8),
        ),
        (
            "params that fit no known method",
            br#"{"jsonrpc":"2.0","id":"p5","method":"tools/call","params":5}"#.to_vec(),
            -32602,
            json!("p5"),
        ),
        (
            "a duplicate key",
            br#"{"jsonrpc":"2.0","id":9,"method":"ping","method":"ping"}"#.to_vec(),
            -32600,
            json!(9),
        ),
    ];
    for (what, frame, code, id) in cases {
        s.send(&frame).await;
        let r = s.reply().await;
        assert_error(&r, code, &id, what);
        s.ping(what).await;
    }
    // Frames that parse but that rmcp refuses keep their id too.
    s.send(br#"{"jsonrpc":"2.0","id":"no-name","method":"tools/call","params":{"arguments":{}}}"#)
        .await;
    let r = s.reply().await;
    assert_eq!(r["id"], "no-name", "{r}");
    assert!(r.get("error").is_some(), "{r}");
    s.ping("after a refused call").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mb_line_is_refused_once_and_the_server_keeps_serving() {
    let Server {
        _child,
        stdin,
        mut stdout,
    } = Server::start().await;
    // Written from another task: the server answers as soon as the 4 MiB cap is crossed,
    // while the rest of the line is still coming.
    let mut stdin = stdin;
    let writer = tokio::spawn(async move {
        stdin
            .write_all(br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"x","arguments":{"blob":""#)
            .await
            .expect("write");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..50 {
            stdin.write_all(&chunk).await.expect("write");
        }
        stdin.write_all(b"\"}}}\n").await.expect("write");
        stdin.flush().await.expect("flush");
        stdin
    });
    let r = read_reply(&mut stdout).await;
    assert_error(&r, -32700, &json!(42), "a 50 MB line");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("4194304")),
        "the message names the cap: {r}"
    );
    let stdin = writer.await.expect("writer");
    let mut s = Server {
        _child,
        stdin,
        stdout,
    };
    s.ping("after the long line").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_confirm_key_is_refused_and_nothing_is_done() {
    let mut s = Server::start().await;
    let r = s.call(10, "vm_list", json!({"page_size": 1})).await;
    let vmid = r["result"]["structuredContent"]["vms"][0]["vmid"]
        .as_u64()
        .unwrap_or_else(|| panic!("a VM to aim at: {r}"));
    let frame = format!(
        r#"{{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{{"name":"vm_delete","arguments":{{"vmid":{vmid},"confirm":false,"confirm":true}}}}}}"#
    );
    s.send(frame.as_bytes()).await;
    let r = s.reply().await;
    assert_error(&r, -32600, &json!(11), "duplicate confirm");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"confirm\"")),
        "the key is named: {r}"
    );
    let r = s.call(12, "vm_get", json!({"vmid": vmid})).await;
    assert_eq!(
        r["result"]["isError"],
        json!(false),
        "VM {vmid} still exists: {r}"
    );
    assert_eq!(r["result"]["structuredContent"]["vmid"], vmid, "{r}");
}

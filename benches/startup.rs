//! Start-up benchmark: time from process start to the first `tools/list` answer over stdio,
//! and the server's resident memory right after it.
//!
//! Run: `cargo bench --bench startup` (builds the `dist` profile's binary first, what installs build). Prints one line per
//! run and a summary with the median and the worst run. The server runs with `--sim`, so the
//! measurement includes starting the embedded simulator (certificate generation included),
//! which a real deployment does not pay: the figure is an upper bound.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const RUNS: usize = 10;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn one_run(binary: &str) -> Result<(Duration, u64), String> {
    let start = Instant::now();
    let mut child = Command::new(binary)
        .args(["serve", "--sim"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn {binary}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let msgs = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    ];
    for m in msgs {
        writeln!(stdin, "{m}").map_err(|e| e.to_string())?;
    }
    stdin.flush().map_err(|e| e.to_string())?;
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("server closed stdout before answering tools/list".into());
        }
        if line.contains(r#""id":2"#) {
            break;
        }
    }
    let elapsed = start.elapsed();
    let rss = rss_kib(child.id()).unwrap_or(0);
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    Ok((elapsed, rss))
}

fn main() {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--profile", "dist", "--quiet"])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("cargo build --profile dist failed");
        std::process::exit(1);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
    let binary = format!("{target}/dist/proxmox-manager");
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for i in 0..RUNS {
        match one_run(&binary) {
            Ok((t, r)) => {
                println!(
                    "run {:2}: first tools/list after {:7.1} ms, resident memory {:6} KiB",
                    i + 1,
                    t.as_secs_f64() * 1000.0,
                    r
                );
                times.push(t);
                rss.push(r);
            }
            Err(e) => {
                eprintln!("run {} failed: {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
    times.sort();
    rss.sort_unstable();
    println!(
        "startup to first tools/list: median {:.1} ms, worst {:.1} ms; resident memory: median {} KiB, worst {} KiB ({RUNS} runs)",
        times[RUNS / 2].as_secs_f64() * 1000.0,
        times[RUNS - 1].as_secs_f64() * 1000.0,
        rss[RUNS / 2],
        rss[RUNS - 1]
    );
}

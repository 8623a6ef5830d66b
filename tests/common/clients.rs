//! The npm-installed MCP clients the tests drive (the Claude Code CLI, the MCP Inspector CLI,
//! the MCP conformance suite), pinned in `.ci/clients/package.json` + `package-lock.json`.
//! `./test.sh` installs them with `npm ci --prefix .ci/clients`.
#![allow(dead_code)]

use std::path::PathBuf;

/// The repository root (the plugin root and its own marketplace).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.ci/clients/node_modules/.bin/<name>`, or a failed test that says how to install it.
pub fn bin(name: &str) -> PathBuf {
    super::external::require("node");
    let path = repo().join(".ci/clients/node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `./test.sh` (it runs `npm ci --prefix .ci/clients`)",
        path.display()
    );
    path
}

/// Environment for a client that must not phone home or touch the user's files: a throwaway
/// HOME, telemetry and non-essential traffic off.
pub fn quiet_env(home: &std::path::Path) -> Vec<(String, String)> {
    [
        ("HOME", home.display().to_string()),
        (
            "XDG_CONFIG_HOME",
            home.join(".config").display().to_string(),
        ),
        ("DISABLE_TELEMETRY", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("DISABLE_ERROR_REPORTING", "1".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        (
            "MCP_CATALOG_PATH",
            home.join("mcp-catalog.json").display().to_string(),
        ),
        ("NO_COLOR", "1".into()),
        ("CI", "true".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Output of a finished client run, with both streams for failure messages.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// How long one client run may take before it is killed and the test fails.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(240);

/// Runs `cmd` to completion (stdin closed) and captures it; kills it after [`DEADLINE`].
pub fn run(cmd: &mut std::process::Command) -> Run {
    run_with_input(cmd, b"")
}

/// [`run`] with `input` written to the child's stdin.
pub fn run_with_input(cmd: &mut std::process::Command, input: &[u8]) -> Run {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // A child that exits without reading its input must not fail the write.
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {DEADLINE:?}\n--- stdout\n{}\n--- stderr\n{}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The repository as it is published: its tracked files (`git ls-files`) copied under `dir`.
/// Installing a plugin from a local marketplace copies the whole directory, and a checkout's
/// `target/` holds gigabytes of build output no user's copy has.
pub fn published_copy(dir: &std::path::Path) -> PathBuf {
    let out = std::process::Command::new(crate::common::external::require("git"))
        .arg("-C")
        .arg(repo())
        .args(["ls-files", "-z"])
        .output()
        .expect("git is installed (the repository is a git checkout)");
    assert!(out.status.success(), "git ls-files failed");
    let root = dir.join("proxmox-manager");
    for rel in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rel = std::path::Path::new(std::str::from_utf8(rel).expect("utf-8 path"));
        let src = repo().join(rel);
        if !src.is_file() {
            continue;
        }
        let dst = root.join(rel);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&src, &dst).expect("copy a tracked file");
    }
    root
}

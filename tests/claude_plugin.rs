//! The Claude Code plugin, checked by the real Claude Code CLI (npm `@anthropic-ai/claude-code`,
//! offline, throwaway HOME, telemetry off): `claude plugin validate --strict` passes, the plugin
//! installs from this repository as its own marketplace, and `claude mcp list` shows its `pve`
//! server connected — against the embedded simulator ("Use the simulated cluster") and against a
//! simulated cluster reached through the user's own cluster-config.yaml and a real `pass` entry.
//! The launcher script is also checked on its own: binary on PATH first, a build into the plugin
//! data directory once, a rebuild on a version change, a clear refusal without cargo.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::clients::{self, Run};
use common::pass::PassStore;

const PLUGIN: &str = "proxmox-manager@proxmox-manager";

fn claude(home: &Path) -> Command {
    let mut cmd = Command::new(clients::bin("claude"));
    cmd.envs(clients::quiet_env(home)).current_dir(home);
    cmd
}

#[test]
fn plugin_and_marketplace_validate_strictly() {
    let home = tempfile::tempdir().expect("home");
    let run = clients::run(
        claude(home.path())
            .args(["plugin", "validate", "--strict"])
            .arg(clients::repo()),
    );
    assert!(run.ok(), "claude plugin validate --strict failed\n{run}");
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("Validation passed"), "{text}");
    // What the plugin provides, as Claude Code reads it.
    for part in [
        "mcpServers: pve stdio sh",
        "skills: proxmox-manager:proxmox-manager",
        "agents: proxmox-manager:proxmox-manager",
    ] {
        assert!(
            text.contains(part),
            "validator does not list `{part}`:\n{text}"
        );
    }
}

#[test]
fn plugin_settings_are_wired_and_hold_nothing_secret() {
    let read = |p: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(clients::repo().join(p)).expect(p);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let plugin = read(".claude-plugin/plugin.json");
    let mcp = read(".mcp.json");
    let market = read(".claude-plugin/marketplace.json");
    assert_eq!(plugin["name"], "proxmox-manager");
    assert_eq!(
        plugin["version"],
        env!("CARGO_PKG_VERSION"),
        "plugin.json version"
    );
    assert_eq!(market["plugins"][0]["source"], "./");
    assert_eq!(market["plugins"][0]["version"], env!("CARGO_PKG_VERSION"));
    let settings = plugin["userConfig"].as_object().expect("userConfig");
    for (key, spec) in settings {
        assert_ne!(spec["sensitive"], true, "{key} is marked sensitive");
        for word in ["token", "secret", "password", "passphrase"] {
            assert!(!key.contains(word), "user setting {key} looks secret");
        }
    }
    let env = mcp["mcpServers"]["pve"]["env"].as_object().expect("env");
    for value in env.values() {
        let value = value.as_str().expect("string");
        if let Some(key) = value
            .strip_prefix("${user_config.")
            .and_then(|v| v.strip_suffix('}'))
        {
            assert!(
                settings.contains_key(key),
                ".mcp.json uses unknown setting {key}"
            );
        }
    }
    assert_eq!(
        env.len(),
        settings.len(),
        "every setting reaches the server: {env:?}"
    );
}

/// A directory with only `proxmox-manager` (this build) in it, for PATH.
fn bin_dir(root: &Path) -> PathBuf {
    let dir = root.join("bin");
    std::fs::create_dir_all(&dir).expect("bin dir");
    std::os::unix::fs::symlink(common::binary(), dir.join("proxmox-manager")).expect("symlink");
    dir
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The `pve` line of `claude mcp list`.
fn server_line(run: &Run) -> String {
    run.stdout
        .lines()
        .find(|l| l.starts_with("plugin:proxmox-manager:pve:"))
        .unwrap_or_else(|| panic!("no plugin:proxmox-manager:pve line\n{run}"))
        .to_string()
}

fn configure(home: &Path, values: serde_json::Value) {
    let run = clients::run_with_input(
        claude(home).args(["plugin", "configure", PLUGIN, "--values-stdin"]),
        values.to_string().as_bytes(),
    );
    assert!(run.ok(), "claude plugin configure failed\n{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_installs_from_its_marketplace_and_its_server_connects() {
    let sim = common::start_sim().await;
    let pass = PassStore::new();
    // The user's own setup: a config file pointing at the cluster (here the simulator, pinned
    // by fingerprint) and the token in a pass entry named in the plugin settings — not the
    // entry the file names, so the setting is what the server used.
    let work = tempfile::tempdir().expect("work");
    let config = common::write_config(work.path(), &sim);
    let t = sim
        .token("claude-code@pve!automation")
        .expect("manager token");
    pass.insert("homelab/claude-token", &format!("{}\n{}\n", t.id, t.secret));
    let bin = bin_dir(work.path());
    let home = pass.home().to_path_buf();

    let config_arg = config.display().to_string();
    let published = clients::published_copy(work.path());
    tokio::task::spawn_blocking(move || {
        let mcp_list = |home: &Path| {
            clients::run(
                claude(home)
                    .envs(pass.env_pairs())
                    .envs(clients::quiet_env(home))
                    .env("PATH", path_with(&bin))
                    .args(["mcp", "list"]),
            )
        };
        let run = clients::run(
            claude(&home)
                .args(["plugin", "marketplace", "add"])
                .arg(&published),
        );
        assert!(run.ok(), "marketplace add failed\n{run}");
        let run = clients::run(claude(&home).args(["plugin", "install", PLUGIN]));
        assert!(run.ok(), "plugin install failed\n{run}");
        assert!(
            run.stdout.contains("Successfully installed"),
            "install output\n{run}"
        );

        // The `pve` line of `claude mcp list` once the plugin has these settings.
        let server_with = |values: serde_json::Value| {
            configure(&home, values);
            server_line(&mcp_list(&home))
        };
        // "Use the simulated cluster".
        let line = server_with(serde_json::json!({"simulator": "true"}));
        assert!(line.contains("Connected"), "simulator: {line}");
        assert!(line.contains(".claude-plugin/launch serve"), "{line}");

        // The user's config file and pass entry.
        let line = server_with(serde_json::json!({"simulator": "false",
            "config_path": config_arg, "pass_path": "homelab/claude-token"}));
        assert!(line.contains("Connected"), "config + pass: {line}");

        // The setting really reaches the server: a pass entry that does not exist fails.
        let line = server_with(serde_json::json!({"simulator": "false",
            "config_path": config_arg, "pass_path": "homelab/no-such-entry"}));
        assert!(
            line.contains("Failed") && !line.contains("Connected"),
            "a missing pass entry must fail: {line}"
        );
        drop(pass);
    })
    .await
    .expect("claude runs");
    drop(sim);
}

// --- the launcher on its own -------------------------------------------------------------

/// A PATH directory with the few programs the launcher uses and nothing else (no cargo, no
/// proxmox-manager), so each case decides what exists.
fn tool_dir(root: &Path) -> PathBuf {
    let dir = root.join("tools");
    std::fs::create_dir_all(&dir).expect("tools");
    for tool in [
        "sh", "sed", "head", "cat", "mkdir", "rm", "sleep", "tail", "cp", "nohup", "dirname",
    ] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found in /usr/bin or /bin"));
        std::os::unix::fs::symlink(found, dir.join(tool)).expect("symlink");
    }
    dir
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A stand-in server binary: prints its version, or its arguments and the settings it got.
fn fake_server(path: &Path, version: &str) {
    script(
        path,
        &format!(
            r#"if [ "$1" = --version ]; then echo "proxmox-manager {version}"; exit 0; fi
echo "args: $*"
echo "config: ${{PROXMOX_MANAGER_CONFIG-unset}}"
echo "pass: ${{PROXMOX_MANAGER_PASS_PATH-unset}}"
echo "sim: ${{PROXMOX_MANAGER_SIM-unset}}"
"#
        ),
    );
}

struct Launcher {
    root: tempfile::TempDir,
    path: String,
}

impl Launcher {
    fn new() -> Launcher {
        let root = tempfile::tempdir().expect("root");
        let tools = tool_dir(root.path());
        let extra = root.path().join("extra");
        std::fs::create_dir_all(&extra).expect("extra");
        let path = format!("{}:{}", extra.display(), tools.display());
        Launcher { root, path }
    }
    /// Where a test puts `cargo` or `proxmox-manager` stand-ins.
    fn extra(&self) -> PathBuf {
        self.root.path().join("extra")
    }
    fn data(&self) -> PathBuf {
        self.root.path().join("plugin-data")
    }
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg(clients::repo().join(".claude-plugin/launch"))
            .args(args)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.root.path())
            .env("CLAUDE_PLUGIN_ROOT", clients::repo())
            .env("CLAUDE_PLUGIN_DATA", self.data())
            .envs(env.iter().copied());
        clients::run(&mut cmd)
    }
    /// A `cargo` that records its arguments and "installs" a fake server of `version`.
    fn fake_cargo(&self, version: &str, succeed: bool) {
        let built = self.root.path().join("built-proxmox-manager");
        fake_server(&built, version);
        let log = self.root.path().join("cargo.log");
        let body = if succeed {
            format!(
                r#"echo "$*" >> '{log}'
root=
while [ $# -gt 0 ]; do [ "$1" = --root ] && root=$2; shift; done
echo "   Compiling proxmox-manager" >&2
mkdir -p "$root/bin" && cp '{built}' "$root/bin/proxmox-manager"
"#,
                log = log.display(),
                built = built.display()
            )
        } else {
            format!(
                "echo \"$*\" >> '{}'\necho 'error[E0658]: this needs a newer rustc' >&2\nexit 101\n",
                log.display()
            )
        };
        script(&self.extra().join("cargo"), &body);
    }
    fn cargo_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.path().join("cargo.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn launcher_prefers_the_binary_on_path_and_passes_only_real_settings() {
    let l = Launcher::new();
    fake_server(
        &l.extra().join("proxmox-manager"),
        env!("CARGO_PKG_VERSION"),
    );
    // Unset settings arrive empty or as unexpanded `${user_config.…}` text.
    let run = l.run(
        &["serve"],
        &[
            ("PROXMOX_MANAGER_CONFIG", "${user_config.config_path}"),
            ("PROXMOX_MANAGER_PASS_PATH", ""),
            ("PROXMOX_MANAGER_SIM", "true"),
        ],
    );
    assert!(run.ok(), "{run}");
    assert!(run.stdout.contains("args: serve --sim"), "{run}");
    assert!(run.stdout.contains("config: unset"), "{run}");
    assert!(run.stdout.contains("pass: unset"), "{run}");
    assert!(
        run.stdout.contains("sim: unset"),
        "the launcher's own switch is not passed on\n{run}"
    );
    assert!(run.stderr.is_empty(), "nothing to say\n{run}");

    let run = l.run(
        &["serve"],
        &[
            ("PROXMOX_MANAGER_CONFIG", "/etc/pm/cluster-config.yaml"),
            ("PROXMOX_MANAGER_PASS_PATH", "homelab/pve"),
            ("PROXMOX_MANAGER_SIM", "false"),
        ],
    );
    assert!(run.stdout.contains("args: serve\n"), "{run}");
    assert!(
        run.stdout
            .contains("config: /etc/pm/cluster-config.yaml\npass: homelab/pve"),
        "{run}"
    );
}

#[test]
fn launcher_warns_when_the_binary_on_path_is_another_version() {
    let l = Launcher::new();
    fake_server(&l.extra().join("proxmox-manager"), "0.0.1");
    let run = l.run(&["serve"], &[]);
    assert!(run.ok(), "it still runs the user's binary\n{run}");
    assert!(run.stdout.contains("args: serve"), "{run}");
    assert!(
        run.stderr.contains("version 0.0.1")
            && run
                .stderr
                .contains(&format!("expects {}", env!("CARGO_PKG_VERSION")))
            && run
                .stderr
                .contains("cargo install --locked --profile dist --path"),
        "{run}"
    );
}

#[test]
fn launcher_builds_once_into_the_data_dir_and_rebuilds_on_a_new_version() {
    let l = Launcher::new();
    l.fake_cargo(env!("CARGO_PKG_VERSION"), true);
    let run = l.run(&["serve"], &[]);
    assert!(run.ok(), "{run}");
    assert!(
        run.stdout.contains("args: serve"),
        "the built server ran\n{run}"
    );
    assert!(
        run.stderr.contains("building proxmox-manager")
            && run.stderr.contains("first start only")
            && run.stderr.contains("build.log"),
        "the user is told on stderr\n{run}"
    );
    let calls = l.cargo_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].starts_with("install --locked --force --profile dist --path ")
            && calls[0].ends_with(&format!("--root {}", l.data().display())),
        "{calls:?}"
    );
    assert!(
        !l.data().join("build").exists(),
        "the build directory is removed"
    );
    assert!(
        !l.data().join("build.lock").exists(),
        "the lock is released"
    );

    // The second start runs the built copy without cargo.
    let run = l.run(&["serve"], &[]);
    assert!(run.ok() && run.stdout.contains("args: serve"), "{run}");
    assert!(run.stderr.is_empty(), "{run}");
    assert_eq!(l.cargo_calls().len(), 1);

    // A copy built for another plugin version is rebuilt.
    fake_server(&l.data().join("bin/proxmox-manager"), "0.0.1");
    let run = l.run(&["serve"], &[]);
    assert!(run.ok(), "{run}");
    assert!(run.stderr.contains("is version 0.0.1"), "{run}");
    assert_eq!(l.cargo_calls().len(), 2);
}

#[test]
fn launcher_reports_a_failed_build_and_a_missing_cargo() {
    let l = Launcher::new();
    let run = l.run(&["serve"], &[]);
    assert_eq!(run.code, Some(127), "{run}");
    assert!(
        run.stderr.contains("no cargo to build one")
            && run.stderr.contains("https://rustup.rs")
            && run
                .stderr
                .contains("cargo install --locked --profile dist --path"),
        "{run}"
    );
    assert!(run.stdout.is_empty(), "stdout stays MCP's\n{run}");

    l.fake_cargo(env!("CARGO_PKG_VERSION"), false);
    let run = l.run(&["serve"], &[]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.stderr.contains("the build failed") && run.stderr.contains("error[E0658]"),
        "the log's end is shown\n{run}"
    );
    assert!(run.stdout.is_empty(), "{run}");
    assert!(
        !l.data().join("build.lock").exists(),
        "a failed build releases the lock"
    );
}

#[test]
fn launcher_clears_a_stale_build_lock() {
    let l = Launcher::new();
    l.fake_cargo(env!("CARGO_PKG_VERSION"), true);
    // A lock whose holder is gone (a build killed with the machine) does not block forever.
    let lock = l.data().join("build.lock");
    std::fs::create_dir_all(&lock).expect("lock");
    std::fs::write(lock.join("pid"), "999999999").expect("pid");
    let run = l.run(&["serve"], &[]);
    assert!(run.ok() && run.stdout.contains("args: serve"), "{run}");
    assert_eq!(l.cargo_calls().len(), 1);
}

#[test]
fn launcher_waits_for_a_build_another_start_is_running() {
    use std::io::{BufRead, BufReader};
    let l = Launcher::new();
    // Another launcher (this test process stands in for it) holds the lock.
    let lock = l.data().join("build.lock");
    std::fs::create_dir_all(&lock).expect("lock");
    std::fs::write(lock.join("pid"), std::process::id().to_string()).expect("pid");
    let mut child = Command::new("/bin/sh")
        .arg(clients::repo().join(".claude-plugin/launch"))
        .arg("serve")
        .env_clear()
        .env("PATH", &l.path)
        .env("HOME", l.root.path())
        .env("CLAUDE_PLUGIN_ROOT", clients::repo())
        .env("CLAUDE_PLUGIN_DATA", l.data())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("launcher");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("a line");
    assert!(
        line.contains("already running") && line.contains("waiting"),
        "{line}"
    );
    // The other build finishes: its binary appears, then the lock goes.
    std::fs::create_dir_all(l.data().join("bin")).expect("bin");
    fake_server(
        &l.data().join("bin/proxmox-manager"),
        env!("CARGO_PKG_VERSION"),
    );
    std::fs::remove_dir_all(&lock).expect("unlock");
    let out = child.wait_with_output().expect("launcher ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("args: serve"),
        "{stdout}"
    );
    assert!(l.cargo_calls().is_empty(), "no second build");
}

//! `./test.sh`, the README's test command, on a machine that lacks system packages and cannot
//! install them (not root, no apt-get, no sudo): it names every missing program with the
//! commands that install them and exits with status 2 before touching anything — never a
//! silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A PATH directory holding only the tools `test.sh` itself uses, plus an `id` that says the
/// user is not root.
fn bare_path(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    for tool in [
        "bash", "cat", "cmp", "dirname", "echo", "sed", "sort", "xargs", "rm", "cp",
    ] {
        let real = crate::common::external::require(tool);
        std::os::unix::fs::symlink(&real, bin.join(tool)).expect("symlink");
    }
    let id = bin.join("id");
    std::fs::write(&id, "#!/bin/sh\necho 1000\n").expect("write id");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

#[test]
fn missing_system_packages_are_named_with_their_install_commands() {
    let dir = tempfile::tempdir().expect("tmp");
    let bin = bare_path(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("test.sh");
    let out = Command::new(bin.join("bash"))
        .arg(&script)
        .arg("--deps-only")
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", dir.path())
        .output()
        .expect("run test.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line naming what is missing: {stderr}");
    let line = lines[0];
    for program in ["pass", "gpg", "qemu-img", "node", "npm", "python3", "git"] {
        assert!(line.contains(program), "`{program}` is not named: {line}");
    }
    for command in [
        "sudo apt-get install",
        "qemu-utils",
        "gnupg",
        "sudo dnf install",
        "brew install",
        "./test.sh again",
    ] {
        assert!(line.contains(command), "`{command}` is not in: {line}");
    }
}

//! One end-to-end conversation through the official Python MCP SDK over stdio
//! (`mcp==2.3.0` from `.ci/requirements-test.txt`; `./test.sh` installs it into `.ci/venv`).

use std::process::Command;

#[test]
fn official_python_client_converses_over_stdio() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/e2e_stdio.py");
    let probe = Command::new(crate::common::external::require("python3"))
        .args(["-c", "import mcp"])
        .output();
    let installed = probe.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "the Python MCP SDK is missing: run `./test.sh` (it installs .ci/requirements-test.txt into .ci/venv and puts it first on PATH)"
    );
    let out = Command::new(crate::common::external::require("python3"))
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_proxmox-manager"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("2 conversations passed"), "{stdout}");
}

/// Issue 18 through the official client's elicitation callback: the person declines, cancels
/// and approves a delete, a bulk stop asks once, a client without the callback is refused in
/// `elicit` mode; and the dialog over Streamable HTTP.
#[test]
fn official_python_client_confirms_through_its_elicitation_callback() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/e2e_elicitation.py");
    let probe = Command::new("python3").args(["-c", "import mcp"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the Python MCP SDK is missing: run `./test.sh` (it installs .ci/requirements-test.txt into .ci/venv and puts it first on PATH)"
    );
    let out = Command::new("python3")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_proxmox-manager"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("3 elicitation conversations passed"),
        "{stdout}"
    );
}

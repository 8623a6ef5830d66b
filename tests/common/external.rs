//! External programs the tests drive (pass, gpg, sshd, qemu-img, node, python, ansible): found on
//! PATH (`./test.sh` puts the project's `.ci/venv/bin` and `.ci/clients` first), or a failure that
//! names the program and the command that installs it — never a panic deep inside a helper.

use std::path::{Path, PathBuf};

/// What installs each program the suite needs, for the failure message.
const INSTALL_HINTS: &[(&str, &str)] = &[
    (
        "pass",
        "apt-get install pass (dnf install pass; brew install pass)",
    ),
    (
        "gpg",
        "apt-get install gnupg (dnf install gnupg2; brew install gnupg)",
    ),
    (
        "gpgconf",
        "apt-get install gnupg (dnf install gnupg2; brew install gnupg)",
    ),
    (
        "sshd",
        "apt-get install openssh-server (dnf install openssh-server)",
    ),
    (
        "ssh-keygen",
        "apt-get install openssh-client (dnf install openssh-clients)",
    ),
    (
        "ssh-agent",
        "apt-get install openssh-client (dnf install openssh-clients)",
    ),
    (
        "ssh-add",
        "apt-get install openssh-client (dnf install openssh-clients)",
    ),
    (
        "qemu-img",
        "apt-get install qemu-utils (dnf install qemu-img; brew install qemu)",
    ),
    (
        "node",
        "apt-get install nodejs npm (dnf install nodejs npm; brew install node)",
    ),
    (
        "npm",
        "apt-get install nodejs npm (dnf install nodejs npm; brew install node)",
    ),
    (
        "python3",
        "apt-get install python3 python3-venv (dnf install python3)",
    ),
    (
        "git",
        "apt-get install git (dnf install git; brew install git)",
    ),
    (
        "ansible-playbook",
        "python3 -m pip install ansible-core (./test.sh installs the pinned version into .ci/venv)",
    ),
    (
        "ansible-inventory",
        "python3 -m pip install ansible-core (./test.sh installs the pinned version into .ci/venv)",
    ),
];

/// The path of `program`, searched on PATH and, for daemons, in the sbin directories; or a panic
/// whose message says what is missing and how to install it (`./test.sh` installs everything it
/// can by itself).
pub fn require(program: &str) -> PathBuf {
    if let Some(found) = find(program) {
        return found;
    }
    let hint = INSTALL_HINTS
        .iter()
        .find(|(name, _)| *name == program)
        .map(|(_, hint)| *hint)
        .unwrap_or("see the README's test section");
    panic!(
        "`{program}` is not installed, and this test needs it: run `./test.sh` (it installs \
         the test dependencies it can and names the rest), or install it with: {hint}"
    )
}

/// `program` on PATH (or in /usr/sbin, /sbin, /usr/local/sbin), if it is there.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

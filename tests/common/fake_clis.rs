//! Stand-ins for `talosctl`, `flux` and `kubectl` (tests/fakes): a wrapper script per program
//! that runs the fake with its control directory (`FAKE_DIR`: the call record `calls.jsonl`,
//! the control file `fail-apply`) set, and the `paths:` block pointing a config at them.

use std::path::{Path, PathBuf};

pub struct FakeClis {
    /// The control directory: `calls.jsonl`, `fail-apply`, `applied`.
    pub dir: PathBuf,
    pub talosctl: PathBuf,
    pub flux: PathBuf,
    pub kubectl: PathBuf,
}

impl FakeClis {
    /// Installs the wrappers under `root/bin` with the control directory `root/fake`.
    pub fn install(root: &Path) -> FakeClis {
        let bin = root.join("bin");
        let dir = root.join("fake");
        for d in [&bin, &dir] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        FakeClis {
            talosctl: wrapper(&bin, &dir, "talosctl"),
            flux: wrapper(&bin, &dir, "flux"),
            kubectl: wrapper(&bin, &dir, "kubectl"),
            dir,
        }
    }

    /// The `paths:` block of a cluster-config.yaml using the fakes and `clusters`.
    pub fn paths_yaml(&self, clusters: &Path) -> String {
        format!(
            "\npaths:\n  clusters: {}\n  talosctl: {}\n  flux: {}\n  kubectl: {}\n",
            clusters.display(),
            self.talosctl.display(),
            self.flux.display(),
            self.kubectl.display()
        )
    }

    /// Every recorded call, oldest first.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

fn wrapper(bin: &Path, fake_dir: &Path, prog: &str) -> PathBuf {
    let python = super::external::require("python3");
    let fakes = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fakes");
    let path = bin.join(prog);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nFAKE_DIR='{}' exec '{}' '{}' \"$@\"\n",
            fake_dir.display(),
            python.display(),
            fakes.join(prog).display()
        ),
    )
    .expect("write wrapper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    path
}

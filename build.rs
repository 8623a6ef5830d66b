//! Lays out the server's start-up code together when the linker can.
//!
//! `.ci/link/startup.order` lists the functions start-up runs up to the first `tools/list`, then
//! those the embedded simulator's start-up adds, then those a pass of the read tools adds (written
//! by `.ci/link/generate` from callgrind traces). Passed to the linker as a symbol ordering file,
//! they sit next to each other at the front of the code instead of spread over 25 MB of it, and
//! each page fault maps the kernel's 64 KiB fault-around window of code the server runs rather than
//! of code it never runs: the server's resident size after `tools/list` drops by about 8 MiB, and
//! after a pass of reads by more (README, Benchmark).
//!
//! Only when the linker accepts the option (LLD, which Rust links with by default on x86_64
//! Linux, and mold do; GNU ld does not): a one-line program is linked with it first, with the
//! same compiler, target, linker and flags, and the option is left out if that fails. Symbol
//! names carry hashes of the toolchain and the dependencies' versions, so after a change of
//! either the file matches less and helps less, never breaking the build: regenerate it.
//! `PROXMOX_MANAGER_LINK_ORDER=0` leaves it out.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PROXMOX_MANAGER_LINK_ORDER");
    if std::env::var("PROXMOX_MANAGER_LINK_ORDER").is_ok_and(|v| v == "0") {
        return;
    }
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return;
    };
    let order = manifest.join(".ci/link/startup.order");
    if !order.is_file() {
        return;
    }
    let args = [
        format!("-Wl,--symbol-ordering-file={}", order.display()),
        // Names the file lists that this build lacks (another toolchain, a changed function)
        // are expected, not worth a warning per name.
        "-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    if !linker_accepts(&args) {
        return;
    }
    for a in args {
        println!("cargo:rustc-link-arg-bin=proxmox-manager={a}");
    }
}

/// Whether a one-line program links with `args` the way the server will be linked.
fn linker_accepts(args: &[String]) -> bool {
    let (Some(rustc), Some(out), Ok(target)) = (
        std::env::var_os("RUSTC"),
        std::env::var_os("OUT_DIR").map(PathBuf::from),
        std::env::var("TARGET"),
    ) else {
        return false;
    };
    let source = out.join("link_order_probe.rs");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut probe = Command::new(rustc);
    probe
        .arg("--crate-type=bin")
        .arg("--edition=2021")
        .arg(format!("--target={target}"))
        .arg("-o")
        .arg(out.join(exe("link_order_probe")))
        .arg(&source);
    if let Some(linker) = std::env::var_os("RUSTC_LINKER") {
        probe
            .arg("-C")
            .arg(format!("linker={}", Path::new(&linker).display()));
    }
    // The flags every crate of this build gets (RUSTFLAGS and the configuration's rustflags).
    if let Ok(flags) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        probe.args(flags.split('\u{1f}').filter(|f| !f.is_empty()));
    }
    for a in args {
        probe.arg("-C").arg(format!("link-arg={a}"));
    }
    probe
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn exe(name: &str) -> String {
    if std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "windows") {
        format!("{name}.exe")
    } else {
        name.to_string()
    }
}

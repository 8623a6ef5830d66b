//! Disk images for the template tests: a real qcow2 made by `qemu-img`, served over plain
//! HTTP on loopback (any other path answers 404).

use sha2::{Digest, Sha256};

/// Serves `bytes` at `/<name>` on loopback; returns the URL.
pub async fn serve(name: &str, bytes: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        &format!("/{name}"),
        axum::routing::get(move || async move { bytes.clone() }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/{name}")
}

/// A real, empty 64 MiB qcow2 image.
pub fn qcow2() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("image.qcow2");
    let out = std::process::Command::new(super::external::require("qemu-img"))
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&path)
        .arg("64M")
        .output()
        .expect("qemu-img runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&path).expect("read image")
}

/// `sha256:HEX` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

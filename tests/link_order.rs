//! `build.rs` hands the linker `.ci/link/startup.order` (start-up's functions, the embedded
//! simulator's start-up's, then the read tools', laid out together): the server binary this suite
//! runs was linked with it, its functions in the file's order. Names hashed for the `dist` profile
//! are absent from this build; the C library's, the TLS library's and the prebuilt standard
//! library's are the same in every profile.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn the_server_is_linked_with_start_up_s_functions_in_the_order_file_s_order() {
    use std::collections::HashMap;

    let order = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/link/startup.order"),
    )
    .unwrap_or_default();
    let nm = std::process::Command::new("nm")
        .arg("--defined-only")
        .arg(env!("CARGO_BIN_EXE_proxmox-manager"))
        .output()
        .unwrap_or_else(|e| panic!("nm (binutils) could not run: {e}"));
    assert!(nm.status.success(), "nm failed: {nm:?}");
    let mut address: HashMap<String, u64> = HashMap::new();
    for line in String::from_utf8_lossy(&nm.stdout).lines() {
        let mut f = line.split_whitespace();
        if let (Some(a), Some(kind), Some(name)) = (f.next(), f.next(), f.next())
            && (kind == "T" || kind == "t")
            && let Ok(a) = u64::from_str_radix(a, 16)
        {
            address.insert(name.to_string(), a);
        }
    }
    // `_init` and `_fini` live in sections of their own, which no ordering moves.
    let placed: Vec<(&str, u64)> = order
        .lines()
        .filter(|n| !matches!(*n, "_init" | "_fini"))
        .filter_map(|n| address.get(n).map(|a| (n, *a)))
        .take(40)
        .collect();
    assert!(
        placed.len() >= 10,
        "only {} of the order file's names are in the binary: {placed:?}",
        placed.len()
    );
    for pair in placed.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "{} lies after {}: the binary was not linked in the order file's order",
            pair[0].0,
            pair[1].0
        );
    }
}

//! `qemu-img info` and `qemu-img resize` on node files, worded like QEMU 9/10's qemu-img.
//! Images are what the node filesystem knows of them: the format (qcow2 by its header), the
//! virtual size from the header, the file size as the allocated size. A qcow2 resize rewrites
//! the size field in the header of kept bytes (so digests change as they would).

use super::super::state::Body;
use super::exec::{Io, NodeCtx};
use super::fs::{self, FileView};

pub fn run(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    match args.first().map(String::as_str) {
        Some("info") => info(ctx, &args[1..], io),
        Some("resize") => resize(ctx, &args[1..], io),
        Some(cmd) => {
            io.err(&format!("qemu-img: Command not found: {cmd}\n"));
            1
        }
        None => {
            io.err("qemu-img: Not enough arguments\nTry 'qemu-img --help' for more information\n");
            1
        }
    }
}

/// QEMU's `size_to_str`: three significant digits, binary units.
fn size_to_str(v: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut i = 0;
    while i < 6 && (v as f64) >= 1000.0 * (1u64 << (10 * i)) as f64 {
        i += 1;
    }
    let x = v as f64 / (1u64 << (10 * i)) as f64;
    let s = if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s} {}B", SUFFIXES[i])
}

/// The image at `path`, or qemu-img's open error (exit 1 printed by the caller).
fn open(ctx: &NodeCtx, path: &str, fmt: Option<&str>) -> Result<FileView, String> {
    let st = ctx.lock();
    let Some(f) = fs::stat(&st, &ctx.node, path) else {
        return Err(format!(
            "qemu-img: Could not open '{path}': Could not open '{path}': No such file or directory"
        ));
    };
    match fmt {
        Some("qcow2") if f.format != "qcow2" => Err(format!(
            "qemu-img: Could not open '{path}': Image is not in qcow2 format"
        )),
        Some("raw" | "qcow2" | "vmdk") | None => Ok(f),
        Some(other) => Err(format!(
            "qemu-img: Could not open '{path}': Unknown driver '{other}'"
        )),
    }
}

fn vsize(f: &FileView) -> u64 {
    match f.format.as_str() {
        "qcow2" => f.virtual_size.unwrap_or(0),
        _ => f.size,
    }
}

fn info(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let (mut json, mut fmt, mut path) = (false, None::<String>, None::<String>);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--output=json" => json = true,
            "--output=human" => json = false,
            "--output" => json = it.next().is_some_and(|v| v == "json"),
            "-f" => fmt = it.next().cloned(),
            "-U" | "--force-share" | "--backing-chain" => {}
            p => path = Some(p.to_string()),
        }
    }
    let Some(path) = path else {
        io.err("qemu-img: Expecting one image file name\n");
        return 1;
    };
    let f = match open(ctx, &path, fmt.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            io.err(&format!("{e}\n"));
            return 1;
        }
    };
    let actual = f.size.div_ceil(4096) * 4096;
    let qcow2 = f.format == "qcow2";
    if json {
        let name = serde_json::to_string(&path).unwrap_or_default();
        let mut s = format!(
            "{{\n    \"virtual-size\": {},\n    \"filename\": {name},\n",
            vsize(&f)
        );
        if qcow2 {
            s.push_str("    \"cluster-size\": 65536,\n");
        }
        s.push_str(&format!(
            "    \"format\": \"{}\",\n    \"actual-size\": {actual},\n",
            if qcow2 { "qcow2" } else { "raw" }
        ));
        if qcow2 {
            s.push_str("    \"format-specific\": {\n        \"type\": \"qcow2\",\n        \"data\": {\n            \"compat\": \"1.1\",\n            \"compression-type\": \"zlib\",\n            \"lazy-refcounts\": false,\n            \"refcount-bits\": 16,\n            \"corrupt\": false,\n            \"extended-l2\": false\n        }\n    },\n");
        }
        s.push_str("    \"dirty-flag\": false\n}\n");
        io.out(&s);
        return 0;
    }
    let v = vsize(&f);
    let mut s = format!(
        "image: {path}\nfile format: {}\nvirtual size: {} ({v} bytes)\ndisk size: {}\n",
        if qcow2 { "qcow2" } else { "raw" },
        size_to_str(v),
        size_to_str(actual)
    );
    if qcow2 {
        s.push_str("cluster_size: 65536\nFormat specific information:\n    compat: 1.1\n    compression type: zlib\n    lazy refcounts: false\n    refcount bits: 16\n    corrupt: false\n    extended l2: false\n");
    }
    s.push_str(&format!(
        "Child node '/file':\n    filename: {path}\n    protocol type: file\n    file length: {} ({} bytes)\n    disk size: {}\n",
        size_to_str(f.size),
        f.size,
        size_to_str(actual)
    ));
    io.out(&s);
    0
}

/// A qemu-img size (`32G`, `+10G`, `-1G`, bytes; k/K, M, G, T suffixes): (sign, bytes).
fn parse_size(s: &str) -> Option<(i8, u64)> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (0, s),
    };
    let rest = rest.replace('k', "K");
    let (plus, bytes) = super::super::volumes::parse_resize(&rest)?;
    (!plus).then_some((sign, bytes))
}

/// New bytes for a resized image: the qcow2 header's size field, or a raw file's length.
fn resized_body(f: &FileView, new: u64) -> Body {
    match f.body.content.clone() {
        Some(mut bytes) if f.format == "qcow2" && bytes.len() >= 32 => {
            bytes[24..32].copy_from_slice(&new.to_be_bytes());
            fs::Blob::from_bytes(&bytes).body
        }
        Some(mut bytes) if f.format != "qcow2" && new as usize <= fs::KEEP_CONTENT => {
            bytes.resize(new as usize, 0);
            fs::Blob::from_bytes(&bytes).body
        }
        _ => fs::rehash(&f.body, &format!("resize:{new}")),
    }
}

fn resize(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let (mut shrink, mut quiet, mut fmt, mut pos) = (false, false, None::<String>, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--shrink" => shrink = true,
            "-q" => quiet = true,
            "-f" => fmt = it.next().cloned(),
            "--preallocation=off" | "--preallocation=metadata" | "--preallocation=full" => {}
            p => pos.push(p.to_string()),
        }
    }
    let [path, size] = pos.as_slice() else {
        io.err("qemu-img: Expecting image file name and size\n");
        return 1;
    };
    let Some((sign, bytes)) = parse_size(size) else {
        io.err("qemu-img: Invalid size specified. You may use k, M, G, T, P or E suffixes for\nqemu-img: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.\n");
        return 1;
    };
    let f = match open(ctx, path, fmt.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            io.err(&format!("{e}\n"));
            return 1;
        }
    };
    let old = vsize(&f);
    let new = match sign {
        1 => old.saturating_add(bytes),
        -1 => old.saturating_sub(bytes),
        _ => bytes,
    };
    if new < old && !shrink {
        io.err("qemu-img: Use the --shrink option to perform a shrink operation.\n");
        return 1;
    }
    let mut st = ctx.lock();
    let _ = fs::update(&mut st, &ctx.node, path, |v| {
        v.body = resized_body(v, new);
        if v.format == "qcow2" {
            v.virtual_size = Some(new);
        } else {
            v.size = new;
            v.virtual_size = Some(new);
        }
    });
    if !quiet {
        io.out("Image resized.\n");
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_render_like_qemu() {
        assert_eq!(size_to_str(64 << 20), "64 MiB");
        assert_eq!(size_to_str(3_758_096_384), "3.5 GiB");
        assert_eq!(size_to_str(200_704), "196 KiB");
        assert_eq!(size_to_str(512), "512 B");
        assert_eq!(size_to_str(32 << 30), "32 GiB");
        assert_eq!(parse_size("+10G"), Some((1, 10 << 30)));
        assert_eq!(parse_size("512k"), Some((0, 512 << 10)));
        assert_eq!(parse_size("x"), None);
    }
}

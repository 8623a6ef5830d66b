//! coreutils on the node filesystem: `sha256sum`/`sha512sum`, `rm`, `test`.

use super::exec::{Io, NodeCtx};
use super::fs;

/// `sha256sum|sha512sum [FILE]...`: `HEX  FILE` lines; a missing file is reported and makes
/// the exit status 1. No FILE (or `-`) hashes the empty stdin.
pub fn shasum(ctx: &NodeCtx, prog: &str, args: &[String], io: &mut Io) -> u32 {
    let st = ctx.lock();
    let files: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let empty = fs::Blob::from_bytes(b"").body;
    let pick = |b: &super::super::state::Body| match prog {
        "sha512sum" => b.sha512.clone(),
        _ => b.sha256.clone(),
    };
    if files.is_empty() {
        io.out(&format!("{}  -\n", pick(&empty)));
        return 0;
    }
    let mut status = 0;
    for f in files {
        if f == "-" {
            io.out(&format!("{}  -\n", pick(&empty)));
        } else if fs::is_dir(&st, &ctx.node, f) {
            io.err(&format!("{prog}: {f}: Is a directory\n"));
            status = 1;
        } else if let Some(view) = fs::stat(&st, &ctx.node, f) {
            io.out(&format!("{}  {f}\n", pick(&view.body)));
        } else {
            io.err(&format!("{prog}: {f}: No such file or directory\n"));
            status = 1;
        }
    }
    status
}

/// `rm [-f] [-r] [--] FILE...`.
pub fn rm(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let (mut force, mut recursive, mut files) = (false, false, Vec::new());
    let mut opts_done = false;
    for a in args {
        match a.as_str() {
            "--" if !opts_done => opts_done = true,
            "--force" if !opts_done => force = true,
            "--recursive" if !opts_done => recursive = true,
            o if !opts_done && o.starts_with('-') && o.len() > 1 => {
                for c in o[1..].chars() {
                    match c {
                        'f' => force = true,
                        'r' | 'R' => recursive = true,
                        'v' | 'i' | 'I' | 'd' => {}
                        c => {
                            io.err(&format!(
                                "rm: invalid option -- '{c}'\nTry 'rm --help' for more information.\n"
                            ));
                            return 1;
                        }
                    }
                }
            }
            f => files.push(f.to_string()),
        }
    }
    if files.is_empty() {
        if force {
            return 0;
        }
        io.err("rm: missing operand\nTry 'rm --help' for more information.\n");
        return 1;
    }
    let mut st = ctx.lock();
    let mut status = 0;
    for f in files {
        match fs::remove(&mut st, &ctx.node, &f) {
            Ok(()) => {}
            Err(fs::FsError::NotFound) if force => {}
            Err(fs::FsError::IsDir) if recursive => {
                io.err(&format!(
                    "sim: rm -r of directory '{f}' is not supported by the simulator\n"
                ));
                status = 1;
            }
            Err(e) => {
                io.err(&format!("rm: cannot remove '{f}': {e}\n"));
                status = 1;
            }
        }
    }
    status
}

/// `test -e|-f|-d|-s|-r|-w FILE`, `test -n|-z STRING`, `test STRING`: exit 0 (true) or 1.
pub fn test(ctx: &NodeCtx, args: &[String], io: &mut Io) -> u32 {
    let st = ctx.lock();
    let file = |p: &str| fs::stat(&st, &ctx.node, p);
    let dir = |p: &str| fs::is_dir(&st, &ctx.node, p);
    let truth = match args {
        [] => false,
        [s] => !s.is_empty(),
        [op, p] => match op.as_str() {
            "-e" | "-r" | "-w" => dir(p) || file(p).is_some(),
            "-f" => file(p).is_some(),
            "-d" => dir(p),
            "-s" => file(p).is_some_and(|f| f.size > 0) || dir(p),
            "-n" => !p.is_empty(),
            "-z" => p.is_empty(),
            "!" => p.is_empty(),
            _ => {
                io.err(&format!("test: {op}: unary operator expected\n"));
                return 2;
            }
        },
        [a, op, b] if op == "=" || op == "==" => a == b,
        [a, op, b] if op == "!=" => a != b,
        _ => {
            io.err("sim: this test expression is not supported by the simulator\n");
            return 2;
        }
    };
    u32::from(!truth)
}

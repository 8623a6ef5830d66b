//! Running one exec request: split the line ([`super::shell`]), refuse shell syntax, strip the
//! `timeout` wrapper, open a `> PATH` redirect the way bash does (before the program runs),
//! dispatch to the modelled program, journal the outcome.

use std::sync::Arc;

use russh::ChannelId;
use russh::server::Handle;

use super::super::state::Shared;
use super::fs::{self, Blob, Writer};
use super::{SshCommandRecord, SshShared, shell};

/// Options in command-line order.
pub type Opts = Vec<(String, String)>;

/// What every command gets: its node and the simulator state.
pub struct NodeCtx {
    pub node: String,
    pub shared: Arc<Shared>,
    pub ssh: Arc<SshShared>,
}

impl NodeCtx {
    pub fn lock(&self) -> crate::sim::state::StateWrite<'_> {
        self.shared.lock()
    }
}

/// A command's output: stdout (or the redirect's file) and stderr, sent to the channel on
/// [`Io::flush`] (commands flush between steps to show progress).
pub struct Io {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    redirect: Option<Writer>,
    channel: Option<(Handle, ChannelId)>,
}

impl Io {
    /// Output kept in memory (unit tests).
    pub fn buffered() -> Io {
        Io {
            stdout: Vec::new(),
            stderr: Vec::new(),
            redirect: None,
            channel: None,
        }
    }
    pub fn to_channel(handle: Handle, id: ChannelId) -> Io {
        Io {
            channel: Some((handle, id)),
            ..Io::buffered()
        }
    }
    pub fn out(&mut self, s: &str) {
        self.out_bytes(s.as_bytes());
    }
    pub fn out_bytes(&mut self, b: &[u8]) {
        match self.redirect.as_mut() {
            Some(w) => w.push(b),
            None => self.stdout.extend_from_slice(b),
        }
    }
    pub fn err(&mut self, s: &str) {
        self.stderr.extend_from_slice(s.as_bytes());
    }
    /// A PVE tool's error: the message and a newline on stderr, exit status 255.
    pub fn die(&mut self, msg: &str) -> u32 {
        self.err(msg);
        if !msg.ends_with('\n') {
            self.err("\n");
        }
        255
    }
    /// Sends what was written so far to the client.
    pub async fn flush(&mut self) {
        let Some((h, id)) = self.channel.as_ref() else {
            return;
        };
        if !self.stdout.is_empty() {
            let _ = h.data(*id, std::mem::take(&mut self.stdout)).await;
        }
        if !self.stderr.is_empty() {
            let _ = h
                .extended_data(*id, 1, std::mem::take(&mut self.stderr))
                .await;
        }
    }
}

/// Runs one command line; returns the exit status. Journals it.
pub async fn run_line(ctx: &NodeCtx, line: &str, io: &mut Io) -> u32 {
    let (argv, status, syntax) = match shell::parse(line) {
        Err(op) => {
            io.err(&format!(
                "sim: shell syntax '{op}' is not supported by the simulator\n"
            ));
            (Vec::new(), 2, true)
        }
        Ok(parsed) => match shell::strip_timeout(parsed.argv) {
            Err(msg) => {
                io.err(&msg);
                (Vec::new(), 125, false)
            }
            Ok((argv, wrapped)) => {
                let status = run_redirected(ctx, &argv, wrapped, parsed.redirect, io).await;
                (argv, status, false)
            }
        },
    };
    ctx.ssh.record(SshCommandRecord {
        node: ctx.node.clone(),
        line: line.to_string(),
        argv,
        status,
        shell_syntax: syntax,
    });
    status
}

async fn run_redirected(
    ctx: &NodeCtx,
    argv: &[String],
    wrapped: bool,
    redirect: Option<String>,
    io: &mut Io,
) -> u32 {
    if let Some(path) = &redirect {
        let mut st = ctx.lock();
        // bash opens (creating or truncating) the file before it runs the program
        if let Err(e) = fs::write(&mut st, &ctx.node, path, Blob::from_bytes(b"")) {
            io.err(&format!("bash: line 1: {path}: {e}\n"));
            return 1;
        }
        io.redirect = Some(Writer::default());
    }
    let status = dispatch(ctx, argv, wrapped, io).await;
    if let (Some(path), Some(w)) = (redirect, io.redirect.take()) {
        let mut st = ctx.lock();
        if let Err(e) = fs::write(&mut st, &ctx.node, &path, w.finish()) {
            io.err(&format!("bash: line 1: {path}: {e}\n"));
        }
    }
    status
}

async fn dispatch(ctx: &NodeCtx, argv: &[String], wrapped: bool, io: &mut Io) -> u32 {
    let Some(prog) = argv.first() else {
        return 0;
    };
    let args = &argv[1..];
    match prog.as_str() {
        "wget" => super::cmd_fetch::wget(ctx, args, io).await,
        "curl" => super::cmd_fetch::curl(ctx, args, io).await,
        "sha256sum" | "sha512sum" => super::cmd_files::shasum(ctx, prog, args, io),
        "rm" => super::cmd_files::rm(ctx, args, io),
        "test" => super::cmd_files::test(ctx, args, io),
        "true" => 0,
        "false" => 1,
        "qemu-img" => super::cmd_qemu_img::run(ctx, args, io),
        "qm" => super::cmd_qm::run(ctx, args, io).await,
        "pct" => super::cmd_pct::run(ctx, args, io),
        "pveam" => super::cmd_pveam::run(ctx, args, io).await,
        "pvesm" => super::cmd_pvesm::run(ctx, args, io),
        "pveum" => super::cmd_pveum::run(ctx, args, io),
        "ha-manager" => super::cmd_ha::run(ctx, args, io),
        "pveversion" => pveversion(ctx, io),
        "ip" => super::cmd_ip::run(ctx, args, io),
        other if wrapped => {
            io.err(&format!(
                "timeout: failed to run command ‘{other}’: No such file or directory\n"
            ));
            127
        }
        other => {
            io.err(&format!("bash: line 1: {other}: command not found\n"));
            127
        }
    }
}

/// Splits `--key value` / `--key=value` / `-key value` options from positional arguments, as
/// PVE's CLI handler reads them. Booleans in `bare` may come without a value.
pub fn pve_opts(args: &[String], bare: &[&str]) -> Result<(Vec<String>, Opts), String> {
    let mut pos = Vec::new();
    let mut opts = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let name = a.strip_prefix("--").or_else(|| a.strip_prefix('-'));
        match name {
            Some(n) if !n.is_empty() && !n.starts_with(|c: char| c.is_ascii_digit()) => {
                if let Some((k, v)) = n.split_once('=') {
                    opts.push((k.to_string(), v.to_string()));
                } else if bare.contains(&n) {
                    // a boolean's value is optional (`--skiplock` = `--skiplock 1`)
                    let next = args.get(i + 1).filter(|v| {
                        matches!(
                            v.as_str(),
                            "0" | "1" | "yes" | "no" | "true" | "false" | "on" | "off"
                        )
                    });
                    opts.push((n.to_string(), next.cloned().unwrap_or_else(|| "1".into())));
                    i += usize::from(next.is_some());
                } else {
                    let v = args
                        .get(i + 1)
                        .ok_or_else(|| format!("{n}: missing value for option"))?;
                    opts.push((n.to_string(), v.clone()));
                    i += 1;
                }
            }
            _ => pos.push(a.clone()),
        }
        i += 1;
    }
    Ok((pos, opts))
}

/// `pveversion`: `pve-manager/VERSION/REPOID (running kernel: KERNEL)`.
fn pveversion(ctx: &NodeCtx, io: &mut Io) -> u32 {
    let st = ctx.lock();
    let kernel = st
        .node(&ctx.node)
        .map(|n| n.kernel.clone())
        .unwrap_or_default();
    let (version, _, repoid) = &st.version;
    io.out(&format!(
        "pve-manager/{version}/{repoid} (running kernel: {kernel})\n"
    ));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pve_options_split() {
        let a: Vec<String> = ["9000", "--format", "qcow2", "--target-disk=scsi1", "local"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (pos, opts) = pve_opts(&a, &[]).expect("parses");
        assert_eq!(pos, ["9000", "local"]);
        assert_eq!(
            opts,
            [
                ("format".to_string(), "qcow2".to_string()),
                ("target-disk".to_string(), "scsi1".to_string())
            ]
        );
        assert!(pve_opts(&["--x".to_string()], &[]).is_err());
    }
}

//! Running one command on an open session channel: stdin, separate stdout and stderr, exit
//! status or signal, a timeout, and line-by-line progress for long commands.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use russh::client::Msg;
use russh::{Channel, ChannelMsg};

use super::{Command, Error};

/// Grace between TERM and KILL for a command past its timeout.
pub const KILL_AFTER: Duration = Duration::from_secs(2);

/// Output kept per stream; the rest is dropped and [`ExecOutput::truncated`] set, so a runaway
/// command cannot exhaust our memory.
pub const MAX_CAPTURE: usize = 16 * 1024 * 1024;

/// Called with each complete line of output (stdout and stderr alike), without the newline.
pub type OutputFn = Arc<dyn Fn(&str) + Send + Sync>;

/// Per-call options of [`super::SshPool::exec`].
#[derive(Clone)]
pub struct ExecOptions {
    /// How long the command may run. Enforced on the node by coreutils `timeout` (TERM, then
    /// KILL [`KILL_AFTER`] later), so a timed-out command is stopped rather than left running
    /// unseen; we stop waiting a little after that in case the connection stalls.
    pub timeout: Duration,
    /// Bytes written to the command's standard input, followed by end-of-file. Without it the
    /// command sees an empty stdin.
    pub stdin: Option<Vec<u8>>,
    /// Progress: lines as they arrive, for commands that run for minutes.
    pub on_output: Option<OutputFn>,
}

impl ExecOptions {
    /// No stdin, no progress, the given timeout.
    pub fn with_timeout(timeout: Duration) -> Self {
        ExecOptions {
            timeout,
            stdin: None,
            on_output: None,
        }
    }
}

impl fmt::Debug for ExecOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecOptions")
            .field("timeout", &self.timeout)
            .field("stdin_bytes", &self.stdin.as_ref().map(Vec::len))
            .field("on_output", &self.on_output.is_some())
            .finish()
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit status; `None` when the command was killed by a signal.
    pub status: Option<u32>,
    /// The signal name (`TERM`, `KILL`, ...) when it was killed.
    pub signal: Option<String>,
    /// Standard output, decoded as UTF-8 (invalid bytes replaced).
    pub stdout: String,
    /// Standard error, decoded the same way.
    pub stderr: String,
    /// More than [`MAX_CAPTURE`] bytes arrived on a stream; only the first are kept.
    pub truncated: bool,
}

impl ExecOutput {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Run `cmd` on a freshly opened session channel.
pub(crate) async fn run(
    channel: Channel<Msg>,
    host: &str,
    cmd: &Command,
    opts: &ExecOptions,
) -> Result<ExecOutput, Error> {
    let summary = cmd.summary();
    let (mut read, write) = channel.split();
    let broken = |reason: String, may_have_run: bool| Error::Channel {
        host: host.to_owned(),
        command: summary.clone(),
        reason,
        may_have_run,
    };
    // `timeout 0` would mean "no limit".
    let secs = opts.timeout.as_secs_f64().max(0.001);
    let limited = cmd.run_under(
        Command::new("timeout")
            .arg("-k")
            .arg(KILL_AFTER.as_secs().to_string())
            .arg(format!("{secs}")),
    );
    let started = std::time::Instant::now();
    write
        .exec(true, limited.to_shell_line())
        .await
        .map_err(|e| broken(e.to_string(), false))?;

    let send_stdin = async {
        if let Some(bytes) = &opts.stdin {
            write.data(&bytes[..]).await?;
        }
        write.eof().await
    };
    let collect = async {
        let mut out = Collected::default();
        let mut stdout_lines = LineSplitter::default();
        let mut stderr_lines = LineSplitter::default();
        let progress = opts.on_output.as_deref();
        while let Some(msg) = read.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    stdout_lines.push(&data, progress);
                    out.truncated |= keep(&mut out.stdout, &data);
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    stderr_lines.push(&data, progress);
                    out.truncated |= keep(&mut out.stderr, &data);
                }
                // Keep reading after the status: output may still be in flight.
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    out.signal = Some(signal_text(&signal_name))
                }
                ChannelMsg::Failure => out.refused = true,
                _ => {}
            }
        }
        stdout_lines.flush(progress);
        stderr_lines.flush(progress);
        out
    };

    let both = async { tokio::join!(send_stdin, collect) };
    let timed_out = || Error::Timeout {
        host: host.to_owned(),
        command: summary.clone(),
        seconds: secs.ceil() as u64,
    };
    let local_deadline = opts.timeout + KILL_AFTER + Duration::from_secs(1);
    let (stdin_result, out) = match tokio::time::timeout(local_deadline, both).await {
        Ok(r) => r,
        Err(_) => {
            // The node did not answer in time (stalled connection): the remote `timeout` still
            // stops the command; free our side of the channel.
            let _ = write.close().await;
            return Err(timed_out());
        }
    };
    // `timeout` exits 124 after TERM, 137 after KILL; a command exiting so by itself before
    // its deadline is not mistaken for a timeout.
    if matches!(out.status, Some(124 | 137)) && started.elapsed() >= opts.timeout {
        return Err(timed_out());
    }
    if out.refused && out.status.is_none() && out.signal.is_none() {
        return Err(broken(
            "the server refused to run the command".into(),
            false,
        ));
    }
    if out.status.is_none() && out.signal.is_none() {
        let reason = match stdin_result {
            Err(e) => format!("writing stdin failed: {e}"),
            Ok(()) => "the connection closed before the command reported an exit status".into(),
        };
        return Err(broken(reason, true));
    }
    Ok(ExecOutput {
        status: out.status,
        signal: out.signal,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        truncated: out.truncated,
    })
}

/// Append what fits under [`MAX_CAPTURE`]; true when something was dropped.
fn keep(buf: &mut Vec<u8>, data: &[u8]) -> bool {
    let room = MAX_CAPTURE.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..room.min(data.len())]);
    data.len() > room
}

#[derive(Default)]
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<u32>,
    signal: Option<String>,
    refused: bool,
    truncated: bool,
}

fn signal_text(sig: &russh::Sig) -> String {
    match sig {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// Cuts a byte stream into lines for progress, across chunk boundaries.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, data: &[u8], sink: Option<&(dyn Fn(&str) + Send + Sync)>) {
        let Some(sink) = sink else { return };
        self.pending.extend_from_slice(data);
        while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line);
            sink(text.trim_end_matches(['\n', '\r']));
        }
    }

    fn flush(&mut self, sink: Option<&(dyn Fn(&str) + Send + Sync)>) {
        if let Some(sink) = sink
            && !self.pending.is_empty()
        {
            sink(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn capture_stops_at_the_cap() {
        let mut buf = vec![0u8; MAX_CAPTURE - 2];
        assert!(keep(&mut buf, b"abc"));
        assert_eq!(buf.len(), MAX_CAPTURE);
        assert!(buf.ends_with(b"ab"));
        assert!(keep(&mut buf, b"d"));
        let mut small = Vec::new();
        assert!(!keep(&mut small, b"abc"));
    }

    #[test]
    fn lines_are_cut_across_chunks() {
        let seen = Mutex::new(Vec::<String>::new());
        let sink = |l: &str| seen.lock().expect("lock").push(l.to_owned());
        let mut s = LineSplitter::default();
        s.push(b"ab", Some(&sink));
        s.push(b"c\nde\r\nf", Some(&sink));
        s.flush(Some(&sink));
        assert_eq!(*seen.lock().expect("lock"), vec!["abc", "de", "f"]);
    }
}

//! stdio transport: a framing layer in front of rmcp so that every line gets an answer.
//!
//! rmcp's own stdio transport drops a line it cannot decode without replying, so a client that
//! sent one waits forever. Here each newline-terminated line read from stdin is checked by
//! [`super::frame::check_client_message`] first: a valid message goes on to rmcp through an
//! in-memory pipe; anything else is answered right here with a JSON-RPC error (`-32700`,
//! `-32600` or `-32602`, with the request's id when it can be recovered). A line longer than
//! the frame cap is answered as soon as the cap is crossed and the rest of it is skipped
//! without being buffered. Replies from rmcp and from this layer share one writer, so lines on
//! stdout never interleave.

use rmcp::ServiceExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::frame;
use crate::server::ProxmoxServer;

/// One frame read from the input.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A complete line, without its newline.
    Line(Vec<u8>),
    /// A line longer than the cap: its first bytes (for the id); the rest is being skipped.
    TooLong(Vec<u8>),
}

/// How much of an over-long line is kept to recover its id.
const PREFIX_KEEP: usize = 64 << 10;

/// Splits a byte stream into lines of at most `cap` bytes, never buffering more than that.
pub struct FrameReader<R> {
    inner: R,
    cap: usize,
    chunk: Vec<u8>,
    pos: usize,
    line: Vec<u8>,
    discarding: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, cap: usize) -> Self {
        Self {
            inner,
            cap,
            chunk: Vec::new(),
            pos: 0,
            line: Vec::new(),
            discarding: false,
        }
    }

    fn over_cap(&mut self, extra: &[u8]) -> Frame {
        let mut prefix = std::mem::take(&mut self.line);
        prefix.truncate(PREFIX_KEEP);
        let room = PREFIX_KEEP.saturating_sub(prefix.len());
        prefix.extend_from_slice(&extra[..extra.len().min(room)]);
        Frame::TooLong(prefix)
    }

    /// The next frame, or `None` at the end of the input.
    ///
    /// # Errors
    /// Reading the input failed.
    pub async fn next_frame(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            while self.pos < self.chunk.len() {
                let start = self.pos;
                let rest_len = self.chunk.len() - start;
                let nl = self.chunk[start..].iter().position(|b| *b == b'\n');
                match nl {
                    Some(i) => {
                        self.pos = start + i + 1;
                        if self.discarding {
                            self.discarding = false;
                            continue;
                        }
                        if self.line.len() + i > self.cap {
                            let extra = self.chunk[start..start + i].to_vec();
                            return Ok(Some(self.over_cap(&extra)));
                        }
                        self.line.extend_from_slice(&self.chunk[start..start + i]);
                        return Ok(Some(Frame::Line(std::mem::take(&mut self.line))));
                    }
                    None => {
                        self.pos = self.chunk.len();
                        if self.discarding {
                            continue;
                        }
                        if self.line.len() + rest_len > self.cap {
                            let extra = self.chunk[start..].to_vec();
                            self.discarding = true;
                            return Ok(Some(self.over_cap(&extra)));
                        }
                        self.line.extend_from_slice(&self.chunk[start..]);
                    }
                }
            }
            self.chunk.resize(64 << 10, 0);
            let n = self.inner.read(&mut self.chunk).await?;
            self.chunk.truncate(n);
            self.pos = 0;
            if n == 0 {
                if self.discarding || self.line.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(Frame::Line(std::mem::take(&mut self.line))));
            }
        }
    }
}

/// Options of the stdio transport.
#[derive(Debug, Clone, Copy)]
pub struct StdioOptions {
    /// Longest accepted line in bytes.
    pub max_frame_bytes: usize,
}

impl Default for StdioOptions {
    fn default() -> Self {
        Self {
            max_frame_bytes: frame::DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// Serves MCP on the process's stdin/stdout until stdin closes.
///
/// # Errors
/// The session could not start or ended with an error (the text says which).
pub async fn serve(server: ProxmoxServer, opts: StdioOptions) -> Result<(), String> {
    serve_io(server, tokio::io::stdin(), tokio::io::stdout(), opts).await
}

/// [`serve`] over any byte streams (tests drive it through pipes).
///
/// # Errors
/// As [`serve`].
pub async fn serve_io<R, W>(
    server: ProxmoxServer,
    input: R,
    output: W,
    opts: StdioOptions,
) -> Result<(), String>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // rmcp talks to `ours` through an in-memory pipe; we feed it checked lines only.
    let (theirs, ours) = tokio::io::duplex(1 << 20);
    let (from_rmcp, mut to_rmcp) = tokio::io::split(ours);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);

    let writer = tokio::spawn(async move {
        let mut output = output;
        while let Some(mut line) = rx.recv().await {
            line.push(b'\n');
            if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });

    let rmcp_out = tx.clone();
    let pump = tokio::spawn(async move {
        let mut lines = BufReader::new(from_rmcp);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    if rmcp_out.send(buf.clone()).await.is_err() {
                        break;
                    }
                }
            }
        }
    });

    let cap = opts.max_frame_bytes;
    let reader = tokio::spawn(async move {
        let mut frames = FrameReader::new(input, cap);
        while let Ok(Some(f)) = frames.next_frame().await {
            let refusal = match f {
                Frame::Line(mut line) => {
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match frame::check_client_message(&line) {
                        Ok(_) => {
                            line.push(b'\n');
                            if to_rmcp.write_all(&line).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Frame::TooLong(prefix) => frame::too_long(&prefix, cap),
            };
            tracing::warn!(
                code = refusal.code,
                "refused a stdio frame: {}",
                refusal.message
            );
            if tx.send(refusal.to_line()).await.is_err() {
                break;
            }
        }
        // End of input: rmcp sees its input close and ends the session.
        let _ = to_rmcp.shutdown().await;
    });

    let result = match server.serve(theirs).await {
        Ok(running) => running
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| format!("MCP stdio session: {e}")),
        // Input closed before a client said hello (Ctrl-D, a probe): a clean exit.
        Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => Ok(()),
        Err(e) => Err(format!("starting the MCP stdio session: {e}")),
    };
    reader.abort();
    // Everything rmcp wrote is flushed before returning.
    let _ = pump.await;
    let _ = writer.await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], cap: usize) -> Vec<Frame> {
        let mut r = FrameReader::new(input, cap);
        let mut out = vec![];
        while let Some(f) = r.next_frame().await.expect("read") {
            out.push(f);
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_and_long_ones_cut_without_buffering() {
        let got = frames(b"ab\ncd\n", 10).await;
        assert_eq!(
            got,
            vec![Frame::Line(b"ab".to_vec()), Frame::Line(b"cd".to_vec())]
        );
        let mut input = b"{\"id\":5,".to_vec();
        input.extend(std::iter::repeat_n(b'x', 300_000));
        input.extend(b"\nok\n");
        let got = frames(&input, 100).await;
        assert_eq!(got.len(), 2, "one refusal, then the next line");
        match &got[0] {
            Frame::TooLong(p) => assert!(p.len() <= PREFIX_KEEP && p.starts_with(b"{\"id\":5,")),
            other => panic!("{other:?}"),
        }
        assert_eq!(got[1], Frame::Line(b"ok".to_vec()));
        // Exactly at the cap is accepted; one more byte is not.
        assert_eq!(
            frames(b"12345\n", 5).await,
            vec![Frame::Line(b"12345".to_vec())]
        );
        assert!(matches!(
            frames(b"123456\n", 5).await[..],
            [Frame::TooLong(_)]
        ));
        // A last line without newline still counts.
        assert_eq!(frames(b"a\nb", 5).await[1], Frame::Line(b"b".to_vec()));
    }
}

//! What the simulator keeps of a file's bytes while they stream in (SFTP, downloads,
//! redirects): size, running sha256/sha512, the first 512 bytes (image headers) and the bytes
//! themselves while they fit [`KEEP_CONTENT`].

use sha2::{Digest, Sha256, Sha512};

use super::super::state::Body;

/// Files up to this size keep their bytes (snippets, small test images).
pub const KEEP_CONTENT: usize = 64 * 1024;

/// Bytes streamed into a file: size, running digests, the first 512 bytes (image headers)
/// and the bytes themselves while they fit [`KEEP_CONTENT`].
pub struct Writer {
    size: u64,
    sha256: Sha256,
    sha512: Sha512,
    head: Vec<u8>,
    content: Option<Vec<u8>>,
}

/// A finished write.
#[derive(Clone, Debug)]
pub struct Blob {
    pub size: u64,
    pub body: Body,
    pub head: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            size: 0,
            sha256: Sha256::new(),
            sha512: Sha512::new(),
            head: Vec::new(),
            content: Some(Vec::new()),
        }
    }
}

impl Writer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.sha256.update(chunk);
        self.sha512.update(chunk);
        if self.head.len() < 512 {
            let take = (512 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if let Some(c) = self.content.as_mut() {
            if c.len() + chunk.len() <= KEEP_CONTENT {
                c.extend_from_slice(chunk);
            } else {
                self.content = None;
            }
        }
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn finish(self) -> Blob {
        Blob {
            size: self.size,
            body: Body {
                sha256: hex(&self.sha256.finalize()),
                sha512: hex(&self.sha512.finalize()),
                content: self.content,
            },
            head: self.head,
        }
    }
}

impl Blob {
    pub fn from_bytes(bytes: &[u8]) -> Blob {
        let mut w = Writer::default();
        w.push(bytes);
        w.finish()
    }
}

/// Stable made-up digests for bytes the simulator never saw.
pub fn made_up(seed: &str) -> Body {
    Body {
        sha256: hex(&Sha256::digest(format!("sim-unseen:{seed}").as_bytes())),
        sha512: hex(&Sha512::digest(format!("sim-unseen:{seed}").as_bytes())),
        content: None,
    }
}

/// Made-up digests after a change to bytes the simulator does not keep.
pub fn rehash(old: &Body, change: &str) -> Body {
    made_up(&format!("{}:{change}", old.sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_keeps_small_content_only() {
        let mut w = Writer::default();
        w.push(b"abc");
        let b = w.finish();
        assert_eq!(b.body.content.as_deref(), Some(&b"abc"[..]));
        assert_eq!(
            b.body.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut w = Writer::default();
        w.push(&vec![0u8; KEEP_CONTENT + 1]);
        assert!(w.finish().body.content.is_none());
    }
}

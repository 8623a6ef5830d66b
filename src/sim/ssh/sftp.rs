//! The `sftp` subsystem on the node filesystem ([`super::fs`]): realpath, open (create,
//! truncate, write, read), write, read (files whose bytes are kept), close, stat/lstat/fstat,
//! setstat/fsetstat (mode), remove. A file written into a storage content directory becomes
//! that storage's volume on close. Writes may go anywhere while a file is small; past
//! [`fs::KEEP_CONTENT`] they must be sequential (as every SFTP client uploads). Not modelled:
//! directories (opendir, mkdir, rmdir), rename, links.

use std::collections::HashMap;
use std::sync::Arc;

use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;

use super::exec::NodeCtx;
use super::fs::{self, FsError, KEEP_CONTENT, Writer};

/// An open file.
enum Open {
    Write {
        path: String,
        /// The whole file while it is small.
        small: Option<Vec<u8>>,
        /// The stream once it is not.
        big: Option<Box<Writer>>,
    },
    Read {
        path: String,
        bytes: Vec<u8>,
    },
}

pub struct Sftp {
    ctx: Arc<NodeCtx>,
    open: HashMap<String, Open>,
    next: u64,
}

impl Sftp {
    pub fn new(ctx: Arc<NodeCtx>) -> Sftp {
        Sftp {
            ctx,
            open: HashMap::new(),
            next: 0,
        }
    }

    fn handle(&mut self, id: u32, o: Open) -> Handle {
        self.next += 1;
        let h = format!("h{}", self.next);
        self.open.insert(h.clone(), o);
        Handle { id, handle: h }
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn fs_err(e: FsError) -> StatusReply {
    match e {
        FsError::NotFound => StatusCode::NoSuchFile.into(),
        FsError::ReadOnly => StatusCode::PermissionDenied.into(),
        FsError::IsDir => StatusCode::Failure.with_message("Is a directory"),
    }
}

fn attrs(size: u64, mode: u32) -> FileAttributes {
    FileAttributes {
        size: Some(size),
        uid: Some(0),
        gid: Some(0),
        permissions: Some(mode),
        atime: Some(0),
        mtime: Some(0),
        ..FileAttributes::default()
    }
}

/// Applies one write to an open file.
fn put(
    small: &mut Option<Vec<u8>>,
    big: &mut Option<Box<Writer>>,
    offset: u64,
    data: &[u8],
) -> Result<(), StatusReply> {
    if let Some(buf) = small.as_mut() {
        let end = offset as usize + data.len();
        if end <= KEEP_CONTENT {
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[offset as usize..end].copy_from_slice(data);
            return Ok(());
        }
        let mut w = Writer::default();
        w.push(buf);
        *big = Some(Box::new(w));
        *small = None;
    }
    let Some(w) = big.as_mut() else {
        return Err(StatusCode::Failure.into());
    };
    if offset != w.size() {
        return Err(StatusCode::Failure
            .with_message("sim: writes past 64 KiB must be sequential in the simulator"));
    }
    w.push(data);
    Ok(())
}

impl russh_sftp::server::Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        Ok(Name {
            id,
            files: vec![File::dummy(fs::normalize(&path))],
        })
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let path = fs::normalize(&filename);
        let mut st = self.ctx.lock();
        let node = self.ctx.node.clone();
        let existing = fs::stat(&st, &node, &path);
        if !pflags.intersects(OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE) {
            let f = existing.ok_or(StatusCode::NoSuchFile)?;
            let bytes = f.body.content.ok_or_else(|| {
                StatusCode::Failure.with_message("sim: the bytes of files over 64 KiB are not kept")
            })?;
            drop(st);
            return Ok(self.handle(id, Open::Read { path, bytes }));
        }
        if pflags.contains(OpenFlags::EXCLUDE) && existing.is_some() {
            return Err(StatusCode::Failure.with_message("File exists"));
        }
        if existing.is_none() && !pflags.contains(OpenFlags::CREATE) {
            return Err(StatusCode::NoSuchFile.into());
        }
        let start = match existing {
            Some(f) if !pflags.contains(OpenFlags::TRUNCATE) => {
                f.body.content.ok_or_else(|| {
                    StatusCode::Failure
                        .with_message("sim: cannot reopen a file over 64 KiB for writing")
                })?
            }
            _ => Vec::new(),
        };
        fs::write(&mut st, &node, &path, fs::Blob::from_bytes(&start)).map_err(fs_err)?;
        drop(st);
        Ok(self.handle(
            id,
            Open::Write {
                path,
                small: Some(start),
                big: None,
            },
        ))
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        match self.open.get_mut(&handle) {
            Some(Open::Write { small, big, .. }) => put(small, big, offset, &data).map(|()| ok(id)),
            Some(Open::Read { .. }) => Err(StatusCode::PermissionDenied.into()),
            None => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(Open::Read { bytes, .. }) = self.open.get(&handle) else {
            return Err(StatusCode::Failure.with_message("invalid handle"));
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start >= bytes.len() {
            return Err(StatusCode::Eof.into());
        }
        let end = (start + len as usize).min(bytes.len());
        Ok(Data {
            id,
            data: bytes[start..end].to_vec(),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.open.remove(&handle) {
            Some(Open::Write { path, small, big }) => {
                let blob = match (small, big) {
                    (Some(bytes), _) => fs::Blob::from_bytes(&bytes),
                    (None, Some(w)) => (*w).finish(),
                    (None, None) => fs::Blob::from_bytes(b""),
                };
                let mut st = self.ctx.lock();
                fs::write(&mut st, &self.ctx.node, &path, blob).map_err(fs_err)?;
                Ok(ok(id))
            }
            Some(Open::Read { .. }) => Ok(ok(id)),
            None => Err(StatusCode::Failure.with_message("invalid handle")),
        }
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let st = self.ctx.lock();
        if fs::is_dir(&st, &self.ctx.node, &path) {
            return Ok(Attrs {
                id,
                attrs: attrs(4096, 0o40755),
            });
        }
        let f = fs::stat(&st, &self.ctx.node, &path).ok_or(StatusCode::NoSuchFile)?;
        Ok(Attrs {
            id,
            attrs: attrs(f.size, 0o100000 | f.mode),
        })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let path = match self.open.get(&handle) {
            Some(Open::Write { path, .. } | Open::Read { path, .. }) => path.clone(),
            None => return Err(StatusCode::Failure.with_message("invalid handle")),
        };
        self.stat(id, path).await
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let mut st = self.ctx.lock();
        if fs::is_dir(&st, &self.ctx.node, &path) {
            return Ok(ok(id));
        }
        fs::update(&mut st, &self.ctx.node, &path, |f| {
            if let Some(p) = attrs.permissions {
                f.mode = p & 0o7777;
            }
        })
        .map_err(fs_err)?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = match self.open.get(&handle) {
            Some(Open::Write { path, .. } | Open::Read { path, .. }) => path.clone(),
            None => return Err(StatusCode::Failure.with_message("invalid handle")),
        };
        self.setstat(id, path, attrs).await
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let mut st = self.ctx.lock();
        fs::remove(&mut st, &self.ctx.node, &filename).map_err(fs_err)?;
        Ok(ok(id))
    }
}

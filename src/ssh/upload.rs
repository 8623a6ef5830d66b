//! SFTP upload over one session channel.

use russh::Channel;
use russh::client::Msg;
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::FileAttributes;
use tokio::io::{AsyncRead, AsyncWriteExt};

use super::Error;

/// Write everything `reader` yields to `remote_path`, then set its mode (after writing, so
/// the server's umask does not apply).
pub(crate) async fn sftp_write<R: AsyncRead + Unpin>(
    channel: Channel<Msg>,
    host: &str,
    mut reader: R,
    remote_path: &str,
    mode: u32,
) -> Result<(), Error> {
    let fail = |reason: String| Error::Sftp {
        host: host.to_owned(),
        remote_path: remote_path.to_owned(),
        reason,
    };
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| fail(format!("cannot start the sftp subsystem: {e}")))?;
    let sftp = SftpSession::new(channel.into_stream()).await.map_err(|e| {
        fail(format!(
            "sftp handshake failed: {e}; is `Subsystem sftp` enabled in sshd_config?"
        ))
    })?;
    let result = async {
        let mut file = sftp
            .create(remote_path)
            .await
            .map_err(|e| fail(format!("cannot create the file: {e}")))?;
        tokio::io::copy(&mut reader, &mut file)
            .await
            .map_err(|e| fail(format!("writing failed: {e}")))?;
        file.shutdown()
            .await
            .map_err(|e| fail(format!("closing the file failed: {e}")))?;
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(mode & 0o7777);
        sftp.set_metadata(remote_path, attrs)
            .await
            .map_err(|e| fail(format!("cannot set mode {mode:o}: {e}")))
    }
    .await;
    let _ = sftp.close().await;
    result
}

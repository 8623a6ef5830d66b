//! TLS trust for the PVE API: system roots (default), a CA file (PVE's cluster CA, keeps name
//! and expiry checks), or a pinned SHA-256 fingerprint of the node's leaf certificate. The pinned
//! verifier still checks the TLS 1.2/1.3 handshake signature, which proves the server holds the
//! pinned certificate's private key. Also turns rustls failures into actionable [`Error::Tls`].

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::error::Error;

/// How the server certificate is trusted. Never "accept anything".
#[derive(Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// The operating system's trust store.
    SystemRoots,
    /// Only the CA certificates in this PEM file (e.g. a copy of `/etc/pve/pve-root-ca.pem`).
    CaFile(PathBuf),
    /// The SHA-256 of the leaf certificate's DER, as the PVE GUI shows it.
    Fingerprint([u8; 32]),
}

impl std::fmt::Debug for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsMode::SystemRoots => f.write_str("SystemRoots"),
            TlsMode::CaFile(p) => f.debug_tuple("CaFile").field(p).finish(),
            TlsMode::Fingerprint(fp) => write!(f, "Fingerprint({})", format_fingerprint(fp)),
        }
    }
}

/// `AB:CD:...` uppercase, colon-separated, as the PVE GUI and `openssl x509 -fingerprint` show.
pub fn format_fingerprint(fp: &[u8]) -> String {
    let parts: Vec<String> = fp.iter().map(|b| format!("{b:02X}")).collect();
    parts.join(":")
}

/// Parses `AB:CD:...` (colons optional, any case) into 32 bytes.
///
/// # Errors
/// [`Error::InvalidInput`] when it is not 64 hex digits.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], Error> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bad = || {
        Error::invalid(format!(
            "invalid sha-256 fingerprint {text:?}: expected 32 bytes as hex like AB:CD:..., as shown by the pve gui under node > system > certificates"
        ))
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The SHA-256 of a DER certificate.
pub fn sha256_fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = Sha256::digest(der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_slice());
    out
}

/// Carried inside the rustls error so the client can report what the server presented.
#[derive(Debug)]
pub(crate) struct FingerprintMismatch {
    pub presented: String,
    pub pinned: String,
}

impl std::fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate fingerprint mismatch: the server presented {}, config pins {}",
            self.presented, self.pinned
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// Accepts exactly one leaf certificate by fingerprint; verifies handshake signatures.
#[derive(Debug)]
struct PinnedVerifier {
    sha256: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = sha256_fingerprint(end_entity.as_ref());
        // Constant-time compare is not needed for a public value, but costs nothing.
        if subtle::ConstantTimeEq::ct_eq(&presented[..], &self.sha256[..]).into() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(FingerprintMismatch {
                    presented: format_fingerprint(&presented),
                    pinned: format_fingerprint(&self.sha256),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Applies the TLS mode to a reqwest builder.
pub(crate) fn configure(
    builder: reqwest::ClientBuilder,
    mode: &TlsMode,
) -> Result<reqwest::ClientBuilder, Error> {
    match mode {
        TlsMode::SystemRoots => Ok(builder),
        TlsMode::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::invalid(format!(
                    "cannot read the ca file {}: {e}; check api.tls.ca_file",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::invalid(format!(
                    "the ca file {} holds no usable pem certificate ({e}); copy /etc/pve/pve-root-ca.pem from a node",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(Error::invalid(format!(
                    "the ca file {} holds no pem certificate; copy /etc/pve/pve-root-ca.pem from a node",
                    path.display()
                )));
            }
            Ok(builder.tls_certs_only(certs))
        }
        TlsMode::Fingerprint(fp) => {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let verifier = PinnedVerifier {
                sha256: *fp,
                algs: provider.signature_verification_algorithms,
            };
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::invalid(format!("cannot set up tls: {e}")))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            Ok(builder.tls_backend_preconfigured(config))
        }
    }
}

/// Seeds the TLS library's random generator. aws-lc seeds it from CPU jitter the first time a
/// handshake needs it, some 25 ms of CPU; a server calls this on a blocking thread at start-up,
/// so its first tool call does not pay that.
pub fn warm_up() {
    let mut seed = [0u8; 16];
    let _ = rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut seed);
}

/// Finds a rustls error in a reqwest error's source chain and explains it, or `None` when the
/// failure is not about TLS.
pub(crate) fn classify(err: &reqwest::Error, endpoint: &str, mode: &TlsMode) -> Option<Error> {
    let rustls_err = find_rustls(err)?;
    let (reason, presented) = match rustls_err.clone() {
        rustls::Error::InvalidCertificate(cert_err) => explain_cert(&cert_err, mode),
        other => (format!("{other}"), None),
    };
    Some(Error::Tls {
        endpoint: endpoint.to_owned(),
        reason,
        presented_fingerprint: presented,
    })
}

fn explain_cert(err: &CertificateError, mode: &TlsMode) -> (String, Option<String>) {
    let hint = match mode {
        TlsMode::SystemRoots => {
            "; pve uses its own cluster ca: set api.tls.ca_file (a copy of /etc/pve/pve-root-ca.pem) or api.tls.fingerprint (node > system > certificates in the pve gui)"
        }
        TlsMode::CaFile(_) => {
            "; check that api.tls.ca_file is the cluster ca (/etc/pve/pve-root-ca.pem), not a leaf certificate"
        }
        TlsMode::Fingerprint(_) => "",
    };
    match err {
        CertificateError::Other(other) => {
            if let Some(m) = other.0.downcast_ref::<FingerprintMismatch>() {
                return (
                    format!(
                        "the server presented certificate fingerprint {}, config pins {}; if the certificate was renewed update api.tls.fingerprint",
                        m.presented, m.pinned
                    ),
                    Some(m.presented.clone()),
                );
            }
            (format!("certificate rejected: {other}{hint}"), None)
        }
        CertificateError::UnknownIssuer => (
            format!("certificate not trusted (unknown issuer){hint}"),
            None,
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
            format!(
                "certificate not valid for this host name ({err}); connect by a name or address listed in the certificate, or pin its fingerprint with api.tls.fingerprint"
            ),
            None,
        ),
        CertificateError::BadSignature => (
            "the server's handshake signature does not match its certificate, so it does not hold the certificate's private key; this can be an interception, do not trust this endpoint".to_owned(),
            None,
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            format!("certificate expired ({err}); renew the node certificate (pvecm updatecerts)"),
            None,
        ),
        other => (format!("certificate rejected: {other}{hint}"), None),
    }
}

fn find_rustls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // io::Error::source() skips the wrapped error itself, so look inside explicitly.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(r) = find_rustls(inner)
        {
            return Some(r);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trip() -> Result<(), Error> {
        let fp = sha256_fingerprint(b"hello");
        let text = format_fingerprint(&fp);
        assert_eq!(text.len(), 32 * 3 - 1);
        assert!(text.starts_with("2C:F2:4D:BA"), "{text}");
        assert_eq!(parse_fingerprint(&text)?, fp);
        assert_eq!(
            parse_fingerprint(&text.replace(':', "").to_lowercase())?,
            fp
        );
        assert!(parse_fingerprint("AB:CD").is_err());
        assert!(parse_fingerprint(&"ZZ".repeat(32)).is_err());
        Ok(())
    }
}

//! TLS trust modes of the PVE client against a throwaway HTTPS server with a PVE-like CA and
//! leaf (rcgen): CA file, pinned fingerprint (right, wrong, and a server that shows the pinned
//! certificate without holding its key), system roots, wrong host name, leaf used as CA.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use proxmox_manager::pve::{
    ApiToken, Client, ClientOptions, Error, TlsMode, format_fingerprint, sha256_fingerprint,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Pki {
    ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
    other_key: PrivateKeyDer<'static>,
    leaf_pem: String,
}

fn pki() -> Result<Pki, rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Proxmox Virtual Environment");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);
    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "pve01".to_owned()])?;
    leaf.distinguished_name.push(DnType::CommonName, "pve01");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    let other_key = KeyPair::generate()?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        leaf_der: leaf_cert.der().clone(),
        leaf_pem: leaf_cert.pem(),
        leaf_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        other_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(other_key.serialize_der())),
    })
}

/// Presents a fixed certificate and key, without checking that they belong together.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Serves `{"data":{"version":"9.1.1"}}` over TLS to every request; returns the port.
async fn serve(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<u16, Box<dyn std::error::Error>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signing = provider.key_provider.load_private_key(key)?;
    let certified = Arc::new(CertifiedKey::new(vec![cert], signing));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(certified)));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = r#"{"data":{"version":"9.1.1","release":"9.1","repoid":"abc"}}"#;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(port)
}

fn client(endpoint: String, tls: TlsMode) -> Result<Client, Error> {
    let token = ApiToken::new(
        "root@pam!admin",
        SecretString::from("5e2c1f0a-0000-4d5e-8f90-123456789abc".to_owned()),
    )?;
    let mut opts = ClientOptions::new(vec![endpoint], token);
    opts.tls = tls;
    opts.timeout = Duration::from_secs(10);
    opts.max_retries = 0;
    Client::new(opts)
}

fn pem_file(pem: &str) -> Result<tempfile::NamedTempFile, std::io::Error> {
    let mut f = tempfile::NamedTempFile::new()?;
    f.write_all(pem.as_bytes())?;
    Ok(f)
}

#[tokio::test]
async fn ca_file_trusts_the_cluster_ca() -> TestResult {
    let pki = pki()?;
    let port = serve(pki.leaf_der.clone(), pki.leaf_key.clone_key()).await?;
    let ca = pem_file(&pki.ca_pem)?;
    let v = client(
        format!("https://127.0.0.1:{port}"),
        TlsMode::CaFile(ca.path().to_owned()),
    )?
    .get_version()
    .await?;
    assert_eq!(v.version, "9.1.1");

    // the CA file keeps the host-name check
    let e = client(
        format!("https://localhost:{port}"),
        TlsMode::CaFile(ca.path().to_owned()),
    )?
    .get_version()
    .await
    .err();
    let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(e, Some(Error::Tls { .. })), "{e:?}");
    assert!(text.contains("not valid for this host name"), "{text}");
    Ok(())
}

#[tokio::test]
async fn leaf_given_as_ca_is_not_trusted() -> TestResult {
    let pki = pki()?;
    let port = serve(pki.leaf_der.clone(), pki.leaf_key.clone_key()).await?;
    let leaf = pem_file(&pki.leaf_pem)?;
    let e = client(
        format!("https://127.0.0.1:{port}"),
        TlsMode::CaFile(leaf.path().to_owned()),
    )?
    .get_version()
    .await
    .err();
    let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(e, Some(Error::Tls { .. })), "{e:?}");
    assert!(
        text.contains("certificate not trusted") && text.contains("/etc/pve/pve-root-ca.pem"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn pinned_fingerprint_accepts_the_right_leaf_by_any_name() -> TestResult {
    let pki = pki()?;
    let port = serve(pki.leaf_der.clone(), pki.leaf_key.clone_key()).await?;
    let fp = sha256_fingerprint(pki.leaf_der.as_ref());
    for host in ["127.0.0.1", "localhost"] {
        let v = client(format!("https://{host}:{port}"), TlsMode::Fingerprint(fp))?
            .get_version()
            .await?;
        assert_eq!(v.version, "9.1.1");
    }
    Ok(())
}

#[tokio::test]
async fn wrong_pin_names_the_presented_fingerprint() -> TestResult {
    let pki = pki()?;
    let port = serve(pki.leaf_der.clone(), pki.leaf_key.clone_key()).await?;
    let presented = format_fingerprint(&sha256_fingerprint(pki.leaf_der.as_ref()));
    let pinned = [0xAB; 32];
    let e = client(
        format!("https://127.0.0.1:{port}"),
        TlsMode::Fingerprint(pinned),
    )?
    .get_version()
    .await
    .err();
    let Some(Error::Tls {
        presented_fingerprint,
        ..
    }) = &e
    else {
        return Err(format!("expected Tls, got {e:?}").into());
    };
    assert_eq!(presented_fingerprint.as_deref(), Some(presented.as_str()));
    assert!(!e.as_ref().is_some_and(Error::is_retryable));
    let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        text.contains(&format!(
            "the server presented certificate fingerprint {presented}, config pins {}",
            format_fingerprint(&pinned)
        )),
        "{text}"
    );
    assert!(
        text.contains("if the certificate was renewed update api.tls.fingerprint"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn pin_still_requires_the_private_key() -> TestResult {
    // The server shows the pinned certificate but signs the handshake with another key.
    let pki = pki()?;
    let port = serve(pki.leaf_der.clone(), pki.other_key.clone_key()).await?;
    let fp = sha256_fingerprint(pki.leaf_der.as_ref());
    let e = client(
        format!("https://127.0.0.1:{port}"),
        TlsMode::Fingerprint(fp),
    )?
    .get_version()
    .await
    .err();
    let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(e, Some(Error::Tls { .. })), "{e:?}");
    assert!(
        text.contains("does not hold the certificate's private key"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn system_roots_reject_the_pve_ca_with_a_hint() -> TestResult {
    let pki = pki()?;
    let port = serve(pki.leaf_der.clone(), pki.leaf_key.clone_key()).await?;
    let e = client(format!("https://127.0.0.1:{port}"), TlsMode::SystemRoots)?
        .get_version()
        .await
        .err();
    let text = e.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(matches!(e, Some(Error::Tls { .. })), "{e:?}");
    assert!(text.contains("certificate not trusted"), "{text}");
    assert!(
        text.contains("api.tls.ca_file") && text.contains("api.tls.fingerprint"),
        "{text}"
    );
    Ok(())
}

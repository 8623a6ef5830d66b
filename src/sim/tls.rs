//! TLS material: a generated CA (like PVE's "Proxmox Virtual Environment" cluster CA) and a
//! leaf certificate it signs for loopback and every node name, plus the rustls server config
//! and the leaf's SHA-256 fingerprint in the GUI's `AB:CD:...` form.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use super::SimError;

pub struct TlsMaterial {
    pub ca_pem: String,
    pub fingerprint: String,
    pub config: Arc<rustls::ServerConfig>,
}

fn tls_err(e: impl std::fmt::Display) -> SimError {
    SimError::Tls(e.to_string())
}

/// Generates the CA and leaf and builds the server config.
///
/// # Errors
/// [`SimError::Tls`] if key generation, signing or the rustls setup fails.
pub fn generate(node_names: &[String]) -> Result<TlsMaterial, SimError> {
    let ca_key = KeyPair::generate().map_err(tls_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Proxmox Virtual Environment");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "PVE Cluster Manager CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "PVE Cluster Node");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // `is_ca` makes rcgen write subjectKeyIdentifier and a critical basicConstraints CA:TRUE;
    // the self-signed CA names its own key as authority, as `openssl req -x509` (pve-root-ca) does
    ca_params.use_authority_key_identifier_extension = true;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls_err)?;

    let mut sans: Vec<String> = vec!["localhost".into()];
    sans.extend(node_names.iter().cloned());
    let mut leaf_params = CertificateParams::new(sans).map_err(tls_err)?;
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().map_err(tls_err)?));
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress("::1".parse().map_err(tls_err)?));
    let first = node_names
        .first()
        .map(String::as_str)
        .unwrap_or("localhost");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, format!("{first}.sim"));
    leaf_params
        .distinguished_name
        .push(DnType::OrganizationName, "PVE Cluster Node");
    // pve-ssl.pem's extensions (PVE::CertHelpers / `openssl req` in pve-cluster): strict
    // verifiers (OpenSSL's X509_V_FLAG_X509_STRICT, Python 3.13's default context) need the
    // key identifiers and an explicit CA:FALSE on the leaf
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().map_err(tls_err)?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(tls_err)?;

    let fingerprint = Sha256::digest(leaf.der().as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let chain = vec![
        CertificateDer::from(leaf.der().to_vec()),
        CertificateDer::from(ca.der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    Ok(TlsMaterial {
        ca_pem: ca.pem(),
        fingerprint,
        config: Arc::new(config),
    })
}

//! TLS for tokio-postgres with libpq's `sslmode` meanings on top of rustls
//! (which always verifies unless told otherwise):
//!
//! * `disable` — no TLS at all;
//! * `allow`/`prefer`/`require` — encrypted, certificate not verified
//!   (handshake signatures still checked), as libpq does;
//! * `verify-ca` — chain verified against the roots, host name not checked;
//! * `verify-full` — chain and host name verified.
//!
//! Roots: the URL's `sslrootcert`, else `~/.postgresql/root.crt`, else the
//! system store. As in libpq, `require` with a `~/.postgresql/root.crt`
//! present behaves as `verify-ca`. A project's CA certificate (set with
//! `--ca-file`) makes its connections `verify-full`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::engine::conninfo::{ConnInfo, SslMode};
use crate::engine::error::{Error, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Accepts any certificate but checks the handshake signature against it.
#[derive(Debug)]
struct NoCertVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoCertVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Verifies the chain but accepts a certificate issued for another name.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `~/.postgresql/root.crt`, when it exists (libpq's default root file).
fn home_root_cert() -> Option<PathBuf> {
    let home = directories::BaseDirs::new()?
        .home_dir()
        .join(".postgresql/root.crt");
    home.exists().then_some(home)
}

/// The mode connections really use: libpq's rule that a root certificate
/// file turns `require` into `verify-ca` holds here too.
pub fn effective_mode(info: &ConnInfo) -> SslMode {
    if info.sslmode == SslMode::Require
        && (info.sslrootcert.is_some() || home_root_cert().is_some())
    {
        SslMode::VerifyCa
    } else {
        info.sslmode
    }
}

/// Points a connection at a project's CA certificate file: the mode becomes
/// `verify-full`, unless the URL asks for `verify-ca` or names its own
/// `sslrootcert` (then the URL wins).
pub fn use_project_ca(info: &mut ConnInfo, ca_file: String) {
    if info.sslrootcert.is_some() {
        return;
    }
    info.sslrootcert = Some(ca_file);
    if info.sslmode != SslMode::VerifyCa {
        info.sslmode = SslMode::VerifyFull;
    }
}

/// Whether the server's certificate is verified (verify-ca or verify-full).
pub fn is_verified(info: &ConnInfo) -> bool {
    matches!(
        effective_mode(info),
        SslMode::VerifyCa | SslMode::VerifyFull
    )
}

/// How a connection's TLS reads in reports.
pub fn describe_verification(info: &ConnInfo) -> &'static str {
    if info.is_unix_socket() {
        return "local socket (no network)";
    }
    match effective_mode(info) {
        SslMode::VerifyFull => "TLS verified (certificate and host name)",
        SslMode::VerifyCa => "TLS verified (certificate chain; host name not checked)",
        SslMode::Disable => "not encrypted",
        _ => "encrypted, server NOT verified",
    }
}

fn root_store(info: &ConnInfo) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let explicit = info
        .sslrootcert
        .as_ref()
        .map(PathBuf::from)
        .or_else(home_root_cert);
    match explicit {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(&path).map_err(|e| {
                Error::invalid(format!(
                    "could not read the root certificate {}: {e}",
                    path.display()
                ))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    Error::invalid(format!(
                        "the root certificate file {} is not valid PEM: {e}",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    Error::invalid(format!(
                        "unusable root certificate in {}: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(Error::invalid(format!(
            "sslmode={} needs a root certificate, and none was found",
            info.sslmode.as_str()
        ))
        .with_hint("download the project's CA certificate (Supabase: Database Settings → SSL) and add sslrootcert=PATH to the URL"));
    }
    Ok(roots)
}

/// The rustls connector for this URL's `sslmode`.
pub fn connector(info: &ConnInfo) -> Result<MakeRustlsConnect> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS set-up failed: {e}")))?;
    let config = match effective_mode(info) {
        SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertVerification(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let verifier = WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(info)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::invalid(format!("TLS verification set-up failed: {e}")))?;
            if effective_mode(info) == SslMode::VerifyCa {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
                    .with_no_client_auth()
            } else {
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            }
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

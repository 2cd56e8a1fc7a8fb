//! TLS, with libpq's `sslmode` values over rustls: the URL's `sslmode` and `sslrootcert` are
//! read here, since tokio-postgres knows only `disable`, `prefer` and `require`.
//!
//! | `sslmode` | encrypted | the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` (the default, as in libpq) | if the server offers TLS | not checked |
//! | `require` | always | not checked |
//! | `verify-ca` | always | signed by a trusted root |
//! | `verify-full` | always | signed by a trusted root, and for the host connected to |
//!
//! The trusted roots are the PEM file `sslrootcert` names, or else the Mozilla roots that
//! `webpki-roots` carries. As in libpq, `require` with an `sslrootcert` checks the chain, as
//! `verify-ca` does.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a connection uses TLS (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A URL's TLS settings, whether it says the server is behind a pooler in transaction mode,
/// and the URL as tokio-postgres reads it.
#[derive(Debug)]
pub(crate) struct Split {
    /// The URL with `sslrootcert` and `transaction_pooling` taken out and `verify-*` written
    /// as `require`.
    pub(crate) url: String,
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<PathBuf>,
    /// `transaction_pooling=true` (see [`PgOptions::transaction_pooling`](crate::PgOptions)):
    /// sagaflow's, not libpq's, so tokio-postgres never sees it.
    pub(crate) transaction_pooling: bool,
}

/// Reads `sslmode`, `sslrootcert` and `transaction_pooling` out of `url` (a URL's query, or
/// key=value pairs).
pub(crate) fn split(url: &str) -> Result<Split, String> {
    let (head, pairs, sep) = match url.find("://") {
        Some(_) => match url.split_once('?') {
            Some((head, query)) => (
                format!("{head}?"),
                query.split('&').collect::<Vec<_>>(),
                "&",
            ),
            None => (url.to_owned(), Vec::new(), "&"),
        },
        None => (String::new(), url.split_whitespace().collect(), " "),
    };
    let mut mode = SslMode::Prefer;
    let mut root_cert = None;
    let mut transaction_pooling = false;
    let mut kept = Vec::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some(("sslmode", value)) => {
                mode = match value {
                    "disable" => SslMode::Disable,
                    // libpq's `allow` tries plain first; here it is `prefer`.
                    "allow" | "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode `{other}` is none of disable, allow, prefer, require, verify-ca, verify-full"
                        ));
                    }
                };
                let passed = match mode {
                    SslMode::Disable => "disable",
                    SslMode::Prefer => "prefer",
                    _ => "require",
                };
                kept.push(format!("sslmode={passed}"));
            }
            Some(("sslrootcert", path)) => root_cert = Some(PathBuf::from(path)),
            Some(("transaction_pooling", value)) => {
                transaction_pooling = match value {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(format!(
                            "transaction_pooling `{other}` is neither true nor false"
                        ));
                    }
                };
            }
            _ => kept.push(pair.to_owned()),
        }
    }
    let url = match (head.is_empty(), url.contains('?')) {
        (true, _) => kept.join(sep),
        (false, true) if kept.is_empty() => head.trim_end_matches('?').to_owned(),
        (false, true) => format!("{head}{}", kept.join(sep)),
        (false, false) => head,
    };
    if mode == SslMode::Require && root_cert.is_some() {
        mode = SslMode::VerifyCa;
    }
    Ok(Split {
        url,
        mode,
        root_cert,
        transaction_pooling,
    })
}

/// The connector for `mode`: `None` for plain connections, else rustls, checking the server's
/// certificate as the mode says against `root_cert` (or the Mozilla roots).
pub(crate) fn connector(
    mode: SslMode,
    root_cert: Option<&std::path::Path>,
) -> Result<Option<MakeRustlsConnect>, String> {
    if mode == SslMode::Disable {
        return Ok(None);
    }
    // ring rather than aws-lc-rs (rustls's default, which it now recommends for its
    // post-quantum key exchange): aws-lc-rs builds a large C library, and the servers this
    // talks to are PostgreSQL's, which offer no post-quantum key exchange yet.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(roots(root_cert)?);
            let full = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| e.to_string())?;
            if mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(full).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(full)))
                    .with_no_client_auth()
            }
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The roots in the PEM file at `path`, or the Mozilla roots.
fn roots(path: Option<&std::path::Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match path {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert `{}`: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("sslrootcert `{}`: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert `{}`: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "sslrootcert `{}` holds no certificate",
                    path.display()
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// `verify-ca`: the chain is checked, the host name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require`: encrypted, the certificate not checked (the handshake's signatures
/// still are), as libpq does.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn libpq_modes_are_read_and_passed_on_as_tokio_postgres_knows_them() {
        let s =
            split("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x")
                .unwrap();
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            s.url,
            "postgres://u@h/db?sslmode=require&application_name=x"
        );
        let s = split("postgres://u@h/db").unwrap();
        assert_eq!(
            (s.mode, s.url.as_str()),
            (SslMode::Prefer, "postgres://u@h/db")
        );
        let s = split("postgres://u@h/db?sslrootcert=/ca.pem").unwrap();
        assert_eq!(s.url, "postgres://u@h/db");
        let s = split("host=h sslmode=require sslrootcert=/ca.pem").unwrap();
        assert_eq!(
            (s.mode, s.url.as_str()),
            (SslMode::VerifyCa, "host=h sslmode=require")
        );
        let error = split("postgres://h/db?sslmode=sometimes").unwrap_err();
        assert!(error.contains("sometimes"), "{error}");
    }

    #[test]
    fn transaction_pooling_is_read_and_never_passed_on() {
        let s = split("postgres://u@h:6432/db?transaction_pooling=true&sslmode=disable").unwrap();
        assert!(s.transaction_pooling);
        assert_eq!(s.url, "postgres://u@h:6432/db?sslmode=disable");
        let s = split("postgres://u@h/db?transaction_pooling=true").unwrap();
        assert_eq!(
            (s.transaction_pooling, s.url.as_str()),
            (true, "postgres://u@h/db")
        );
        let s = split("host=h transaction_pooling=false port=6432").unwrap();
        assert_eq!(
            (s.transaction_pooling, s.url.as_str()),
            (false, "host=h port=6432")
        );
        assert!(!split("postgres://u@h/db").unwrap().transaction_pooling);
        let error = split("postgres://h/db?transaction_pooling=yes").unwrap_err();
        assert!(error.contains("transaction_pooling `yes`"), "{error}");
    }
}

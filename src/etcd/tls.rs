//! TLS for `https://` members: the rustls configuration built once from the
//! PEM files, and the handshake over an open TCP stream.
//!
//! conch builds its rustls client configuration itself instead of through
//! tonic's TLS option, because that path checks the client certificate
//! with a parser that refuses X.509 v1 certificates, which etcd and etcdctl
//! accept (`openssl x509 -req` without `-extfile` makes them). Doing the
//! handshake here also bounds it by the caller's deadline, and lets every
//! refusal be said in words rather than as a Rust value.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

use super::config::ClientConfig;
use super::{Error, ErrorKind, Result};

/// A configuration ready to connect any member.
#[derive(Clone)]
pub(super) struct Tls {
    config: Arc<rustls::ClientConfig>,
}

fn tls_err(detail: String) -> Error {
    Error::new(ErrorKind::Tls, "tls", detail)
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| tls_err(format!("{flag} {}: cannot read: {e}", path.display())))
}

fn certs(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(flag, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_err(format!("{flag} {}: not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "{flag} {}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// Whether `addr` is reached over TLS: `https://`, or a bare `host:port`
/// when a CA is configured (as etcdctl does).
pub(super) fn uses_tls(addr: &str, cfg: &ClientConfig) -> bool {
    addr.starts_with("https://")
        || (cfg.tls.ca.is_some() && !addr.starts_with("http://") && !addr.starts_with("unix://"))
}

/// Reads the TLS files if some endpoint needs them. An `https://` endpoint
/// without a CA is refused: this build trusts no system CA store.
pub(super) fn load(cfg: &ClientConfig) -> Result<Option<Tls>> {
    let Some(first) = cfg.endpoints.iter().find(|e| uses_tls(e, cfg)) else {
        return Ok(None);
    };
    let Some(ca) = &cfg.tls.ca else {
        return Err(tls_err(format!(
            "{first} needs --cacert FILE (the CA that signed etcd's certificates): \
             conch uses no system CA store"
        )));
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs("--cacert", ca)? {
        roots.add(c).map_err(|e| {
            tls_err(format!(
                "--cacert {}: not a usable CA certificate: {}",
                ca.display(),
                words(&e)
            ))
        })?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(words(&e)))?
        .with_root_certificates(roots);
    let mut config = match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(cert), Some(key)) => {
            let chain = certs("--cert", cert)?;
            let key_pem = read("--key", key)?;
            let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                tls_err(format!("--key {}: no PEM private key in it", key.display()))
            })?;
            let signer = provider.key_provider.load_private_key(der).map_err(|e| {
                tls_err(format!(
                    "--key {}: unusable private key: {}",
                    key.display(),
                    words(&e)
                ))
            })?;
            let certified = rustls::sign::CertifiedKey::new(chain, signer);
            match certified.keys_match() {
                Ok(()) => {}
                // rustls cannot read an X.509 v1 certificate's key to compare
                // it; etcd checks the handshake's signature anyway.
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(_))) => {}
                Err(rustls::Error::InconsistentKeys(_)) => {
                    return Err(tls_err(format!(
                        "--key {} does not belong to --cert {}",
                        key.display(),
                        cert.display()
                    )))
                }
                Err(e) => {
                    return Err(tls_err(format!(
                        "--cert {}: unusable: {}",
                        cert.display(),
                        words(&e)
                    )))
                }
            }
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                certified,
            )))
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(tls_err("--cert and --key go together".into())),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(Tls {
        config: Arc::new(config),
    }))
}

impl Tls {
    /// The TLS handshake over `tcp`, checking the certificate against the
    /// endpoint's host (an IP address or a DNS name).
    pub(super) async fn handshake(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| std::io::Error::other(format!("{host}: not a host name or IP address")))?;
        let stream = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(
                |e| match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(r) => std::io::Error::other(words(r)),
                    None => e,
                },
            )?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(std::io::Error::other(
                "the member did not agree to HTTP/2 (is this an etcd client port?)",
            ));
        }
        Ok(stream)
    }
}

/// A rustls error as a sentence: its own Display shows Rust values for
/// certificate errors (`UnknownIssuer`, `Other(OtherError(...))`).
pub(super) fn words(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => {
            let why = match c {
                C::UnknownIssuer => "signed by a CA that is not in --cacert".to_string(),
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    "issued for another host name (check its subjectAltName)".to_string()
                }
                C::Expired | C::ExpiredContext { .. } => "expired".to_string(),
                C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet".to_string(),
                C::Revoked => "revoked".to_string(),
                C::BadSignature => "its signature does not verify".to_string(),
                C::BadEncoding => "not a well-formed certificate".to_string(),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    "not issued for this purpose (extendedKeyUsage)".to_string()
                }
                other => {
                    let text = format!("{other:?}");
                    if text.contains("UnsupportedCertVersion") {
                        "an X.509 v1 certificate, which rustls cannot verify as a server \
                         certificate (etcdctl refuses it too, for lack of a subjectAltName): \
                         re-issue it as v3 with subjectAltName (openssl x509 -req ... -extfile)"
                            .to_string()
                    } else {
                        "refused by certificate checks".to_string()
                    }
                }
            };
            format!("etcd's server certificate is {why}")
        }
        rustls::Error::AlertReceived(a) => {
            format!(
                "etcd refused the TLS handshake (alert: {})",
                alert_words(&format!("{a:?}"))
            )
        }
        rustls::Error::InvalidCertRevocationList(_) => "bad revocation list".into(),
        rustls::Error::NoCertificatesPresented => "etcd presented no certificate".into(),
        other => {
            let text = other.to_string();
            // Display is prose for the remaining kinds; keep it to one line.
            text.lines().next().unwrap_or("TLS failure").to_string()
        }
    }
}

/// An alert's name as words: `BadCertificate` → `bad certificate`.
pub(super) fn alert_words(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars().filter(|c| c.is_ascii_alphanumeric()) {
        if c.is_ascii_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Whether an alert (as worded by [`words`]) is about the client
/// certificate, which Go's TLS stack (etcd) reports as `bad certificate`
/// for a missing certificate as well as for an untrusted one.
pub(super) fn is_client_cert_alert(text: &str) -> bool {
    [
        "bad certificate",
        "certificate required",
        "unknown ca",
        "unsupported certificate",
        "certificate expired",
        "certificate revoked",
        "certificate unknown",
        "access denied",
    ]
    .iter()
    .any(|a| text.contains(a))
}

pub(super) const CLIENT_CERT_REFUSED: &str = "etcd refused the client certificate";

/// Sorts a failed TLS handshake (as tls.rs words it) from other dial
/// failures: a certificate that does not verify will not verify on retry.
pub(super) fn tls_refusal(text: &str) -> Option<String> {
    if let Some(i) = text.find("etcd's server certificate is") {
        return Some(text[i..].to_string());
    }
    if let Some(i) = text.find("etcd refused the TLS handshake") {
        let alert = &text[i..];
        return Some(if is_client_cert_alert(alert) {
            format!(
                "{CLIENT_CERT_REFUSED} ({})",
                alert.trim_start_matches("etcd refused the TLS handshake ")
            )
        } else {
            alert.to_string()
        });
    }
    // A refusal after the handshake (TLS 1.3 checks the client certificate
    // then) surfaces from the HTTP/2 layer as rustls' own text.
    if let Some(i) = text.find("received fatal alert: ") {
        let name = text[i + "received fatal alert: ".len()..]
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default();
        let alert = alert_words(name);
        return Some(if is_client_cert_alert(&alert) {
            format!("{CLIENT_CERT_REFUSED} (alert: {alert})")
        } else {
            format!("etcd refused the TLS session (alert: {alert})")
        });
    }
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        return Some("TLS handshake failed: is this endpoint serving TLS?".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_read_as_words() {
        assert_eq!(alert_words("BadCertificate"), "bad certificate");
        assert_eq!(alert_words("UnknownCA"), "unknown ca");
        assert!(is_client_cert_alert("alert: certificate required"));
        assert!(!is_client_cert_alert("alert: protocol version"));
    }

    #[test]
    fn certificate_errors_carry_no_rust_values() {
        use rustls::{CertificateError as C, Error as E, OtherError};
        let v1 = E::InvalidCertificate(C::Other(OtherError(Arc::new(std::io::Error::other(
            "UnsupportedCertVersion",
        )))));
        for e in [
            E::InvalidCertificate(C::UnknownIssuer),
            E::InvalidCertificate(C::Expired),
            v1,
        ] {
            let w = words(&e);
            assert!(!w.contains("Other(") && !w.contains("Unknown"), "{w}");
        }
    }
}

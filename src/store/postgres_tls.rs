//! TLS to PostgreSQL, as libpq's `sslmode` and `sslrootcert` describe it, with rustls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as Wire;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` (`allow` aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    /// Plaintext.
    Disable,
    /// TLS when the server offers it, plaintext otherwise; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS with a certificate issued by a trusted root, for any host name.
    VerifyCa,
    /// TLS with a certificate issued by a trusted root for the host connected to.
    VerifyFull,
}

/// The roots a certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Roots {
    /// The PEM certificates of a file (`sslrootcert=/path`, `[database] ca_file`).
    File(PathBuf),
    /// The system's trust store (`sslrootcert=system`, or a verifying mode with no CA given).
    System,
}

/// The tokio-postgres configuration of `url` and the TLS connector its `sslmode` asks for.
/// `sslmode` and `sslrootcert` are taken out of `url` first: tokio-postgres knows neither
/// `verify-ca`/`verify-full` nor `sslrootcert`. `ca_file` applies when the URL names no CA.
pub(super) fn configure(url: &str, ca_file: Option<&Path>) -> anyhow::Result<(tokio_postgres::Config, MakeRustlsConnect)> {
    let (rest, sslmode, rootcert) = take_tls_params(url);
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| anyhow!("DATABASE_URL is not a PostgreSQL URL: {e}"))?;
    let roots = match rootcert.as_deref() {
        Some("system") => Some(Roots::System),
        Some(path) => Some(Roots::File(path.into())),
        None => ca_file.map(|p| Roots::File(p.to_path_buf())),
    };
    let mode = mode(sslmode.as_deref(), roots.as_ref())?;
    config.ssl_mode(match mode {
        SslMode::Disable => Wire::Disable,
        SslMode::Prefer => Wire::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Wire::Require,
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let client = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient { chain: None, provider }))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let store = root_store(roots.as_ref().unwrap_or(&Roots::System))?;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone()).build()?;
            if mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Lenient {
                        chain: Some(webpki),
                        provider,
                    }))
                    .with_no_client_auth()
            }
        }
    };
    Ok((config, MakeRustlsConnect::new(client)))
}

/// The mode `sslmode` names, as libpq reads it: absent is `prefer`; `require` with a CA file
/// checks the chain (`verify-ca`); `sslrootcert=system` needs a verifying mode and makes
/// `verify-full` the default. Unlike libpq, a CA given without `sslmode` means
/// `verify-full`: naming a CA is asking for it to be checked.
pub(super) fn mode(sslmode: Option<&str>, roots: Option<&Roots>) -> anyhow::Result<SslMode> {
    let mode = match sslmode {
        None if roots.is_some() => SslMode::VerifyFull,
        None | Some("prefer") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") if matches!(roots, Some(Roots::File(_))) => SslMode::VerifyCa,
        Some("require") => SslMode::Require,
        Some("verify-ca") => SslMode::VerifyCa,
        Some("verify-full") => SslMode::VerifyFull,
        Some(other) => bail!("DATABASE_URL: sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"),
    };
    if roots == Some(&Roots::System) && !matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) {
        bail!("DATABASE_URL: sslrootcert=system needs sslmode=verify-full (or verify-ca)");
    }
    Ok(mode)
}

fn root_store(roots: &Roots) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("database CA file {shown}"))?;
            if certs.is_empty() {
                bail!("database CA file {shown}: no PEM certificate in it");
            }
            for cert in certs {
                store
                    .add(cert)
                    .with_context(|| format!("database CA file {shown}: a certificate that cannot be a root"))?;
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                bail!(
                    "no system root certificates to check the database's certificate ({}); \
                     name its CA with sslrootcert=/path in DATABASE_URL or [database] ca_file",
                    found.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                );
            }
        }
    }
    Ok(store)
}

/// `url` without its `sslmode` and `sslrootcert`, and their values (the last of each), for a
/// `postgres://` URL (query parameters, percent-encoded) or a `key=value` string (values
/// optionally single-quoted, with backslash escapes).
pub(super) fn take_tls_params(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut sslmode, mut rootcert) = (None, None);
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            sslmode = Some(value);
            true
        }
        "sslrootcert" => {
            rootcert = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(&percent_decode(key), percent_decode(value))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut rest = String::new();
        for (key, value, raw) in key_values(url) {
            if !take(&key, value) {
                rest.push_str(raw);
                rest.push(' ');
            }
        }
        rest.trim_end().to_string()
    };
    (rest, sslmode, rootcert)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key = value` pairs of a libpq connection string: each key, its unescaped value, and
/// the pair's text as written. What does not parse is kept as written, for tokio-postgres to
/// report.
fn key_values(text: &str) -> Vec<(String, String, &str)> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_space(i);
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = text[start..i].to_string();
        i = skip_space(i);
        if bytes.get(i) != Some(&b'=') {
            pairs.push((String::new(), String::new(), &text[start..i]));
            continue;
        }
        i = skip_space(i + 1);
        let mut value = Vec::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
            i = (i + 1).min(bytes.len());
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        pairs.push((key, String::from_utf8_lossy(&value).into_owned(), &text[start..i]));
    }
    pairs
}

/// The two checks libpq makes that rustls does not: `prefer`/`require` accept any certificate
/// (`chain: None`: encrypted, not authenticated), and `verify-ca` checks the chain but not the
/// name (webpki checks the chain before the name, so only a name error is forgiven). The
/// handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_come_out_of_a_url_decoded_and_the_rest_stays_as_written() {
        let (rest, mode, root) =
            take_tls_params("postgres://u:p%40ss@db:5432/app?options=-csearch_path%3Dx&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem");
        assert_eq!(rest, "postgres://u:p%40ss@db:5432/app?options=-csearch_path%3Dx");
        assert_eq!((mode.as_deref(), root.as_deref()), (Some("verify-full"), Some("/etc/ca.pem")));
        let (rest, mode, root) = take_tls_params("postgresql://db/app?sslmode=require");
        assert_eq!(
            (rest.as_str(), mode.as_deref(), root),
            ("postgresql://db/app", Some("require"), None)
        );
        let (rest, mode, _) = take_tls_params("postgres://db/app");
        assert_eq!((rest.as_str(), mode), ("postgres://db/app", None));
    }

    #[test]
    fn tls_parameters_come_out_of_a_key_value_string_unquoted() {
        let (rest, mode, root) =
            take_tls_params("host=db user=app options='-c search_path=x' sslmode = verify-ca sslrootcert='/ca dir/it\\'s.pem' dbname=app");
        assert_eq!(rest, "host=db user=app options='-c search_path=x' dbname=app");
        assert_eq!((mode.as_deref(), root.as_deref()), (Some("verify-ca"), Some("/ca dir/it's.pem")));
        assert!(rest.parse::<tokio_postgres::Config>().is_ok());
    }

    #[test]
    fn modes_read_as_libpq_reads_them() {
        let file = Roots::File("/ca.pem".into());
        assert_eq!(mode(None, None).unwrap(), SslMode::Prefer);
        assert_eq!(mode(Some("disable"), None).unwrap(), SslMode::Disable);
        assert_eq!(mode(Some("require"), None).unwrap(), SslMode::Require);
        assert_eq!(mode(Some("require"), Some(&file)).unwrap(), SslMode::VerifyCa);
        assert_eq!(mode(None, Some(&file)).unwrap(), SslMode::VerifyFull);
        assert_eq!(mode(None, Some(&Roots::System)).unwrap(), SslMode::VerifyFull);
        assert!(mode(Some("require"), Some(&Roots::System)).is_err());
        let err = mode(Some("allow"), None).unwrap_err().to_string();
        assert!(err.contains("sslmode=allow") && err.contains("verify-full"), "{err}");
    }
}

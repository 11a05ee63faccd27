//! TLS from the web configuration file: rustls (ring) server settings from
//! the exporter toolkit's `tls_server_config`, the client certificate
//! policies (Go's `ClientAuthType`s) and `client_allowed_sans`.

use super::file::TlsDoc;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

pub(super) fn tls_enabled(t: &TlsDoc) -> bool {
    [
        &t.cert,
        &t.key,
        &t.client_ca,
        &t.cert_file,
        &t.key_file,
        &t.client_ca_file,
        &t.client_auth_type,
    ]
    .iter()
    .any(|s| nonempty(s).is_some())
}

type KeyErr = (String, String);

fn tls_key(k: &str) -> String {
    format!("tls_server_config.{k}")
}

/// A PEM input: inline text or a file (relative to the web config's directory).
fn pem_input(
    inline: &Option<String>,
    file: &Option<String>,
    inline_key: &str,
    file_key: &str,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Option<(String, Vec<u8>)>, KeyErr> {
    match (nonempty(inline), nonempty(file)) {
        (Some(_), Some(_)) => Err((
            tls_key(file_key),
            format!("give {inline_key} or {file_key}, not both"),
        )),
        (Some(text), None) => Ok(Some((tls_key(inline_key), text.as_bytes().to_vec()))),
        (None, Some(f)) => {
            let p = dir.join(f);
            files.push(p.clone());
            let bytes = std::fs::read(&p).map_err(|e| {
                (
                    tls_key(file_key),
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            Ok(Some((tls_key(file_key), bytes)))
        }
        (None, None) => Ok(None),
    }
}

fn tls_version(v: &Option<String>, key: &str, default: u8) -> Result<u8, KeyErr> {
    match nonempty(v) {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(old @ ("TLS10" | "TLS11")) => Err((
            tls_key(key),
            format!(
                "{old} is not supported: roimon's TLS (rustls) speaks TLS 1.2 and 1.3 only; use TLS12 or TLS13"
            ),
        )),
        Some(other) => Err((
            tls_key(key),
            format!("unknown TLS version {other:?} (TLS12 or TLS13)"),
        )),
    }
}

/// Go's TLS 1.2 cipher suite names rustls (ring) offers.
fn tls12_suite(name: &str) -> Option<rustls::SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// Names Go accepts that rustls does not implement (CBC, RSA key exchange).
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
];

/// TLS 1.3 suites: Go accepts their names and ignores them (not configurable).
const TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

pub(super) fn build_tls(
    t: TlsDoc,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<rustls::ServerConfig, KeyErr> {
    let cert =
        pem_input(&t.cert, &t.cert_file, "cert", "cert_file", dir, files)?.ok_or_else(|| {
            (
                tls_key("cert_file"),
                "missing one of cert or cert_file".to_string(),
            )
        })?;
    let key = pem_input(&t.key, &t.key_file, "key", "key_file", dir, files)?.ok_or_else(|| {
        (
            tls_key("key_file"),
            "missing one of key or key_file".to_string(),
        )
    })?;
    let ca = pem_input(
        &t.client_ca,
        &t.client_ca_file,
        "client_ca",
        "client_ca_file",
        dir,
        files,
    )?;

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert.1)
        .collect::<Result<_, _>>()
        .map_err(|e| (cert.0.clone(), format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err((cert.0, "holds no PEM certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_slice(&key.1)
        .map_err(|e| (key.0.clone(), format!("not a PEM private key: {e}")))?;

    let min = tls_version(&t.min_version, "min_version", 12)?;
    let max = tls_version(&t.max_version, "max_version", 13)?;
    if min > max {
        return Err((
            tls_key("min_version"),
            "min_version is above max_version".into(),
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();

    let provider = Arc::new(tls_provider(&t, min)?);

    let roots = client_roots(ca.as_ref())?;
    let mode = nonempty(&t.client_auth_type).unwrap_or("NoClientCert");
    let sans = t.client_allowed_sans.filter(|s| !s.is_empty());
    let algs = provider.signature_verification_algorithms;
    let webpki = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, KeyErr> {
        let Some(roots) = roots.clone() else {
            return Err((
                tls_key("client_ca_file"),
                format!("client_auth_type {mode} needs client_ca_file or client_ca"),
            ));
        };
        let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        let b = if optional {
            b.allow_unauthenticated()
        } else {
            b
        };
        b.build().map_err(|e| {
            (
                tls_key("client_ca_file"),
                format!("cannot verify clients with it: {e}"),
            )
        })
    };
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match mode {
        "NoClientCert" => None,
        "RequestClientCert" => Some(Arc::new(AnyCert {
            mandatory: false,
            algs,
        })),
        "RequireAnyClientCert" | "RequireClientCert" => Some(Arc::new(AnyCert {
            mandatory: true,
            algs,
        })),
        "VerifyClientCertIfGiven" => Some(webpki(true)?),
        "RequireAndVerifyClientCert" => Some(webpki(false)?),
        other => {
            return Err((
                tls_key("client_auth_type"),
                format!(
                    "unknown client_auth_type {other:?} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                ),
            ));
        }
    };
    if ca.is_some() && verifier.is_none() {
        return Err((
            tls_key("client_auth_type"),
            "client CAs are configured without a client auth policy: set client_auth_type (RequireAndVerifyClientCert to authenticate clients)".into(),
        ));
    }
    let verifier = match (verifier, sans) {
        (v, None) => v,
        (Some(inner), Some(allowed)) if inner.client_auth_mandatory() => {
            Some(Arc::new(SanCheck { inner, allowed }) as Arc<dyn ClientCertVerifier>)
        }
        _ => {
            return Err((
                tls_key("client_allowed_sans"),
                "requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert"
                    .into(),
            ));
        }
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| (tls_key("min_version"), e.to_string()))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, private).map_err(|e| {
        (
            key.0.clone(),
            format!("certificate and key do not go together: {e}"),
        )
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    Ok(cfg)
}

/// The crypto provider, narrowed to the configured cipher suites and curves.
fn tls_provider(t: &TlsDoc, min: u8) -> Result<rustls::crypto::CryptoProvider, KeyErr> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        let mut tls12 = Vec::new();
        for n in names {
            if let Some(s) = tls12_suite(n) {
                tls12.push(s);
            } else if TLS13_SUITES.contains(&n.as_str()) {
                // Not configurable for TLS 1.3, as in Go.
            } else if GO_ONLY_SUITES.contains(&n.as_str()) {
                return Err((
                    tls_key("cipher_suites"),
                    format!(
                        "{n} is not offered by roimon's TLS (rustls has no CBC or RSA key exchange suites); remove it"
                    ),
                ));
            } else {
                return Err((
                    tls_key("cipher_suites"),
                    format!("unknown cipher suite {n:?}"),
                ));
            }
        }
        if min <= 12 && tls12.is_empty() {
            return Err((
                tls_key("cipher_suites"),
                "leaves no TLS 1.2 cipher suite while TLS 1.2 is allowed".into(),
            ));
        }
        let tls13: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        provider.cipher_suites = tls13.into_iter().chain(tls12).collect();
    }
    if let Some(names) = t.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
        use rustls::crypto::ring::kx_group;
        let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
        for n in names {
            groups.push(match n.as_str() {
                "X25519" => kx_group::X25519,
                "CurveP256" => kx_group::SECP256R1,
                "CurveP384" => kx_group::SECP384R1,
                "CurveP521" | "X25519MLKEM768" => {
                    return Err((
                        tls_key("curve_preferences"),
                        format!("{n} is not offered by roimon's TLS (rustls with ring: X25519, CurveP256, CurveP384); remove it"),
                    ));
                }
                other => {
                    return Err((tls_key("curve_preferences"), format!("unknown curve {other:?}")));
                }
            });
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

/// The client CAs, if configured: each a usable PEM certificate.
fn client_roots(ca: Option<&(String, Vec<u8>)>) -> Result<Option<Arc<RootCertStore>>, KeyErr> {
    Ok(match ca {
        None => None,
        Some((k, pem)) => {
            let mut store = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| (k.clone(), format!("not a PEM certificate: {e}")))?;
                store
                    .add(c)
                    .map_err(|e| (k.clone(), format!("not a usable CA certificate: {e}")))?;
            }
            if store.is_empty() {
                return Err((k.clone(), "holds no PEM certificate".into()));
            }
            Some(Arc::new(store))
        }
    })
}

/// RequestClientCert / RequireAnyClientCert: a certificate is asked for (or
/// required) but not verified against a CA; the client still proves it
/// holds the key.
#[derive(Debug)]
struct AnyCert {
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

/// `client_allowed_sans`: the client certificate must carry one of these
/// subject alternative names (DNS, e-mail, IP or URI), exactly.
#[derive(Debug)]
struct SanCheck {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for SanCheck {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity).ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))?;
        if sans.iter().any(|s| self.allowed.contains(s)) {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One DER element: (tag, contents, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subject alternative names of a certificate, written as Go's x509
/// package writes them; `None` when the certificate does not parse.
fn subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];
    let (0x30, cert, _) = der(cert)? else {
        return None;
    };
    let (0x30, mut tbs, _) = der(cert)? else {
        return None;
    };
    let mut out = Vec::new();
    while !tbs.is_empty() {
        let (tag, body, rest) = der(tbs)?;
        tbs = rest;
        if tag != 0xa3 {
            continue;
        }
        let (0x30, mut exts, _) = der(body)? else {
            return None;
        };
        while !exts.is_empty() {
            let (0x30, ext, rest) = der(exts)? else {
                return None;
            };
            exts = rest;
            let (0x06, oid, mut ext) = der(ext)? else {
                return None;
            };
            if oid != SAN_OID {
                continue;
            }
            let (mut tag, mut value, mut after) = der(ext)?;
            if tag == 0x01 {
                // critical
                ext = after;
                (tag, value, after) = der(ext)?;
            }
            let _ = after;
            if tag != 0x04 {
                return None;
            }
            let (0x30, mut names, _) = der(value)? else {
                return None;
            };
            while !names.is_empty() {
                let (tag, v, rest) = der(names)?;
                names = rest;
                match tag {
                    0x81 | 0x82 | 0x86 => out.push(String::from_utf8_lossy(v).into_owned()),
                    0x87 => match v.len() {
                        4 => out.push(std::net::Ipv4Addr::new(v[0], v[1], v[2], v[3]).to_string()),
                        16 => {
                            let b: [u8; 16] = v.try_into().ok()?;
                            let ip = std::net::Ipv6Addr::from(b);
                            out.push(
                                ip.to_ipv4_mapped()
                                    .map_or(ip.to_string(), |v4| v4.to_string()),
                            );
                        }
                        _ => return None,
                    },
                    _ => {}
                }
            }
        }
    }
    Some(out)
}

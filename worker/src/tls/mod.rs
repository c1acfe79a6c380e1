//! TLS, terminated by the worker with rustls (sans-IO: one stack for every
//! class). The master reads and checks `--certfile`, `--keyfile` and
//! `--ca-certs` at start and on every HUP ([`Tls::load`], from stage two of
//! the settings) and builds the rustls [`ServerConfig`] there: no thread, no
//! I/O beyond reading the files. Workers inherit it across fork with their
//! generation's settings, so a worker always serves the certificate its
//! generation was checked with, and a HUP whose files are broken is refused
//! whole (the running generation, and every worker spawned for it later,
//! keep the last good certificate).
//!
//! The policy: TLS 1.2 and 1.3 (`--ssl-version` narrows it to one),
//! rustls' default cipher suites of the `ring` provider (`--ciphers` picks
//! among them by name: [`cipher_suite_names`]), ALPN `http/1.1`, client
//! certificates per `--cert-reqs` checked against `--ca-certs`.
//!
//! A connection is [`Secured`]: the plain socket, or the socket under a
//! [`TlsStream`], the blocking transport the sync, gthread and green classes
//! drive (the async class uses `tokio-rustls` with the same config).

mod stream;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use stream::{Secured, TlsStream};

/// `--cert-reqs`: whether a client must present a certificate (Gunicorn's
/// `ssl.CERT_NONE`, `CERT_OPTIONAL`, `CERT_REQUIRED`: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertReqs {
    /// 0: no client certificate is asked for.
    #[default]
    None,
    /// 1: asked for; one presented must be signed by `--ca-certs`.
    Optional,
    /// 2: required, signed by `--ca-certs`.
    Required,
}

impl CertReqs {
    /// Gunicorn's number or its name (`none`, `optional`, `required`,
    /// `CERT_NONE`, ...).
    pub fn parse(text: &str) -> Option<CertReqs> {
        let text = text.trim().to_ascii_lowercase();
        let name = text.strip_prefix("cert_").unwrap_or(&text);
        match name {
            "0" | "none" => Some(CertReqs::None),
            "1" | "optional" => Some(CertReqs::Optional),
            "2" | "required" => Some(CertReqs::Required),
            _ => None,
        }
    }

    /// Gunicorn's number.
    pub fn number(self) -> i64 {
        match self {
            CertReqs::None => 0,
            CertReqs::Optional => 1,
            CertReqs::Required => 2,
        }
    }
}

/// `--ssl-version`: the TLS versions spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3, the highest both sides speak (Python's
    /// `PROTOCOL_TLS_SERVER`, Gunicorn's default).
    #[default]
    Both,
    /// TLS 1.2 only (Python's `PROTOCOL_TLSv1_2`).
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl TlsVersions {
    /// Gunicorn's values for `ssl_version`: the names of Python's
    /// `ssl.PROTOCOL_*` constants (with or without the prefix) or their
    /// numbers. `Err` names why a version rustls does not speak is refused.
    pub fn parse(text: &str) -> Result<TlsVersions, String> {
        let text = text.trim();
        let name = text.strip_prefix("PROTOCOL_").unwrap_or(text);
        match name.to_ascii_uppercase().as_str() {
            "TLS" | "TLS_SERVER" | "SSLV23" | "2" | "17" => Ok(TlsVersions::Both),
            "TLSV1_2" | "TLSV1.2" | "5" => Ok(TlsVersions::Tls12),
            "TLSV1_3" | "TLSV1.3" => Ok(TlsVersions::Tls13),
            "TLSV1" | "TLSV1_1" | "TLSV1.1" | "SSLV2" | "SSLV3" | "3" | "4" | "1" => Err(format!(
                "'{text}' is a protocol runicorn does not speak: rustls implements TLS 1.2 and 1.3 only, \
                 the versions still considered secure"
            )),
            "TLS_CLIENT" | "16" => Err(format!("'{text}' is Python's client-side protocol; a server needs TLS_SERVER")),
            _ => Err(format!("'{text}' is not a protocol name")),
        }
    }

    /// The name `--print-config` shows.
    pub fn name(self) -> &'static str {
        match self {
            TlsVersions::Both => "TLS_SERVER",
            TlsVersions::Tls12 => "TLSv1_2",
            TlsVersions::Tls13 => "TLSv1_3",
        }
    }

    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: &[&SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
        static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            TlsVersions::Both => BOTH,
            TlsVersions::Tls12 => TLS12,
            TlsVersions::Tls13 => TLS13,
        }
    }
}

/// The cipher suites `--ciphers` may name (rustls' `ring` provider, in its
/// order of preference, the TLS 1.3 ones first): their IANA names as
/// rustls spells them, and OpenSSL's names for the same suites.
pub fn cipher_suite_names() -> Vec<(&'static str, Option<&'static str>)> {
    rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .filter_map(|suite| {
            let name = suite.suite().as_str()?;
            Some((name, openssl_name(name)))
        })
        .collect()
}

/// OpenSSL's name of the suite rustls calls `name`.
fn openssl_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "TLS13_AES_256_GCM_SHA384" => "TLS_AES_256_GCM_SHA384",
        "TLS13_AES_128_GCM_SHA256" => "TLS_AES_128_GCM_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256" => "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => return None,
    })
}

/// Parses `--ciphers`: suite names (rustls' or OpenSSL's, case-insensitive)
/// separated by `:` or `,`, each a suite rustls implements. Returns the
/// rustls names in the order given; `Err` says why the list cannot be
/// honoured (OpenSSL's cipher-string language, `HIGH:!aNULL`, has no
/// rustls equivalent).
pub fn parse_ciphers(text: &str) -> Result<Vec<String>, String> {
    let known = cipher_suite_names();
    let mut chosen = Vec::new();
    for item in text
        .split([':', ','])
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let found = known.iter().find(|(name, openssl)| {
            name.eq_ignore_ascii_case(item)
                || openssl.is_some_and(|openssl| openssl.eq_ignore_ascii_case(item))
        });
        match found {
            Some((name, _)) => {
                if !chosen.iter().any(|seen| seen == name) {
                    chosen.push((*name).to_owned());
                }
            }
            None => {
                return Err(format!(
                    "'{item}' is not the name of a cipher suite rustls implements (OpenSSL cipher strings such as \
                     HIGH:!aNULL cannot be honoured: rustls has no cipher-string language)"
                ))
            }
        }
    }
    if chosen.is_empty() {
        return Err("an empty list".to_owned());
    }
    Ok(chosen)
}

/// Why the TLS files cannot be served: one line naming the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// One of the pair without the other.
    #[error("--{given} is set without --{missing}: TLS needs both; add --{missing} ({what})")]
    Half {
        given: &'static str,
        missing: &'static str,
        what: &'static str,
    },
    /// A TLS setting without TLS.
    #[error("{setting} is set but TLS is off: add --certfile and --keyfile, or remove {setting}")]
    WithoutTls { setting: &'static str },
    /// Client certificates asked for without a CA to check them against.
    #[error("--cert-reqs {reqs} asks for client certificates but there is no --ca-certs to check them \
             against: add --ca-certs with the CA bundle (PEM) that signs your clients' certificates")]
    NoCa { reqs: i64 },
    /// A CA bundle that would not be used.
    #[error(
        "--ca-certs is set but --cert-reqs is 0 (none), so no client certificate is asked for: \
             add --cert-reqs 1 (optional) or 2 (required), or remove --ca-certs"
    )]
    CaUnused,
    /// A file that cannot be read.
    #[error("cannot read --{setting} {}: {source}; check the path and its permissions", path.display())]
    Read {
        setting: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file with nothing of what it should hold, or something malformed.
    #[error("--{setting} {}: {problem}; {fix}", path.display())]
    Content {
        setting: &'static str,
        path: PathBuf,
        problem: String,
        fix: &'static str,
    },
    /// Anything else rustls refuses (key and certificate that do not match, ...).
    #[error("{0}")]
    Config(String),
}

/// The TLS settings, as stage two reads them.
#[derive(Debug, Clone, Copy)]
pub struct TlsOptions<'a> {
    /// `--certfile`.
    pub certfile: Option<&'a Path>,
    /// `--keyfile`.
    pub keyfile: Option<&'a Path>,
    /// `--ca-certs`.
    pub ca_certs: Option<&'a Path>,
    /// `--cert-reqs`.
    pub cert_reqs: CertReqs,
    /// `--ciphers`, rustls names (empty: the default suites).
    pub ciphers: &'a [String],
    /// `--ssl-version`.
    pub versions: TlsVersions,
}

/// A checked certificate, key and policy: the rustls server config every
/// connection of a generation's workers is made from.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ServerConfig>,
    /// What `--print-config` and the log may say about it.
    subject: String,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Tls")
            .field("certificate", &self.subject)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Tls {
    /// The same load (two loads of the same files are two configs).
    fn eq(&self, other: &Tls) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

const CERT_FIX: &str = "give a PEM file with the server's certificate first, then its chain \
                        (-----BEGIN CERTIFICATE-----)";
const KEY_FIX: &str = "give a PEM file with the certificate's private key (PKCS#8 \
                       -----BEGIN PRIVATE KEY-----, PKCS#1 RSA or SEC1 EC)";
const CA_FIX: &str =
    "give a PEM file with the CA certificates that sign your clients' certificates";

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        setting,
        path: path.to_owned(),
        source,
    })
}

fn certificates(
    setting: &'static str,
    path: &Path,
    fix: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(setting, path)?;
    let content = |problem: String| TlsError::Content {
        setting,
        path: path.to_owned(),
        problem,
        fix,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| content(format!("not valid PEM ({err})")))?;
    if certs.is_empty() {
        return Err(content("no certificate in it".to_owned()));
    }
    Ok(certs)
}

impl Tls {
    /// Reads and checks the files `options` name and builds the server
    /// config; `Ok(None)` when TLS is off (neither `--certfile` nor
    /// `--keyfile`). Runs in the master, at start and on every HUP.
    pub fn load(options: &TlsOptions<'_>) -> Result<Option<Tls>, TlsError> {
        let (certfile, keyfile) = match (options.certfile, options.keyfile) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => {
                return Err(TlsError::Half {
                    given: "certfile",
                    missing: "keyfile",
                    what: "the certificate's private key, PEM",
                })
            }
            (None, Some(_)) => {
                return Err(TlsError::Half {
                    given: "keyfile",
                    missing: "certfile",
                    what: "the server's certificate chain, PEM",
                })
            }
            (None, None) => {
                let setting = if options.ca_certs.is_some() {
                    Some("--ca-certs")
                } else if options.cert_reqs != CertReqs::None {
                    Some("--cert-reqs")
                } else if !options.ciphers.is_empty() {
                    Some("--ciphers")
                } else if options.versions != TlsVersions::Both {
                    Some("--ssl-version")
                } else {
                    None
                };
                return match setting {
                    Some(setting) => Err(TlsError::WithoutTls { setting }),
                    None => Ok(None),
                };
            }
        };
        let chain = certificates("certfile", certfile, CERT_FIX)?;
        let key_pem = read("keyfile", keyfile)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| TlsError::Content {
            setting: "keyfile",
            path: keyfile.to_owned(),
            problem: match err {
                rustls_pki_types::pem::Error::NoItemsFound => "no private key in it".to_owned(),
                other => format!("not a valid PEM private key ({other})"),
            },
            fix: KEY_FIX,
        })?;

        // rustls deprecates the ring provider for lacking post-quantum key
        // exchange (aws-lc-rs has it, but needs cmake to build): ring's
        // X25519 and NIST curves are what runicorn offers.
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        if !options.ciphers.is_empty() {
            provider.cipher_suites = options
                .ciphers
                .iter()
                .filter_map(|name| {
                    rustls::crypto::ring::ALL_CIPHER_SUITES
                        .iter()
                        .find(|suite| suite.suite().as_str() == Some(name.as_str()))
                        .copied()
                })
                .collect::<Vec<SupportedCipherSuite>>();
        }
        let provider: Arc<CryptoProvider> = Arc::new(provider);
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(options.versions.versions())
            .map_err(|err| {
                TlsError::Config(format!(
                    "--ciphers and --ssl-version {} leave no suite to speak ({err}): name at least one suite of \
                     that version",
                    options.versions.name()
                ))
            })?;
        let builder = match (options.cert_reqs, options.ca_certs) {
            (CertReqs::None, None) => builder.with_no_client_auth(),
            (CertReqs::None, Some(_)) => return Err(TlsError::CaUnused),
            (reqs, None) => {
                return Err(TlsError::NoCa {
                    reqs: reqs.number(),
                })
            }
            (reqs, Some(ca_path)) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates("ca-certs", ca_path, CA_FIX)? {
                    roots.add(cert).map_err(|err| TlsError::Content {
                        setting: "ca-certs",
                        path: ca_path.to_owned(),
                        problem: format!("a certificate rustls cannot use as a CA ({err})"),
                        fix: CA_FIX,
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                );
                let verifier = match reqs {
                    CertReqs::Optional => verifier.allow_unauthenticated(),
                    _ => verifier,
                };
                let verifier = verifier.build().map_err(|err| {
                    TlsError::Config(format!("--ca-certs {}: {err}; {CA_FIX}", ca_path.display()))
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|err| {
            TlsError::Config(format!(
                "--certfile {} and --keyfile {} cannot serve together ({err}): give the certificate and the private \
                 key it was issued for",
                certfile.display(),
                keyfile.display()
            ))
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Tls {
            config: Arc::new(config),
            subject: certfile.display().to_string(),
        }))
    }

    /// The rustls server config (the async class hands it to tokio-rustls).
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// A new server side of a TLS connection.
    pub fn accept(&self) -> std::io::Result<rustls::ServerConnection> {
        rustls::ServerConnection::new(Arc::clone(&self.config)).map_err(std::io::Error::other)
    }
}

/// An accepted socket as the blocking driver serves it: under TLS when
/// `tls` is given, its requests listed for a killed worker's answer only
/// when plain (see [`crate::unanswered`]: that answer is plaintext). Where a
/// class starts a connection's transport.
pub fn client_transport<S: runicorn_http::Transport + std::os::fd::AsRawFd>(
    socket: S,
    tls: Option<&Tls>,
) -> std::io::Result<crate::Answering<Secured<S>>> {
    let secured = Secured::new(socket, tls)?;
    Ok(if secured.is_tls() {
        crate::Answering::unlisted(secured)
    } else {
        crate::Answering::new(secured)
    })
}

#[cfg(test)]
mod tests;

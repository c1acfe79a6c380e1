//! Certificates the TLS tests make with rcgen, written as PEM files in a
//! temporary directory, and the rustls client configs that trust them.
//!
//! [`Pki::new`] makes a self-signed server certificate for `localhost` and
//! 127.0.0.1 (the server's `--certfile`/`--keyfile`), and a CA with one
//! client certificate it signed (`--ca-certs`, and what a client presents).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// The name the server certificate is issued for.
pub const SERVER_NAME: &str = "localhost";

/// One certificate and its key, as PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// A self-signed server certificate for `localhost`.
pub fn self_signed_server() -> Issued {
    let key = KeyPair::generate().expect("a key pair");
    let mut params = CertificateParams::new(vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned()])
        .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "runicorn test server");
    let cert = params.self_signed(&key).expect("a self-signed certificate");
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The files and identities of one TLS test.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
    /// The server's certificate (self-signed) and key.
    pub server: Issued,
    /// The CA that signs client certificates.
    pub ca: Issued,
    /// A client certificate the CA signed.
    pub client: Issued,
}

impl Pki {
    /// Makes every certificate and writes the PEM files.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let server = self_signed_server();
        let ca_key = KeyPair::generate().expect("a key pair");
        let mut ca_params = CertificateParams::new(Vec::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "runicorn test client CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let client_key = KeyPair::generate().expect("a key pair");
        let mut client_params =
            CertificateParams::new(vec!["client.test".to_owned()]).expect("params");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params
            .distinguished_name
            .push(DnType::CommonName, "runicorn test client");
        let client_cert = client_params
            .signed_by(&client_key, &ca_cert, &ca_key)
            .expect("a client certificate");
        let pki = Pki {
            dir,
            server,
            ca: Issued {
                cert_pem: ca_cert.pem(),
                key_pem: ca_key.serialize_pem(),
            },
            client: Issued {
                cert_pem: client_cert.pem(),
                key_pem: client_key.serialize_pem(),
            },
        };
        pki.write("cert.pem", &pki.server.cert_pem);
        pki.write("key.pem", &pki.server.key_pem);
        pki.write("ca.pem", &pki.ca.cert_pem);
        pki
    }

    /// Writes `text` to `name` in the directory (replacing it) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write a PEM file");
        path
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--certfile DIR/cert.pem --keyfile DIR/key.pem`.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--certfile".to_owned(),
            self.path("cert.pem").display().to_string(),
            "--keyfile".to_owned(),
            self.path("key.pem").display().to_string(),
        ]
    }

    /// A client trusting `server` (offering ALPN `http/1.1`), without a
    /// certificate of its own.
    pub fn client_config(server: &Issued) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots(server))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A client trusting `server` that speaks only `versions` and `suites`
    /// (empty: rustls' defaults).
    pub fn client_config_limited(
        server: &Issued,
        versions: &[&'static rustls::SupportedProtocolVersion],
        suites: &[rustls::SupportedCipherSuite],
    ) -> Arc<ClientConfig> {
        // The server's provider too (deprecated only for lacking post-quantum
        // key exchange).
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        if !suites.is_empty() {
            provider.cipher_suites = suites.to_vec();
        }
        let config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("versions the suites cover")
            .with_root_certificates(roots(server))
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A client trusting this server, presenting the CA-signed client certificate.
    pub fn client_config_with_cert(&self) -> Arc<ClientConfig> {
        self.client_config_presenting(&self.server)
    }

    /// A client trusting `server`, presenting this CA's client certificate.
    pub fn client_config_presenting(&self, server: &Issued) -> Arc<ClientConfig> {
        let chain = vec![
            CertificateDer::from_pem_slice(self.client.cert_pem.as_bytes())
                .expect("the client certificate"),
        ];
        let key =
            PrivateKeyDer::from_pem_slice(self.client.key_pem.as_bytes()).expect("the client key");
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots(server))
            .with_client_auth_cert(chain, key)
            .expect("a client config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

fn roots(server: &Issued) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).expect("a certificate"))
        .expect("a trust anchor");
    roots
}

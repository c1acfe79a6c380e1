//! The master's checks of the TLS files, and the blocking transport over a
//! socket pair against a rustls client.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use runicorn_http::Transport;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> (Files, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        (Files { dir }, cert.pem())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn options(&self) -> (PathBuf, PathBuf) {
        (self.path("cert.pem"), self.path("key.pem"))
    }
}

fn load(cert: Option<&Path>, key: Option<&Path>) -> Result<Option<Tls>, TlsError> {
    Tls::load(&TlsOptions {
        certfile: cert,
        keyfile: key,
        ca_certs: None,
        cert_reqs: CertReqs::None,
        ciphers: &[],
        versions: TlsVersions::Both,
    })
}

#[test]
fn a_good_pair_loads_and_every_broken_one_is_one_line_naming_the_fix() {
    let (files, _) = Files::new();
    let (cert, key) = files.options();
    let tls = load(Some(&cert), Some(&key)).unwrap().expect("TLS on");
    assert_eq!(tls.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    assert!(load(None, None).unwrap().is_none());
    let err = load(Some(&cert), None).unwrap_err().to_string();
    assert!(err.contains("add --keyfile"), "{err}");
    let missing = files.path("missing.pem");
    let err = load(Some(&missing), Some(&key)).unwrap_err().to_string();
    assert!(err.starts_with("cannot read --certfile"), "{err}");
    std::fs::write(files.path("empty.pem"), "nothing here\n").unwrap();
    let err = load(Some(&files.path("empty.pem")), Some(&key))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no certificate in it"), "{err}");
    let err = load(Some(&cert), Some(&files.path("empty.pem")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no private key in it"), "{err}");
    let (other, _) = Files::new();
    let err = load(Some(&cert), Some(&other.path("key.pem")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot serve together"), "{err}");
    for err in [
        load(Some(&cert), Some(&key)).map(|_| ()),
        Err(TlsError::CaUnused),
    ]
    .into_iter()
    .filter_map(Result::err)
    {
        assert!(!err.to_string().contains('\n'));
    }
}

#[test]
fn settings_values_parse_as_gunicorn_spells_them() {
    assert_eq!(CertReqs::parse("2"), Some(CertReqs::Required));
    assert_eq!(CertReqs::parse("CERT_OPTIONAL"), Some(CertReqs::Optional));
    assert_eq!(CertReqs::parse("none"), Some(CertReqs::None));
    assert_eq!(CertReqs::parse("3"), None);
    assert_eq!(TlsVersions::parse("TLS_SERVER"), Ok(TlsVersions::Both));
    assert_eq!(TlsVersions::parse("2"), Ok(TlsVersions::Both));
    assert_eq!(
        TlsVersions::parse("PROTOCOL_TLSv1_2"),
        Ok(TlsVersions::Tls12)
    );
    assert!(TlsVersions::parse("TLSv1")
        .unwrap_err()
        .contains("TLS 1.2 and 1.3 only"));
    assert_eq!(
        parse_ciphers("ECDHE-RSA-AES128-GCM-SHA256:tls13_aes_128_gcm_sha256").unwrap(),
        vec![
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_owned(),
            "TLS13_AES_128_GCM_SHA256".to_owned()
        ]
    );
    let err = parse_ciphers("HIGH:!aNULL").unwrap_err();
    assert!(err.contains("cannot be honoured"), "{err}");
}

/// A rustls client over one end of a socket pair, the TLS transport on the other.
fn pair(
    files: &Files,
    cert_pem: &str,
) -> (
    rustls::StreamOwned<rustls::ClientConnection, UnixStream>,
    TlsStream<UnixStream>,
) {
    let (cert, key) = files.options();
    let tls = load(Some(&cert), Some(&key)).unwrap().unwrap();
    let (client, server) = UnixStream::pair().unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    (
        rustls::StreamOwned::new(conn, client),
        TlsStream::new(server, tls.accept().unwrap()),
    )
}

#[test]
fn plaintext_rustls_holds_counts_as_buffered_input() {
    let (files, cert_pem) = Files::new();
    let (mut client, mut server) = pair(&files, &cert_pem);
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let writer = std::thread::spawn(move || {
        // Two requests in one write: one TLS record.
        client.write_all(b"first\nsecond\n").unwrap();
        client.flush().unwrap();
        client
    });
    let mut buf = [0u8; 6];
    let mut got = Vec::new();
    while got.len() < 6 {
        let read = server.read(&mut buf[..6 - got.len()]).unwrap();
        assert!(read > 0);
        got.extend_from_slice(&buf[..read]);
    }
    assert_eq!(got, b"first\n");
    assert!(!server.is_handshaking());
    assert!(
        server.has_buffered_input(),
        "\"second\" waits inside rustls"
    );
    let mut rest = [0u8; 16];
    let read = server.read(&mut rest).unwrap();
    assert_eq!(&rest[..read], b"second\n");
    assert!(!server.has_buffered_input());
    drop(writer.join().unwrap());
}

#[test]
fn a_stalled_handshake_read_times_out_within_the_timeout_set() {
    let (files, _) = Files::new();
    let (cert, key) = files.options();
    let tls = load(Some(&cert), Some(&key)).unwrap().unwrap();
    let (mut client, server) = UnixStream::pair().unwrap();
    let mut server = TlsStream::new(server, tls.accept().unwrap());
    server
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // A record header, then a byte at a time, more slowly than the whole wait.
    client.write_all(&[0x16, 0x03, 0x01, 0x00]).unwrap();
    let dripper = std::thread::spawn(move || {
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            if client.write_all(&[0x40]).is_err() {
                break;
            }
        }
    });
    let started = std::time::Instant::now();
    let err = server.read(&mut [0u8; 16]).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    drop(server);
    dripper.join().unwrap();
}

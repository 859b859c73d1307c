//! A throw-away PKI made at run time with `rcgen`: a CA and the
//! certificates the TLS, proxy and redirect tests need (server certificates
//! that are good, expired, for another host, for an IP address; client
//! certificates for mutual TLS), written as PEM files into a temp directory
//! that is removed on drop. Also builds rustls server configurations for
//! the few in-test TLS servers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls::{
    self, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};

/// A certificate and its key, as PEM files and DER.
pub struct Issued {
    /// The certificate chain file (PEM).
    pub cert: PathBuf,
    /// The private key file (PEM, PKCS#8).
    pub key: PathBuf,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Issued {
    /// `(cert, key)` paths, as `PeerOptions::tls` wants them.
    pub fn pair(&self) -> (PathBuf, PathBuf) {
        (self.cert.clone(), self.key.clone())
    }

    /// A rustls server configuration serving this certificate, ALPN
    /// `http/1.1`.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A CA in a temp directory.
pub struct Pki {
    /// The directory holding every file.
    pub dir: PathBuf,
    /// The CA certificate (PEM), to trust with `ca_file`.
    pub ca: PathBuf,
    ca_cert: Certificate,
    ca_key: KeyPair,
}

impl Pki {
    /// A new CA named `name`, its files in a fresh temp directory.
    pub fn new(name: &str) -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsclient-pki-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("wsclient test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = params.self_signed(&ca_key).expect("CA certificate");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).expect("write CA");
        Pki {
            dir,
            ca,
            ca_cert,
            ca_key,
        }
    }

    fn issue(&self, file: &str, sans: &[&str], client: bool, expired: bool) -> Issued {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans.clone()).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            sans.first().map_or(file, String::as_str),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.ca_cert, &self.ca_key)
            .expect("sign leaf");
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        Issued {
            cert: cert_path,
            key: key_path,
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A server certificate for these names and addresses.
    pub fn server(&self, file: &str, sans: &[&str]) -> Issued {
        self.issue(file, sans, false, false)
    }

    /// A server certificate for these names that expired in 2001.
    pub fn expired_server(&self, file: &str, sans: &[&str]) -> Issued {
        self.issue(file, sans, false, true)
    }

    /// A client certificate (for mutual TLS).
    pub fn client(&self, file: &str) -> Issued {
        self.issue(file, &["wsclient-test-client"], true, false)
    }

    /// The CA file's path.
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

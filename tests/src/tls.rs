//! A throw-away PKI made with `openssl` for DICOM TLS tests: one CA and leaf certificates for
//! localhost / 127.0.0.1 (server and client use), all PEM, unencrypted keys.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::dcmtk::run_bounded;

/// `$OPENSSL`, default /usr/bin/openssl.
pub fn openssl() -> PathBuf {
    let p = std::env::var_os("OPENSSL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/openssl"));
    assert!(p.is_file(), "openssl not found at {}", p.display());
    p
}

fn run(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new(openssl());
    cmd.current_dir(dir).args(args);
    let (code, out) = run_bounded(cmd, Duration::from_secs(60));
    assert_eq!(code, Some(0), "openssl {args:?} failed:\n{out}");
}

/// The files of one PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The folder holding everything.
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
}

impl Pki {
    /// Creates a self-signed CA in `dir`.
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("create pki dir");
        run(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=radroute-e2e CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Pki {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
        }
    }

    /// A leaf certificate `<name>.pem` with key `<name>.key`, signed by the CA, valid for
    /// DNS:localhost and IP:127.0.0.1, for server and client authentication. Returns (key, cert).
    pub fn leaf(&self, name: &str) -> (PathBuf, PathBuf) {
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        run(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("write ext file");
        run(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-sha256",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        );
        (self.dir.join(key), self.dir.join(cert))
    }
}

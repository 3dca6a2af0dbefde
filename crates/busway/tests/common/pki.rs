//! Test certificates, made at test time with the `openssl` command: a CA, node certificates it
//! signs (for 127.0.0.1 and localhost, usable as server and client), and a second, unrelated
//! CA. EC P-256 keys, so that making them takes milliseconds.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::TempDir;

/// The certificates of one test, in its directory.
pub struct Pki {
    dir: PathBuf,
}

/// A certificate and its key.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Pki {
    /// Makes `ca` and `other-ca` in `dir`, and the node certificate `node` (serial 0x1001).
    pub fn new(dir: &TempDir) -> Pki {
        let pki = Pki {
            dir: dir.path("pki"),
        };
        std::fs::create_dir_all(&pki.dir).expect("pki dir");
        pki.make_ca("ca", "busway test CA");
        pki.make_ca("other-ca", "an unrelated CA");
        pki.issue("node", "busway node 1", "0x1001");
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `NAME.crt` of a CA.
    pub fn ca(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.crt"))
    }

    fn make_ca(&self, name: &str, cn: &str) {
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            s(&self.path(&format!("{name}.key"))),
            "-out",
            s(&self.path(&format!("{name}.crt"))),
        ]);
    }

    /// A node certificate `NAME.crt`/`NAME.key` signed by `ca`, for 127.0.0.1 and localhost.
    pub fn issue(&self, name: &str, cn: &str, serial: &str) -> Issued {
        self.issue_by("ca", name, cn, serial)
    }

    /// A node certificate signed by the CA `ca`.
    pub fn issue_by(&self, ca: &str, name: &str, cn: &str, serial: &str) -> Issued {
        let key = self.path(&format!("{name}.key"));
        let csr = self.path(&format!("{name}.csr"));
        let cert = self.path(&format!("{name}.crt"));
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("ext file");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&self.path(&format!("{ca}.crt"))),
            "-CAkey",
            s(&self.path(&format!("{ca}.key"))),
            "-set_serial",
            serial,
            "-days",
            "2",
            "-extfile",
            s(&ext),
            "-out",
            s(&cert),
        ]);
        Issued { cert, key }
    }

    /// A `[bus.tls]` (or `[admin.tls]`) body presenting `name`'s certificate, verifying peers
    /// against `ca`, with `extra` lines.
    pub fn section(&self, name: &str, ca: &str, extra: &str) -> String {
        format!(
            "cert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n{extra}\n",
            s(&self.path(&format!("{name}.crt"))),
            s(&self.path(&format!("{name}.key"))),
            s(&self.ca(ca)),
        )
    }

    /// The certificate a TLS server at `target` (`-connect HOST:PORT` or `-unix PATH`)
    /// presents, as `openssl x509 -noout -serial -subject` prints it; `None` if the handshake
    /// failed. Presents `node`'s certificate as a client certificate.
    pub fn served_cert(&self, target: &[&str]) -> Option<String> {
        let node = self.path("node.crt");
        let key = self.path("node.key");
        let ca = self.ca("ca");
        let mut args = vec!["s_client"];
        args.extend_from_slice(target);
        args.extend_from_slice(&[
            "-tls1_3",
            "-CAfile",
            s(&ca),
            "-cert",
            s(&node),
            "-key",
            s(&key),
            "-verify_return_error",
        ]);
        let out = Command::new("openssl")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let begin = text.find("-----BEGIN CERTIFICATE-----")?;
        let end = text.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
        let pem = &text[begin..end];
        let mut x509 = Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-subject"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl x509");
        use std::io::Write;
        x509.stdin
            .take()
            .expect("stdin")
            .write_all(pem.as_bytes())
            .expect("write pem");
        let out = x509.wait_with_output().expect("openssl x509");
        Some(String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// Whether a TLS 1.2-only client gets a handshake from `target` (`-connect HOST:PORT`).
    pub fn tls12_handshake(&self, target: &[&str]) -> bool {
        let mut args = vec!["s_client"];
        args.extend_from_slice(target);
        let ca = self.ca("ca");
        args.extend_from_slice(&["-tls1_2", "-CAfile", s(&ca)]);
        Command::new("openssl")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl s_client")
            .success()
    }
}

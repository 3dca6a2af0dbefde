//! A real DNS server for tests: dnsmasq from Debian, on a loopback port, serving a hosts file
//! (A/AAAA records with a 1 s TTL) and SRV records given on its command line.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::proc::TempDir;

#[derive(Debug)]
pub struct Dnsmasq {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    hosts: PathBuf,
}

impl Dnsmasq {
    /// Starts dnsmasq with `hosts` (hosts-file lines) and `srv` records, each
    /// `_service._proto.NAME,TARGET,PORT,PRIORITY,WEIGHT`. Panics with a clear message when
    /// dnsmasq is not installed (`.ci/run` installs the `dnsmasq-base` package).
    pub fn start(dir: &TempDir, hosts: &str, srv: &[String]) -> Dnsmasq {
        let hosts_path = dir.write("dns-hosts", hosts);
        let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("dnsmasq is needed for DNS tests: apt-get install dnsmasq-base");
        for _ in 0..5 {
            let port = crate::backends::closed_port()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .expect("port");
            let mut cmd = Command::new(bin);
            cmd.args([
                "-k",
                "--conf-file=/dev/null",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                &format!("--addn-hosts={}", hosts_path.display()),
                "--local-ttl=1",
                "--pid-file=",
                "--user=root",
            ]);
            for r in srv {
                cmd.arg(format!("--srv-host={r}"));
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn dnsmasq");
            std::thread::sleep(Duration::from_millis(200));
            if child.try_wait().ok().flatten().is_none() {
                return Dnsmasq {
                    child,
                    addr: format!("127.0.0.1:{port}"),
                    hosts: hosts_path,
                };
            }
        }
        panic!("dnsmasq did not start on a free port");
    }

    /// Replaces the hosts file and makes dnsmasq read it again (SIGHUP).
    pub fn set_hosts(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).expect("write hosts");
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

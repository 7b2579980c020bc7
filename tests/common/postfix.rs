//! A real Postfix (Debian's package) as a private instance: its own
//! configuration, queue and log in a temporary folder, listening on a free
//! port of 127.0.0.1. It relays mail for the alias domain to ct-relay and
//! everything else to a recording sink, as an MX in front of ct-relay and as
//! ct-relay's smarthost would.
//!
//! Postfix's master must start as root. Where Postfix is not installed or the
//! tests do not run as root, `Postfix::unavailable` says why; `.ci/run`
//! installs it and sets `CT_REQUIRE_POSTFIX=1`, so there the tests never skip.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{free_port, wait_until};

const POSTFIX: &str = "/usr/sbin/postfix";

pub struct Postfix {
    dir: tempfile::TempDir,
    /// Postfix's SMTP server.
    pub smtp: SocketAddr,
}

/// What Postfix listens with and where it sends mail.
pub struct Routes {
    pub alias_domain: &'static str,
    /// ct-relay, for the alias domain and its subdomains (soft aliases).
    pub relay: SocketAddr,
    /// Everything else.
    pub sink: SocketAddr,
    /// PEM certificate and key: Postfix then offers STARTTLS.
    pub tls: Option<(String, String)>,
}

impl Postfix {
    /// Why Postfix cannot run here, if it cannot. Fails instead of skipping
    /// where `CT_REQUIRE_POSTFIX` is set.
    pub fn unavailable() -> Option<String> {
        let why = if !Path::new(POSTFIX).exists() {
            Some("Postfix is not installed (apt-get install postfix swaks)".to_string())
        } else if !is_root() {
            Some("Postfix's master must be started as root".to_string())
        } else {
            None
        };
        if let Some(why) = &why {
            assert!(
                std::env::var_os("CT_REQUIRE_POSTFIX").is_none(),
                "CT_REQUIRE_POSTFIX is set but {why}"
            );
            eprintln!("skipped: {why}");
        }
        why
    }

    pub async fn start(routes: &Routes) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        // Postfix's daemons run as user postfix and must reach the queue.
        chmod(root, 0o755);
        chown_postfix(&root.join("data"));
        let smtp = free_port();
        let tls = match &routes.tls {
            Some((cert, key)) => {
                std::fs::write(root.join("etc/tls.crt"), cert).unwrap();
                std::fs::write(root.join("etc/tls.key"), key).unwrap();
                chmod(&root.join("etc/tls.key"), 0o600);
                format!(
                    "smtpd_tls_cert_file = {0}/etc/tls.crt\n\
                     smtpd_tls_key_file = {0}/etc/tls.key\n\
                     smtpd_tls_security_level = may\n\
                     smtpd_tls_received_header = yes\n",
                    root.display()
                )
            }
            None => "smtpd_tls_security_level = none\n".to_string(),
        };
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {root}/queue\n\
             data_directory = {root}/data\n\
             maillog_file_prefixes = {root}\n\
             maillog_file = {root}/maillog\n\
             myhostname = postfix.test\n\
             mydomain = postfix.test\n\
             myorigin = postfix.test\n\
             mydestination =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             relay_domains = {domain}\n\
             transport_maps = inline:{{ {domain}=smtp:[{relay_ip}]:{relay_port}, .{domain}=smtp:[{relay_ip}]:{relay_port} }}\n\
             relayhost = [{sink_ip}]:{sink_port}\n\
             smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
             local_transport = error:5.1.1 no local delivery here\n\
             alias_maps =\n\
             alias_database =\n\
             local_recipient_maps =\n\
             smtp_dns_support_level = disabled\n\
             smtpd_peername_lookup = no\n\
             smtp_tls_security_level = may\n\
             smtp_tls_loglevel = 1\n\
             biff = no\n\
             append_dot_mydomain = no\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             {tls}",
            root = root.display(),
            domain = routes.alias_domain,
            relay_ip = routes.relay.ip(),
            relay_port = routes.relay.port(),
            sink_ip = routes.sink.ip(),
            sink_port = routes.sink.port(),
        );
        std::fs::write(root.join("etc/main.cf"), main_cf).unwrap();
        std::fs::write(
            root.join("etc/master.cf"),
            format!("{smtp} inet n - n - - smtpd\n{MASTER_CF}"),
        )
        .unwrap();
        let postfix = Self { dir, smtp };
        let out = postfix.command("start");
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            postfix.log()
        );
        let up = wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(smtp).is_ok()
        })
        .await;
        assert!(up, "Postfix did not listen; log:\n{}", postfix.log());
        postfix
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn command(&self, verb: &str) -> std::process::Output {
        Command::new(POSTFIX)
            .arg("-c")
            .arg(self.config_dir())
            .arg(verb)
            .output()
            .unwrap()
    }

    /// Postfix's mail log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Attempt delivery of everything queued now (`postfix flush`).
    pub fn flush(&self) {
        self.command("flush");
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.command("stop");
        // `stop` returns before the daemons are gone; the folder goes next.
        let pid_file = self.dir.path().join("queue/pid/master.pid");
        for _ in 0..50 {
            if !pid_file.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown_postfix(path: &Path) {
    let status = Command::new("chown")
        .arg("postfix")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "chown postfix {}", path.display());
}

/// Every service but the SMTP listener, shared with bench/compare.py.
const MASTER_CF: &str = include_str!("../../scripts/postfix/master.cf");

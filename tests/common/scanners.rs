//! Real scanners for the tests: clamd (Debian's `clamav-daemon`) with a
//! signature database the test writes itself (EICAR's, no freshclam), and
//! rspamd (Debian's `rspamd`, its own configuration plus the files in
//! `tests/scanners/rspamd/`) with its antivirus module pointed at that
//! clamd. Each runs as a process of its own on free loopback ports, in a
//! temporary folder, and is stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_until};

/// The EICAR test file, which every antivirus reports as malware.
pub const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// GTUBE: rspamd answers `reject`; its `YJS` variant `add header`.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
pub const GTUBE_ADD_HEADER: &str =
    "YJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

const RSPAMD: &str = "/usr/bin/rspamd";
const CLAMD: &str = "/usr/sbin/clamd";

/// Whether the scanners can run here. Without them a test prints
/// `skipped: …` and passes, unless `CT_REQUIRE_SCANNERS=1`.
pub fn available(test: &str) -> bool {
    let missing: Vec<&str> = [RSPAMD, CLAMD]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{test}: {missing:?} not installed (Debian packages rspamd, clamav-daemon)");
    if std::env::var_os("CT_REQUIRE_SCANNERS").is_some() {
        panic!("{why}; CT_REQUIRE_SCANNERS is set");
    }
    eprintln!("skipped: {why}");
    false
}

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut text = template.to_string();
    for (name, value) in vars {
        text = text.replace(&format!("${name}"), value);
    }
    text
}

/// SIGTERM and wait: rspamd's main process stops its workers on it.
fn stop(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

pub struct Clamd {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Clamd {
    /// clamd with one signature: EICAR's MD5 (`.hdb`).
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        // md5:size:name of the EICAR file.
        std::fs::write(
            db.join("ct-relay-tests.hdb"),
            "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n",
        )
        .unwrap();
        let addr = free_port();
        let template = include_str!("../scanners/clamd.conf");
        let conf = dir.path().join("clamd.conf");
        let vars = [
            ("CLAMD_PORT", addr.port().to_string()),
            ("DIR", dir.path().display().to_string()),
        ];
        std::fs::write(&conf, fill(template, &vars)).unwrap();
        let mut clamd = Self {
            addr,
            dir,
            child: None,
        };
        clamd.spawn();
        clamd
            .wait_ready()
            .await
            .unwrap_or_else(|| panic!("clamd did not start:\n{}", clamd.log()));
        clamd
    }

    fn spawn(&mut self) {
        let child = Command::new(CLAMD)
            .arg("-c")
            .arg(self.dir.path().join("clamd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    async fn wait_ready(&self) -> Option<()> {
        let addr = self.addr;
        wait_until(Duration::from_secs(60), || ping(addr, b"zPING\0", b"PONG"))
            .await
            .then_some(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("clamd.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        stop(&mut self.child);
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request, and whether the answer holds `expected`.
fn ping(addr: SocketAddr, request: &[u8], expected: &[u8]) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(request).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer.windows(expected.len()).any(|w| w == expected)
}

pub struct Rspamd {
    /// The normal worker: `scan.rspamd_url`.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Rspamd {
    /// rspamd with Debian's configuration, the tests' local files, and its
    /// antivirus at `clamd`.
    pub async fn start(clamd: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local");
        copy_tree(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scanners/rspamd"),
            &local,
        );
        for sub in ["run", "db", "log"] {
            let path = dir.path().join(sub);
            std::fs::create_dir(&path).unwrap();
            open_to_workers(&path);
        }
        // Compiled regexps are kept for the next run under target/.
        let hs_cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rspamd-hs-cache");
        std::fs::create_dir_all(&hs_cache).unwrap();
        open_to_workers(&hs_cache);
        let addr = free_port();
        let vars = [
            ("LOCAL_CONFDIR", local.display().to_string()),
            ("RUNDIR", dir.path().join("run").display().to_string()),
            ("DBDIR", dir.path().join("db").display().to_string()),
            ("LOGDIR", dir.path().join("log").display().to_string()),
            ("NORMAL_PORT", addr.port().to_string()),
            ("CONTROLLER_PORT", free_port().port().to_string()),
            ("CLAMD_PORT", clamd.port().to_string()),
            ("HS_CACHE", hs_cache.display().to_string()),
        ];
        let mut cmd = Command::new(RSPAMD);
        // In the foreground; `-i`: workers may run as root (CI runs as root).
        cmd.args(["-f", "-i"]);
        for (name, value) in &vars {
            cmd.arg("--var").arg(format!("{name}={value}"));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rspamd = Self {
            addr,
            dir,
            child: Some(child),
        };
        let up = wait_until(Duration::from_secs(120), || {
            ping(addr, b"GET /ping HTTP/1.0\r\n\r\n", b"pong")
        })
        .await;
        assert!(up, "rspamd did not start:\n{}", rspamd.log());
        rspamd
    }

    pub fn log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("log/rspamd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn stop(&mut self) {
        stop(&mut self.child);
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// rspamd's workers drop root for `_rspamd` where they can.
fn open_to_workers(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

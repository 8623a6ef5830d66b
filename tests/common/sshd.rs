//! A real OpenSSH sshd on 127.0.0.1 for the SSH layer's tests: temp dir with host and client
//! keys, `authorized_keys`, a minimal `sshd_config`, the daemon as a child killed on drop.
//! Also an `ssh-agent` holding the client key. Fails (never skips) when sshd is missing.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
/// Passphrase of [`Sshd::passphrase_key_path`].
pub const PASSPHRASE: &str = "correct horse battery staple";

pub struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh `kind` key pair at `path` (`.pub` beside it), protected by `passphrase` (may be empty).
pub fn keygen(path: &Path, kind: &str, passphrase: &str) {
    run(Command::new(crate::common::external::require("ssh-keygen"))
        .args([
            "-q",
            "-t",
            kind,
            "-N",
            passphrase,
            "-C",
            "proxmox-manager-test",
            "-f",
        ])
        .arg(path));
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids of all processes descending from `root` (sshd forks one per connection).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after_comm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// Whether a local process runs with exactly this argv (read from /proc, no procps needed).
pub fn process_running(argv: &[&str]) -> bool {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted))
}

impl Sshd {
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: run `./test.sh`, or install it with: apt-get install openssh-server"
        );
        super::external::require("ssh-keygen");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        keygen(&d.join("host_ed25519"), "ed25519", "");
        keygen(&d.join("other_host_ed25519"), "ed25519", "");
        keygen(&d.join("client_ed25519"), "ed25519", "");
        keygen(&d.join("client_pass"), "ed25519", PASSPHRASE);
        keygen(&d.join("stranger_ed25519"), "ed25519", "");
        let mut authorized = std::fs::read_to_string(d.join("client_ed25519.pub")).expect("pub");
        authorized += &std::fs::read_to_string(d.join("client_pass.pub")).expect("pub");
        std::fs::write(d.join("authorized_keys"), authorized).expect("authorized_keys");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n\
             UsePAM no\nSubsystem sftp internal-sftp\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        run(Command::new(SSHD)
            .arg("-t")
            .arg("-f")
            .arg(d.join("sshd_config")));
        let mut sshd = Sshd {
            dir,
            port,
            child: None,
        };
        sshd.spawn();
        sshd
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("sshd.log"))
            .expect("sshd log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sshd");
        self.child = Some(child);
        let port = self.port;
        wait_until("sshd to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Kill the daemon and every per-connection process it forked, so existing connections
    /// drop, then start it again on the same port with the same keys.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pids = descendants(child.id());
            let _ = child.kill();
            let _ = child.wait();
            if !pids.is_empty() {
                // The shell's builtin `kill`: /bin/kill (procps) may be missing on CI images.
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg("kill -KILL \"$@\" 2>/dev/null")
                    .arg("sh")
                    .args(pids.iter().map(u32::to_string))
                    .status();
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The sshd log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("sshd.log")).unwrap_or_default()
    }

    fn pub_key(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir().join(format!("{name}.pub"))).expect("pub key");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...` for the server's real host key.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.pub_key("host_ed25519"))
    }

    /// The same host and port with a different ed25519 key: what a changed key looks like.
    pub fn wrong_known_hosts_line(&self) -> String {
        format!(
            "[127.0.0.1]:{} {}",
            self.port,
            self.pub_key("other_host_ed25519")
        )
    }

    /// The server's host key fingerprint as `ssh-keygen -l` prints it.
    pub fn host_fingerprint(&self) -> String {
        let out = Command::new(crate::common::external::require("ssh-keygen"))
            .arg("-lf")
            .arg(self.dir().join("host_ed25519.pub"))
            .output()
            .expect("ssh-keygen -l");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .nth(1)
            .expect("fingerprint field")
            .to_owned()
    }

    /// Write a known_hosts file with the given lines into the temp dir.
    pub fn write_known_hosts(&self, name: &str, lines: &[String]) -> PathBuf {
        let path = self.dir().join(name);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).expect("write known_hosts");
        path
    }

    /// Unencrypted ed25519 key listed in authorized_keys.
    pub fn client_key_path(&self) -> PathBuf {
        self.dir().join("client_ed25519")
    }

    /// Encrypted with [`PASSPHRASE`], listed in authorized_keys.
    pub fn passphrase_key_path(&self) -> PathBuf {
        self.dir().join("client_pass")
    }

    /// A key the server does not accept.
    pub fn stranger_key_path(&self) -> PathBuf {
        self.dir().join("stranger_ed25519")
    }

    /// The current user (root here and in CI).
    pub fn user(&self) -> String {
        let out = Command::new("whoami").output().expect("whoami");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// An ssh-agent on a socket in the temp dir, holding the client key.
    pub fn start_agent(&self) -> Agent {
        let socket = self.dir().join("agent.sock");
        let child = Command::new(crate::common::external::require("ssh-agent"))
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ssh-agent");
        let agent = Agent { child, socket };
        wait_until("ssh-agent socket", Duration::from_secs(10), || {
            agent.socket.exists()
        });
        run(Command::new(crate::common::external::require("ssh-add"))
            .arg("-q")
            .arg(self.client_key_path())
            .env("SSH_AUTH_SOCK", &agent.socket));
        agent
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Agent {
    child: Child,
    pub socket: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

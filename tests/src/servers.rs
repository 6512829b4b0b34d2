//! Real servers the scenarios put beside anygan: an S3-compatible store (`s3s-fs`) and a TCP
//! proxy that can make a server look unreachable.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// A real S3-compatible server (`s3s-fs`) on 127.0.0.1 serving a temporary root directory,
/// where each folder is a bucket. Stopped when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub root: tempfile::TempDir,
}

/// Credentials the test server accepts.
pub const S3_ACCESS_KEY: &str = "anygan-test-access";
pub const S3_SECRET_KEY: &str = "anygan-test-secret";

impl S3Server {
    /// Starts `s3s-fs` (installed by `.ci/run`) with `buckets` created, and waits until it
    /// accepts connections.
    pub fn start(buckets: &[&str], deadline: Duration) -> anyhow::Result<Self> {
        let binary = find_s3s_fs().context(
            "s3s-fs is not installed: cargo install s3s-fs@0.14.1 --features binary --locked (.ci/run does)",
        )?;
        let root = tempfile::tempdir()?;
        for bucket in buckets {
            std::fs::create_dir_all(root.path().join(bucket))?;
        }
        // Port 0: the server binds a free port itself and logs it. Choosing a free port here
        // and handing it over would race with every other test binding ports meanwhile.
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(root.path())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting s3s-fs")?;
        let (send, lines) = mpsc::channel::<String>();
        let stdout = child.stdout.take().context("s3s-fs stdout")?;
        let stderr = child.stderr.take().context("s3s-fs stderr")?;
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let send = send.clone();
            // Keeps draining after the address is found, so the server never blocks on a pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = send.send(line);
                }
            });
        }
        let until = Instant::now() + deadline;
        let endpoint = loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .context("s3s-fs did not report its address in time")?;
            if let Some(at) = line.find("server is running at http://") {
                let rest = &line[at + "server is running at ".len()..];
                let address: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.'))
                    .collect();
                break address;
            }
        };
        Ok(Self {
            child,
            endpoint,
            root,
        })
    }

    /// `--store-option` arguments that reach this server with the given keys.
    pub fn store_options(&self, access_key: &str, secret_key: &str) -> Vec<String> {
        [
            format!("aws_endpoint={}", self.endpoint),
            "aws_allow_http=true".to_string(),
            "aws_region=us-east-1".to_string(),
            format!("aws_access_key_id={access_key}"),
            format!("aws_secret_access_key={secret_key}"),
        ]
        .into_iter()
        .flat_map(|option| ["--store-option".to_string(), option])
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_s3s_fs() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("s3s-fs"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(cargo_home).join("bin/s3s-fs"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/s3s-fs"));
    }
    candidates.into_iter().find(|path| path.is_file())
}

/// What a [`FlakyProxy`] does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Pass,
    /// Close every connection, open or new: the server looks unreachable.
    Refuse,
}

/// A TCP proxy on 127.0.0.1 in front of a real server, whose mode the test switches while a
/// client is using it: real sockets, real connection failures.
pub struct FlakyProxy {
    pub port: u16,
    mode: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyProxy {
    pub fn start(target: std::net::SocketAddr) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&refuse);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    if let (Ok(from), Ok(to)) = (from, to) {
                        let flag = std::sync::Arc::clone(&flag);
                        std::thread::spawn(move || pump(from, to, flag));
                    }
                }
            }
        });
        Ok(Self { port, mode: refuse })
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.store(
            mode == ProxyMode::Refuse,
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Copies `from` → `to` until either side closes or the proxy starts refusing.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read, Write};
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if refuse.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

//! Private Redis and NATS servers for fault tests: each test starts its own on a free port
//! with a data directory of its own, and may stop, flush or restart it without touching the
//! machine's shared servers (which other tests are using). Killed when dropped.
//!
//! The binaries are looked up on `PATH` and in `/usr/sbin` and `/usr/bin` (Debian puts
//! `nats-server` in `/usr/sbin`), or named by `BOXOFFICE_TEST_REDIS_SERVER` /
//! `BOXOFFICE_TEST_NATS_SERVER`. A missing binary fails the test with a message saying what to
//! install: these tests must never pass without running.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds `name` (or the file named by the environment variable `env`), or fails the test.
fn binary(name: &str, env: &str, package: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{env}={} is not a file", path.display());
        return path;
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path_var)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")]);
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "this test starts a private {name} and needs its binary on PATH, in /usr/sbin or \
         /usr/bin, or named by {env}; none found (install the Debian package `{package}`, as \
         scripts/test.sh does)"
    )
}

/// A port nobody listens on right now (the OS picks it; it stays ours for the test unless
/// another process happens to take it between our probe and the server's bind, which the
/// start-up check notices).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn kill(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `ready` holds, failing with `what` after a deadline.
fn wait_until(what: &str, child: &mut Child, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready() {
            return;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("{what}: the process exited ({status})");
        }
        assert!(Instant::now() < deadline, "{what}: not ready within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private `redis-server` (no persistence: a restart starts empty, as a Redis that lost
/// its memory does).
pub struct PrivateRedis {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let bin = binary(
            "redis-server",
            "BOXOFFICE_TEST_REDIS_SERVER",
            "redis-server",
        );
        let mut redis = Self {
            bin,
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            child: None,
        };
        redis.spawn();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let port = self.port;
        wait_until("the private redis-server", &mut child, || ping_redis(port));
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL): Redis is down until [`PrivateRedis::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child, "-KILL");
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `FLUSHALL` on this private server.
    pub fn flush_all(&self) {
        let reply = redis_command(self.port, "FLUSHALL").expect("FLUSHALL");
        assert!(reply.starts_with("+OK"), "FLUSHALL answered {reply}");
    }

    /// The number of keys (`DBSIZE`).
    pub fn keys(&self) -> u64 {
        let reply = redis_command(self.port, "DBSIZE").expect("DBSIZE");
        reply
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap_or_else(|_| panic!("DBSIZE answered {reply}"))
    }

    /// Every key and its value (`KEYS *`, then `GET` each), for tests that look at marks.
    pub fn dump(&self) -> Vec<(String, Option<String>)> {
        let client = redis::Client::open(self.url()).expect("redis");
        let mut conn = client.get_connection().expect("connection");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).expect("KEYS");
        keys.into_iter()
            .map(|k| {
                let v: Option<String> = redis::cmd("GET").arg(&k).query(&mut conn).expect("GET");
                (k, v)
            })
            .collect()
    }
}

/// One inline command over a fresh connection; the first line of the reply.
fn redis_command(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line)
}

fn ping_redis(port: u16) -> bool {
    redis_command(port, "PING").is_ok_and(|r| r.starts_with("+PONG"))
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private `nats-server -js` with its JetStream store in a directory of its own, so a
/// restart keeps the streams, consumers and messages (as a restarted production server does).
pub struct PrivateNats {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let bin = binary("nats-server", "BOXOFFICE_TEST_NATS_SERVER", "nats-server");
        let mut nats = Self {
            bin,
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            child: None,
        };
        nats.spawn();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store_dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let mut child = Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        let port = self.port;
        wait_until("the private nats-server", &mut child, || {
            jetstream_answers(port)
        });
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL): NATS is down until [`PrivateNats::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child, "-KILL");
        }
    }

    /// Starts it again on the same port with the same JetStream store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

/// The server greets every connection with an INFO line; JetStream must be on.
fn jetstream_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4096];
    let Ok(n) = stream.read(&mut buf) else {
        return false;
    };
    String::from_utf8_lossy(&buf[..n]).contains("\"jetstream\":true")
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

//! Real `boxoffice` processes for end-to-end tests.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod services;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_boxoffice");
pub const SECRET: &str = "end-to-end-test-secret-0123456789";
/// The ticket-signing key every PostgreSQL node of a test shares (nodes on PostgreSQL refuse
/// to start without one).
pub const TICKET_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ticket-key.pem");
/// Another key, for nodes that must be refused.
pub const OTHER_TICKET_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/other-ticket-key.pem"
);

/// A running `boxoffice serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// What the process wrote (stdout and stderr), when started with
    /// [`Server::start_capturing`]; and the threads that collect it.
    output: Option<Captured>,
}

/// Everything a process wrote so far, and the threads still collecting it.
type Captured = (Arc<Mutex<String>>, Vec<std::thread::JoinHandle<()>>);

impl Server {
    /// Starts `boxoffice serve` on a free port with `data_dir` and the given environment
    /// (which wins over the defaults set here), and waits for it to listen. A node on
    /// PostgreSQL gets [`TICKET_KEY`] unless the environment names a key.
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        Self::spawn(data_dir, extra_env, false)
    }

    /// Like [`Server::start`], and keeps everything the process writes to stdout and stderr
    /// for [`Server::terminate_with_output`].
    pub fn start_capturing(data_dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        Self::spawn(data_dir, extra_env, true)
    }

    fn spawn(data_dir: &Path, extra_env: &[(&str, &str)], capture: bool) -> Self {
        let mut cmd = serve_command(data_dir, extra_env);
        cmd.stdout(Stdio::piped());
        cmd.stderr(if capture {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        let mut child = cmd.spawn().expect("spawn boxoffice serve");
        let stdout = child.stdout.take().expect("stdout");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut readers = vec![{
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let _ = tx.send(url.to_owned());
                    }
                    if capture {
                        let mut log = log.lock().expect("log");
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            })
        }];
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = log.lock().expect("log");
                    log.push_str(&line);
                    log.push('\n');
                }
            }));
        }
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server announces its address");
        let output = capture.then_some((log, readers));
        Self {
            child,
            base,
            output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        signal(&self.child, "-TERM");
        self.wait_exit()
    }

    /// SIGTERM, then waits at most `within` for the exit; returns the exit status and
    /// everything the process wrote. Only for a server from [`Server::start_capturing`].
    pub fn terminate_with_output(mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let (log, readers) = self.output.take().expect("started with start_capturing");
        signal(&self.child, "-TERM");
        let deadline = std::time::Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                for r in readers {
                    let _ = r.join();
                }
                panic!(
                    "the server did not exit within {within:?} of SIGTERM:\n{}",
                    log.lock().expect("log")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipes close with the process.
        for r in readers {
            r.join().expect("output reader");
        }
        let output = std::mem::take(&mut *log.lock().expect("log"));
        (status, output)
    }

    /// SIGKILL: the process dies wherever it is.
    pub fn kill_hard(mut self) {
        signal(&self.child, "-KILL");
        self.wait_exit();
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `boxoffice serve` on a free port with `data_dir` and the environment, not yet started.
pub fn serve_command(data_dir: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env("BOXOFFICE_DATA_DIR", data_dir)
        .env("BOXOFFICE_LISTEN", "127.0.0.1:0")
        .env("BOXOFFICE_LOG", "warn")
        .env_remove("BOXOFFICE_DATABASE_URL")
        .env_remove("BOXOFFICE_JWT_SECRET")
        .env_remove("BOXOFFICE_TICKET_KEY_FILE")
        .env_remove("BOXOFFICE_JWKS_URL")
        .env_remove("BOXOFFICE_ALLOW_HS256_WITH_JWKS");
    let on_postgres = extra_env
        .iter()
        .any(|(k, _)| *k == "BOXOFFICE_DATABASE_URL");
    let key_given = extra_env
        .iter()
        .any(|(k, _)| *k == "BOXOFFICE_TICKET_KEY_FILE");
    if on_postgres && !key_given {
        cmd.env("BOXOFFICE_TICKET_KEY_FILE", TICKET_KEY);
    }
    for (k, v) in extra_env {
        // An empty value unsets the variable.
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    cmd
}

/// Runs `boxoffice serve` expecting it to refuse to start: returns its stderr once it has
/// exited unsuccessfully; fails if it starts listening or is still running after a minute.
pub fn serve_refused(data_dir: &Path, extra_env: &[(&str, &str)]) -> String {
    let mut child = serve_command(data_dir, extra_env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn boxoffice serve");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(!status.success(), "it should not have started: {stdout}");
            assert!(!stdout.contains("listening on"), "{stdout}");
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("boxoffice serve did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a `boxoffice` subcommand to completion and returns its output.
pub fn boxoffice(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("BOXOFFICE_LOG", "warn")
        .env_remove("BOXOFFICE_DATABASE_URL")
        .env_remove("BOXOFFICE_JWT_SECRET")
        .env_remove("BOXOFFICE_JWKS_URL")
        .env_remove("BOXOFFICE_ALLOW_HS256_WITH_JWKS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run boxoffice")
}

/// Like [`boxoffice`], asserting success.
pub fn boxoffice_ok(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let out = boxoffice(args, env);
    assert!(
        out.status.success(),
        "boxoffice {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

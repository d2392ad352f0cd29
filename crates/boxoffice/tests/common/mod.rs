//! Real `boxoffice` processes for end-to-end tests.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_boxoffice");
pub const SECRET: &str = "end-to-end-test-secret-0123456789";

/// A running `boxoffice serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `boxoffice serve` on a free port with `data_dir` and the given environment
    /// (which wins over the defaults set here), and waits for it to listen.
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env("BOXOFFICE_DATA_DIR", data_dir)
            .env("BOXOFFICE_LISTEN", "127.0.0.1:0")
            .env("BOXOFFICE_LOG", "warn")
            .env_remove("BOXOFFICE_DATABASE_URL")
            .env_remove("BOXOFFICE_JWT_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn boxoffice serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server announces its address");
        Self { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        signal(&self.child, "-TERM");
        self.wait_exit()
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
        .env_remove("BOXOFFICE_JWT_SECRET");
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

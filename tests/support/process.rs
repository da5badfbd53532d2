//! The real `streamgate` binary as a child process: for signals, exit codes, logs and
//! the CLI. Every child is killed (SIGKILL) and reaped on drop, so a panicking test
//! leaks nothing.

use super::{free_port, DEADLINE};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use streamgate::config::Config;

/// Path of the binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_streamgate");

/// Text a child wrote so far, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn collect(mut pipe: impl Read + Send + 'static) -> Self {
        let captured = Self::default();
        let sink = captured.0.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push_str(&text);
            }
        });
        captured
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// `streamgate serve` running as a separate process on a free port.
pub struct BinaryServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    /// `ws://127.0.0.1:{port}`.
    pub ws_base: String,
    /// Standard output.
    pub stdout: Captured,
    /// Standard error (the logs).
    pub stderr: Captured,
    dir: tempfile::TempDir,
}

impl BinaryServer {
    /// Writes `config` (host 127.0.0.1, a free port) as YAML to a tempdir, runs
    /// `streamgate serve --config FILE` and waits until `/health` answers 200.
    pub async fn start(config: &Config) -> Self {
        let mut config = config.clone();
        config.server.host = "127.0.0.1".into();
        config.server.port = free_port();
        let yaml = serde_norway::to_string(&config).expect("config serializes");
        Self::start_yaml(&yaml, config.server.port).await
    }

    /// Runs `serve --config FILE` with `yaml` as the file; `port` must be the one in it.
    pub async fn start_yaml(yaml: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("streamgate.yaml");
        std::fs::write(&path, yaml).expect("write config");
        let args = ["serve".to_string(), "--config".into(), path.display().to_string()];
        Self::spawn(&args, &[], port, dir).await
    }

    /// Runs the binary with `args` and `env` and waits until `/health` on `port`
    /// answers 200 (panicking with its stderr if it exits first).
    pub async fn spawn(args: &[String], env: &[(&str, &str)], port: u16, dir: tempfile::TempDir) -> Self {
        let mut child = command(args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn streamgate");
        let stdout = Captured::collect(child.stdout.take().unwrap());
        let stderr = Captured::collect(child.stderr.take().unwrap());
        let mut server = Self {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            ws_base: format!("ws://127.0.0.1:{port}"),
            stdout,
            stderr,
            dir,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        let url = format!("{}/health", self.base);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("streamgate exited early ({status}); stderr:\n{}", self.stderr.text());
            }
            let ok = reqwest::get(&url).await.map(|r| r.status() == 200);
            if matches!(ok, Ok(true)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "streamgate did not answer {url}; stderr:\n{}",
                self.stderr.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The tempdir holding the config file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("the kill command must be installed");
        assert!(status.success(), "kill -s {name} {} failed", self.pid());
    }

    /// SIGKILL and reap: the node dies without releasing anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, at most `within`; panics if it is still running.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "streamgate still running {within:?} later; stderr:\n{}",
                self.stderr.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until standard output satisfies `check`, returning it.
    pub async fn wait_stdout(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let text = self.stdout.text();
            if check(&text) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for stdout: {what}; got:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A finished CLI run.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `streamgate args...` with `env` added, to completion (at most [`DEADLINE`]).
pub async fn run_cli(args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut cmd = tokio::process::Command::from(command(&args, env));
    cmd.kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("streamgate {args:?} did not finish"))
        .expect("run streamgate");
    CliOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The binary with `args`, `env` added, and no inherited streamgate settings.
fn command(args: &[String], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("STREAMGATE") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Writes `text` to `name` in `dir` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

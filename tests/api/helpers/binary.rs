//! The `ztv` binary: a config file in a folder of its own, commands run to the end, and
//! processes started by [`Process::start`] (or [`Process::serve`]), waited for until they are
//! ready, their output read line by line, killed if the test ends first.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::test_config;

pub const BIN: &str = env!("CARGO_BIN_EXE_ztv");

/// How long a process may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// `ztv` with ZTV_CONFIG and RUST_LOG out of its environment and stdin closed: every run of
/// the binary starts from this (add the arguments and environment).
pub fn ztv_command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("ZTV_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// A `ztv.toml` in a folder of its own (removed when dropped), and `ztv --config` with it.
pub struct ConfigFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    /// An empty folder; the file is written with [`ConfigFile::write`].
    pub fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ztv.toml");
        Self { dir, path }
    }

    /// [`test_config`] with its SQLite file ([`ConfigFile::db`]) in the folder, and `extra`.
    pub fn standard(extra: &str) -> Self {
        let config = Self::empty();
        config.write(&test_config(&config.db(), extra));
        config
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SQLite file of [`ConfigFile::standard`].
    pub fn db(&self) -> PathBuf {
        self.dir().join("ztv.db")
    }

    pub fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    /// [`ztv_command`] with `--config` this file.
    pub fn command(&self) -> Command {
        let mut command = ztv_command();
        command.arg("--config").arg(&self.path);
        command
    }

    /// Runs `ztv --config … ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// As [`ConfigFile::run`], which must succeed.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "ztv {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `ztv clients create ARGS --json`: the new key.
    pub fn create_key(&self, args: &[&str]) -> String {
        let created = self.run_ok(&[&["clients", "create"], args, &["--json"]].concat());
        let created: Value = serde_json::from_slice(&created.stdout).unwrap();
        created["key"].as_str().unwrap().to_string()
    }

    /// `ztv serve` with this file and `env`, once it is listening.
    pub fn serve(&self, env: &[(&str, &str)]) -> Process {
        Process::serve(self.command().envs(env.iter().copied()))
    }
}

/// A child process that is killed if the test fails before it stops it.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines one stream of a process printed so far, and whether it has ended.
#[derive(Default)]
struct Printed {
    lines: Mutex<(Vec<String>, bool)>,
    more: Condvar,
}

impl Printed {
    /// Reads `stream` line by line on a thread until it ends.
    fn read(stream: impl Read + Send + 'static) -> (Arc<Printed>, JoinHandle<()>) {
        let printed = Arc::new(Printed::default());
        let writer = Arc::clone(&printed);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                writer.lines.lock().unwrap().0.push(line);
                writer.more.notify_all();
            }
            writer.lines.lock().unwrap().1 = true;
            writer.more.notify_all();
        });
        (printed, reader)
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().0.clone()
    }

    /// Blocks until a line contains `needle` (that line), the stream ends or `within` has
    /// passed (`None`).
    fn wait_for(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(line) = lines.0.iter().find(|line| line.contains(needle)) {
                return Some(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if lines.1 || left.is_zero() {
                return None;
            }
            lines = self.more.wait_timeout(lines, left).unwrap().0;
        }
    }
}

/// A running `ztv`, killed when dropped; it dereferences to its [`Child`].
pub struct Process {
    child: KillOnDrop,
    stdout: Arc<Printed>,
    stderr: Arc<Printed>,
    readers: Vec<JoinHandle<()>>,
    /// Where it listens, for `ztv serve`.
    listening: Option<SocketAddr>,
}

impl Process {
    /// Spawns `command` (from [`ztv_command`] or [`ConfigFile::command`]) with its stdout and
    /// stderr read on threads, and returns once stdout has a line containing `ready`.
    pub fn start(command: &mut Command, ready: &str) -> Process {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map(KillOnDrop)
            .unwrap();
        let (stdout, out_reader) = Printed::read(child.0.stdout.take().unwrap());
        let (stderr, err_reader) = Printed::read(child.0.stderr.take().unwrap());
        let process = Process {
            child,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
            listening: None,
        };
        if process.stdout.wait_for(ready, READY_WITHIN).is_none() {
            panic!(
                "no `{ready}` from {command:?} within {READY_WITHIN:?}:\n{}",
                process.text()
            );
        }
        process
    }

    /// [`Process::start`] of `command` `serve` with JSON logs, ready once it is listening.
    pub fn serve(command: &mut Command) -> Process {
        let mut process = Process::start(
            command.arg("serve").env("ZTV_LOG_FORMAT", "json"),
            "ztv is listening",
        );
        let line = process.stdout.wait_for("ztv is listening", Duration::ZERO);
        let line: Value = serde_json::from_str(&line.unwrap()).expect("JSON log lines");
        process.listening = Some(line["addr"].as_str().unwrap().parse().unwrap());
        process
    }

    /// Where a [`Process::serve`] listens.
    pub fn addr(&self) -> SocketAddr {
        self.listening.expect("a `ztv serve` process")
    }

    /// `http://` [`Process::addr`].
    pub fn base(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The lines printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lines()
    }

    /// Everything printed so far: stdout, then stderr.
    pub fn text(&self) -> String {
        let mut lines = self.stdout();
        lines.extend(self.stderr.lines());
        lines.join("\n")
    }

    /// Every line printed, stdout's then stderr's, once the process has exited and both
    /// streams are read to their end.
    pub fn printed_to_the_end(&mut self) -> Vec<String> {
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let mut lines = self.stdout();
        lines.extend(self.stderr.lines());
        lines
    }

    /// Polls until the output (stdout or stderr) contains `needle`; fails after 10 s.
    pub async fn wait_for(&self, needle: &str) {
        let started = Instant::now();
        while !self.text().contains(needle) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no `{needle}` in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` (`TERM`, `INT`, `HUP`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}: {status:?}");
    }
}

impl std::ops::Deref for Process {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child.0
    }
}

//! Headless Chromium for the browser tests: found on `PATH` (else a loud skip, or a failure
//! when `ZTV_TEST_REQUIRE_SERVICES=1`, as for PostgreSQL and Redis), run once per page with a
//! fresh profile until the page is idle, and the DOM it ends with.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The names a Chromium binary goes by (Debian's package `chromium` installs the first).
const NAMES: &[&str] = &["chromium", "chromium-browser", "google-chrome"];

/// Longest a page may take, in real time, before Chromium is killed.
const DEADLINE: Duration = Duration::from_secs(60);

pub struct Chromium {
    binary: PathBuf,
}

impl Chromium {
    /// Chromium from `PATH`; `None` (a loud skip) when there is none, a failure in CI.
    pub fn find_or_skip() -> Option<Chromium> {
        let found = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .flat_map(|dir| NAMES.iter().map(move |name| dir.join(name)))
                .find(|candidate| candidate.is_file())
        });
        match found {
            Some(binary) => Some(Chromium { binary }),
            None => {
                assert!(
                    std::env::var("ZTV_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
                    "no chromium on PATH but ZTV_TEST_REQUIRE_SERVICES=1 (apt-get install -y chromium)"
                );
                eprintln!(
                    "SKIPPED: install Chromium (apt-get install -y chromium) to run the browser tests"
                );
                None
            }
        }
    }

    /// Opens `url` in a fresh headless browser with `extra` switches, lets the page run
    /// (navigations and fetches included) until nothing is left to do, and returns its DOM.
    /// Runs on a blocking thread: the servers the page talks to keep running on the test's.
    pub async fn dom_after(&self, url: &str, extra: &[String]) -> Dom {
        let binary = self.binary.clone();
        let (url, extra) = (url.to_string(), extra.to_vec());
        tokio::task::spawn_blocking(move || run(&binary, &url, &extra))
            .await
            .unwrap()
    }
}

fn run(binary: &PathBuf, url: &str, extra: &[String]) -> Dom {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            // Only the servers of the test: no proxy from the environment, no https upgrade.
            "--no-proxy-server",
            "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable",
            // Virtual time runs only while no request is pending, so the budget is spent once
            // the page has nothing left to wait for: then the DOM is dumped.
            "--virtual-time-budget=10000",
            // No back/forward cache: once it keeps a page that was left for another URL (pages
            // served `Cache-Control: no-store` included), virtual time stops, so the next page
            // loads but never runs a script, the budget never runs out and nothing is dumped.
            // The tests walk forward only; they never go back.
            "--disable-back-forward-cache",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish {url} within {DEADLINE:?}:\n{}",
                tail(&stderr.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (html, errors) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.success() && html.contains("</html>"),
        "chromium on {url}: {status}\n{}",
        tail(&errors)
    );
    Dom { html }
}

/// Reads a pipe to its end on a thread of its own, so that a full pipe never stalls Chromium.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The last lines of Chromium's stderr, without its harmless complaints about D-Bus.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("dbus")).collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A page's DOM as Chromium serialised it.
pub struct Dom {
    pub html: String,
}

impl Dom {
    /// The text of the element with `id` (its first text, unescaped), if there is one.
    pub fn text(&self, id: &str) -> Option<String> {
        let start = self.html.find(&format!(" id=\"{id}\""))?;
        let open = start + self.html[start..].find('>')? + 1;
        let close = open + self.html[open..].find('<')?;
        Some(unescape(&self.html[open..close]))
    }

    /// The element with `id` holding JSON (empty: `null`).
    pub fn json(&self, id: &str) -> Value {
        let text = self
            .text(id)
            .unwrap_or_else(|| panic!("no #{id} in the page"));
        if text.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("#{id} is not JSON ({e}): {text}"))
    }
}

/// Undoes what HTML serialisation escapes in text.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

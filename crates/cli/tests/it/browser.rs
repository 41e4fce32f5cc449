//! The pages in a real browser: runs `tests/browser/portal.mjs` (the privacy center) and
//! `tests/browser/console.mjs` (the officers' console), one after the other (headless
//! Chromium from Debian driven by playwright-core, axe-core in every page) against this
//! build's binary.
//! Without Node.js, the npm packages (`npm ci --prefix tests/browser`) or Chromium the test
//! says so and skips — except under `CI=true`, where a missing piece fails it (`.ci/run`
//! installs them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{binary, read_lossy, wait_with_timeout};

const SUITE_WITHIN: Duration = Duration::from_secs(300);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why the browser suite cannot run here, if it cannot.
fn missing(browser_dir: &Path, chromium: &Path) -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|output| output.status.success()) {
        return Some("node is not installed".into());
    }
    for package in ["playwright-core", "axe-core"] {
        if !browser_dir.join("node_modules").join(package).exists() {
            return Some(format!(
                "{package} is not installed (npm ci --prefix tests/browser)"
            ));
        }
    }
    if !chromium.exists() {
        return Some(format!(
            "{} is not installed (apt-get install chromium)",
            chromium.display()
        ));
    }
    None
}

#[test]
fn the_privacy_center_and_the_console_work_in_headless_chromium_and_pass_axe() {
    let root = repository();
    let browser_dir = root.join("tests/browser");
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()));
    if let Some(reason) = missing(&browser_dir, &chromium) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the browser tests cannot run under CI: {reason}"
        );
        println!("skipped: the browser tests cannot run here: {reason}");
        return;
    }
    for suite in ["portal.mjs", "console.mjs"] {
        run_suite(&root, &browser_dir.join(suite), &chromium);
    }
}

/// Runs one suite to its end; fails with its output when a check failed.
fn run_suite(root: &Path, suite: &Path, chromium: &Path) {
    let out = tempfile::tempdir().expect("temp dir");
    let log_path = out.path().join("browser.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let screenshots = root.join("target/browser-screenshots");
    let mut child = Command::new("node")
        .arg(suite)
        .env("DISCREET_BIN", binary())
        .env("CHROMIUM", chromium)
        .env("SCREENSHOT_DIR", &screenshots)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("node runs");
    let status = wait_with_timeout(&mut child, SUITE_WITHIN).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{} did not finish within {SUITE_WITHIN:?}:\n{}",
            suite.display(),
            read_lossy(&log_path)
        )
    });
    let output = read_lossy(&log_path);
    println!("{output}");
    assert!(status.success(), "{} failed:\n{output}", suite.display());
}

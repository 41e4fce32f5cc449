//! What the end-to-end tests share: the `discreet` binary run as a child process (a server
//! guard that always kills it and prints its log when a test fails), CLI runs with
//! timeouts, a tiny HTTP/1.1 client over `TcpStream`, and RFC 3339 times without a crate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_discreet")
}

/// A `Command` for the binary with none of its environment variables inherited, so only
/// the flags a test passes apply.
pub fn discreet() -> Command {
    let mut command = Command::new(binary());
    for name in [
        "DISCREET_DATA_DIR",
        "DISCREET_KEK_FILE",
        "DISCREET_LISTEN",
        "DISCREET_METRICS_LISTEN",
        "DISCREET_POLICY",
        "DISCREET_POSTGRES",
        "DISCREET_POSTGRES_KEYS",
        "DISCREET_POSTGRES_SCHEMA",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command
}

/// A data folder and a KEK file (outside it) in a fresh temporary directory.
pub struct Store {
    pub root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub kek_file: PathBuf,
}

impl Store {
    pub fn new() -> Store {
        let root = tempfile::Builder::new()
            .prefix("discreet-e2e-")
            .tempdir()
            .expect("a temporary directory");
        let data_dir = root.path().join("data");
        let kek_file = root.path().join("discreet.kek");
        Store {
            root,
            data_dir,
            kek_file,
        }
    }

    /// `--data-dir D --kek-file K`.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--kek-file".into(),
            self.kek_file.display().to_string(),
        ]
    }

    /// A fresh file name in the temporary directory (for logs and captured output).
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

/// What a finished CLI run printed.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Standard output as JSON (panics with both streams when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "stdout is not JSON ({error}):\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `discreet ARGS` to the end (killed after `timeout`), output captured in files so a
/// long output can never block the child on a full pipe.
pub fn run_cli(store: &Store, args: &[&str], timeout: Duration) -> Run {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stdout_path = store.file(&format!("cli-{run}.stdout"));
    let stderr_path = store.file(&format!("cli-{run}.stderr"));
    let stdout = std::fs::File::create(&stdout_path).expect("stdout file");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut child = discreet()
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawning discreet");
    let status = wait_with_timeout(&mut child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`discreet {}` did not finish within {timeout:?}\n--- stderr\n{}",
            args.join(" "),
            read_lossy(&stderr_path)
        )
    });
    Run {
        status,
        stdout: read_lossy(&stdout_path),
        stderr: read_lossy(&stderr_path),
    }
}

/// Runs `discreet HEAD... --data-dir D --kek-file K` on the store's folder.
pub fn run_on(store: &Store, head: &[&str], timeout: Duration) -> Run {
    let flags = store.flags();
    let args: Vec<&str> = head
        .iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .collect();
    run_cli(store, &args, timeout)
}

/// Waits for `child` to exit, at most `timeout`; `None` when it is still running.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => panic!("waiting for a child process: {error}"),
        }
    }
}

pub fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|error| format!("<cannot read {}: {error}>", path.display()))
}

/// A port nothing listens on right now (bound, read and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// `discreet serve` as a child process. Dropping it kills the process (SIGKILL) and, when
/// the test is failing, prints the server's log.
pub struct Server {
    pub name: String,
    pub port: u16,
    child: Option<Child>,
    pub stderr_path: PathBuf,
    pub stdout_path: PathBuf,
    /// How it ended, once it has.
    pub exit: Option<ExitStatus>,
}

impl Server {
    /// Starts `discreet serve` on a free port and waits (at most `timeout`) for `/healthz`
    /// to answer 200. Retries on another port if the one picked was taken meanwhile.
    pub fn start(store: &Store, name: &str, timeout: Duration) -> Server {
        Server::start_with(store, name, &[], timeout)
    }

    /// `start` with more flags for `serve`.
    pub fn start_with(store: &Store, name: &str, extra: &[&str], timeout: Duration) -> Server {
        let mut last_failure = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let mut server = Server::spawn(store, &format!("{name}-{attempt}"), port, extra);
            match server.wait_healthy(timeout) {
                Ok(()) => return server,
                Err(failure) => {
                    let log = server.log();
                    server.kill();
                    if !log.contains("cannot listen") {
                        panic!(
                            "server {name} did not become healthy: {failure}\n--- server stderr\n{log}"
                        );
                    }
                    last_failure = format!("{failure}\n{log}");
                }
            }
        }
        panic!("server {name} could not listen on any free port: {last_failure}");
    }

    fn spawn(store: &Store, name: &str, port: u16, extra: &[&str]) -> Server {
        let stdout_path = store.file(&format!("{name}.stdout"));
        let stderr_path = store.file(&format!("{name}.stderr"));
        let stdout = std::fs::File::create(&stdout_path).expect("stdout file");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut args = vec!["serve".to_owned()];
        args.extend(store.flags());
        args.extend(["--listen".to_owned(), format!("127.0.0.1:{port}")]);
        args.extend(extra.iter().map(|flag| (*flag).to_owned()));
        // Debug logging, so that the log-hygiene check sees every line the server can write.
        let child = discreet()
            .args(&args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawning discreet serve");
        Server {
            name: name.to_owned(),
            port,
            child: Some(child),
            stderr_path,
            stdout_path,
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running server").id()
    }

    /// The server's standard error so far.
    pub fn log(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Polls `GET /healthz` until it answers 200, the process exits, or `timeout` passes.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.exit = Some(status);
                self.child = None;
                return Err(format!("the server exited early ({status})"));
            }
            let last = match http(self.port, "GET", "/healthz", None, None) {
                Ok(response) if response.status == 200 => return Ok(()),
                Ok(response) => format!("{} {}", response.status, response.text),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "no 200 from /healthz within {timeout:?}; last: {last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL (what `Child::kill` sends on unix), then reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            self.exit = wait_with_timeout(&mut child, Duration::from_secs(30));
        }
    }

    /// SIGTERM through `kill -TERM PID`; waits at most `timeout` for a graceful exit
    /// (SIGKILL and a panic after that).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.pid();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let mut child = self.child.take().expect("a running server");
        match wait_with_timeout(&mut child, timeout) {
            Some(status) => {
                self.exit = Some(status);
                status
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server {} did not stop within {timeout:?} of SIGTERM\n--- server stderr\n{}",
                    self.name,
                    self.log()
                );
            }
        }
    }

    /// A request to this server with a bearer key.
    pub fn call(&self, method: &str, path: &str, key: &str, body: Option<&Value>) -> Response {
        http(self.port, method, path, Some(key), body).unwrap_or_else(|error| {
            panic!(
                "{method} {path} on server {} failed: {error}\n--- server stderr\n{}",
                self.name,
                self.log()
            )
        })
    }

    /// As `call`, and the answer must be 200 with a JSON body.
    pub fn ok(&self, method: &str, path: &str, key: &str, body: Option<&Value>) -> Value {
        let response = self.call(method, path, key, body);
        assert_eq!(
            response.status, 200,
            "{method} {path} on server {}: {}",
            self.name, response.text
        );
        response.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- stderr of server {} (port {}, {})\n{}\n--- end of server {}",
                self.name,
                self.port,
                self.stderr_path.display(),
                self.log(),
                self.name
            );
            let stdout = read_lossy(&self.stdout_path);
            if !stdout.trim().is_empty() {
                eprintln!("--- stdout of server {}\n{stdout}", self.name);
            }
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub text: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text))
    }
}

/// One HTTP/1.1 request with `Connection: close`; reads the answer to the end of the stream.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Result<Response, String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .map_err(|error| format!("connect to {address}: {error}"))?;
    let timeout = Some(Duration::from_secs(60));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|error| error.to_string())?;
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(key) = key {
        request.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("writing the request: {error}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|error| format!("reading the answer: {error}"))?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name == "content-length" {
            length = value.parse::<usize>().ok();
        }
    }
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(length) = length {
        if body.len() < length {
            return Err(format!(
                "answer cut short: {} of {length} body bytes",
                body.len()
            ));
        }
        body.truncate(length);
    }
    Ok(Response {
        status,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or("chunk size line without end")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|error| format!("bad chunk size {size_text:?}: {error}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if raw.len() < size + 2 {
            return Err("chunk cut short".into());
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// Percent-encodes a path segment or query value (unreserved characters kept).
pub fn encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Unix seconds now.
pub fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64
}

/// `YYYY-MM-DDTHH:MM:SS.000Z`, the form discreet prints times in.
pub fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let day_of_year = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

#[test]
fn rfc3339_formats_known_instants() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00.000Z");
    assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59.000Z");
    assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56.000Z");
}

//! The `junkquote` binary, for the tests of the command line itself (`serve` start-up and
//! shutdown, `migrate`, `backfill`, `admin`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::TestDb;

/// Runs the `junkquote` binary with `args` against `database_url` (None: the embedded one in
/// `data_dir`).
pub fn junkquote(args: &[&str], database_url: Option<&str>, data_dir: Option<&Path>) -> Output {
    command(args, database_url, data_dir)
        .output()
        .expect("run junkquote")
}

/// The `junkquote` command, ready to run or spawn.
pub fn command(args: &[&str], database_url: Option<&str>, data_dir: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junkquote"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("JUNKQUOTE_PG_BIN");
    match database_url {
        Some(url) => cmd.env("DATABASE_URL", url),
        None => cmd.env_remove("DATABASE_URL"),
    };
    match data_dir {
        Some(dir) => cmd.env("JUNKQUOTE_DATA_DIR", dir),
        // Never the checkout's own data directory.
        None => cmd.env(
            "JUNKQUOTE_DATA_DIR",
            std::env::temp_dir().join("jq-test-unused"),
        ),
    };
    cmd
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts that a command failed with exactly one line on stderr, and returns that line.
pub fn one_line_error(output: &Output, code: i32) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "exit code; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

/// A running `junkquote serve` process on a free port (for the tests of `serve` itself; the
/// others start the application in-process: [`super::TestApp`]).
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `http://127.0.0.1:PORT` of the metrics address, when `--metrics-addr` was given.
    pub metrics_base: Option<String>,
}

impl Server {
    /// Starts `junkquote serve` with `args` and no channel configured (whatever the
    /// environment of the test run says).
    pub fn start(args: &[&str], database_url: Option<&str>, data_dir: Option<&Path>) -> Self {
        Self::start_with_env(args, &[("RUST_LOG", "warn")], database_url, data_dir)
    }

    /// [`Server::start`] with `env` set on top (`RUST_LOG` among them, else it logs at info).
    pub fn start_with_env(
        args: &[&str],
        env: &[(&str, &str)],
        database_url: Option<&str>,
        data_dir: Option<&Path>,
    ) -> Self {
        let mut all = vec!["serve", "--addr", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut cmd = command(&all, database_url, data_dir);
        for name in [
            "TWILIO_AUTH_TOKEN",
            "TWILIO_WEBHOOK_URL",
            "TWILIO_ACCOUNT_SID",
            "TWILIO_FROM_NUMBER",
            "TWILIO_API_BASE",
            "FB_VERIFY_TOKEN",
            "FB_APP_SECRET",
            "FB_PAGE_ACCESS_TOKEN",
            "FB_GRAPH_API_BASE",
            "JUNKQUOTE_OWNER_PHONE",
            "CONTEXT_MEMORY_ENABLED",
            "CONTEXT_STRICT_ADDRESS_CONFIRMATION",
            "JUNKQUOTE_PHONE_REGION",
            "JUNKQUOTE_LLM_BASE_URL",
            "JUNKQUOTE_LLM_MODEL",
            "JUNKQUOTE_LLM_API_KEY",
            "JUNKQUOTE_LLM_TIMEOUT_MS",
            "TWILIO_TIMEOUT_MS",
            "JUNKQUOTE_CHAT_SESSION_LIMIT",
            "JUNKQUOTE_CHAT_SESSION_GLOBAL_LIMIT",
            "JUNKQUOTE_CHAT_SESSION_WINDOW_SECS",
            "JUNKQUOTE_TRUSTED_PROXY_HOPS",
            "JUNKQUOTE_CHAT_MESSAGE_LIMIT",
            "JUNKQUOTE_CHAT_MESSAGE_CLIENT_LIMIT",
            "JUNKQUOTE_CHAT_MESSAGE_WINDOW_SECS",
            "JUNKQUOTE_SECURE_COOKIES",
            "JUNKQUOTE_METRICS_ADDR",
            "JUNKQUOTE_METRICS_TOKEN",
            "JUNKQUOTE_LOG_FORMAT",
        ] {
            cmd.env_remove(name);
        }
        // stderr is a pipe nobody reads until the server fails or stops: keep it quiet
        // (RUST_LOG=warn) unless a test reads it.
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics_base = None;
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let status = child.wait().expect("wait");
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
                    .ok();
                panic!("serve exited ({status}) before listening: {err}");
            };
            if let Some(addr) = line.strip_prefix("junkquote metrics on ") {
                metrics_base = Some(addr.to_owned());
            }
            if let Some(addr) = line.strip_prefix("junkquote listening on ") {
                break addr.to_owned();
            }
        };
        Self {
            child,
            base,
            metrics_base,
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM, waits for the process, and returns what it wrote to stderr.
    pub fn terminate_and_read_stderr(mut self) -> String {
        let mut stderr = self.child.stderr.take().expect("stderr");
        let code = self.terminate_ref();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut err).expect("read stderr");
        assert_eq!(code, Some(0), "serve's exit; stderr: {err}");
        err
    }

    /// Sends SIGTERM and waits for the process; returns its exit code.
    pub fn terminate(mut self) -> Option<i32> {
        self.terminate_ref()
    }

    fn terminate_ref(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `junkquote admin create-user EMAIL` with `stdin` as its standard input (the password).
pub fn create_user(db: &TestDb, email: &str, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = command(&["admin", "create-user", email], Some(&db.url), None)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn create-user");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("create-user")
}

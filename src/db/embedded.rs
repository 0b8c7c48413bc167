//! The embedded PostgreSQL: a private cluster run from the machine's PostgreSQL binaries.
//!
//! With no `DATABASE_URL`, JunkQuote keeps its own cluster in the data directory. The cluster
//! listens only on a Unix socket in a directory of mode 0700 (so only its owner and root can reach
//! it, which is why `trust` authentication is safe there), is kept across restarts, and is shared
//! by every `junkquote` process using the same data directory: each holds a shared lock on
//! `usage.lock` while it runs, and the last one to leave stops the cluster. Starting and stopping
//! happen under an exclusive `control.lock`, so two processes never race to start or stop it.
//!
//! As root, PostgreSQL (which refuses to run as root) runs as the `postgres` user.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid, User};
use sha2::{Digest, Sha256};

/// The port number in the socket's file name; no TCP port is opened.
const PORT: u16 = 5432;
/// Unix socket paths are limited to 107 bytes; past this the socket moves under `/tmp`.
const MAX_SOCKET_DIR_LEN: usize = 90;
/// How long a start may take before it is reported as failed.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The superuser that `initdb` creates; connections use it over the private socket.
pub const SUPERUSER: &str = "postgres";

/// Why the embedded PostgreSQL could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH or under \
         /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install postgresql) or \
         set DATABASE_URL to an existing server"
    )]
    NotInstalled,
    #[error(
        "JUNKQUOTE_PG_BIN is {0}, but initdb, pg_ctl and postgres are not all there; install \
         PostgreSQL (Debian/Ubuntu: apt-get install postgresql) and point JUNKQUOTE_PG_BIN at its \
         bin directory (e.g. /usr/lib/postgresql/15/bin), or unset it"
    )]
    NotInstalledAt(String),
    #[error(
        "running as root, but there is no `postgres` user to run PostgreSQL as (it refuses to run \
         as root); create one (useradd --system postgres) or run junkquote as a normal user"
    )]
    NoPostgresUser,
    #[error(
        "data directory {path} is owned by {owner}, but PostgreSQL here runs as {runner}; use \
         another --data-dir (JUNKQUOTE_DATA_DIR) or give it to {runner} (chown -R {runner} {path})"
    )]
    ForeignOwner {
        path: String,
        owner: String,
        runner: String,
    },
    #[error(
        "PostgreSQL runs as {runner}, which cannot enter {dir} (no search permission); put the \
         data directory somewhere {runner} can reach (e.g. --data-dir /var/lib/junkquote) or \
         chmod o+x {dir}"
    )]
    Unreachable { runner: String, dir: String },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error(
        "PostgreSQL did not become ready within {secs}s (last log line: {last}); see {log}",
        secs = START_TIMEOUT.as_secs()
    )]
    StartTimeout { log: String, last: String },
    #[error("PostgreSQL could not start: {last}; see {log}")]
    StartFailed { log: String, last: String },
    #[error(
        "data directory {path} already holds files that are not JunkQuote's (such as {example}); \
         give --data-dir (JUNKQUOTE_DATA_DIR) an empty or new directory"
    )]
    NotOurs { path: String, example: String },
    #[error(
        "socket directory {path} exists but is not a directory of {runner}'s; remove it or choose \
         a shorter --data-dir so the socket can live inside it"
    )]
    SocketDir { path: String, runner: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError + '_ {
    move |source| EmbeddedError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// How to run a cluster: where, and with which server settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// JunkQuote's data directory; the cluster itself lives in its `pg/` subdirectory.
    pub data_dir: PathBuf,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
}

impl ClusterConfig {
    /// The settings for a service's own cluster.
    pub fn service(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            settings: Vec::new(),
        }
    }

    /// Settings for a throwaway cluster (tests, lint): durability traded for speed.
    pub fn throwaway(data_dir: impl Into<PathBuf>) -> Self {
        let settings = [
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "300"),
        ];
        Self {
            data_dir: data_dir.into(),
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// The unprivileged user PostgreSQL runs as.
#[derive(Debug, Clone)]
struct Runner {
    name: String,
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    /// Whether the current process must switch to this user to run PostgreSQL.
    switch: bool,
}

impl Runner {
    fn detect() -> Result<Self, EmbeddedError> {
        let me = Uid::effective();
        let user = if me.is_root() {
            User::from_name(SUPERUSER)
                .ok()
                .flatten()
                .ok_or(EmbeddedError::NoPostgresUser)?
        } else {
            User::from_uid(me)
                .ok()
                .flatten()
                .ok_or_else(|| EmbeddedError::Command {
                    what: "looking up the current user".into(),
                    detail: format!("uid {me} has no passwd entry"),
                })?
        };
        let cname =
            std::ffi::CString::new(user.name.clone()).map_err(|e| EmbeddedError::Command {
                what: "looking up the user's groups".into(),
                detail: e.to_string(),
            })?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid).unwrap_or_else(|_| vec![user.gid]);
        Ok(Self {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            groups,
            switch: me.is_root(),
        })
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if self.switch {
            cmd.uid(self.uid.as_raw()).gid(self.gid.as_raw());
            cmd.env("HOME", "/tmp").env("USER", &self.name);
        }
        cmd.env_remove("PGDATA").env("LC_ALL", "C.UTF-8");
        cmd
    }

    /// Whether this user may search (enter) `dir`, judged from its mode bits.
    fn can_enter(&self, meta: &fs::Metadata) -> bool {
        let mode = meta.mode();
        if meta.uid() == self.uid.as_raw() {
            return mode & 0o100 != 0;
        }
        if self.groups.iter().any(|g| g.as_raw() == meta.gid()) {
            return mode & 0o010 != 0;
        }
        mode & 0o001 != 0
    }

    fn chown(&self, path: &Path) -> Result<(), EmbeddedError> {
        if self.switch {
            nix::unistd::chown(path, Some(self.uid), Some(self.gid)).map_err(|e| {
                EmbeddedError::Io {
                    path: path.display().to_string(),
                    source: e.into(),
                }
            })?;
        }
        Ok(())
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `JUNKQUOTE_PG_BIN` when set, else
/// the first complete one on PATH, else Debian's newest under `/usr/lib/postgresql`.
fn find_bin_dir() -> Result<PathBuf, EmbeddedError> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("JUNKQUOTE_PG_BIN").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if complete(&dir) {
            Ok(dir)
        } else {
            Err(EmbeddedError::NotInstalledAt(dir.display().to_string()))
        };
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if complete(&dir) {
                return Ok(dir);
            }
        }
    }
    // Debian keeps the server binaries off PATH, one directory per major version: take the newest.
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(EmbeddedError::NotInstalled)
}

fn user_name(uid: u32) -> String {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// A running cluster that this process is using. Dropping it leaves the cluster; the last user
/// to leave stops it (unless it was pinned with [`Cluster::pin`]).
#[derive(Debug)]
pub struct Cluster {
    data_dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    bin_dir: PathBuf,
    runner: Runner,
    usage: Option<Flock<File>>,
    launched: bool,
}

impl Cluster {
    /// Starts the cluster in `config.data_dir`, or joins it if it is already running.
    pub fn start(config: &ClusterConfig) -> Result<Self, EmbeddedError> {
        let bin_dir = find_bin_dir()?;
        let runner = Runner::detect()?;
        let data_dir = absolute(&config.data_dir)?;
        prepare_data_dir(&data_dir, &runner)?;
        let pgdata = data_dir.join("pg");
        let socket_dir = socket_dir_for(&data_dir);

        let _control = lock(&data_dir.join("control.lock"), FlockArg::LockExclusive)?;
        let usage = lock(&data_dir.join("usage.lock"), FlockArg::LockShared)?;
        let mut cluster = Self {
            data_dir,
            pgdata,
            socket_dir,
            bin_dir,
            runner,
            usage: Some(usage),
            launched: false,
        };
        let ready = match cluster.state() {
            ServerState::Ready => Ok(()),
            ServerState::Starting(pid) => cluster.wait_ready(pid, None),
            ServerState::Stopped => cluster
                .init_if_needed()
                .and_then(|()| cluster.launch(&config.settings))
                .map(|()| cluster.launched = true),
        };
        if let Err(e) = ready {
            // Leave without trying to stop anything: the control lock is still held here, and
            // there is no server of ours to stop.
            cluster.usage = None;
            return Err(e);
        }
        Ok(cluster)
    }

    /// A connection URL for `database` over the cluster's socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost/{database}?host={}&port={PORT}",
            self.socket_dir.display()
        )
    }

    /// The directory holding the cluster's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The cluster's files (`PGDATA`).
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Whether this process started the server (rather than joining a running one).
    pub fn launched_here(&self) -> bool {
        self.launched
    }

    /// The process id of the running postmaster.
    pub fn postmaster_pid(&self) -> Option<i32> {
        read_pid_file(&self.pgdata).map(|p| p.pid)
    }

    /// Keeps the cluster running after every process has left (until [`Cluster::unpin`]).
    pub fn pin(&self) -> Result<(), EmbeddedError> {
        let marker = self.data_dir.join("keep-running");
        fs::write(&marker, b"").map_err(io_err(&marker))
    }

    /// Undoes [`Cluster::pin`]: the last process to leave stops the cluster again.
    pub fn unpin(&self) -> Result<(), EmbeddedError> {
        let marker = self.data_dir.join("keep-running");
        match fs::remove_file(&marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&marker)(e)),
            _ => Ok(()),
        }
    }

    /// Leaves the cluster, stopping it if this was its last user. Returns whether it stopped.
    pub fn release(mut self) -> Result<bool, EmbeddedError> {
        self.leave()
    }

    /// Leaves the cluster running whatever the other users do; used by the test harness, whose
    /// cluster outlives every test process and is stopped by its own watchdog.
    pub fn detach(mut self) {
        self.usage.take();
    }

    fn leave(&mut self) -> Result<bool, EmbeddedError> {
        let Some(usage) = self.usage.take() else {
            return Ok(false);
        };
        let _control = lock(&self.data_dir.join("control.lock"), FlockArg::LockExclusive)?;
        drop(usage);
        if self.data_dir.join("keep-running").exists() {
            return Ok(false);
        }
        // If anyone else still holds a shared lock, the cluster stays up for them.
        let path = self.data_dir.join("usage.lock");
        let Ok(_last) = lock(&path, FlockArg::LockExclusiveNonblock) else {
            return Ok(false);
        };
        if self.state() == ServerState::Stopped {
            return Ok(false);
        }
        self.pg_ctl_stop()?;
        if !self.socket_dir.starts_with(&self.data_dir) {
            // The server has removed its socket; the directory under /tmp goes too (if empty).
            let _ = fs::remove_dir(&self.socket_dir);
        }
        Ok(true)
    }

    fn state(&self) -> ServerState {
        let Some(pid) = read_pid_file(&self.pgdata) else {
            return ServerState::Stopped;
        };
        if !is_live_postgres(pid.pid) {
            // A stale pid file would make the next start refuse; it belongs to no live server.
            let _ = fs::remove_file(self.pgdata.join("postmaster.pid"));
            return ServerState::Stopped;
        }
        if pid.ready {
            ServerState::Ready
        } else {
            ServerState::Starting(pid.pid)
        }
    }

    /// Waits for the server `pid` (started by `child`, if this process started it) to be ready.
    fn wait_ready(
        &self,
        pid: i32,
        mut child: Option<&mut std::process::Child>,
    ) -> Result<(), EmbeddedError> {
        let log_path = self.data_dir.join("postgres.log");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(file) = read_pid_file(&self.pgdata)
                && file.pid == pid
                && file.ready
            {
                return Ok(());
            }
            let exited = match child.as_deref_mut() {
                Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                None => !is_live_postgres(pid),
            };
            if exited {
                return Err(EmbeddedError::StartFailed {
                    log: log_path.display().to_string(),
                    last: last_log_line(&log_path),
                });
            }
            if Instant::now() > deadline {
                if let Some(child) = child {
                    let _ = child.kill();
                }
                return Err(EmbeddedError::StartTimeout {
                    log: log_path.display().to_string(),
                    last: last_log_line(&log_path),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn init_if_needed(&self) -> Result<(), EmbeddedError> {
        if self.pgdata.join("PG_VERSION").is_file() {
            return Ok(());
        }
        if self.pgdata.exists() {
            // A half-done initdb (interrupted) leaves files that make the next one refuse.
            fs::remove_dir_all(&self.pgdata).map_err(io_err(&self.pgdata))?;
        }
        let output = self
            .runner
            .command(&self.bin_dir.join("initdb"))
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-instructions"])
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(&self.bin_dir))?;
        if !output.status.success() {
            return Err(EmbeddedError::Command {
                what: "initdb".into(),
                detail: last_line(&String::from_utf8_lossy(&output.stderr)),
            });
        }
        Ok(())
    }

    fn launch(&self, settings: &[(String, String)]) -> Result<(), EmbeddedError> {
        self.prepare_socket_dir()?;

        let log_path = self.data_dir.join("postgres.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let mut cmd = self.runner.command(&self.bin_dir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.pgdata)
            .arg("-k")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(PORT.to_string())
            .args(["-c", "listen_addresses="]);
        for (name, value) in settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        // Its own process group: a Ctrl-C in the terminal reaches junkquote, which then stops
        // the server in order, instead of reaching the server directly.
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err(&log_path))?)
            .stderr(log)
            .spawn()
            .map_err(io_err(&self.bin_dir))?;

        let pid = child.id() as i32;
        self.wait_ready(pid, Some(&mut child))
    }

    /// Creates the socket directory (mode 0700, the runner's), refusing one that is not ours:
    /// under /tmp anyone could have planted a directory or a symbolic link there.
    fn prepare_socket_dir(&self) -> Result<(), EmbeddedError> {
        let dir = &self.socket_dir;
        let me = Uid::effective().as_raw();
        match fs::symlink_metadata(dir) {
            Ok(meta) => {
                let owner = meta.uid();
                if !meta.is_dir() || (owner != self.runner.uid.as_raw() && owner != me) {
                    return Err(EmbeddedError::SocketDir {
                        path: dir.display().to_string(),
                        runner: self.runner.name.clone(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(dir).map_err(io_err(dir))?;
            }
            Err(e) => return Err(io_err(dir)(e)),
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
        if self.runner.switch {
            std::os::unix::fs::lchown(
                dir,
                Some(self.runner.uid.as_raw()),
                Some(self.runner.gid.as_raw()),
            )
            .map_err(io_err(dir))?;
        }
        Ok(())
    }

    fn pg_ctl_stop(&self) -> Result<(), EmbeddedError> {
        let output = self
            .runner
            .command(&self.bin_dir.join("pg_ctl"))
            .arg("stop")
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-m", "fast", "-w", "-t", "60"])
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(&self.bin_dir))?;
        if !output.status.success() {
            return Err(EmbeddedError::Command {
                what: "pg_ctl stop".into(),
                detail: last_line(&String::from_utf8_lossy(&output.stderr)),
            });
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.leave() {
            tracing::warn!(error = %e, "could not stop the embedded PostgreSQL");
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf, EmbeddedError> {
    std::path::absolute(path).map_err(io_err(path))
}

/// What JunkQuote keeps in a data directory (besides `*.lock` files; `backups` holds the nightly ones).
const OUR_FILES: &[&str] = &["pg", "run", "postgres.log", "keep-running", "backups"];

/// Creates the data directory (mode 0700, owned by the runner) or checks an existing one: it
/// must belong to the runner or the current user and hold nothing but JunkQuote's files, so that
/// `--data-dir $HOME` cannot take a home directory over.
fn prepare_data_dir(dir: &Path, runner: &Runner) -> Result<(), EmbeddedError> {
    if runner.switch {
        // The runner must be able to walk down to the data directory from `/`; checked before
        // anything is created. Directories still to be created will be (mode 0755).
        for ancestor in dir.ancestors().skip(1) {
            if let Ok(meta) = fs::metadata(ancestor)
                && !runner.can_enter(&meta)
            {
                return Err(EmbeddedError::Unreachable {
                    runner: runner.name.clone(),
                    dir: ancestor.display().to_string(),
                });
            }
        }
    }
    match fs::metadata(dir) {
        Ok(meta) => {
            let me = Uid::effective().as_raw();
            if meta.uid() != runner.uid.as_raw() && meta.uid() != me {
                return Err(EmbeddedError::ForeignOwner {
                    path: dir.display().to_string(),
                    owner: user_name(meta.uid()),
                    runner: runner.name.clone(),
                });
            }
            let foreign = fs::read_dir(dir)
                .map_err(io_err(dir))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|name| !OUR_FILES.contains(&name.as_str()) && !name.ends_with(".lock"));
            if let Some(example) = foreign {
                return Err(EmbeddedError::NotOurs {
                    path: dir.display().to_string(),
                    example,
                });
            }
            let pgdata = dir.join("pg");
            if let Ok(pg) = fs::metadata(&pgdata)
                && pg.uid() != runner.uid.as_raw()
            {
                return Err(EmbeddedError::ForeignOwner {
                    path: pgdata.display().to_string(),
                    owner: user_name(pg.uid()),
                    runner: runner.name.clone(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        Err(e) => return Err(io_err(dir)(e)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    runner.chown(dir)?;
    Ok(())
}

/// The socket directory: inside the data directory when the path is short enough, else a
/// directory under `/tmp` named after the data directory (so it is the same on every start).
pub fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let inside = data_dir.join("run");
    if inside.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        return inside;
    }
    let digest = Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    PathBuf::from(format!("/tmp/junkquote-{hex}"))
}

fn lock(path: &Path, how: FlockArg) -> Result<Flock<File>, EmbeddedError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    Flock::lock(file, how).map_err(|(_, errno)| EmbeddedError::Io {
        path: path.display().to_string(),
        source: errno.into(),
    })
}

struct PidFile {
    pid: i32,
    ready: bool,
}

/// Reads `postmaster.pid`: its first line is the pid, its eighth the server's status.
fn read_pid_file(pgdata: &Path) -> Option<PidFile> {
    let text = fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let ready = lines.nth(6).is_some_and(|status| status.trim() == "ready");
    Some(PidFile { pid, ready })
}

/// The last line of PostgreSQL's log that says something, for error messages.
fn last_log_line(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        // The end of the log is enough: seek near it rather than read it all.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(8192)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    last_line(&text)
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(nothing logged)")
        .to_owned()
}

/// Whether `pid` is a live (not zombie) PostgreSQL process.
fn is_live_postgres(pid: i32) -> bool {
    // A crashed server this process started lingers as a zombie until reaped: not alive.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !stat.contains(") Z ");
    // After a crash and a reboot the recorded pid may belong to an unrelated process.
    let is_postgres = fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim().starts_with("postgres"))
        .unwrap_or(false);
    alive && is_postgres
}

/// Whether a server runs in a cluster directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Stopped,
    Starting(i32),
    Ready,
}

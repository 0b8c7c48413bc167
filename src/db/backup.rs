//! Backups with PostgreSQL's own tools: `pg_dump --format=custom` to write one, `pg_restore` to
//! bring it back.
//!
//! A dump is taken in one snapshot (pg_dump's own), so a database being written to gives a
//! consistent backup. It is written beside its final name, fsync'd, checked with `pg_restore
//! --list`, and only then renamed: a file under the final name is always a whole backup. A
//! restore reads the whole file first (a truncated or corrupt file is refused before anything is
//! touched), refuses a database that already holds tables unless forced, and restores in one
//! transaction. The password never appears on a command line: the child gets it in `PGPASSWORD`.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::SystemTime;

use sqlx::PgConnection;
use sqlx::postgres::PgConnectOptions;

/// Why a backup or a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "PostgreSQL's client tools (pg_dump, pg_restore) were not found on PATH or under \
         /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install postgresql-client)"
    )]
    NoTools,
    #[error("the database URL cannot be used: {0}")]
    Url(String),
    #[error("{what} failed: {detail}")]
    Tool { what: String, detail: String },
    #[error(
        "{path} is not a whole JunkQuote backup (pg_restore cannot read it: {detail}); nothing \
         was changed"
    )]
    Unreadable { path: String, detail: String },
    #[error(
        "database {database} is not empty ({tables} tables); restoring into it would mix two \
         databases. Restore into an empty database (or a new data directory), or pass --force to \
         replace everything in it"
    )]
    NotEmpty { database: String, tables: i64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where `pg_dump` and `pg_restore` are.
#[derive(Debug, Clone)]
pub struct Tools {
    pg_dump: PathBuf,
    pg_restore: PathBuf,
}

impl Tools {
    /// `JUNKQUOTE_PG_BIN` when set, else the first directory on PATH holding both, else
    /// Debian's newest under `/usr/lib/postgresql` (as the embedded launcher finds `initdb`).
    pub fn find() -> Result<Self, BackupError> {
        let complete = |dir: &Path| {
            let tools = Tools {
                pg_dump: dir.join("pg_dump"),
                pg_restore: dir.join("pg_restore"),
            };
            (tools.pg_dump.is_file() && tools.pg_restore.is_file()).then_some(tools)
        };
        if let Some(dir) = std::env::var_os("JUNKQUOTE_PG_BIN").filter(|d| !d.is_empty()) {
            return complete(Path::new(&dir)).ok_or(BackupError::NoTools);
        }
        if let Some(path) = std::env::var_os("PATH")
            && let Some(tools) = std::env::split_paths(&path).find_map(|d| complete(&d))
        {
            return Ok(tools);
        }
        let mut versions: Vec<(u32, Tools)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((major, complete(&e.path().join("bin"))?))
            })
            .collect();
        versions.sort_by_key(|(major, _)| *major);
        versions
            .pop()
            .map(|(_, tools)| tools)
            .ok_or(BackupError::NoTools)
    }
}

/// How a child tool reaches the database: libpq's environment variables, the password among
/// them (never an argument, which any user can read in `ps`).
#[derive(Clone)]
pub struct Target {
    env: Vec<(&'static str, OsString)>,
    database: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The database at `url` (as given to JunkQuote: `DATABASE_URL`, or the embedded cluster's).
    pub fn from_url(url: &str) -> Result<Self, BackupError> {
        let options =
            PgConnectOptions::from_str(url).map_err(|e| BackupError::Url(e.to_string()))?;
        let parsed = url::Url::parse(url).map_err(|e| BackupError::Url(e.to_string()))?;
        let query = |key: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.into_owned())
        };
        let password = match parsed.password() {
            Some(p) => Some(
                percent_decode(p)
                    .map_err(|_| BackupError::Url("the password is not UTF-8".into()))?,
            ),
            None => query("password"),
        };
        let database = options.get_database().unwrap_or("postgres").to_owned();
        let mut env: Vec<(&'static str, OsString)> = vec![
            (
                "PGHOST",
                match options.get_socket() {
                    Some(socket) => socket.clone().into_os_string(),
                    None => options.get_host().into(),
                },
            ),
            ("PGPORT", options.get_port().to_string().into()),
            ("PGUSER", options.get_username().into()),
            ("PGDATABASE", database.clone().into()),
        ];
        if let Some(password) = password {
            env.push(("PGPASSWORD", password.into()));
        }
        if let Some(mode) = query("sslmode") {
            env.push(("PGSSLMODE", mode.into()));
        }
        Ok(Self { env, database })
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        // The URL says which server; a service file naming another does not apply. (A passfile
        // still does: it is how a URL without a password gets one.)
        for var in ["PGSERVICE", "PGSERVICEFILE", "PGOPTIONS"] {
            cmd.env_remove(var);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null());
        cmd
    }
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> =
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned().into_bytes())
            .unwrap_or_default();
    String::from_utf8(bytes)
}

/// A backup written.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Dumps `target` to `to` (custom format): written to a temporary file beside it, fsync'd,
/// checked, then renamed, so `to` is never a half file. Created with mode 0600: a backup holds
/// every customer's data. Blocking.
pub fn backup(tools: &Tools, target: &Target, to: &Path) -> Result<Written, BackupError> {
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = to
        .file_name()
        .ok_or_else(|| BackupError::Url(format!("{} is not a file name", to.display())))?;
    let random = uuid::Uuid::new_v4().simple().to_string();
    let mut partial_name = OsString::from(".");
    partial_name.push(name);
    partial_name.push(format!(".partial-{}", &random[..8]));
    let partial = dir.join(partial_name);
    // Made here, 0600, so pg_dump writes into a file no one else can read.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(io_err(&partial))?;
    let result = (|| {
        let output = target
            .command(&tools.pg_dump)
            .arg("--format=custom")
            .arg("--no-password")
            .arg("--file")
            .arg(&partial)
            .output()
            .map_err(io_err(&tools.pg_dump))?;
        if !output.status.success() {
            return Err(BackupError::Tool {
                what: "pg_dump".into(),
                detail: last_line(&output.stderr),
            });
        }
        let file = File::open(&partial).map_err(io_err(&partial))?;
        file.sync_all().map_err(io_err(&partial))?;
        let bytes = file.metadata().map_err(io_err(&partial))?.len();
        check_file(tools, &partial, false)?;
        fs::rename(&partial, to).map_err(io_err(to))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&dir))?;
        Ok(Written {
            path: to.to_path_buf(),
            bytes,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

/// Checks that `file` is a whole backup: its table of contents (`pg_restore --list`), and with
/// `fully`, every byte of its data (restored to nowhere), which is what finds a truncated file.
fn check_file(tools: &Tools, file: &Path, fully: bool) -> Result<(), BackupError> {
    let unreadable = |detail: String| BackupError::Unreadable {
        path: file.display().to_string(),
        detail,
    };
    let mut runs = vec![vec![OsString::from("--list")]];
    if fully {
        runs.push(vec![OsString::from("--file=/dev/null")]);
    }
    for args in runs {
        let output = Command::new(&tools.pg_restore)
            .args(&args)
            .arg(file)
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(&tools.pg_restore))?;
        if !output.status.success() {
            return Err(unreadable(last_line(&output.stderr)));
        }
        // pg_restore warns, but exits 0, about some damage; a backup it had to warn about is not
        // one to restore.
        let stderr = String::from_utf8_lossy(&output.stderr);
        if let Some(line) = stderr
            .lines()
            .find(|l| l.contains("error") || l.contains("could not"))
        {
            return Err(unreadable(line.trim().to_owned()));
        }
    }
    Ok(())
}

/// How many tables, views and sequences the database holds outside PostgreSQL's own schemas.
pub async fn user_relations(conn: &mut PgConnection) -> Result<i64, BackupError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
    )
    .fetch_one(conn)
    .await?)
}

/// Empties the database for a forced restore: every schema of its own is dropped with what it
/// holds, and an empty `public` made again (the dump expects one).
async fn empty_database(conn: &mut PgConnection) -> Result<(), BackupError> {
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', \
         'information_schema') AND nspname NOT LIKE 'pg\\_%'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut sql = String::from("BEGIN;");
    for schema in &schemas {
        sql.push_str(&format!(
            "DROP SCHEMA {} CASCADE;",
            super::pool::quote_ident(schema)
        ));
    }
    sql.push_str("CREATE SCHEMA public; COMMIT;");
    sqlx::raw_sql(&sql).execute(conn).await?;
    Ok(())
}

/// Restores `file` into `target`, reached over `conn` for the checks: the file is read whole
/// first (a damaged one is refused with nothing changed), a database holding tables is refused
/// unless `force` (which empties it first), and the restore runs in one transaction.
pub async fn restore(
    tools: &Tools,
    target: &Target,
    conn: &mut PgConnection,
    file: &Path,
    force: bool,
) -> Result<(), BackupError> {
    fs::metadata(file).map_err(io_err(file))?;
    {
        let (tools, file) = (tools.clone(), file.to_path_buf());
        tokio::task::spawn_blocking(move || check_file(&tools, &file, true))
            .await
            .map_err(|e| BackupError::Tool {
                what: "checking the backup".into(),
                detail: e.to_string(),
            })??;
    }
    let tables = user_relations(conn).await?;
    if tables > 0 {
        if !force {
            return Err(BackupError::NotEmpty {
                database: target.database.clone(),
                tables,
            });
        }
        empty_database(conn).await?;
    }
    let mut cmd = target.command(&tools.pg_restore);
    cmd.args([
        "--no-password",
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        "--dbname",
    ])
    .arg(target.database())
    .arg(file);
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(|e| BackupError::Tool {
            what: "pg_restore".into(),
            detail: e.to_string(),
        })?
        .map_err(io_err(&tools.pg_restore))?;
    if !output.status.success() {
        return Err(BackupError::Tool {
            what: "pg_restore".into(),
            detail: last_line(&output.stderr),
        });
    }
    Ok(())
}

/// A backup file's name for a moment: `junkquote-20261201T031500Z.dump`.
pub fn file_name(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{FILE_PREFIX}{}{FILE_SUFFIX}", at.format("%Y%m%dT%H%M%SZ"))
}

const FILE_PREFIX: &str = "junkquote-";
const FILE_SUFFIX: &str = ".dump";

/// One backup in a backups directory.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was written.
    pub modified: SystemTime,
}

/// The backups in `dir` (files named by [`file_name`]), newest first; none if `dir` is missing.
pub fn list(dir: &Path) -> Vec<Listed> {
    let mut found: Vec<Listed> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(FILE_PREFIX) && n.ends_with(FILE_SUFFIX))
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| Listed {
                path: e.path(),
                bytes: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })
        })
        .collect();
    found.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.path.cmp(&a.path)));
    found
}

/// Deletes all but the newest `keep` backups in `dir`; returns how many went.
pub fn prune(dir: &Path, keep: usize) -> Result<usize, BackupError> {
    let mut removed = 0;
    for old in list(dir).into_iter().skip(keep) {
        fs::remove_file(&old.path).map_err(io_err(&old.path))?;
        removed += 1;
    }
    Ok(removed)
}

/// Makes `dir` (mode 0700: backups hold every customer's data) if it is missing.
pub fn ensure_dir(dir: &Path) -> Result<(), BackupError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

/// The embedded cluster's JunkQuote data directory, when `conn` is a connection to the embedded
/// service database (`junkquote`) on this machine: the parent of the server's own
/// `data_directory`, recognised by the launcher's lock files. `None` for any other server (a
/// `DATABASE_URL` one, a test's database), which is backed up by its operator's means.
pub async fn embedded_data_dir(conn: &mut PgConnection) -> Result<Option<PathBuf>, BackupError> {
    let (database, superuser): (String, bool) = sqlx::query_as(
        "SELECT current_database()::text, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
    )
    .fetch_one(&mut *conn)
    .await?;
    if database != super::pool::EMBEDDED_DATABASE || !superuser {
        return Ok(None);
    }
    let pgdata: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
        .fetch_one(&mut *conn)
        .await?;
    let Some(dir) = Path::new(&pgdata).parent() else {
        return Ok(None);
    };
    let ours = Path::new(&pgdata).file_name().is_some_and(|n| n == "pg")
        && dir.join("control.lock").is_file()
        && dir.join("usage.lock").is_file();
    Ok(ours.then(|| dir.to_path_buf()))
}

/// Takes the advisory lock that lets one instance at a time write the nightly backup; `false`
/// if another holds it. Held until [`unlock_nightly`] or the connection closes.
pub async fn try_lock_nightly(conn: &mut PgConnection) -> Result<bool, BackupError> {
    Ok(sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(NIGHTLY_LOCK)
        .fetch_one(conn)
        .await?)
}

/// Lets go of the lock [`try_lock_nightly`] took.
pub async fn unlock_nightly(conn: &mut PgConnection) -> Result<(), BackupError> {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(NIGHTLY_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// The advisory lock key of the nightly backup ("jqbackup" in ASCII).
const NIGHTLY_LOCK: i64 = 0x6a71_6261_636b_7570;

/// The tool's first error line (libpq adds hints after it), else its last line.
fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first_error = text.lines().map(str::trim).find(|l| l.contains("error:"));
    first_error
        .or_else(|| lines.next_back())
        .unwrap_or("(no message)")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn the_password_goes_to_the_environment_decoded_and_never_elsewhere() {
        let target = Target::from_url("postgres://app:s%40cret@db.example:6543/jq?sslmode=require")
            .expect("parses");
        let env: Vec<(String, String)> = target
            .env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string_lossy().into_owned()))
            .collect();
        assert!(env.contains(&("PGPASSWORD".into(), "s@cret".into())));
        assert!(env.contains(&("PGHOST".into(), "db.example".into())));
        assert!(env.contains(&("PGPORT".into(), "6543".into())));
        assert!(env.contains(&("PGDATABASE".into(), "jq".into())));
        assert!(env.contains(&("PGSSLMODE".into(), "require".into())));
        assert!(!format!("{target:?}").contains("s@cret"));
    }

    #[test]
    fn a_socket_url_has_no_password() {
        let target =
            Target::from_url("postgres://postgres@localhost/junkquote?host=/tmp/x&port=5432")
                .expect("parses");
        assert!(target.env.iter().all(|(k, _)| *k != "PGPASSWORD"));
        assert!(
            target
                .env
                .iter()
                .any(|(k, v)| *k == "PGHOST" && v == "/tmp/x")
        );
    }
}

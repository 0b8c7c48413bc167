//! Schema migrations: applying and reverting numbered migrations, checking the live schema
//! against what they promise (`verify`), and linting new ones (`lint`).
//!
//! Bookkeeping lives in the `junkquote` schema, outside `public`, so that `public` holds exactly
//! the application's tables. Each applied migration is recorded with the checksums of its files;
//! a file changed after it was applied is refused. A session-level advisory lock makes a second
//! migrator wait for the first. A transactional migration is all or nothing; a
//! `-- junkquote:no-transaction` one runs statement by statement and is recorded only once every
//! statement has succeeded, so running it again after a failure finishes the job.

pub mod adopt;
pub mod catalog;
pub mod lint;
mod source;
pub mod sql;
pub mod verify;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{Connection, Executor, PgConnection};

use sql::Statement;

pub use source::{Migration, MigrationSet, is_no_transaction, requires_check};

/// The advisory lock key that serialises migrators ("junkquot" in ASCII).
pub const LOCK_KEY: i64 = 0x6a75_6e6b_7175_6f74;
/// How often a waiting migrator asks for the advisory lock again.
const LOCK_POLL: Duration = Duration::from_millis(200);
/// How often a statement that timed out waiting for a lock is tried again.
const LOCK_RETRIES: u32 = 5;

/// What went wrong with migrations.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "migration {version} ({name}) was changed after it was applied: its .{which}.sql no \
         longer matches the checksum recorded when it ran; restore the file as it was and put \
         the change in a new migration"
    )]
    Changed {
        version: i64,
        name: String,
        which: &'static str,
    },
    #[error(
        "the database has migration {version} applied, which this junkquote does not know \
         (it knows up to {latest}); run the junkquote release that applied it, or a newer one"
    )]
    UnknownApplied { version: i64, latest: i64 },
    #[error("there is no migration {target}; known versions: {known}")]
    UnknownTarget { target: i64, known: String },
    #[error(
        "the database is at migration {current}, below {target}; use `junkquote migrate up --to \
         {target}` to go forward"
    )]
    TargetAhead { target: i64, current: i64 },
    #[error(
        "the database is at migration {current}, above {target}; use `junkquote migrate down \
         --to {target}` to go back"
    )]
    TargetBehind { target: i64, current: i64 },
    #[error("migration {version} ({name}) has no .down.sql, so it cannot be reverted")]
    NoDown { version: i64, name: String },
    #[error("migration {version} ({name}) {direction} failed, nothing of it was kept: {message}")]
    Failed {
        version: i64,
        name: String,
        direction: &'static str,
        message: String,
    },
    #[error(
        "migration {version} ({name}) {direction} stopped after {done} of its statements (it runs \
         outside a transaction): {message}; fix the cause and run it again, it is safe to re-run"
    )]
    FailedPartway {
        version: i64,
        name: String,
        direction: &'static str,
        done: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Source { path: String, message: String },
    #[error(
        "another migrator has held the migration lock for {0} s; wait for it to finish (or stop \
         it) and run this again"
    )]
    LockWait(u64),
    #[error("{0}")]
    Unadoptable(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

/// How migrations run.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// `lock_timeout` for every statement: DDL that cannot get its lock within this gives up
    /// (and is retried) instead of queueing every other query on the table behind it.
    pub lock_timeout: Duration,
    /// How long to wait for another migrator before giving up.
    pub migrator_wait: Duration,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(5),
            migrator_wait: Duration::from_secs(600),
        }
    }
}

/// A migration recorded as applied.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Applied {
    /// Its number.
    pub version: i64,
    /// Its name when it ran.
    pub name: String,
    /// Checksum of its `.up.sql` when it ran.
    pub up_checksum: String,
    /// Checksum of its `.down.sql` when it ran.
    pub down_checksum: String,
    /// When it ran.
    pub applied_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: i64,
}

/// One thing a migration run did, for the caller to report.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Waiting for another migrator to finish.
    Waiting,
    /// A migration was applied.
    Applied {
        version: i64,
        name: String,
        elapsed: Duration,
    },
    /// A migration was reverted.
    Reverted {
        version: i64,
        name: String,
        elapsed: Duration,
    },
    /// A statement timed out waiting for a lock and will be tried again.
    LockRetry { version: i64, attempt: u32 },
    /// A database the original JunkQuoteAgent created was taken over: versions up to this one
    /// were recorded as applied without running them.
    Adopted {
        version: i64,
        state: &'static str,
        prisma_migrations: i64,
    },
    /// A migration was not applied because the rows it constrains do not satisfy it yet; the
    /// migrations after it wait too.
    Held {
        version: i64,
        name: String,
        /// What the pre-check found, and what to run.
        reason: String,
    },
}

/// The migrations recorded as applied, in order; empty when none ever were.
pub async fn applied(conn: &mut PgConnection) -> Result<Vec<Applied>, MigrateError> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('junkquote.schema_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT version, name, up_checksum, down_checksum, applied_at, duration_ms
         FROM junkquote.schema_migrations ORDER BY version",
    )
    .fetch_all(conn)
    .await?)
}

/// The highest applied version, or 0. Migrations are applied as a set: a tightening migration
/// held for its pre-check may be missing below it.
pub fn current_version(applied: &[Applied]) -> i64 {
    applied.last().map_or(0, |a| a.version)
}

/// The migrations of `set` not applied yet, in order.
pub fn pending<'a>(set: &'a MigrationSet, applied: &[Applied]) -> Vec<&'a Migration> {
    set.iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect()
}

/// Why a server cannot use this database yet, if it cannot: an applied migration is unknown or
/// changed, or a migration the code needs is pending. Pending migrations that wait for their
/// data pre-check (the tightening after a backfill) do not count: the service runs without
/// them, and the migrations after them apply without waiting (so none may depend on them).
pub fn service_schema_problem(set: &MigrationSet, applied: &[Applied]) -> Option<String> {
    if let Err(e) = check_applied(set, applied) {
        return Some(e.to_string());
    }
    let needed = pending(set, applied)
        .into_iter()
        .find(|m| m.requires_check().is_none())?;
    Some(format!(
        "database schema is at migration {}, this server needs {} (migration {} is not \
         applied); run `junkquote migrate up`",
        current_version(applied),
        set.latest(),
        needed.version
    ))
}

/// Checks that every applied migration is known and unchanged.
pub fn check_applied(set: &MigrationSet, applied: &[Applied]) -> Result<(), MigrateError> {
    for a in applied {
        let Some(m) = set.get(a.version) else {
            return Err(MigrateError::UnknownApplied {
                version: a.version,
                latest: set.latest(),
            });
        };
        let changed = |which| MigrateError::Changed {
            version: m.version,
            name: m.name.clone(),
            which,
        };
        if m.up_checksum() != a.up_checksum {
            return Err(changed("up"));
        }
        if m.down_checksum() != a.down_checksum {
            return Err(changed("down"));
        }
    }
    Ok(())
}

/// Applies the pending migrations up to `target` (default: all). Returns the versions applied.
pub async fn up(
    conn: &mut PgConnection,
    set: &MigrationSet,
    target: Option<i64>,
    options: &MigrateOptions,
    report: &mut (dyn FnMut(Progress) + Send),
) -> Result<Vec<i64>, MigrateError> {
    let target = target.unwrap_or(set.latest());
    locked(conn, set, target, options, report, Direction::Up).await
}

/// Checks the target, then runs `direction` under the migrators' lock, which is released
/// whatever happens.
async fn locked(
    conn: &mut PgConnection,
    set: &MigrationSet,
    target: i64,
    options: &MigrateOptions,
    report: &mut (dyn FnMut(Progress) + Send),
    direction: Direction,
) -> Result<Vec<i64>, MigrateError> {
    if !set.is_known(target) {
        return Err(MigrateError::UnknownTarget {
            target,
            known: set.known_versions(),
        });
    }
    quiet(conn).await?;
    AdvisoryLock::acquire(conn, options.migrator_wait, report).await?;
    let result = match direction {
        Direction::Up => up_locked(conn, set, target, options, report).await,
        Direction::Down => down_locked(conn, set, target, options, report).await,
    };
    AdvisoryLock::release(conn).await?;
    conn.execute("RESET client_min_messages").await?;
    result
}

async fn up_locked(
    conn: &mut PgConnection,
    set: &MigrationSet,
    target: i64,
    options: &MigrateOptions,
    report: &mut (dyn FnMut(Progress) + Send),
) -> Result<Vec<i64>, MigrateError> {
    let mut applied = applied(conn).await?;
    if applied.is_empty()
        && let Some(adopted) = adopt::adopt(conn, set).await?
    {
        report(Progress::Adopted {
            version: adopted.version,
            state: adopted.state,
            prisma_migrations: adopted.prisma_migrations,
        });
        applied = self::applied(conn).await?;
    }
    check_applied(set, &applied)?;
    let current = current_version(&applied);
    if current > target {
        return Err(MigrateError::TargetBehind { target, current });
    }
    let pending: Vec<&Migration> = pending(set, &applied)
        .into_iter()
        .filter(|m| m.version <= target)
        .collect();
    let mut done = Vec::new();
    // The tightening migrations are one block, applied in order: once one waits for its
    // pre-check, the later ones wait with it. The service's own migrations after the block go
    // on without it.
    let mut held = false;
    for m in pending {
        if let Some(check) = m.requires_check() {
            if held {
                continue;
            }
            let outcome = crate::takeover::tighten::precheck(conn, check, 0)
                .await?
                .ok_or_else(|| MigrateError::Source {
                    path: m.file_stem(),
                    message: format!("requires the unknown check {check:?}"),
                })?;
            if !outcome.passed() {
                report(Progress::Held {
                    version: m.version,
                    name: m.name.clone(),
                    reason: format!(
                        "{}; run `junkquote backfill`, then `junkquote tighten`",
                        outcome.summary()
                    ),
                });
                held = true;
                continue;
            }
        }
        let started = Instant::now();
        run(conn, m, Direction::Up, options, report).await?;
        let elapsed = started.elapsed();
        report(Progress::Applied {
            version: m.version,
            name: m.name.clone(),
            elapsed,
        });
        done.push(m.version);
    }
    Ok(done)
}

/// Reverts applied migrations down to `target` (0 for an empty schema). Returns the versions
/// reverted.
pub async fn down(
    conn: &mut PgConnection,
    set: &MigrationSet,
    target: i64,
    options: &MigrateOptions,
    report: &mut (dyn FnMut(Progress) + Send),
) -> Result<Vec<i64>, MigrateError> {
    locked(conn, set, target, options, report, Direction::Down).await
}

async fn down_locked(
    conn: &mut PgConnection,
    set: &MigrationSet,
    target: i64,
    options: &MigrateOptions,
    report: &mut (dyn FnMut(Progress) + Send),
) -> Result<Vec<i64>, MigrateError> {
    let applied = applied(conn).await?;
    check_applied(set, &applied)?;
    let current = current_version(&applied);
    if current < target {
        return Err(MigrateError::TargetAhead { target, current });
    }
    let to_revert: Vec<&Migration> = applied
        .iter()
        .rev()
        .filter(|a| a.version > target)
        .filter_map(|a| set.get(a.version))
        .collect();
    // Refuse before touching anything if any step on the way cannot be reverted.
    if let Some(m) = to_revert.iter().find(|m| m.down.is_none()) {
        return Err(MigrateError::NoDown {
            version: m.version,
            name: m.name.clone(),
        });
    }
    let mut done = Vec::new();
    for m in to_revert {
        let started = Instant::now();
        run(conn, m, Direction::Down, options, report).await?;
        report(Progress::Reverted {
            version: m.version,
            name: m.name.clone(),
            elapsed: started.elapsed(),
        });
        done.push(m.version);
    }
    Ok(done)
}

/// Keeps PostgreSQL's notices ("index … does not exist, skipping" from the re-runnable
/// `DROP INDEX IF EXISTS`) out of the log while migrating; warnings still show.
async fn quiet(conn: &mut PgConnection) -> Result<(), MigrateError> {
    conn.execute("SET client_min_messages = warning").await?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

async fn ensure_bookkeeping(conn: &mut PgConnection) -> Result<(), MigrateError> {
    conn.execute(sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS junkquote;
         CREATE TABLE IF NOT EXISTS junkquote.schema_migrations (
             version bigint PRIMARY KEY,
             name text NOT NULL,
             up_checksum text NOT NULL,
             down_checksum text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now(),
             duration_ms bigint NOT NULL
         );",
    ))
    .await?;
    Ok(())
}

/// Runs one migration in one direction and records it.
async fn run(
    conn: &mut PgConnection,
    m: &Migration,
    direction: Direction,
    options: &MigrateOptions,
    report: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), MigrateError> {
    let sql = match direction {
        Direction::Up => m.up.as_str(),
        Direction::Down => m.down.as_deref().unwrap_or_default(),
    };
    let statements = sql::split(sql);
    let timeout_ms = options.lock_timeout.as_millis();
    let started = Instant::now();
    let mut attempt = 0;
    if is_no_transaction(sql) {
        let mut done = 0;
        while done < statements.len() {
            // A concurrent index build blocks no reader or writer while it waits, and one that
            // gave up would leave an invalid index behind; it waits as long as it needs.
            let concurrent = statements[done].tokens.iter().any(|t| t.is("concurrently"));
            let timeout = if concurrent { 0 } else { timeout_ms };
            conn.execute(format!("SET lock_timeout = {timeout}").as_str())
                .await?;
            match execute(conn, &statements[done..=done]).await {
                Ok(()) => done += 1,
                Err(f) if f.is_lock_timeout() && attempt < LOCK_RETRIES => {
                    attempt += 1;
                    report(Progress::LockRetry {
                        version: m.version,
                        attempt,
                    });
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(f) => {
                    let _ = conn.execute("RESET lock_timeout").await;
                    return Err(MigrateError::FailedPartway {
                        version: m.version,
                        name: m.name.clone(),
                        direction: direction.label(),
                        done,
                        message: f.to_string(),
                    });
                }
            }
        }
        conn.execute("RESET lock_timeout").await?;
        let mut tx = conn.begin().await?;
        ensure_bookkeeping(&mut tx).await?;
        record(&mut tx, m, direction, started).await?;
        tx.commit().await?;
        return Ok(());
    }
    loop {
        let mut tx = conn.begin().await?;
        // SET LOCAL: the timeout ends with the transaction.
        tx.execute(format!("SET LOCAL lock_timeout = {timeout_ms}").as_str())
            .await?;
        match execute(&mut tx, &statements).await {
            Ok(()) => {
                // In the migration's own transaction: if the first migration fails, not even
                // the bookkeeping schema is left behind.
                ensure_bookkeeping(&mut tx).await?;
                record(&mut tx, m, direction, started).await?;
                tx.commit().await?;
                return Ok(());
            }
            Err(f) if f.is_lock_timeout() && attempt < LOCK_RETRIES => {
                tx.rollback().await?;
                attempt += 1;
                report(Progress::LockRetry {
                    version: m.version,
                    attempt,
                });
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(f) => {
                tx.rollback().await?;
                return Err(MigrateError::Failed {
                    version: m.version,
                    name: m.name.clone(),
                    direction: direction.label(),
                    message: f.to_string(),
                });
            }
        }
    }
}

/// A statement PostgreSQL refused.
#[derive(Debug)]
pub struct StatementFailure {
    /// The statement.
    pub statement: Statement,
    /// What PostgreSQL said.
    pub error: sqlx::Error,
}

impl StatementFailure {
    /// A lock not granted in time (55P03) or a deadlock with another session (40P01): both
    /// are worth trying again after a pause.
    fn is_lock_timeout(&self) -> bool {
        matches!(self.code().as_deref(), Some("55P03" | "40P01"))
    }

    /// The SQLSTATE code, when the server answered with one.
    pub fn code(&self) -> Option<String> {
        self.error
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
    }

    /// PostgreSQL's detail line, if any.
    pub fn detail(&self) -> Option<&str> {
        self.error
            .as_database_error()?
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?
            .detail()
    }

    /// The line of the file the error points at: the statement's, or, for an error with a
    /// position (a syntax error), the line of that position.
    pub fn line(&self) -> usize {
        let position = self
            .error
            .as_database_error()
            .and_then(|d| d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
            .and_then(|p| p.position());
        match position {
            Some(sqlx::postgres::PgErrorPosition::Original(pos)) => {
                // The position counts characters from 1.
                let before = self.statement.text.chars().take(pos.saturating_sub(1));
                self.statement.line + before.filter(|&c| c == '\n').count()
            }
            _ => self.statement.line,
        }
    }
}

impl std::fmt::Display for StatementFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error.as_database_error() {
            Some(db) => write!(f, "{}", db.message())?,
            None => write!(f, "{}", self.error)?,
        }
        if let Some(detail) = self.detail() {
            write!(f, " ({detail})")?;
        }
        write!(f, " at line {}", self.line())
    }
}

/// Runs `statements` one at a time on `conn` (which may be in a transaction), stopping at the
/// first that fails. One at a time, so that a failure names its statement and line.
pub async fn execute(
    conn: &mut PgConnection,
    statements: &[Statement],
) -> Result<(), StatementFailure> {
    for statement in statements {
        if let Err(error) = conn.execute(sqlx::raw_sql(&statement.text)).await {
            return Err(StatementFailure {
                statement: statement.clone(),
                error,
            });
        }
    }
    Ok(())
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * 2u64.pow(attempt.min(6)))
}

async fn record(
    conn: &mut PgConnection,
    m: &Migration,
    direction: Direction,
    started: Instant,
) -> Result<(), MigrateError> {
    match direction {
        Direction::Up => {
            sqlx::query(
                "INSERT INTO junkquote.schema_migrations
                     (version, name, up_checksum, down_checksum, duration_ms)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(m.version)
            .bind(&m.name)
            .bind(m.up_checksum())
            .bind(m.down_checksum())
            .bind(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX))
            .execute(conn)
            .await?;
        }
        Direction::Down => {
            sqlx::query("DELETE FROM junkquote.schema_migrations WHERE version = $1")
                .bind(m.version)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// The session-level advisory lock that makes migrators take turns.
struct AdvisoryLock;

impl AdvisoryLock {
    async fn acquire(
        conn: &mut PgConnection,
        patience: Duration,
        report: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), MigrateError> {
        // Poll rather than block in pg_advisory_lock: a session blocked there sits in an open
        // transaction, and the holder's CREATE INDEX CONCURRENTLY waits for every open
        // transaction to end, so the two would deadlock.
        let mut waiting = false;
        let started = Instant::now();
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut *conn)
                .await?;
            if got {
                return Ok(());
            }
            if !waiting {
                waiting = true;
                report(Progress::Waiting);
            }
            if started.elapsed() > patience {
                return Err(MigrateError::LockWait(patience.as_secs()));
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }

    /// Releases the lock (a broken connection has released it already).
    async fn release(conn: &mut PgConnection) -> Result<(), MigrateError> {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// Where each migration stands on a database.
#[derive(Debug, Clone)]
pub struct StatusRow {
    /// The migration's number.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// When it was applied, if it was.
    pub applied_at: Option<DateTime<Utc>>,
    /// What is wrong with it, if anything (changed file, unknown to this binary).
    pub problem: Option<String>,
    /// Pending and waiting for its data pre-check (the tightening after a backfill).
    pub waits_for_check: bool,
}

/// The status of every known and every applied migration.
pub fn status(set: &MigrationSet, applied: &[Applied]) -> Vec<StatusRow> {
    let mut rows: Vec<StatusRow> = set
        .iter()
        .map(|m| {
            let a = applied.iter().find(|a| a.version == m.version);
            let problem = a.and_then(|a| {
                if a.up_checksum != m.up_checksum() {
                    Some("changed after it was applied (.up.sql)".to_owned())
                } else if a.down_checksum != m.down_checksum() {
                    Some("changed after it was applied (.down.sql)".to_owned())
                } else {
                    None
                }
            });
            StatusRow {
                version: m.version,
                name: m.name.clone(),
                applied_at: a.map(|a| a.applied_at),
                problem,
                waits_for_check: a.is_none() && m.requires_check().is_some(),
            }
        })
        .collect();
    for a in applied.iter().filter(|a| set.get(a.version).is_none()) {
        rows.push(StatusRow {
            version: a.version,
            name: a.name.clone(),
            applied_at: Some(a.applied_at),
            problem: Some("applied, but unknown to this junkquote".to_owned()),
            waits_for_check: false,
        });
    }
    rows.sort_by_key(|r| r.version);
    rows
}

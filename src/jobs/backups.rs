//! The embedded database's nightly backup: a `pg_dump` into `<data dir>/backups/` once a day,
//! keeping the newest `JUNKQUOTE_BACKUP_KEEP` (default 14; 0 turns the job off).
//!
//! Only the embedded database is backed up here: a server given by `DATABASE_URL` is its
//! operator's to back up (`junkquote db backup` does it by hand). Every instance on the data
//! directory runs the job; an advisory lock lets one at a time decide and write, so a night gets
//! one backup however many run.

use std::path::Path;
use std::time::{Duration, SystemTime};

use sqlx::{Connection, PgPool};

use super::{Job, Step};
use crate::db::backup::{self, BackupError, Target, Tools};

/// How many backups are kept when `JUNKQUOTE_BACKUP_KEEP` is not set.
pub const DEFAULT_KEEP: usize = 14;
/// A backup is due when the newest is older than this.
const INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// The nightly backup job (a no-op unless the pool is the embedded service database).
pub fn job() -> Job {
    let keep = keep_setting();
    Job::new(
        "nightly backup",
        Duration::from_secs(10 * 60),
        move |pool| async move { back_up_if_due(&pool, keep).await.map(Step::from) },
    )
}

/// `JUNKQUOTE_BACKUP_KEEP`, or the default when it is unset or not a number (said once).
fn keep_setting() -> usize {
    match std::env::var("JUNKQUOTE_BACKUP_KEEP") {
        Err(_) => DEFAULT_KEEP,
        Ok(value) => value.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(
                value = %value,
                "JUNKQUOTE_BACKUP_KEEP is not a number of backups; keeping {DEFAULT_KEEP}"
            );
            DEFAULT_KEEP
        }),
    }
}

/// Writes a backup if the newest in the data directory is a day old (or there is none), and
/// prunes the old ones; returns whether it wrote one. Idle for any other database than the
/// embedded service one.
pub async fn back_up_if_due(pool: &PgPool, keep: usize) -> Result<bool, BackupError> {
    if keep == 0
        || pool.connect_options().get_database() != Some(crate::db::pool::EMBEDDED_DATABASE)
    {
        return Ok(false);
    }
    // A connection of its own: the advisory lock is held for as long as it is open.
    let mut conn = sqlx::PgConnection::connect_with(&pool.connect_options()).await?;
    let result = async {
        let Some(data_dir) = backup::embedded_data_dir(&mut conn).await? else {
            return Ok(false);
        };
        let dir = data_dir.join("backups");
        if !due(&dir) || !backup::try_lock_nightly(&mut conn).await? {
            return Ok(false);
        }
        // Another instance may have written one while this one waited for the lock.
        let written = if due(&dir) {
            write(pool, &dir, keep).await
        } else {
            Ok(false)
        };
        backup::unlock_nightly(&mut conn).await?;
        written
    }
    .await;
    let _ = conn.close().await;
    result
}

fn due(dir: &Path) -> bool {
    backup::list(dir).first().is_none_or(|newest| {
        SystemTime::now()
            .duration_since(newest.modified)
            .is_ok_and(|age| age >= INTERVAL)
    })
}

async fn write(pool: &PgPool, dir: &Path, keep: usize) -> Result<bool, BackupError> {
    let options = pool.connect_options();
    let url = format!(
        "postgres://{}@localhost/{}?host={}&port={}",
        options.get_username(),
        crate::db::pool::EMBEDDED_DATABASE,
        options
            .get_socket()
            .map(|s| s.display().to_string())
            .unwrap_or_else(|| options.get_host().to_owned()),
        options.get_port()
    );
    let target = Target::from_url(&url)?;
    let tools = Tools::find()?;
    backup::ensure_dir(dir)?;
    let to = dir.join(backup::file_name(chrono::Utc::now()));
    let written = tokio::task::spawn_blocking(move || backup::backup(&tools, &target, &to))
        .await
        .map_err(|e| BackupError::Tool {
            what: "the backup task".into(),
            detail: e.to_string(),
        })??;
    let pruned = backup::prune(dir, keep)?;
    tracing::info!(
        file = %written.path.display(),
        bytes = written.bytes,
        pruned,
        "nightly backup written"
    );
    Ok(true)
}

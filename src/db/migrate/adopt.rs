//! Taking over a database the original JunkQuoteAgent created (DESIGN.md §3).
//!
//! Such a database has the application's tables in `public`, Prisma's `_prisma_migrations`
//! table beside them, and none of JunkQuote's bookkeeping. Its schema is compared with what
//! JunkQuote's migrations promise at the original's two known states: before its "Batch 1"
//! (our version 1) and after it (our version 2). On an exact match (a foreign key the original
//! validated counts as the same as ours added `NOT VALID`: it is the stronger form), those
//! versions are recorded as applied, with the checksums of our files, without running them;
//! Prisma's table moves into the `junkquote` schema as `junkquote.prisma_migrations` (kept, for
//! the record, out of `public`). The runner then goes on from there, up to the tightening
//! migrations, which wait until the backfill has linked every lead and job. A half-applied
//! Prisma migration, or a schema that matches neither state, is refused with the differences
//! named.

use sqlx::{Connection, PgConnection};

use super::catalog::{self, Schema};
use super::{MigrateError, MigrationSet};

/// The original's states JunkQuote recognises, newest first: our versions 2 and 1.
const STATES: &[(i64, &str)] = &[(2, "after its Batch 1"), (1, "before its Batch 1")];

/// What an adoption found and recorded.
#[derive(Debug, Clone)]
pub struct Adopted {
    /// The version recorded as applied.
    pub version: i64,
    /// Which of the original's states it is.
    pub state: &'static str,
    /// Prisma migrations the original had recorded as finished.
    pub prisma_migrations: i64,
}

/// If `public` holds an original JunkQuoteAgent schema and JunkQuote has recorded nothing,
/// records the matching versions as applied (in one transaction) and says which. `None` for an
/// empty database (nothing to adopt).
pub async fn adopt(
    conn: &mut PgConnection,
    set: &MigrationSet,
) -> Result<Option<Adopted>, MigrateError> {
    let mut found = catalog::snapshot(conn).await?;
    let prisma = found.tables.remove("_prisma_migrations").is_some();
    found
        .indexes
        .retain(|_, def| !def.contains("_prisma_migrations("));
    if found.tables.is_empty() && found.enums.is_empty() && !prisma {
        return Ok(None);
    }
    let mut prisma_migrations = 0;
    if prisma {
        let (finished, unfinished): (i64, Vec<String>) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL),
                    coalesce(array_agg(migration_name ORDER BY started_at)
                             FILTER (WHERE finished_at IS NULL AND rolled_back_at IS NULL), '{}')
             FROM public._prisma_migrations",
        )
        .fetch_one(&mut *conn)
        .await?;
        if !unfinished.is_empty() {
            return Err(MigrateError::Unadoptable(format!(
                "Prisma recorded migration(s) {} as started but never finished (a half-applied \
                 step); finish or roll it back with the original's tooling (`prisma migrate \
                 resolve`) and run this again",
                unfinished.join(", ")
            )));
        }
        prisma_migrations = finished;
    }
    let mut closest: Option<(i64, &str, Vec<String>)> = None;
    for &(version, state) in STATES {
        if set.get(version).is_none() {
            continue;
        }
        let mut expected = set.manifest_at(version)?;
        expected.defaults = found.defaults.clone();
        let differences = catalog::diff(
            &loosen(expected),
            &loosen(found.clone()),
            "the original's schema",
        );
        if differences.is_empty() {
            record(conn, set, version, prisma).await?;
            return Ok(Some(Adopted {
                version,
                state,
                prisma_migrations,
            }));
        }
        if closest
            .as_ref()
            .is_none_or(|(_, _, d)| differences.len() < d.len())
        {
            closest = Some((version, state, differences));
        }
    }
    let (version, state, differences) =
        closest.unwrap_or((0, "unknown", vec!["no known state to compare with".into()]));
    Err(MigrateError::Unadoptable(format!(
        "the database has tables but no JunkQuote migrations, and its schema is not the original \
         JunkQuoteAgent's {state} (JunkQuote version {version}){}: {}",
        if prisma {
            ""
        } else {
            " (and it has no _prisma_migrations table)"
        },
        differences.join("; ")
    )))
}

/// A foreign key the original validated is as good as ours added `NOT VALID` (migration 3
/// validates it); compare without the flag.
fn loosen(mut schema: Schema) -> Schema {
    for definition in schema.foreign_keys.values_mut() {
        if let Some(stripped) = definition.strip_suffix(" not valid") {
            *definition = stripped.to_owned();
        }
    }
    schema
}

/// Records versions 1..=`version` as applied, unrun, and moves Prisma's table out of `public`.
async fn record(
    conn: &mut PgConnection,
    set: &MigrationSet,
    version: i64,
    prisma: bool,
) -> Result<(), MigrateError> {
    let mut tx = conn.begin().await?;
    super::ensure_bookkeeping(&mut tx).await?;
    if prisma {
        sqlx::query("ALTER TABLE public._prisma_migrations SET SCHEMA junkquote")
            .execute(&mut *tx)
            .await?;
        sqlx::query("ALTER TABLE junkquote._prisma_migrations RENAME TO prisma_migrations")
            .execute(&mut *tx)
            .await?;
    }
    for m in set.iter().take_while(|m| m.version <= version) {
        sqlx::query(
            "INSERT INTO junkquote.schema_migrations
                 (version, name, up_checksum, down_checksum, duration_ms)
             VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(m.version)
        .bind(&m.name)
        .bind(m.up_checksum())
        .bind(m.down_checksum())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

//! `db verify`: is the live schema what the applied migrations promise?

use sqlx::PgConnection;

use super::{MigrateError, MigrationSet, applied, catalog, current_version, status};

/// The founding document's health check, verbatim: 15 tables in `public` after Batch 1, 7 of
/// them new.
pub const HEALTH_CHECK: &str = "SELECT COUNT(*) AS total_tables, (SELECT COUNT(*) FROM pg_tables \
    WHERE schemaname='public' AND tablename IN ('Customer','Conversation','Message','MemoryNote',\
    'JobItem','JobEvent','CustomerAddress')) AS new_tables FROM pg_tables WHERE schemaname='public';";

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct Report {
    /// The applied version the schema was compared at.
    pub version: i64,
    /// The health check's `total_tables`.
    pub total_tables: i64,
    /// The health check's `new_tables`.
    pub new_tables: i64,
    /// Every difference found, one line each; empty when the schema is as promised.
    pub differences: Vec<String>,
}

/// Compares the live schema with the manifests of the applied migrations.
pub async fn verify(conn: &mut PgConnection, set: &MigrationSet) -> Result<Report, MigrateError> {
    let applied = applied(conn).await?;
    let version = current_version(&applied);
    let mut differences: Vec<String> = status(set, &applied)
        .into_iter()
        .filter_map(|row| {
            let problem = row.problem?;
            Some(format!(
                "migration {} ({}): {problem}",
                row.version, row.name
            ))
        })
        .collect();
    // A tightening migration held for its pre-check may be missing below applied ones.
    for m in set
        .iter()
        .filter(|m| m.version < version && m.requires_check().is_none())
    {
        if !applied.iter().any(|a| a.version == m.version) {
            differences.push(format!(
                "migration {} ({}) was skipped: later migrations are applied but it is not",
                m.version, m.name
            ));
        }
    }
    if set.get(version).is_some() || version == 0 {
        let versions: Vec<i64> = applied.iter().map(|a| a.version).collect();
        let mut expected = set.manifest_of(&versions)?;
        let found = catalog::snapshot(conn).await?;
        // Manifests do not state column defaults.
        expected.defaults = found.defaults.clone();
        differences.extend(catalog::diff(&expected, &found, "the manifest"));
    }
    let (total_tables, new_tables): (i64, i64) =
        sqlx::query_as(HEALTH_CHECK).fetch_one(&mut *conn).await?;
    Ok(Report {
        version,
        total_tables,
        new_tables,
        differences,
    })
}

//! Migration files: the built-in set (compiled into the binary) or a directory of them.
//!
//! A migration is `NNNN_name.up.sql` with its `NNNN_name.down.sql`, and, for the built-in ones,
//! `NNNN_name.manifest.toml`: what the migration promises about the schema, which `db verify`
//! checks. A file whose first line is `-- junkquote:no-transaction` runs statement by statement
//! outside a transaction (for `CREATE INDEX CONCURRENTLY`); such files must be safe to re-run.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::MigrateError;
use super::catalog::Schema;

/// The directive that makes a migration file run outside a transaction.
pub const NO_TRANSACTION: &str = "-- junkquote:no-transaction";
/// The directive that makes a migration wait for a data pre-check (`-- junkquote:requires-check
/// NAME` among the file's opening comment lines): see [`crate::takeover::tighten`].
pub const REQUIRES_CHECK: &str = "-- junkquote:requires-check";

/// The built-in migration files, embedded by `build.rs`: (file name, contents).
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// One numbered migration.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Its number; versions increase in the order migrations apply.
    pub version: i64,
    /// The name after the number (`batch1_context_memory`).
    pub name: String,
    /// The `.up.sql` text.
    pub up: String,
    /// The `.down.sql` text, if there is one.
    pub down: Option<String>,
    /// What the migration promises about the schema, if it has a manifest.
    pub manifest: Option<ManifestDelta>,
}

impl Migration {
    /// The SHA-256 of the `.up.sql` file, hex.
    pub fn up_checksum(&self) -> String {
        checksum(&self.up)
    }

    /// The SHA-256 of the `.down.sql` file, hex (empty when there is none).
    pub fn down_checksum(&self) -> String {
        self.down.as_deref().map(checksum).unwrap_or_default()
    }

    /// The data pre-check this migration waits for, if its file names one: a constraint that
    /// existing rows must already satisfy (the backfill makes them), checked before it runs.
    pub fn requires_check(&self) -> Option<&str> {
        requires_check(&self.up)
    }

    /// `0002_batch1_context_memory`, as the files are named.
    pub fn file_stem(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

/// Whether `sql` must run outside a transaction.
pub fn is_no_transaction(sql: &str) -> bool {
    sql.lines()
        .next()
        .is_some_and(|l| l.trim() == NO_TRANSACTION)
}

/// The pre-check named in the opening comment lines of `sql`, if any.
pub fn requires_check(sql: &str) -> Option<&str> {
    sql.lines()
        .map(str::trim)
        .take_while(|l| l.starts_with("--"))
        .find_map(|l| l.strip_prefix(REQUIRES_CHECK))
        .map(str::trim)
        .filter(|name| !name.is_empty())
}

fn checksum(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An ordered set of migrations.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    migrations: Vec<Migration>,
}

impl MigrationSet {
    /// The migrations compiled into this binary.
    pub fn builtin() -> Result<Self, MigrateError> {
        let files = BUILTIN
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()));
        Self::from_files(files, "built-in migrations")
    }

    /// The migrations in a directory.
    pub fn from_dir(dir: &Path) -> Result<Self, MigrateError> {
        let source = |message: String| MigrateError::Source {
            path: dir.display().to_string(),
            message,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| source(e.to_string()))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| source(e.to_string()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_file() {
                continue;
            }
            let text = std::fs::read_to_string(entry.path())
                .map_err(|e| source(format!("{name}: {e}")))?;
            files.push((name, text));
        }
        Self::from_files(files, &dir.display().to_string())
    }

    fn from_files(
        files: impl IntoIterator<Item = (String, String)>,
        origin: &str,
    ) -> Result<Self, MigrateError> {
        let source = |message: String| MigrateError::Source {
            path: origin.to_owned(),
            message,
        };
        let mut by_version: BTreeMap<i64, Migration> = BTreeMap::new();
        let mut downs = Vec::new();
        let mut manifests = Vec::new();
        for (file, text) in files {
            // Only files that start with a number are migrations; a README may sit beside them.
            let Some((number, rest)) = file.split_once('_') else {
                continue;
            };
            let Ok(version) = number.parse::<i64>() else {
                continue;
            };
            let (name, kind) = rest
                .strip_suffix(".up.sql")
                .map(|n| (n, "up"))
                .or_else(|| rest.strip_suffix(".down.sql").map(|n| (n, "down")))
                .or_else(|| rest.strip_suffix(".manifest.toml").map(|n| (n, "manifest")))
                .ok_or_else(|| {
                    source(format!(
                        "{file}: not a migration file name (expected NNNN_name.up.sql, \
                         NNNN_name.down.sql or NNNN_name.manifest.toml)"
                    ))
                })?;
            match kind {
                "up" => {
                    let migration = Migration {
                        version,
                        name: name.to_owned(),
                        up: text,
                        down: None,
                        manifest: None,
                    };
                    if let Some(other) = by_version.insert(version, migration) {
                        return Err(source(format!(
                            "two migrations numbered {version}: {} and {name}",
                            other.name
                        )));
                    }
                }
                "down" => downs.push((version, name.to_owned(), file, text)),
                _ => manifests.push((version, name.to_owned(), file, text)),
            }
        }
        for (version, name, file, text) in downs {
            match by_version.get_mut(&version) {
                Some(m) if m.name == name => m.down = Some(text),
                _ => return Err(source(format!("{file} has no matching .up.sql"))),
            }
        }
        for (version, name, file, text) in manifests {
            let delta = toml::from_str::<ManifestDelta>(&text)
                .map_err(|e| source(format!("{file}: {}", e.message())))?;
            match by_version.get_mut(&version) {
                Some(m) if m.name == name => m.manifest = Some(delta),
                _ => return Err(source(format!("{file} has no matching .up.sql"))),
            }
        }
        Ok(Self {
            migrations: by_version.into_values().collect(),
        })
    }

    /// The migrations, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Migration> {
        self.migrations.iter()
    }

    /// The migration numbered `version`.
    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.version == version)
    }

    /// The highest version, or 0 for an empty set.
    pub fn latest(&self) -> i64 {
        self.migrations.last().map_or(0, |m| m.version)
    }

    /// Whether `version` names a state migrations can go to: 0 (nothing applied) or a migration.
    pub fn is_known(&self, version: i64) -> bool {
        version == 0 || self.get(version).is_some()
    }

    /// The versions one can migrate to, for error messages: "0 (empty), 1, 2, 3".
    pub fn known_versions(&self) -> String {
        std::iter::once("0 (empty)".to_owned())
            .chain(self.migrations.iter().map(|m| m.version.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The schema the migrations up to `version` promise, from their manifests.
    pub fn manifest_at(&self, version: i64) -> Result<Schema, MigrateError> {
        let versions: Vec<i64> = self
            .migrations
            .iter()
            .map(|m| m.version)
            .take_while(|v| *v <= version)
            .collect();
        self.manifest_of(&versions)
    }

    /// The schema the migrations `versions` promise together, applied in order (a set: the
    /// tightening may be missing below later migrations).
    pub fn manifest_of(&self, versions: &[i64]) -> Result<Schema, MigrateError> {
        let mut schema = Schema::default();
        for m in self
            .migrations
            .iter()
            .filter(|m| versions.contains(&m.version))
        {
            let delta = m.manifest.as_ref().ok_or_else(|| MigrateError::Source {
                path: m.file_stem(),
                message: "has no .manifest.toml, so the schema cannot be verified".into(),
            })?;
            delta.apply_to(&mut schema);
        }
        Ok(schema)
    }
}

/// What one migration changes in the schema, as written in its `.manifest.toml`. An entry whose
/// value is `"none"` removes what an earlier manifest promised.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDelta {
    #[serde(default)]
    enums: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    drop_enums: Vec<String>,
    #[serde(default)]
    tables: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    drop_tables: Vec<String>,
    #[serde(default)]
    foreign_keys: BTreeMap<String, String>,
    #[serde(default)]
    checks: BTreeMap<String, String>,
    #[serde(default)]
    indexes: BTreeMap<String, String>,
    #[serde(default)]
    functions: BTreeMap<String, String>,
    #[serde(default)]
    triggers: BTreeMap<String, String>,
    #[serde(default)]
    views: BTreeMap<String, String>,
    #[serde(default)]
    sequences: BTreeMap<String, String>,
}

impl ManifestDelta {
    fn apply_to(&self, schema: &mut Schema) {
        fn merge(target: &mut BTreeMap<String, String>, delta: &BTreeMap<String, String>) {
            for (key, value) in delta {
                if value == "none" {
                    target.remove(key);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        schema.enums.extend(self.enums.clone());
        for name in &self.drop_enums {
            schema.enums.remove(name);
        }
        for (table, columns) in &self.tables {
            merge(schema.tables.entry(table.clone()).or_default(), columns);
        }
        for name in &self.drop_tables {
            schema.tables.remove(name);
        }
        merge(&mut schema.foreign_keys, &self.foreign_keys);
        merge(&mut schema.checks, &self.checks);
        merge(&mut schema.indexes, &self.indexes);
        merge(&mut schema.functions, &self.functions);
        merge(&mut schema.triggers, &self.triggers);
        merge(&mut schema.views, &self.views);
        merge(&mut schema.sequences, &self.sequences);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_migrations_are_numbered_reversible_and_described() {
        let set = MigrationSet::builtin().expect("built-in migrations load");
        let versions: Vec<i64> = set.iter().map(|m| m.version).collect();
        assert_eq!(versions[..2], [1, 2]);
        for m in set.iter() {
            assert!(m.down.is_some(), "{} has no .down.sql", m.file_stem());
            assert!(m.manifest.is_some(), "{} has no manifest", m.file_stem());
        }
        let at2 = set.manifest_at(2).expect("manifest");
        assert_eq!(at2.tables.len(), 15);
        assert_eq!(set.manifest_at(1).expect("manifest").tables.len(), 8);
    }

    #[test]
    fn a_down_without_its_up_is_refused() {
        let files = [("0001_a.down.sql".to_owned(), String::new())];
        let err = MigrationSet::from_files(files, "dir").expect_err("refused");
        assert!(
            err.to_string()
                .contains("0001_a.down.sql has no matching .up.sql")
        );
    }

    #[test]
    fn the_no_transaction_directive_must_open_the_file() {
        assert!(is_no_transaction(
            "-- junkquote:no-transaction\nCREATE INDEX CONCURRENTLY"
        ));
        assert!(!is_no_transaction("SELECT 1;\n-- junkquote:no-transaction"));
    }

    #[test]
    fn a_required_check_is_read_from_the_opening_comments_only() {
        let sql = "-- junkquote:no-transaction\n-- junkquote:requires-check leads-and-jobs-linked\nSELECT 1;";
        assert_eq!(requires_check(sql), Some("leads-and-jobs-linked"));
        assert_eq!(
            requires_check("SELECT 1;\n-- junkquote:requires-check x"),
            None
        );
        assert_eq!(
            requires_check("-- junkquote:requires-check \nSELECT 1;"),
            None
        );
    }
}

//! `migrate lint`: what would go wrong with these migrations on a live database?
//!
//! Statically, with the squawk linter's lock rules (statements that hold long locks on tables
//! that already exist) and a check for missing `.down.sql` files. Then by replaying every
//! migration on a throwaway database: foreign keys whose column type differs from the key they
//! reference (PostgreSQL refuses some mismatches, text against uuid for one, and accepts others,
//! int against bigint; both are reported with table, column and both types), indexes made
//! redundant by another whose leading columns they repeat, and `.down.sql` files that do not
//! bring back exactly the schema from before their migration.

use std::collections::BTreeSet;

use sqlx::{Connection, PgConnection};
use squawk_linter::{Linter, Rule};

use super::catalog::{self, Schema};
use super::sql::{self, Statement, Token};
use super::{MigrateError, Migration, MigrationSet, StatementFailure, execute, is_no_transaction};

/// Squawk's rules about locks and rewrites; the others (naming, type preferences) are matters of
/// taste this lint does not enforce. `lock_timeout` is not required in files because the runner
/// sets it for every migration.
const LOCK_RULES: &[Rule] = &[
    Rule::RequireConcurrentIndexCreation,
    Rule::RequireConcurrentIndexDeletion,
    Rule::BanConcurrentIndexCreationInTransaction,
    Rule::ConstraintMissingNotValid,
    Rule::AddingForeignKeyConstraint,
    Rule::AddingFieldWithDefault,
    Rule::AddingNotNullableField,
    Rule::AddingRequiredField,
    Rule::AddingSerialPrimaryKeyField,
    Rule::ChangingColumnType,
    Rule::DisallowedUniqueConstraint,
    Rule::RequireConcurrentReindex,
];

/// One problem the lint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file it is in (`0002_batch1.up.sql`).
    pub file: String,
    /// The line, when it points at one.
    pub line: Option<usize>,
    /// A short rule name (`foreign-key-type`, `missing-down`, …).
    pub rule: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}: {}", self.file, self.rule, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.rule, self.message),
        }
    }
}

/// Lints `set`, replaying it on `conn`, which must be an empty throwaway database.
pub async fn lint(
    set: &MigrationSet,
    conn: &mut PgConnection,
) -> Result<Vec<Finding>, MigrateError> {
    let mut findings = Vec::new();
    for m in set.iter() {
        findings.extend(static_findings(m));
    }

    // Replay forward, keeping the schema before each migration for the reversibility check.
    let mut before = vec![catalog::snapshot(conn).await?];
    let mut seen_fks = BTreeSet::new();
    let mut applied: Vec<&Migration> = Vec::new();
    for m in set.iter() {
        let file = format!("{}.up.sql", m.file_stem());
        if let Err(failure) = apply(conn, &m.up).await? {
            findings.push(replay_failure(&failure, &file));
            break;
        }
        for fk in catalog::foreign_keys(conn).await? {
            if seen_fks.insert(fk.name.clone()) && fk.column_types != fk.ref_types {
                findings.push(Finding {
                    file: file.clone(),
                    line: None,
                    rule: "foreign-key-type".into(),
                    message: type_mismatch(
                        &fk.table,
                        &fk.columns.join(", "),
                        &fk.column_types.join(", "),
                        &fk.ref_table,
                        &fk.ref_columns.join(", "),
                        &fk.ref_types.join(", "),
                    ),
                });
            }
        }
        before.push(catalog::snapshot(conn).await?);
        applied.push(m);
    }
    findings.extend(redundant_indexes(conn, &before, &applied).await?);

    // Replay backward: each down must restore the schema from before its up.
    for (i, m) in applied.iter().enumerate().rev() {
        let Some(down) = &m.down else { break };
        let file = format!("{}.down.sql", m.file_stem());
        if let Err(failure) = apply(conn, down).await? {
            findings.push(replay_failure(&failure, &file));
            break;
        }
        let restored = catalog::snapshot(conn).await?;
        let differences = catalog::diff(&before[i], &restored, "the schema from before");
        if !differences.is_empty() {
            findings.push(Finding {
                file,
                line: None,
                rule: "down-not-reversing".into(),
                message: format!(
                    "does not restore the schema from before migration {}: {}",
                    m.version,
                    differences.join("; ")
                ),
            });
            break;
        }
    }
    findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(findings)
}

/// Findings that need no database: missing down files and squawk's lock rules.
fn static_findings(m: &Migration) -> Vec<Finding> {
    let mut findings = Vec::new();
    if m.down.is_none() {
        findings.push(Finding {
            file: format!("{}.up.sql", m.file_stem()),
            line: None,
            rule: "missing-down".into(),
            message: format!(
                "has no {}.down.sql; every migration must be reversible",
                m.file_stem()
            ),
        });
    }
    let files = [("up", Some(&m.up)), ("down", m.down.as_ref())];
    for (which, text) in files {
        let Some(text) = text else { continue };
        let parse = squawk_syntax::SourceFile::parse(text);
        let mut linter = Linter::from(LOCK_RULES.iter().copied());
        linter.settings.assume_in_transaction = !is_no_transaction(text);
        for v in linter.lint(&parse, text) {
            let offset = usize::from(v.text_range.start()).min(text.len());
            let mut message = v.message.clone();
            if let Some(help) = &v.help {
                message.push_str(&format!(" ({help})"));
            }
            findings.push(Finding {
                file: format!("{}.{which}.sql", m.file_stem()),
                line: Some(text[..offset].matches('\n').count() + 1),
                rule: v.code.to_string(),
                message,
            });
        }
    }
    findings
}

fn type_mismatch(
    table: &str,
    column: &str,
    column_type: &str,
    ref_table: &str,
    ref_column: &str,
    ref_type: &str,
) -> String {
    format!(
        "foreign key column \"{table}\".{column} is {column_type} but references \
         \"{ref_table}\".{ref_column}, which is {ref_type}; declare \"{table}\".{column} as \
         {ref_type}"
    )
}

/// A finding for a file whose replay PostgreSQL refused.
fn replay_failure(failure: &StatementFailure, file: &str) -> Finding {
    let detail = failure.detail().unwrap_or_default();
    let message = (failure.code().as_deref() == Some("42804"))
        .then(|| incompatible_key_message(&failure.statement, detail))
        .flatten();
    match message {
        Some(message) => Finding {
            file: file.to_owned(),
            line: Some(failure.statement.line),
            rule: "foreign-key-type".into(),
            message,
        },
        None => Finding {
            file: file.to_owned(),
            line: Some(failure.line()),
            rule: "replay-failed".into(),
            message: format!("fails on a fresh database: {failure}"),
        },
    }
}

/// Runs a migration file's statements, in a transaction unless the file says otherwise. The
/// outer error is a broken connection; the inner one the statement PostgreSQL refused.
async fn apply(
    conn: &mut PgConnection,
    text: &str,
) -> Result<Result<(), StatementFailure>, MigrateError> {
    let statements = sql::split(text);
    if is_no_transaction(text) {
        return Ok(execute(conn, &statements).await);
    }
    let mut tx = conn.begin().await?;
    let result = execute(&mut tx, &statements).await;
    match result {
        Ok(()) => tx.commit().await?,
        Err(_) => tx.rollback().await?,
    }
    Ok(result)
}

/// Turns PostgreSQL's `Key columns "lead_id" and "id" are of incompatible types: text and uuid.`
/// into a message naming both tables, reading them from the statement.
fn incompatible_key_message(statement: &Statement, detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("Key columns \"")?;
    let (column, rest) = rest.split_once("\" and \"")?;
    let (ref_column, rest) = rest.split_once("\" are of incompatible types: ")?;
    let (column_type, ref_type) = rest.trim_end_matches('.').split_once(" and ")?;
    let tokens = &statement.tokens;
    let table = statement_table(tokens).unwrap_or_else(|| "?".into());
    let ref_table = referenced_table(tokens, column).unwrap_or_else(|| "?".into());
    Some(type_mismatch(
        &table,
        column,
        column_type,
        &ref_table,
        ref_column,
        ref_type,
    ))
}

/// The table a `CREATE TABLE` or `ALTER TABLE` statement is about.
fn statement_table(tokens: &[Token]) -> Option<String> {
    if !(tokens.first()?.is("create") || tokens.first()?.is("alter")) {
        return None;
    }
    let mut i = tokens.iter().position(|t| t.is("table"))? + 1;
    while tokens
        .get(i)
        .is_some_and(|t| t.is("if") || t.is("not") || t.is("exists") || t.is("only"))
    {
        i += 1;
    }
    sql::qualified_name(tokens, i).map(|(name, _)| name)
}

/// The table named after the `REFERENCES` that belongs to `column`: the one in the same element
/// of the column or constraint list as the column's name.
fn referenced_table(tokens: &[Token], column: &str) -> Option<String> {
    for (j, token) in tokens.iter().enumerate() {
        if !token.is("references") {
            continue;
        }
        // Walk back to the start of this element: a `,` at the same depth or an open `(`.
        let mut depth = 0i32;
        let mut start = 0;
        for k in (0..j).rev() {
            match tokens[k] {
                Token::Punct(')') => depth += 1,
                Token::Punct('(') if depth == 0 => {
                    start = k + 1;
                    break;
                }
                Token::Punct('(') => depth -= 1,
                Token::Punct(',') if depth == 0 => {
                    start = k + 1;
                    break;
                }
                _ => {}
            }
        }
        if tokens[start..j].iter().any(|t| t.ident() == Some(column)) {
            return sql::qualified_name(tokens, j + 1).map(|(name, _)| name);
        }
    }
    None
}

/// Indexes whose key columns are a leading part of another index's on the same table (same
/// method and predicate): the longer one serves every query the shorter one does. A unique
/// index is kept unless another is exactly the same.
async fn redundant_indexes(
    conn: &mut PgConnection,
    snapshots: &[Schema],
    applied: &[&Migration],
) -> Result<Vec<Finding>, MigrateError> {
    let indexes = catalog::indexes(conn).await?;
    let mut findings = Vec::new();
    for a in &indexes {
        let covering = indexes.iter().find(|b| covers(b, a));
        if let Some(b) = covering {
            // Blame the migration that created the redundant index.
            let file = applied
                .iter()
                .zip(snapshots.iter().skip(1))
                .find(|(_, s)| s.indexes.contains_key(&a.name))
                .map(|(m, _)| format!("{}.up.sql", m.file_stem()))
                .unwrap_or_default();
            findings.push(Finding {
                file,
                line: None,
                rule: "redundant-index".into(),
                message: format!(
                    "index \"{}\" on \"{}\"({}) is redundant: \"{}\" on ({}) starts with the same \
                     columns and serves the same queries; drop \"{}\"",
                    a.name,
                    a.table,
                    a.columns.join(", "),
                    b.name,
                    b.columns.join(", "),
                    a.name
                ),
            });
        }
    }
    Ok(findings)
}

/// Whether index `b` makes index `a` unnecessary.
fn covers(b: &catalog::Index, a: &catalog::Index) -> bool {
    if b.name == a.name
        || b.table != a.table
        || b.method != a.method
        || b.predicate != a.predicate
        || !b.columns.starts_with(&a.columns)
    {
        return false;
    }
    let a_unique = a.unique || a.primary;
    let b_unique = b.unique || b.primary;
    if b.columns.len() > a.columns.len() {
        // A unique index enforces something the longer one does not.
        return !a_unique;
    }
    // The same columns: a duplicate. Keep the unique one, else the primary key, else the first
    // by name, so that only one of a pair is reported.
    match (a_unique, b_unique) {
        (false, true) => true,
        (true, false) => false,
        _ => (b.primary && !a.primary) || (b.primary == a.primary && b.name < a.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_both_tables_of_an_incompatible_key_in_create_table() {
        let statement = &sql::split(
            "CREATE TABLE \"Note\" (id uuid PRIMARY KEY, author text, \
             lead_id text REFERENCES \"Lead\" (id), other uuid REFERENCES \"Other\" (id))",
        )[0];
        let message = incompatible_key_message(
            statement,
            "Key columns \"lead_id\" and \"id\" are of incompatible types: text and uuid.",
        )
        .expect("recognised");
        assert_eq!(
            message,
            "foreign key column \"Note\".lead_id is text but references \"Lead\".id, which is \
             uuid; declare \"Note\".lead_id as uuid"
        );
    }

    #[test]
    fn names_both_tables_of_an_incompatible_key_in_alter_table() {
        let statement = &sql::split(
            "ALTER TABLE ONLY public.\"Job\" ADD CONSTRAINT x FOREIGN KEY (customer_id) \
             REFERENCES public.\"Customer\"(id)",
        )[0];
        let message = incompatible_key_message(
            statement,
            "Key columns \"customer_id\" and \"id\" are of incompatible types: text and uuid.",
        )
        .expect("recognised");
        assert!(message.starts_with(
            "foreign key column \"Job\".customer_id is text but references \"Customer\".id"
        ));
    }

    #[test]
    fn squawk_flags_a_blocking_index_on_an_existing_table() {
        let m = Migration {
            version: 9,
            name: "x".into(),
            up: "CREATE INDEX lead_phone ON \"Lead\" (phone);".into(),
            down: Some("DROP INDEX CONCURRENTLY lead_phone;".into()),
            manifest: None,
        };
        let findings = static_findings(&m);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, "require-concurrent-index-creation");
        assert_eq!(findings[0].line, Some(1));
    }
}

//! The live schema of `public`, read from PostgreSQL's catalogs and rendered in the same short
//! text form the manifests use, so that comparing the two is comparing strings.

use std::collections::BTreeMap;

use sqlx::PgConnection;

/// A schema: enums, tables with their columns, foreign keys, checks and indexes.
///
/// Columns read `"uuid not null"`; foreign keys `"Quote(lead_id) -> Lead(id) on delete cascade"`
/// (with `" not valid"` until validated); indexes `"unique Lead(messengerPsid)"`,
/// `"primary key Lead(id)"` or `"MemoryNote(expires_at) where (expires_at IS NOT NULL)"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    /// Enum name → labels in order.
    pub enums: BTreeMap<String, Vec<String>>,
    /// Table name → column name → type and nullability.
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    /// Constraint name → definition.
    pub foreign_keys: BTreeMap<String, String>,
    /// Check constraint name → `Table: CHECK (…)`.
    pub checks: BTreeMap<String, String>,
    /// Index name → definition.
    pub indexes: BTreeMap<String, String>,
    /// `Table.column` → default expression. Compared by the lint's reversibility check; the
    /// manifests leave defaults out, so `db verify` does not check them.
    pub defaults: BTreeMap<String, String>,
    /// `name(argument types)` → result type, for functions of `public` (not an extension's).
    pub functions: BTreeMap<String, String>,
    /// `Table.trigger` → definition.
    pub triggers: BTreeMap<String, String>,
    /// View name → definition.
    pub views: BTreeMap<String, String>,
    /// Sequences other than those behind identity columns.
    pub sequences: BTreeMap<String, String>,
}

/// A foreign key with the types of both sides, which the lint compares.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    /// The constraint's name.
    pub name: String,
    /// The referencing table.
    pub table: String,
    /// The referencing columns.
    pub columns: Vec<String>,
    /// Their types, as format_type() prints them.
    pub column_types: Vec<String>,
    /// The referenced table.
    pub ref_table: String,
    /// The referenced columns.
    pub ref_columns: Vec<String>,
    /// Their types.
    pub ref_types: Vec<String>,
    /// `cascade`, `set null`, `restrict`, `no action` or `set default`.
    pub on_delete: String,
    /// False while the constraint is NOT VALID.
    pub validated: bool,
}

impl ForeignKey {
    fn render(&self) -> String {
        format!(
            "{}({}) -> {}({}) on delete {}{}",
            self.table,
            self.columns.join(", "),
            self.ref_table,
            self.ref_columns.join(", "),
            self.on_delete,
            if self.validated { "" } else { " not valid" }
        )
    }
}

/// An index, parsed enough for the redundancy check.
#[derive(Debug, Clone)]
pub struct Index {
    /// The index's name.
    pub name: String,
    /// Its table.
    pub table: String,
    /// Key columns or expressions, in order (with `DESC` or `NULLS FIRST`/`LAST` when not the
    /// default order).
    pub columns: Vec<String>,
    /// Non-key columns (`INCLUDE`).
    pub include: Vec<String>,
    /// Whether it backs a primary key.
    pub primary: bool,
    /// Whether it is unique.
    pub unique: bool,
    /// The access method (`btree`, `gin`, …).
    pub method: String,
    /// The partial-index predicate.
    pub predicate: Option<String>,
    /// False for an index left invalid by a failed concurrent build.
    pub valid: bool,
}

impl Index {
    fn render(&self) -> String {
        let mut out = String::new();
        if self.primary {
            out.push_str("primary key ");
        } else if self.unique {
            out.push_str("unique ");
        }
        out.push_str(&format!("{}({})", self.table, self.columns.join(", ")));
        if !self.include.is_empty() {
            out.push_str(&format!(" include ({})", self.include.join(", ")));
        }
        if self.method != "btree" {
            out.push_str(&format!(" using {}", self.method));
        }
        if let Some(predicate) = &self.predicate {
            out.push_str(&format!(" where {predicate}"));
        }
        if !self.valid {
            out.push_str(" invalid");
        }
        out
    }
}

/// Reads the schema of `public`.
pub async fn snapshot(conn: &mut PgConnection) -> sqlx::Result<Schema> {
    let mut schema = Schema::default();

    let enums: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT t.typname::text, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
         FROM pg_type t
         JOIN pg_enum e ON e.enumtypid = t.oid
         JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = 'public'
         GROUP BY t.typname",
    )
    .fetch_all(&mut *conn)
    .await?;
    schema.enums.extend(enums);

    let columns: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (table, column, ty, not_null) in columns {
        let spec = if not_null {
            format!("{ty} not null")
        } else {
            ty
        };
        schema.tables.entry(table).or_default().insert(column, spec);
    }

    for fk in foreign_keys(conn).await? {
        schema.foreign_keys.insert(fk.name.clone(), fk.render());
    }

    let checks: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.conname::text, t.relname::text, pg_get_constraintdef(c.oid, true)
         FROM pg_constraint c
         JOIN pg_class t ON t.oid = c.conrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE c.contype = 'c' AND n.nspname = 'public'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (name, table, definition) in checks {
        schema.checks.insert(name, format!("{table}: {definition}"));
    }

    for index in indexes(conn).await? {
        schema.indexes.insert(index.name.clone(), index.render());
    }

    let defaults: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname || '.' || a.attname, pg_get_expr(d.adbin, d.adrelid, true)
         FROM pg_attrdef d
         JOIN pg_class c ON c.oid = d.adrelid
         JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND NOT a.attisdropped",
    )
    .fetch_all(&mut *conn)
    .await?;
    schema.defaults.extend(defaults);

    let functions: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                coalesce(pg_get_function_result(p.oid), 'procedure')
         FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'public'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                             AND d.deptype = 'e')",
    )
    .fetch_all(&mut *conn)
    .await?;
    schema.functions.extend(functions);

    let triggers: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid, true)
         FROM pg_trigger t
         JOIN pg_class c ON c.oid = t.tgrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND NOT t.tgisinternal",
    )
    .fetch_all(&mut *conn)
    .await?;
    schema.triggers.extend(triggers);

    // Views, and sequences not owned by an identity column or an extension.
    let relations: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text,
                CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) ELSE '' END
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm', 'S')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                             AND d.deptype IN ('i', 'e'))",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (name, kind, definition) in relations {
        if kind == "S" {
            schema.sequences.insert(name, "sequence".to_owned());
        } else {
            schema.views.insert(name, definition);
        }
    }
    Ok(schema)
}

/// The foreign keys of `public`, with column types.
pub async fn foreign_keys(conn: &mut PgConnection) -> sqlx::Result<Vec<ForeignKey>> {
    type Row = (
        String,
        String,
        String,
        String,
        bool,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT c.conname::text, t.relname::text, r.relname::text,
                CASE c.confdeltype WHEN 'a' THEN 'no action' WHEN 'r' THEN 'restrict'
                     WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null' ELSE 'set default' END,
                c.convalidated,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(num, ord)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num
                      ORDER BY k.ord),
                ARRAY(SELECT format_type(a.atttypid, a.atttypmod)
                      FROM unnest(c.conkey) WITH ORDINALITY k(num, ord)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num
                      ORDER BY k.ord),
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(num, ord)
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num
                      ORDER BY k.ord),
                ARRAY(SELECT format_type(a.atttypid, a.atttypmod)
                      FROM unnest(c.confkey) WITH ORDINALITY k(num, ord)
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num
                      ORDER BY k.ord)
         FROM pg_constraint c
         JOIN pg_class t ON t.oid = c.conrelid
         JOIN pg_class r ON r.oid = c.confrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE c.contype = 'f' AND n.nspname = 'public'
         ORDER BY t.relname, c.conname",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                name,
                table,
                ref_table,
                on_delete,
                validated,
                columns,
                column_types,
                ref_columns,
                ref_types,
            )| {
                ForeignKey {
                    name,
                    table,
                    columns,
                    column_types,
                    ref_table,
                    ref_columns,
                    ref_types,
                    on_delete,
                    validated,
                }
            },
        )
        .collect())
}

/// The indexes of `public`.
pub async fn indexes(conn: &mut PgConnection) -> sqlx::Result<Vec<Index>> {
    type Row = (
        String,
        String,
        bool,
        bool,
        bool,
        String,
        Vec<String>,
        Vec<String>,
        Option<String>,
    );
    // indoption bit 1 is DESC, bit 2 NULLS FIRST; only orders other than the default are shown.
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT i.relname::text, t.relname::text, x.indisprimary, x.indisunique, x.indisvalid,
                am.amname::text,
                ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
                             || CASE WHEN x.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END
                             || CASE WHEN x.indoption[k - 1] & 3 = 2 THEN ' NULLS FIRST'
                                     WHEN x.indoption[k - 1] & 3 = 1 THEN ' NULLS LAST'
                                     ELSE '' END
                      FROM generate_series(1, x.indnkeyatts) k ORDER BY k),
                ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
                      FROM generate_series(x.indnkeyatts + 1, x.indnatts) k ORDER BY k),
                pg_get_expr(x.indpred, x.indrelid, true)
         FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_am am ON am.oid = i.relam
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = 'public'
         ORDER BY t.relname, i.relname",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(name, table, primary, unique, valid, method, columns, include, predicate)| Index {
                name,
                table,
                columns: columns.iter().map(|c| unquote(c)).collect(),
                include: include.iter().map(|c| unquote(c)).collect(),
                primary,
                unique,
                method,
                predicate,
                valid,
            },
        )
        .collect())
}

/// `"messengerPsid"` → `messengerPsid`; expressions are left as they are.
fn unquote(column: &str) -> String {
    column
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .filter(|c| !c.contains('"'))
        .unwrap_or(column)
        .to_owned()
}

/// Every difference between the `expected` schema and the `found` one, one line each;
/// `baseline` names the expected one in messages ("the manifest").
pub fn diff(expected: &Schema, found: &Schema, baseline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let enums = |m: &BTreeMap<String, Vec<String>>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.clone(), format!("({})", v.join(", "))))
            .collect()
    };
    diff_map(
        &mut out,
        "enum",
        baseline,
        &enums(&expected.enums),
        &enums(&found.enums),
    );
    for (table, columns) in &expected.tables {
        match found.tables.get(table) {
            None => out.push(format!("table \"{table}\" is missing")),
            Some(live) => diff_map(
                &mut out,
                &format!("column \"{table}\"."),
                baseline,
                columns,
                live,
            ),
        }
    }
    for table in found
        .tables
        .keys()
        .filter(|t| !expected.tables.contains_key(*t))
    {
        out.push(format!("table \"{table}\" is not in {baseline}"));
    }
    diff_map(
        &mut out,
        "foreign key",
        baseline,
        &expected.foreign_keys,
        &found.foreign_keys,
    );
    diff_map(&mut out, "check", baseline, &expected.checks, &found.checks);
    diff_map(
        &mut out,
        "index",
        baseline,
        &expected.indexes,
        &found.indexes,
    );
    diff_map(
        &mut out,
        "default",
        baseline,
        &expected.defaults,
        &found.defaults,
    );
    diff_map(
        &mut out,
        "function",
        baseline,
        &expected.functions,
        &found.functions,
    );
    diff_map(
        &mut out,
        "trigger",
        baseline,
        &expected.triggers,
        &found.triggers,
    );
    diff_map(&mut out, "view", baseline, &expected.views, &found.views);
    diff_map(
        &mut out,
        "sequence",
        baseline,
        &expected.sequences,
        &found.sequences,
    );
    out
}

fn diff_map(
    out: &mut Vec<String>,
    what: &str,
    baseline: &str,
    expected: &BTreeMap<String, String>,
    found: &BTreeMap<String, String>,
) {
    // Columns read `column "Lead".phone`; other kinds `index "Lead_pkey"`.
    let label = |name: &str| {
        if what.ends_with('.') {
            format!("{what}{name}")
        } else {
            format!("{what} \"{name}\"")
        }
    };
    for (name, want) in expected {
        match found.get(name) {
            None => out.push(format!("{} is missing (expected {want})", label(name))),
            Some(have) if have != want => {
                out.push(format!("{}: expected {want}, found {have}", label(name)));
            }
            Some(_) => {}
        }
    }
    for (name, have) in found {
        if !expected.contains_key(name) {
            out.push(format!("{} is not in {baseline} ({have})", label(name)));
        }
    }
}

//! Migrations against a real PostgreSQL: the schema they build, reverting, checksums, the
//! advisory lock, failures, and the commands that drive them.

use std::time::Duration;

use crate::helpers;
use crate::helpers::{
    TestDb, copy_of_builtin_migrations, junkquote, one_line_error, stdout, version,
};
use junkquote::db::migrate::{
    self, MigrateError, MigrateOptions, MigrationSet, Progress, catalog, verify,
};
use sqlx::{Connection, Executor};

const LEGACY_TABLES: [&str; 8] = [
    "Approval",
    "Audit",
    "CalendarSyncState",
    "Config",
    "Job",
    "Lead",
    "LeadAttachment",
    "Quote",
];

async fn public_tables(db: &TestDb) -> Vec<String> {
    let mut conn = db.conn().await;
    sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list tables")
}

#[tokio::test]
async fn batch1_passes_the_founding_health_check_and_verifies() {
    let db = TestDb::empty().await;
    let out = junkquote(&["migrate", "up", "--to", "2"], Some(&db.url), None);
    assert!(out.status.success(), "{}", helpers::stderr(&out));

    let mut conn = db.conn().await;
    let (total, new): (i64, i64) = sqlx::query_as(verify::HEALTH_CHECK)
        .fetch_one(&mut conn)
        .await
        .expect("health check");
    assert_eq!((total, new), (15, 7));
    assert_eq!(version(&mut conn).await, 2);
    // Bookkeeping is outside `public`.
    let schema: String =
        sqlx::query_scalar("SELECT to_regclass('junkquote.schema_migrations')::text")
            .fetch_one(&mut conn)
            .await
            .expect("bookkeeping table");
    assert_eq!(schema, "junkquote.schema_migrations");

    let out = junkquote(&["db", "verify"], Some(&db.url), None);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("total_tables=15 new_tables=7"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("schema matches migration 2"));
}

#[tokio::test]
async fn db_verify_passes_after_every_migration_and_names_each_difference() {
    let db = TestDb::empty().await;
    let set = MigrationSet::builtin().expect("migrations");
    let mut conn = db.conn().await;
    for m in set.iter() {
        up(&mut conn, &set, Some(m.version)).await.expect("migrate");
        let report = verify::verify(&mut conn, &set).await.expect("verify");
        assert_eq!(report.version, m.version);
        assert!(
            report.differences.is_empty(),
            "at {}: {:?}",
            m.version,
            report.differences
        );
    }

    // Drift: a column's type, a dropped index, an extra table, a changed delete action.
    conn.execute(sqlx::raw_sql(
        "ALTER TABLE \"Customer\" ALTER COLUMN name TYPE varchar(40);
         DROP INDEX \"Customer_email_key\";
         CREATE TABLE stray (id int);
         ALTER TABLE \"Message\" DROP CONSTRAINT \"Message_conversation_id_fkey\",
             ADD CONSTRAINT \"Message_conversation_id_fkey\" FOREIGN KEY (conversation_id)
                 REFERENCES \"Conversation\" (id) ON DELETE SET NULL;",
    ))
    .await
    .expect("drift");
    let out = junkquote(&["db", "verify"], Some(&db.url), None);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for expected in [
        "column \"Customer\".name: expected text, found character varying(40)",
        "index \"Customer_email_key\" is missing",
        "table \"stray\" is not in the manifest",
        "foreign key \"Message_conversation_id_fkey\": expected Message(conversation_id) -> Conversation(id) on delete cascade, found Message(conversation_id) -> Conversation(id) on delete set null",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test]
async fn foreign_keys_have_the_delete_actions_batch1_specifies() {
    // Batch 1 as it stands before the tightening (migration 7 makes Lead and Job RESTRICT).
    let db = TestDb::empty().await;
    let mut conn = db.conn().await;
    let set = MigrationSet::builtin().expect("migrations");
    up(&mut conn, &set, Some(6)).await.expect("migrate to 6");
    let fks = catalog::foreign_keys(&mut conn)
        .await
        .expect("foreign keys");
    let action = |table: &str, column: &str| {
        let fk = fks
            .iter()
            .find(|f| f.table == table && f.columns == [column])
            .unwrap_or_else(|| panic!("no foreign key on {table}.{column}"));
        assert!(fk.validated, "{table}.{column} is not validated");
        fk.on_delete.clone()
    };
    for (table, column, expected) in [
        ("CustomerAddress", "customer_id", "restrict"),
        ("Conversation", "customer_id", "restrict"),
        ("MemoryNote", "customer_id", "restrict"),
        ("Lead", "customer_id", "set null"),
        ("Job", "customer_id", "set null"),
        ("Message", "conversation_id", "cascade"),
        ("JobItem", "job_id", "cascade"),
        ("JobEvent", "job_id", "cascade"),
        ("Conversation", "lead_id", "set null"),
        ("MemoryNote", "conversation_id", "set null"),
    ] {
        assert_eq!(action(table, column), expected, "{table}.{column}");
    }
    // Every key is uuid on both sides.
    for fk in &fks {
        assert_eq!(fk.column_types, fk.ref_types, "{}", fk.name);
    }

    // And they behave so: a customer with an address cannot be deleted; children cascade.
    conn.execute(sqlx::raw_sql(
        "INSERT INTO \"Customer\" (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'Ann');
         INSERT INTO \"CustomerAddress\" (customer_id, address)
             VALUES ('00000000-0000-0000-0000-000000000001', '1 Oak St');
         INSERT INTO \"Lead\" (id, channel, customer_id)
             VALUES ('00000000-0000-0000-0000-0000000000aa', 'sms', '00000000-0000-0000-0000-000000000001');
         INSERT INTO \"Job\" (id, lead_id, window_start, window_end, customer_id)
             VALUES ('00000000-0000-0000-0000-0000000000bb', '00000000-0000-0000-0000-0000000000aa',
                     now(), now() + interval '1 hour', '00000000-0000-0000-0000-000000000001');
         INSERT INTO \"JobItem\" (job_id, description) VALUES ('00000000-0000-0000-0000-0000000000bb', 'couch');",
    ))
    .await
    .expect("seed");
    let err = conn
        .execute("DELETE FROM \"Customer\"")
        .await
        .expect_err("RESTRICT blocks the delete");
    assert_eq!(
        err.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("23503")
    );
    conn.execute(sqlx::raw_sql(
        "DELETE FROM \"CustomerAddress\"; DELETE FROM \"Customer\";",
    ))
    .await
    .expect("delete once the customer's own records are gone");
    let (lead_customer, job_customer): (Option<uuid::Uuid>, Option<uuid::Uuid>) = sqlx::query_as(
        "SELECT (SELECT customer_id FROM \"Lead\"), (SELECT customer_id FROM \"Job\")",
    )
    .fetch_one(&mut conn)
    .await
    .expect("links");
    assert_eq!(
        (lead_customer, job_customer),
        (None, None),
        "SET NULL on Lead and Job"
    );
    conn.execute("DELETE FROM \"Job\"")
        .await
        .expect("delete job");
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM \"JobItem\"")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(items, 0, "JobItem cascades with its Job");
}

#[tokio::test]
async fn down_to_1_leaves_the_legacy_tables_and_up_again_is_identical() {
    let db = TestDb::empty().await;
    let at_one = {
        assert!(
            junkquote(&["migrate", "up", "--to", "1"], Some(&db.url), None)
                .status
                .success()
        );
        db.schema_dump()
    };
    let out = junkquote(&["migrate", "up"], Some(&db.url), None);
    assert!(out.status.success(), "{}", helpers::stderr(&out));
    let first = db.schema_dump();

    let out = junkquote(&["migrate", "down", "--to", "1"], Some(&db.url), None);
    assert!(out.status.success(), "{}", helpers::stderr(&out));
    assert!(stdout(&out).contains("reverted    2 batch1_context_memory"));
    assert_eq!(public_tables(&db).await, LEGACY_TABLES);
    assert_eq!(
        db.schema_dump(),
        at_one,
        "down restores the legacy schema exactly"
    );

    assert!(
        junkquote(&["migrate", "up"], Some(&db.url), None)
            .status
            .success()
    );
    assert_eq!(db.schema_dump(), first, "up again gives the same schema");

    assert!(
        junkquote(&["migrate", "down", "--to", "0"], Some(&db.url), None)
            .status
            .success()
    );
    assert!(public_tables(&db).await.is_empty());
    let types: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = 'public'",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("count types");
    assert_eq!(types, 0, "no enum is left behind");
}

#[tokio::test]
async fn an_edited_migration_is_refused_and_nothing_changes() {
    let db = TestDb::empty().await;
    let dir = copy_of_builtin_migrations();
    let source = dir.path().to_str().expect("UTF-8 path");
    assert!(
        junkquote(
            &["migrate", "up", "--to", "2", "--source", source],
            Some(&db.url),
            None
        )
        .status
        .success()
    );
    let before = db.schema_dump();

    let path = dir.path().join("0002_batch1_context_memory.up.sql");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("\n-- an afterthought\n");
    std::fs::write(&path, text).expect("write");

    let out = junkquote(&["migrate", "up", "--source", source], Some(&db.url), None);
    let line = one_line_error(&out, 1);
    assert!(
        line.contains("migration 2 (batch1_context_memory) was changed after it was applied"),
        "{line}"
    );
    assert!(line.contains("new migration"), "says what to do: {line}");
    assert_eq!(db.schema_dump(), before);
    assert_eq!(
        version(&mut db.conn().await).await,
        2,
        "migration 3 was not applied"
    );

    let out = junkquote(
        &["migrate", "down", "--to", "1", "--source", source],
        Some(&db.url),
        None,
    );
    one_line_error(&out, 1);
    assert_eq!(db.schema_dump(), before);

    let out = junkquote(
        &["migrate", "status", "--source", source],
        Some(&db.url),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("PROBLEM: changed after it was applied (.up.sql)"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn down_to_a_version_that_does_not_exist_is_refused() {
    let db = TestDb::migrated().await;
    let before = db.schema_dump();
    for target in ["42", "-1"] {
        let out = junkquote(&["migrate", "down", "--to", target], Some(&db.url), None);
        let line = one_line_error(&out, 1);
        assert!(
            line.contains(&format!("there is no migration {target}")),
            "{line}"
        );
        assert!(
            line.contains(&format!(
                "known versions: 0 (empty), {}",
                helpers::versions()
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            "{line}"
        );
    }
    let out = junkquote(&["migrate", "up", "--to", "99"], Some(&db.url), None);
    one_line_error(&out, 1);
    assert_eq!(db.schema_dump(), before);
    assert_eq!(version(&mut db.conn().await).await, helpers::latest());
}

#[tokio::test]
async fn up_and_down_in_the_wrong_direction_say_which_command_to_use() {
    let db = TestDb::empty().await;
    assert!(
        junkquote(&["migrate", "up", "--to", "1"], Some(&db.url), None)
            .status
            .success()
    );
    let line = one_line_error(
        &junkquote(&["migrate", "down", "--to", "2"], Some(&db.url), None),
        1,
    );
    assert!(line.contains("use `junkquote migrate up --to 2`"), "{line}");
    assert!(
        junkquote(&["migrate", "up"], Some(&db.url), None)
            .status
            .success()
    );
    let line = one_line_error(
        &junkquote(&["migrate", "up", "--to", "1"], Some(&db.url), None),
        1,
    );
    assert!(
        line.contains("use `junkquote migrate down --to 1`"),
        "{line}"
    );
}

/// Applies `set` up to `to` with the default options.
async fn up(
    conn: &mut sqlx::PgConnection,
    set: &MigrationSet,
    to: Option<i64>,
) -> Result<Vec<i64>, MigrateError> {
    migrate::up(conn, set, to, &MigrateOptions::default(), &mut |_| {}).await
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write migration");
}

#[tokio::test]
async fn a_failing_migration_leaves_the_database_as_it_was() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "0001_a.up.sql", "CREATE TABLE a (id int);");
    write(dir.path(), "0001_a.down.sql", "DROP TABLE a;");
    write(
        dir.path(),
        "0002_b.up.sql",
        "CREATE TABLE b (id int);\nALTER TABLE a ADD COLUMN x int;\nSELECT 1 / 0;\n",
    );
    write(dir.path(), "0002_b.down.sql", "DROP TABLE b;");
    let set = MigrationSet::from_dir(dir.path()).expect("load");
    let mut conn = db.conn().await;
    let err = up(&mut conn, &set, None)
        .await
        .expect_err("division by zero");
    let message = err.to_string();
    assert!(
        message.contains("migration 2 (b) up failed, nothing of it was kept"),
        "{message}"
    );
    assert!(message.contains("division by zero"), "{message}");
    assert!(message.contains("line 3"), "points at the line: {message}");
    assert_eq!(version(&mut conn).await, 1, "migration 1 stays applied");
    let (b, x): (Option<String>, i64) = sqlx::query_as(
        "SELECT to_regclass('b')::text,
                (SELECT count(*) FROM information_schema.columns WHERE table_name = 'a' AND column_name = 'x')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("inspect");
    assert_eq!((b, x), (None, 0));
}

#[tokio::test]
async fn a_no_transaction_migration_that_stopped_partway_finishes_when_run_again() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "0001_a.up.sql", "CREATE TABLE a (id int);");
    write(dir.path(), "0001_a.down.sql", "DROP TABLE a;");
    write(
        dir.path(),
        "0002_idx.up.sql",
        "-- junkquote:no-transaction\n\
         DROP INDEX CONCURRENTLY IF EXISTS a_id;\n\
         CREATE INDEX CONCURRENTLY a_id ON a (id);\n\
         DROP INDEX CONCURRENTLY IF EXISTS b_id;\n\
         CREATE INDEX CONCURRENTLY b_id ON b (id);\n",
    );
    write(
        dir.path(),
        "0002_idx.down.sql",
        "-- junkquote:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS b_id;\nDROP INDEX CONCURRENTLY IF EXISTS a_id;\n",
    );
    let set = MigrationSet::from_dir(dir.path()).expect("load");
    let mut conn = db.conn().await;
    let err = up(&mut conn, &set, None)
        .await
        .expect_err("table b does not exist yet");
    assert!(
        matches!(err, MigrateError::FailedPartway { done: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("safe to re-run"), "{err}");
    assert_eq!(
        version(&mut conn).await,
        1,
        "not recorded until every statement ran"
    );

    conn.execute("CREATE TABLE b (id int)")
        .await
        .expect("fix the cause");
    let done = up(&mut conn, &set, None).await.expect("re-run");
    assert_eq!(done, [2]);
    let valid: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE i.relname IN ('a_id', 'b_id') AND x.indisvalid",
    )
    .fetch_one(&mut conn)
    .await
    .expect("indexes");
    assert_eq!(valid, 2);
}

#[tokio::test]
async fn concurrent_migrators_take_turns() {
    let db = TestDb::empty().await;
    let set = MigrationSet::builtin().expect("migrations");

    // Hold the migrators' lock: a migrator must wait for it rather than race.
    let mut holder = db.conn().await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(migrate::LOCK_KEY)
        .execute(&mut holder)
        .await
        .expect("take the lock");
    let waiting = {
        let (db_url, set) = (db.url.clone(), set.clone());
        tokio::spawn(async move {
            let mut conn = sqlx::PgConnection::connect(&db_url).await.expect("connect");
            let mut events = Vec::new();
            let done = migrate::up(
                &mut conn,
                &set,
                None,
                &MigrateOptions::default(),
                &mut |p| events.push(format!("{p:?}")),
            )
            .await
            .expect("migrate after waiting");
            (done, events)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the migrator waits for the lock");
    assert_eq!(version(&mut holder).await, 0);
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(migrate::LOCK_KEY)
        .execute(&mut holder)
        .await
        .expect("release");
    let (done, events) = waiting.await.expect("join");
    assert_eq!(done, helpers::versions());
    assert_eq!(events[0], "Waiting");

    // Two at once: one applies everything, the other finds nothing left to do.
    let db = TestDb::empty().await;
    let run = |url: String, set: MigrationSet| async move {
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        up(&mut conn, &set, None).await
    };
    let (a, b) = tokio::join!(
        run(db.url.clone(), set.clone()),
        run(db.url.clone(), set.clone())
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    let mut all: Vec<i64> = a.iter().chain(b.iter()).copied().collect();
    all.sort();
    assert_eq!(
        all,
        helpers::versions(),
        "each migration applied exactly once"
    );
}

#[tokio::test]
async fn a_lock_timeout_is_retried_instead_of_blocking_the_table() {
    let db = TestDb::empty().await;
    let set = MigrationSet::builtin().expect("migrations");
    let mut conn = db.conn().await;
    up(&mut conn, &set, Some(1)).await.expect("legacy");

    // A long transaction reading "Lead" holds a lock that ALTER TABLE must wait for.
    let mut reader = db.conn().await;
    reader.execute("BEGIN").await.expect("begin");
    reader
        .execute("SELECT * FROM \"Lead\"")
        .await
        .expect("read");
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        reader.execute("COMMIT").await.expect("commit");
        reader
    });
    let options = MigrateOptions {
        lock_timeout: Duration::from_millis(100),
        ..MigrateOptions::default()
    };
    let mut retries = 0;
    let done = migrate::up(&mut conn, &set, None, &options, &mut |p| {
        if matches!(p, Progress::LockRetry { .. }) {
            retries += 1;
        }
    })
    .await
    .expect("applied once the reader is done");
    assert_eq!(done, helpers::versions()[1..]);
    assert!(retries >= 1, "the lock was waited for by retrying");
    release.await.expect("join");
}

#[tokio::test]
async fn lint_passes_on_the_builtin_migrations() {
    let db = TestDb::empty().await;
    let out = junkquote(&["migrate", "lint"], Some(&db.url), None);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        helpers::stderr(&out)
    );
    assert!(stdout(&out).contains(&format!(
        "ok: {} migrations, no problems found",
        helpers::versions().len()
    )));
}

#[tokio::test]
async fn lint_names_table_column_and_both_types_of_a_text_key_against_uuid() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().expect("dir");
    for file in ["0001_legacy.up.sql", "0001_legacy.down.sql"] {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(file);
        std::fs::copy(src, dir.path().join(file)).expect("copy");
    }
    write(
        dir.path(),
        "0002_customers.up.sql",
        "CREATE TABLE \"Customer\" (id uuid PRIMARY KEY, name text);\n\
         CREATE TABLE \"Conversation\" (\n    id uuid PRIMARY KEY,\n    \
         customer_id text REFERENCES \"Customer\" (id),\n    lead_id uuid REFERENCES \"Lead\" (id)\n);\n",
    );
    write(
        dir.path(),
        "0002_customers.down.sql",
        "DROP TABLE \"Conversation\";\nDROP TABLE \"Customer\";\n",
    );
    let out = junkquote(
        &["migrate", "lint", dir.path().to_str().expect("path")],
        Some(&db.url),
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "0002_customers.up.sql:2: foreign-key-type: foreign key column \"Conversation\".customer_id \
             is text but references \"Customer\".id, which is uuid"
        ),
        "{text}"
    );
    // The throwaway database is gone.
    let mut conn = db.conn().await;
    let scratch: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_database WHERE datname LIKE $1 || '_scratch_%'",
    )
    .bind(&db.name)
    .fetch_one(&mut conn)
    .await
    .expect("count");
    assert_eq!(scratch, 0);
}

#[tokio::test]
async fn lint_flags_locks_missing_downs_redundant_indexes_and_downs_that_do_not_reverse() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().expect("dir");
    write(
        dir.path(),
        "0001_base.up.sql",
        "CREATE TABLE t (id bigint PRIMARY KEY, a int, b int);\nCREATE TABLE u (id int PRIMARY KEY);\n",
    );
    write(
        dir.path(),
        "0001_base.down.sql",
        "DROP TABLE u;\nDROP TABLE t;\n",
    );
    // A blocking index on an existing table, made redundant by the next one; a compatible but
    // different key type (int referencing bigint); no down file.
    write(
        dir.path(),
        "0002_more.up.sql",
        "CREATE INDEX t_a ON t (a);\nCREATE INDEX t_a_b ON t (a, b);\n\
         CREATE TABLE v (id int PRIMARY KEY, t_id int REFERENCES t (id));\n",
    );
    // A down that forgets an index.
    write(
        dir.path(),
        "0003_idx.up.sql",
        "-- junkquote:no-transaction\nCREATE INDEX CONCURRENTLY u_id ON u (id);\n",
    );
    write(dir.path(), "0003_idx.down.sql", "SELECT 1;\n");
    let out = junkquote(
        &["migrate", "lint", dir.path().to_str().expect("path")],
        Some(&db.url),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for expected in [
        "0002_more.up.sql: missing-down: has no 0002_more.down.sql",
        "0002_more.up.sql:1: require-concurrent-index-creation",
        "0002_more.up.sql: foreign-key-type: foreign key column \"v\".t_id is integer but references \"t\".id, which is bigint",
        "0002_more.up.sql: redundant-index: index \"t_a\" on \"t\"(a) is redundant: \"t_a_b\" on (a, b)",
        "0003_idx.down.sql: down-not-reversing: does not restore the schema from before migration 3: index \"u_id\" is not in the schema from before",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test]
async fn a_failing_first_migration_leaves_no_bookkeeping_behind() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().expect("dir");
    write(
        dir.path(),
        "0001_a.up.sql",
        "CREATE TABLE a (id int);\nSELECT 1 / 0;\n",
    );
    write(dir.path(), "0001_a.down.sql", "DROP TABLE a;");
    let set = MigrationSet::from_dir(dir.path()).expect("load");
    let mut conn = db.conn().await;
    up(&mut conn, &set, None).await.expect_err("fails");
    let schema: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'junkquote'")
            .fetch_optional(&mut conn)
            .await
            .expect("query");
    assert_eq!(schema, None);
}

#[tokio::test]
async fn a_concurrent_index_build_waits_for_old_transactions_instead_of_failing() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().expect("dir");
    write(dir.path(), "0001_a.up.sql", "CREATE TABLE a (id int);");
    write(dir.path(), "0001_a.down.sql", "DROP TABLE a;");
    write(
        dir.path(),
        "0002_idx.up.sql",
        "-- junkquote:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS a_id;\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n",
    );
    write(
        dir.path(),
        "0002_idx.down.sql",
        "-- junkquote:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS a_id;\n",
    );
    let set = MigrationSet::from_dir(dir.path()).expect("load");
    let mut conn = db.conn().await;
    up(&mut conn, &set, Some(1)).await.expect("table");
    // A writer in an open transaction: the build has to wait for it.
    let mut writer = db.conn().await;
    writer.execute("BEGIN").await.expect("begin");
    writer
        .execute("INSERT INTO a VALUES (1)")
        .await
        .expect("insert");
    let finish = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        writer.execute("COMMIT").await.expect("commit");
    });
    let options = MigrateOptions {
        lock_timeout: Duration::from_millis(200),
        ..MigrateOptions::default()
    };
    let done = migrate::up(&mut conn, &set, None, &options, &mut |_| {})
        .await
        .expect("index built");
    assert_eq!(done, [2]);
    finish.await.expect("join");
    let valid: bool = sqlx::query_scalar(
        "SELECT x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE i.relname = 'a_id'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("index");
    assert!(valid);
}

/// The scratch database of `migrate lint` is named after the one in the URL; a `"` in that
/// name must be doubled inside the quoted identifier, not end it.
#[tokio::test]
async fn a_scratch_database_is_made_for_a_database_name_with_a_double_quote() {
    let db = TestDb::empty().await;
    let weird = format!("{}_a\"b", db.name);
    let url = db.url.replacen(
        &format!("/{}?", db.name),
        &format!("/{}?", weird.replace('"', "%22")),
        1,
    );
    let dir = tempfile::tempdir().expect("dir");
    let database = junkquote::db::pool::Database::open(Some(&url), dir.path()).expect("open");
    let scratch = database
        .throwaway()
        .await
        .expect("create the scratch database");
    let mut conn = sqlx::PgConnection::connect_with(&scratch.options)
        .await
        .expect("connect to the scratch database");
    let name: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut conn)
        .await
        .expect("current_database");
    assert!(name.starts_with(&format!("{weird}_scratch_")), "{name}");
    conn.close().await.expect("close");
    scratch
        .drop_database()
        .await
        .expect("drop the scratch database");
    let mut conn = db.conn().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(left, 0);
}

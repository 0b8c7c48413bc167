//! Taking over a JunkQuoteAgent database: adoption of the original's schema at both of its
//! states, the seeded rehearsal (seed → migrate → backfill → tighten → db check), bad input,
//! crash-resume under SIGKILL, and tightening under a concurrent writer.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::helpers;
use crate::helpers::{Server, TestDb, command, junkquote, stderr, stdout};
use junkquote::db::migrate::{self, MigrationSet};
use sqlx::{Connection, Executor, PgConnection};

fn migration_sql(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(file);
    std::fs::read_to_string(path).expect("migration file")
}

/// Prisma's bookkeeping table, as `prisma migrate deploy` creates it.
const PRISMA_TABLE: &str = r#"
    CREATE TABLE "_prisma_migrations" (
        "id" VARCHAR(36) NOT NULL,
        "checksum" VARCHAR(64) NOT NULL,
        "finished_at" TIMESTAMPTZ,
        "migration_name" VARCHAR(255) NOT NULL,
        "logs" TEXT,
        "rolled_back_at" TIMESTAMPTZ,
        "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
        "applied_steps_count" INTEGER NOT NULL DEFAULT 0,
        CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id")
    );
    INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count)
    VALUES ('6d1c3c36-0b7a-4e0e-9d5f-1f2a3b4c5d6e', 'a1b2', now(), '20240110120000_init', 1);"#;

/// A database as the original created it: our migration 1 (and 2 for its Batch-1 state), run
/// as plain SQL, with Prisma's table and none of JunkQuote's bookkeeping.
async fn original(batch1: bool) -> TestDb {
    let db = TestDb::empty().await;
    let mut conn = db.conn().await;
    conn.execute(sqlx::raw_sql(&migration_sql("0001_legacy.up.sql")))
        .await
        .expect("legacy schema");
    if batch1 {
        conn.execute(sqlx::raw_sql(&migration_sql(
            "0002_batch1_context_memory.up.sql",
        )))
        .await
        .expect("batch 1");
        // The original validated its keys; ours are NOT VALID until migration 3.
        conn.execute(sqlx::raw_sql(
            "ALTER TABLE \"Lead\" VALIDATE CONSTRAINT \"Lead_customer_id_fkey\";
             ALTER TABLE \"Job\" VALIDATE CONSTRAINT \"Job_customer_id_fkey\";",
        ))
        .await
        .expect("validate");
    }
    conn.execute(sqlx::raw_sql(PRISMA_TABLE))
        .await
        .expect("prisma table");
    db
}

fn ok(args: &[&str], db: &TestDb) -> String {
    let out = junkquote(args, Some(&db.url), None);
    assert!(
        out.status.success(),
        "junkquote {args:?}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

async fn scalar(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn adopt_and_rehearse(batch1: bool) {
    let db = original(batch1).await;
    ok(&["legacy", "seed", "--leads", "300", "--seed", "3"], &db);

    // `migrate up` adopts, then stops before the tightening: the leads have no customers yet.
    let out = junkquote(&["migrate", "up"], Some(&db.url), None);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected_version = if batch1 { 2 } else { 1 };
    assert!(
        stdout(&out).contains(&format!(
            "recorded versions 1 to {expected_version} as applied"
        )),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("held migration 12")
            && stderr(&out).contains("300 leads without a customer")
            && stderr(&out).contains("run `junkquote backfill`, then `junkquote tighten`"),
        "{}",
        stderr(&out)
    );
    let mut conn = db.conn().await;
    let set = MigrationSet::builtin().expect("migrations");
    let applied = migrate::applied(&mut conn).await.expect("applied");
    // Everything but the tightening block is applied; the block waits for the backfill.
    let held: Vec<i64> = migrate::pending(&set, &applied)
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(held, [12, 13, 14, 15]);
    assert_eq!(
        migrate::current_version(&applied),
        latest_service_migration(&set)
    );
    migrate::check_applied(&set, &applied).expect("adopted versions carry our checksums");
    let adopted: Vec<i64> = applied
        .iter()
        .filter(|a| a.duration_ms == 0 && a.version <= expected_version)
        .map(|a| a.version)
        .collect();
    assert_eq!(adopted, (1..=expected_version).collect::<Vec<_>>());
    // Prisma's record is kept, outside `public`.
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM junkquote.prisma_migrations"
        )
        .await,
        1
    );
    assert!(ok(&["db", "verify"], &db).contains(&format!(
        "schema matches migration {}",
        latest_service_migration(&set)
    )));

    // The service starts and is ready on the adopted, not yet backfilled, database.
    let server = Server::start(&[], Some(&db.url), None);
    let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 200);
    assert_eq!(server.terminate(), Some(0));

    let check = junkquote(&["db", "check"], Some(&db.url), None);
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert!(stdout(&check).contains("FAIL        300  leads without a customer"));

    // Tighten refuses, listing rows, and changes nothing.
    let refused = junkquote(&["tighten"], Some(&db.url), None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stdout(&refused).contains("300 leads without a customer"));
    assert!(stderr(&refused).contains("tighten refused, nothing was changed"));
    assert_eq!(version(&mut conn).await, latest_service_migration(&set));

    let dry = ok(&["backfill", "--dry-run"], &db);
    assert!(dry.contains("would link 300 leads"), "{dry}");
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM \"Customer\"").await,
        0,
        "a dry run writes nothing"
    );
    let first = ok(&["backfill", "--batch-size", "64"], &db);
    assert!(first.contains("linked 300 leads"), "{first}");
    assert!(
        first.contains("left without a customer: 0 leads, 0 jobs"),
        "{first}"
    );
    let second = ok(&["backfill"], &db);
    assert!(second.contains("nothing changed"), "{second}");
    let tightened = ok(&["tighten"], &db);
    assert!(
        tightened.contains(&format!(
            "the database is at migration {}",
            helpers::latest()
        )),
        "{tightened}"
    );
    assert!(ok(&["db", "check"], &db).contains("all required gates pass"));
    assert!(
        ok(&["db", "verify"], &db)
            .contains(&format!("schema matches migration {}", helpers::latest()))
    );
    let (total, new): (i64, i64) = sqlx::query_as(migrate::verify::HEALTH_CHECK)
        .fetch_one(&mut conn)
        .await
        .expect("health check");
    let tables = set
        .manifest_at(set.latest())
        .expect("manifest")
        .tables
        .len() as i64;
    assert_eq!((total, new), (tables, 7), "Prisma's table is out of public");
}

/// The newest migration that needs no data pre-check: where an adopted database not yet
/// backfilled stands (the tightening block waits below it).
fn latest_service_migration(set: &MigrationSet) -> i64 {
    set.iter()
        .filter(|m| m.requires_check().is_none())
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

async fn version(conn: &mut PgConnection) -> i64 {
    migrate::current_version(&migrate::applied(conn).await.expect("applied"))
}

#[tokio::test]
async fn an_original_before_batch1_is_adopted_backfilled_and_tightened() {
    adopt_and_rehearse(false).await;
}

#[tokio::test]
async fn an_original_after_batch1_is_adopted_backfilled_and_tightened() {
    adopt_and_rehearse(true).await;
}

#[tokio::test]
async fn an_original_in_an_unknown_state_is_refused_naming_the_difference() {
    // The original's first Batch 1 attempt: a TEXT key against uuid ids.
    let db = original(false).await;
    let mut conn = db.conn().await;
    conn.execute("ALTER TABLE \"Lead\" ADD COLUMN customer_id text")
        .await
        .expect("drift");
    let out = junkquote(&["migrate", "up"], Some(&db.url), None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("not the original JunkQuoteAgent's")
            && err.contains("column \"Lead\".customer_id"),
        "{err}"
    );
    assert!(
        migrate::applied(&mut conn)
            .await
            .expect("applied")
            .is_empty(),
        "nothing recorded"
    );

    // A Prisma migration that started and never finished.
    let db = original(true).await;
    let mut conn = db.conn().await;
    conn.execute(
        "INSERT INTO \"_prisma_migrations\" (id, checksum, migration_name)
         VALUES ('x', 'c', '20240301000000_batch2_backfill')",
    )
    .await
    .expect("half-applied");
    let out = junkquote(&["migrate", "up"], Some(&db.url), None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("20240301000000_batch2_backfill")
            && stderr(&out).contains("never finished"),
        "{}",
        stderr(&out)
    );
    assert_eq!(version(&mut conn).await, 0);
}

#[tokio::test]
async fn a_fresh_database_is_fully_migrated_by_serve() {
    let db = TestDb::empty().await;
    let server = Server::start(&[], Some(&db.url), None);
    let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 200);
    assert_eq!(server.terminate(), Some(0));
    let mut conn = db.conn().await;
    assert_eq!(version(&mut conn).await, helpers::latest());
}

/// Legacy rows written by hand, one per kind of input the backfill must cope with.
const BAD_AND_LINKED: &str = r#"
    INSERT INTO "Lead" (id, channel, name, phone, email, "messengerPsid", address, "stateMetadata", created_at) VALUES
    -- A phone in two formats, then the phone with an email, then only the email: one customer.
    ('00000000-0000-0000-0000-00000000000a', 'sms', 'Ann', '(404) 555-0123', NULL, NULL, '12 Oak St, Springfield, IL 62701', NULL, '2024-01-01'),
    ('00000000-0000-0000-0000-00000000000b', 'sms', NULL, '+1 404 555 0123', ' Ann@Example.COM ', NULL, '12  oak st, Springfield, IL 62701', NULL, '2024-01-02'),
    ('00000000-0000-0000-0000-00000000000c', 'messenger', 'Ann B', NULL, 'ann@example.com', '1001', NULL,
     '{"history": [{"role": "user", "content": "Hi, a couch please"},
                   {"role": "assistant", "content": "Sure, where?"},
                   {"role": "tool", "content": "priced: $150"}]}', '2024-01-03'),
    -- A three-digit phone: no usable identity.
    ('00000000-0000-0000-0000-00000000000d', 'sms', 'Bob', '555', NULL, NULL, NULL, '"state lost"', '2024-01-04'),
    -- Two Messenger users joined by one phone: a conflict.
    ('00000000-0000-0000-0000-00000000000e', 'messenger', 'Cy', '212-555-0188', NULL, '2001', NULL,
     '{"history": "not an array"}', '2024-01-05'),
    ('00000000-0000-0000-0000-00000000000f', 'messenger', 'Di', '2125550188', NULL, '2002', NULL,
     '{"history": [1, "x", {"role": "user"}]}', '2024-01-06');
    INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at) VALUES
    ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-00000000000c', 'customer', 'customer_message', '{"text": "Hi, a couch please"}', '2024-01-03 10:00'),
    ('00000000-0000-0000-0000-0000000000a2', '00000000-0000-0000-0000-00000000000c', 'agent', 'agent_reply', '{"message": "Sure, where?"}', '2024-01-03 10:01'),
    ('00000000-0000-0000-0000-0000000000a3', '00000000-0000-0000-0000-00000000000c', 'user', 'customer_sms', '{"content": "12 Oak St"}', '2024-01-03 10:02'),
    ('00000000-0000-0000-0000-0000000000a4', '00000000-0000-0000-0000-00000000000c', 'assistant', 'agent_reply', '{"body": "Booked!"}', '2024-01-03 10:03'),
    ('00000000-0000-0000-0000-0000000000a5', '00000000-0000-0000-0000-00000000000c', 'system', 'note', '{"text": "Lead created"}', '2024-01-03 09:59'),
    ('00000000-0000-0000-0000-0000000000a6', '00000000-0000-0000-0000-00000000000c', 'customer', 'customer_sms', '"not an object"', '2024-01-03 10:04'),
    ('00000000-0000-0000-0000-0000000000a7', '00000000-0000-0000-0000-00000000000c', 'system', 'stage_change', '{"from": "a", "to": "b"}', '2024-01-03 10:05');
    INSERT INTO "Quote" (id, lead_id, features_json, line_items_json, discounts_json, subtotal, total, confidence)
    VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000000b', '{}', '[]', '[]', 150, 150, 0.9);
    INSERT INTO "Job" (id, lead_id, quote_id, window_start, window_end)
    VALUES ('00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-00000000000b',
            '00000000-0000-0000-0000-0000000000c1', '2024-02-01 10:00', '2024-02-01 12:00');
"#;

/// A database at migration 11 holding [`BAD_AND_LINKED`], and a connection to it.
async fn with_legacy_rows() -> (TestDb, PgConnection) {
    let db = TestDb::empty().await;
    let mut conn = db.conn().await;
    let set = MigrationSet::builtin().expect("migrations");
    migrate::up(&mut conn, &set, Some(11), &Default::default(), &mut |_| {})
        .await
        .expect("migrate");
    conn.execute(sqlx::raw_sql(BAD_AND_LINKED))
        .await
        .expect("legacy rows");
    // The service's later migrations apply; the tightening waits for the backfill.
    migrate::up(&mut conn, &set, None, &Default::default(), &mut |_| {})
        .await
        .expect("migrate the rest");
    (db, conn)
}

async fn customer_of(conn: &mut PgConnection, lead: &str) -> uuid::Uuid {
    sqlx::query_scalar(&format!(
        "SELECT customer_id FROM \"Lead\" WHERE id = '00000000-0000-0000-0000-0000000000{lead}'"
    ))
    .fetch_one(conn)
    .await
    .expect("lead's customer")
}

#[tokio::test]
async fn bad_input_is_reported_never_fatal_and_identities_link_transitively() {
    let (db, mut conn) = with_legacy_rows().await;
    let report = ok(&["backfill"], &db);

    // Transitive: phone, phone + email, email.
    let ann = customer_of(&mut conn, "0a").await;
    assert_eq!(customer_of(&mut conn, "0b").await, ann);
    assert_eq!(customer_of(&mut conn, "0c").await, ann);
    let (phone, email, name): (Option<String>, Option<String>, Option<String>) =
        sqlx::query_as("SELECT phone, email, name FROM \"Customer\" WHERE id = $1")
            .bind(ann)
            .fetch_one(&mut conn)
            .await
            .expect("customer");
    assert_eq!(phone.as_deref(), Some("+14045550123"));
    assert_eq!(email.as_deref(), Some("ann@example.com"));
    assert_eq!(name.as_deref(), Some("Ann B"), "the latest name");
    // Verified where the lead's own channel proved it (the SMS lead's phone, the Messenger
    // lead's id); the typed email is not.
    let identities: Vec<(String, String, Option<String>, bool)> = sqlx::query_as(
        "SELECT kind::text, value, raw, verified_at IS NOT NULL FROM \"CustomerIdentity\" WHERE customer_id = $1 ORDER BY kind::text, value",
    )
    .bind(ann)
    .fetch_all(&mut conn)
    .await
    .expect("identities");
    assert_eq!(
        identities,
        vec![
            (
                "email".into(),
                "ann@example.com".into(),
                Some("Ann@Example.COM".into()),
                false
            ),
            (
                "phone".into(),
                "+14045550123".into(),
                Some("(404) 555-0123".into()),
                true
            ),
            ("psid".into(), "1001".into(), Some("1001".into()), true),
        ]
    );
    // One address for two spellings of it.
    assert_eq!(
        scalar(
            &mut conn,
            &format!("SELECT count(*) FROM \"CustomerAddress\" WHERE customer_id = '{ann}' AND is_primary AND zip = '62701'")
        )
        .await,
        1
    );
    // The job follows its lead.
    assert_eq!(
        scalar(
            &mut conn,
            &format!("SELECT count(*) FROM \"Job\" WHERE customer_id = '{ann}'")
        )
        .await,
        1
    );

    // Roles from every key and actor; the history's copies of Audit messages once; the tool
    // message only the history had; the non-object payload and the stage change are not text.
    let messages: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.role::text, m.content FROM \"Message\" m JOIN \"Conversation\" c ON c.id = m.conversation_id
         WHERE c.lead_id = '00000000-0000-0000-0000-00000000000c' ORDER BY m.created_at, m.content",
    )
    .fetch_all(&mut conn)
    .await
    .expect("messages");
    let mut roles: Vec<(&str, &str)> = messages
        .iter()
        .map(|(r, c)| (r.as_str(), c.as_str()))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        vec![
            ("assistant", "Booked!"),
            ("assistant", "Sure, where?"),
            ("system", "Lead created"),
            ("tool", "priced: $150"),
            ("user", "12 Oak St"),
            ("user", "Hi, a couch please"),
        ]
    );

    // The three-digit phone: its own customer, flagged, listed.
    let bob = customer_of(&mut conn, "0d").await;
    let flagged: Option<String> = sqlx::query_scalar(
        "SELECT metadata -> 'backfill' ->> 'no_usable_identity' FROM \"Customer\" WHERE id = $1",
    )
    .bind(bob)
    .fetch_one(&mut conn)
    .await
    .expect("flag");
    assert_eq!(
        flagged.as_deref(),
        Some("phone is not a valid number (3 digits)")
    );
    // The conflict: two customers, nothing merged, both listed with the reason.
    let cy = customer_of(&mut conn, "0e").await;
    let di = customer_of(&mut conn, "0f").await;
    assert_ne!(cy, di);
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM \"CustomerIdentity\" WHERE value IN ('+12125550188', '2001', '2002')"
        )
        .await,
        0,
        "no one owns the disputed identifiers until the operator decides"
    );
    for expected in [
        "issues: 2 leads with conflicting identities (not merged)",
        "lead 00000000-0000-0000-0000-00000000000e: 2 different Messenger ids",
        "issues: 1 leads without a usable identity",
        "lead 00000000-0000-0000-0000-00000000000d: phone is not a valid number (3 digits)",
        "audit 00000000-0000-0000-0000-0000000000a6: payload is a string, not an object",
        "lead 00000000-0000-0000-0000-00000000000d: stateMetadata is a string, not an object",
        "lead 00000000-0000-0000-0000-00000000000e: stateMetadata.history is a string, not an array",
        "lead 00000000-0000-0000-0000-00000000000f: 3 of 3 stateMetadata.history entries are not messages",
        "linked 6 leads",
        "left without a customer: 0 leads, 0 jobs",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    ok(&["tighten"], &db);
    assert!(ok(&["db", "check"], &db).contains("all required gates pass"));
}

#[tokio::test]
async fn a_lead_the_original_writes_after_a_backfill_joins_the_customer_it_made() {
    let (db, mut conn) = with_legacy_rows().await;
    ok(&["backfill"], &db);
    let ann = customer_of(&mut conn, "0a").await;
    let customers = scalar(&mut conn, "SELECT count(*) FROM \"Customer\"").await;

    // The original, still running, takes Ann's next job. Its lead's id sorts before her first
    // lead's, which named her customer.
    conn.execute(sqlx::raw_sql(
        r#"INSERT INTO "Lead" (id, channel, phone, created_at)
           VALUES ('00000000-0000-0000-0000-000000000001', 'sms', '404.555.0123', '2024-03-01');
           INSERT INTO "Audit" (id, lead_id, actor, action, payload, created_at)
           VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-000000000001',
                   'customer', 'customer_sms', '{"text": "Me again: a fridge"}', '2024-03-01 09:00');"#,
    ))
    .await
    .expect("a later lead");
    let report = ok(&["backfill"], &db);
    assert!(report.contains("linked 1 leads"), "{report}");
    assert_eq!(customer_of(&mut conn, "01").await, ann);
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM \"Customer\"").await,
        customers,
        "no second customer for Ann"
    );
    let (owner, content): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT c.customer_id, m.content FROM \"Message\" m
         JOIN \"Conversation\" c ON c.id = m.conversation_id
         WHERE c.lead_id = '00000000-0000-0000-0000-000000000001'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("the later lead's message");
    assert_eq!((owner, content.as_str()), (ann, "Me again: a fridge"));
    ok(&["tighten"], &db);
    assert!(ok(&["db", "check"], &db).contains("all required gates pass"));
}

#[tokio::test]
async fn a_second_backfill_at_once_is_refused_and_changes_nothing() {
    let (db, mut conn) = with_legacy_rows().await;
    // A running backfill holds this session lock ("jqbf").
    sqlx::query("SELECT pg_advisory_lock(x'6a716266'::bigint)")
        .execute(&mut conn)
        .await
        .expect("lock");
    let out = junkquote(&["backfill"], Some(&db.url), None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("another backfill is running on this database"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT count(*) FROM \"Lead\" WHERE customer_id IS NOT NULL"
        )
        .await,
        0
    );
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut conn)
        .await
        .expect("unlock");
    assert!(ok(&["backfill"], &db).contains("linked 6 leads"));
}

/// The rows the backfill makes and the links it sets, in a canonical text form (timestamps the
/// database sets at write time left out), with counts.
async fn canonical(conn: &mut PgConnection) -> String {
    let queries = [
        r#"SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws('|', id, name, phone, email, metadata::text, created_at), ',' ORDER BY id), '')) FROM "Customer""#,
        r#"SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws('|', id, customer_id, kind, value, raw, created_at, verified_at), ',' ORDER BY id), '')) FROM "CustomerIdentity""#,
        r#"SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws('|', id, customer_id, address, city, state, zip, lat, lng, is_primary, metadata::text, created_at), ',' ORDER BY id), '')) FROM "CustomerAddress""#,
        r#"SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws('|', id, customer_id, lead_id, channel, external_id, started_at, last_message_at, metadata::text), ',' ORDER BY id), '')) FROM "Conversation""#,
        r#"SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws('|', id, conversation_id, role, content, metadata::text, created_at), ',' ORDER BY id), '')) FROM "Message""#,
        r#"SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws('|', id, customer_id), ',' ORDER BY id), '')) FROM "Lead""#,
        r#"SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws('|', id, customer_id), ',' ORDER BY id), '')) FROM "Job""#,
        r#"SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws('|', kind, subject, reason), ',' ORDER BY kind, subject), '')) FROM junkquote.backfill_issue"#,
    ];
    let mut out = Vec::new();
    for sql in queries {
        let line: String = sqlx::query_scalar(sql)
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        out.push(line);
    }
    out.join("\n")
}

/// A copy of `source` (which nobody may be connected to), through another database's connection.
async fn copy_of(source: &TestDb, via: &TestDb) -> TestDb {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = via.conn().await;
    conn.execute(format!("CREATE DATABASE {name} TEMPLATE {}", source.name).as_str())
        .await
        .expect("copy database");
    conn.close().await.expect("close");
    TestDb {
        url: source
            .url
            .replacen(&format!("/{}?", source.name), &format!("/{name}?"), 1),
        name,
    }
}

#[tokio::test]
async fn a_backfill_killed_eleven_times_resumes_to_the_same_result() {
    let seeded = TestDb::empty().await;
    let via = TestDb::empty().await;
    ok(&["migrate", "up", "--to", "11"], &seeded);
    ok(
        &["legacy", "seed", "--leads", "400", "--seed", "11"],
        &seeded,
    );
    // The service's later migrations; the tightening waits for the backfill.
    ok(&["migrate", "up"], &seeded);

    // The uninterrupted reference also cuts its batches elsewhere and writes them one at a
    // time: the result depends on neither.
    let reference = copy_of(&seeded, &via).await;
    ok(
        &["backfill", "--batch-size", "100", "--workers", "1"],
        &reference,
    );
    let expected = canonical(&mut reference.conn().await).await;
    let customers: i64 = expected
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(customers > 300, "customers were made: {expected}");

    // One database, killed again and again: first while planning (before any batch), then each
    // time another batch has committed, a few milliseconds later (so some kills land inside the
    // next batch's transaction, some between batches).
    let db = copy_of(&seeded, &via).await;
    let mut watcher = db.conn().await;
    let mut kills = 0;
    let mut last = 0i64;
    for attempt in 0..11u64 {
        let mut child = command(&["backfill", "--batch-size", "15"], Some(&db.url), None)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn backfill");
        let started = Instant::now();
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            let done: i64 =
                sqlx::query_scalar("SELECT count(*) FROM junkquote.backfill_checkpoint")
                    .fetch_one(&mut watcher)
                    .await
                    .unwrap_or(0);
            let due = if attempt == 0 {
                started.elapsed() > Duration::from_millis(100)
            } else {
                done > last
            };
            if due {
                tokio::time::sleep(Duration::from_millis(attempt * 7 % 20)).await;
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
                    kills += 1;
                }
                last = done;
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "backfill hung");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let _ = child.wait();
        // A kill may also land while the backfill creates its own tables.
        last = sqlx::query_scalar("SELECT count(*) FROM junkquote.backfill_checkpoint")
            .fetch_one(&mut watcher)
            .await
            .unwrap_or(last);
    }
    watcher.close().await.expect("close");
    assert!(kills >= 10, "only {kills} kills landed");
    let rerun = ok(&["backfill", "--batch-size", "15"], &db);
    assert!(
        rerun.contains("left without a customer: 0 leads, 0 jobs"),
        "{rerun}"
    );
    assert_eq!(canonical(&mut db.conn().await).await, expected);
    // And a run after that changes nothing.
    assert!(ok(&["backfill"], &db).contains("nothing changed"));
    assert_eq!(canonical(&mut db.conn().await).await, expected);
}

// Multi-threaded: the writer runs while this thread waits for the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tighten_under_a_concurrent_writer_fails_no_write() {
    let db = TestDb::empty().await;
    ok(&["migrate", "up", "--to", "11"], &db);
    ok(&["legacy", "seed", "--leads", "1500", "--seed", "5"], &db);
    // The service's later migrations; the tightening waits for the backfill.
    ok(&["migrate", "up"], &db);
    ok(&["backfill"], &db);

    // Three writers as the service writes: in one transaction a customer, then its lead, the
    // lead's conversation and a job (the customer's lock held while the lead's is taken: the
    // order that deadlocks with a migration that locks "Lead" before "Customer").
    let pool = db.pool().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let pool = pool.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut written, mut failed, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let phone = format!("+1907{w}{:06}", n % 1_000_000);
                    let started = Instant::now();
                    let result = async {
                        let mut tx = pool.begin().await?;
                        let customer: uuid::Uuid = sqlx::query_scalar(
                            "INSERT INTO \"Customer\" (phone) VALUES ($1) RETURNING id",
                        )
                        .bind(&phone)
                        .fetch_one(&mut *tx)
                        .await?;
                        sqlx::query(
                            "WITH l AS (INSERT INTO \"Lead\" (channel, phone, customer_id)
                                        VALUES ('sms', $1, $2) RETURNING id, customer_id),
                                  v AS (INSERT INTO \"Conversation\" (customer_id, lead_id, channel, external_id)
                                        SELECT customer_id, id, 'sms', $1 FROM l)
                             INSERT INTO \"Job\" (lead_id, customer_id, window_start, window_end)
                             SELECT id, customer_id, now(), now() + interval '1 hour' FROM l",
                        )
                        .bind(&phone)
                        .bind(customer)
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await
                    }
                    .await;
                    slowest = slowest.max(started.elapsed());
                    match result {
                        Ok(()) => written += 1,
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                (written, failed, slowest)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = junkquote(&["tighten"], Some(&db.url), None);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut written, mut failed, mut slowest) = (0, Vec::new(), Duration::ZERO);
    for writer in writers {
        let (w, f, s) = writer.await.expect("writer");
        written += w;
        failed.extend(f);
        slowest = slowest.max(s);
    }
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(failed.is_empty(), "failed writes: {failed:?}");
    assert!(written > 10, "the writer kept writing ({written})");
    assert!(
        slowest < Duration::from_secs(3),
        "a write waited {slowest:?} behind the tightening"
    );
    let mut conn = db.conn().await;
    assert_eq!(version(&mut conn).await, helpers::latest());
    assert!(ok(&["db", "check"], &db).contains("all required gates pass"));
}

// Multi-threaded: the writer runs while this thread waits for the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backfill_joins_customers_the_service_made_and_runs_beside_it() {
    use junkquote::domain::Channel;
    use junkquote::store::inbox::{self, Inbound, Sender};

    let db = TestDb::empty().await;
    ok(&["migrate", "up", "--to", "11"], &db);
    ok(&["legacy", "seed", "--leads", "400", "--seed", "9"], &db);
    // The service's later migrations; the tightening waits for the backfill.
    ok(&["migrate", "up"], &db);
    let mut conn = db.conn().await;
    conn.execute(sqlx::raw_sql(
        "INSERT INTO \"Lead\" (id, channel, phone, created_at) VALUES
         ('00000000-0000-0000-0000-0000000000e1', 'sms', '(907) 555-0100', '2023-05-01'),
         ('00000000-0000-0000-0000-0000000000e2', 'sms', '907.555.0100', '2023-06-01');",
    ))
    .await
    .expect("legacy leads of a returning customer");
    let pool = db.pool().await;
    let text = |id: &'static str, from: &'static str| Inbound {
        channel: Channel::Sms,
        provider: "twilio",
        provider_message_id: id,
        sender: Sender::Phone(from),
        text: "hi again",
        photos: &[],
    };
    let first = inbox::receive(&pool, text("SM-first", "+19075550100"))
        .await
        .expect("the service's customer");
    let service_customer: uuid::Uuid =
        sqlx::query_scalar("SELECT customer_id FROM \"Conversation\" WHERE id = $1")
            .bind(first.conversation_id)
            .fetch_one(&mut conn)
            .await
            .expect("customer");

    // The service keeps taking messages from new numbers while the backfill runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut n, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let id = format!("SM-{n}");
                let from = format!("+1907556{:04}", n % 10_000);
                let inbound = Inbound {
                    channel: Channel::Sms,
                    provider: "twilio",
                    provider_message_id: &id,
                    sender: Sender::Phone(&from),
                    text: "a couch please",
                    photos: &[],
                };
                if let Err(e) = inbox::receive(&pool, inbound).await {
                    failed.push(e.to_string());
                }
            }
            (n, failed)
        })
    };
    let report = ok(&["backfill", "--batch-size", "50"], &db);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = writer.await.expect("writer");
    assert!(failed.is_empty(), "{failed:?}");
    assert!(sent > 0);
    assert!(
        report.contains("(2 to customers made before this run"),
        "{report}"
    );
    assert_eq!(customer_of(&mut conn, "e1").await, service_customer);
    assert_eq!(customer_of(&mut conn, "e2").await, service_customer);
    ok(&["tighten"], &db);
    assert!(ok(&["db", "check"], &db).contains("all required gates pass"));
}

#[tokio::test]
async fn the_same_seed_writes_the_same_rows() {
    let dump = async |db: &TestDb| -> Vec<String> {
        let mut conn = db.conn().await;
        let mut out = Vec::new();
        for table in ["Lead", "Audit", "Quote", "Job"] {
            out.push(
                sqlx::query_scalar::<_, String>(&format!(
                    "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY t.id)) FROM \"{table}\" t"
                ))
                .fetch_one(&mut conn)
                .await
                .expect("dump"),
            );
        }
        out
    };
    let (a, b, c) = (
        TestDb::empty().await,
        TestDb::empty().await,
        TestDb::empty().await,
    );
    for db in [&a, &b, &c] {
        ok(&["migrate", "up", "--to", "1"], db);
    }
    ok(&["legacy", "seed", "--leads", "250", "--seed", "4"], &a);
    ok(&["legacy", "seed", "--leads", "250", "--seed", "4"], &b);
    ok(&["legacy", "seed", "--leads", "250", "--seed", "5"], &c);
    let (da, db_, dc) = (dump(&a).await, dump(&b).await, dump(&c).await);
    assert_eq!(da, db_, "same seed, same rows");
    assert_ne!(da, dc, "another seed, other rows");
    assert!(da[0].starts_with("250:"), "{da:?}");
}

/// Numbers in and out of the E.164 form, for the PostgreSQL side of the one rule.
const E164_EXAMPLES: &[&str] = &[
    "+14045550123",
    "+442079460018",
    "+6834002",
    "+123456789012345",
    "+0123456789",
    "+04045550123",
    "+123456",
    "+1234567890123456",
    "14045550123",
    "+1 404 555 0123",
    "+1-404-555-0123",
    "+1404555012a",
    "+１４０４５５５０１２３",
    " +14045550123",
    "+14045550123\n",
    "++14045550123",
    "+",
    "",
];

/// The domain's E.164 rule, its PostgreSQL pattern, migration 14's CHECK (landed, so it cannot
/// follow the domain: it must already agree), the gate of `db check` and the pre-check of
/// `tighten` all accept the same numbers.
#[tokio::test]
async fn the_e164_pattern_agrees_with_the_domain_rule_on_postgresql() {
    use junkquote::domain::identity::{E164_PATTERN, is_e164};
    use junkquote::takeover::{quality, tighten};

    let db = TestDb::migrated().await;
    let mut conn = db.conn().await;
    let mut refused = 0;
    for number in E164_EXAMPLES {
        let matches: bool = sqlx::query_scalar("SELECT $1 ~ $2")
            .bind(number)
            .bind(E164_PATTERN)
            .fetch_one(&mut conn)
            .await
            .expect("match");
        assert_eq!(matches, is_e164(number), "the pattern on {number:?}");
        let inserted = sqlx::query(r#"INSERT INTO "Customer" (phone) VALUES ($1)"#)
            .bind(number)
            .execute(&mut conn)
            .await;
        assert_eq!(
            inserted.is_ok(),
            is_e164(number),
            "migration 14's CHECK on {number:?}: {inserted:?}"
        );
        refused += i64::from(!is_e164(number));
    }

    // Rows from before migration 14 (or written around it): the gate and the pre-check count
    // exactly those the domain refuses.
    conn.execute(r#"ALTER TABLE "Customer" DROP CONSTRAINT "Customer_phone_e164_check""#)
        .await
        .expect("drop the check");
    for number in E164_EXAMPLES.iter().filter(|n| !is_e164(n)) {
        sqlx::query(r#"INSERT INTO "Customer" (phone) VALUES ($1)"#)
            .bind(number)
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    let gates = quality::check(&mut conn).await.expect("db check");
    let gate = gates
        .iter()
        .find(|g| g.name.starts_with("customer phones not in E.164"))
        .expect("the E.164 gate");
    assert_eq!(gate.count, refused);
    let outcome = tighten::precheck(&mut conn, "customer-phone-email-unique", 100)
        .await
        .expect("pre-check")
        .expect("a known check");
    let offence = outcome
        .offences
        .iter()
        .find(|o| o.what.contains("not E.164"))
        .expect("the E.164 offence");
    assert_eq!(offence.count, refused);
    assert_eq!(offence.examples.len() as i64, refused);
}

/// The service's own migrations after the tightening block apply while the block waits for the
/// backfill (an adopted database keeps getting the service's schema), `migrate status` says
/// what is held and why, `db verify` checks what is applied, and `down` reverts them.
#[tokio::test]
async fn a_later_migration_applies_while_the_tightening_waits_for_the_backfill() {
    let dir = helpers::copy_of_builtin_migrations();
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write a migration file")
    };
    write(
        "0099_probe.up.sql",
        "SET lock_timeout = '5s';\nALTER TABLE \"Config\" ADD COLUMN probe text;\n",
    );
    write(
        "0099_probe.down.sql",
        "SET lock_timeout = '5s';\nALTER TABLE \"Config\" DROP COLUMN probe;\n",
    );
    write(
        "0099_probe.manifest.toml",
        "[tables.Config]\nprobe = \"text\"\n",
    );
    let dir_arg = dir.path().to_str().expect("a UTF-8 path");
    let (db, conn) = with_legacy_rows().await;
    drop(conn.close().await);

    let out = junkquote(&["migrate", "up", "--source", dir_arg], Some(&db.url), None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("held migration 12") && stdout(&out).contains("applied    99 probe"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let status = junkquote(
        &["migrate", "status", "--source", dir_arg],
        Some(&db.url),
        None,
    );
    let status = stdout(&status);
    for held in 12..=15 {
        assert!(
            status
                .lines()
                .any(|l| l.trim_start().starts_with(&held.to_string())
                    && l.contains("held until its data pre-check passes")),
            "{status}"
        );
    }
    assert!(
        status
            .lines()
            .any(|l| l.trim_start().starts_with("99") && l.contains("applied")),
        "{status}"
    );
    let set = MigrationSet::from_dir(dir.path()).expect("the copied migrations");
    let mut conn = db.conn().await;
    let report = migrate::verify::verify(&mut conn, &set)
        .await
        .expect("verify");
    assert_eq!(report.version, 99);
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    let applied = migrate::applied(&mut conn).await.expect("applied");
    assert_eq!(migrate::service_schema_problem(&set, &applied), None);

    // Reverting goes through what is applied, the held block untouched.
    let out = junkquote(
        &["migrate", "down", "--to", "11", "--source", dir_arg],
        Some(&db.url),
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let applied = migrate::applied(&mut conn).await.expect("applied");
    assert_eq!(migrate::current_version(&applied), 11);
    let column: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns
         WHERE table_name = 'Config' AND column_name = 'probe'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("columns");
    assert_eq!(column, 0);
}

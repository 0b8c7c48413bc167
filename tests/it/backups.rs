//! `db backup` and `db restore`: a consistent dump of a database being written to, a damaged
//! file refused before anything changes, a non-empty database refused without `--force`, and a
//! restore onto a new data directory that serves every row (and takes its nightly backup).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::{Connection, PgConnection};

use crate::helpers::{self, Server, TestApp, TestDb, junkquote, one_line_error, stderr, stdout};
use junkquote::db::embedded::{Cluster, ClusterConfig};

/// A directory under the system's temporary directory, which the `postgres` user can reach.
fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// Every table in `public` with its row count.
async fn row_counts(conn: &mut PgConnection) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("tables");
    let mut counts = BTreeMap::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
            .fetch_one(&mut *conn)
            .await
            .expect("count");
        counts.insert(table, n);
    }
    counts
}

/// A migrated database holding a real conversation: a customer, their messages, a lead, a
/// quote and the replies.
async fn database_with_a_customer() -> TestDb {
    let db = TestDb::migrated().await;
    let app = TestApp::spawn_on(&db, helpers::config::sms()).await;
    for (sid, body) in [
        ("SMbk1", "Hi, I need a couch and a fridge hauled away"),
        ("SMbk2", "30303, ground floor, next Tuesday works"),
    ] {
        let answer = helpers::twilio::sms(&app, sid, "+14045550101", body).await;
        assert_eq!(answer.status(), 200);
    }
    app.run_jobs_until_idle().await;
    app.shutdown().await.expect("shutdown");
    db
}

fn backup(db: &TestDb, to: &Path) {
    let out = junkquote(
        &["db", "backup", "--to", to.to_str().expect("utf-8")],
        Some(&db.url),
        None,
    );
    assert!(out.status.success(), "backup: {}", stderr(&out));
    assert!(stdout(&out).contains("bytes"), "{}", stdout(&out));
}

#[tokio::test]
async fn a_backup_of_a_database_being_written_to_is_one_snapshot_and_restores() {
    let source = TestDb::migrated().await;
    let mut conn = source.conn().await;
    sqlx::raw_sql(
        "CREATE TABLE pair_left (id bigint PRIMARY KEY); CREATE TABLE pair_right (id bigint PRIMARY KEY);",
    )
    .execute(&mut conn)
    .await
    .expect("tables");
    // The writer inserts one row into each table per transaction: a consistent dump holds
    // as many rows in one as in the other, whenever it was taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut conn) = (stop.clone(), source.conn().await);
        tokio::spawn(async move {
            let mut id: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let mut tx = conn.begin().await.expect("begin");
                for table in ["pair_left", "pair_right"] {
                    sqlx::query(&format!("INSERT INTO {table} VALUES ($1)"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .expect("insert");
                }
                tx.commit().await.expect("commit");
            }
            id
        })
    };
    helpers::eventually("the writer has written", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pair_left")
            .fetch_one(&mut source.conn().await)
            .await
            .expect("count")
            > 50
    })
    .await;
    let dir = temp_dir("jq-backup-");
    let file = dir.path().join("live.dump");
    let (db, to) = (source.clone(), file.clone());
    tokio::task::spawn_blocking(move || backup(&db, &to))
        .await
        .expect("backup task");
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer");

    let mode = std::fs::metadata(&file)
        .expect("backup file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "a backup holds customers' data");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("live.dump")],
        "no partial file left"
    );

    let target = TestDb::empty().await;
    let out = junkquote(
        &["db", "restore", file.to_str().expect("utf-8")],
        Some(&target.url),
        None,
    );
    assert!(out.status.success(), "restore: {}", stderr(&out));
    let mut restored = target.conn().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pair_left")
        .fetch_one(&mut restored)
        .await
        .expect("left");
    let right: i64 = sqlx::query_scalar("SELECT count(*) FROM pair_right")
        .fetch_one(&mut restored)
        .await
        .expect("right");
    assert_eq!(
        left, right,
        "one snapshot: every transaction whole or absent"
    );
    assert!(
        left > 50 && left < written,
        "taken while written: {left} of {written}"
    );
}

#[tokio::test]
async fn a_truncated_backup_is_refused_and_nothing_changes() {
    let source = database_with_a_customer().await;
    let dir = temp_dir("jq-backup-");
    let file = dir.path().join("whole.dump");
    backup(&source, &file);
    let bytes = std::fs::read(&file).expect("read");
    // Cut short anywhere: in its data (its table of contents still reads), or through it.
    for keep in [bytes.len() - 100, bytes.len() * 2 / 3] {
        let cut = dir.path().join("cut.dump");
        std::fs::write(&cut, &bytes[..keep]).expect("write the cut file");

        let target = TestDb::empty().await;
        let out = junkquote(
            &["db", "restore", cut.to_str().expect("utf-8")],
            Some(&target.url),
            None,
        );
        let line = one_line_error(&out, 1);
        assert!(line.contains("is not a whole JunkQuote backup"), "{line}");
        assert!(line.contains("nothing was changed"), "{line}");
        assert!(
            row_counts(&mut target.conn().await).await.is_empty(),
            "the database is untouched"
        );

        // Nor is a database that held data touched by a forced restore of it.
        let before = row_counts(&mut source.conn().await).await;
        let out = junkquote(
            &["db", "restore", "--force", cut.to_str().expect("utf-8")],
            Some(&source.url),
            None,
        );
        one_line_error(&out, 1);
        assert_eq!(row_counts(&mut source.conn().await).await, before);
    }
}

#[tokio::test]
async fn a_restore_onto_a_database_that_is_not_empty_needs_force() {
    let source = database_with_a_customer().await;
    let dir = temp_dir("jq-backup-");
    let file = dir.path().join("customer.dump");
    backup(&source, &file);
    let file = file.to_str().expect("utf-8");

    let target = TestDb::migrated().await;
    let before = row_counts(&mut target.conn().await).await;
    let out = junkquote(&["db", "restore", file], Some(&target.url), None);
    let line = one_line_error(&out, 1);
    assert!(line.contains("is not empty"), "{line}");
    assert!(line.contains("--force"), "{line}");
    assert_eq!(
        row_counts(&mut target.conn().await).await,
        before,
        "untouched"
    );

    let out = junkquote(&["db", "restore", "--force", file], Some(&target.url), None);
    assert!(out.status.success(), "forced restore: {}", stderr(&out));
    assert_eq!(
        row_counts(&mut target.conn().await).await,
        row_counts(&mut source.conn().await).await,
        "replaced by the backup's rows"
    );
}

#[tokio::test]
async fn a_restore_onto_a_new_data_directory_serves_every_row_and_backs_up_nightly() {
    let source = database_with_a_customer().await;
    let counts = row_counts(&mut source.conn().await).await;
    assert!(counts["Message"] >= 2, "{counts:?}");
    let status = stdout(&junkquote(&["migrate", "status"], Some(&source.url), None));
    let dir = temp_dir("jq-backup-");
    let file = dir.path().join("move.dump");
    backup(&source, &file);

    let data = temp_dir("jq-restored-");
    let out = junkquote(
        &["db", "restore", file.to_str().expect("utf-8")],
        None,
        Some(data.path()),
    );
    assert!(out.status.success(), "restore: {}", stderr(&out));
    let out = junkquote(&["migrate", "status"], None, Some(data.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        status,
        "the same migrations, applied the same way"
    );

    let server = Server::start(&[], None, Some(data.path()));
    let health = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(health.status(), 200);
    let cluster = Cluster::start(&ClusterConfig::service(data.path())).expect("join");
    let mut conn = PgConnection::connect(&cluster.url("junkquote"))
        .await
        .expect("connect");
    assert_eq!(row_counts(&mut conn).await, counts, "every row");
    conn.close().await.expect("close");

    // The embedded database's nightly backup: taken when none is recent, into the data
    // directory, and readable.
    let backups = data.path().join("backups");
    helpers::eventually("the nightly backup is written", || async {
        junkquote::db::backup::list(&backups).len() == 1
    })
    .await;
    let nightly = &junkquote::db::backup::list(&backups)[0];
    let listed = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&nightly.path)
        .output()
        .expect("pg_restore");
    assert!(listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("Message"));
    drop(cluster);
    assert_eq!(server.terminate(), Some(0));
}

/// Marks `path` as written `days` days ago.
fn age(path: &Path, days: i64) {
    let when = chrono::Utc::now() - chrono::TimeDelta::days(days);
    let time = nix::sys::time::TimeVal::new(when.timestamp(), 0);
    nix::sys::stat::utimes(path, &time, &time).expect("utimes");
}

#[tokio::test]
async fn the_nightly_backup_is_taken_once_between_instances_kept_to_its_count_and_shown() {
    let data = temp_dir("jq-nightly-");
    let out = junkquote(&["migrate", "up"], None, Some(data.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let cluster = Cluster::start(&ClusterConfig::service(data.path())).expect("join");
    let db = TestDb {
        name: "junkquote".into(),
        url: cluster.url("junkquote"),
    };
    let pool = db.pool().await;

    // Last week's backups, and one from yesterday: a new one is due.
    let backups = data.path().join("backups");
    junkquote::db::backup::ensure_dir(&backups).expect("dir");
    for day in 1..=6 {
        let old = backups.join(format!("junkquote-2026010{day}T030000Z.dump"));
        std::fs::write(&old, b"old").expect("old backup");
        age(&old, 8 - day);
    }
    // Two instances find it due at once: one writes it.
    let (a, b) = tokio::join!(
        junkquote::jobs::backups::back_up_if_due(&pool, 3),
        junkquote::jobs::backups::back_up_if_due(&pool, 3)
    );
    let written = [a.expect("first"), b.expect("second")];
    assert_eq!(written.iter().filter(|w| **w).count(), 1, "{written:?}");
    let listed = junkquote::db::backup::list(&backups);
    assert_eq!(listed.len(), 3, "kept to JUNKQUOTE_BACKUP_KEEP: {listed:?}");
    assert!(
        listed[0].bytes > 1000,
        "the new one is a real dump: {listed:?}"
    );
    assert!(listed[1].path.ends_with("junkquote-20260106T030000Z.dump"));
    assert!(
        !junkquote::jobs::backups::back_up_if_due(&pool, 3)
            .await
            .expect("again"),
        "not due again the same day"
    );

    // The System page shows it.
    let out = helpers::create_user(&db, "owner@junk.example", "correct horse battery staple\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let app = TestApp::spawn_on(&db, helpers::config::sms()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = client
        .get(app.url("/admin/login"))
        .send()
        .await
        .expect("login page");
    let token = login
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("jq_login="))
        .and_then(|v| v.split(';').next())
        .expect("login cookie")
        .to_owned();
    let signed_in = client
        .post(app.url("/admin/login"))
        .header("Cookie", format!("jq_login={token}"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", "owner@junk.example"),
            ("password", "correct horse battery staple"),
        ])
        .send()
        .await
        .expect("login");
    let session = signed_in
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("jq_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    let page = client
        .get(app.url("/admin/system"))
        .header("Cookie", format!("jq_session={session}"))
        .send()
        .await
        .expect("system page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let size = format!("{:.1} KiB", listed[0].bytes as f64 / 1024.0);
    assert!(html.contains("Last backup"), "{html}");
    assert!(html.contains(&size), "the size, {size}: {html}");
    assert!(html.contains("3 kept in"), "{html}");
    app.shutdown().await.expect("shutdown");
    pool.close().await;
    drop(cluster);
}

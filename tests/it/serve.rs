//! `junkquote serve`: migrations first, health and readiness, JSON errors, graceful shutdown.

use crate::helpers;
use crate::helpers::{Server, TestDb, version};

#[tokio::test]
async fn serve_migrates_answers_health_and_readiness_and_stops_on_sigterm() {
    let db = TestDb::empty().await;
    let server = Server::start(&[], Some(&db.url), None);
    assert_eq!(
        version(&mut db.conn().await).await,
        helpers::latest(),
        "pending migrations applied at start"
    );

    let health = reqwest::get(server.url("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.expect("json"),
        serde_json::json!({"status": "ok"})
    );

    let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.expect("json"),
        serde_json::json!({"status": "ready", "migration": helpers::latest()})
    );

    let missing = reqwest::get(server.url("/no/such/page"))
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");

    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test]
async fn readiness_fails_while_migrations_are_pending() {
    let db = TestDb::empty().await;
    let server = Server::start(&["--no-migrate"], Some(&db.url), None);
    let health = reqwest::get(server.url("/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200, "the process is up");
    let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_ready");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!(
            "schema is at migration 0, this server needs {}",
            helpers::latest()
        )),
        "{message}"
    );
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test]
async fn serve_on_the_embedded_cluster_shares_it_and_stops_it_on_exit() {
    let dir = tempfile::Builder::new()
        .prefix("jq-serve-")
        .tempdir()
        .expect("dir");
    let server = Server::start(&[], None, Some(dir.path()));
    let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 200);

    // A second process on the same data directory joins the running cluster…
    let out = helpers::junkquote(&["migrate", "status"], None, Some(dir.path()));
    assert!(out.status.success(), "{}", helpers::stderr(&out));
    assert!(helpers::stdout(&out).contains(&format!(
        "database at migration {0} of {0}",
        helpers::latest()
    )));
    // …and leaving does not stop it under the server.
    let ready = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 200);

    assert_eq!(server.terminate(), Some(0));
    assert!(
        !dir.path().join("pg/postmaster.pid").exists(),
        "the embedded PostgreSQL stopped with the server"
    );
}

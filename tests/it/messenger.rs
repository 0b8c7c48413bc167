//! Messenger: the subscription handshake, signed page messages, redeliveries, echoes, and
//! replies through a local stand-in for the Send API.

use std::sync::{Arc, Mutex};

use crate::helpers;
use crate::helpers::{TestApp, TestDb, config};
use junkquote::app::Config;
use junkquote::channels::signature::messenger_signature;

const SECRET: &str = "app-secret";
const PSID: &str = "2741000000000001";

fn payload(mid: &str, text: &str) -> String {
    serde_json::json!({
        "object": "page",
        "entry": [{"id": "PAGE", "time": 1, "messaging": [{
            "sender": {"id": PSID}, "recipient": {"id": "PAGE"}, "timestamp": 1,
            "message": {"mid": mid, "text": text}
        }]}]
    })
    .to_string()
}

async fn post(server: &TestApp, body: &str, signature: Option<String>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(server.url("/api/messenger"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("X-Hub-Signature-256", signature);
    }
    let response = request.send().await.expect("post");
    server.answered().await;
    response
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&mut db.conn().await)
        .await
        .expect(sql)
}

/// A stand-in for the Send API that records each request's JSON body and query.
async fn fake_graph() -> (String, Arc<Mutex<Vec<(String, serde_json::Value)>>>) {
    let seen: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/v26.0/me/messages",
        axum::routing::post(
            move |uri: axum::http::Uri, body: axum::Json<serde_json::Value>| {
                let record = record.clone();
                async move {
                    record
                        .lock()
                        .expect("lock")
                        .push((uri.query().unwrap_or_default().to_owned(), body.0));
                    axum::Json(serde_json::json!({"recipient_id": PSID, "message_id": "m_out"}))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

#[tokio::test]
async fn messenger_messages_are_verified_answered_once_and_sent() {
    let db = TestDb::migrated().await;
    let (graph, seen) = fake_graph().await;
    let server = TestApp::spawn_on(
        &db,
        config::with_messenger(Config::default(), SECRET, Some(&graph)),
    )
    .await;
    let client = reqwest::Client::new();
    let ok = client
        .get(server.url(
            "/api/messenger?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=12345",
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), "12345");
    let wrong = client
        .get(
            server
                .url("/api/messenger?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=12345"),
        )
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), 403);

    // Forged, unsigned: refused, nothing stored.
    let body = payload("m_1", "a couch and a fridge");
    assert_eq!(
        post(
            &server,
            &body,
            Some(messenger_signature("other", body.as_bytes()))
        )
        .await
        .status(),
        403
    );
    assert_eq!(post(&server, &body, None).await.status(), 403);
    assert_eq!(count(&db, "SELECT count(*) FROM \"Message\"").await, 0);

    // Signed, delivered twice: stored and answered once.
    for _ in 0..2 {
        let response = post(
            &server,
            &body,
            Some(messenger_signature(SECRET, body.as_bytes())),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM \"Message\" WHERE role = 'user'").await,
        1
    );
    let channel: String = sqlx::query_scalar("SELECT channel::text FROM \"Conversation\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("conversation");
    assert_eq!(channel, "messenger");

    // The page's own echoes are not customer messages.
    let echo = serde_json::json!({"object": "page", "entry": [{"messaging": [{
        "sender": {"id": "PAGE"}, "recipient": {"id": PSID},
        "message": {"mid": "m_echo", "text": "hello", "is_echo": true}
    }]}]})
    .to_string();
    assert_eq!(
        post(
            &server,
            &echo,
            Some(messenger_signature(SECRET, echo.as_bytes()))
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM \"Message\" WHERE role = 'user'").await,
        1
    );

    // A body that is not a Messenger payload: a clear 400.
    let junk = "{\"hello\": 1}";
    assert_eq!(
        post(
            &server,
            junk,
            Some(messenger_signature(SECRET, junk.as_bytes()))
        )
        .await
        .status(),
        400
    );

    // The reply reaches the Send API once, addressed to the sender.
    assert!(server.run_jobs_until_idle().await > 0, "a send");
    assert_eq!(
        server.run_jobs_until_idle().await,
        0,
        "nothing left to send"
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "access_token=page-token");
    assert_eq!(seen[0].1["recipient"]["id"], PSID);
    assert!(
        seen[0].1["message"]["text"]
            .as_str()
            .expect("text")
            .contains('$')
    );
}

#[tokio::test]
async fn half_a_messenger_configuration_refuses_to_start() {
    let db = TestDb::migrated().await;
    let out = helpers::command(&["serve", "--addr", "127.0.0.1:0"], Some(&db.url), None)
        .env("FB_VERIFY_TOKEN", "verify-me")
        .env_remove("FB_APP_SECRET")
        .output()
        .expect("run");
    let line = helpers::one_line_error(&out, 1);
    assert!(line.contains("FB_APP_SECRET is not"), "{line}");
}

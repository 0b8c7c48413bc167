//! Opening web-chat sessions is public, so it is rate-limited per client address and overall:
//! past the limit the server answers 429 with `Retry-After` and the JSON error body, and
//! `X-Forwarded-For` counts only when the proxy in front is trusted.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::helpers::{TestApp, TestDb, config};
use junkquote::app::Config;
use junkquote::http::SessionLimits;

/// The application with chat sessions limited to `per_client` per address and `global` in
/// all per `window`, with `trusted_proxy_hops` proxies in front.
async fn server(
    db: &TestDb,
    per_client: u32,
    global: Option<u32>,
    window: Option<Duration>,
    trusted_proxy_hops: usize,
) -> TestApp {
    let defaults = SessionLimits::default();
    let config = Config {
        sessions: SessionLimits {
            per_client: NonZeroU32::new(per_client).expect("a limit"),
            global: global.and_then(NonZeroU32::new).unwrap_or(defaults.global),
            window: window.unwrap_or(defaults.window),
            ..defaults
        },
        ..Config::default()
    };
    TestApp::spawn_on(db, config::with_proxy_hops(config, trusted_proxy_hops)).await
}

/// Opens a session, claiming to come from `forwarded_for` when given.
async fn open(server: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(server.url("/api/chat/sessions"));
    if let Some(address) = forwarded_for {
        request = request.header("X-Forwarded-For", address);
    }
    request.send().await.expect("open a session")
}

async fn sessions(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM \"ChatSession\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("count sessions")
}

#[tokio::test]
async fn a_burst_of_session_openings_is_refused_with_retry_after_then_allowed_again() {
    let db = TestDb::migrated().await;
    // 3 at once, then one every 2 s: the burst is over long before the next is due.
    let server = server(&db, 3, None, Some(Duration::from_secs(6)), 0).await;
    let url = server.url("/api/chat/sessions");
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { reqwest::Client::new().post(url).send().await })
        })
        .collect();
    let mut refused = Vec::new();
    for opening in burst {
        let response = opening.await.expect("task").expect("open a session");
        match response.status().as_u16() {
            200 => {}
            429 => refused.push(response),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(refused.len(), 5, "3 of 8 allowed at once");
    assert_eq!(sessions(&db).await, 3, "refused openings store nothing");
    let mut wait = 0;
    for response in refused {
        let retry_after: u64 = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        wait = wait.max(retry_after);
        let body: serde_json::Value = response.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], "rate_limited");
        assert!(body["error"]["message"].is_string());
    }
    // After the wait it names, a client is let in again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = open(&server, None).await;
    assert_eq!(again.status(), 200);
    let body: serde_json::Value = again.json().await.expect("session");
    assert!(body["session_id"].is_string() && body["token"].is_string());
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let db = TestDb::migrated().await;
    // 2 per address, 5 in all.
    // Untrusted, the header is the client's to write: changing it does not help.
    let direct = server(&db, 2, Some(5), None, 0).await;
    for n in 0..2 {
        let status = open(&direct, Some(&format!("203.0.113.{n}")))
            .await
            .status();
        assert_eq!(status, 200);
    }
    let spoofed = open(&direct, Some("203.0.113.99")).await;
    assert_eq!(spoofed.status(), 429, "X-Forwarded-For is ignored");
    drop(direct);

    // Behind one trusted proxy, each forwarded address has its own limit...
    let proxied = server(&db, 2, Some(5), None, 1).await;
    let a = "198.51.100.1";
    assert_eq!(open(&proxied, Some(a)).await.status(), 200);
    assert_eq!(open(&proxied, Some(a)).await.status(), 200);
    assert_eq!(open(&proxied, Some(a)).await.status(), 429);
    // (the proxy appends the address it saw; what the client wrote before it does not count)
    assert_eq!(
        open(&proxied, Some(&format!("192.0.2.77, {a}")))
            .await
            .status(),
        429
    );
    assert_eq!(open(&proxied, Some("198.51.100.2")).await.status(), 200);
    assert_eq!(open(&proxied, Some("198.51.100.3")).await.status(), 200);
    assert_eq!(open(&proxied, Some("198.51.100.4")).await.status(), 200);
    // ...and all of them share the global ceiling (5 per window).
    let over = open(&proxied, Some("198.51.100.5")).await;
    assert_eq!(over.status(), 429, "the global ceiling");
    assert!(over.headers().contains_key("retry-after"));
}

//! Opening web-chat sessions is public, so it is rate-limited per client address and overall,
//! and so are chat messages, per session and per address: past a limit the server answers 429
//! with `Retry-After` and the JSON error body, and `X-Forwarded-For` counts only when the proxy
//! in front is trusted. The buckets are in PostgreSQL: servers over one database share them.

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

    // Behind one trusted proxy, each forwarded address has its own limit... (a database of its
    // own: servers over one database share the buckets, and the first server used two)
    let db = TestDb::migrated().await;
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

#[tokio::test]
async fn two_servers_over_one_database_share_the_session_limits() {
    let db = TestDb::migrated().await;
    // 3 per address per hour; the same address (the loopback) reaches both servers.
    let hour = Some(Duration::from_secs(3600));
    let a = server(&db, 3, None, hour, 0).await;
    let b = server(&db, 3, None, hour, 0).await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        let to = if n % 2 == 0 { &a } else { &b };
        statuses.push(open(to, None).await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    assert_eq!(sessions(&db).await, 3);
}

/// Opens a chat session on `server`: its id and token.
async fn session(server: &TestApp) -> (String, String) {
    let body: serde_json::Value = open(server, None).await.json().await.expect("session");
    (
        body["session_id"].as_str().expect("id").to_owned(),
        body["token"].as_str().expect("token").to_owned(),
    )
}

/// What came of a batch of chat messages.
#[derive(Default)]
struct Outcome {
    accepted: usize,
    refused: usize,
}

/// Posts `texts` to the sessions (url, session id, token) round-robin, 50 at a time; checks
/// that every refusal is a 429 with `Retry-After` and the JSON error, every acceptance has a
/// reply.
async fn post_all(targets: &[(String, String, String)], count: usize) -> Outcome {
    let client = reqwest::Client::new();
    let mut outcome = Outcome::default();
    let mut running = tokio::task::JoinSet::new();
    for n in 0..count {
        let (base, id, token) = targets[n % targets.len()].clone();
        let client = client.clone();
        running.spawn(async move {
            client
                .post(format!("{base}/api/chat/sessions/{id}/messages"))
                .bearer_auth(token)
                .json(&serde_json::json!({"text": format!("hello {n}"), "id": format!("m{n}")}))
                .send()
                .await
                .expect("post a message")
        });
        if running.len() >= 50 || n + 1 == count {
            while let Some(response) = running.join_next().await {
                let response = response.expect("task");
                match response.status().as_u16() {
                    200 => {
                        let body: serde_json::Value = response.json().await.expect("replies");
                        assert!(!body["replies"].as_array().expect("replies").is_empty());
                        outcome.accepted += 1;
                    }
                    429 => {
                        let retry_after: u64 = response
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .expect("Retry-After in seconds");
                        assert!(retry_after >= 1);
                        let body: serde_json::Value = response.json().await.expect("JSON error");
                        assert_eq!(body["error"]["code"], "rate_limited");
                        outcome.refused += 1;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
        }
    }
    outcome
}

async fn user_messages(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM \"Message\" WHERE role = 'user'")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("count messages")
}

#[tokio::test]
async fn a_thousand_messages_in_a_minute_from_one_session_are_refused_past_its_limit() {
    let server = TestApp::spawn(Config::default()).await;
    let (id, token) = session(&server).await;
    let started = std::time::Instant::now();
    let outcome = post_all(&[(server.base.clone(), id, token)], 1000).await;
    // 20 at once, then one every 3 s (the default: 20 a minute per session).
    let refilled = started.elapsed().as_secs() as usize / 3 + 1;
    assert!(
        (20..=20 + refilled).contains(&outcome.accepted),
        "{} accepted",
        outcome.accepted
    );
    assert_eq!(outcome.accepted + outcome.refused, 1000);
    assert_eq!(
        user_messages(&server.db).await,
        outcome.accepted as i64,
        "every accepted message is stored, no refused one"
    );
}

#[tokio::test]
async fn twenty_sessions_of_one_address_share_its_limit_across_two_servers() {
    let db = TestDb::migrated().await;
    // Two servers over one database, as two `serve` processes behind a load balancer; an
    // hour's window, so that nothing refills during the test.
    let config = || Config {
        sessions: SessionLimits {
            per_client: NonZeroU32::new(40).expect("a limit"),
            ..SessionLimits::default()
        },
        chat_messages: junkquote::http::MessageLimits {
            window: Duration::from_secs(3600),
            ..Default::default()
        },
        ..Config::default()
    };
    let a = TestApp::spawn_on(&db, config()).await;
    let b = TestApp::spawn_on(&db, config()).await;
    let mut targets = Vec::new();
    for n in 0..20 {
        let server = if n % 2 == 0 { &a } else { &b };
        let (id, token) = session(server).await;
        // Each session's messages go to both servers in turn.
        targets.push((a.base.clone(), id.clone(), token.clone()));
        targets.push((b.base.clone(), id, token));
    }
    let outcome = post_all(&targets, 1000).await;
    assert_eq!(outcome.accepted, 60, "60 per address, whichever server");
    assert_eq!(outcome.refused, 940);
    assert_eq!(user_messages(&db).await, 60);
    // One session alone stops at its own limit (20), before its address's.
    let c = TestApp::spawn(config()).await;
    let (id, token) = session(&c).await;
    let outcome = post_all(&[(c.base.clone(), id, token)], 30).await;
    assert_eq!(outcome.accepted, 20);
}

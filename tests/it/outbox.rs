//! The outbox job against a local stand-in for Twilio's REST API: a failed send is retried
//! with backoff and delivered once, and a send whose outcome is unknown (a timeout) is checked
//! against Twilio's message list before it is sent again, so it is never delivered twice. The
//! tests run the job on demand; only the backoff test waits for real time to pass.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers;
use crate::helpers::{TestApp, TestDb, config};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;

const ACCOUNT: &str = "AC123";
const FROM: &str = "+14045550000";
const PHONE: &str = "+14045550123";
/// The server's Twilio timeout in these tests.
const TIMEOUT_MS: u64 = 500;

/// How the fake answers one `POST …/Messages.json`.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// 500, nothing created.
    ServerError,
    /// 201 with the new message.
    Created,
    /// Creates the message, then answers only after the client has given up.
    CreatedTooLate,
    /// Creates nothing and answers only after the client has given up.
    LostTooLate,
}

/// A message the fake holds.
#[derive(Debug, Clone)]
struct Held {
    sid: String,
    to: String,
    from: String,
    body: String,
    created: DateTime<Utc>,
}

#[derive(Default)]
struct Fake {
    /// Answers to the next POSTs, in order; `Created` once it is empty.
    script: VecDeque<Answer>,
    /// When each POST arrived, with its form.
    posts: Vec<(Instant, Vec<(String, String)>)>,
    /// The messages "Twilio" created.
    messages: Vec<Held>,
    /// The query of each list request, with its Authorization header.
    lists: Vec<(String, Vec<(String, String)>)>,
    /// The largest page the fake serves, whatever `PageSize` asks.
    page_cap: usize,
}

type Shared = Arc<Mutex<Fake>>;

/// A stand-in for Twilio's Messages resource: create (`POST`) and list (`GET`, filtered by
/// `To`, `From` and `DateSent>`, newest first, paged with `next_page_uri`).
async fn fake_twilio(script: &[Answer], page_cap: usize) -> (String, Shared) {
    let fake: Shared = Arc::new(Mutex::new(Fake {
        script: script.iter().copied().collect(),
        page_cap,
        ..Fake::default()
    }));
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{sid}/Messages.json",
            post(create).get(list),
        )
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fake)
}

fn resource(m: &Held) -> serde_json::Value {
    json!({
        "sid": m.sid,
        "account_sid": ACCOUNT,
        "to": m.to,
        "from": m.from,
        "body": m.body,
        "status": "sent",
        "direction": "outbound-api",
        "date_created": m.created.to_rfc2822(),
        "date_sent": m.created.to_rfc2822(),
        "num_segments": "1",
    })
}

async fn create(
    State(fake): State<Shared>,
    body: axum::body::Bytes,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (answer, message) = {
        let mut fake = fake.lock().expect("lock");
        fake.posts.push((Instant::now(), form.clone()));
        let answer = fake.script.pop_front().unwrap_or(Answer::Created);
        let message = Held {
            sid: format!("SM{:032x}", fake.posts.len()),
            to: field("To"),
            from: field("From"),
            body: field("Body"),
            created: Utc::now(),
        };
        if matches!(answer, Answer::Created | Answer::CreatedTooLate) {
            fake.messages.push(message.clone());
        }
        (answer, message)
    };
    if matches!(answer, Answer::CreatedTooLate | Answer::LostTooLate) {
        tokio::time::sleep(Duration::from_millis(TIMEOUT_MS * 4)).await;
    }
    match answer {
        Answer::Created | Answer::CreatedTooLate => {
            (StatusCode::CREATED, axum::Json(resource(&message)))
        }
        Answer::ServerError | Answer::LostTooLate => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"code": 20500, "message": "Internal Server Error", "status": 500})),
        ),
    }
}

async fn list(
    State(fake): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> axum::Json<serde_json::Value> {
    let query: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut fake = fake.lock().expect("lock");
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    fake.lists.push((auth, query.clone()));
    let mut matching: Vec<&Held> = fake
        .messages
        .iter()
        .filter(|m| param("To").is_none_or(|to| m.to == to))
        .filter(|m| param("From").is_none_or(|from| m.from == from))
        .filter(|m| {
            param("DateSent>")
                .is_none_or(|day| m.created.date_naive().format("%Y-%m-%d").to_string() >= day)
        })
        .collect();
    matching.sort_by_key(|m| std::cmp::Reverse(m.created));
    let size = param("PageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(50)
        .min(fake.page_cap);
    let page = param("Page")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let messages: Vec<_> = matching
        .iter()
        .skip(page * size)
        .take(size)
        .map(|m| resource(m))
        .collect();
    let path = format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json");
    let next = ((page + 1) * size < matching.len()).then(|| {
        let mut next = form_urlencoded::Serializer::new(String::new());
        for (k, v) in query
            .iter()
            .filter(|(k, _)| k != "Page" && k != "PageToken")
        {
            next.append_pair(k, v);
        }
        next.append_pair("Page", &(page + 1).to_string());
        next.append_pair("PageToken", &format!("PASM{page}"));
        format!("{path}?{}", next.finish())
    });
    axum::Json(json!({
        "messages": messages,
        "page": page,
        "page_size": size,
        "uri": path,
        "first_page_uri": path,
        "next_page_uri": next,
        "previous_page_uri": null,
    }))
}

/// The application sending through the fake Twilio at `base`.
async fn server(db: &TestDb, base: &str) -> TestApp {
    let mut config = config::sms_sending(base, ACCOUNT, FROM);
    config.twilio_timeout = Duration::from_millis(TIMEOUT_MS);
    TestApp::spawn_on(db, config).await
}

/// Queues `body` for `PHONE`; returns the row's id.
async fn queue(db: &TestDb, body: &str) -> uuid::Uuid {
    sqlx::query_scalar(
        "INSERT INTO \"Outbox\" (channel, recipient, body) VALUES ('sms', $1, $2) RETURNING id",
    )
    .bind(PHONE)
    .bind(body)
    .fetch_one(&mut db.conn().await)
    .await
    .expect("queue")
}

/// A row's status, attempts, provider id, last error, and whether `sent_at` is set.
type Row = (String, i32, Option<String>, Option<String>, bool);

async fn row(pool: &PgPool, id: uuid::Uuid) -> Row {
    sqlx::query_as(
        "SELECT status, attempts, provider_message_id, last_error, sent_at IS NOT NULL
         FROM \"Outbox\" WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("outbox row")
}

/// Makes an uncertain row due now instead of waiting out the settle time (10 s) before its
/// check, as other tests age rows rather than wait.
async fn settled(server: &TestApp, id: uuid::Uuid) {
    let (status, ..) = row(&server.pool, id).await;
    assert_eq!(status, "pending", "an uncertain row waits for its check");
    sqlx::query("UPDATE \"Outbox\" SET next_attempt_at = now() WHERE id = $1")
        .bind(id)
        .execute(&server.pool)
        .await
        .expect("settle");
}

/// Runs the jobs until the row is sent (a retry waits for its backoff to pass), then once more
/// to see that nothing is left to send.
async fn until_sent(server: &TestApp, id: uuid::Uuid) -> Row {
    helpers::eventually("the message is sent", || async {
        server.run_jobs_until_idle().await;
        row(&server.pool, id).await.0 == "sent"
    })
    .await;
    assert_eq!(server.run_jobs_until_idle().await, 0, "no second send");
    row(&server.pool, id).await
}

#[tokio::test]
async fn a_provider_error_is_retried_with_backoff_and_delivered_once() {
    let db = TestDb::migrated().await;
    let (base, fake) = fake_twilio(&[Answer::ServerError, Answer::ServerError], 50).await;
    let server = server(&db, &base).await;
    let id = queue(&db, "Your estimate is $259.").await;
    let (status, attempts, sid, error, _) = until_sent(&server, id).await;
    let fake = fake.lock().expect("lock");
    assert_eq!((status.as_str(), attempts), ("sent", 3));
    assert_eq!(fake.posts.len(), 3, "two errors, then one send");
    assert_eq!(fake.messages.len(), 1, "delivered once");
    assert_eq!(sid.as_deref(), Some(fake.messages[0].sid.as_str()));
    assert_eq!(error, None);
    // Backoff: about 2 s after the first failure, about 4 s after the second.
    let gaps: Vec<Duration> = fake
        .posts
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .collect();
    assert!(gaps[0] >= Duration::from_millis(1500), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(3500), "{gaps:?}");
    assert!(gaps[1] > gaps[0], "the backoff grows: {gaps:?}");
    assert!(
        fake.lists.is_empty(),
        "a 500 means not created: nothing to check"
    );
}

#[tokio::test]
async fn a_send_that_timed_out_but_reached_twilio_is_recorded_not_sent_again() {
    let db = TestDb::migrated().await;
    let (base, fake) = fake_twilio(&[Answer::CreatedTooLate], 50).await;
    let server = server(&db, &base).await;
    let body = "For a couch your estimate is $259.";
    let id = queue(&db, body).await;
    // The timeout leaves the row uncertain: still pending, first attempt recorded.
    server.run_jobs_until_idle().await;
    let (status, attempts, _, error, since) = row(&server.pool, id).await;
    assert!(
        status == "pending"
            && attempts == 1
            && since
            && error
                .as_deref()
                .is_some_and(|e| e.starts_with("uncertain:") && e.contains("timed out")),
        "the row is uncertain: {status} {attempts} {since} {error:?}"
    );
    settled(&server, id).await;
    let (status, _, sid, error, _) = until_sent(&server, id).await;
    let fake = fake.lock().expect("lock");
    assert_eq!(status, "sent");
    assert_eq!(fake.posts.len(), 1, "sent once, never twice");
    assert_eq!(fake.messages.len(), 1);
    assert_eq!(
        sid.as_deref(),
        Some(fake.messages[0].sid.as_str()),
        "the SID found in Twilio's list is recorded"
    );
    assert_eq!(error, None);
    // The check used Twilio's real filters, with the account's credentials.
    let (auth, query) = fake.lists.first().expect("the list was read");
    assert!(auth.starts_with("Basic "), "{auth}");
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(param("To"), Some(PHONE));
    assert_eq!(param("From"), Some(FROM));
    let today = Utc::now().date_naive();
    let day = param("DateSent>").expect("DateSent> filter");
    assert!(
        day == today.format("%Y-%m-%d").to_string()
            || day
                == today
                    .pred_opt()
                    .expect("day")
                    .format("%Y-%m-%d")
                    .to_string(),
        "{day}"
    );
}

#[tokio::test]
async fn a_send_that_timed_out_before_reaching_twilio_is_sent_again_once() {
    let db = TestDb::migrated().await;
    let (base, fake) = fake_twilio(&[Answer::LostTooLate], 50).await;
    let server = server(&db, &base).await;
    let id = queue(&db, "Reply 1, 2 or 3 to pick a window.").await;
    server.run_jobs_until_idle().await;
    settled(&server, id).await;
    let (status, attempts, sid, _, _) = until_sent(&server, id).await;
    let fake = fake.lock().expect("lock");
    assert_eq!((status.as_str(), attempts), ("sent", 2));
    assert_eq!(fake.posts.len(), 2, "the lost try, then one send");
    assert!(!fake.lists.is_empty(), "checked before sending again");
    assert_eq!(fake.messages.len(), 1, "delivered once");
    assert_eq!(sid.as_deref(), Some(fake.messages[0].sid.as_str()));
}

#[tokio::test]
async fn the_check_pages_through_the_list_and_skips_an_identical_earlier_message() {
    let db = TestDb::migrated().await;
    let (base, fake) = fake_twilio(&[Answer::CreatedTooLate], 2).await;
    let body = "Sorry, I didn't catch that. What would you like hauled away?";
    // The same text went to the same customer a minute ago, and its row has its SID.
    let earlier = Held {
        sid: "SMearlier".into(),
        to: PHONE.into(),
        from: FROM.into(),
        body: body.into(),
        created: Utc::now() - chrono::TimeDelta::seconds(60),
    };
    fake.lock().expect("lock").messages.push(earlier);
    sqlx::query(
        "INSERT INTO \"Outbox\" (channel, recipient, body, status, provider_message_id, sent_at)
         VALUES ('sms', $1, $2, 'sent', 'SMearlier', now() - interval '1 minute')",
    )
    .bind(PHONE)
    .bind(body)
    .execute(&mut db.conn().await)
    .await
    .expect("earlier row");
    let server = server(&db, &base).await;
    let id = queue(&db, body).await;
    // While the send hangs, more messages to the customer push it onto a later page.
    let more = async {
        helpers::eventually("the send reached Twilio", || async {
            !fake.lock().expect("lock").posts.is_empty()
        })
        .await;
        for n in 0..5 {
            fake.lock().expect("lock").messages.push(Held {
                sid: format!("SMother{n}"),
                to: PHONE.into(),
                from: FROM.into(),
                body: format!("Reminder number {n}"),
                created: Utc::now() + chrono::TimeDelta::seconds(1),
            });
        }
    };
    tokio::join!(server.run_jobs_until_idle(), more);
    settled(&server, id).await;
    let (status, _, sid, _, _) = until_sent(&server, id).await;
    let fake = fake.lock().expect("lock");
    assert_eq!(status, "sent");
    assert_eq!(fake.posts.len(), 1, "sent once, never twice");
    assert_eq!(sid.as_deref(), Some(fake.messages[1].sid.as_str()));
    assert!(
        fake.lists
            .iter()
            .any(|(_, q)| q.iter().any(|(k, _)| k == "PageToken")),
        "the next pages were read: {:?}",
        fake.lists
    );
}

/// A TCP relay to `upstream` that drops the first connection as soon as the answer starts:
/// the request reached the provider, the client sees the connection close before a response.
async fn resetting_relay(upstream: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let upstream = upstream.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut client, _)) = listener.accept().await {
            let mut server = tokio::net::TcpStream::connect(&upstream)
                .await
                .expect("connect upstream");
            if !first {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                continue;
            }
            first = false;
            tokio::spawn(async move {
                let (mut client_read, _client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                let forward = async {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = client_read.read(&mut buf).await {
                        if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let mut byte = [0u8; 1];
                tokio::select! {
                    () = forward => {}
                    _ = server_read.read(&mut byte) => {}
                }
                // Dropping both halves closes the client's connection without an answer.
            });
        }
    });
    base
}

#[tokio::test]
async fn a_connection_reset_after_the_request_was_sent_is_checked_not_sent_again() {
    let db = TestDb::migrated().await;
    let (base, fake) = fake_twilio(&[], 50).await;
    let relay = resetting_relay(base).await;
    let server = server(&db, &relay).await;
    let id = queue(&db, "You're booked! Thu Nov 26, 10:00–11:30 AM.").await;
    server.run_jobs_until_idle().await;
    let error = row(&server.pool, id).await.3.unwrap_or_default();
    assert!(
        error.starts_with("uncertain:"),
        "the row is uncertain: {error}"
    );
    assert!(
        error.contains("closed") && !error.contains("timed out"),
        "a dropped connection, not a timeout: {error}"
    );
    settled(&server, id).await;
    let (status, _, sid, _, _) = until_sent(&server, id).await;
    let fake = fake.lock().expect("lock");
    assert_eq!(status, "sent");
    assert_eq!(fake.posts.len(), 1, "sent once, never twice");
    assert_eq!(sid.as_deref(), Some(fake.messages[0].sid.as_str()));
}

/// Messages held while no credentials were configured go out once they are, even when the
/// first attempt to put them back in the queue fails: the outbox job reports the failure and
/// tries again, instead of dropping the error and leaving them held for good.
#[tokio::test]
async fn held_messages_are_released_even_when_the_first_release_fails() {
    let db = TestDb::migrated().await;
    let id = queue(&db, "Your pickup is booked").await;
    let mut conn = db.conn().await;
    sqlx::query("UPDATE \"Outbox\" SET status = 'held' WHERE id = $1")
        .bind(id)
        .execute(&mut conn)
        .await
        .expect("hold");
    // The database refuses the release for a while (a lock timeout, a failover).
    sqlx::query(
        "CREATE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'release refused'; END $$",
    )
    .execute(&mut conn)
    .await
    .expect("function");
    sqlx::query(
        "CREATE TRIGGER refuse_release BEFORE UPDATE ON \"Outbox\"
         FOR EACH ROW WHEN (OLD.status = 'held') EXECUTE FUNCTION refuse_release()",
    )
    .execute(&mut conn)
    .await
    .expect("trigger");
    let (base, fake) = fake_twilio(&[], 50).await;
    let server = server(&db, &base).await;
    let refused = server
        .try_run_jobs_until_idle()
        .await
        .expect_err("the failed release is reported");
    assert!(refused.to_string().contains("release refused"), "{refused}");
    assert_eq!(row(&server.pool, id).await.0, "held");
    sqlx::query("DROP TRIGGER refuse_release ON \"Outbox\"")
        .execute(&mut conn)
        .await
        .expect("drop trigger");
    let (status, ..) = until_sent(&server, id).await;
    assert_eq!(status, "sent");
    assert_eq!(fake.lock().expect("lock").posts.len(), 1, "sent once");
}

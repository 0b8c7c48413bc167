//! The quoting conversation over signed Twilio webhooks, against a running server and a real
//! PostgreSQL: the reference conversation, and the faults the original service had.

use crate::helpers;
use crate::helpers::twilio::{
    TOKEN, api_token, form, owner_token, post_signed, sms, texts_to as replies_to,
};
use crate::helpers::{TestApp, TestDb, config};
use junkquote::app::Config;
use junkquote::channels::signature::twilio_signature;
use uuid::Uuid;

const PHONE: &str = "+14045550123";

async fn post_sms(url: String, sid: String, from: String, body: String) -> reqwest::Response {
    post_signed(url, &form(&sid, &from, &body)).await
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&mut db.conn().await)
        .await
        .expect(sql)
}

#[tokio::test]
async fn the_reference_conversation_books_a_job() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;

    let response = sms(
        &server,
        "SM0001",
        PHONE,
        "Hi, I need a couch, a fridge and 5 bags of trash picked up",
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/xml");
    let replies = replies_to(db, PHONE).await;
    assert_eq!(replies.len(), 1);
    assert!(
        replies[0].contains("$425"),
        "states the price: {}",
        replies[0]
    );
    assert!(
        replies[0].contains("address"),
        "asks for the address: {}",
        replies[0]
    );

    sms(&server, "SM0002", PHONE, "123 Main St, Canton GA 30114").await;
    let replies = replies_to(db, PHONE).await;
    assert_eq!(replies.len(), 2);
    assert!(
        replies[1].contains("1) "),
        "numbered windows: {}",
        replies[1]
    );
    assert!(replies[1].contains("Reply 1"), "{}", replies[1]);

    sms(&server, "SM0003", PHONE, "1").await;
    let replies = replies_to(db, PHONE).await;
    assert_eq!(replies.len(), 3);
    assert!(replies[2].starts_with("You're booked!"), "{}", replies[2]);
    // The confirmation names the window that was offered first.
    let first_offer = replies[1]
        .lines()
        .find(|l| l.starts_with("1) "))
        .expect("offer 1");
    assert!(
        replies[2].contains(first_offer.trim_start_matches("1) ")),
        "{} / {first_offer}",
        replies[2]
    );

    let mut conn = db.conn().await;
    let customers: Vec<(Uuid, Option<String>)> =
        sqlx::query_as("SELECT id, phone FROM \"Customer\"")
            .fetch_all(&mut conn)
            .await
            .expect("customers");
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].1.as_deref(), Some(PHONE));
    let channels: Vec<String> = sqlx::query_scalar("SELECT channel::text FROM \"Conversation\"")
        .fetch_all(&mut conn)
        .await
        .expect("conversations");
    assert_eq!(channels, ["sms"]);
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT role::text FROM \"Message\" ORDER BY created_at")
            .fetch_all(&mut conn)
            .await
            .expect("messages");
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ]
    );
    assert_eq!(count(db, "SELECT count(*) FROM \"Quote\"").await, 1);
    let (status, customer): (String, Option<Uuid>) =
        sqlx::query_as("SELECT status::text, customer_id FROM \"Job\"")
            .fetch_one(&mut conn)
            .await
            .expect("job");
    assert_eq!(status, "booked");
    assert_eq!(customer, Some(customers[0].0));
    let items: Vec<(String, i32)> =
        sqlx::query_as("SELECT description, quantity FROM \"JobItem\" ORDER BY description")
            .fetch_all(&mut conn)
            .await
            .expect("items");
    assert_eq!(
        items,
        [
            ("bag of trash".to_owned(), 5),
            ("couch".to_owned(), 1),
            ("refrigerator".to_owned(), 1)
        ]
    );
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT event_type, actor FROM \"JobEvent\" ORDER BY created_at")
            .fetch_all(&mut conn)
            .await
            .expect("events");
    assert_eq!(
        events,
        [
            ("created".to_owned(), "agent".to_owned()),
            ("booked".to_owned(), "agent".to_owned())
        ]
    );
    let (stage, address): (String, Option<String>) =
        sqlx::query_as("SELECT stage::text, address FROM \"Lead\"")
            .fetch_one(&mut conn)
            .await
            .expect("lead");
    assert_eq!(stage, "booked");
    assert_eq!(address.as_deref(), Some("123 Main St, Canton GA 30114"));
    assert_eq!(count(db, "SELECT count(*) FROM \"Booking\"").await, 1);
    server.shutdown().await.expect("stops cleanly");
}

#[tokio::test]
async fn a_forged_or_missing_signature_is_refused_and_nothing_is_stored() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let params = form("SM0100", PHONE, "a couch");
    let client = reqwest::Client::new();
    let forged = twilio_signature(
        "not-the-token",
        "https://junk.example/api/twilio/sms",
        &params,
    );
    for signature in [Some(forged.as_str()), None, Some("")] {
        let mut request = client.post(server.url("/api/twilio/sms")).form(&params);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        let response = request.send().await.expect("post");
        assert_eq!(response.status(), 403);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    // Signed for another URL: refused too.
    let elsewhere = twilio_signature(TOKEN, "https://evil.example/api/twilio/sms", &params);
    let response = client
        .post(server.url("/api/twilio/sms"))
        .header("X-Twilio-Signature", elsewhere)
        .form(&params)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 403);
    for table in ["Customer", "Conversation", "Message", "Lead", "Outbox"] {
        assert_eq!(
            count(db, &format!("SELECT count(*) FROM \"{table}\"")).await,
            0,
            "{table}"
        );
    }
}

#[tokio::test]
async fn without_the_auth_token_the_server_refuses_to_start_or_the_webhook_is_off() {
    let db = TestDb::migrated().await;
    let out = helpers::command(&["serve", "--addr", "127.0.0.1:0"], Some(&db.url), None)
        .env("TWILIO_WEBHOOK_URL", "https://junk.example/api/twilio/sms")
        .env_remove("TWILIO_AUTH_TOKEN")
        .output()
        .expect("run");
    let line = helpers::one_line_error(&out, 1);
    assert!(line.contains("TWILIO_AUTH_TOKEN is not"), "{line}");

    // Neither set: the SMS channel is off, and its webhook accepts nothing.
    let server = TestApp::spawn_on(&db, Config::default()).await;
    let response = reqwest::Client::new()
        .post(server.url("/api/twilio/sms"))
        .form(&form("SM0200", PHONE, "a couch"))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 503);
    assert_eq!(count(&db, "SELECT count(*) FROM \"Message\"").await, 0);
}

#[tokio::test]
async fn a_retried_delivery_is_stored_and_answered_once() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    // Three deliveries of one MessageSid, at the same time and then once more later.
    let (a, b, c) = tokio::join!(
        sms(&server, "SM0300", PHONE, "a couch please"),
        sms(&server, "SM0300", PHONE, "a couch please"),
        sms(&server, "SM0300", PHONE, "a couch please"),
    );
    for response in [a, b, c] {
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        sms(&server, "SM0300", PHONE, "a couch please")
            .await
            .status(),
        200
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Message\" WHERE role = 'user'").await,
        1
    );
    assert_eq!(replies_to(db, PHONE).await.len(), 1);
    assert_eq!(count(db, "SELECT count(*) FROM \"Customer\"").await, 1);
}

#[tokio::test]
async fn ten_messages_at_once_are_all_stored_and_answered_in_order() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let url = server.url("/api/twilio/sms");
            tokio::spawn(post_sms(
                url,
                format!("SM04{i:02}"),
                PHONE.to_owned(),
                format!("message number {i}"),
            ))
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.await.expect("join").status(), 200);
    }
    server.answered().await;
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Customer\"").await,
        1,
        "one customer"
    );
    assert_eq!(count(db, "SELECT count(*) FROM \"Conversation\"").await, 1);
    let mut conn = db.conn().await;
    // Answered once each, in arrival order (a burst may be stored before the first answer).
    let arrival: Vec<Uuid> =
        sqlx::query_scalar("SELECT message_id FROM \"InboundMessage\" ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .expect("arrival");
    assert_eq!(arrival.len(), 10);
    let answered: Vec<Uuid> = sqlx::query_scalar(
        "SELECT (metadata->>'in_reply_to')::uuid FROM \"Message\" WHERE role = 'assistant' ORDER BY created_at",
    )
    .fetch_all(&mut conn)
    .await
    .expect("answers");
    assert_eq!(answered, arrival);
    let unprocessed = count(
        db,
        "SELECT count(*) FROM \"InboundMessage\" WHERE processed_at IS NULL",
    )
    .await;
    assert_eq!(unprocessed, 0);
}

#[tokio::test]
async fn odd_messages_get_a_polite_reply_never_a_500() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let long = "junk ".repeat(320);
    let bodies = [
        "",
        long.as_str(),
        "🛋️🛋️🗑️",
        "Hola, necesito que recojan un sofá",
        "asdf qwer zxcv",
        "?",
    ];
    for (i, body) in bodies.iter().enumerate() {
        let from = format!("+1404555{:04}", 1000 + i);
        let response = sms(&server, &format!("SM05{i:02}"), &from, body).await;
        assert_eq!(response.status(), 200, "{body:?}");
        let replies = replies_to(db, &from).await;
        assert_eq!(replies.len(), 1, "{body:?}");
        assert!(!replies[0].is_empty());
    }
    // Oversized bodies are refused before anything is read.
    let huge = "x".repeat(100 * 1024);
    let params = form("SM0600", PHONE, &huge);
    let response = post_signed(server.url("/api/twilio/sms"), &params).await;
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_large");
}

#[tokio::test]
async fn two_customers_picking_the_same_window_get_one_booking() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let (a, b) = ("+14045550201", "+14045550202");
    for (n, phone) in [a, b].iter().enumerate() {
        sms(&server, &format!("SM07{n}0"), phone, "a couch").await;
        sms(
            &server,
            &format!("SM07{n}1"),
            phone,
            "12 Oak St, Canton GA 30114",
        )
        .await;
    }
    // Both take A's first window at once (B's offers were computed a moment later and may
    // start one step further on: B picks the same window by its own number).
    let offers_a = replies_to(db, a).await;
    let offers_b = replies_to(db, b).await;
    let first_a = offers_a[1]
        .lines()
        .find_map(|l| l.strip_prefix("1) "))
        .expect("offer")
        .to_owned();
    let b_number = offers_b[1]
        .lines()
        .filter_map(|l| l.split_once(") "))
        .find(|(_, w)| *w == first_a)
        .map(|(n, _)| n.to_owned())
        .expect("B was offered A's first window too");
    let (ra, rb) = tokio::join!(
        sms(&server, "SM0720", a, "1"),
        sms(&server, "SM0721", b, &b_number)
    );
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Booking\"").await,
        1,
        "one booking"
    );
    let last_a = replies_to(db, a).await.pop().expect("reply");
    let last_b = replies_to(db, b).await.pop().expect("reply");
    let booked = [&last_a, &last_b]
        .iter()
        .filter(|r| r.starts_with("You're booked!"))
        .count();
    assert_eq!(booked, 1, "{last_a} / {last_b}");
    let loser = if last_a.starts_with("You're booked!") {
        &last_b
    } else {
        &last_a
    };
    assert!(
        loser.starts_with("Sorry, that window was just taken"),
        "{loser}"
    );
    assert!(loser.contains("1) "), "new windows are offered: {loser}");
    assert!(!loser.contains(&first_a), "not the taken one: {loser}");
}

/// The requests a fake provider received: (Authorization header, form fields).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A stand-in for Twilio's Messages API: answers 500 to the first `failures` requests, then
/// 201 with a message SID, and records every request's form.
async fn fake_twilio(
    failures: usize,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<(String, String)>)>>>,
) {
    use axum::routing::post;
    use std::sync::Arc;
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let record = record.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let form: Vec<(String, String)> =
                        form_urlencoded::parse(&body).into_owned().collect();
                    let n = {
                        let mut seen = record.lock().expect("lock");
                        seen.push((auth, form));
                        seen.len()
                    };
                    if n <= failures {
                        (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            "{\"code\":20500}".to_owned(),
                        )
                    } else {
                        (
                            axum::http::StatusCode::CREATED,
                            format!("{{\"sid\":\"SMout{n}\"}}"),
                        )
                    }
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
async fn replies_are_sent_through_twilio_and_a_failed_send_is_retried_not_lost_or_doubled() {
    let db = TestDb::migrated().await;
    let (base, seen) = fake_twilio(1).await;
    let server = TestApp::spawn_on(&db, config::sms_sending(&base, "AC123", "+14045550000")).await;
    sms(&server, "SM0800", PHONE, "a couch").await;
    let outbox = || async {
        sqlx::query_as::<_, (String, i32, Option<String>)>(
            "SELECT status, attempts, provider_message_id FROM \"Outbox\"",
        )
        .fetch_one(&mut db.conn().await)
        .await
        .expect("outbox")
    };
    // The first try fails; the retry is due after a backoff, which the test skips.
    server.run_jobs_until_idle().await;
    assert_eq!(outbox().await.0, "pending", "kept for a retry");
    sqlx::query("UPDATE \"Outbox\" SET next_attempt_at = now()")
        .execute(&mut db.conn().await)
        .await
        .expect("due now");
    server.run_jobs_until_idle().await;
    let (status, attempts, sid) = outbox().await;
    assert_eq!(
        (status.as_str(), attempts),
        ("sent", 2),
        "one failure, then sent"
    );
    assert_eq!(sid.as_deref(), Some("SMout2"));
    // Nothing is left to send: count.
    assert_eq!(server.run_jobs_until_idle().await, 0);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen.len(),
        2,
        "one failed attempt and one send, never two sends"
    );
    let (auth, form) = &seen[1];
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("AC123:{TOKEN}"))
    );
    assert_eq!(auth, &expected);
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(field("To").as_deref(), Some(PHONE));
    assert_eq!(field("From").as_deref(), Some("+14045550000"));
    assert!(
        field("Body").unwrap_or_default().contains("$259"),
        "{form:?}"
    );
}

#[tokio::test]
async fn without_sending_credentials_replies_are_kept_in_the_outbox() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(&server, "SM0900", PHONE, "a couch").await;
    server.run_jobs_until_idle().await;
    let status: String = sqlx::query_scalar("SELECT status FROM \"Outbox\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("outbox");
    assert_eq!(status, "held", "the reply is held");
}

#[tokio::test]
async fn web_chat_quotes_and_books_behind_a_session_token() {
    let server = TestApp::spawn(Config::default()).await;
    let db = &server.db;
    let client = reqwest::Client::new();
    let session: serde_json::Value = client
        .post(server.url("/api/chat/sessions"))
        .send()
        .await
        .expect("open")
        .json()
        .await
        .expect("json");
    let (id, token) = (
        session["session_id"].as_str().expect("id"),
        session["token"].as_str().expect("token"),
    );
    let say = |text: &str| {
        client
            .post(server.url(&format!("/api/chat/sessions/{id}/messages")))
            .bearer_auth(token)
            .json(&serde_json::json!({"text": text}))
            .send()
    };
    let reply: serde_json::Value = say("2 mattresses and a dresser")
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let first = reply["replies"][0]["content"].as_str().expect("reply");
    assert!(first.contains('$'), "{first}");
    let reply: serde_json::Value = say("45 Oak Avenue, Marietta GA 30060")
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert!(
        reply["replies"][0]["content"]
            .as_str()
            .expect("reply")
            .contains("1) ")
    );
    let reply: serde_json::Value = say("2").await.expect("post").json().await.expect("json");
    assert!(
        reply["replies"][0]["content"]
            .as_str()
            .expect("reply")
            .starts_with("You're booked!")
    );

    let thread: serde_json::Value = client
        .get(server.url(&format!("/api/chat/sessions/{id}/messages")))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(thread["messages"].as_array().expect("messages").len(), 6);
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Job\" WHERE status = 'booked'").await,
        1
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Outbox\"").await,
        0,
        "web replies are read, not sent"
    );

    // Bad input: no token, another session's token, an empty or oversized text, broken JSON.
    let other: serde_json::Value = client
        .post(server.url("/api/chat/sessions"))
        .send()
        .await
        .expect("open")
        .json()
        .await
        .expect("json");
    let url = server.url(&format!("/api/chat/sessions/{id}/messages"));
    let no_token = client
        .post(&url)
        .json(&serde_json::json!({"text": "hi"}))
        .send()
        .await
        .expect("post");
    assert_eq!(no_token.status(), 401);
    let wrong = client
        .post(&url)
        .bearer_auth(other["token"].as_str().expect("token"))
        .json(&serde_json::json!({"text": "hi"}))
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), 403);
    assert_eq!(say("   ").await.expect("post").status(), 422);
    assert_eq!(say(&"x".repeat(2001)).await.expect("post").status(), 422);
    let broken = client
        .post(&url)
        .bearer_auth(token)
        .body("{")
        .send()
        .await
        .expect("post");
    assert_eq!(broken.status(), 400);
    let missing = client
        .get(server.url(&format!(
            "/api/chat/sessions/{}/messages",
            uuid::Uuid::new_v4()
        )))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Message\" WHERE role = 'user'").await,
        3,
        "nothing bad was stored"
    );
}

#[tokio::test]
async fn big_quotes_wait_for_the_owner_whose_token_works_once() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let client = reqwest::Client::new();
    sms(
        &server,
        "SM1000",
        PHONE,
        "a hot tub, a piano, 2 couches and 20 bags of trash",
    )
    .await;
    let replies = replies_to(db, PHONE).await;
    assert!(
        replies[0].contains("The owner will confirm this price shortly"),
        "{}",
        replies[0]
    );
    sms(&server, "SM1001", PHONE, "9 Elm St, Canton GA 30114").await;
    sms(&server, "SM1002", PHONE, "1").await;
    let replies = replies_to(db, PHONE).await;
    assert!(
        replies[2].contains("with the owner"),
        "booking waits: {}",
        replies[2]
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Job\"").await,
        0,
        "an unapproved quote cannot be booked"
    );

    // The operator API needs a token.
    let token = api_token(db);
    let unauthenticated = client
        .get(server.url("/api/v1/approvals"))
        .send()
        .await
        .expect("get");
    assert_eq!(unauthenticated.status(), 401);
    let not_an_id = client
        .post(server.url("/api/v1/approvals/not-a-uuid"))
        .header("Authorization", format!("bearer {token}"))
        .json(&serde_json::json!({"decision": "approve"}))
        .send()
        .await
        .expect("post");
    assert_eq!(
        not_an_id.status(),
        404,
        "the scheme is case-insensitive; the id is not one"
    );
    let body: serde_json::Value = not_an_id.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "not_found");
    let wrong = client
        .get(server.url("/api/v1/approvals"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), 401);
    let pending: serde_json::Value = client
        .get(server.url("/api/v1/approvals"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let pending = pending["approvals"].as_array().expect("list").clone();
    assert_eq!(pending.len(), 1);
    assert!(
        pending[0]["explanation"]
            .as_str()
            .expect("explanation")
            .contains("Total:")
    );

    // The owner's link: an unknown token, a bad decision, then approve once.
    let owner = owner_token(db).await;
    let decide = |token: String, decision: &'static str| {
        client
            .post(server.url(&format!("/api/approvals/{token}")))
            .json(&serde_json::json!({"decision": decision}))
            .send()
    };
    assert_eq!(
        decide("not-a-token".into(), "approve")
            .await
            .expect("post")
            .status(),
        404
    );
    assert_eq!(
        decide(owner.clone(), "maybe").await.expect("post").status(),
        422
    );
    let approved = decide(owner.clone(), "approve").await.expect("post");
    assert_eq!(approved.status(), 200);
    let again = decide(owner.clone(), "deny").await.expect("post");
    assert_eq!(again.status(), 409, "the token works once");
    let replies = replies_to(db, PHONE).await;
    let told = replies.last().expect("reply");
    assert!(
        told.starts_with("Good news: the owner confirmed your estimate"),
        "{told}"
    );
    assert!(
        told.contains("1) "),
        "windows follow, the address being known: {told}"
    );
    sms(&server, "SM1003", PHONE, "1").await;
    assert!(
        replies_to(db, PHONE)
            .await
            .last()
            .expect("reply")
            .starts_with("You're booked!")
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Job\" WHERE status = 'booked'").await,
        1
    );

    // An expired link is refused; the operator can still decide by id.
    let other = "+14045550999";
    sms(&server, "SM1010", other, "a hot tub, a piano and 3 couches").await;
    let expired = owner_token(db).await;
    sqlx::query(
        "UPDATE \"Approval\" SET expires_at = now() - interval '1 hour' WHERE status = 'pending'",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("expire");
    let response = decide(expired, "approve").await.expect("post");
    assert_eq!(response.status(), 409);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("expired")
    );
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM \"Approval\" WHERE status = 'pending'")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("pending");
    let denied = client
        .post(server.url(&format!("/api/v1/approvals/{id}")))
        .bearer_auth(&token)
        .json(&serde_json::json!({"decision": "deny"}))
        .send()
        .await
        .expect("post");
    assert_eq!(denied.status(), 200);
    assert!(
        replies_to(db, other)
            .await
            .last()
            .expect("reply")
            .starts_with("Sorry, we can't confirm")
    );
    let approver: String = sqlx::query_scalar("SELECT approver FROM \"Approval\" WHERE id = $1")
        .bind(id)
        .fetch_one(&mut db.conn().await)
        .await
        .expect("approver");
    assert_eq!(approver, "operator:ops");
}

#[tokio::test]
async fn the_pause_switch_stops_every_automated_reply() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let token = api_token(db);
    let client = reqwest::Client::new();
    let pause = |paused: bool| {
        client
            .put(server.url("/api/v1/settings/paused"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"paused": paused}))
            .send()
    };
    assert_eq!(pause(true).await.expect("put").status(), 200);
    sms(&server, "SM1100", PHONE, "a couch").await;
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Message\" WHERE role = 'user'").await,
        1,
        "kept"
    );
    assert!(
        replies_to(db, PHONE).await.is_empty(),
        "not answered while paused"
    );
    // The leftovers job does not answer it either: it was read, just not answered.
    server.run_jobs_until_idle().await;
    assert!(replies_to(db, PHONE).await.is_empty());
    assert_eq!(pause(false).await.expect("put").status(), 200);
    sms(&server, "SM1101", PHONE, "and a fridge").await;
    assert_eq!(replies_to(db, PHONE).await.len(), 1, "answered again");
}

/// Plays the reference conversation for `phone` through to a booking.
async fn book(server: &TestApp, phone: &str, prefix: &str) {
    sms(
        server,
        &format!("{prefix}1"),
        phone,
        "a couch, a fridge and 5 bags of trash",
    )
    .await;
    sms(
        server,
        &format!("{prefix}2"),
        phone,
        "123 Main St, Canton GA 30114",
    )
    .await;
    sms(server, &format!("{prefix}3"), phone, "1").await;
}

#[tokio::test]
async fn a_reminder_goes_out_once_on_the_customers_channel() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    book(&server, PHONE, "SM120").await;
    // Move the pickup to an hour from now: both the 24 h and the 2 h reminders are due, and
    // the customer should get one reminder, not two.
    sqlx::query(
        "UPDATE \"Job\" SET window_start = now() + interval '1 hour', window_end = now() + interval '3 hours'",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("move");
    server.run_jobs_until_idle().await;
    let last = replies_to(db, PHONE).await.pop().expect("reply");
    assert!(last.starts_with("Reminder:"), "a reminder: {last}");
    // Another round finds nothing more to send.
    server.run_jobs_until_idle().await;
    let reminders: Vec<String> = replies_to(db, PHONE)
        .await
        .into_iter()
        .filter(|r| r.starts_with("Reminder:"))
        .collect();
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    assert!(reminders[0].contains("123 Main St"), "{}", reminders[0]);
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM \"JobEvent\" WHERE event_type = 'reminder_sent'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM \"Lead\" WHERE stage = 'reminding'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_calendar_feed_lists_booked_jobs_behind_a_token() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    book(&server, PHONE, "SM130").await;
    let token = api_token(db);
    let client = reqwest::Client::new();
    let refused = client
        .get(server.url("/calendar.ics"))
        .send()
        .await
        .expect("get");
    assert_eq!(refused.status(), 401);
    let wrong = client
        .get(server.url("/calendar.ics?token=nope"))
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), 401);
    let feed = client
        .get(server.url(&format!("/calendar.ics?token={token}")))
        .send()
        .await
        .expect("get");
    assert_eq!(feed.status(), 200);
    assert!(
        feed.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/calendar")
    );
    let text = feed.text().await.expect("body");
    assert!(text.starts_with("BEGIN:VCALENDAR\r\n"), "{text}");
    assert_eq!(text.matches("BEGIN:VEVENT").count(), 1, "{text}");
    let unfolded = text.replace("\r\n ", "");
    assert!(
        unfolded.contains("LOCATION:123 Main St\\, Canton GA 30114"),
        "{unfolded}"
    );
    assert!(unfolded.contains("SUMMARY:Junk pickup: "), "{unfolded}");
    assert!(unfolded.contains("DESCRIPTION:Estimate $425"), "{unfolded}");
}

#[tokio::test]
async fn control_characters_and_huge_item_lists_do_not_lose_messages_or_replies() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let response = sms(&server, "SM1400", PHONE, "a couch\u{0}and a fridge").await;
    assert_eq!(response.status(), 200);
    assert_eq!(replies_to(db, PHONE).await.len(), 1);
    let other = "+14045550777";
    let long = "a pc, a lamp, a desk, a tire, a box, a rug, a chair, a table, a grill, a bike, "
        .repeat(21);
    let response = sms(&server, "SM1401", other, &long[..1590]).await;
    assert_eq!(response.status(), 200);
    let reply = replies_to(db, other).await.pop().expect("reply");
    assert!(
        reply.chars().count() <= 1600,
        "{} characters",
        reply.chars().count()
    );
    assert!(reply.contains('$'), "{reply}");
}

#[tokio::test]
async fn the_pricebook_is_editable_with_validation_and_used_for_the_next_quote() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let token = api_token(db);
    let client = reqwest::Client::new();
    let current: serde_json::Value = client
        .get(server.url("/api/v1/settings"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let mut pricebook = current["pricebook"].clone();
    assert_eq!(
        pricebook["minimum"], 15000,
        "seeded with the original's defaults"
    );

    pricebook["minimum"] = serde_json::json!(-1);
    pricebook["trailer_yards"] = serde_json::json!(0);
    let refused = client
        .put(server.url("/api/v1/settings/pricebook"))
        .bearer_auth(&token)
        .json(&pricebook)
        .send()
        .await
        .expect("put");
    assert_eq!(refused.status(), 422);
    let body: serde_json::Value = refused.json().await.expect("json");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("minimum: must not be negative"),
        "{message}"
    );
    assert!(message.contains("trailer_yards"), "{message}");

    // Quarter loads now cost $300: the next quote uses it.
    let mut pricebook = current["pricebook"].clone();
    pricebook["tiers"][2]["price"] = serde_json::json!(30000);
    let saved = client
        .put(server.url("/api/v1/settings/pricebook"))
        .bearer_auth(&token)
        .json(&pricebook)
        .send()
        .await
        .expect("put");
    assert_eq!(saved.status(), 200);
    sms(&server, "SM1500", PHONE, "a couch").await;
    assert!(replies_to(db, PHONE).await[0].contains("$300"));
}

#[tokio::test]
async fn a_message_that_cannot_be_answered_is_retried_then_set_aside_without_blocking_others() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(&server, "SM1600", PHONE, "a couch").await;
    // Break this conversation: its lead is gone.
    sqlx::query("DELETE FROM \"Lead\"")
        .execute(&mut db.conn().await)
        .await
        .expect("delete");
    let response = sms(&server, "SM1601", PHONE, "hello?").await;
    assert_eq!(response.status(), 200, "stored, whatever answering does");
    let (attempts, error, processed): (i32, Option<String>, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as(
            "SELECT attempts, last_error, processed_at FROM \"InboundMessage\" WHERE provider_message_id = 'SM1601'",
        )
        .fetch_one(&mut db.conn().await)
        .await
        .expect("inbound");
    assert_eq!(attempts, 1);
    assert!(error.is_some());
    assert!(processed.is_none(), "kept for a retry");

    // Other customers are answered meanwhile.
    let other = "+14045550888";
    sms(&server, "SM1602", other, "a fridge").await;
    assert_eq!(replies_to(db, other).await.len(), 1);

    // On its last try it is set aside and the owner is told.
    sqlx::query(
        "UPDATE \"InboundMessage\" SET attempts = 4, retry_at = now() - interval '1 second',
                received_at = now() - interval '1 minute'
         WHERE provider_message_id = 'SM1601'",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("age");
    server.run_jobs_until_idle().await;
    let processed: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT processed_at FROM \"InboundMessage\" WHERE provider_message_id = 'SM1601'",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("inbound");
    assert!(processed.is_some(), "the message is set aside");
    let told: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM \"Outbox\" WHERE channel = 'owner' AND body LIKE '%could not be answered%'",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("owner");
    assert_eq!(told, 1);
}

#[tokio::test]
async fn photos_from_the_providers_host_are_kept_on_the_lead() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let media = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1";
    let params: Vec<(String, String)> = [
        ("MessageSid", "SM1700"),
        ("From", PHONE),
        ("Body", ""),
        ("NumMedia", "2"),
        ("MediaUrl0", media),
        ("MediaUrl1", "https://evil.example/steal.jpg"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let response = post_signed(server.url("/api/twilio/sms"), &params).await;
    assert_eq!(response.status(), 200);
    server.answered().await;
    let urls: Vec<String> = sqlx::query_scalar("SELECT url FROM \"LeadAttachment\"")
        .fetch_all(&mut db.conn().await)
        .await
        .expect("attachments");
    assert_eq!(urls, [media]);
    // The first reply of a conversation says it is automated, then answers.
    assert!(
        replies_to(db, PHONE).await[0]
            .starts_with("Hi! This is an automated assistant. Thanks for the photo!")
    );
}

#[tokio::test]
async fn a_pickup_asked_for_today_carries_the_same_day_fee() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(&server, "SM1800", PHONE, "a couch").await;
    sms(&server, "SM1801", PHONE, "12 Oak St, Canton GA 30114").await;
    // Today at 3 pm, in the company's time zone (New York by default), if that is still ahead
    // by the lead time; otherwise tomorrow at 3 pm, which carries no fee.
    let tz = chrono_tz::America::New_York;
    let local = chrono::Utc::now().with_timezone(&tz);
    let today = chrono::Timelike::hour(&local) < 13;
    let ask = if today {
        "today at 3pm"
    } else {
        "tomorrow at 3pm"
    };
    sms(&server, "SM1802", PHONE, ask).await;
    let booked = replies_to(db, PHONE).await.pop().expect("booked");
    assert!(booked.starts_with("You're booked!"), "{booked}");
    if today {
        assert!(
            booked.contains("$309") && booked.contains("same-day fee"),
            "{booked}"
        );
        assert_eq!(count(db, "SELECT count(*) FROM \"Quote\"").await, 2);
    } else {
        assert!(
            booked.contains("$259") && !booked.contains("same-day"),
            "{booked}"
        );
        assert_eq!(count(db, "SELECT count(*) FROM \"Quote\"").await, 1);
    }
}

/// The tokens in the owner's "still waiting" messages whose approval belongs to `phone`'s lead.
async fn renewed_tokens(db: &TestDb, phone: &str) -> Vec<String> {
    let bodies: Vec<String> = sqlx::query_scalar(
        "SELECT body FROM \"Outbox\" WHERE channel = 'owner' AND body LIKE 'Still waiting%'",
    )
    .fetch_all(&mut db.conn().await)
    .await
    .expect("owner messages");
    let mut tokens = Vec::new();
    for body in bodies {
        let token = body
            .split("/api/approvals/")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("a link in the reminder")
            .to_owned();
        let theirs: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM \"Approval\" a JOIN \"Quote\" q ON q.id = a.quote_id
                            JOIN \"Conversation\" c ON c.lead_id = q.lead_id
                            WHERE a.token = $1 AND c.external_id = $2)",
        )
        .bind(junkquote::domain::token::hash_token(&token))
        .bind(phone)
        .fetch_one(&mut db.conn().await)
        .await
        .expect("approval of the token");
        if theirs {
            tokens.push(token);
        }
    }
    tokens
}

#[tokio::test]
async fn an_expired_approval_is_renewed_once_with_a_new_link_for_the_owner() {
    let db = TestDb::migrated().await;
    // Two servers: their expiry jobs race for the same approvals.
    let server = TestApp::spawn_on(&db, config::sms()).await;
    let other = TestApp::spawn_on(&db, config::sms()).await;
    let client = reqwest::Client::new();
    let (x, y) = ("+14045550401", "+14045550402");
    sms(
        &server,
        "SM1900",
        x,
        "a hot tub, a piano, 2 couches and 20 bags of trash",
    )
    .await;
    let first_x = owner_token(&db).await;
    sms(&server, "SM1910", y, "a hot tub, a piano and 3 couches").await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM \"Approval\" WHERE status = 'pending'"
        )
        .await,
        2
    );
    sqlx::query("UPDATE \"Approval\" SET expires_at = now() - interval '1 minute'")
        .execute(&mut db.conn().await)
        .await
        .expect("expire");
    tokio::join!(server.run_jobs_until_idle(), other.run_jobs_until_idle());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM \"Outbox\" WHERE channel = 'owner' AND body LIKE 'Still waiting%'",
        )
        .await,
        2,
        "the owner is asked again about both quotes"
    );
    let renewed_x = renewed_tokens(&db, x).await;
    assert_eq!(renewed_x.len(), 1, "one reminder per quote");
    assert_ne!(renewed_x[0], first_x, "a new link");
    let decide = |token: String, decision: &'static str| {
        client
            .post(server.url(&format!("/api/approvals/{token}")))
            .json(&serde_json::json!({"decision": decision}))
            .send()
    };
    // The old link still says it expired; the new one works, once, for the same quote.
    let old = decide(first_x.clone(), "approve").await.expect("post");
    assert_eq!(old.status(), 409);
    let body: serde_json::Value = old.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{body}"
    );
    let approved = decide(renewed_x[0].clone(), "approve").await.expect("post");
    assert_eq!(approved.status(), 200);
    assert!(
        replies_to(&db, x)
            .await
            .last()
            .expect("reply")
            .starts_with("Good news: the owner confirmed your estimate")
    );
    assert_eq!(
        decide(first_x, "deny").await.expect("post").status(),
        409,
        "deciding the renewal decided the expired request too"
    );

    // The renewal expires as well: nothing more is sent, the quote waits in the operator's list.
    sqlx::query(
        "UPDATE \"Approval\" SET expires_at = now() - interval '1 minute' WHERE status = 'pending'",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("expire the renewal");
    tokio::join!(server.run_jobs_until_idle(), other.run_jobs_until_idle());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM \"Outbox\" WHERE channel = 'owner' AND body LIKE 'Still waiting%'"
        )
        .await,
        2,
        "the owner is told once"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM \"Audit\" WHERE action = 'approval_expired'"
        )
        .await,
        2
    );
    let token = api_token(&db);
    let pending: serde_json::Value = client
        .get(server.url("/api/v1/approvals"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let pending = pending["approvals"].as_array().expect("list").clone();
    assert_eq!(pending.len(), 1, "Y's quote, listed once: {pending:?}");
    let id = pending[0]["id"].as_str().expect("id");
    let denied = client
        .post(server.url(&format!("/api/v1/approvals/{id}")))
        .bearer_auth(&token)
        .json(&serde_json::json!({"decision": "deny"}))
        .send()
        .await
        .expect("post");
    assert_eq!(denied.status(), 200);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM \"Approval\" WHERE status = 'pending'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn two_customers_picking_the_same_last_window_get_one_booking_and_the_truth() {
    use chrono::TimeZone;
    let db = TestDb::migrated().await;
    // Other jobs fill the crew's whole horizon but for one 90-minute window (a couch takes 90
    // minutes), the day after tomorrow at 10:00 in the company's time zone. (Their lead has a
    // customer, as every lead must, but no phone.)
    let tz = chrono_tz::America::New_York;
    let day = chrono::Utc::now().with_timezone(&tz).date_naive() + chrono::Days::new(2);
    let gap_start = tz
        .from_local_datetime(&day.and_hms_opt(10, 0, 0).expect("time"))
        .single()
        .expect("local time")
        .with_timezone(&chrono::Utc);
    let gap_end = gap_start + chrono::TimeDelta::minutes(90);
    sqlx::query(
        "WITH customer AS (INSERT INTO \"Customer\" DEFAULT VALUES RETURNING id),
              lead AS (INSERT INTO \"Lead\" (channel, customer_id)
                       SELECT 'sms', id FROM customer RETURNING id, customer_id),
              job AS (INSERT INTO \"Job\" (lead_id, customer_id, window_start, window_end, status)
                      SELECT lead.id, lead.customer_id, w.s, w.e, 'booked'
                      FROM lead, (VALUES (now() - interval '1 day', $1::timestamptz),
                                         ($2::timestamptz, now() + interval '10 days')) AS w(s, e)
                      RETURNING id, window_start, window_end)
         INSERT INTO \"Booking\" (job_id, crew, window_start, window_end)
         SELECT id, 1, window_start, window_end FROM job",
    )
    .bind(gap_start)
    .bind(gap_end)
    .execute(&mut db.conn().await)
    .await
    .expect("fill the schedule");
    let server = TestApp::spawn_on(&db, config::sms()).await;
    let (a, b) = ("+14045550501", "+14045550502");
    let mut offered = Vec::new();
    for (n, phone) in [a, b].iter().enumerate() {
        sms(&server, &format!("SM20{n}0"), phone, "a couch").await;
        sms(
            &server,
            &format!("SM20{n}1"),
            phone,
            "12 Oak St, Canton GA 30114",
        )
        .await;
        let offer = replies_to(&db, phone).await.pop().expect("offer");
        let windows: Vec<String> = offer
            .lines()
            .filter_map(|l| l.strip_prefix("1) ").or_else(|| l.strip_prefix("2) ")))
            .map(str::to_owned)
            .collect();
        assert_eq!(windows.len(), 1, "exactly one window left: {offer}");
        offered.push(windows[0].clone());
    }
    assert_eq!(offered[0], offered[1], "both were offered the last window");
    let (ra, rb) = tokio::join!(
        sms(&server, "SM2020", a, "1"),
        sms(&server, "SM2021", b, "1")
    );
    assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM \"Booking\" b JOIN \"Job\" j ON j.id = b.job_id
             JOIN \"Lead\" l ON l.id = j.lead_id WHERE l.phone IS NOT NULL"
        )
        .await,
        1,
        "one booking"
    );
    let last_a = replies_to(&db, a).await.pop().expect("reply");
    let last_b = replies_to(&db, b).await.pop().expect("reply");
    let (winner, loser) = if last_a.starts_with("You're booked!") {
        (&last_a, &last_b)
    } else {
        (&last_b, &last_a)
    };
    assert!(winner.starts_with("You're booked!"), "{winner}");
    assert!(winner.contains(&offered[0]), "{winner}");
    assert!(
        loser.starts_with("Sorry, that window was just taken"),
        "{loser}"
    );
    assert!(
        loser.contains("fully booked") && !loser.contains("1) "),
        "told honestly that nothing is left: {loser}"
    );
}

#[tokio::test]
async fn an_approval_superseded_by_a_newer_quote_is_not_renewed() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let phone = "+14045550601";
    sms(&server, "SM2100", phone, "a hot tub, a piano and 3 couches").await;
    // More items: a new quote, a new request; the first one stops working.
    sms(&server, "SM2101", phone, "oh and also a fridge").await;
    assert_eq!(count(db, "SELECT count(*) FROM \"Approval\"").await, 2);
    server.run_jobs_until_idle().await;
    let reminders = "SELECT count(*) FROM \"Outbox\" WHERE body LIKE 'Still waiting%'";
    assert_eq!(
        count(db, reminders).await,
        0,
        "the owner is not asked about a price the customer has moved past"
    );
    // The current request expiring is renewed, for the newest quote.
    sqlx::query("UPDATE \"Approval\" SET expires_at = now() - interval '1 minute'")
        .execute(&mut db.conn().await)
        .await
        .expect("expire");
    server.run_jobs_until_idle().await;
    assert_eq!(
        count(db, reminders).await,
        1,
        "the current request is renewed"
    );
    let token = renewed_tokens(db, phone).await.pop().expect("renewed");
    let newest: bool = sqlx::query_scalar(
        "SELECT a.quote_id = (SELECT id FROM \"Quote\" ORDER BY created_at DESC LIMIT 1)
         FROM \"Approval\" a WHERE a.token = $1",
    )
    .bind(junkquote::domain::token::hash_token(&token))
    .fetch_one(&mut db.conn().await)
    .await
    .expect("renewed approval");
    assert!(newest, "the renewal is for the newest quote");
}

/// A channel the service does not know, read from the database, is refused: taken for web chat
/// (as it once was) its replies would skip the outbox and never reach the customer.
#[tokio::test]
async fn an_unknown_channel_read_from_the_database_is_refused_not_taken_for_web_chat() {
    use junkquote::domain::Channel;
    use junkquote::store::{customers, inbox, leads};
    use sqlx::Connection;

    let db = TestDb::migrated().await;
    let mut conn = db.conn().await;
    // A value a later version (or someone by hand) added to the database's enum.
    sqlx::query("ALTER TYPE \"Channel\" ADD VALUE 'whatsapp'")
        .execute(&mut conn)
        .await
        .expect("add an enum value");
    let mut tx = conn.begin().await.expect("begin");
    let customer = customers::create_anonymous(&mut tx)
        .await
        .expect("customer");
    let phone = "+15555550123";
    let conversation =
        inbox::open_conversation(&mut tx, customer, Channel::Sms, Some(phone), Some(phone))
            .await
            .expect("conversation");
    sqlx::query("UPDATE \"Conversation\" SET channel = 'whatsapp' WHERE id = $1")
        .bind(conversation)
        .execute(&mut *tx)
        .await
        .expect("set an unknown channel");
    let refused = leads::lead_of_conversation(&mut tx, conversation)
        .await
        .map(|lead| lead.channel)
        .expect_err("an unknown channel is refused");
    assert!(
        matches!(refused, sqlx::Error::ColumnDecode { .. }),
        "{refused}"
    );
}

/// The webhook takes a sender exactly when the domain calls it E.164 (the rule migration 14's
/// CHECK and `db check` use too): a leading 0 is no country code.
#[tokio::test]
async fn the_webhook_takes_the_senders_the_domain_calls_e164() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let senders = [
        ("+14045550123", true),
        ("+442079460018", true),
        ("+6834002", true),
        ("+123456789012345", true),
        ("+0123456789", false),
        ("+04045550123", false),
        ("+123456", false),
        ("+1234567890123456", false),
        ("14045550123", false),
        ("+1 404 555 0123", false),
        ("+1404555012a", false),
        ("+", false),
    ];
    for (i, (from, accepted)) in senders.into_iter().enumerate() {
        let response = post_signed(
            server.url("/api/twilio/sms"),
            &form(&format!("SM09{i:02}"), from, "a couch"),
        )
        .await;
        assert_eq!(
            junkquote::domain::identity::is_e164(from),
            accepted,
            "the domain on {from:?}"
        );
        let expected = if accepted { 200 } else { 422 };
        assert_eq!(response.status(), expected, "From {from:?}");
    }
    assert_eq!(
        count(db, "SELECT count(*) FROM \"Message\" WHERE role = 'user'").await,
        4
    );
}

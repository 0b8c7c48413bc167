//! The messaging rules (DESIGN §4) end to end, against local stand-ins for Twilio and the
//! Graph API: STOP and START, revocation in words, Twilio's 21610, quiet hours, Messenger's
//! 24-hour window, and the hand-off to a person. Time is driven by the rows and the company's
//! time zone, never by waiting.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::twilio::{sms, texts_to};
use crate::helpers::{TestApp, TestDb, config};
use junkquote::channels::signature::messenger_signature;

const ACCOUNT: &str = "AC123";
const FROM: &str = "+14045550000";
const PHONE: &str = "+14045550177";
const PSID: &str = "2741000000000777";
const SECRET: &str = "app-secret";

/// What a stand-in provider received: the recipient and the request (the form's fields, or
/// the Graph request's JSON with its path).
type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A stand-in for Twilio's Messages API that refuses `opted_out` with error 21610, as Twilio
/// does for a number that texted STOP, and accepts every other message.
async fn fake_twilio(opted_out: Option<&'static str>) -> (String, Seen) {
    use axum::http::StatusCode;
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        axum::routing::post(move |body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let form: serde_json::Map<String, serde_json::Value> =
                    form_urlencoded::parse(&body)
                        .into_owned()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect();
                let to = form["To"].as_str().unwrap_or_default().to_owned();
                let n = {
                    let mut seen = record.lock().expect("lock");
                    seen.push((to.clone(), serde_json::Value::Object(form)));
                    seen.len()
                };
                if Some(to.as_str()) == opted_out {
                    return (
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({
                            "code": 21610,
                            "message": "Attempt to send to unsubscribed recipient",
                            "more_info": "https://www.twilio.com/docs/errors/21610",
                            "status": 400
                        })
                        .to_string(),
                    );
                }
                (StatusCode::CREATED, format!("{{\"sid\":\"SMrules{n}\"}}"))
            }
        }),
    );
    (serve(app).await, seen)
}

/// A stand-in for the Graph API's Send API at any version, recording the path and body.
async fn fake_graph() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/{version}/me/messages",
        axum::routing::post(
            move |uri: axum::http::Uri, body: axum::Json<serde_json::Value>| {
                let record = record.clone();
                async move {
                    record
                        .lock()
                        .expect("lock")
                        .push((uri.path().to_owned(), body.0));
                    axum::Json(serde_json::json!({"recipient_id": PSID, "message_id": "m_out"}))
                }
            },
        ),
    );
    (serve(app).await, seen)
}

/// Serves `app` on a free local port; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn bodies_to(seen: &Seen, to: &str) -> Vec<String> {
    seen.lock()
        .expect("lock")
        .iter()
        .filter(|(t, _)| t == to)
        .map(|(_, form)| form["Body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A fixed-offset zone in which it is now `hour` o'clock (local), for driving quiet hours.
fn zone_where_it_is(hour: u32) -> chrono_tz::Tz {
    let utc = Utc::now().hour() as i32;
    // Etc/GMT-N is N hours ahead of UTC; the offsets run from -12 to +14.
    let mut ahead = (hour as i32 - utc).rem_euclid(24);
    if ahead > 14 {
        ahead -= 24;
    }
    let name = match ahead {
        0 => "Etc/GMT".to_owned(),
        a if a > 0 => format!("Etc/GMT-{a}"),
        a => format!("Etc/GMT+{}", -a),
    };
    name.parse().expect("an Etc zone")
}

/// Sets the company's time zone.
async fn set_time_zone(pool: &PgPool, tz: chrono_tz::Tz) {
    // The settings row is written on first use; the first message made it.
    sqlx::query(
        "UPDATE \"Config\" SET hours = jsonb_set(hours, '{time_zone}', to_jsonb($1::text))",
    )
    .bind(tz.name())
    .execute(pool)
    .await
    .expect("time zone");
}

/// Books the reference job for `phone` (three texts), with the jobs run in between.
async fn book(server: &TestApp, phone: &str, prefix: &str) {
    for (i, text) in [
        "a couch, a fridge and 5 bags of trash",
        "123 Main St, Canton GA 30114",
        "1",
    ]
    .iter()
    .enumerate()
    {
        sms(server, &format!("{prefix}{i}"), phone, text).await;
    }
    server.run_jobs_until_idle().await;
}

/// Moves every job's pickup to an hour from now, so that a reminder falls due (one sent
/// when the job was booked, soon after, is forgotten).
async fn reminders_due(pool: &PgPool) {
    sqlx::query("DELETE FROM \"JobEvent\" WHERE event_type = 'reminder_sent'")
        .execute(pool)
        .await
        .expect("forget reminders");
    sqlx::query(
        "UPDATE \"Job\" SET window_start = now() + interval '1 hour',
                            window_end = now() + interval '3 hours'",
    )
    .execute(pool)
    .await
    .expect("move the pickup");
}

async fn opt_out_reason(pool: &PgPool, recipient: &str) -> Option<String> {
    sqlx::query_scalar("SELECT reason FROM \"OptOut\" WHERE recipient = $1")
        .bind(recipient)
        .fetch_optional(pool)
        .await
        .expect("opt-out")
}

#[tokio::test]
async fn stop_in_the_middle_of_a_booking_sends_nothing_more_until_start() {
    let db = TestDb::migrated().await;
    let (base, seen) = fake_twilio(None).await;
    let server = TestApp::spawn_on(&db, config::sms_sending(&base, ACCOUNT, FROM)).await;
    let pool = &server.pool;
    sms(&server, "SMr0", PHONE, "hello").await;
    set_time_zone(pool, zone_where_it_is(12)).await;
    book(&server, PHONE, "SMr1").await;
    let before = bodies_to(&seen, PHONE).len();
    assert!(before >= 3, "the booking conversation was answered");

    // A message answered just before STOP: its reply is queued, and not sent after the STOP.
    sms(&server, "SMr20", PHONE, "oh and a mattress too").await;
    let queued = texts_to(&db, PHONE).await.len();
    sms(&server, "SMr21", PHONE, "STOP").await;
    assert_eq!(
        texts_to(&db, PHONE).await.len(),
        queued,
        "nothing queued in answer to STOP: Twilio confirms it"
    );
    assert!(opt_out_reason(pool, PHONE).await.is_some(), "recorded");
    server.run_jobs_until_idle().await;
    assert_eq!(
        bodies_to(&seen, PHONE).len(),
        before,
        "the queued reply is not sent"
    );

    // The pickup's reminder falls due: nothing is sent.
    reminders_due(pool).await;
    server.run_jobs_until_idle().await;
    assert_eq!(
        bodies_to(&seen, PHONE).len(),
        before,
        "no reminder after STOP"
    );
    // Nor anything else the customer writes, until START; HELP is Twilio's to answer.
    sms(&server, "SMr22", PHONE, "what time is pickup?").await;
    sms(&server, "SMr23", PHONE, "HELP").await;
    server.run_jobs_until_idle().await;
    assert_eq!(bodies_to(&seen, PHONE).len(), before);

    // START: opted in again, silently (Twilio confirms); then answered as before.
    sms(&server, "SMr24", PHONE, "start").await;
    assert_eq!(opt_out_reason(pool, PHONE).await, None);
    server.run_jobs_until_idle().await;
    assert_eq!(
        bodies_to(&seen, PHONE).len(),
        before,
        "START is not answered"
    );
    sms(&server, "SMr25", PHONE, "a couch").await;
    server.run_jobs_until_idle().await;
    assert_eq!(bodies_to(&seen, PHONE).len(), before + 1, "answered again");
}

#[tokio::test]
async fn stop_texting_me_is_confirmed_once_and_stop_by_at_3_is_not_an_opt_out() {
    let db = TestDb::migrated().await;
    let (base, seen) = fake_twilio(None).await;
    let server = TestApp::spawn_on(&db, config::sms_sending(&base, ACCOUNT, FROM)).await;
    sms(&server, "SMw0", PHONE, "a couch").await;
    sms(&server, "SMw1", PHONE, "can you stop by at 3").await;
    assert_eq!(opt_out_reason(&server.pool, PHONE).await, None);
    sms(&server, "SMw2", PHONE, "stop texting me").await;
    assert!(opt_out_reason(&server.pool, PHONE).await.is_some());
    sms(&server, "SMw3", PHONE, "seriously, no more texts").await;
    server.run_jobs_until_idle().await;
    let sent = bodies_to(&seen, PHONE);
    let confirmations: Vec<&String> = sent
        .iter()
        .filter(|b| b.contains("won't text you"))
        .collect();
    assert_eq!(confirmations.len(), 1, "one plain confirmation: {sent:?}");
    assert_eq!(
        sent.last(),
        confirmations.last().copied(),
        "nothing after it: {sent:?}"
    );
}

#[tokio::test]
async fn a_send_twilio_refuses_with_21610_is_not_retried_and_opts_the_number_out() {
    let db = TestDb::migrated().await;
    let (base, seen) = fake_twilio(Some(PHONE)).await;
    let server = TestApp::spawn_on(&db, config::sms_sending(&base, ACCOUNT, FROM)).await;
    sms(&server, "SMt0", PHONE, "a couch").await;
    server.run_jobs_until_idle().await;
    assert_eq!(bodies_to(&seen, PHONE).len(), 1, "tried once");
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, last_error FROM \"Outbox\" WHERE recipient = $1")
            .bind(PHONE)
            .fetch_one(&server.pool)
            .await
            .expect("outbox");
    assert_eq!(status, "failed", "{error:?}");
    assert!(
        opt_out_reason(&server.pool, PHONE)
            .await
            .is_some_and(|r| r.contains("21610")),
        "marked opted out"
    );
    // Even when its retry would be due, and for the next message: not tried again.
    sqlx::query("UPDATE \"Outbox\" SET next_attempt_at = now() - interval '1 hour'")
        .execute(&server.pool)
        .await
        .expect("age");
    sms(&server, "SMt1", PHONE, "and a fridge").await;
    server.run_jobs_until_idle().await;
    assert_eq!(bodies_to(&seen, PHONE).len(), 1, "never tried again");
}

#[tokio::test]
async fn a_reminder_due_at_11_pm_local_time_is_sent_at_8_am_and_replies_go_at_once() {
    let db = TestDb::migrated().await;
    let (base, seen) = fake_twilio(None).await;
    let server = TestApp::spawn_on(&db, config::sms_sending(&base, ACCOUNT, FROM)).await;
    let pool = &server.pool;
    sms(&server, "SMq0", PHONE, "hello").await;
    set_time_zone(pool, zone_where_it_is(12)).await;
    book(&server, PHONE, "SMq1").await;
    let before = bodies_to(&seen, PHONE).len();

    // 11 PM at the company: the reminder falls due, and is held until 8 AM.
    let night = zone_where_it_is(23);
    set_time_zone(pool, night).await;
    reminders_due(pool).await;
    server.run_jobs_until_idle().await;
    assert_eq!(bodies_to(&seen, PHONE).len(), before, "not sent at night");
    let (id, next): (Uuid, DateTime<Utc>) = sqlx::query_as(
        "SELECT id, next_attempt_at FROM \"Outbox\"
         WHERE recipient = $1 AND body LIKE 'Reminder:%' AND status = 'pending'",
    )
    .bind(PHONE)
    .fetch_one(pool)
    .await
    .expect("the reminder, held");
    let local = Utc::now().with_timezone(&night);
    let eight = night
        .with_ymd_and_hms(local.year(), local.month(), local.day(), 8, 0, 0)
        .single()
        .expect("8 AM")
        + chrono::TimeDelta::days(1);
    assert_eq!(next, eight.with_timezone(&Utc), "held until 8 AM local");

    // The customer writes meanwhile: the answer goes at once, not behind the reminder.
    sms(&server, "SMq2", PHONE, "thanks, see you then").await;
    server.run_jobs_until_idle().await;
    assert_eq!(
        bodies_to(&seen, PHONE).len(),
        before + 1,
        "a reply goes at night"
    );
    assert!(
        !bodies_to(&seen, PHONE)
            .last()
            .is_some_and(|b| b.starts_with("Reminder:"))
    );

    // 8 AM: the reminder goes.
    set_time_zone(pool, zone_where_it_is(8)).await;
    sqlx::query("UPDATE \"Outbox\" SET next_attempt_at = now(), quiet_until = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .expect("8 AM");
    server.run_jobs_until_idle().await;
    let sent = bodies_to(&seen, PHONE);
    assert_eq!(sent.len(), before + 2);
    assert!(sent[before + 1].starts_with("Reminder:"), "{sent:?}");
}

fn page_message(mid: &str, text: &str) -> String {
    serde_json::json!({
        "object": "page",
        "entry": [{"id": "PAGE", "time": 1, "messaging": [{
            "sender": {"id": PSID}, "recipient": {"id": "PAGE"}, "timestamp": 1,
            "message": {"mid": mid, "text": text}
        }]}]
    })
    .to_string()
}

async fn messenger(server: &TestApp, mid: &str, text: &str) {
    let body = page_message(mid, text);
    let response = reqwest::Client::new()
        .post(server.url("/api/messenger"))
        .header("content-type", "application/json")
        .header(
            "X-Hub-Signature-256",
            messenger_signature(SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    server.answered().await;
}

/// A Messenger customer books, then goes quiet for three days; their reminder falls due.
/// Returns the server, what the Send API and Twilio received, and how many Send API requests
/// came before the silence.
async fn silent_messenger_customer(verified_phone: bool) -> (TestApp, Seen, Seen, usize) {
    let db = TestDb::migrated().await;
    let (graph, page) = fake_graph().await;
    let (twilio, texts) = fake_twilio(None).await;
    let server = TestApp::spawn_on(
        &db,
        config::with_messenger(
            config::sms_sending(&twilio, ACCOUNT, FROM),
            SECRET,
            Some(&graph),
        ),
    )
    .await;
    let pool = &server.pool;
    messenger(&server, "m_0", "hello").await;
    set_time_zone(pool, zone_where_it_is(12)).await;
    for (i, text) in [
        "a couch, a fridge and 5 bags of trash",
        "123 Main St, Canton GA 30114",
        "1",
    ]
    .iter()
    .enumerate()
    {
        messenger(&server, &format!("m_{}", i + 1), text).await;
    }
    server.run_jobs_until_idle().await;
    let before = {
        let page = page.lock().expect("lock");
        assert!(page.len() >= 4, "answered on Messenger");
        for (path, body) in page.iter() {
            assert_eq!(path, "/v26.0/me/messages", "the current Graph version");
            // Answers as responses; a reminder sent at once (the pickup is soon) as an update.
            let expected = match body["message"]["text"].as_str() {
                Some(t) if t.starts_with("Reminder:") => "UPDATE",
                _ => "RESPONSE",
            };
            assert_eq!(body["messaging_type"], expected, "{body}");
            assert!(body.get("tag").is_none(), "no message tag: {body}");
        }
        page.len()
    };
    if verified_phone {
        sqlx::query(
            "INSERT INTO \"CustomerIdentity\" (customer_id, kind, value, raw, verified_at)
             SELECT customer_id, 'phone', $1, $1, now() FROM \"Conversation\"",
        )
        .bind(PHONE)
        .execute(pool)
        .await
        .expect("a proven phone");
    }
    // Three days of silence.
    sqlx::query(
        "UPDATE \"Message\" SET created_at = created_at - interval '3 days' WHERE role = 'user'",
    )
    .execute(pool)
    .await
    .expect("age");
    reminders_due(pool).await;
    server.run_jobs_until_idle().await;
    (server, page, texts, before)
}

/// What the Send API received after the first `before` requests.
fn sent_after(page: &Seen, before: usize) -> Vec<serde_json::Value> {
    page.lock()
        .expect("lock")
        .iter()
        .skip(before)
        .map(|(_, b)| b.clone())
        .collect()
}

#[tokio::test]
async fn a_messenger_reminder_to_a_customer_silent_for_3_days_goes_by_sms_never_tagged() {
    let (_server, page, texts, before) = silent_messenger_customer(true).await;
    assert_eq!(sent_after(&page, before), Vec::<serde_json::Value>::new());
    let sent = bodies_to(&texts, PHONE);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("Reminder:"), "{sent:?}");
}

#[tokio::test]
async fn a_messenger_reminder_without_a_proven_phone_waits_for_the_operator() {
    let (server, page, texts, before) = silent_messenger_customer(false).await;
    assert_eq!(sent_after(&page, before), Vec::<serde_json::Value>::new());
    assert!(texts.lock().expect("lock").is_empty());
    let (status, error): (String, Option<String>) = sqlx::query_as(
        "SELECT status, last_error FROM \"Outbox\" WHERE body LIKE 'Reminder:%'
         ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&server.pool)
    .await
    .expect("the reminder");
    assert_eq!(status, "failed", "left for the operator");
    assert!(
        error.as_deref().is_some_and(|e| e.contains("24-hour")),
        "{error:?}"
    );
    // The operator's own reply within 7 days goes with the HUMAN_AGENT tag.
    let conversation: Uuid = sqlx::query_scalar("SELECT id FROM \"Conversation\"")
        .fetch_one(&server.pool)
        .await
        .expect("conversation");
    let mut tx = server.pool.begin().await.expect("tx");
    assert!(
        junkquote::store::conversations::reply(
            &mut tx,
            conversation,
            "Hi, this is Sam: still on for tomorrow?",
            "operator:sam@junk.example"
        )
        .await
        .expect("reply")
    );
    tx.commit().await.expect("commit");
    server.run_jobs_until_idle().await;
    let last = page.lock().expect("lock").last().cloned().expect("sent");
    assert_eq!(last.1["messaging_type"], "MESSAGE_TAG", "{}", last.1);
    assert_eq!(last.1["tag"], "HUMAN_AGENT", "{}", last.1);
}

#[tokio::test]
async fn the_first_reply_says_it_is_automated_and_asking_for_a_person_hands_over() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(&server, "SMp0", PHONE, "a couch").await;
    let first = texts_to(db, PHONE).await;
    assert!(
        first[0].contains("automated assistant"),
        "the first reply says so: {first:?}"
    );
    sms(&server, "SMp1", PHONE, "and a fridge").await;
    let second = texts_to(db, PHONE).await;
    assert!(
        !second[1].contains("automated assistant"),
        "once: {second:?}"
    );

    sms(&server, "SMp2", PHONE, "can I talk to a real person?").await;
    let replies = texts_to(db, PHONE).await;
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(
        replies[2].contains("call"),
        "told when to expect a call: {replies:?}"
    );
    let taken: Option<String> =
        sqlx::query_scalar("SELECT metadata->>'taken_over_by' FROM \"Conversation\"")
            .fetch_one(&server.pool)
            .await
            .expect("conversation");
    assert!(taken.is_some(), "handed to the operator");
    let owner: Vec<String> =
        sqlx::query_scalar("SELECT body FROM \"Outbox\" WHERE channel = 'owner'")
            .fetch_all(&server.pool)
            .await
            .expect("owner");
    assert!(
        owner
            .iter()
            .any(|b| b.contains("person") && b.contains(PHONE)),
        "the owner is told: {owner:?}"
    );
    // The assistant no longer answers; the operator does.
    sms(&server, "SMp3", PHONE, "hello?").await;
    assert_eq!(texts_to(db, PHONE).await.len(), 3);
}

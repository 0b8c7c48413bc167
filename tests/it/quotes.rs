//! Quotes that change while the owner looks at them.

use crate::helpers;
use crate::helpers::twilio::{owner_token, sms, texts_to};
use crate::helpers::{TestApp, config};
use serde_json::json;

const PHONE: &str = "+14045550123";

#[tokio::test]
async fn items_added_while_the_owner_decides_are_priced_and_the_old_request_stops_working() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(
        &server,
        "SMq1",
        PHONE,
        "a hot tub, a piano, 2 couches and 20 bags of trash",
    )
    .await;
    let first_token = owner_token(db).await;
    let first_total = texts_to(db, PHONE).await[0].clone();
    sms(
        &server,
        "SMq2",
        PHONE,
        "oh and also a fridge and a mattress",
    )
    .await;
    let texts = texts_to(db, PHONE).await;
    let second = &texts[1];
    assert!(
        second.contains("refrigerator") && second.contains("mattress"),
        "{second}"
    );
    assert!(
        second.contains("The owner will confirm this price shortly"),
        "{second}"
    );
    assert_ne!(&first_total, second);
    let second_token = owner_token(db).await;
    assert_ne!(
        first_token, second_token,
        "the owner was asked about the new estimate"
    );

    let decide = |token: String| {
        let url = server.url(&format!("/api/approvals/{token}"));
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&json!({"decision": "approve"}))
                .send()
                .await
                .expect("decide")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        decide(first_token).await,
        409,
        "the superseded request no longer works"
    );
    let token = helpers::twilio::api_token(db);
    let listed: serde_json::Value = reqwest::Client::new()
        .get(server.url("/api/v1/approvals"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("approvals")
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed["approvals"].as_array().map(Vec::len),
        Some(1),
        "only the newest estimate waits: {listed}"
    );
    // Nor can the operator's API approve the superseded quote by its approval's id.
    let superseded: uuid::Uuid = sqlx::query_scalar(
        "SELECT a.id FROM \"Approval\" a JOIN \"Quote\" q ON q.id = a.quote_id
         WHERE q.superseded_at IS NOT NULL",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("the superseded quote's approval");
    let by_id = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/approvals/{superseded}")))
        .bearer_auth(&token)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .expect("decide by id");
    assert_eq!(by_id.status(), 409);
    let body = by_id.text().await.expect("body");
    assert!(body.contains("newer estimate"), "{body}");
    assert_eq!(decide(second_token).await, 200);
    let approved: String =
        sqlx::query_scalar("SELECT status::text FROM \"Quote\" ORDER BY created_at DESC LIMIT 1")
            .fetch_one(&mut db.conn().await)
            .await
            .expect("latest quote");
    assert_eq!(approved, "approved");
}

#[tokio::test]
async fn a_heavy_load_and_a_narrow_window_are_priced_when_mentioned() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(&server, "SMw1", PHONE, "a couch").await;
    sms(
        &server,
        "SMw2",
        PHONE,
        "it's heavy, about 2600 lbs, and I need a one-hour window",
    )
    .await;
    let texts = texts_to(db, PHONE).await;
    let second = &texts[1];
    assert!(second.contains("weight"), "{second}");
    assert!(second.contains("window"), "{second}");
    let lines: String = sqlx::query_scalar(
        "SELECT line_items_json::text FROM \"Quote\" ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("quote");
    assert!(
        lines.contains("weight") && lines.contains("window"),
        "{lines}"
    );
}

#[tokio::test]
async fn a_decision_on_a_conversation_an_operator_holds_is_left_to_the_operator() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(
        &server,
        "SMt1",
        PHONE,
        "a hot tub, a piano, 2 couches and 20 bags of trash",
    )
    .await;
    sqlx::query(
        "UPDATE \"Conversation\" SET metadata = metadata || '{\"taken_over_by\": \"ops@junk.example\"}'",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("take over");
    let token = owner_token(db).await;
    let status = reqwest::Client::new()
        .post(server.url(&format!("/api/approvals/{token}")))
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .expect("decide")
        .status();
    assert_eq!(status, 200);
    assert_eq!(
        texts_to(db, PHONE).await.len(),
        1,
        "the customer is not texted by the assistant"
    );
    let unsent: String = sqlx::query_scalar(
        "SELECT content FROM \"Message\" WHERE role = 'system' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("the would-be reply in the thread");
    assert!(
        unsent.starts_with("Not sent (an operator has this conversation): Good news"),
        "{unsent}"
    );
}

async fn scalar(db: &helpers::TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&mut db.conn().await)
        .await
        .expect(sql)
}

#[tokio::test]
async fn forty_messages_adding_items_text_the_owner_once_with_capped_lines_and_one_live_quote() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(
        &server,
        "SMf0",
        PHONE,
        "a hot tub, a piano, 2 couches and 20 bags of trash",
    )
    .await;
    for n in 1..40 {
        sms(
            &server,
            &format!("SMf{n}"),
            PHONE,
            "also a fridge, a mattress, a dresser, a desk and a chair",
        )
        .await;
    }
    assert_eq!(
        texts_to(db, PHONE).await.len(),
        40,
        "every message answered"
    );
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM \"Outbox\" WHERE channel = 'owner'"
        )
        .await,
        1,
        "one notice for the owner, not forty"
    );
    let lines = scalar(
        db,
        "SELECT max(jsonb_array_length(features_json->'items'))::bigint FROM \"Quote\"",
    )
    .await;
    assert!(lines <= 100, "{lines} item lines in one quote");
    let quotes = scalar(db, "SELECT count(*) FROM \"Quote\"").await;
    assert!(quotes < 40, "pricing stops at the cap: {quotes} quotes");
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM \"Quote\" WHERE superseded_at IS NULL"
        )
        .await,
        1,
        "the older quotes are superseded"
    );
    let last = texts_to(db, PHONE).await.pop().expect("a reply");
    assert!(last.contains("on site"), "told politely: {last}");
    // The one notice carries the newest estimate's link, which works.
    let token = owner_token(db).await;
    let status = reqwest::Client::new()
        .post(server.url(&format!("/api/approvals/{token}")))
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .expect("decide")
        .status();
    assert_eq!(status, 200);
    let approved: String =
        sqlx::query_scalar("SELECT status::text FROM \"Quote\" WHERE superseded_at IS NULL")
            .fetch_one(&mut db.conn().await)
            .await
            .expect("the live quote");
    assert_eq!(approved, "approved");
}

#[tokio::test]
async fn a_newer_estimate_after_the_owner_was_texted_waits_ten_minutes_and_blocks_no_one() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(&server, "SMd1", PHONE, "a hot tub, a piano and 3 couches").await;
    // The owner has the text.
    sqlx::query("UPDATE \"Outbox\" SET status = 'sent', sent_at = now() WHERE channel = 'owner'")
        .execute(&mut db.conn().await)
        .await
        .expect("delivered");
    sms(&server, "SMd2", PHONE, "and a fridge").await;
    sms(&server, "SMd3", PHONE, "and a mattress").await;
    let waiting: Vec<(String, bool)> = sqlx::query_as(
        "SELECT status, next_attempt_at > now() + interval '9 minutes' FROM \"Outbox\"
         WHERE channel = 'owner' ORDER BY seq",
    )
    .fetch_all(&mut db.conn().await)
    .await
    .expect("owner notices");
    assert_eq!(
        waiting,
        [("sent".to_owned(), false), ("pending".to_owned(), true)],
        "one more notice, due ten minutes after the first"
    );
    let body: String = sqlx::query_scalar(
        "SELECT body FROM \"Outbox\" WHERE channel = 'owner' AND status = 'pending'",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("the waiting notice");
    assert!(
        body.contains("mattress"),
        "about the newest estimate: {body}"
    );
    // Another customer's approval is not held behind it.
    sms(
        &server,
        "SMd4",
        "+14045550999",
        "a hot tub, a piano and 3 couches",
    )
    .await;
    server.run_jobs_until_idle().await;
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM \"Outbox\" WHERE channel = 'owner' ORDER BY seq")
            .fetch_all(&mut db.conn().await)
            .await
            .expect("owner notices");
    assert_eq!(
        statuses,
        ["sent", "pending", "held"],
        "the other lead's notice was taken (held: no credentials); the deferred one waits"
    );
}

/// The owner's texts, oldest first.
async fn owner_texts(db: &helpers::TestDb) -> Vec<String> {
    sqlx::query_scalar("SELECT body FROM \"Outbox\" WHERE channel = 'owner' ORDER BY seq")
        .fetch_all(&mut db.conn().await)
        .await
        .expect("owner texts")
}

/// Issue 16: "a quote", "9 Elm" and "3:15" were priced as items and sent to the owner.
#[tokio::test]
async fn requests_addresses_and_times_are_not_priced_as_items() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(&server, "SMp1", PHONE, "Hi, I'd like a quote").await;
    sms(
        &server,
        "SMp2",
        PHONE,
        "my address is 9 Elm, around 3:15 works",
    )
    .await;
    let texts = texts_to(db, PHONE).await;
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts.iter().all(|t| !t.contains("estimate is")),
        "nothing priced: {texts:?}"
    );
    assert!(owner_texts(db).await.is_empty(), "nothing for the owner");

    sms(&server, "SMp3", PHONE, "a couch and a fridge").await;
    let texts = texts_to(db, PHONE).await;
    assert!(
        texts[2].contains("For a couch and a refrigerator your estimate is $425"),
        "{}",
        texts[2]
    );
    assert!(
        owner_texts(db).await.is_empty(),
        "a clear small job needs no approval"
    );
}

/// Issue 16: a described volume came out at the minimum; an unknown thing vanished.
#[tokio::test]
async fn a_described_volume_is_priced_by_its_tier_and_an_unknown_thing_named_back() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(
        &server,
        "SMv1",
        PHONE,
        "about half a trailer of junk from the garage",
    )
    .await;
    let reply = &texts_to(db, PHONE).await[0];
    assert!(reply.contains("your estimate is $495"), "{reply}");
    assert!(
        reply.contains("first estimate from your description"),
        "{reply}"
    );
    let owner = owner_texts(db).await;
    assert_eq!(owner.len(), 1, "sent to the owner: {owner:?}");
    assert!(owner[0].contains("half a trailer"), "{}", owner[0]);

    sms(&server, "SMv2", PHONE, "oh and a jet ski").await;
    let reply = &texts_to(db, PHONE).await[1];
    assert!(
        reply.contains("I've noted the jet ski; the owner will confirm its price"),
        "{reply}"
    );
}

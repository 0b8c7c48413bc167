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

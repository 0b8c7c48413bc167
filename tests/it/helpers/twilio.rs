//! Talking to the application as Twilio does (signed webhooks), and reading what it queued
//! back.

use super::{TestApp, TestDb};
use junkquote::channels::signature::twilio_signature;

/// The auth token the test servers verify webhook signatures with.
pub const TOKEN: &str = "test-auth-token";
/// The public webhook URL the signatures are computed over.
pub const WEBHOOK_URL: &str = "https://junk.example/api/twilio/sms";

/// Twilio's webhook form for one text message.
pub fn form(sid: &str, from: &str, body: &str) -> Vec<(String, String)> {
    [
        ("MessageSid", sid),
        ("From", from),
        ("To", "+14045550000"),
        ("Body", body),
        ("NumMedia", "0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// Posts an SMS webhook signed as Twilio would sign it, and waits for the answering workers to
/// answer it.
pub async fn sms(server: &TestApp, sid: &str, from: &str, body: &str) -> reqwest::Response {
    let response = post_signed(server.url("/api/twilio/sms"), &form(sid, from, body)).await;
    server.answered().await;
    response
}

/// Posts any webhook form to `url`, signed as Twilio signs it.
pub async fn post_signed(url: String, params: &[(String, String)]) -> reqwest::Response {
    let signature = twilio_signature(TOKEN, WEBHOOK_URL, params);
    reqwest::Client::new()
        .post(url)
        .header("X-Twilio-Signature", signature)
        .form(params)
        .send()
        .await
        .expect("webhook")
}

/// The texts queued for `phone`, oldest first.
pub async fn texts_to(db: &TestDb, phone: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT body FROM \"Outbox\" WHERE recipient = $1 ORDER BY seq")
        .bind(phone)
        .fetch_all(&mut db.conn().await)
        .await
        .expect("outbox")
}

/// An operator API token made with `admin create-token`.
pub fn api_token(db: &TestDb) -> String {
    let out = super::junkquote(&["admin", "create-token", "ops"], Some(&db.url), None);
    assert!(out.status.success(), "{}", super::stderr(&out));
    super::stdout(&out).trim().to_owned()
}

/// The owner's approval token from the latest approval request in the outbox.
pub async fn owner_token(db: &TestDb) -> String {
    let body: String = sqlx::query_scalar(
        "SELECT body FROM \"Outbox\" WHERE channel = 'owner' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("owner notification");
    body.split("/api/approvals/")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("token in the notification")
        .to_owned()
}

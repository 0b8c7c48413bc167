//! Identities a customer types, and the one-time codes that prove them, under attack: a number
//! typed first does not capture its owner, one message claims at most one identity, codes and
//! guesses are capped per identity across chat sessions, a typed number is answered the same
//! whether it is a customer's or not, and code texts do not stay readable in the outbox.

use std::sync::{Arc, Mutex};

use crate::helpers::twilio::{sms, texts_to};
use crate::helpers::{TestApp, TestDb, config};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use uuid::Uuid;

/// A customer who texted in: their phone is proven by the carrier.
const KNOWN: &str = "+14045550123";
/// A number nobody has used: its owner comes later.
const VICTIM: &str = "+14045550177";

/// A chat session: its id and bearer token.
struct Session(String, String);

async fn open_chat(server: &TestApp) -> Session {
    let response = reqwest::Client::new()
        .post(server.url("/api/chat/sessions"))
        .send()
        .await
        .expect("open a session");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    Session(
        body["session_id"].as_str().expect("id").to_owned(),
        body["token"].as_str().expect("token").to_owned(),
    )
}

/// Sends `text` in the session; returns the replies, one per line.
async fn chat(server: &TestApp, session: &Session, text: &str) -> String {
    let response = reqwest::Client::new()
        .post(server.url(&format!("/api/chat/sessions/{}/messages", session.0)))
        .bearer_auth(&session.1)
        .json(&json!({ "text": text }))
        .send()
        .await
        .expect("chat");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["replies"]
        .as_array()
        .expect("replies")
        .iter()
        .map(|r| r["content"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The customer a chat session's conversation belongs to.
async fn customer_of(db: &TestDb, session: &Session) -> Uuid {
    sqlx::query_scalar(
        "SELECT c.customer_id FROM \"ChatSession\" s
         JOIN \"Conversation\" c ON c.id = s.conversation_id WHERE s.id = $1::uuid",
    )
    .bind(&session.0)
    .fetch_one(&mut db.conn().await)
    .await
    .expect("the session's customer")
}

/// The customer holding an identity, and whether it is verified.
async fn holder(db: &TestDb, value: &str) -> Option<(Uuid, bool)> {
    sqlx::query_as(
        "SELECT customer_id, verified_at IS NOT NULL FROM \"CustomerIdentity\" WHERE value = $1",
    )
    .bind(value)
    .fetch_optional(&mut db.conn().await)
    .await
    .expect("identity")
}

/// The codes queued for `recipient` (a phone or an email), oldest first.
async fn codes_to(db: &TestDb, recipient: &str) -> Vec<String> {
    texts_to(db, recipient)
        .await
        .into_iter()
        .filter(|t| t.contains("verification code"))
        .map(|t| t.chars().filter(char::is_ascii_digit).take(6).collect())
        .collect()
}

/// A six-digit code that is not `code`.
fn wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&mut db.conn().await)
        .await
        .expect(sql)
}

/// Posts a signed Messenger message from `psid`.
async fn messenger(server: &TestApp, psid: &str, mid: &str, text: &str) {
    use junkquote::channels::signature::messenger_signature;
    let body = json!({
        "object": "page",
        "entry": [{"id": "PAGE", "time": 1, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": "PAGE"}, "timestamp": 1,
            "message": {"mid": mid, "text": text}
        }]}]
    })
    .to_string();
    let status = reqwest::Client::new()
        .post(server.url("/api/messenger"))
        .header("content-type", "application/json")
        .header(
            "X-Hub-Signature-256",
            messenger_signature("app-secret", body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("post")
        .status();
    assert_eq!(status, 200);
    server.answered().await;
}

/// The real owner proves `VICTIM` in a new chat session with the latest code texted there;
/// returns the session and the reply to the code.
async fn owner_proves_the_number(server: &TestApp) -> (Session, String) {
    let owner = open_chat(server).await;
    chat(
        server,
        &owner,
        "hi, my number is 404 555 0177, a fridge please",
    )
    .await;
    let code = codes_to(&server.db, VICTIM)
        .await
        .pop()
        .expect("a code texted to the owner");
    let reply = chat(server, &owner, &code).await;
    (owner, reply)
}

#[tokio::test]
async fn a_number_typed_first_goes_to_whoever_proves_it_and_nobody_is_merged_into_the_typist() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let typist = open_chat(&server).await;
    chat(&server, &typist, "a couch. my cell is 404-555-0177").await;
    chat(&server, &typist, "pickup at 12 Typist Road 30301").await;
    let after_typing = holder(db, VICTIM).await;

    let (owner, reply) = owner_proves_the_number(&server).await;
    assert!(reply.contains("you're verified"), "{reply}");
    assert!(!reply.contains("Typist"), "{reply}");
    let (typist_customer, owner_customer) = (
        customer_of(db, &typist).await,
        customer_of(db, &owner).await,
    );
    assert_ne!(
        typist_customer, owner_customer,
        "the owner was merged into the typist"
    );
    assert_eq!(holder(db, VICTIM).await, Some((owner_customer, true)));
    assert_eq!(
        after_typing, None,
        "a typed number is a mention, not an identity"
    );
    let typist_phone: Option<String> =
        sqlx::query_scalar("SELECT phone FROM \"Customer\" WHERE id = $1")
            .bind(typist_customer)
            .fetch_one(&mut db.conn().await)
            .await
            .expect("typist");
    assert_eq!(typist_phone, None);
}

#[tokio::test]
async fn a_number_an_sms_texter_types_is_only_a_mention() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(
        &server,
        "SMt1",
        "+14045550144",
        "a couch. my friend's cell is 404-555-0177",
    )
    .await;
    let after_typing = holder(db, VICTIM).await;
    let codes = codes_to(db, VICTIM).await.len();
    let texter: Uuid = holder(db, "+14045550144").await.expect("the texter").0;

    let (owner, reply) = owner_proves_the_number(&server).await;
    assert!(reply.contains("you're verified"), "{reply}");
    let owner_customer = customer_of(db, &owner).await;
    assert_ne!(
        owner_customer, texter,
        "the owner was merged into the texter"
    );
    assert_eq!(holder(db, VICTIM).await, Some((owner_customer, true)));
    assert_eq!(after_typing, None);
    assert_eq!(codes, 0, "an SMS texter sends no codes");
}

#[tokio::test]
async fn a_number_a_messenger_user_types_is_proven_by_a_code_before_it_is_theirs() {
    let server = TestApp::spawn(config::with_messenger(config::sms(), "app-secret", None)).await;
    let db = &server.db;
    messenger(
        &server,
        "2741000000000011",
        "m1",
        "hi, my cell is 404-555-0177",
    )
    .await;
    let after_typing = holder(db, VICTIM).await;
    let codes = codes_to(db, VICTIM).await.len();
    let user: Uuid = holder(db, "2741000000000011").await.expect("the user").0;

    let (owner, reply) = owner_proves_the_number(&server).await;
    assert!(reply.contains("you're verified"), "{reply}");
    let owner_customer = customer_of(db, &owner).await;
    assert_ne!(
        owner_customer, user,
        "the owner was merged into the Messenger user"
    );
    assert_eq!(holder(db, VICTIM).await, Some((owner_customer, true)));
    assert_eq!(after_typing, None);
    assert_eq!(codes, 1, "the number is asked to prove itself");
}

#[tokio::test]
async fn one_message_claims_at_most_one_identity() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let session = open_chat(&server).await;
    let numbers: Vec<String> = (100..160).map(|n| format!("404-555-0{n}")).collect();
    let text = format!(
        "{}, a@example.com, b@example.com, c@example.com",
        numbers.join(", ")
    );
    chat(&server, &session, &text).await;
    assert_eq!(
        count(db, "SELECT count(*) FROM \"CustomerIdentity\"").await,
        0
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM \"IdentityChallenge\"").await,
        1
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM \"Outbox\" WHERE body LIKE '%verification code%'"
        )
        .await,
        1
    );
    assert_eq!(
        codes_to(db, "+14045550100").await.len(),
        1,
        "the first number's"
    );
}

#[tokio::test]
async fn a_typed_number_is_answered_the_same_whether_it_is_a_customers_or_not() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(&server, "SMk1", KNOWN, "Hi, this is Jane. A couch please").await;
    let asks = |number: &str| format!("what address do you have for {number}?");
    let known = chat(&server, &open_chat(&server).await, &asks("404-555-0123")).await;
    let unknown = chat(&server, &open_chat(&server).await, &asks("404-555-0124")).await;
    assert_eq!(known, unknown);
    assert!(!known.contains("Jane"), "{known}");
    // A code goes to the number either way, and nothing is stored until it is proven.
    assert_eq!(codes_to(db, KNOWN).await.len(), 1);
    assert_eq!(codes_to(db, "+14045550124").await.len(), 1);
    assert_eq!(holder(db, "+14045550124").await, None);
}

#[tokio::test]
async fn codes_to_one_number_are_capped_per_day_whatever_the_sessions() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let mut replies = Vec::new();
    for _ in 0..7 {
        let session = open_chat(&server).await;
        replies.push(chat(&server, &session, "my number is 404-555-0177").await);
    }
    assert_eq!(codes_to(db, VICTIM).await.len(), 5, "{replies:?}");
    assert_eq!(replies[5], replies[6]);
    assert_ne!(
        replies[4], replies[5],
        "the visitor is told no code was sent"
    );
}

#[tokio::test]
async fn ten_wrong_codes_lock_the_identity_for_the_day_even_against_the_right_code() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(&server, "SMl1", KNOWN, "Hi, this is Jane. A couch please").await;
    let jane: Uuid = holder(db, KNOWN).await.expect("Jane").0;
    // One session asks for a code and keeps it; two others guess five times each.
    let patient = open_chat(&server).await;
    chat(&server, &patient, "my number is 404-555-0123").await;
    let kept = codes_to(db, KNOWN).await.pop().expect("a code");
    let mut last = String::new();
    for _ in 0..2 {
        let guesser = open_chat(&server).await;
        chat(&server, &guesser, "my number is 404-555-0123").await;
        let code = codes_to(db, KNOWN).await.pop().expect("a code");
        for _ in 0..5 {
            last = chat(&server, &guesser, wrong(&code)).await;
        }
    }
    assert!(last.contains("tomorrow"), "{last}");
    let told =
        "SELECT count(*) FROM \"Outbox\" WHERE channel = 'owner' AND body LIKE '%wrong code%'";
    assert_eq!(count(db, told).await, 1, "the owner is told once");

    // The right code, entered after the lock, is refused; no new code is sent.
    let reply = chat(&server, &patient, &kept).await;
    assert!(!reply.contains("verified"), "{reply}");
    assert_ne!(customer_of(db, &patient).await, jane);
    let late = open_chat(&server).await;
    chat(&server, &late, "my number is 404-555-0123").await;
    assert_eq!(codes_to(db, KNOWN).await.len(), 3);
    assert_eq!(count(db, told).await, 1, "the owner is told once");
}

#[tokio::test]
async fn an_email_is_proven_by_its_code_and_capped_like_a_phone() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    const EMAIL: &str = "jane@example.com";
    let first = open_chat(&server).await;
    let reply = chat(&server, &first, "you can email me at Jane@Example.com").await;
    assert!(reply.contains("code"), "{reply}");
    assert_eq!(holder(db, EMAIL).await, None);
    let code = codes_to(db, EMAIL)
        .await
        .pop()
        .expect("a code for the email");
    let reply = chat(&server, &first, &code).await;
    assert!(reply.contains("you're verified"), "{reply}");
    assert_eq!(
        holder(db, EMAIL).await,
        Some((customer_of(db, &first).await, true))
    );
    for _ in 0..6 {
        let session = open_chat(&server).await;
        chat(&server, &session, "jane@example.com").await;
    }
    assert_eq!(codes_to(db, EMAIL).await.len(), 5);
}

/// A stand-in for Twilio's create-message call that accepts everything; keeps the bodies.
async fn accepting_twilio() -> (String, Arc<Mutex<Vec<String>>>) {
    async fn create(
        State(bodies): State<Arc<Mutex<Vec<String>>>>,
        body: axum::body::Bytes,
    ) -> (StatusCode, axum::Json<Value>) {
        let text = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "Body")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let mut bodies = bodies.lock().expect("lock");
        bodies.push(text);
        let sid = format!("SM{:032x}", bodies.len());
        (
            StatusCode::CREATED,
            axum::Json(json!({"sid": sid, "status": "queued"})),
        )
    }
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create))
        .with_state(bodies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, bodies)
}

#[tokio::test]
async fn code_texts_are_redacted_in_the_outbox_once_sent_or_expired() {
    let (base, delivered) = accepting_twilio().await;
    let server = TestApp::spawn(config::sms_sending(&base, "AC123", "+14045550000")).await;
    let db = &server.db;
    chat(
        &server,
        &open_chat(&server).await,
        "my number is 404-555-0177",
    )
    .await;
    server.run_jobs_until_idle().await;
    let sent = delivered.lock().expect("lock").clone();
    assert!(
        sent.iter().any(|b| b.contains("verification code")),
        "{sent:?}"
    );
    let kept = texts_to(db, VICTIM).await;
    assert_eq!(kept, vec!["[one-time code]".to_owned()]);

    // Not sent before it expired (no way to send is configured): redacted, and never sent.
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    chat(
        &server,
        &open_chat(&server).await,
        "my number is 404-555-0177",
    )
    .await;
    server.run_jobs_until_idle().await;
    assert_eq!(codes_to(db, VICTIM).await.len(), 1);
    sqlx::query("UPDATE \"IdentityChallenge\" SET expires_at = now() - interval '1 second'")
        .execute(&mut db.conn().await)
        .await
        .expect("expire the code");
    server.run_jobs_until_idle().await;
    assert_eq!(
        texts_to(db, VICTIM).await,
        vec!["[one-time code]".to_owned()]
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM \"Outbox\" WHERE status IN ('pending', 'held')"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn wrong_codes_sent_at_once_from_five_sessions_are_counted_to_ten_and_no_further() {
    let server = Arc::new(TestApp::spawn(config::sms()).await);
    let db = &server.db;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        let session = open_chat(&server).await;
        chat(&server, &session, "my number is 404-555-0177").await;
        sessions.push(Arc::new(session));
    }
    let codes = codes_to(db, VICTIM).await;
    assert_eq!(codes.len(), 5);
    let guesses = sessions.iter().zip(&codes).flat_map(|(session, code)| {
        (0..5).map(|_| {
            let (server, session, guess) = (server.clone(), session.clone(), wrong(code));
            tokio::spawn(async move { chat(&server, &session, guess).await })
        })
    });
    let guesses: Vec<_> = guesses.collect();
    for guess in guesses {
        guess.await.expect("a guess");
    }
    let evaluated = count(
        db,
        "SELECT sum(attempts)::bigint FROM \"IdentityChallenge\" WHERE value = '+14045550177'",
    )
    .await;
    assert_eq!(evaluated, 10, "wrong codes evaluated");
    let told =
        "SELECT count(*) FROM \"Outbox\" WHERE channel = 'owner' AND body LIKE '%wrong code%'";
    assert_eq!(count(db, told).await, 1, "the owner is told once");
}

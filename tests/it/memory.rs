//! Context memory against a running server and a real PostgreSQL: a returning customer
//! recognised on every channel, their notes, the one-time code that links a web visitor, expired
//! notes, and erasure.

use crate::helpers;
use crate::helpers::twilio::{api_token, sms, texts_to};
use crate::helpers::{TestApp, TestDb, config};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

const PHONE: &str = "+14045550123";

async fn scalar_i64(conn: &mut PgConnection, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(conn)
        .await
        .expect(sql)
}

async fn api(
    server: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("api")
}

async fn get_json(server: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let response = api(server, token, reqwest::Method::GET, path).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn open_chat(server: &TestApp) -> (String, String) {
    let session: Value = reqwest::Client::new()
        .post(server.url("/api/chat/sessions"))
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("json");
    (
        session["session_id"].as_str().expect("id").to_owned(),
        session["token"].as_str().expect("token").to_owned(),
    )
}

async fn chat(server: &TestApp, session: &(String, String), text: &str) -> String {
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

/// Texts "I have an old mattress to get rid of" a week later; returns the reply.
async fn return_a_week_later(db: &TestDb, server: &TestApp, sid: &str) -> String {
    assert_eq!(
        sms(server, sid, PHONE, "I have an old mattress to get rid of")
            .await
            .status(),
        200
    );
    texts_to(db, PHONE).await.pop().expect("a reply")
}

/// Books a couch over SMS for Jane at 123 Main St with the gate code, then moves the clock a
/// week on (everything of hers happened eight days ago, the pickup included).
async fn book_and_age(db: &TestDb, server: &TestApp) -> Uuid {
    for (sid, text) in [
        (
            "SMa1",
            "Hi, this is Jane Doe. I need a couch picked up. The gate code is 4321",
        ),
        ("SMa2", "123 Main St, Canton GA 30114"),
        ("SMa3", "1"),
    ] {
        assert_eq!(sms(server, sid, PHONE, text).await.status(), 200);
    }
    let texts = texts_to(db, PHONE).await;
    assert!(
        texts.last().is_some_and(|t| t.contains("You're booked")),
        "{texts:?}"
    );
    let mut conn = db.conn().await;
    let customer: Uuid = sqlx::query_scalar("SELECT id FROM \"Customer\" WHERE phone = $1")
        .bind(PHONE)
        .fetch_one(&mut conn)
        .await
        .expect("one customer");
    for sql in [
        "UPDATE \"Conversation\" SET started_at = started_at - interval '8 days',
                last_message_at = last_message_at - interval '8 days' WHERE customer_id = $1",
        "UPDATE \"Message\" SET created_at = created_at - interval '8 days'
         WHERE conversation_id IN (SELECT id FROM \"Conversation\" WHERE customer_id = $1)",
        "UPDATE \"Booking\" SET window_start = window_start - interval '8 days',
                window_end = window_end - interval '8 days'
         WHERE job_id IN (SELECT id FROM \"Job\" WHERE customer_id = $1)",
        "UPDATE \"Job\" SET window_start = window_start - interval '8 days',
                window_end = window_end - interval '8 days' WHERE customer_id = $1",
    ] {
        sqlx::query(sql)
            .bind(customer)
            .execute(&mut conn)
            .await
            .expect(sql);
    }
    customer
}

#[tokio::test]
async fn a_returning_customer_is_known_on_every_channel_and_erased_completely() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let token = api_token(db);
    let customer = book_and_age(db, &server).await;
    let mut conn = db.conn().await;

    // The notes reached the crew's job.
    let crew_notes: String = sqlx::query_scalar(
        "SELECT e.metadata::text FROM \"JobEvent\" e JOIN \"Job\" j ON j.id = e.job_id
         WHERE j.customer_id = $1 AND e.event_type = 'crew_notes'",
    )
    .bind(customer)
    .fetch_one(&mut conn)
    .await
    .expect("crew notes on the job");
    assert!(crew_notes.contains("Gate code: 4321"), "{crew_notes}");

    // A week later the same number writes: a new conversation, and the address is asked about.
    let first = return_a_week_later(db, &server, "SMb1").await;
    // A new conversation: the assistant says it is automated, then welcomes her back.
    assert!(
        first.starts_with("Hi! This is an automated assistant. Welcome back, Jane!"),
        "{first}"
    );
    assert!(
        first.contains("Same address as last time — 123 Main St, Canton GA 30114?"),
        "{first}"
    );
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT count(*) FROM \"Conversation\" WHERE customer_id = $1",
            customer
        )
        .await,
        2
    );
    assert_eq!(sms(&server, "SMb2", PHONE, "yes").await.status(), 200);
    let texts = texts_to(db, PHONE).await;
    let offer = texts.last().expect("windows");
    assert!(
        offer.contains("123 Main St") && offer.contains("1)"),
        "{offer}"
    );

    // The context API, found by the phone written another way, shows the gate code.
    let (status, found) =
        get_json(&server, &token, "/api/v1/customers?phone=(404)%20555-0123").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["customer"]["id"], customer.to_string());
    let (status, context) = get_json(
        &server,
        &token,
        &format!("/api/v1/customers/{customer}/context"),
    )
    .await;
    assert_eq!(status, 200, "{context}");
    let notes: Vec<&str> = context["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n["content"].as_str())
        .collect();
    assert!(notes.contains(&"Gate code: 4321"), "{notes:?}");
    assert_eq!(context["customer"]["name"], "Jane Doe");
    assert_eq!(
        context["addresses"][0]["address"],
        "123 Main St, Canton GA 30114"
    );
    assert!(context["messages"].as_array().expect("messages").len() >= 8);
    assert_eq!(context["leads"][0]["stage"], "scheduling");

    // An expired note is in neither the context nor the notes list, and the purge deletes it.
    sqlx::query(
        "INSERT INTO \"MemoryNote\" (customer_id, content, expires_at)
         VALUES ($1, 'Ladder in the garage until Tuesday', now() - interval '1 hour')",
    )
    .bind(customer)
    .execute(&mut conn)
    .await
    .expect("expired note");
    let (_, context) = get_json(
        &server,
        &token,
        &format!("/api/v1/customers/{customer}/context"),
    )
    .await;
    let (_, listed) = get_json(
        &server,
        &token,
        &format!("/api/v1/customers/{customer}/notes"),
    )
    .await;
    for shown in [&context, &listed] {
        assert!(!shown.to_string().contains("Ladder"), "{shown}");
    }
    let pool = db.pool().await;
    assert_eq!(
        junkquote::store::memory::purge_expired(&pool, 100)
            .await
            .expect("purge"),
        1
    );

    // The same person on web chat: nothing of Jane's until the code texted to her is entered.
    let session = open_chat(&server).await;
    let reply = chat(
        &server,
        &session,
        "Hi! Can I get a quote? My number is 404.555.0123",
    )
    .await;
    assert!(reply.contains("6-digit code"), "{reply}");
    for secret in ["Jane", "Main St", "4321"] {
        assert!(!reply.contains(secret), "{secret} leaked: {reply}");
    }
    let code_text = texts_to(db, PHONE)
        .await
        .into_iter()
        .rfind(|t| t.contains("verification code"))
        .expect("a code texted to Jane");
    let code: String = code_text
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let reply = chat(&server, &session, wrong).await;
    assert!(reply.contains("doesn't match"), "{reply}");
    let thread: Value = reqwest::Client::new()
        .get(server.url(&format!("/api/chat/sessions/{}/messages", session.0)))
        .bearer_auth(&session.1)
        .send()
        .await
        .expect("thread")
        .json()
        .await
        .expect("json");
    for secret in ["Jane", "Main St", "4321"] {
        assert!(
            !thread.to_string().contains(secret),
            "{secret} leaked: {thread}"
        );
    }
    let reply = chat(&server, &session, &code).await;
    assert!(reply.contains("Thanks, Jane, you're verified"), "{reply}");
    let web_customer: Uuid = sqlx::query_scalar(
        "SELECT c.customer_id FROM \"ChatSession\" s JOIN \"Conversation\" c ON c.id = s.conversation_id
         WHERE s.id = $1::uuid",
    )
    .bind(&session.0)
    .fetch_one(&mut conn)
    .await
    .expect("session conversation");
    assert_eq!(web_customer, customer, "the web visitor is Jane now");
    assert_eq!(
        scalar_i64(
            &mut conn,
            "SELECT count(*) FROM \"Customer\" WHERE id <> $1",
            customer
        )
        .await,
        0,
        "the visitor's provisional customer was merged away"
    );

    // Erasure leaves nothing of hers, and an audit row without personal data.
    let response = api(
        &server,
        &token,
        reqwest::Method::DELETE,
        &format!("/api/v1/customers/{customer}"),
    )
    .await;
    assert_eq!(response.status(), 200);
    for (table, sql) in [
        ("Customer", "SELECT count(*) FROM \"Customer\""),
        (
            "CustomerIdentity",
            "SELECT count(*) FROM \"CustomerIdentity\"",
        ),
        (
            "CustomerAddress",
            "SELECT count(*) FROM \"CustomerAddress\"",
        ),
        ("Conversation", "SELECT count(*) FROM \"Conversation\""),
        ("Message", "SELECT count(*) FROM \"Message\""),
        ("MemoryNote", "SELECT count(*) FROM \"MemoryNote\""),
        ("Lead", "SELECT count(*) FROM \"Lead\""),
        ("Job", "SELECT count(*) FROM \"Job\""),
        (
            "IdentityChallenge",
            "SELECT count(*) FROM \"IdentityChallenge\"",
        ),
        (
            "Outbox to her",
            "SELECT count(*) FROM \"Outbox\" WHERE recipient = '+14045550123'",
        ),
        (
            "Audit with her data",
            "SELECT count(*) FROM \"Audit\" WHERE payload::text ~ '(4045550123|Jane|Main St|4321)'",
        ),
    ] {
        let left: i64 = sqlx::query_scalar(sql)
            .fetch_one(&mut conn)
            .await
            .expect(sql);
        assert_eq!(left, 0, "{table} still holds {left} row(s) of hers");
    }
    let audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM \"Audit\" WHERE action = 'customer_erased' AND payload->>'customer_id' = $1",
    )
    .bind(customer.to_string())
    .fetch_one(&mut conn)
    .await
    .expect("audit");
    assert_eq!(audit, 1);
    let (status, _) = get_json(
        &server,
        &token,
        &format!("/api/v1/customers/{customer}/context"),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn with_memory_off_nothing_is_read_but_records_are_written() {
    let db = TestDb::migrated().await;
    let mut memory_off = config::sms();
    memory_off.agent.options.memory = false;
    let server = TestApp::spawn_on(&db, memory_off).await;
    let customer = book_and_age(&db, &server).await;
    let first = return_a_week_later(&db, &server, "SMc1").await;
    assert!(
        !first.contains("Jane") && !first.contains("Main St"),
        "{first}"
    );
    assert!(first.contains("What's the pickup address?"), "{first}");
    let mut conn = db.conn().await;
    let notes = scalar_i64(
        &mut conn,
        "SELECT count(*) FROM \"MemoryNote\" WHERE customer_id = $1",
        customer,
    )
    .await;
    assert_eq!(notes, 1, "the gate code was still written down");
}

#[tokio::test]
async fn without_strict_confirmation_the_last_address_is_reused_and_said() {
    let db = TestDb::migrated().await;
    let mut not_strict = config::sms();
    not_strict.agent.options.strict_address = false;
    let server = TestApp::spawn_on(&db, not_strict).await;
    book_and_age(&db, &server).await;
    let first = return_a_week_later(&db, &server, "SMd1").await;
    assert!(
        first.contains("123 Main St, Canton GA 30114. Pickup windows"),
        "{first}"
    );
}

#[tokio::test]
async fn phones_and_emails_in_any_format_find_one_customer_and_bad_ones_are_refused() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let token = api_token(db);
    sms(
        &server,
        "SMe1",
        PHONE,
        "a couch please. my email is  Jane.Doe@Example.COM",
    )
    .await;
    // An email in a text is a mention: nobody is found by it until it is proven. On web chat
    // the phone's code makes the visitor Jane, and the email's code gives her the email.
    let (status, _) = get_json(
        &server,
        &token,
        "/api/v1/customers?email=jane.doe@example.com",
    )
    .await;
    assert_eq!(status, 404);
    let session = open_chat(&server).await;
    for (typed, recipient) in [
        ("my number is 404 555 0123", PHONE),
        (
            "and my email is Jane.Doe@Example.COM",
            "jane.doe@example.com",
        ),
    ] {
        chat(&server, &session, typed).await;
        let code: String = texts_to(db, recipient)
            .await
            .into_iter()
            .rfind(|t| t.contains("verification code"))
            .expect("a code")
            .chars()
            .filter(char::is_ascii_digit)
            .take(6)
            .collect();
        let reply = chat(&server, &session, &code).await;
        assert!(reply.contains("you're verified"), "{reply}");
    }
    let mut ids = Vec::new();
    for query in [
        "phone=(404)%20555-0123",
        "phone=404.555.0123",
        "phone=%2B1%20404%20555%200123",
        "phone=4045550123",
        "email=%20JANE.doe@example.com%20",
    ] {
        let (status, body) = get_json(&server, &token, &format!("/api/v1/customers?{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        ids.push(body["customer"]["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    for query in [
        "phone=555-0123",
        "phone=call%20me",
        "email=jane",
        "phone=1&email=a@b.co",
    ] {
        let (status, body) = get_json(&server, &token, &format!("/api/v1/customers?{query}")).await;
        assert!(status == 422 || status == 400, "{query}: {status} {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let (status, _) = get_json(&server, &token, "/api/v1/customers?phone=4045559999").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn ten_first_messages_at_once_from_a_new_number_make_one_customer() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let sends = (0..10).map(|i| {
        let url = server.url("/api/twilio/sms");
        let params = helpers::twilio::form(&format!("SMf{i}"), "+14045550177", "a couch");
        async move { helpers::twilio::post_signed(url, &params).await.status() }
    });
    for status in futures_join_all(sends).await {
        assert_eq!(status, 200);
    }
    let mut conn = db.conn().await;
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM \"Customer\"")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    let identities: i64 = sqlx::query_scalar("SELECT count(*) FROM \"CustomerIdentity\"")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!((customers, identities), (1, 1));
}

async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn bad_memory_notes_are_refused_and_nothing_is_stored() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let token = api_token(db);
    sms(&server, "SMg1", PHONE, "a couch").await;
    let mut conn = db.conn().await;
    let customer: Uuid = sqlx::query_scalar("SELECT id FROM \"Customer\"")
        .fetch_one(&mut conn)
        .await
        .expect("customer");
    let post = |path: String, body: Value| {
        let token = token.clone();
        let url = server.url(&path);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("post");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let notes = format!("/api/v1/customers/{customer}/notes");
    let (status, body) = post(
        notes.clone(),
        json!({"content": "Gate code 1", "expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("past")
    );
    let (status, body) = post(notes.clone(), json!({"content": "x".repeat(100 * 1024)})).await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = post(notes.clone(), json!({"content": "y".repeat(3000)})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = post(
        format!("/api/v1/customers/{}/notes", Uuid::new_v4()),
        json!({"content": "Dog in the yard"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM \"MemoryNote\"")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(stored, 0);

    // A good one is added, edited, found, and deleted.
    let (status, body) = post(notes.clone(), json!({"content": "Dog in the yard"})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["note"]["id"].as_str().expect("id").to_owned();
    let response = reqwest::Client::new()
        .patch(server.url(&format!("/api/v1/notes/{id}")))
        .bearer_auth(&token)
        .json(&json!({"content": "Two dogs in the yard", "expires_at": null}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let (_, listed) = get_json(&server, &token, &notes).await;
    assert_eq!(listed["notes"][0]["content"], "Two dogs in the yard");
    let response = api(
        &server,
        &token,
        reqwest::Method::DELETE,
        &format!("/api/v1/notes/{id}"),
    )
    .await;
    assert_eq!(response.status(), 204);
    let (_, listed) = get_json(&server, &token, &notes).await;
    assert_eq!(listed["notes"], json!([]));
}

#[tokio::test]
async fn past_messages_are_searchable_and_customers_merge_on_the_operators_word() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let token = api_token(db);
    sms(
        &server,
        "SMh1",
        PHONE,
        "I need a blue sectional sofa hauled",
    )
    .await;
    sms(&server, "SMh2", "+14045550188", "a fridge").await;
    let mut conn = db.conn().await;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM \"Customer\" ORDER BY created_at")
        .fetch_all(&mut conn)
        .await
        .expect("customers");
    let [first, second] = ids[..] else {
        panic!("expected two customers, got {ids:?}");
    };
    let (status, hits) = get_json(
        &server,
        &token,
        &format!("/api/v1/customers/{first}/messages?q=blue"),
    )
    .await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits["messages"].as_array().map(Vec::len), Some(1), "{hits}");
    let (_, none) = get_json(
        &server,
        &token,
        &format!("/api/v1/customers/{second}/messages?q=blue"),
    )
    .await;
    assert_eq!(
        none["messages"],
        json!([]),
        "search stays within one customer"
    );

    let merge = |survivor: Uuid, other: Uuid| {
        let url = server.url(&format!("/api/v1/customers/{survivor}/merge"));
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "other": other }))
                .send()
                .await
                .expect("merge")
                .status()
                .as_u16()
        }
    };
    assert_eq!(merge(first, first).await, 422);
    assert_eq!(merge(first, Uuid::new_v4()).await, 404);
    assert_eq!(merge(first, second).await, 200);
    for phone in ["4045550123", "4045550188"] {
        let (_, found) =
            get_json(&server, &token, &format!("/api/v1/customers?phone={phone}")).await;
        assert_eq!(found["customer"]["id"], first.to_string(), "{phone}");
    }
    // A text from the merged number now goes on with the survivor.
    sms(&server, "SMh3", "+14045550188", "and a washer").await;
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM \"Customer\"")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(customers, 1);
}

#[tokio::test]
async fn a_number_someone_typed_belongs_to_whoever_texts_from_it() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let token = api_token(db);
    // A web visitor types a number nobody has used yet: kept, unverified, on the visitor.
    let session = open_chat(&server).await;
    chat(
        &server,
        &session,
        "a piano. you can reach me at 404-555-0199",
    )
    .await;
    // Then that number texts in: it is the texter's, and sees nothing of the visitor's.
    sms(&server, "SMi1", "+14045550199", "hello").await;
    let reply = texts_to(db, "+14045550199").await;
    assert!(!reply.concat().contains("piano"), "{reply:?}");
    let (_, found) = get_json(&server, &token, "/api/v1/customers?phone=4045550199").await;
    let texter = found["customer"]["id"].as_str().expect("id").to_owned();
    let (_, context) = get_json(
        &server,
        &token,
        &format!("/api/v1/customers/{texter}/context"),
    )
    .await;
    assert_eq!(context["identities"][0]["verified"], true, "{context}");
    assert!(
        !context["messages"].to_string().contains("piano"),
        "{context}"
    );
}

#[tokio::test]
async fn a_messenger_user_who_texted_before_becomes_one_customer_after_the_code() {
    use junkquote::channels::signature::messenger_signature;
    let db = TestDb::migrated().await;
    let server = TestApp::spawn_on(
        &db,
        config::with_messenger(config::sms(), "app-secret", None),
    )
    .await;
    let token = api_token(&db);
    sms(&server, "SMj1", PHONE, "Hi, this is Jane. A couch please").await;
    let messenger = |mid: &str, text: &str| {
        let body = json!({
            "object": "page",
            "entry": [{"id": "PAGE", "time": 1, "messaging": [{
                "sender": {"id": "2741000000000009"}, "recipient": {"id": "PAGE"}, "timestamp": 1,
                "message": {"mid": mid, "text": text}
            }]}]
        })
        .to_string();
        let url = server.url("/api/messenger");
        async move {
            let status = reqwest::Client::new()
                .post(url)
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
        }
    };
    messenger("m1", "hi, my cell is (404) 555-0123").await;
    server.answered().await;
    let code_text = texts_to(&db, PHONE)
        .await
        .into_iter()
        .rfind(|t| t.contains("verification code"))
        .expect("a code texted to the phone");
    let code: String = code_text
        .chars()
        .filter(char::is_ascii_digit)
        .take(6)
        .collect();
    messenger("m2", &code).await;
    server.answered().await;
    let (_, found) = get_json(&server, &token, "/api/v1/customers?psid=2741000000000009").await;
    let (_, by_phone) = get_json(&server, &token, "/api/v1/customers?phone=4045550123").await;
    assert_eq!(
        found["customer"]["id"], by_phone["customer"]["id"],
        "{found} {by_phone}"
    );
    assert_eq!(found["customer"]["name"], "Jane");

    // On SMS, another customer's number in a text is only a mention: no code, no merge.
    sms(
        &server,
        "SMj2",
        "+14045550144",
        "my neighbour 404-555-0123 said you're great",
    )
    .await;
    let texts = texts_to(&db, "+14045550144").await;
    assert!(!texts.concat().contains("code"), "{texts:?}");
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM \"Customer\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("count");
    assert_eq!(customers, 2);
}

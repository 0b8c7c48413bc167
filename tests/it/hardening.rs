//! The smaller holes of issue 13, each as an attack: a look-alike media host, internal notes in
//! the visitor's thread, overlong client ids, a calendar token used on the API, a silent chat
//! session reused, stray control characters from the model, and lines injected into the iCal
//! feed.

use std::time::Duration;

use crate::helpers::twilio::{api_token, form, post_signed, sms};
use crate::helpers::{TestApp, TestDb, config};
use axum::Json;
use junkquote::app::Config;
use junkquote::channels::signature::messenger_signature;
use serde_json::{Value, json};

const PHONE: &str = "+14045550123";
const LOOK_ALIKE: &str = "https://evil.example\\.twilio.com/x.jpg";

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&mut db.conn().await)
        .await
        .expect(sql)
}

/// A chat session: its id and token.
async fn chat_session(server: &TestApp) -> (String, String) {
    let body: Value = reqwest::Client::new()
        .post(server.url("/api/chat/sessions"))
        .send()
        .await
        .expect("open")
        .json()
        .await
        .expect("session");
    (
        body["session_id"].as_str().expect("id").to_owned(),
        body["token"].as_str().expect("token").to_owned(),
    )
}

async fn say(server: &TestApp, (id, token): &(String, String), body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.url(&format!("/api/chat/sessions/{id}/messages")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post")
}

fn messenger_payload(mid: &str, text: &str, image: Option<&str>) -> String {
    let mut message = json!({"mid": mid, "text": text});
    if let Some(url) = image {
        message["attachments"] = json!([{"type": "image", "payload": {"url": url}}]);
    }
    json!({
        "object": "page",
        "entry": [{"id": "PAGE", "time": 1, "messaging": [{
            "sender": {"id": "2741000000000001"}, "recipient": {"id": "PAGE"}, "timestamp": 1,
            "message": message
        }]}]
    })
    .to_string()
}

async fn post_messenger(server: &TestApp, body: &str) -> reqwest::Response {
    let response = reqwest::Client::new()
        .post(server.url("/api/messenger"))
        .header("content-type", "application/json")
        .header(
            "X-Hub-Signature-256",
            messenger_signature("app-secret", body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    server.answered().await;
    response
}

#[tokio::test]
async fn a_look_alike_media_host_is_not_kept_from_mms_or_messenger() {
    let server = TestApp::spawn(config::with_messenger(config::sms(), "app-secret", None)).await;
    let db = &server.db;
    let mut params = form("SMh1", PHONE, "");
    params.push(("NumMedia".into(), "1".into()));
    params.push(("MediaUrl0".into(), LOOK_ALIKE.into()));
    let response = post_signed(server.url("/api/twilio/sms"), &params).await;
    assert_eq!(response.status(), 200);
    let body = messenger_payload("m_h1", "", Some(LOOK_ALIKE));
    assert_eq!(post_messenger(&server, &body).await.status(), 200);
    assert_eq!(
        count(db, "SELECT count(*) FROM \"LeadAttachment\"").await,
        0,
        "a photo on evil.example is nobody's media"
    );
}

#[tokio::test]
async fn the_visitor_sees_their_messages_and_the_assistants_never_internal_notes() {
    let server = TestApp::spawn(Config::default()).await;
    let session = chat_session(&server).await;
    assert_eq!(
        say(&server, &session, json!({"text": "a couch"}))
            .await
            .status(),
        200
    );
    // What the assistant would have said while an operator held the conversation, and a tool
    // row: the operator's, not the visitor's.
    sqlx::query(
        "INSERT INTO \"Message\" (conversation_id, role, content)
         SELECT conversation_id, r.role::\"MessageRole\", 'internal: ' || r.role
         FROM \"ChatSession\", (VALUES ('system'), ('tool')) AS r(role)",
    )
    .execute(&mut server.db.conn().await)
    .await
    .expect("internal notes");
    let thread: Value = reqwest::Client::new()
        .get(server.url(&format!("/api/chat/sessions/{}/messages", session.0)))
        .bearer_auth(&session.1)
        .send()
        .await
        .expect("thread")
        .json()
        .await
        .expect("json");
    let roles: Vec<&str> = thread["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["user", "assistant"], "{thread}");
}

#[tokio::test]
async fn an_overlong_client_message_id_is_a_422_on_every_channel_and_nothing_is_stored() {
    let server = TestApp::spawn(config::with_messenger(config::sms(), "app-secret", None)).await;
    let db = &server.db;
    let long = "x".repeat(8000);
    let session = chat_session(&server).await;
    let response = say(&server, &session, json!({"text": "a couch", "id": long})).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "invalid");
    assert_eq!(
        say(&server, &session, json!({"text": "a couch", "id": ""}))
            .await
            .status(),
        422
    );
    let response = post_signed(
        server.url("/api/twilio/sms"),
        &form(&long, PHONE, "a couch"),
    )
    .await;
    assert_eq!(response.status(), 422);
    let response = post_messenger(&server, &messenger_payload(&long, "a couch", None)).await;
    assert_eq!(response.status(), 422);
    assert_eq!(count(db, "SELECT count(*) FROM \"Message\"").await, 0);
    // 100 characters is an id.
    let id = "y".repeat(100);
    assert_eq!(
        say(&server, &session, json!({"text": "a couch", "id": id}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_chat_session_silent_for_thirty_days_is_closed() {
    let server = TestApp::spawn(Config::default()).await;
    let session = chat_session(&server).await;
    let age = |days: i32| {
        let db = server.db.clone();
        async move {
            sqlx::query(
                "UPDATE \"ChatSession\" SET last_seen_at = now() - make_interval(days => $1)",
            )
            .bind(days)
            .execute(&mut db.conn().await)
            .await
            .expect("age the session");
        }
    };
    age(29).await;
    assert_eq!(
        say(&server, &session, json!({"text": "a couch"}))
            .await
            .status(),
        200
    );
    age(31).await;
    let response = say(&server, &session, json!({"text": "and a fridge"})).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("JSON error");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("start a new chat"), "{message}");
    let thread = reqwest::Client::new()
        .get(server.url(&format!("/api/chat/sessions/{}/messages", session.0)))
        .bearer_auth(&session.1)
        .send()
        .await
        .expect("thread");
    assert_eq!(thread.status(), 401);
    assert_eq!(
        count(
            &server.db,
            "SELECT count(*) FROM \"Message\" WHERE role = 'user'"
        )
        .await,
        1
    );
}

/// A token made by `admin create-token NAME --scope SCOPE`.
fn scoped_token(db: &TestDb, scope: &str) -> String {
    let out = crate::helpers::junkquote(
        &["admin", "create-token", "phone-calendar", "--scope", scope],
        Some(&db.url),
        None,
    );
    assert!(out.status.success(), "{}", crate::helpers::stderr(&out));
    crate::helpers::stdout(&out).trim().to_owned()
}

#[tokio::test]
async fn a_calendar_token_reads_the_feed_and_nothing_else() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let calendar = scoped_token(db, "calendar");
    let api = api_token(db);
    let client = reqwest::Client::new();
    let feed = |token: String| {
        client
            .get(server.url(&format!("/calendar.ics?token={token}")))
            .send()
    };
    assert_eq!(feed(calendar.clone()).await.expect("feed").status(), 200);
    assert_eq!(
        feed(api.clone()).await.expect("feed").status(),
        200,
        "as today"
    );
    for path in ["/api/v1/approvals", "/api/v1/settings"] {
        let refused = client
            .get(server.url(path))
            .bearer_auth(&calendar)
            .send()
            .await
            .expect("get");
        assert_eq!(refused.status(), 403, "{path}");
        let body: Value = refused.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], "forbidden");
        let allowed = client
            .get(server.url(path))
            .bearer_auth(&api)
            .send()
            .await
            .expect("get");
        assert_eq!(allowed.status(), 200, "{path}");
    }
    let out = crate::helpers::junkquote(
        &["admin", "create-token", "x", "--scope", "everything"],
        Some(&db.url),
        None,
    );
    assert!(!out.status.success(), "an unknown scope is refused");
}

#[tokio::test]
async fn no_stored_value_can_add_a_line_to_the_calendar_feed() {
    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    sms(
        &server,
        "SMi1",
        PHONE,
        "a couch, a fridge and 5 bags of trash",
    )
    .await;
    sms(&server, "SMi2", PHONE, "123 Main St, Canton GA 30114").await;
    sms(&server, "SMi3", PHONE, "1").await;
    assert_eq!(count(db, "SELECT count(*) FROM \"Job\"").await, 1);
    // However a value got there, a bare CR (or any control character) must not start a line.
    sqlx::query(
        "UPDATE \"Lead\" SET address = E'1 Main St\\rEND:VEVENT\\rBEGIN:VEVENT\\rSUMMARY:Free\\u0007\\u000b'",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("a hostile address");
    let token = api_token(db);
    let text = reqwest::Client::new()
        .get(server.url(&format!("/calendar.ics?token={token}")))
        .send()
        .await
        .expect("feed")
        .text()
        .await
        .expect("body");
    assert!(text.ends_with("\r\n"), "{text:?}");
    let unfolded = text.replace("\r\n ", "");
    let lines: Vec<&str> = unfolded.trim_end_matches("\r\n").split("\r\n").collect();
    for line in &lines {
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "a control character in {line:?}"
        );
        assert!(line.len() <= 75 || text.contains("\r\n "), "{line:?}");
    }
    for raw in text.split("\r\n") {
        assert!(raw.len() <= 75, "an unfolded line of {} octets", raw.len());
    }
    assert_eq!(
        lines.iter().filter(|l| **l == "BEGIN:VEVENT").count(),
        1,
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == "END:VEVENT").count(),
        1,
        "{lines:?}"
    );
}

/// A model that sets a pickup address with line breaks and other control characters in it.
async fn fake_model() -> String {
    async fn completions(Json(request): Json<Value>) -> Json<Value> {
        let last = request["messages"]
            .as_array()
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or_default();
        Json(if last["role"] == "tool" {
            json!({"choices": [{"index": 0, "finish_reason": "stop",
                   "message": {"role": "assistant", "content": "Got it, thanks!"}}]})
        } else {
            let arguments = json!({"address": "12 Oak St\r\nEND:VEVENT\u{0}\u{7}\tCanton GA"});
            json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {
                    "name": "set_pickup_address", "arguments": arguments.to_string()}}]}}]})
        })
    }
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(completions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn control_characters_are_stripped_from_the_models_tool_arguments() {
    let base = fake_model().await;
    let server = TestApp::spawn(config::with_llm(
        config::sms(),
        &base,
        Duration::from_secs(5),
    ))
    .await;
    sms(&server, "SMl1", PHONE, "pick up at my place please").await;
    let address: Option<String> = sqlx::query_scalar("SELECT address FROM \"Lead\"")
        .fetch_one(&mut server.db.conn().await)
        .await
        .expect("lead");
    assert_eq!(address.as_deref(), Some("12 Oak St END:VEVENT Canton GA"));
}

#[tokio::test]
async fn request_logs_carry_no_query_string_and_no_approval_token_at_any_level() {
    use std::io::{BufRead, BufReader, Read};
    let db = TestDb::migrated().await;
    let mut child =
        crate::helpers::command(&["serve", "--addr", "127.0.0.1:0"], Some(&db.url), None)
            .env("RUST_LOG", "trace")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines.next().expect("serve's output").expect("a line");
        if let Some(addr) = line.strip_prefix("junkquote listening on ") {
            break addr.to_owned();
        }
    };
    let client = reqwest::Client::new();
    let feed = client
        .get(format!("{base}/calendar.ics?token=feedsecret0123456789"))
        .send()
        .await
        .expect("feed");
    assert_eq!(feed.status(), 401);
    let approval = client
        .post(format!("{base}/api/approvals/approvalsecret0123456789"))
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .expect("approval");
    assert_eq!(approval.status(), 404);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("the log");
    child.wait().expect("wait");
    for secret in ["feedsecret0123456789", "approvalsecret0123456789"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(
        log.contains("/api/approvals/[redacted]") && log.contains("/calendar.ics"),
        "the requests were logged: {log}"
    );
}

/// The login page's `jq_login` Set-Cookie header as `server` (a `junkquote serve`) sends it.
async fn login_cookie(base: &str) -> String {
    let page = reqwest::Client::new()
        .get(format!("{base}/admin/login"))
        .send()
        .await
        .expect("login page");
    page.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("jq_login="))
        .expect("a login cookie")
        .to_owned()
}

#[tokio::test]
async fn console_cookies_are_secure_unless_plain_http_is_asked_for() {
    let db = TestDb::migrated().await;
    let default = crate::helpers::Server::start(&[], Some(&db.url), None);
    let cookie = login_cookie(&default.base).await;
    assert!(cookie.contains("Secure"), "Secure by default: {cookie}");
    drop(default);
    let lan = crate::helpers::Server::start(&["--secure-cookies", "false"], Some(&db.url), None);
    let cookie = login_cookie(&lan.base).await;
    assert!(
        !cookie.contains("Secure"),
        "plain http when asked: {cookie}"
    );
    // In-process, the default configuration is the same.
    let server = TestApp::spawn_on(&db, Config::default()).await;
    assert!(login_cookie(&server.base).await.contains("Secure"));
}

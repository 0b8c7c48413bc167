//! The console over plain HTTP: users made by `admin create-user`, sign-in cookies, CSRF
//! tokens on every form, the login rate limit, the 404 page, server-side validation with the
//! message next to the field, escaping, merge and erase. (The browser test drives the same
//! pages in Chromium.)

use crate::helpers;
use crate::helpers::twilio::sms;
use crate::helpers::{TestApp, TestDb, config};
use junkquote::app::Config;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use uuid::Uuid;

const EMAIL: &str = "owner@junk.example";
const PASSWORD: &str = "correct horse battery staple";

use crate::helpers::create_user;

/// Creates the console user every test signs in as.
fn create_owner(db: &TestDb) {
    let out = create_user(db, EMAIL, &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", helpers::stderr(&out));
}

/// The value of cookie `name` among a response's Set-Cookie headers, with its attributes.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// The first `name="csrf" value="…"` of a page.
fn csrf_in(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field on the page")
        .to_owned()
}

/// A signed-in operator: the session cookie and the page's CSRF token.
struct Console {
    client: reqwest::Client,
    base: String,
    session: String,
    csrf: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// The login page's CSRF cookie and token.
async fn login_form(server: &TestApp) -> (String, String) {
    let page = client()
        .get(server.url("/admin/login"))
        .send()
        .await
        .expect("login page");
    let cookie = set_cookie(&page, "jq_login").expect("a login cookie");
    let token = cookie_value(&cookie);
    let html = page.text().await.expect("html");
    assert_eq!(csrf_in(&html), token, "the form carries the cookie's token");
    (cookie, token)
}

async fn try_login(server: &TestApp, email: &str, password: &str) -> reqwest::Response {
    try_login_from(server, email, password, "203.0.113.1").await
}

/// A login attempt through a proxy that says the client is `address`.
async fn try_login_from(
    server: &TestApp,
    email: &str,
    password: &str,
    address: &str,
) -> reqwest::Response {
    let (_, token) = login_form(server).await;
    client()
        .post(server.url("/admin/login"))
        .header("X-Forwarded-For", format!("198.51.100.7, {address}"))
        .header("Cookie", format!("jq_login={token}"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .expect("login")
}

async fn sign_in(server: &TestApp) -> Console {
    let response = try_login(server, EMAIL, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let session = cookie_value(&set_cookie(&response, "jq_session").expect("session cookie"));
    let client = client();
    let page = client
        .get(server.url("/admin/dashboard"))
        .header("Cookie", format!("jq_session={session}"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_in(&page.text().await.expect("html"));
    Console {
        client,
        base: server.base.clone(),
        session,
        csrf,
    }
}

impl Console {
    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Cookie", format!("jq_session={}", self.session))
            .send()
            .await
            .expect("get");
        (response.status(), response.text().await.expect("body"))
    }

    /// Posts a form with the session's CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts exactly `fields`.
    async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Cookie", format!("jq_session={}", self.session))
            .form(fields)
            .send()
            .await
            .expect("post");
        (response.status(), response.text().await.expect("body"))
    }
}

async fn customer_of(db: &TestDb, phone: &str) -> Uuid {
    sqlx::query_scalar("SELECT customer_id FROM \"CustomerIdentity\" WHERE value = $1")
        .bind(phone)
        .fetch_one(&mut db.conn().await)
        .await
        .expect("customer")
}

#[tokio::test]
async fn create_user_hashes_the_password_from_stdin_and_refuses_bad_input() {
    let db = TestDb::migrated().await;
    let out = create_user(&db, "Owner@Junk.Example", &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", helpers::stderr(&out));
    let (email, hash): (String, String) =
        sqlx::query_as("SELECT email, password_hash FROM \"ConsoleUser\"")
            .fetch_one(&mut db.conn().await)
            .await
            .expect("user");
    assert_eq!(email, EMAIL, "stored normalised");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));

    let again = create_user(&db, EMAIL, "another long password\n");
    assert!(helpers::one_line_error(&again, 1).contains("already exists"));
    let short = create_user(&db, "b@junk.example", "short\n");
    assert!(helpers::one_line_error(&short, 1).contains("at least 10 characters"));
    let bad = create_user(&db, "not an email", &format!("{PASSWORD}\n"));
    assert!(helpers::one_line_error(&bad, 1).contains("not an email address"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM \"ConsoleUser\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("count");
    assert_eq!(users, 1);
}

#[tokio::test]
async fn sessions_use_hardened_cookies_and_every_form_needs_the_sessions_csrf_token() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    sms(&server, "SMc1", "+14045550123", "a couch").await;
    let customer = customer_of(&db, "+14045550123").await;

    // Not signed in: to the login page.
    let page = client()
        .get(server.url("/admin/customers"))
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/admin/login");

    // The login form's own token: no cookie, or a token that is not the cookie's → 403.
    let (cookie, token) = login_form(&server).await;
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        cookie.contains("Secure"),
        "Secure unless told plain http (issue 13): {cookie}"
    );
    let no_cookie = client()
        .post(server.url("/admin/login"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);
    let wrong = client()
        .post(server.url("/admin/login"))
        .header("Cookie", format!("jq_login={token}"))
        .form(&[("csrf", "forged"), ("email", EMAIL), ("password", PASSWORD)])
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    let signed_in = try_login(&server, EMAIL, PASSWORD).await;
    let session = set_cookie(&signed_in, "jq_session").expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/admin"] {
        assert!(
            session.contains(attribute),
            "{attribute} missing: {session}"
        );
    }
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM \"ConsoleSession\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("session row");
    assert_ne!(stored, cookie_value(&session), "only a hash is stored");

    let console = sign_in(&server).await;
    let notes = format!("/admin/customers/{customer}/notes");
    let (status, body) = console.post_raw(&notes, &[("content", "gate 1234")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token: {body}");
    assert!(body.contains("403"), "the 403 page");
    let (status, _) = console
        .post_raw(&notes, &[("csrf", "made-up"), ("content", "gate 1234")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another session's token is stale for this one.
    let other = sign_in(&server).await;
    let (status, _) = console
        .post_raw(
            &notes,
            &[("csrf", other.csrf.as_str()), ("content", "gate 1234")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = console.post(&notes, &[("content", "gate 1234")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let kept: Vec<String> = sqlx::query_scalar(
        "SELECT content FROM \"MemoryNote\" WHERE metadata->>'key' = 'operator'",
    )
    .fetch_all(&mut db.conn().await)
    .await
    .expect("notes");
    assert_eq!(
        kept,
        ["gate 1234"],
        "only the form with the right token wrote"
    );

    // Logging out ends the session on the server: its cookie no longer works.
    let (status, _) = console.post("/admin/logout", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = console.get("/admin/dashboard").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out");
    let (status, _) = other.get("/admin/dashboard").await;
    assert_eq!(status, StatusCode::OK, "the other session goes on");
}

#[tokio::test]
async fn cookies_are_secure_when_the_server_is_told_it_is_behind_https() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let mut secure_cookies = Config::default();
    secure_cookies.console.secure_cookies = true;
    let server = TestApp::spawn_on(&db, secure_cookies).await;
    let (cookie, _) = login_form(&server).await;
    assert!(cookie.contains("Secure"), "{cookie}");
    let response = try_login(&server, EMAIL, PASSWORD).await;
    let session = set_cookie(&response, "jq_session").expect("session cookie");
    assert!(session.contains("Secure"), "{session}");
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited_per_email() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, Config::default()).await;
    for _ in 0..5 {
        let response = try_login(&server, EMAIL, "wrong password!").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let html = response.text().await.expect("html");
        assert!(html.contains("do not match"), "{html}");
    }
    // Now even the right password waits.
    let response = try_login(&server, EMAIL, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(&response, "jq_session").is_none());
    assert!(
        response
            .text()
            .await
            .expect("html")
            .contains("Too many failed sign-ins")
    );
    // An unknown email fails the same way (and is counted too).
    let response = try_login(&server, "nobody@junk.example", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Without an email or a password: the messages sit next to the fields.
    let response = try_login(&server, "", "").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains("id=\"email-error\"") && html.contains("id=\"password-error\""));
}

#[tokio::test]
async fn missing_records_get_the_404_page_and_bad_input_a_message_next_to_the_field() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    sms(&server, "SMv1", "+14045550123", "a couch").await;
    let customer = customer_of(&db, "+14045550123").await;
    let console = sign_in(&server).await;
    let nobody = Uuid::new_v4();

    for path in [
        format!("/admin/customers/{nobody}"),
        "/admin/customers/not-an-id".to_owned(),
        "/admin/no-such-page".to_owned(),
    ] {
        let (status, body) = console.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("404 · Not found"), "{path}: {body}");
    }
    for path in [
        format!("/admin/approvals/{nobody}"),
        format!("/admin/jobs/{nobody}/step"),
        format!("/admin/notes/{nobody}/delete"),
        format!("/admin/customers/{nobody}/notes"),
    ] {
        let fields = [
            ("decision", "approve"),
            ("to", "en_route"),
            ("content", "x"),
        ];
        let (status, _) = console.post(&path, &fields).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }

    let page = format!("/admin/customers/{customer}");
    let (status, body) = console
        .post(&format!("{page}/notes"), &[("content", "   ")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"note-error\">Write the note."), "{body}");
    let (status, body) = console
        .post(
            &format!("{page}/notes"),
            &[("content", "stairs"), ("expires_at", "next tuesday")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("Give the expiry as a date and time."),
        "{body}"
    );
    assert!(
        body.contains(">stairs</textarea>"),
        "what was typed is kept: {body}"
    );
    let (status, body) = console
        .post(
            &format!("{page}/merge"),
            &[("other", "someone"), ("keep", "this")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"merge-error\""), "{body}");
    let (status, body) = console
        .post(
            &format!("{page}/merge"),
            &[("other", &nobody.to_string()), ("keep", "this")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("There is no customer with that id."),
        "{body}"
    );
    let (status, body) = console
        .post(&format!("{page}/erase"), &[("confirm", "yes")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("id=\"erase-error\">Type ERASE to confirm."),
        "{body}"
    );
    let (status, body) = console.get("/admin/customers?q=x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"q-error\""), "{body}");
    let still: i64 = sqlx::query_scalar("SELECT count(*) FROM \"Customer\" WHERE id = $1")
        .bind(customer)
        .fetch_one(&mut db.conn().await)
        .await
        .expect("count");
    assert_eq!(still, 1, "nothing was erased");
}

#[tokio::test]
async fn customer_text_is_escaped_and_pages_forbid_inline_script() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    let injected = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    sms(
        &server,
        "SMx1",
        "+14045550123",
        &format!("a couch {injected}"),
    )
    .await;
    let customer = customer_of(&db, "+14045550123").await;
    sqlx::query("UPDATE \"Customer\" SET name = $2 WHERE id = $1")
        .bind(customer)
        .bind(format!("Eve {injected}"))
        .execute(&mut db.conn().await)
        .await
        .expect("name");
    let console = sign_in(&server).await;
    for path in [
        format!("/admin/customers/{customer}"),
        "/admin/customers?q=Eve".to_owned(),
    ] {
        let (status, body) = console.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            !body.contains("<script>") && !body.contains("<img"),
            "{path}: {body}"
        );
        assert!(
            body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{path}: {body}"
        );
    }
    let response = console
        .client
        .get(server.url("/chat"))
        .send()
        .await
        .expect("chat");
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"));
}

#[tokio::test]
async fn the_operator_finds_by_any_phone_format_merges_and_erases() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    sms(&server, "SMm1", "+14045550123", "a couch").await;
    sms(&server, "SMm2", "+14045550199", "a fridge").await;
    let (a, b) = (
        customer_of(&db, "+14045550123").await,
        customer_of(&db, "+14045550199").await,
    );
    let console = sign_in(&server).await;
    for typed in ["(404) 555-0123", "404.555.0123", "+1 404 555 0123"] {
        let (status, body) = console
            .get(&format!("/admin/customers?q={}", urlencode(typed)))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(&format!("/admin/customers/{a}")),
            "{typed}: {body}"
        );
        assert!(!body.contains(&format!("/admin/customers/{b}")), "{typed}");
    }

    // Keep the other one: this page's customer moves into it.
    let (status, _) = console
        .post(
            &format!("/admin/customers/{a}/merge"),
            &[("other", &b.to_string()), ("keep", "other")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = console.get(&format!("/admin/customers/{a}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "merged away");
    let (status, body) = console.get(&format!("/admin/customers/{b}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("+14045550123") && body.contains("+14045550199"),
        "{body}"
    );

    let (status, _) = console
        .post(
            &format!("/admin/customers/{b}/erase"),
            &[("confirm", "ERASE")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM \"Customer\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("count");
    assert_eq!(left, 0);
    let actors: Vec<String> = sqlx::query_scalar(
        "SELECT actor FROM \"Audit\" WHERE action IN ('customers_merged', 'customer_erased')
         ORDER BY created_at",
    )
    .fetch_all(&mut db.conn().await)
    .await
    .expect("audit");
    assert_eq!(
        actors,
        [format!("operator:{EMAIL}"), format!("operator:{EMAIL}")]
    );
}

#[tokio::test]
async fn a_job_moves_one_step_at_a_time_with_the_operator_as_actor() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    let phone = "+14045550123";
    sms(&server, "SMj1", phone, "2 mattresses and a dresser").await;
    sms(&server, "SMj2", phone, "45 Oak Avenue, Marietta GA 30060").await;
    sms(&server, "SMj3", phone, "1").await;
    let job: Uuid = sqlx::query_scalar("SELECT id FROM \"Job\" WHERE status = 'booked'")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("a booked job");
    let console = sign_in(&server).await;
    let (status, body) = console.get("/admin/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(&format!("id=\"job-{job}\"")),
        "this week's schedule: {body}"
    );

    let items = format!("/admin/jobs/{job}/items");
    let (status, body) = console.post(&items, &[("items", "0 × couch")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("id=\"items-error\">Line 1: the quantity"),
        "{body}"
    );
    let (status, _) = console
        .post(&items, &[("items", "2 × mattress\n1 x dresser\nold bike")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let listed: Vec<(i32, String)> = sqlx::query_as(
        "SELECT quantity, description FROM \"JobItem\" WHERE job_id = $1 ORDER BY created_at",
    )
    .bind(job)
    .fetch_all(&mut db.conn().await)
    .await
    .expect("items");
    assert_eq!(
        listed,
        [
            (2, "mattress".to_owned()),
            (1, "dresser".to_owned()),
            (1, "old bike".to_owned())
        ]
    );

    let step = format!("/admin/jobs/{job}/step");
    let (status, body) = console.post(&step, &[("to", "completed")]).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "not before en route and arrived"
    );
    assert!(body.contains("cannot go to completed"), "{body}");
    let (status, _) = console.post(&step, &[("to", "teleported")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for to in ["en_route", "arrived", "cancelled"] {
        let (status, _) = console.post(&step, &[("to", to)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{to}");
    }
    let (status, _) = console.post(&step, &[("to", "arrived")]).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a cancelled job stays cancelled"
    );
    let (status, _) = console.post(&items, &[("items", "a piano")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "nor are its items changed");
    let mut conn = db.conn().await;
    let events: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, actor FROM \"JobEvent\" WHERE job_id = $1
         AND event_type IN ('items_changed', 'en_route', 'arrived', 'completed', 'cancelled')
         ORDER BY created_at",
    )
    .bind(job)
    .fetch_all(&mut conn)
    .await
    .expect("events");
    let actor = Some(format!("operator:{EMAIL}"));
    assert_eq!(
        events,
        [
            ("items_changed".to_owned(), actor.clone()),
            ("en_route".to_owned(), actor.clone()),
            ("arrived".to_owned(), actor.clone()),
            ("cancelled".to_owned(), actor),
        ]
    );
    let (status, crew_time): (String, i64) = sqlx::query_as(
        "SELECT status::text, (SELECT count(*) FROM \"Booking\" WHERE job_id = $1)
         FROM \"Job\" WHERE id = $1",
    )
    .bind(job)
    .fetch_one(&mut conn)
    .await
    .expect("job");
    assert_eq!(
        (status.as_str(), crew_time),
        ("cancelled", 0),
        "its crew time is free"
    );
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn an_operator_takes_a_conversation_over_replies_through_the_outbox_and_hands_it_back() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    let phone = "+14045550123";
    sms(&server, "SMi1", phone, "a couch").await;
    let conversation: Uuid = sqlx::query_scalar("SELECT id FROM \"Conversation\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("conversation");
    let console = sign_in(&server).await;
    let (status, body) = console.get("/admin/inbox").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(&format!("/admin/conversations/{conversation}")),
        "{body}"
    );

    let page = format!("/admin/conversations/{conversation}");
    let (status, _) = console
        .post(&format!("{page}/takeover"), &[("action", "take")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let texts = helpers::twilio::texts_to(&db, phone).await.len();
    sms(&server, "SMi2", phone, "is 3pm ok?").await;
    assert_eq!(
        helpers::twilio::texts_to(&db, phone).await.len(),
        texts,
        "taken over: the assistant does not answer"
    );
    let (status, json) = console
        .get(&format!(
            "{page}/messages?after={}",
            urlencode("2000-01-01T00:00:00Z")
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(json.contains("is 3pm ok?"), "what the thread polls: {json}");

    let (status, body) = console
        .post(&format!("{page}/reply"), &[("text", "  ")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"reply-error\">Write a reply."), "{body}");
    let long = "x".repeat(1601);
    let (status, _) = console
        .post(&format!("{page}/reply"), &[("text", &long)])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = console
        .post(&format!("{page}/reply"), &[("text", "Yes, 3pm works.")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let texts_now = helpers::twilio::texts_to(&db, phone).await;
    assert_eq!(
        texts_now.last().map(String::as_str),
        Some("Yes, 3pm works.")
    );

    let (status, _) = console
        .post(&format!("{page}/takeover"), &[("action", "hand_back")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    sms(&server, "SMi3", phone, "and a fridge too").await;
    assert_eq!(
        helpers::twilio::texts_to(&db, phone).await.len(),
        texts_now.len() + 1,
        "handed back: the assistant answers again"
    );
    let nobody = Uuid::new_v4();
    let (status, _) = console.get(&format!("/admin/conversations/{nobody}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = console
        .post(
            &format!("/admin/conversations/{nobody}/reply"),
            &[("text", "hi")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn settings_pause_hours_and_the_pricebook_are_validated_and_saved() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    let console = sign_in(&server).await;
    let (status, body) = console.get("/admin/settings").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Twilio webhook (auth token and public URL): <span class=\"ok\">set</span>"),
        "{body}"
    );
    assert!(body.contains(
        "Messenger webhook (verify token and app secret): <span class=\"muted\">not set</span>"
    ));
    assert!(!body.contains(helpers::twilio::TOKEN), "never the values");

    // Paused, a customer is not answered.
    let (status, _) = console
        .post("/admin/settings/pause", &[("paused", "true")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    sms(&server, "SMs1", "+14045550123", "a couch").await;
    assert!(
        helpers::twilio::texts_to(&db, "+14045550123")
            .await
            .is_empty()
    );
    let (status, _) = console
        .post("/admin/settings/pause", &[("paused", "false")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let (status, body) = console
        .post(
            "/admin/settings/hours",
            &[
                ("time_zone", "Mars/Base"),
                ("open", "9am"),
                ("close", "17:00"),
                ("crews", "0"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["time_zone-error", "open-error", "crews-error"] {
        assert!(body.contains(&format!("id=\"{field}\"")), "{field}: {body}");
    }
    assert!(
        body.contains("value=\"Mars/Base\""),
        "what was typed is kept"
    );
    let (status, _) = console
        .post(
            "/admin/settings/hours",
            &[
                ("time_zone", "America/Chicago"),
                ("open", "07:30"),
                ("close", "17:00"),
                ("crews", "3"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let hours: serde_json::Value = sqlx::query_scalar("SELECT hours FROM \"Config\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("hours");
    assert_eq!(hours["time_zone"], "America/Chicago");
    assert_eq!(hours["crews"], 3);

    let (_, page) = console.get("/admin/settings").await;
    let pricebook_json = page
        .split("name=\"pricebook\"")
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split("</textarea>").next())
        .expect("the pricebook editor")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"");
    let mut book: serde_json::Value =
        serde_json::from_str(&pricebook_json).expect("pricebook JSON");
    let (status, body) = console
        .post(
            "/admin/settings/pricebook",
            &[
                ("pricebook", "{broken"),
                ("sample", "a couch"),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("id=\"pricebook-errors\""), "{body}");
    book["tiers"] = serde_json::json!([]);
    let (status, body) = console
        .post(
            "/admin/settings/pricebook",
            &[
                ("pricebook", &book.to_string()),
                ("sample", "a couch"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("<li>tiers:"), "{body}");

    // A preview prices the sample with the pricebook as typed, and saves nothing.
    let mut cheaper: serde_json::Value = serde_json::from_str(&pricebook_json).expect("json");
    cheaper["minimum"] = serde_json::json!(9900);
    let (status, body) = console
        .post(
            "/admin/settings/pricebook",
            &[
                ("pricebook", &cheaper.to_string()),
                ("sample", "a couch"),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("id=\"preview\""), "{body}");
    let stored = || async {
        sqlx::query_scalar::<_, serde_json::Value>("SELECT pricebook FROM \"Config\"")
            .fetch_one(&mut db.conn().await)
            .await
            .expect("pricebook")
    };
    assert_ne!(stored().await["minimum"], 9900, "a preview saves nothing");
    let (status, body) = console
        .post(
            "/admin/settings/pricebook",
            &[
                ("pricebook", &cheaper.to_string()),
                ("sample", "a couch"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(stored().await["minimum"], 9900);

    // What the settings page's script asks while the operator types: JSON, CSRF-checked.
    let (status, json) = console
        .post(
            "/admin/settings/preview",
            &[("pricebook", &cheaper.to_string()), ("sample", "a piano")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(
        json["preview"].as_str().is_some_and(|p| p.contains('$')),
        "{json}"
    );
    let (status, json) = console
        .post(
            "/admin/settings/preview",
            &[("pricebook", &book.to_string()), ("sample", "a piano")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json.contains("tiers"), "{json}");
    let (status, _) = console
        .post_raw("/admin/settings/preview", &[("pricebook", "{}")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_system_page_shows_migrations_the_schema_check_and_the_outbox() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    sms(&server, "SMy1", "+14045550123", "a couch").await;
    let console = sign_in(&server).await;
    let (status, body) = console.get("/admin/system").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<td>11</td><td>console</td>"), "{body}");
    assert!(
        body.contains("<td>leads without a customer</td><td>0</td>"),
        "the db check gates: {body}"
    );
    assert!(
        body.contains(&format!(
            "The schema is what migration {} promises",
            helpers::latest()
        )),
        "{body}"
    );
    // The reply waits (pending, or held while no SMS sender is configured).
    assert!(
        body.contains("<td>pending</td><td>1</td>") || body.contains("<td>held</td><td>1</td>"),
        "the outbox backlog: {body}"
    );
}

#[tokio::test]
async fn the_pipeline_pages_through_leads_by_stage_and_finds_them_by_phone_name_or_address() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    sms(&server, "SMp1", "+14045550123", "a couch").await;
    sms(
        &server,
        "SMp2",
        "+14045550123",
        "12 Birch Lane, Canton GA 30114",
    )
    .await;
    // Thirty older leads from the original service, to page through, each with the customer the
    // backfill gave it (every lead has one once the tightening has run).
    sqlx::query(
        "WITH n AS (SELECT n, gen_random_uuid() AS customer_id FROM generate_series(1, 30) n),
              c AS (INSERT INTO \"Customer\" (id, name) SELECT customer_id, 'Legacy ' || n FROM n)
         INSERT INTO \"Lead\" (channel, stage, name, phone, created_at, customer_id)
         SELECT 'sms', 'done', 'Legacy ' || n, '+1404555' || lpad(n::text, 4, '0'),
                now() - make_interval(days => n), customer_id
         FROM n",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("legacy leads");
    let console = sign_in(&server).await;

    let (status, first) = console.get("/admin/pipeline").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        first.matches("<tr>").count() - 1,
        25,
        "a page of 25 (and the header)"
    );
    assert!(first.contains("rel=\"next\""), "{first}");
    let (_, second) = console.get("/admin/pipeline?page=2").await;
    assert_eq!(second.matches("<tr>").count() - 1, 6);
    assert!(!second.contains("rel=\"next\"") && second.contains("rel=\"prev\""));
    assert!(
        second.contains("Legacy 30"),
        "the oldest is on the last page"
    );

    let (_, done) = console.get("/admin/pipeline?stage=done").await;
    assert!(!done.contains("12 Birch Lane"), "another stage: {done}");
    assert!(
        done.contains("done <span class=\"count\">30</span>"),
        "{done}"
    );
    for typed in ["(404) 555-0123", "birch lane"] {
        let (status, found) = console
            .get(&format!("/admin/pipeline?q={}", urlencode(typed)))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(found.matches("<tr>").count() - 1, 1, "{typed}: {found}");
        assert!(found.contains("12 Birch Lane"), "{typed}");
    }
    let (_, legacy) = console
        .get(&format!("/admin/pipeline?q={}", urlencode("404-555-0007")))
        .await;
    assert!(
        legacy.contains("Legacy 7"),
        "a lead's own phone, any format: {legacy}"
    );
    let (status, _) = console.get("/admin/pipeline?page=-3&stage=nonsense").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "bad paging falls back to the first page"
    );
}

#[tokio::test]
async fn the_dashboard_counts_todays_leads_waiting_approvals_and_charts_quotes() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    sms(
        &server,
        "SMd1",
        "+14045550123",
        "a hot tub, a piano, 2 couches and 20 bags of trash",
    )
    .await;
    sms(&server, "SMd2", "+14045550124", "a couch").await;
    let console = sign_in(&server).await;
    let (status, body) = console.get("/admin/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    let figure = |label: &str| {
        body.split(&format!("</span><span class=\"l\">{label}</span>"))
            .next()
            .and_then(|before| before.rsplit("<span class=\"n\">").next())
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert_eq!(figure("leads today"), "2", "{body}");
    assert_eq!(figure("active leads"), "2");
    assert_eq!(figure("approvals waiting"), "1");
    assert_eq!(figure("pickups next 7 days"), "0");
    assert!(
        body.contains(": 2 quotes, 0 bookings</title>"),
        "today's bar: {body}"
    );
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_address_and_a_trusted_proxy_names_the_client() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    // Behind a proxy: each client is counted by the address the proxy appended.
    let proxied = TestApp::spawn_on(&db, config::with_proxy_hops(Config::default(), 1)).await;
    for n in 0..20 {
        let email = format!("guess{n}@junk.example");
        let response = try_login_from(&proxied, &email, "wrong password!", "192.0.2.10").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{n}");
    }
    let response = try_login_from(&proxied, EMAIL, PASSWORD, "192.0.2.10").await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "that address waits"
    );
    let response = try_login_from(&proxied, EMAIL, PASSWORD, "192.0.2.11").await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "another client does not"
    );
    let addresses: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT address FROM \"LoginAttempt\" ORDER BY address")
            .fetch_all(&mut db.conn().await)
            .await
            .expect("attempts");
    assert_eq!(addresses, ["192.0.2.10", "192.0.2.11"]);

    // Not told to trust the header, the server counts the peer, whatever a client claims.
    let direct = TestApp::spawn_on(&db, Config::default()).await;
    let response = try_login_from(&direct, EMAIL, PASSWORD, "192.0.2.10").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let peer: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM \"LoginAttempt\" WHERE address = '127.0.0.1' AND succeeded",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("attempts");
    assert_eq!(peer, 1);
}

#[tokio::test]
async fn approvals_show_the_explanation_and_photos_and_the_decision_reaches_the_customer() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    let phone = "+14045550123";
    let photo = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1";
    let mut form = helpers::twilio::form(
        "SMa1",
        phone,
        "a hot tub, a piano, 2 couches and 20 bags of trash",
    );
    form.retain(|(k, _)| k != "NumMedia");
    form.push(("NumMedia".into(), "1".into()));
    form.push(("MediaUrl0".into(), photo.into()));
    form.push(("MediaContentType0".into(), "image/jpeg".into()));
    let response = helpers::twilio::post_signed(server.url("/api/twilio/sms"), &form).await;
    assert!(response.status().is_success());
    server.answered().await;
    let approval: Uuid = sqlx::query_scalar("SELECT id FROM \"Approval\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("an approval waits");
    let console = sign_in(&server).await;
    let (status, body) = console.get("/admin/approvals").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(&format!("<img src=\"{photo}\"")),
        "the photo: {body}"
    );
    assert!(body.contains("Needs the owner"), "the explanation: {body}");
    assert!(body.contains("is over $600"), "why it waits: {body}");

    let texts = helpers::twilio::texts_to(&db, phone).await.len();
    let path = format!("/admin/approvals/{approval}");
    let (status, _) = console.post(&path, &[("decision", "maybe")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = console.post(&path, &[("decision", "approve")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        helpers::twilio::texts_to(&db, phone).await.len(),
        texts + 1,
        "the customer is told"
    );
    let (status, body) = console.post(&path, &[("decision", "deny")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once");
    assert!(body.contains("already decided"), "{body}");
    let (_, body) = console.get("/admin/approvals").await;
    assert!(body.contains("Nothing waits for you."), "{body}");
}

#[tokio::test]
async fn an_opted_out_customer_is_marked_and_cannot_be_texted_from_the_inbox() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    let server = TestApp::spawn_on(&db, config::sms()).await;
    let phone = "+14045550188";
    sms(&server, "SMo1", phone, "a couch").await;
    sms(&server, "SMo2", phone, "STOP").await;
    let customer = customer_of(&db, phone).await;
    let conversation: Uuid = sqlx::query_scalar("SELECT id FROM \"Conversation\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("conversation");
    let console = sign_in(&server).await;
    let (status, body) = console.get("/admin/customers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(&format!("/admin/customers/{customer}"))
            && body.contains("Opted out of messages"),
        "{body}"
    );
    let (_, body) = console
        .get(&format!("/admin/customers?q={}", urlencode(phone)))
        .await;
    assert!(body.contains("opted-out"), "a badge in the results: {body}");
    let (_, body) = console.get(&format!("/admin/customers/{customer}")).await;
    assert!(
        body.contains("id=\"opted-out\"") && body.contains("keyword"),
        "the badge and the reason: {body}"
    );
    let texts = helpers::twilio::texts_to(&db, phone).await.len();
    let (status, body) = console
        .post(
            &format!("/admin/conversations/{conversation}/reply"),
            &[("text", "Are you sure?")],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("opted out of messages"), "{body}");
    assert_eq!(helpers::twilio::texts_to(&db, phone).await.len(), texts);
}

#[tokio::test]
async fn forty_concurrent_wrong_passwords_get_five_tries_and_the_owner_still_signs_in_elsewhere() {
    let db = TestDb::migrated().await;
    create_owner(&db);
    // Behind one trusted proxy, so that each test address is its own client.
    let server = TestApp::spawn_on(&db, config::with_proxy_hops(Config::default(), 1)).await;
    let server = std::sync::Arc::new(server);
    let attacker = "198.51.100.66";
    let guesses: Vec<_> = (0..40)
        .map(|n| {
            let server = server.clone();
            tokio::spawn(async move {
                try_login_from(&server, EMAIL, &format!("wrong guess {n}"), attacker)
                    .await
                    .status()
            })
        })
        .collect();
    let mut evaluated = 0;
    for guess in guesses {
        match guess.await.expect("task") {
            StatusCode::UNAUTHORIZED => evaluated += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(evaluated, 5, "the limit is 5, however many come at once");
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM \"LoginAttempt\" WHERE NOT succeeded")
            .fetch_one(&mut db.conn().await)
            .await
            .expect("attempts");
    assert_eq!(failures, 5, "only evaluated attempts are recorded");
    // The attacker's address waits, even with the right password, and is told how long.
    let response = try_login_from(&server, EMAIL, PASSWORD, attacker).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // The owner, from their own address, is not locked out by a stranger.
    let response = try_login_from(&server, EMAIL, PASSWORD, "203.0.113.50").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&response, "jq_session").is_some());
}

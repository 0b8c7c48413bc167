//! The console and the web chat in a real browser: headless Chromium (Debian's `chromium`)
//! driven by `playwright-core` (installed into `tests/browser/` by `scripts/setup --tests`)
//! through `tests/browser/console.mjs`, against a running server seeded through its real
//! webhooks. The script fails on the first step that does not hold; this test then checks
//! in the database that what the browser did was recorded.

use std::path::{Path, PathBuf};
use tokio::process::Command;

use crate::helpers;
use crate::helpers::twilio::{sms, texts_to};
use crate::helpers::{TestApp, config};

const PHONE: &str = "+14045550123";
const EMAIL: &str = "owner@junk.example";
const PASSWORD: &str = "correct horse battery staple";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

#[tokio::test]
async fn an_operator_and_a_customer_use_the_console_and_the_chat_in_chromium() {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run ./scripts/setup --tests"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run ./scripts/setup --tests"
    );

    let server = TestApp::spawn(config::sms()).await;
    let db = &server.db;
    let out = helpers::create_user(db, EMAIL, &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", helpers::stderr(&out));

    // A customer over SMS whose quote waits for the owner, who told the assistant a gate
    // code, and who wrote markup that must stay text.
    sms(
        &server,
        "SMbr1",
        PHONE,
        "a hot tub, a piano, 2 couches and 20 bags of trash",
    )
    .await;
    sms(
        &server,
        "SMbr2",
        PHONE,
        "the gate code is 4821 <script>window.__xss='sms'</script> <img src=x onerror=\"window.__xss='img'\">",
    )
    .await;
    let mut conn = db.conn().await;
    let note: String = sqlx::query_scalar(
        "SELECT content FROM \"MemoryNote\" WHERE metadata->>'key' = 'access_code' LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .expect("the assistant remembered the gate code");
    // A name as legacy data or another channel may hold it (the assistant only keeps
    // name-like words, so it is written here directly).
    sqlx::query(
        "UPDATE \"Customer\" SET name = $1
         WHERE id = (SELECT customer_id FROM \"CustomerIdentity\" WHERE value = $2)",
    )
    .bind("Dana <script>window.__xss='name'</script><img src=x onerror=\"window.__xss='name'\">")
    .bind(PHONE)
    .execute(&mut conn)
    .await
    .expect("name the customer");
    let texts_before = texts_to(db, PHONE).await.len();

    let shots = std::env::var("JUNKQUOTE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join(format!("jq-shots-{}", db.name)));
    let started = std::time::Instant::now();
    // Awaited, not blocking: the server answering the browser runs on this test's runtime.
    let out = Command::new("node")
        .arg(dir.join("console.mjs"))
        .current_dir(&dir)
        .env("JQ_BASE", &server.base)
        .env("JQ_EMAIL", EMAIL)
        .env("JQ_PASSWORD", PASSWORD)
        // The phone as a person types it, not as stored.
        .env("JQ_PHONE", "(404) 555-0123")
        .env("JQ_NOTE", &note)
        .env("JQ_SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("run node");
    let stdout = helpers::stdout(&out);
    let stderr = helpers::stderr(&out);
    assert!(
        out.status.success(),
        "the browser test failed after {:?}:\n{stdout}\n{stderr}",
        started.elapsed()
    );
    assert!(stdout.contains("every step passed"), "{stdout}");

    // What the browser did is recorded, with the operator as actor.
    let actor = format!("operator:{EMAIL}");
    let (approval, approver): (String, Option<String>) = sqlx::query_as(
        "SELECT status::text, approver FROM \"Approval\" ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .expect("approval");
    assert_eq!(
        (approval.as_str(), approver.as_deref()),
        ("approved", Some(actor.as_str()))
    );
    assert!(
        texts_to(db, PHONE).await.len() > texts_before,
        "the customer was told of the approval"
    );
    let steps: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT e.event_type, e.actor FROM \"JobEvent\" e JOIN \"Job\" j ON j.id = e.job_id
         WHERE j.status = 'completed' AND e.event_type IN ('en_route', 'arrived', 'completed')
         ORDER BY e.created_at",
    )
    .fetch_all(&mut conn)
    .await
    .expect("job events");
    let expected: Vec<(String, Option<String>)> = ["en_route", "arrived", "completed"]
        .iter()
        .map(|s| ((*s).to_owned(), Some(actor.clone())))
        .collect();
    assert_eq!(steps, expected);
    let web_jobs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM \"Job\" j JOIN \"Lead\" l ON l.id = j.lead_id WHERE l.channel = 'web'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("web jobs");
    assert_eq!(web_jobs, 1, "the web chat booked a job");
    let notes: Vec<String> = sqlx::query_scalar(
        "SELECT content FROM \"MemoryNote\" WHERE metadata->>'key' = 'operator'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("notes");
    assert_eq!(
        notes,
        ["Dog <img src=x onerror=\"window.__xss='note'\"> in the yard"],
        "the operator's note is stored as typed; the one with a past expiry is not"
    );
    // Taken over, the customer's question waited for the operator, whose reply is the company's.
    let thread: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT m.role::text, m.content, m.metadata->>'operator' FROM \"Message\" m
         JOIN \"Conversation\" c ON c.id = m.conversation_id
         WHERE c.channel = 'web' ORDER BY m.created_at DESC LIMIT 2",
    )
    .fetch_all(&mut conn)
    .await
    .expect("web thread");
    assert_eq!(
        thread,
        [
            (
                "assistant".to_owned(),
                "Yes, 8:30 works <b>sharp</b>".to_owned(),
                Some(actor.clone())
            ),
            (
                "user".to_owned(),
                "can you come at 8:30 instead?".to_owned(),
                None
            ),
        ]
    );
    eprintln!("browser test took {:?}", started.elapsed());
}

//! `junkquote eval`: the written conversations played against a throwaway database of its own
//! (left behind by no run), a conversation that should pass passing and one written to fail
//! failing, and pass^k over several runs of a model (a local chat-completions stand-in).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::helpers::{self, TestDb};

/// A fixture of two conversations: one the rule-based agent gets right, one whose expectation
/// is wrong on purpose (a couch is not a piano).
const FIXTURE: &str = r#"
[[conversation]]
name = "a couch"
say = ["need a couch hauled off"]
items = { couch = 1 }
price = 25900
approval = false
ending = "asked_address"

[[conversation]]
name = "written to fail"
say = ["need a couch hauled off"]
items = { piano = 1 }
ending = "booked"
"#;

/// The databases of the cluster whose names start with `prefix`.
async fn databases_like(db: &TestDb, prefix: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
        .bind(prefix)
        .fetch_all(&mut db.conn().await)
        .await
        .expect("pg_database")
}

fn fixture(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(name), text).expect("write the fixture");
    dir
}

#[tokio::test]
async fn eval_plays_the_set_on_a_throwaway_database_and_can_fail_a_conversation() {
    let db = TestDb::migrated().await;
    let dir = fixture("fixture.toml", FIXTURE);
    let path = dir.path().to_str().expect("utf-8 path");
    let out = helpers::junkquote(&["eval", "--verbose", path], Some(&db.url), None);
    let stdout = helpers::stdout(&out);
    assert!(out.status.success(), "{}{}", stdout, helpers::stderr(&out));
    assert!(
        stdout.contains("category=fixture agent=rules runs=1 pass=1 total=2 rate=0.50"),
        "{stdout}"
    );
    assert!(
        stdout.contains("category=all agent=rules runs=1 pass=1 total=2 rate=0.50"),
        "{stdout}"
    );
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("fail ")).collect();
    assert_eq!(failures.len(), 1, "{stdout}");
    assert!(failures[0].contains("name=\"written to fail\""), "{stdout}");
    assert!(failures[0].contains("piano: expected 1, got 0"), "{stdout}");
    // Played on a database of its own, dropped afterwards; the given one was not touched.
    assert_eq!(
        databases_like(
            &db,
            &format!("{}_scratch_", &db.name[..db.name.len().min(40)])
        )
        .await,
        Vec::<String>::new()
    );
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM \"Customer\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("count");
    assert_eq!(
        customers, 0,
        "the conversations went to the throwaway database"
    );
}

#[tokio::test]
async fn eval_without_conversations_or_a_model_cannot_run() {
    let db = TestDb::migrated().await;
    let empty = tempfile::tempdir().expect("temp dir");
    let path = empty.path().to_str().expect("utf-8 path");
    let out = helpers::junkquote(&["eval", path], Some(&db.url), None);
    assert!(
        helpers::one_line_error(&out, 1).contains("no conversations"),
        "{}",
        helpers::stderr(&out)
    );
    let dir = fixture("fixture.toml", FIXTURE);
    let path = dir.path().to_str().expect("utf-8 path");
    let out = helpers::command(&["eval", "--agent", "llm", path], Some(&db.url), None)
        .env_remove("JUNKQUOTE_LLM_BASE_URL")
        .env_remove("JUNKQUOTE_LLM_MODEL")
        .output()
        .expect("run junkquote");
    assert!(
        helpers::one_line_error(&out, 1).contains("JUNKQUOTE_LLM_BASE_URL"),
        "{}",
        helpers::stderr(&out)
    );
}

/// A model that says it works Saturdays only the first time it is asked anything; after that
/// it asks the customer to say it again.
async fn forgetful_model() -> (String, Arc<AtomicUsize>) {
    async fn completions(
        State(calls): State<Arc<AtomicUsize>>,
        Json(_): Json<Value>,
    ) -> Json<Value> {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let content = if n == 0 {
            "Yes, we work Saturdays from 8 to 2."
        } else {
            "Sorry, could you say that again?"
        };
        Json(
            json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "fake",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}]}),
        )
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(completions))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), calls)
}

#[tokio::test]
async fn eval_of_a_model_over_several_runs_reports_pass_k() {
    let db = TestDb::migrated().await;
    let (base, calls) = forgetful_model().await;
    // Played in this order: the Saturday question first (right only in the first run), then
    // one the model's second answer always passes.
    let dir = fixture(
        "questions.toml",
        r#"
[[conversation]]
name = "saturdays"
say = ["do you work saturdays?"]
ending = "answered"
reply_has = ["saturday"]

[[conversation]]
name = "anything said back"
say = ["hello?"]
ending = "answered"
reply_has = ["again"]
"#,
    );
    let path = dir.path().to_str().expect("utf-8 path");
    let std_command = {
        let mut c = helpers::command(
            &["eval", "--agent", "llm", "--runs", "2", "--verbose", path],
            Some(&db.url),
            None,
        );
        c.env("JUNKQUOTE_LLM_BASE_URL", &base)
            .env("JUNKQUOTE_LLM_MODEL", "fake");
        c
    };
    // The stand-in answers on this test's runtime while the command runs.
    let out = tokio::process::Command::from(std_command)
        .output()
        .await
        .expect("run junkquote");
    let stdout = helpers::stdout(&out);
    assert!(out.status.success(), "{}{}", stdout, helpers::stderr(&out));
    assert!(
        calls.load(Ordering::SeqCst) >= 4,
        "the model answered every message"
    );
    assert!(
        stdout.contains("category=questions agent=llm runs=2 pass=3 total=4 rate=0.75 pass^2=0.50"),
        "{stdout}"
    );
    assert!(
        stdout.contains("category=all agent=llm runs=2 pass=3 total=4 rate=0.75 pass^2=0.50"),
        "{stdout}"
    );
    assert_eq!(
        databases_like(
            &db,
            &format!("{}_scratch_", &db.name[..db.name.len().min(40)])
        )
        .await,
        Vec::<String>::new()
    );
}

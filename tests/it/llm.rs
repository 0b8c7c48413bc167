//! The LLM agent against a local server speaking the OpenAI chat-completions protocol (tool
//! calls included): it prices through the tools with the customer's memory in its prompt, and
//! whenever the endpoint is down, slow, malformed, or reaching outside the conversation, the
//! rule-based agent answers instead and nothing leaks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers;
use crate::helpers::twilio::{sms, texts_to};
use crate::helpers::{TestApp, TestDb, config};
use axum::Json;
use axum::extract::State;
use junkquote::app::Config;
use serde_json::{Value, json};

const PHONE: &str = "+14045550123";

/// How the fake model behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Calls `price_items`, then states the tool's estimate.
    Honest,
    /// Answers after longer than the client waits.
    Slow,
    /// A tool call whose arguments are not JSON.
    Malformed,
    /// A tool call carrying another customer's id.
    ForeignId,
    /// States a price no tool produced.
    Invents,
}

#[derive(Clone)]
struct Fake {
    mode: Mode,
    requests: Arc<Mutex<Vec<Value>>>,
}

fn tool_call(arguments: &str) -> Value {
    call("price_items", arguments)
}

fn call(name: &str, arguments: &str) -> Value {
    json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": null,
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": name, "arguments": arguments}}]}}]})
}

fn said(content: &str) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "fake",
           "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content}}]})
}

async fn completions(State(fake): State<Fake>, Json(request): Json<Value>) -> Json<Value> {
    fake.requests.lock().expect("lock").push(request.clone());
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let content = last["content"].as_str().unwrap_or_default().to_owned();
    Json(match (fake.mode, last["role"].as_str()) {
        (Mode::Slow, _) => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            said("too late")
        }
        (Mode::Invents, _) => said("That'll be $5, cheapest in town!"),
        (Mode::Malformed, _) => tool_call("{\"description\": \"a couch"),
        (Mode::ForeignId, _) => tool_call(
            &json!({"description": content, "customer_id": "00000000-0000-0000-0000-000000000001"})
                .to_string(),
        ),
        (Mode::Honest, Some("tool")) if content.contains("gate code") => said(&format!(
            "From our notes: {}",
            content.lines().next().unwrap_or_default()
        )),
        (Mode::Honest, Some("user")) if content.starts_with("what gate code") => {
            call("search_history", &json!({"query": "gate code"}).to_string())
        }
        (Mode::Honest, Some("tool")) => {
            let amount: String = content
                .split_whitespace()
                .find(|w| w.starts_with('$'))
                .unwrap_or("$?")
                .trim_end_matches([',', '.', ')'])
                .to_owned();
            said(&format!(
                "Happy to help! That comes to {amount}. Where should we pick it up?"
            ))
        }
        (Mode::Honest, _) => tool_call(&json!({ "description": content }).to_string()),
    })
}

async fn fake_model(mode: Mode) -> (String, Arc<Mutex<Vec<Value>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(completions))
        .with_state(Fake {
            mode,
            requests: requests.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), requests)
}

/// The SMS channel answered by the model at `base`, given 800 ms.
fn with_llm(base: &str) -> Config {
    config::with_llm(config::sms(), base, Duration::from_millis(800))
}

#[tokio::test]
async fn the_model_prices_through_the_tools_with_the_customers_memory_in_view() {
    let db = TestDb::migrated().await;
    let (base, requests) = fake_model(Mode::Honest).await;
    let server = TestApp::spawn_on(&db, with_llm(&base)).await;
    sms(&server, "SMl1", PHONE, "hello, the gate code is 4321").await;
    sms(&server, "SMl2", PHONE, "I need a couch picked up").await;
    let texts = texts_to(&db, PHONE).await;
    let reply = texts.last().expect("a reply");
    let total: String = sqlx::query_scalar(
        "SELECT '$' || trunc(total)::text FROM \"Quote\" ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&mut db.conn().await)
    .await
    .expect("a quote made by the tool");
    assert_eq!(
        reply,
        &format!("Happy to help! That comes to {total}. Where should we pick it up?")
    );
    let requests = requests.lock().expect("lock").clone();
    let first_of_second_message = requests
        .iter()
        .find(|r| r["messages"][1]["content"] == "I need a couch picked up")
        .expect("the second message reached the model");
    let prompt = first_of_second_message["messages"][0]["content"]
        .as_str()
        .expect("system prompt");
    assert!(prompt.contains("Gate code: 4321"), "{prompt}");
    assert!(prompt.contains("hello, the gate code is 4321"), "{prompt}");
    let tools: Vec<&str> = first_of_second_message["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(
        tools,
        [
            "price_items",
            "set_pickup_address",
            "offer_windows",
            "book_window",
            "search_history",
            "save_note"
        ]
    );
}

/// With the model failing in `mode` (or unreachable), the rule-based agent's reply is sent.
async fn rules_answer_when(mode: Option<Mode>) {
    let db = TestDb::migrated().await;
    // Another customer, whose details must never reach this conversation.
    sqlx::query(
        "INSERT INTO \"Customer\" (id, name, phone) VALUES
             ('00000000-0000-0000-0000-000000000001', 'Other Person', '+14045550999')",
    )
    .execute(&mut db.conn().await)
    .await
    .expect("other customer");
    let (base, asked) = match mode {
        Some(mode) => fake_model(mode).await,
        // Nothing listens on port 9 (discard) here.
        None => ("http://127.0.0.1:9/v1".to_owned(), Arc::default()),
    };
    let server = TestApp::spawn_on(&db, with_llm(&base)).await;
    assert_eq!(
        sms(&server, "SMm1", PHONE, "I need a couch picked up")
            .await
            .status(),
        200
    );
    let texts = texts_to(&db, PHONE).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains("For a couch your estimate is"),
        "{texts:?}"
    );
    assert!(
        !texts[0].contains("Other Person") && !texts[0].contains("$5,"),
        "{texts:?}"
    );
    let quotes: i64 = sqlx::query_scalar("SELECT count(*) FROM \"Quote\"")
        .fetch_one(&mut db.conn().await)
        .await
        .expect("count");
    assert_eq!(quotes, 1, "only the rule-based agent's quote stands");
    if mode.is_some() {
        assert!(
            !asked.lock().expect("lock").is_empty(),
            "the model was asked first"
        );
    }
}

#[tokio::test]
async fn an_unreachable_model_leaves_the_answer_to_the_rules() {
    rules_answer_when(None).await;
}

#[tokio::test]
async fn a_slow_model_leaves_the_answer_to_the_rules() {
    rules_answer_when(Some(Mode::Slow)).await;
}

#[tokio::test]
async fn a_malformed_tool_call_leaves_the_answer_to_the_rules() {
    rules_answer_when(Some(Mode::Malformed)).await;
}

#[tokio::test]
async fn a_tool_call_for_another_customer_is_refused() {
    rules_answer_when(Some(Mode::ForeignId)).await;
}

#[tokio::test]
async fn an_invented_price_is_never_sent() {
    rules_answer_when(Some(Mode::Invents)).await;
}

#[test]
fn half_an_llm_configuration_is_refused_at_start() {
    let db_url = "postgres://unused";
    let out = helpers::command(&["serve", "--addr", "127.0.0.1:0"], Some(db_url), None)
        .env("JUNKQUOTE_LLM_BASE_URL", "http://127.0.0.1:9/v1")
        .env_remove("JUNKQUOTE_LLM_MODEL")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = helpers::stderr(&out);
    assert!(err.contains("JUNKQUOTE_LLM_MODEL"), "{err}");
}

#[tokio::test]
async fn the_model_searches_the_customers_history_for_older_facts() {
    let db = TestDb::migrated().await;
    let (base, _) = fake_model(Mode::Honest).await;
    let server = TestApp::spawn_on(&db, with_llm(&base)).await;
    sms(
        &server,
        "SMs1",
        PHONE,
        "I need a couch picked up, the gate code is 4321",
    )
    .await;
    sms(&server, "SMs2", PHONE, "what gate code did I give you?").await;
    let reply = texts_to(&db, PHONE).await.pop().expect("a reply");
    assert!(
        reply.starts_with("From our notes:") && reply.contains("4321"),
        "{reply}"
    );
    // Another customer's history is not searched.
    sms(
        &server,
        "SMs3",
        "+14045550777",
        "what gate code did I give you?",
    )
    .await;
    let other = texts_to(&db, "+14045550777").await.pop().expect("a reply");
    assert!(!other.contains("4321"), "{other}");
}

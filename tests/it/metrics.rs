//! `/metrics` and the logs for machines: the scrape is protected (a token on the main listener,
//! or an address of its own), its text is read by Prometheus' text-format parser (the Python
//! client's, `python3-prometheus-client`, installed by `scripts/setup --tests`), its counters
//! move with the traffic, and no label carries an id, a token or a phone number. Every request
//! carries an id, in its response and in each of its JSON log lines.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use junkquote::app::Config;
use junkquote::domain::secret::Secret;
use serde_json::Value;

use crate::helpers::{Server, TestApp, TestDb, config, twilio};

const SCRAPE_TOKEN: &str = "scrape-s3cret-token";
const PHONE: &str = "+14045550123";
const STOPPING_PHONE: &str = "+14045550188";

/// One sample as the parser read it.
#[derive(Debug, Clone)]
struct Sample {
    /// The family's type: counter, gauge, histogram, …
    kind: String,
    name: String,
    labels: serde_json::Map<String, Value>,
    value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).and_then(Value::as_str)
    }
}

/// Parses `text` with the Prometheus client's text-format parser (which raises on anything
/// malformed) and returns every sample.
fn parse(text: &str) -> Vec<Sample> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"type": family.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    // Debian's python3 is the one python3-prometheus-client installs into.
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3 (scripts/setup --tests installs python3-prometheus-client)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the scrape");
    let out = child.wait_with_output().expect("the parser");
    assert!(
        out.status.success(),
        "Prometheus' parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<Value> = serde_json::from_slice(&out.stdout).expect("the parser's JSON");
    samples
        .into_iter()
        .map(|s| Sample {
            kind: s["type"].as_str().unwrap_or_default().to_owned(),
            name: s["name"].as_str().unwrap_or_default().to_owned(),
            labels: s["labels"].as_object().cloned().unwrap_or_default(),
            value: s["value"].as_f64().unwrap_or(f64::NAN),
        })
        .collect()
}

/// The value of the sample `name` whose labels include `labels` (0 when there is none yet:
/// a counter appears on its first increment).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

fn with_token(config: Config) -> Config {
    let mut config = config;
    config.metrics.token = Some(Secret::new(SCRAPE_TOKEN));
    config
}

async fn scrape(server: &TestApp) -> Vec<Sample> {
    let response = reqwest::Client::new()
        .get(server.url("/metrics"))
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    parse(&response.text().await.expect("scrape text"))
}

#[tokio::test]
async fn metrics_are_not_served_unless_asked_for() {
    let server = TestApp::spawn(config::sms()).await;
    let response = reqwest::Client::new()
        .get(server.url("/metrics"))
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn the_scrape_token_is_required_on_the_main_listener() {
    let server = TestApp::spawn(with_token(config::sms())).await;
    let client = reqwest::Client::new();
    let none = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.expect("error body");
    assert!(body["error"]["code"].is_string(), "{body}");
    let wrong = client
        .get(server.url("/metrics"))
        .bearer_auth("scrape-s3cret-tokeN")
        .send()
        .await
        .expect("scrape");
    assert_eq!(wrong.status(), 403);
    let shorter = client
        .get(server.url("/metrics"))
        .bearer_auth("scrape")
        .send()
        .await
        .expect("scrape");
    assert_eq!(shorter.status(), 403);
    scrape(&server).await;
}

#[tokio::test]
async fn the_series_follow_the_traffic_and_no_label_names_anyone() {
    // A model that cannot be reached: the rule-based agent answers instead, counted so.
    let config = config::with_llm(
        with_token(config::sms()),
        "http://127.0.0.1:1/v1",
        Duration::from_secs(2),
    );
    let server = TestApp::spawn(config).await;
    let client = reqwest::Client::new();

    let before = scrape(&server).await;
    let acknowledged = [("channel", "sms"), ("outcome", "acknowledged")];

    let sms = twilio::sms(&server, "SM-metrics-1", PHONE, "I have a couch to haul").await;
    assert_eq!(sms.status(), 200);
    let unsigned = client
        .post(server.url("/api/twilio/sms"))
        .form(&twilio::form("SM-metrics-2", PHONE, "hello"))
        .send()
        .await
        .expect("unsigned webhook");
    assert_eq!(unsigned.status(), 403);
    let stop = twilio::sms(&server, "SM-metrics-3", STOPPING_PHONE, "STOP").await;
    assert_eq!(stop.status(), 200);

    let session: Value = client
        .post(server.url("/api/chat/sessions"))
        .send()
        .await
        .expect("open a chat session")
        .json()
        .await
        .expect("session");
    let session_id = session["session_id"]
        .as_str()
        .expect("session id")
        .to_owned();
    let chat_token = session["token"].as_str().expect("token").to_owned();
    let posted = client
        .post(server.url(&format!("/api/chat/sessions/{session_id}/messages")))
        .bearer_auth(&chat_token)
        .json(&serde_json::json!({"text": "a fridge and two chairs"}))
        .send()
        .await
        .expect("chat message");
    assert_eq!(posted.status(), 200);
    let approval_token = "approval-t0ken-that-must-not-show";
    let approval = client
        .post(server.url(&format!("/api/approvals/{approval_token}")))
        .send()
        .await
        .expect("approval link");
    assert!(approval.status().is_client_error(), "{}", approval.status());
    server.run_jobs_until_idle().await;

    let after = scrape(&server).await;
    // Counters as moved by this traffic (under `cargo test` other tests share the process's
    // recorder); gauges as read.
    let counted = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let read = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels);
    // Webhooks by channel and outcome; requests by route template and status.
    assert_eq!(counted("junkquote_webhooks_total", &acknowledged), 2.0);
    let refused = [("channel", "sms"), ("outcome", "refused")];
    assert_eq!(counted("junkquote_webhooks_total", &refused), 1.0);
    let sms_ok = [
        ("route", "/api/twilio/sms"),
        ("status", "200"),
        ("method", "POST"),
    ];
    assert_eq!(counted("junkquote_http_requests_total", &sms_ok), 2.0);
    let chat = [
        ("route", "/api/chat/sessions/{id}/messages"),
        ("status", "200"),
    ];
    assert_eq!(counted("junkquote_http_requests_total", &chat), 1.0);
    let approvals = [("route", "/api/approvals/{token}")];
    assert_eq!(counted("junkquote_http_requests_total", &approvals), 1.0);
    // The scrape before this one was counted too.
    let scrapes = [("route", "/metrics"), ("status", "200")];
    assert!(counted("junkquote_http_requests_total", &scrapes) >= 1.0);
    // A latency histogram, with buckets.
    let histogram: Vec<&Sample> = after
        .iter()
        .filter(|s| s.name == "junkquote_http_request_duration_seconds_bucket")
        .collect();
    assert!(!histogram.is_empty());
    assert!(histogram.iter().all(|s| s.kind == "histogram"));
    assert!(
        histogram
            .iter()
            .any(|s| s.label("route") == Some("/api/twilio/sms") && s.label("le") == Some("+Inf"))
    );
    // Answers: the model failed, so the rules answered each message, counted as a fallback.
    let fell_back = counted("junkquote_answers_total", &[("agent", "model_fell_back")]);
    assert!(fell_back >= 2.0, "{fell_back}");
    assert!(counted("junkquote_model_errors_total", &[("kind", "unreachable")]) >= 2.0);
    assert!(counted("junkquote_model_request_duration_seconds_count", &[]) >= 2.0);
    // The opt-out, and the replies held in the outbox (no sending credentials here).
    let stopped = [("channel", "sms"), ("how", "keyword")];
    assert_eq!(counted("junkquote_opt_outs_total", &stopped), 1.0);
    let held = [("channel", "sms"), ("outcome", "held")];
    assert!(counted("junkquote_outbox_messages_total", &held) >= 1.0);
    let waiting = read(
        "junkquote_outbox_backlog",
        &[("channel", "sms"), ("status", "held")],
    );
    assert!(waiting >= 1.0, "{waiting}");
    assert!(after.iter().any(|s| s.name == "junkquote_outbox_backlog"
        && s.label("channel") == Some("messenger")
        && s.value == 0.0));
    // Each job's lag (just ran: well under a minute) and the pool.
    let lag = after
        .iter()
        .find(|s| s.name == "junkquote_job_lag_seconds" && s.label("job") == Some("outbox"))
        .expect("the outbox job's lag");
    assert!(lag.kind == "gauge" && lag.value < 60.0, "{lag:?}");
    assert!(
        after
            .iter()
            .any(|s| s.name == "junkquote_db_pool_connections" && s.label("state") == Some("idle"))
    );
    assert!(read("junkquote_db_pool_max_connections", &[]) >= 1.0);

    // No label names anyone or anything: no phone, id, token or body.
    let forbidden = [
        PHONE,
        "4045550123",
        STOPPING_PHONE,
        "SM-metrics",
        &session_id,
        &chat_token,
        approval_token,
        "couch",
        "fridge",
        SCRAPE_TOKEN,
    ];
    for sample in &after {
        for (name, label) in &sample.labels {
            let label = label.as_str().unwrap_or_default();
            for secret in forbidden {
                assert!(
                    !label.contains(secret),
                    "{}{{{name}={label:?}}} names {secret:?}",
                    sample.name
                );
            }
            assert!(
                !looks_like_uuid(label),
                "{}{{{name}={label:?}}} holds an id",
                sample.name
            );
        }
    }
}

/// Whether `text` holds a UUID (8-4-4-4-12 hex digits).
fn looks_like_uuid(text: &str) -> bool {
    text.split(['/', '{', '}', '=']).any(|part| {
        let groups: Vec<&str> = part.split('-').collect();
        groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
    })
}

#[tokio::test]
async fn metrics_on_their_own_address_need_no_token_and_leave_the_main_listener() {
    let db = TestDb::migrated().await;
    let server = Server::start(&["--metrics-addr", "127.0.0.1:0"], Some(&db.url), None);
    let metrics = server.metrics_base.clone().expect("the metrics address");
    let client = reqwest::Client::new();
    let main = client
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("main");
    assert_eq!(main.status(), 404);
    let healthz = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200);
    let other = client
        .get(format!("{metrics}/healthz"))
        .send()
        .await
        .expect("other path");
    assert_eq!(other.status(), 404);
    let scraped = client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(scraped.status(), 200);
    let samples = parse(&scraped.text().await.expect("text"));
    let probes = [("route", "/healthz"), ("status", "200")];
    assert_eq!(
        value(&samples, "junkquote_http_requests_total", &probes),
        1.0
    );
    assert!(
        samples
            .iter()
            .any(|s| s.name == "junkquote_job_lag_seconds")
    );
    assert_eq!(server.terminate(), Some(0));
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let server = TestApp::spawn(config::sms()).await;
    let client = reqwest::Client::new();
    let id_of = |response: &reqwest::Response| {
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let made = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    let made = id_of(&made).expect("an id was made");
    assert!(looks_like_uuid(&made), "{made}");
    let missing = client
        .get(server.url("/no/such/page"))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), 404);
    assert!(id_of(&missing).is_some_and(|id| id != made));

    let kept = client
        .get(server.url("/healthz"))
        .header("X-Request-Id", "lb-2f9a.7_X-1")
        .send()
        .await
        .expect("healthz");
    assert_eq!(id_of(&kept).as_deref(), Some("lb-2f9a.7_X-1"));
    for insane in [
        "a".repeat(65),
        "has space".into(),
        "quote\"d".into(),
        "{}".into(),
    ] {
        let replaced = client
            .get(server.url("/healthz"))
            .header("X-Request-Id", &insane)
            .send()
            .await
            .expect("healthz");
        let id = id_of(&replaced).expect("an id");
        assert!(
            id != insane && looks_like_uuid(&id),
            "{insane:?} became {id:?}"
        );
    }
}

#[tokio::test]
async fn json_logs_carry_each_request_id_and_no_message_text() {
    let db = TestDb::migrated().await;
    let server = Server::start_with_env(
        &[],
        &[
            ("RUST_LOG", "info"),
            ("JUNKQUOTE_LOG_FORMAT", "json"),
            // A model that cannot be reached: the answering worker logs a warning.
            ("JUNKQUOTE_LLM_BASE_URL", "http://127.0.0.1:1/v1"),
            ("JUNKQUOTE_LLM_MODEL", "none"),
            ("JUNKQUOTE_LLM_TIMEOUT_MS", "2000"),
        ],
        Some(&db.url),
        None,
    );
    let client = reqwest::Client::new();
    let session: Value = client
        .post(server.url("/api/chat/sessions"))
        .header("X-Request-Id", "open-1")
        .send()
        .await
        .expect("open a chat session")
        .json()
        .await
        .expect("session");
    let id = session["session_id"].as_str().expect("session id");
    let token = session["token"].as_str().expect("token");
    let posted = client
        .post(server.url(&format!("/api/chat/sessions/{id}/messages")))
        .bearer_auth(token)
        .header("X-Request-Id", "chat-42")
        .json(&serde_json::json!({"text": "I have a sofa to haul away, my cell is 404-555-0199"}))
        .send()
        .await
        .expect("chat message");
    assert_eq!(posted.status(), 200);
    assert_eq!(
        posted
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("chat-42")
    );
    let logs = server.terminate_and_read_stderr();

    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of = |request: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["spans"][0]["request_id"] == request)
            .collect()
    };
    let chat = of("chat-42");
    // The model's failure is logged by the answering worker (outside any request since
    // answering left the webhook), as JSON, naming the conversation; the request's own line
    // carries its id and status.
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["conversation"].is_string()
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("LLM"))),
        "{logs}"
    );
    assert!(
        chat.iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["status"] == 200),
        "{logs}"
    );
    assert!(chat.iter().all(|l| l["span"]["method"] == "POST"));
    // Every line written inside a request carries that request's id.
    for line in lines.iter().filter(|l| l["spans"][0]["name"] == "request") {
        let id = line["spans"][0]["request_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "a request's line without its id: {line}");
    }
    assert!(!of("open-1").is_empty(), "{logs}");
    for secret in ["404-555-0199", "4045550199", "sofa", token] {
        assert!(!logs.contains(secret), "{secret:?} in the logs: {logs}");
    }
}

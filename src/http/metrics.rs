//! `/metrics`: the service's counters, gauges and histograms in Prometheus' text format.
//!
//! Code anywhere records with the `metrics` crate's macros (a no-op until a recorder is
//! installed); this module installs the Prometheus recorder, counts every HTTP request by its
//! route template, and renders the text for a scrape after reading the gauges that live
//! elsewhere (the outbox's backlog in the database, the pool, each job's lag).
//!
//! `/metrics` is never public by accident: it is served on its own address (`--metrics-addr`),
//! or on the main listener only with a scrape token; with neither it is a 404 like any unknown
//! path. The series are listed in the README ("Operating JunkQuote").

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::domain::secret::Secret;
use crate::jobs::Jobs;
use crate::store::outbox;

/// How the metrics are exposed.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Scrapes of `/metrics` on the main listener must carry `Authorization: Bearer <token>`;
    /// without a token `/metrics` is not served there.
    pub token: Option<Secret>,
    /// Whether `/metrics` is also served, without a token, on an address of its own
    /// (`--metrics-addr`, which `serve` binds).
    pub separate_address: bool,
}

impl Options {
    /// Whether metrics are served anywhere (and so recorded at all).
    pub fn enabled(&self) -> bool {
        self.token.is_some() || self.separate_address
    }
}

/// What a scrape reads: the recorder's handle and the sources of the gauges read at scrape time.
#[derive(Clone)]
pub struct Scrape {
    handle: PrometheusHandle,
    pool: PgPool,
    jobs: Jobs,
}

impl Scrape {
    /// A scrape of the process's recorder (installed on first use), with gauges read from
    /// `pool` and `jobs`.
    pub fn new(pool: PgPool, jobs: Jobs) -> Self {
        Scrape {
            handle: recorder().clone(),
            pool,
            jobs,
        }
    }

    /// The text of one scrape.
    async fn render(&self) -> String {
        self.read_gauges().await;
        self.handle.run_upkeep();
        self.handle.render()
    }

    async fn read_gauges(&self) {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        metrics::gauge!("junkquote_db_pool_connections", "state" => "idle").set(idle);
        metrics::gauge!("junkquote_db_pool_connections", "state" => "in_use")
            .set(size.saturating_sub(idle));
        metrics::gauge!("junkquote_db_pool_max_connections")
            .set(self.pool.options().get_max_connections());
        for (job, lag) in self.jobs.lags() {
            metrics::gauge!("junkquote_job_lag_seconds", "job" => job).set(lag.as_secs_f64());
        }
        // A scrape must answer while the database is away (that is when it matters): the
        // backlog is then left as last read, and the failure counted.
        let backlog = async {
            let mut conn = self.pool.acquire().await?;
            outbox::backlog(&mut conn).await
        };
        match tokio::time::timeout(Duration::from_secs(2), backlog).await {
            Ok(Ok(rows)) => {
                // Every channel and status appears, 0 when nothing waits, so that a drained
                // backlog reads 0 rather than its last non-zero value.
                for channel in ["sms", "messenger", "owner"] {
                    for status in ["pending", "held"] {
                        let count = rows
                            .iter()
                            .find(|(c, s, _)| c == channel && s == status)
                            .map_or(0, |(_, _, n)| *n);
                        metrics::gauge!("junkquote_outbox_backlog", "channel" => channel, "status" => status)
                            .set(count as f64);
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metrics: cannot read the outbox backlog");
                metrics::counter!("junkquote_metrics_gauge_errors_total").increment(1);
            }
            Err(_) => {
                tracing::warn!("metrics: the outbox backlog query did not answer in time");
                metrics::counter!("junkquote_metrics_gauge_errors_total").increment(1);
            }
        }
    }
}

/// Latency buckets in seconds: a webhook answers in milliseconds, a model in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus recorder, installed on first use. One per process: the `metrics`
/// macros record into the global recorder, wherever they are.
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS);
        // The buckets are a non-empty constant, the only thing the builder checks.
        let builder = match builder {
            Ok(builder) => builder,
            Err(e) => unreachable!("constant histogram buckets refused: {e}"),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "another metrics recorder is installed; /metrics stays empty");
        }
        describe();
        // Histograms keep raw samples until upkeep folds them into buckets; without scrapes
        // they would grow, so fold them on a timer too.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread; scrapes do it");
        }
        handle
    })
}

/// The `# HELP` of each series (the README lists their labels).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "junkquote_http_requests_total",
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(
        "junkquote_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route template"
    );
    describe_counter!(
        "junkquote_webhooks_total",
        "Provider webhooks acknowledged (2xx) or refused, by channel"
    );
    describe_counter!(
        "junkquote_answers_total",
        "Customer messages answered, by the agent that answered"
    );
    describe_histogram!(
        "junkquote_model_request_duration_seconds",
        Unit::Seconds,
        "Latency of each call to the model's endpoint"
    );
    describe_counter!(
        "junkquote_model_errors_total",
        "Model answers not used (the rules answered), by kind"
    );
    describe_gauge!(
        "junkquote_outbox_backlog",
        "Outbox messages waiting, by channel and status"
    );
    describe_counter!(
        "junkquote_outbox_messages_total",
        "Outbox send attempts by channel and outcome"
    );
    describe_counter!(
        "junkquote_opt_outs_total",
        "Opt-outs recorded, by channel and how"
    );
    describe_gauge!(
        "junkquote_job_lag_seconds",
        Unit::Seconds,
        "Time since the job's last successful step"
    );
    describe_counter!(
        "junkquote_job_failures_total",
        "Failed background job steps"
    );
    describe_gauge!(
        "junkquote_db_pool_connections",
        "Database pool connections, idle or in use"
    );
    describe_gauge!(
        "junkquote_db_pool_max_connections",
        "The database pool's size limit"
    );
    describe_counter!(
        "junkquote_metrics_gauge_errors_total",
        "Scrapes that could not read the outbox backlog"
    );
}

/// `GET /metrics` on the main listener: the token is required.
pub async fn scrape_with_token(
    State((scrape, token)): State<(Scrape, Secret)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(given) = super::bearer(&headers) else {
        return Err(ApiError::Unauthorized(
            "a scrape token is required (Authorization: Bearer)".into(),
        ));
    };
    if !bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        return Err(ApiError::Forbidden("wrong scrape token".into()));
    }
    Ok(text(scrape.render().await))
}

/// `GET /metrics` on the metrics address, which only the scraper can reach.
pub async fn scrape_open(State(scrape): State<Scrape>) -> Response {
    text(scrape.render().await)
}

fn text(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Counts every request by its route template (never the raw path: no ids or tokens in
/// labels), method and status, with its latency; and the webhooks acknowledged or refused, by
/// channel.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = known_method(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let labels = [
        ("method", method.to_owned()),
        ("route", route.clone()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("junkquote_http_requests_total", &labels).increment(1);
    metrics::histogram!("junkquote_http_request_duration_seconds", &labels[..2])
        .record(started.elapsed());
    if let Some(channel) = webhook_channel(method, &route) {
        let outcome = if status.is_success() {
            "acknowledged"
        } else {
            "refused"
        };
        metrics::counter!("junkquote_webhooks_total", "channel" => channel, "outcome" => outcome)
            .increment(1);
    }
    response
}

/// The method as a label; anything unusual is one value, so a client cannot invent series.
fn known_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The channel whose provider posts to `route`, if it is a webhook.
fn webhook_channel(method: &str, route: &str) -> Option<&'static str> {
    match (method, route) {
        ("POST", "/api/twilio/sms") => Some("sms"),
        ("POST", "/api/messenger") => Some("messenger"),
        ("POST", "/api/stripe/webhook") => Some("stripe"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_provider_posts_are_webhooks() {
        assert_eq!(webhook_channel("POST", "/api/twilio/sms"), Some("sms"));
        assert_eq!(webhook_channel("GET", "/api/messenger"), None);
        assert_eq!(webhook_channel("POST", "/api/messenger"), Some("messenger"));
        assert_eq!(webhook_channel("POST", "/api/chat/sessions"), None);
    }

    #[test]
    fn unusual_methods_share_one_label() {
        let method = Method::from_bytes(b"BREW").expect("a method");
        assert_eq!(known_method(&method), "other");
    }
}

//! The application assembled: configuration in, a router and its background jobs out. `serve`
//! and the tests start it the same way (the tests on port 0, in-process).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::agent::Agent;
use crate::channels::messenger::{MessengerClient, MessengerConfig};
use crate::channels::twilio::{TwilioClient, TwilioConfig};
use crate::db::migrate::MigrationSet;
use crate::domain::secret::Secret;
use crate::http::{self, AppState, ChatOptions, MessageLimits, SessionLimits};
use crate::jobs::{self, Jobs};

/// Everything the service is configured with, however it was given (flags, environment,
/// a test).
#[derive(Debug, Clone)]
pub struct Config {
    /// Twilio, when the SMS channel is configured.
    pub twilio: Option<TwilioConfig>,
    /// How long a Twilio REST call may take.
    pub twilio_timeout: Duration,
    /// Messenger, when that channel is configured.
    pub messenger: Option<MessengerConfig>,
    /// The owner's phone: approval requests are texted there.
    pub owner_phone: Option<String>,
    /// The conversation engine.
    pub agent: Agent,
    /// How the console is served.
    pub console: http::console::Options,
    /// Limits on opening web-chat sessions (and the proxies trusted for client addresses).
    pub sessions: SessionLimits,
    /// Limits on web-chat messages, per session and per client address.
    pub chat_messages: MessageLimits,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: http::metrics::Options,
    /// How customers' messages are answered (workers, the sweep).
    pub answering: jobs::answer::Options,
}

impl Default for Config {
    /// No channel configured, the rule-based agent, default limits.
    fn default() -> Self {
        Config {
            twilio: None,
            twilio_timeout: Duration::from_secs(10),
            messenger: None,
            owner_phone: None,
            agent: Agent::default(),
            console: http::console::Options::default(),
            sessions: SessionLimits::default(),
            chat_messages: MessageLimits::default(),
            metrics: http::metrics::Options::default(),
            answering: jobs::answer::Options::default(),
        }
    }
}

/// The application: its handlers' state and its background jobs.
#[derive(Clone)]
pub struct App {
    state: AppState,
    sessions: SessionLimits,
    jobs: Jobs,
    /// Set when metrics are served somewhere; the token, when on the main listener.
    scrape: Option<(http::metrics::Scrape, Option<Secret>)>,
}

impl App {
    /// The application over `pool`, expecting `migrations` applied.
    pub fn build(config: Config, pool: PgPool, migrations: Arc<MigrationSet>) -> App {
        let sender = config
            .twilio
            .as_ref()
            .and_then(|twilio| TwilioClient::with_timeout(twilio, config.twilio_timeout));
        if config.twilio.is_some() && sender.is_none() {
            tracing::info!(
                "TWILIO_ACCOUNT_SID or TWILIO_FROM_NUMBER not set: SMS replies are kept in the outbox"
            );
        }
        let senders = jobs::outbox::Senders {
            twilio: sender,
            messenger: config.messenger.as_ref().and_then(MessengerClient::new),
            owner_phone: config.owner_phone.filter(|p| !p.trim().is_empty()),
        };
        let answers =
            jobs::answer::Answerer::new(config.agent.clone(), pool.clone(), config.answering);
        let jobs = Jobs::new(vec![
            jobs::outbox::job(senders),
            answers.job(),
            jobs::notes::job(),
            jobs::fully_booked::job(),
            jobs::reminders::job(),
            jobs::renewals::job(),
            jobs::codes::job(),
            jobs::backups::job(),
        ]);
        let scrape = config.metrics.enabled().then(|| {
            let scrape = http::metrics::Scrape::new(pool.clone(), jobs.clone());
            (scrape, config.metrics.token.clone())
        });
        let state = AppState {
            pool,
            migrations,
            twilio: config.twilio.map(Arc::new),
            messenger: config.messenger.map(Arc::new),
            agent: config.agent,
            answers,
            console: config.console,
            chat: ChatOptions {
                messages: config.chat_messages,
                trusted_proxy_hops: config.sessions.trusted_proxy_hops,
            },
        };
        App {
            state,
            sessions: config.sessions,
            jobs,
            scrape,
        }
    }

    /// What the handlers see.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The background jobs.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// Runs every background job until none has anything to do (for tests and one-off runs).
    pub async fn run_jobs_until_idle(&self) -> Result<usize, jobs::JobError> {
        self.jobs.run_until_idle(&self.state.pool).await
    }

    /// The routes, ready to serve.
    pub fn router(&self) -> axum::Router {
        let metrics = self
            .scrape
            .as_ref()
            .and_then(|(scrape, token)| Some((scrape.clone(), token.clone()?)));
        http::router(self.state.clone(), self.sessions, metrics)
    }

    /// The routes of the metrics address, when metrics are served.
    pub fn metrics_router(&self) -> Option<axum::Router> {
        let (scrape, _) = self.scrape.as_ref()?;
        Some(http::metrics_router(scrape.clone()))
    }

    /// Serves on `listener` with the background jobs running, until `shutdown` completes; then
    /// lets requests in flight finish and waits for each job's current step.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let running = self.jobs.spawn(&self.state.pool, &stopped);
        let served = self.serve_http(listener, shutdown).await;
        let _ = stop.send(true);
        for handle in running {
            let _ = handle.await;
        }
        served
    }

    /// Serves on `listener` with the answering workers (customers are answered as they write)
    /// but without the background jobs (tests run them on demand). When serving ends the
    /// workers stop, mid-answer if need be: their leases expire and the sweep answers.
    pub async fn serve_http(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let workers = tokio::spawn(self.state.answers.clone().run());
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        workers.abort();
        served
    }
}

//! `junkquote serve`: the HTTP server.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use sqlx::Connection;

use super::{Cli, migrate::print_progress, shutdown_signal, with_database};
use crate::agent::llm::{Llm, LlmConfig};
use crate::agent::{self, Agent};
use crate::app::{App, Config};
use crate::channels::messenger::MessengerConfig;
use crate::channels::twilio::TwilioConfig;
use crate::db::migrate::{self, MigrateOptions, MigrationSet};
use crate::domain::identity::Region;
use crate::domain::secret::Secret;
use crate::http;

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "JUNKQUOTE_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Do not apply pending migrations at start (the server then reports not ready until they are).
    #[arg(long)]
    no_migrate: bool,
    #[command(flatten)]
    twilio: TwilioArgs,
    #[command(flatten)]
    messenger: MessengerArgs,
    /// The owner's phone: approval requests are texted there.
    #[arg(long, env = "JUNKQUOTE_OWNER_PHONE")]
    owner_phone: Option<String>,
    #[command(flatten)]
    context: ContextArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Conversations answered at once by this process (each holds a pooled connection only
    /// while it reads or writes, never while a model thinks); half of the pool by default.
    #[arg(
        long = "agent-workers",
        env = "JUNKQUOTE_AGENT_WORKERS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    agent_workers: u16,
    /// Mark the console's cookies Secure (the default): browsers then send them only over https
    /// (and plain http to localhost). Set it false only to reach the console over plain http on
    /// a LAN: `--secure-cookies false` or JUNKQUOTE_SECURE_COOKIES=false.
    #[arg(
        long = "secure-cookies",
        env = "JUNKQUOTE_SECURE_COOKIES",
        default_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    secure_cookies: bool,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// Where `/metrics` is served: never public by accident.
#[derive(Args)]
pub struct MetricsArgs {
    /// Serve `/metrics` (without a token) on this address of its own, one only the scraper can
    /// reach (port 0 picks a free one).
    #[arg(long = "metrics-addr", env = "JUNKQUOTE_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Serve `/metrics` on the main listener too, to scrapes that send
    /// `Authorization: Bearer <this token>`. With neither option `/metrics` is a 404.
    #[arg(
        long = "metrics-token",
        env = "JUNKQUOTE_METRICS_TOKEN",
        hide_env_values = true
    )]
    metrics_token: Option<String>,
}

impl std::fmt::Debug for MetricsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsArgs")
            .field("addr", &self.metrics_addr)
            .field("token", &self.metrics_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl MetricsArgs {
    fn options(&self) -> http::metrics::Options {
        http::metrics::Options {
            token: self
                .metrics_token
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            separate_address: self.metrics_addr.is_some(),
        }
    }
}

/// How the assistant uses what it remembers of customers.
#[derive(Debug, Args)]
pub struct ContextArgs {
    /// Read customers' memory (notes, addresses, history) into conversations: 1/true/yes/on or
    /// 0/false/no/off. Customer records are written either way.
    #[arg(
        long = "context-memory-enabled",
        env = "CONTEXT_MEMORY_ENABLED",
        default_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    memory: bool,
    /// Ask "Same address as last time?" before reusing a returning customer's address (else it
    /// is reused and said so).
    #[arg(
        long = "context-strict-address-confirmation",
        env = "CONTEXT_STRICT_ADDRESS_CONFIRMATION",
        default_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    strict_address: bool,
    /// The region phone numbers without a country code are read in (two letters).
    #[arg(
        long = "phone-region",
        env = "JUNKQUOTE_PHONE_REGION",
        default_value = "US"
    )]
    region: Region,
    /// An OpenAI-compatible chat-completions API (up to `/v1`); without it the rule-based
    /// agent answers.
    #[arg(long = "llm-base-url", env = "JUNKQUOTE_LLM_BASE_URL")]
    llm_base_url: Option<String>,
    /// The model to ask.
    #[arg(long = "llm-model", env = "JUNKQUOTE_LLM_MODEL")]
    llm_model: Option<String>,
    /// The endpoint's API key.
    #[arg(
        long = "llm-api-key",
        env = "JUNKQUOTE_LLM_API_KEY",
        hide_env_values = true
    )]
    llm_api_key: Option<String>,
    /// How long one completion may take before the rule-based agent answers, in milliseconds.
    #[arg(
        long = "llm-timeout-ms",
        env = "JUNKQUOTE_LLM_TIMEOUT_MS",
        default_value_t = 8000
    )]
    llm_timeout_ms: u64,
}

impl ContextArgs {
    /// The region phone numbers without a country code are read in.
    pub(super) fn region(&self) -> Region {
        self.region
    }

    /// The conversation engine these settings configure (the model when one is set).
    pub(super) fn agent(&self) -> anyhow::Result<Agent> {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let llm = match (set(&self.llm_base_url), set(&self.llm_model)) {
            (None, None) => None,
            (Some(_), None) => anyhow::bail!(
                "JUNKQUOTE_LLM_BASE_URL is set but JUNKQUOTE_LLM_MODEL is not; name the model to use"
            ),
            (None, Some(_)) => anyhow::bail!(
                "JUNKQUOTE_LLM_MODEL is set but JUNKQUOTE_LLM_BASE_URL is not; give the endpoint's URL (up to /v1)"
            ),
            (Some(base_url), Some(model)) => {
                let config = LlmConfig {
                    base_url,
                    model,
                    api_key: set(&self.llm_api_key).map(Secret::new),
                    timeout: std::time::Duration::from_millis(self.llm_timeout_ms.max(1)),
                };
                let llm = Llm::new(config)
                    .ok_or_else(|| anyhow::anyhow!("cannot build the LLM client"))?;
                Some(Arc::new(llm))
            }
        };
        Ok(Agent {
            options: agent::Options {
                memory: self.memory,
                strict_address: self.strict_address,
                region: self.region,
                ..agent::Options::default()
            },
            llm,
        })
    }
}

/// Limits on the public endpoints.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Web-chat sessions one client address may open per window.
    #[arg(long, env = "JUNKQUOTE_CHAT_SESSION_LIMIT", default_value_t = http::SessionLimits::default().per_client)]
    chat_session_limit: NonZeroU32,
    /// Web-chat sessions all clients together may open per window.
    #[arg(long, env = "JUNKQUOTE_CHAT_SESSION_GLOBAL_LIMIT", default_value_t = http::SessionLimits::default().global)]
    chat_session_global_limit: NonZeroU32,
    /// The window of those limits, in seconds.
    #[arg(
        long,
        env = "JUNKQUOTE_CHAT_SESSION_WINDOW_SECS",
        default_value_t = http::SessionLimits::default().window.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    chat_session_window_secs: u64,
    /// Web-chat messages one session may send per message window.
    #[arg(long, env = "JUNKQUOTE_CHAT_MESSAGE_LIMIT", default_value_t = http::MessageLimits::default().per_session)]
    chat_message_limit: NonZeroU32,
    /// Web-chat messages all sessions of one client address may send per message window.
    #[arg(long, env = "JUNKQUOTE_CHAT_MESSAGE_CLIENT_LIMIT", default_value_t = http::MessageLimits::default().per_client)]
    chat_message_client_limit: NonZeroU32,
    /// The window of the message limits, in seconds.
    #[arg(
        long,
        env = "JUNKQUOTE_CHAT_MESSAGE_WINDOW_SECS",
        default_value_t = http::MessageLimits::default().window.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    chat_message_window_secs: u64,
    /// How many reverse proxies in front of the server append the client's address to
    /// X-Forwarded-For; 0 (the default) ignores that header, which any client can write.
    #[arg(long, env = "JUNKQUOTE_TRUSTED_PROXY_HOPS", default_value_t = 0)]
    trusted_proxy_hops: usize,
}

impl LimitArgs {
    fn sessions(&self) -> http::SessionLimits {
        http::SessionLimits {
            per_client: self.chat_session_limit,
            global: self.chat_session_global_limit,
            window: std::time::Duration::from_secs(self.chat_session_window_secs),
            trusted_proxy_hops: self.trusted_proxy_hops,
        }
    }

    fn messages(&self) -> http::MessageLimits {
        http::MessageLimits {
            per_session: self.chat_message_limit,
            per_client: self.chat_message_client_limit,
            window: std::time::Duration::from_secs(self.chat_message_window_secs),
        }
    }
}

/// Twilio SMS settings. The webhook is enabled when the auth token and the public URL are both
/// set; replies are sent when the account SID and the sending number are set too.
#[derive(Args)]
pub struct TwilioArgs {
    /// The Twilio account's auth token (verifies webhook signatures).
    #[arg(
        long = "twilio-auth-token",
        env = "TWILIO_AUTH_TOKEN",
        hide_env_values = true
    )]
    auth_token: Option<String>,
    /// The public URL Twilio posts SMS webhooks to, exactly as configured in Twilio.
    #[arg(long = "twilio-webhook-url", env = "TWILIO_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// The Twilio account SID (for sending replies).
    #[arg(long = "twilio-account-sid", env = "TWILIO_ACCOUNT_SID")]
    account_sid: Option<String>,
    /// The number replies are sent from.
    #[arg(long = "twilio-from", env = "TWILIO_FROM_NUMBER")]
    from_number: Option<String>,
    /// Twilio's REST API base URL.
    #[arg(
        long = "twilio-api-base",
        env = "TWILIO_API_BASE",
        default_value = "https://api.twilio.com"
    )]
    api_base: String,
    /// How long a Twilio REST call may take, in milliseconds; a send with no answer by then is
    /// checked against Twilio's message list before it is sent again.
    #[arg(
        long = "twilio-timeout-ms",
        env = "TWILIO_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=120_000)
    )]
    timeout_ms: u64,
}

/// Messenger settings. The webhook is enabled when the verify token and the app secret are both
/// set; replies are sent when the page access token is set too.
#[derive(Args)]
pub struct MessengerArgs {
    /// The token Facebook sends when subscribing the webhook.
    #[arg(
        long = "fb-verify-token",
        env = "FB_VERIFY_TOKEN",
        hide_env_values = true
    )]
    verify_token: Option<String>,
    /// The app secret that signs webhooks.
    #[arg(long = "fb-app-secret", env = "FB_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    /// The page access token (for sending replies).
    #[arg(
        long = "fb-page-access-token",
        env = "FB_PAGE_ACCESS_TOKEN",
        hide_env_values = true
    )]
    page_access_token: Option<String>,
    /// The Graph API's base URL.
    #[arg(
        long = "fb-graph-api-base",
        env = "FB_GRAPH_API_BASE",
        default_value = "https://graph.facebook.com"
    )]
    graph_base: String,
    /// The Graph API version the Send API is called with (Meta retires each about two years
    /// after its release).
    #[arg(
        long = "fb-graph-api-version",
        env = "FB_GRAPH_API_VERSION",
        default_value = crate::channels::messenger::GRAPH_API_VERSION
    )]
    graph_version: String,
}

impl std::fmt::Debug for MessengerArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessengerArgs").finish_non_exhaustive()
    }
}

impl MessengerArgs {
    fn config(&self) -> anyhow::Result<Option<MessengerConfig>> {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        match (set(&self.verify_token), set(&self.app_secret)) {
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!(
                "FB_VERIFY_TOKEN is set but FB_APP_SECRET is not; without it Messenger webhooks cannot be verified, so the server will not start"
            ),
            (None, Some(_)) => anyhow::bail!(
                "FB_APP_SECRET is set but FB_VERIFY_TOKEN is not; set the token you gave Facebook when subscribing the webhook"
            ),
            (Some(verify), Some(secret)) => Ok(Some(MessengerConfig {
                verify_token: Secret::new(verify),
                app_secret: Secret::new(secret),
                page_access_token: set(&self.page_access_token).map(Secret::new),
                graph_base: self.graph_base.clone(),
                graph_version: self.graph_version.trim().to_owned(),
            })),
        }
    }
}

impl std::fmt::Debug for TwilioArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioArgs")
            .field("auth_token", &self.auth_token.as_ref().map(|_| "***"))
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

impl TwilioArgs {
    /// The SMS channel's configuration; half a configuration is an error, never "accept
    /// unsigned webhooks".
    fn config(&self) -> anyhow::Result<Option<TwilioConfig>> {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        match (set(&self.auth_token), set(&self.webhook_url)) {
            (None, None) => Ok(None),
            (Some(_), None) => anyhow::bail!(
                "TWILIO_AUTH_TOKEN is set but TWILIO_WEBHOOK_URL is not; set it to the public URL Twilio posts to (signatures cover it)"
            ),
            (None, Some(_)) => anyhow::bail!(
                "TWILIO_WEBHOOK_URL is set but TWILIO_AUTH_TOKEN is not; without the token SMS webhooks cannot be verified, so the server will not start"
            ),
            (Some(token), Some(url)) => Ok(Some(TwilioConfig {
                auth_token: Secret::new(token),
                webhook_url: url,
                account_sid: set(&self.account_sid),
                from_number: set(&self.from_number),
                api_base: self.api_base.clone(),
            })),
        }
    }
}

impl ServeArgs {
    /// The application's configuration these options give; half a channel's configuration is
    /// an error.
    pub fn config(&self) -> anyhow::Result<Config> {
        Ok(Config {
            twilio: self.twilio.config()?,
            twilio_timeout: std::time::Duration::from_millis(self.twilio.timeout_ms),
            messenger: self.messenger.config()?,
            owner_phone: self.owner_phone.clone(),
            agent: self.context.agent()?,
            console: http::console::Options {
                secure_cookies: self.secure_cookies,
                trusted_proxy_hops: self.limits.trusted_proxy_hops,
            },
            sessions: self.limits.sessions(),
            chat_messages: self.limits.messages(),
            metrics: self.metrics.options(),
            answering: crate::jobs::answer::Options {
                workers: usize::from(self.agent_workers),
                ..crate::jobs::answer::Options::default()
            },
        })
    }
}

/// Runs `serve`: migrates (unless told not to), then serves until SIGTERM or Ctrl-C.
pub fn run(
    cli: &Cli,
    args: &ServeArgs,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let migrations = Arc::new(MigrationSet::builtin()?);
    let config = args.config()?;
    with_database(cli, runtime, false, async |db| {
        if !args.no_migrate {
            let migrate = async {
                let mut conn = db.connect().await?;
                let options = MigrateOptions::default();
                migrate::up(&mut conn, &migrations, None, &options, &mut print_progress).await?;
                conn.close().await?;
                anyhow::Ok(())
            };
            tokio::select! {
                result = migrate => result?,
                () = shutdown_signal() => anyhow::bail!("interrupted while migrating; nothing was left half done"),
            }
        }
        let pool = db.pool(16).await?;
        let app = App::build(config, pool.clone(), migrations);
        // Before the main listener's line, which says the server is up.
        let metrics = match (args.metrics.metrics_addr, app.metrics_router()) {
            (Some(addr), Some(router)) => {
                let (listener, addr) = http::bind(addr).await?;
                tracing::info!(%addr, "serving /metrics");
                println!("junkquote metrics on http://{addr}");
                // Scrapes need no draining: this server is stopped with the main one.
                Some(tokio::spawn(
                    async move { axum::serve(listener, router).await },
                ))
            }
            _ => None,
        };
        let (listener, addr) = http::bind(args.addr).await?;
        tracing::info!(%addr, database = %db.redacted_url(), "listening");
        println!("junkquote listening on http://{addr}");
        let shutdown = async {
            shutdown_signal().await;
            tracing::info!("shutting down");
        };
        let served = app.serve(listener, shutdown).await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        served?;
        pool.close().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

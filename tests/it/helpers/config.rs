//! The application's configuration in tests: what `serve` would read from its environment,
//! built as values (see `ServeArgs::config`).

use std::sync::Arc;
use std::time::Duration;

use junkquote::agent::llm::{Llm, LlmConfig};
use junkquote::app::Config;
use junkquote::channels::messenger::MessengerConfig;
use junkquote::channels::twilio::TwilioConfig;
use junkquote::domain::secret::Secret;

use super::twilio::{TOKEN, WEBHOOK_URL};

/// The token Messenger's webhook subscription is checked against.
pub const FB_VERIFY_TOKEN: &str = "verify-me";

/// The SMS webhook on (signed with [`TOKEN`] over [`WEBHOOK_URL`]) and no sending credentials:
/// replies stay in the outbox.
pub fn sms() -> Config {
    Config {
        twilio: Some(TwilioConfig {
            auth_token: Secret::new(TOKEN),
            webhook_url: WEBHOOK_URL.into(),
            account_sid: None,
            from_number: None,
            api_base: "https://api.twilio.invalid".into(),
        }),
        ..Config::default()
    }
}

/// The SMS channel sending through the (fake) Twilio at `api_base` as account `account_sid`
/// from `from_number`.
pub fn sms_sending(api_base: &str, account_sid: &str, from_number: &str) -> Config {
    let mut config = sms();
    if let Some(twilio) = config.twilio.as_mut() {
        twilio.account_sid = Some(account_sid.into());
        twilio.from_number = Some(from_number.into());
        twilio.api_base = api_base.into();
    }
    config
}

/// `config` with Messenger's webhook on (verified with [`FB_VERIFY_TOKEN`] and `app_secret`),
/// sending through the (fake) Graph API at `graph_base` when given.
pub fn with_messenger(config: Config, app_secret: &str, graph_base: Option<&str>) -> Config {
    Config {
        messenger: Some(MessengerConfig {
            verify_token: Secret::new(FB_VERIFY_TOKEN),
            app_secret: Secret::new(app_secret),
            page_access_token: graph_base.map(|_| Secret::new("page-token")),
            graph_base: graph_base
                .unwrap_or("https://graph.facebook.invalid")
                .into(),
            graph_version: junkquote::channels::messenger::GRAPH_API_VERSION.into(),
        }),
        ..config
    }
}

/// `config` with the LLM agent asking the (fake) endpoint at `base_url` for model `fake-1`,
/// giving up after `timeout`.
pub fn with_llm(mut config: Config, base_url: &str, timeout: Duration) -> Config {
    let llm = Llm::new(LlmConfig {
        base_url: base_url.into(),
        model: "fake-1".into(),
        api_key: None,
        timeout,
    })
    .expect("LLM client");
    config.agent.llm = Some(Arc::new(llm));
    config
}

/// `config` behind `hops` reverse proxies that append the client's address to
/// `X-Forwarded-For` (for the console's login limit and the chat-session limit alike).
pub fn with_proxy_hops(mut config: Config, hops: usize) -> Config {
    config.console.trusted_proxy_hops = hops;
    config.sessions.trusted_proxy_hops = hops;
    config
}

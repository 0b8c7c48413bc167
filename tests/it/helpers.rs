//! Shared test helpers: the run's PostgreSQL and a database per test ([`db`]), the application
//! in-process ([`app`], configured by [`config`]), the `junkquote` binary for the command-line
//! tests ([`cli`]), and talking to the server as Twilio does ([`twilio`]).

pub mod app;
pub mod cli;
pub mod config;
pub mod db;
pub mod twilio;

use std::time::Duration;

pub use app::TestApp;
pub use cli::{Server, command, create_user, junkquote, one_line_error, stderr, stdout};
pub use db::{TestDb, copy_of_builtin_migrations, latest, version, versions};

/// Waits until `check` holds (polling every 100 ms), failing the test with `what` after 20 s:
/// for what a `junkquote serve` subprocess does in the background, or what takes time
/// (in-process tests run the jobs instead: [`TestApp::run_jobs_until_idle`]).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

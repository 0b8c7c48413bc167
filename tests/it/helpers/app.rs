//! The application in-process: built by `App::build` over a test's own database and served on
//! 127.0.0.1:0 in the test's runtime, the way `serve` starts it. Its answering workers run on
//! their own, as in `serve` ([`TestApp::answered`] waits for them); its background jobs do not:
//! a test runs them with [`TestApp::run_jobs_until_idle`] at the point it wants their effects,
//! instead of polling for what a loop may have done by then.

use std::sync::{Arc, OnceLock};

use junkquote::app::{App, Config};
use junkquote::db::migrate::MigrationSet;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::TestDb;

/// A running application; dropping it shuts the server down.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The test's database.
    pub db: TestDb,
    /// The application's own pool.
    pub pool: PgPool,
    app: App,
    // Dropped with the `TestApp`, which ends the server's graceful shutdown wait.
    shutdown: oneshot::Sender<()>,
    served: JoinHandle<std::io::Result<()>>,
}

impl TestApp {
    /// The application configured by `config` over a new migrated database.
    pub async fn spawn(config: Config) -> Self {
        Self::spawn_on(&TestDb::migrated().await, config).await
    }

    /// The application configured by `config` over `db` (migrated, perhaps seeded; two apps
    /// over one database act as two `serve` processes).
    pub async fn spawn_on(db: &TestDb, config: Config) -> Self {
        let pool = db.pool().await;
        let app = App::build(config, pool.clone(), migrations());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = app.clone().serve_http(listener, async move {
            let _ = stopped.await;
        });
        let served = tokio::spawn(server);
        TestApp {
            base,
            db: db.clone(),
            pool,
            app,
            shutdown,
            served,
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server as `serve` stops on SIGTERM (requests in flight finish) and returns
    /// how serving ended.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        self.served.await.expect("the server task")
    }

    /// Runs every background job's steps until none has work left; returns how many steps
    /// worked. A failing step fails the test. The answering workers finish first.
    pub async fn run_jobs_until_idle(&self) -> usize {
        self.try_run_jobs_until_idle()
            .await
            .unwrap_or_else(|e| panic!("background jobs: {e}"))
    }

    /// [`Self::run_jobs_until_idle`] for a test that expects a step to fail.
    pub async fn try_run_jobs_until_idle(&self) -> Result<usize, junkquote::jobs::JobError> {
        self.answered().await;
        self.app.run_jobs_until_idle().await
    }

    /// One round of the background jobs without waiting for the answering workers first (for a
    /// test whose messages only the sweep can answer).
    pub async fn run_jobs_now(&self) -> usize {
        self.app
            .run_jobs_until_idle()
            .await
            .unwrap_or_else(|e| panic!("background jobs: {e}"))
    }

    /// Waits until the answering workers (of every app on this database) have answered every
    /// message that may be answered now: none received in the last 5 s unanswered and due, and
    /// no worker still at work (holding a lease). The workers run on their own
    /// (as in `serve`) and are woken by the webhook; this is the test's way to see them done.
    pub async fn answered(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            // A worker's, not yet the sweep's (which takes messages older than 5 s, and
            // which `run_jobs_until_idle` runs), or a worker's still answering.
            let left = junkquote::store::inbox::answering_in_flight(&self.pool)
                .await
                .expect("unanswered messages");
            if !left {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "messages still unanswered after 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// The built-in migrations, read once per test process.
fn migrations() -> Arc<MigrationSet> {
    static SET: OnceLock<Arc<MigrationSet>> = OnceLock::new();
    SET.get_or_init(|| Arc::new(MigrationSet::builtin().expect("built-in migrations")))
        .clone()
}

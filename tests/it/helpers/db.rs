//! One private PostgreSQL per test run, a fresh database per test.
//!
//! The cluster is started by the launcher the service uses (`db::embedded`), under the
//! system's temporary directory (which the `postgres` user can reach wherever the checkout is),
//! listening only on a Unix socket: no fixed ports. Under nextest every test is a process of its
//! own; they find the run's cluster through `NEXTEST_RUN_ID` and the launcher's lock, and a
//! watchdog stops the cluster and deletes its files when the run's process exits. Each test gets
//! its own database, empty or copied from a template migrated once per run, so tests neither
//! share data nor depend on order.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use junkquote::db::embedded::{Cluster, ClusterConfig};
use junkquote::db::migrate::{self, MigrateOptions, MigrationSet};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// The run's cluster.
pub struct TestCluster {
    dir: PathBuf,
    admin_url: String,
    socket_dir: PathBuf,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();

/// The run's cluster, started on first use.
pub fn cluster() -> &'static TestCluster {
    CLUSTER.get_or_init(|| start_cluster().unwrap_or_else(|e| panic!("test PostgreSQL: {e}")))
}

fn start_cluster() -> Result<TestCluster, Box<dyn std::error::Error>> {
    // One cluster per run: per nextest run (all its test processes), else per test binary.
    let (key, watched) = match std::env::var("NEXTEST_RUN_ID") {
        Ok(id) => {
            let short: String = id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(12)
                .collect();
            (short, nix::unistd::getppid().as_raw())
        }
        Err(_) => (
            format!("p{}", std::process::id()),
            std::process::id() as i32,
        ),
    };
    let dir = std::env::temp_dir().join(format!("jq-test-{key}"));
    let cluster = Cluster::start(&ClusterConfig::throwaway(&dir))?;
    if cluster.launched_here()
        && let Some(pid) = cluster.postmaster_pid()
    {
        spawn_watchdog(watched, pid, &dir, cluster.socket_dir())?;
    }
    let test = TestCluster {
        dir,
        admin_url: cluster.url("postgres"),
        socket_dir: cluster.socket_dir().to_owned(),
    };
    cluster.detach();
    Ok(test)
}

/// Stops the cluster and removes its files once `watched` has exited.
fn spawn_watchdog(
    watched: i32,
    postmaster: i32,
    dir: &Path,
    socket_dir: &Path,
) -> std::io::Result<()> {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        kill -INT "$2" 2>/dev/null
        while kill -0 "$2" 2>/dev/null; do sleep 0.2; done
        rm -rf "$3" "$4"
    "#;
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("watchdog")
        .arg(watched.to_string())
        .arg(postmaster.to_string())
        .arg(dir)
        .arg(socket_dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(())
}

impl TestCluster {
    fn url(&self, database: &str) -> String {
        self.admin_url
            .replacen("/postgres?", &format!("/{database}?"), 1)
    }

    /// The directory of the cluster's socket (for `pg_dump -h`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the test cluster")
    }

    /// Builds the migrated template once per run, under a lock shared by the run's processes.
    async fn template(&self) -> &'static str {
        const TEMPLATE: &str = "jq_template";
        let lock_path = self.dir.join("template.lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .expect("template lock file");
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("template lock");
        let mut admin = self.admin().await;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(TEMPLATE)
                .fetch_one(&mut admin)
                .await
                .expect("query pg_database");
        if !exists {
            // A build interrupted by a killed test process leaves this behind.
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {TEMPLATE}_build WITH (FORCE)"
            ))
            .execute(&mut admin)
            .await
            .expect("drop a stale template build");
            sqlx::query(&format!("CREATE DATABASE {TEMPLATE}_build"))
                .execute(&mut admin)
                .await
                .expect("create template");
            let mut conn = PgConnection::connect(&self.url(&format!("{TEMPLATE}_build")))
                .await
                .expect("connect to template");
            let set = MigrationSet::builtin().expect("built-in migrations");
            migrate::up(
                &mut conn,
                &set,
                None,
                &MigrateOptions::default(),
                &mut |_| {},
            )
            .await
            .expect("migrate the template");
            conn.close().await.expect("close");
            // Renamed only when complete, so a half-built template is never copied.
            sqlx::query(&format!(
                "ALTER DATABASE {TEMPLATE}_build RENAME TO {TEMPLATE}"
            ))
            .execute(&mut admin)
            .await
            .expect("rename template");
        }
        admin.close().await.expect("close");
        TEMPLATE
    }
}

/// A database of a test's own (never dropped: the cluster goes with the run).
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// A URL for it (over the cluster's socket).
    pub url: String,
}

impl TestDb {
    /// A new, empty database (no migrations applied).
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    /// A new database with every built-in migration applied.
    pub async fn migrated() -> Self {
        let template = cluster().template().await;
        Self::create(Some(template)).await
    }

    async fn create(template: Option<&str>) -> Self {
        let cluster = cluster();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = cluster.admin().await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        sqlx::query(&sql)
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.expect("close");
        Self {
            url: cluster.url(&name),
            name,
        }
    }

    /// Connection options for the database.
    pub fn options(&self) -> PgConnectOptions {
        self.url
            .parse::<PgConnectOptions>()
            .expect("test URL parses")
            .disable_statement_logging()
    }

    /// One connection.
    pub async fn conn(&self) -> PgConnection {
        PgConnection::connect_with(&self.options())
            .await
            .expect("connect to the test database")
    }

    /// A small pool.
    pub async fn pool(&self) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect_with(self.options())
            .await
            .expect("pool for the test database")
    }

    /// The schema of `public` as `pg_dump --schema-only` prints it.
    pub fn schema_dump(&self) -> String {
        let output = Command::new("pg_dump")
            .args([
                "--schema-only",
                "--no-owner",
                "--schema=public",
                "-U",
                "postgres",
                "-h",
            ])
            .arg(cluster().socket_dir())
            .args(["-p", "5432", "-d", &self.name])
            .output()
            .expect("run pg_dump");
        assert!(
            output.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // pg_dump guards its output with a random `\restrict` key on every run.
        String::from_utf8(output.stdout)
            .expect("UTF-8 dump")
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A directory holding copies of the built-in migration files, to change in a test.
pub fn copy_of_builtin_migrations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(src).expect("read migrations") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    dir
}

/// The highest applied migration of a database.
pub async fn version(conn: &mut PgConnection) -> i64 {
    migrate::current_version(&migrate::applied(conn).await.expect("read bookkeeping"))
}

/// The newest built-in migration.
pub fn latest() -> i64 {
    MigrationSet::builtin()
        .expect("built-in migrations")
        .latest()
}

/// Every built-in migration's version, in order.
pub fn versions() -> Vec<i64> {
    MigrationSet::builtin()
        .expect("built-in migrations")
        .iter()
        .map(|m| m.version)
        .collect()
}

//! Which PostgreSQL to use, and connections to it.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use super::embedded::{Cluster, ClusterConfig, EmbeddedError};

/// The database the embedded cluster holds JunkQuote's data in.
pub const EMBEDDED_DATABASE: &str = "junkquote";
/// How long to wait for a server before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "DATABASE_URL is not a valid PostgreSQL URL ({0}); expected postgres://user:password@host:port/database"
    )]
    InvalidUrl(String),
    #[error(
        "cannot connect to PostgreSQL at {url}: {reason}; check that the server is running and \
         DATABASE_URL is right, or unset DATABASE_URL to use the embedded PostgreSQL"
    )]
    Unreachable { url: String, reason: String },
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("database error")]
    Sql(#[from] sqlx::Error),
}

/// A PostgreSQL server to use: one given by URL, or the embedded cluster (started or joined).
pub struct Database {
    url: String,
    options: PgConnectOptions,
    cluster: Option<Cluster>,
}

impl Database {
    /// The server at `url`, or with no URL the embedded cluster in `data_dir`, started if it is
    /// not running. Blocking: call before (or outside) the async runtime.
    pub fn open(url: Option<&str>, data_dir: &Path) -> Result<Self, DbError> {
        match url {
            Some(url) => Self::from_url(url, None),
            None => {
                let cluster = Cluster::start(&ClusterConfig::service(data_dir))?;
                let url = cluster.url(EMBEDDED_DATABASE);
                Self::from_url(&url, Some(cluster))
            }
        }
    }

    fn from_url(url: &str, cluster: Option<Cluster>) -> Result<Self, DbError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(DbError::InvalidUrl("it must start with postgres://".into()));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| DbError::InvalidUrl(e.to_string()))?
            .application_name("junkquote")
            .log_statements(tracing::log::LevelFilter::Debug);
        Ok(Self {
            url: url.to_owned(),
            options,
            cluster,
        })
    }

    /// The URL as given (with its password, if it has one).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with any password hidden, for messages and logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// The embedded cluster, when that is what is used.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Connection options for the database.
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// Creates the embedded cluster's database on first use; a server given by URL is expected
    /// to have its database already.
    pub async fn prepare(&self) -> Result<(), DbError> {
        if self.cluster.is_none() {
            return Ok(());
        }
        let mut conn = self
            .connect_to(self.options.clone().database("postgres"))
            .await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(EMBEDDED_DATABASE)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            let created = sqlx::query(&format!(
                "CREATE DATABASE {}",
                quote_ident(EMBEDDED_DATABASE)
            ))
            .execute(&mut conn)
            .await;
            // Another process may have created it in the meantime.
            if let Err(e) = created
                && e.as_database_error().and_then(|d| d.code()).as_deref() != Some("42P04")
            {
                return Err(e.into());
            }
        }
        conn.close().await?;
        Ok(())
    }

    /// One connection.
    pub async fn connect(&self) -> Result<PgConnection, DbError> {
        self.connect_to(self.options.clone()).await
    }

    /// One connection for bulk work (seeding, backfill), whose statements are slow by design:
    /// no slow-statement warnings.
    pub async fn connect_bulk(&self) -> Result<PgConnection, DbError> {
        let options = self
            .options
            .clone()
            .log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(3600));
        self.connect_to(options).await
    }

    async fn connect_to(&self, options: PgConnectOptions) -> Result<PgConnection, DbError> {
        let unreachable = |reason: String| DbError::Unreachable {
            url: self.redacted_url(),
            reason,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(unreachable(reason(&e))),
            Err(_) => Err(unreachable(format!(
                "no answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// A connection pool; the first connection is made now, so an unreachable server is
    /// reported here.
    pub async fn pool(&self, max_connections: u32) -> Result<PgPool, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(self.options.clone())
            .await
            .map_err(|e| DbError::Unreachable {
                url: self.redacted_url(),
                reason: reason(&e),
            })?;
        Ok(pool)
    }

    /// A new, empty database on the same server, for replaying migrations; dropped by
    /// [`Throwaway::drop_database`].
    pub async fn throwaway(&self) -> Result<Throwaway, DbError> {
        // Named after the database it serves, so that its owner can tell it apart; cut to 40
        // bytes (on a character boundary) so that the whole name stays within PostgreSQL's
        // 63-byte identifiers, which it would otherwise truncate.
        let served = self.options.get_database().unwrap_or("postgres");
        let mut end = served.len().min(40);
        while !served.is_char_boundary(end) {
            end -= 1;
        }
        let base = &served[..end];
        let random = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{base}_scratch_{}", &random[..8]);
        let admin = self.options.clone().database("postgres");
        let mut conn = self.connect_to(admin.clone()).await?;
        sqlx::query(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(Throwaway {
            options: self.options.clone().database(&name),
            admin,
            name,
        })
    }

    /// Leaves the embedded cluster (stopping it if this was its last user).
    pub fn close(mut self) -> Result<bool, DbError> {
        match self.cluster.take() {
            Some(cluster) => Ok(cluster.release()?),
            None => Ok(false),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.redacted_url())
            .field("embedded", &self.cluster.is_some())
            .finish()
    }
}

/// A scratch database; drop it with [`Throwaway::drop_database`] when done.
#[derive(Debug)]
pub struct Throwaway {
    /// Options to connect to it.
    pub options: PgConnectOptions,
    admin: PgConnectOptions,
    name: String,
}

impl Throwaway {
    /// Drops the database, disconnecting anyone still in it.
    pub async fn drop_database(self) -> Result<(), DbError> {
        let mut conn = self.admin.connect().await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&self.name)
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}

/// `name` as a quoted SQL identifier, for the statements that take no bind parameters
/// (`CREATE DATABASE`): inside double quotes a `"` is written twice, so a name taken from a URL
/// cannot end the identifier early and run as SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The cause of a connection failure, without repeating the URL.
fn reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out".to_owned(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// `postgres://user:secret@host/db?password=x` → `postgres://user:***@host/db?password=***`.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    let Some(query) = query else { return base };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::{quote_ident, redact};

    #[test]
    fn identifiers_are_quoted_with_their_double_quotes_doubled() {
        assert_eq!(quote_ident("junkquote"), "\"junkquote\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("x\"; DROP DATABASE y; --"),
            "\"x\"\"; DROP DATABASE y; --\""
        );
        assert_eq!(quote_ident("\"\""), "\"\"\"\"\"\"");
        assert_eq!(quote_ident("Zoë"), "\"Zoë\"");
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://u:s3cr%40t@h:5/db?x=1"),
            "postgres://u:***@h:5/db?x=1"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://h/db?user=u&password=pw&x=1"),
            "postgres://h/db?user=u&password=***&x=1"
        );
        assert_eq!(
            redact("postgres:///db?host=/tmp"),
            "postgres:///db?host=/tmp"
        );
    }
}

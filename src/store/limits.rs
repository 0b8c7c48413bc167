//! Rate limits kept in PostgreSQL, so that every `serve` process behind a load balancer counts
//! against the same buckets (DESIGN §9). Each bucket is one row holding GCRA's theoretical
//! arrival time: `limit` requests may come at once, then one every `window / limit`.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

/// A limit: `limit` requests per `window`, all of them allowed in one burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per window (at least 1).
    pub limit: u32,
    /// The window over which the bucket refills.
    pub window: Duration,
}

impl Rate {
    /// Seconds between two requests once the burst is spent.
    fn interval_secs(self) -> f64 {
        self.window.as_secs_f64().max(0.001) / f64::from(self.limit.max(1))
    }

    /// How far ahead of now the bucket may run and still let a request in.
    fn tolerance_secs(self) -> f64 {
        self.interval_secs() * f64::from(self.limit.max(1).saturating_sub(1))
    }
}

/// Takes one request from bucket `key` if it has room: `Ok(())`, or `Err(wait)` until it will.
/// The upsert's row lock orders concurrent requests on one key, whichever process they reach,
/// and its condition is evaluated on the newest version of the row.
pub async fn take(
    conn: &mut PgConnection,
    key: &str,
    rate: Rate,
) -> sqlx::Result<Result<(), Duration>> {
    let taken: Option<i32> = sqlx::query_scalar(
        "INSERT INTO \"RateLimit\" AS r (key, tat)
         VALUES ($1, clock_timestamp() + make_interval(secs => $2))
         ON CONFLICT (key) DO UPDATE
             SET tat = greatest(r.tat, clock_timestamp()) + make_interval(secs => $2)
             WHERE greatest(r.tat, clock_timestamp()) - clock_timestamp()
                   <= make_interval(secs => $3)
         RETURNING 1",
    )
    .bind(key)
    .bind(rate.interval_secs())
    .bind(rate.tolerance_secs())
    .fetch_optional(&mut *conn)
    .await?;
    if taken.is_some() {
        return Ok(Ok(()));
    }
    // A statement of its own, so that its snapshot includes every request the upsert waited
    // for: the wait it names is not too short.
    let wait: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM tat - clock_timestamp())::float8 - $2
         FROM \"RateLimit\" WHERE key = $1",
    )
    .bind(key)
    .bind(rate.tolerance_secs())
    .fetch_optional(conn)
    .await?;
    Ok(Err(Duration::from_secs_f64(wait.unwrap_or(1.0).max(1.0))))
}

/// Takes one request from each bucket in `keys`, in order, or from none of them: a request
/// refused by one limit does not use up another's room. `Err(wait)` names the longest wait.
pub async fn take_all(pool: &PgPool, keys: &[(&str, Rate)]) -> sqlx::Result<Result<(), Duration>> {
    let mut tx = pool.begin().await?;
    for (key, rate) in keys {
        if let Err(wait) = take(&mut tx, key, *rate).await? {
            tx.rollback().await?;
            return Ok(Err(wait));
        }
    }
    tx.commit().await?;
    Ok(Ok(()))
}

/// Forgets buckets that have been full again for a day (they hold nothing a limit needs).
pub async fn forget_idle(pool: &PgPool) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM \"RateLimit\" WHERE tat < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

//! The company's settings, kept in the legacy `Config` row of the default tenant: the pricebook,
//! business hours, reminder hours and the pause switch. Seeded with the defaults on first use.

use sqlx::PgConnection;

use crate::domain::messaging::MessagingSettings;
use crate::domain::pricing::Pricebook;
use crate::domain::schedule::Hours;

/// The tenant a single-company installation uses.
pub const TENANT: &str = "default";

/// Everything the agent needs to know about the company.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prices and rules.
    pub pricebook: Pricebook,
    /// Business hours and time zone.
    pub hours: Hours,
    /// Hours before a pickup at which reminders go out.
    pub reminder_hours: Vec<i32>,
    /// Whether automated replies are switched off.
    pub paused: bool,
    /// The messaging rules' settings: sending hours, the assistant's introduction.
    pub messaging: MessagingSettings,
}

type ConfigRow = (
    Option<serde_json::Value>,
    Option<serde_json::Value>,
    Vec<i32>,
    bool,
    Option<serde_json::Value>,
);

/// Loads the settings, writing the defaults first if there are none.
pub async fn load(conn: &mut PgConnection) -> sqlx::Result<Settings> {
    let select = "SELECT pricebook, hours, reminder_hours, paused, messaging FROM \"Config\" WHERE tenant_id = $1";
    // Read first: the row exists on every call but the first, and a read takes no row lock.
    let mut row: Option<ConfigRow> = sqlx::query_as(select)
        .bind(TENANT)
        .fetch_optional(&mut *conn)
        .await?;
    if row.is_none() {
        sqlx::query(
            "INSERT INTO \"Config\" (tenant_id, pricebook, hours)
             VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(TENANT)
        .bind(sqlx::types::Json(Pricebook::default()))
        .bind(sqlx::types::Json(Hours::default()))
        .execute(&mut *conn)
        .await?;
        row = Some(
            sqlx::query_as(select)
                .bind(TENANT)
                .fetch_one(&mut *conn)
                .await?,
        );
    }
    let Some((pricebook, hours, reminder_hours, paused, messaging)) = row else {
        return Err(sqlx::Error::RowNotFound);
    };
    // A row written by the original service may lack them, or hold its own pricebook shape.
    let pricebook = pricebook
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let hours = hours
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let messaging = messaging
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    Ok(Settings {
        pricebook,
        hours,
        reminder_hours,
        paused,
        messaging,
    })
}

/// Switches automated replies off (`true`) or on.
pub async fn set_paused(conn: &mut PgConnection, paused: bool) -> sqlx::Result<()> {
    load(conn).await?;
    sqlx::query("UPDATE \"Config\" SET paused = $2, updated_at = now() WHERE tenant_id = $1")
        .bind(TENANT)
        .bind(paused)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the pricebook (validate it first).
pub async fn save_pricebook(conn: &mut PgConnection, pricebook: &Pricebook) -> sqlx::Result<()> {
    load(conn).await?;
    sqlx::query("UPDATE \"Config\" SET pricebook = $2, updated_at = now() WHERE tenant_id = $1")
        .bind(TENANT)
        .bind(sqlx::types::Json(pricebook))
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the messaging rules' settings (validate the sending hours first:
/// `SendingHours::new`).
pub async fn save_messaging(
    conn: &mut PgConnection,
    messaging: &MessagingSettings,
) -> sqlx::Result<()> {
    load(conn).await?;
    sqlx::query("UPDATE \"Config\" SET messaging = $2, updated_at = now() WHERE tenant_id = $1")
        .bind(TENANT)
        .bind(sqlx::types::Json(messaging))
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the business hours, time zone and crew count (validate them first).
pub async fn save_hours(conn: &mut PgConnection, hours: &Hours) -> sqlx::Result<()> {
    load(conn).await?;
    sqlx::query("UPDATE \"Config\" SET hours = $2, updated_at = now() WHERE tenant_id = $1")
        .bind(TENANT)
        .bind(sqlx::types::Json(hours))
        .execute(conn)
        .await?;
    Ok(())
}

//! Receiving a customer's message: find (or make) the customer, their conversation and its lead,
//! and store the message once, however often the provider delivers it.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{conversations, customers};
use crate::domain::Channel;
use crate::domain::identity::{Identity, IdentityKind, Region};

/// A conversation ends when it has been quiet this long (and its lead is not waiting on the
/// owner, on a window, or on its pickup); the next message opens a new conversation and lead.
pub const CONVERSATION_GAP_DAYS: i32 = 3;

/// Who wrote.
#[derive(Debug, Clone, Copy)]
pub enum Sender<'a> {
    /// A phone number in E.164 form.
    Phone(&'a str),
    /// A Messenger page-scoped id.
    Psid(&'a str),
    /// A web-chat session's conversation.
    Conversation(Uuid),
}

/// A message as a channel delivers it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// The channel it came on.
    pub channel: Channel,
    /// The provider whose ids `provider_message_id` comes from (`twilio`, `messenger`, `web`).
    pub provider: &'a str,
    /// The provider's id for this message; a second delivery with it is a duplicate.
    pub provider_message_id: &'a str,
    /// Who wrote it.
    pub sender: Sender<'a>,
    /// What it says.
    pub text: &'a str,
    /// Photo URLs on the provider's media host (checked by the channel).
    pub photos: &'a [String],
}

/// Where a message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Its conversation.
    pub conversation_id: Uuid,
    /// The stored message.
    pub message_id: Uuid,
    /// It had been received before: nothing new was stored.
    pub duplicate: bool,
}

/// The longest message kept, in characters (an SMS is at most 1,600; Messenger 2,000).
pub const MAX_TEXT: usize = 5000;

/// What of a message's text is stored: no NUL or other control characters (PostgreSQL refuses
/// NUL in text), at most [`MAX_TEXT`] characters.
pub fn clean_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .take(MAX_TEXT)
        .collect()
}

/// Stores an inbound message in one transaction.
pub async fn receive(pool: &PgPool, inbound: Inbound<'_>) -> sqlx::Result<Received> {
    let text = clean_text(inbound.text);
    let mut tx = pool.begin().await?;
    // Locked: the conversation's row lock orders its messages: `seq` is taken, and committed,
    // one message at a time, so arrival order is commit order.
    let conversation_id = conversation_for(&mut tx, inbound.channel, inbound.sender).await?;
    // One statement: the delivery is recorded once (a concurrent delivery of the same message
    // waits for the first to commit, then finds the key taken and stores nothing), and only
    // then the message, and the conversation's and lead's times. The message's key is checked
    // at the end of the statement, when the message is there.
    let message_id = Uuid::new_v4();
    let inserted: Option<i64> = sqlx::query_scalar(
        "WITH delivery AS (
             INSERT INTO \"InboundMessage\" (provider, provider_message_id, conversation_id, message_id)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (provider, provider_message_id) DO NOTHING
             RETURNING seq
         ), message AS (
             INSERT INTO \"Message\" (id, conversation_id, role, content, metadata, created_at)
             SELECT $4, $3, 'user', $5,
                    jsonb_build_object('provider', $1::text, 'provider_message_id', $2::text,
                                       'photos', to_jsonb($6::text[])),
                    clock_timestamp()
             FROM delivery
         ), conversation AS (
             UPDATE \"Conversation\" SET last_message_at = now(), updated_at = now()
             WHERE id = $3 AND EXISTS (SELECT 1 FROM delivery)
             RETURNING lead_id
         ), lead AS (
             UPDATE \"Lead\" SET last_customer_message_at = now(), updated_at = now()
             WHERE id = (SELECT lead_id FROM conversation)
         )
         SELECT seq FROM delivery",
    )
    .bind(inbound.provider)
    .bind(inbound.provider_message_id)
    .bind(conversation_id)
    .bind(message_id)
    .bind(&text)
    .bind(inbound.photos)
    .fetch_optional(&mut *tx)
    .await?;
    if inserted.is_none() {
        tx.rollback().await?;
        let (conversation_id, message_id): (Uuid, Uuid) = sqlx::query_as(
            "SELECT conversation_id, message_id FROM \"InboundMessage\"
             WHERE provider = $1 AND provider_message_id = $2",
        )
        .bind(inbound.provider)
        .bind(inbound.provider_message_id)
        .fetch_one(pool)
        .await?;
        return Ok(Received {
            conversation_id,
            message_id,
            duplicate: true,
        });
    }
    if !inbound.photos.is_empty() {
        // Photos wait on the lead for the owner (no vision endpoint estimates them here).
        sqlx::query(
            "INSERT INTO \"LeadAttachment\" (lead_id, url, source)
             SELECT c.lead_id, u.url, $3 FROM \"Conversation\" c, unnest($2::text[]) AS u(url)
             WHERE c.id = $1 AND c.lead_id IS NOT NULL
             ON CONFLICT (lead_id, url) DO NOTHING",
        )
        .bind(conversation_id)
        .bind(inbound.photos)
        .bind(inbound.provider)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Received {
        conversation_id,
        message_id,
        duplicate: false,
    })
}

/// The customer's current conversation on `channel`, opening one (with its lead, and the
/// customer if new) when there is none or the last went quiet; locked for the transaction.
async fn conversation_for(
    tx: &mut PgConnection,
    channel: Channel,
    sender: Sender<'_>,
) -> sqlx::Result<Uuid> {
    let (identity, phone, psid) = match sender {
        Sender::Phone(p) => (
            // A provider sends E.164; a number the parser refuses (a short code) is still who
            // wrote, taken as given.
            Identity::phone(p, Region::US).unwrap_or_else(|| Identity {
                kind: IdentityKind::Phone,
                value: p.trim().to_owned(),
            }),
            Some(p),
            None,
        ),
        Sender::Psid(p) => (
            Identity {
                kind: IdentityKind::Psid,
                value: p.trim().to_owned(),
            },
            None,
            Some(p),
        ),
        Sender::Conversation(id) => {
            conversations::lock(tx, id).await?;
            return Ok(id);
        }
    };
    let customer_id = customers::resolve(tx, &identity).await?;
    let open: Option<Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM \"Conversation\" c LEFT JOIN \"Lead\" l ON l.id = c.lead_id
         WHERE c.customer_id = $1 AND c.channel = $2::text::\"Channel\"
           AND (coalesce(c.last_message_at, c.started_at) > now() - make_interval(days => $3)
                OR l.stage IN ('awaiting_owner', 'scheduling')
                OR (l.stage IN ('booked', 'reminding')
                    AND EXISTS (SELECT 1 FROM \"Job\" j
                                WHERE j.lead_id = l.id AND j.status IN ('tentative', 'booked')
                                  AND j.window_end > now())))
         ORDER BY c.started_at DESC LIMIT 1
         FOR UPDATE OF c",
    )
    .bind(customer_id)
    .bind(channel.as_str())
    .bind(CONVERSATION_GAP_DAYS)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = open {
        return Ok(id);
    }
    let phone = phone.map(|_| identity.value.as_str());
    open_conversation(tx, customer_id, channel, phone, psid.or(phone)).await
}

/// Opens a conversation with a new lead for `customer_id`.
pub async fn open_conversation(
    tx: &mut PgConnection,
    customer_id: Uuid,
    channel: Channel,
    phone: Option<&str>,
    external_id: Option<&str>,
) -> sqlx::Result<Uuid> {
    let psid = (channel == Channel::Messenger)
        .then_some(external_id)
        .flatten();
    sqlx::query_scalar(
        "WITH lead AS (
             INSERT INTO \"Lead\" (channel, phone, \"messengerPsid\", customer_id, stage, \"stateMetadata\")
             VALUES ($2::text::\"Channel\", $3, NULL, $1, 'clarifying', '{}')
             RETURNING id
         )
         INSERT INTO \"Conversation\" (customer_id, lead_id, channel, external_id, metadata)
         SELECT $1, id, $2::text::\"Channel\", $4, jsonb_build_object('psid', $5::text) FROM lead
         RETURNING id",
    )
    .bind(customer_id)
    .bind(channel.as_str())
    .bind(phone)
    .bind(external_id)
    .bind(psid)
    .fetch_one(&mut *tx)
    .await
}

/// Conversations with messages that were stored but not answered, oldest first, and that no
/// live worker is answering: what a crash between storing and answering leaves behind.
pub async fn unanswered(
    pool: &PgPool,
    older_than: Duration,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT i.conversation_id FROM \"InboundMessage\" i
         WHERE i.processed_at IS NULL AND i.received_at < now() - make_interval(secs => $1)
           AND (i.retry_at IS NULL OR i.retry_at <= now())
           AND NOT EXISTS (SELECT 1 FROM \"AnswerLease\" l
                           WHERE l.conversation_id = i.conversation_id AND l.expires_at >= now())
         GROUP BY i.conversation_id ORDER BY min(i.received_at) LIMIT $2",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A stored customer message not yet answered.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    /// The provider whose id `provider_message_id` is.
    pub provider: String,
    /// The provider's id for the message (with `provider`, the delivery's key).
    pub provider_message_id: String,
    /// The stored message.
    pub message_id: Uuid,
    /// Its text.
    pub text: String,
    /// How often answering it has failed.
    pub attempts: i32,
    /// How many photos came with it.
    pub photos: i32,
    /// Whether it may be answered now (not waiting out the backoff after a failure).
    pub due: bool,
}

/// The conversation's first unanswered message, in arrival order: the one to answer next
/// (the ones after it wait for it).
pub async fn next_pending(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<Option<Pending>> {
    sqlx::query_as(
        "SELECT i.provider, i.provider_message_id, m.id AS message_id, m.content AS text,
                i.attempts, coalesce(jsonb_array_length(m.metadata->'photos'), 0) AS photos,
                (i.retry_at IS NULL OR i.retry_at <= now()) AS due
         FROM \"InboundMessage\" i JOIN \"Message\" m ON m.id = i.message_id
         WHERE i.conversation_id = $1 AND i.processed_at IS NULL
         ORDER BY i.seq LIMIT 1",
    )
    .bind(conversation_id)
    .fetch_optional(conn)
    .await
}

/// Whether the answering workers have something in hand: a message received in the last few
/// seconds and not answered (older ones are the sweep's), or a live lease on a conversation.
/// For the evaluation and the tests, which wait for the workers before they look.
pub async fn answering_in_flight(pool: &PgPool) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM \"InboundMessage\"
                        WHERE processed_at IS NULL
                          AND received_at > now() - interval '5 seconds'
                          AND (retry_at IS NULL OR retry_at <= now()))
                OR EXISTS (SELECT 1 FROM \"AnswerLease\" WHERE expires_at > now())",
    )
    .fetch_one(pool)
    .await
}

/// Whether the stored message `message_id` has been answered (or set aside).
pub async fn answered(pool: &PgPool, message_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT processed_at IS NOT NULL FROM \"InboundMessage\" WHERE message_id = $1",
    )
    .bind(message_id)
    .fetch_optional(pool)
    .await
    .map(|done| done.unwrap_or(true))
}

/// Marks a delivery answered (or set aside, with the `error` that stopped it).
pub async fn processed(
    conn: &mut PgConnection,
    message: &Pending,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE \"InboundMessage\" SET processed_at = now(), last_error = coalesce($3, last_error)
         WHERE provider = $1 AND provider_message_id = $2",
    )
    .bind(&message.provider)
    .bind(&message.provider_message_id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed answer: tried again after an exponential backoff (2^attempts seconds, at
/// most five minutes).
pub async fn retry_later(
    conn: &mut PgConnection,
    message: &Pending,
    attempts: i32,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE \"InboundMessage\" SET attempts = $3, last_error = $4,
                retry_at = now() + make_interval(secs => $5)
         WHERE provider = $1 AND provider_message_id = $2",
    )
    .bind(&message.provider)
    .bind(&message.provider_message_id)
    .bind(attempts)
    .bind(error)
    .bind(2f64.powi(attempts).min(300.0))
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `url` is a photo on a provider's media host: https only, on Twilio's or Facebook's
/// own hosts, so that nothing else is ever recorded (or later fetched). The host is the one a
/// WHATWG URL parser (the `url` crate, as browsers) finds: `\\` ends the host as `/` does, so
/// `https://evil.example\\.twilio.com/` is on `evil.example`.
pub fn is_provider_media(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url.trim()) else {
        return false;
    };
    if parsed.scheme() != "https"
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.port().is_some()
    {
        return false;
    }
    // A domain only (the parser lower-cases it); an IP address is nobody's media host.
    let Some(url::Host::Domain(host)) = parsed.host() else {
        return false;
    };
    ["twilio.com", "fbcdn.net", "facebook.com", "fbsbx.com"]
        .iter()
        .any(|domain| {
            host == *domain
                || host
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_provider_media_over_https_counts_as_a_photo() {
        assert!(is_provider_media(
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
        ));
        assert!(is_provider_media(
            "https://scontent.xx.fbcdn.net/v/t1/photo.jpg?x=1"
        ));
        assert!(!is_provider_media("http://api.twilio.com/media"));
        assert!(!is_provider_media("https://evil.example/twilio.com"));
        assert!(!is_provider_media("https://twilio.com.evil.example/x"));
        assert!(!is_provider_media("https://user@api.twilio.com/x"));
        // Browsers read `\` as `/`: this is a photo on evil.example, not on Twilio.
        assert!(!is_provider_media(
            "https://evil.example\\.twilio.com/x.jpg"
        ));
        assert!(!is_provider_media(
            "https://evil.example%5C.twilio.com/x.jpg"
        ));
        assert!(!is_provider_media("https://api.twilio.com:8443/x"));
        assert!(!is_provider_media("https://api.twilio.com./x"));
        assert!(is_provider_media("https://API.Twilio.com/x"));
    }

    #[test]
    fn control_characters_go_and_text_is_capped() {
        assert_eq!(clean_text("a\u{0}b\tc\n"), "ab\tc\n");
        assert_eq!(clean_text(&"x".repeat(MAX_TEXT + 10)).len(), MAX_TEXT);
    }
}

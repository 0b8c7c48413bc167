//! The conversation engine: answers a conversation's new messages, each conversation's one at a
//! time and in the order they arrived, under a lease on the conversation held in the database.

pub mod llm;
pub mod rules;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::Channel;
use crate::domain::identity::{Identity, IdentityKind, Region, find_in_text};
use crate::domain::memory::{facts_in, name_in};
use crate::domain::messaging::{self, Ask};
use crate::store::challenges::{self, Attempt, Started};
use crate::store::context::{self, Budget, Context};
use crate::store::{
    conversations, customers, inbox, leads, memory, outbox, quotes, rules as messaging_rules,
    settings,
};

/// How the agent uses what it knows of customers.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Read customers' memory (notes, addresses, history) into the conversation
    /// (`CONTEXT_MEMORY_ENABLED`). Customer records are written either way.
    pub memory: bool,
    /// Ask "Same address as last time?" before reusing an address
    /// (`CONTEXT_STRICT_ADDRESS_CONFIRMATION`).
    pub strict_address: bool,
    /// Where phone numbers written without a country code are read.
    pub region: Region,
    /// How much history is read.
    pub budget: Budget,
    /// How long a worker's answering lease on a conversation lasts between renewals: after a
    /// crash, the conversation waits this long before another worker answers it.
    pub lease: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memory: true,
            strict_address: true,
            region: Region::US,
            budget: Budget::default(),
            lease: Duration::from_secs(30),
        }
    }
}

/// The conversation engine with its options; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Agent {
    /// How it uses memory.
    pub options: Options,
    /// The LLM agent, when an endpoint is configured; the rule-based agent answers otherwise
    /// and whenever it fails.
    pub llm: Option<std::sync::Arc<llm::Llm>>,
}

/// How often answering one message may fail before it is set aside for the owner, so that
/// the conversation can go on.
pub const MAX_ANSWER_ATTEMPTS: i32 = 5;

/// Answers every stored but unanswered message of a conversation, one at a time in arrival
/// order, under the conversation's answering lease (a row in the database, so that several
/// workers and `serve` processes take turns: a caller that finds it held returns at once, and
/// the holder answers what arrived meanwhile). Each message is answered in short transactions,
/// none held while a model thinks. A message whose answer fails is retried later with backoff,
/// and after [`MAX_ANSWER_ATTEMPTS`] set aside with the owner told; the messages after it wait,
/// to keep the order. Returns how many messages were answered.
pub async fn process(agent: &Agent, pool: &PgPool, conversation_id: Uuid) -> sqlx::Result<usize> {
    let holder = Uuid::new_v4();
    let ttl = agent.options.lease;
    let mut answered = 0;
    // Passes in a row that answered nothing: a second one ends it (what is left is the sweep's).
    let mut idle = 0;
    loop {
        if !conversations::take_lease(pool, conversation_id, holder, ttl).await? {
            return Ok(answered);
        }
        let worked = renewing(pool, conversation_id, holder, ttl, async {
            let mut n = 0;
            while answer_next(agent, pool, conversation_id, holder).await? {
                n += 1;
            }
            Ok::<_, sqlx::Error>(n)
        })
        .await;
        let more = conversations::release_lease(pool, conversation_id, holder).await?;
        let worked = worked?;
        answered += worked;
        idle = if worked == 0 { idle + 1 } else { 0 };
        // A message stored while the lease was held, whose own wake-up (in another process)
        // found the lease taken, is answered now.
        if idle >= 2 || !more {
            return Ok(answered);
        }
    }
}

/// Runs `work` while renewing `holder`'s lease every third of its life.
async fn renewing<T>(
    pool: &PgPool,
    conversation_id: Uuid,
    holder: Uuid,
    ttl: Duration,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let mut tick = tokio::time::interval((ttl / 3).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tick.tick() => {
                let renewed = async {
                    let mut conn = pool.acquire().await?;
                    conversations::renew_lease(&mut conn, conversation_id, holder, ttl).await
                };
                match renewed.await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(conversation = %conversation_id, "the answering lease was lost"),
                    Err(e) => tracing::warn!(conversation = %conversation_id, error = %e, "could not renew the answering lease"),
                }
            }
        }
    }
}

/// The conversation's next message, locked with its conversation, when `holder` still holds
/// the lease and the message may be answered now; with whether an operator has it.
async fn claim(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    holder: Uuid,
    ttl: Duration,
) -> sqlx::Result<Option<(inbox::Pending, bool)>> {
    let Some(locked) = conversations::lock(conn, conversation_id).await? else {
        return Ok(None);
    };
    if !conversations::renew_lease(conn, conversation_id, holder, ttl).await? {
        return Ok(None);
    }
    Ok(inbox::next_pending(conn, conversation_id)
        .await?
        .filter(|p| p.due)
        .map(|p| (p, locked.taken_over)))
}

/// What the first transaction of a message left to do.
enum First {
    /// Answered (or deliberately left unanswered).
    Done,
    /// The model is to be asked, with the connection released.
    Model(Box<Prepared>),
}

/// What the model's turn needs, read in the first transaction.
struct Prepared {
    context: Option<Context>,
    prompt: llm::Prompt,
    now: DateTime<Utc>,
}

/// Answers the conversation's next message; `false` when there is none to answer now (or the
/// lease was lost). The rule-based agent answers in one short transaction; the LLM agent's
/// message takes one to read, none while the model thinks, one per tool, one to reply.
async fn answer_next(
    agent: &Agent,
    pool: &PgPool,
    conversation_id: Uuid,
    holder: Uuid,
) -> sqlx::Result<bool> {
    let ttl = agent.options.lease;
    let mut tx = pool.begin().await?;
    let Some((waiting, taken_over)) = claim(&mut tx, conversation_id, holder, ttl).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    let settings = settings::load(&mut tx).await?;
    // Paused, or taken over by an operator: the message is kept and marked read, and nobody is
    // answered automatically.
    if settings.paused || taken_over {
        inbox::processed(&mut tx, &waiting, None).await?;
        tx.commit().await?;
        return Ok(true);
    }
    let mut step = sqlx::Connection::begin(&mut *tx).await?;
    let first = first_step(&mut step, agent, &settings, conversation_id, &waiting).await;
    let prepared = match first {
        Ok(First::Done) => {
            step.commit().await?;
            inbox::processed(&mut tx, &waiting, None).await?;
            tx.commit().await?;
            if agent.llm.is_none() {
                metrics::counter!("junkquote_answers_total", "agent" => "rules").increment(1);
            }
            return Ok(true);
        }
        Ok(First::Model(prepared)) => {
            // Nothing was written; the connection goes back to the pool before the model call.
            step.rollback().await?;
            tx.commit().await?;
            prepared
        }
        Err(e) => {
            step.rollback().await?;
            let go_on = failed(&mut tx, conversation_id, &waiting, &e).await?;
            tx.commit().await?;
            return Ok(go_on);
        }
    };
    let from_model = match &agent.llm {
        Some(model) => {
            let turn = llm::Turn {
                conversation_id,
                message_id: waiting.message_id,
                settings: &settings,
                known: rules::Known {
                    context: prepared.context.as_ref(),
                    strict_address: agent.options.strict_address,
                },
                now: prepared.now,
                holder,
                lease: ttl,
            };
            match llm::respond(model, pool, &turn, prepared.prompt, &waiting.text).await {
                Ok(replies) => {
                    metrics::counter!("junkquote_answers_total", "agent" => "model").increment(1);
                    Some(replies)
                }
                Err(e) => {
                    metrics::counter!("junkquote_answers_total", "agent" => "model_fell_back")
                        .increment(1);
                    metrics::counter!("junkquote_model_errors_total", "kind" => e.kind())
                        .increment(1);
                    tracing::warn!(conversation = %conversation_id, error = %e, "the LLM agent failed; the rule-based agent answers");
                    None
                }
            }
        }
        None => None,
    };
    // The reply: the conversation, the lease and the message checked again, since the model
    // took its time.
    let mut tx = pool.begin().await?;
    let Some((again, taken_over)) = claim(&mut tx, conversation_id, holder, ttl).await? else {
        tx.commit().await?;
        return Ok(false);
    };
    if again.message_id != waiting.message_id {
        tx.commit().await?;
        return Ok(true);
    }
    let settings = settings::load(&mut tx).await?;
    if settings.paused || taken_over {
        if let Some(replies) = &from_model {
            for reply in replies {
                conversations::note_unsent(&mut tx, conversation_id, reply).await?;
            }
        }
        inbox::processed(&mut tx, &waiting, None).await?;
        tx.commit().await?;
        return Ok(true);
    }
    let mut step = sqlx::Connection::begin(&mut *tx).await?;
    let message = Incoming {
        id: waiting.message_id,
        text: &waiting.text,
        photos: waiting.photos,
    };
    match reply_step(
        &mut step,
        agent,
        &settings,
        conversation_id,
        message,
        from_model,
    )
    .await
    {
        Ok(()) => {
            step.commit().await?;
            inbox::processed(&mut tx, &waiting, None).await?;
            tx.commit().await?;
            Ok(true)
        }
        Err(e) => {
            step.rollback().await?;
            let go_on = failed(&mut tx, conversation_id, &waiting, &e).await?;
            tx.commit().await?;
            Ok(go_on)
        }
    }
}

/// Records a failed answer: retried later, or after [`MAX_ANSWER_ATTEMPTS`] set aside with the
/// owner told. Whether the conversation's next message may be answered now.
async fn failed(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    waiting: &inbox::Pending,
    e: &sqlx::Error,
) -> sqlx::Result<bool> {
    let attempts = waiting.attempts + 1;
    tracing::warn!(conversation = %conversation_id, attempts, error = %e, "answering a message failed");
    if attempts >= MAX_ANSWER_ATTEMPTS {
        inbox::processed(conn, waiting, Some(&e.to_string())).await?;
        outbox::notify_owner(
            conn,
            &format!(
                "A customer message could not be answered automatically after {attempts} tries; please reply yourself (conversation {conversation_id})."
            ),
        )
        .await?;
        return Ok(true);
    }
    inbox::retry_later(conn, waiting, attempts, &e.to_string()).await?;
    // The messages after it wait for it: answers keep the order of the questions.
    Ok(false)
}

/// The first transaction of a message: the messaging rules, a verification code, and the whole
/// answer of the rule-based agent; for the LLM agent, what the model is to be shown.
async fn first_step(
    conn: &mut PgConnection,
    agent: &Agent,
    settings: &settings::Settings,
    conversation_id: Uuid,
    waiting: &inbox::Pending,
) -> sqlx::Result<First> {
    let mut lead = leads::lead_of_conversation(conn, conversation_id).await?;
    let message = Incoming {
        id: waiting.message_id,
        text: &waiting.text,
        photos: waiting.photos,
    };
    // The messaging rules first: an opt-out, an opt-in or a request for a person is handled
    // here, and the agent answers only what is left.
    match rules_first(conn, settings, &lead, conversation_id, &message).await? {
        Handled::No => {}
        Handled::Yes | Handled::HandedOver => return Ok(First::Done),
    }
    if agent.llm.is_none() {
        reply_step_on(
            conn,
            agent,
            settings,
            &mut lead,
            conversation_id,
            message,
            None,
        )
        .await?;
        return Ok(First::Done);
    }
    let first_reply = !lead.state.greeted;
    if let Some(reply) = verification(conn, agent, &mut lead, conversation_id, message.text).await?
    {
        send(
            conn,
            settings,
            &mut lead,
            conversation_id,
            message.id,
            first_reply,
            vec![reply],
        )
        .await?;
        return Ok(First::Done);
    }
    let context = read_context(conn, agent, &lead).await?;
    let now = Utc::now();
    let turn = llm::Turn {
        conversation_id,
        message_id: message.id,
        settings,
        known: rules::Known {
            context: context.as_ref(),
            strict_address: agent.options.strict_address,
        },
        now,
        holder: Uuid::nil(),
        lease: agent.options.lease,
    };
    let prompt = llm::prepare(conn, &turn, &lead).await?;
    Ok(First::Model(Box::new(Prepared {
        context,
        prompt,
        now,
    })))
}

/// The last transaction of a message: the lead re-read, and the model's replies sent, or the
/// rule-based agent's when the model gave none.
async fn reply_step(
    conn: &mut PgConnection,
    agent: &Agent,
    settings: &settings::Settings,
    conversation_id: Uuid,
    message: Incoming<'_>,
    from_model: Option<Vec<String>>,
) -> sqlx::Result<()> {
    let mut lead = leads::lead_of_conversation(conn, conversation_id).await?;
    reply_step_on(
        conn,
        agent,
        settings,
        &mut lead,
        conversation_id,
        message,
        from_model,
    )
    .await
}

async fn reply_step_on(
    conn: &mut PgConnection,
    agent: &Agent,
    settings: &settings::Settings,
    lead: &mut leads::Lead,
    conversation_id: Uuid,
    message: Incoming<'_>,
    from_model: Option<Vec<String>>,
) -> sqlx::Result<()> {
    let first_reply = !lead.state.greeted;
    let replies = match from_model {
        Some(mut replies) => {
            let now = Utc::now();
            replies.extend(learn(conn, agent, lead, conversation_id, message.text, now).await?);
            lead.state.greeted = true;
            replies
        }
        None => answer(conn, agent, settings, lead, conversation_id, &message).await?,
    };
    send(
        conn,
        settings,
        lead,
        conversation_id,
        message.id,
        first_reply,
        replies,
    )
    .await
}

/// Queues `replies` to `message` (the first of a conversation says it is an automated
/// assistant) and saves the lead.
async fn send(
    conn: &mut PgConnection,
    settings: &settings::Settings,
    lead: &mut leads::Lead,
    conversation_id: Uuid,
    message_id: Uuid,
    first_reply: bool,
    mut replies: Vec<String>,
) -> sqlx::Result<()> {
    if first_reply && let Some(first) = replies.first_mut() {
        first.insert_str(0, &format!("{} ", settings.messaging.intro()));
    }
    for reply in replies {
        outbox::reply(conn, conversation_id, Some(message_id), lead, &reply).await?;
    }
    leads::save_lead(conn, lead).await
}

/// Whether the messaging rules dealt with a message.
enum Handled {
    /// The agent answers it.
    No,
    /// Done: nothing (more) to say.
    Yes,
    /// The conversation went to the operator: the assistant answers no more of it.
    HandedOver,
}

/// The messaging rules' step before the agent (DESIGN §4). A carrier keyword is recorded and
/// left unanswered (Twilio confirms STOP and START and answers HELP itself); a revocation in
/// other words is recorded with one plain confirmation; a recipient who opted out is not
/// answered until they opt in again; a request for a person hands the conversation to the
/// operator, tells the owner, and tells the customer when to expect a call.
async fn rules_first(
    conn: &mut PgConnection,
    settings: &settings::Settings,
    lead: &leads::Lead,
    conversation_id: Uuid,
    message: &Incoming<'_>,
) -> sqlx::Result<Handled> {
    let ask = messaging::classify(message.text);
    // Web chat has no one to stop writing to: the visitor just closes the page.
    let recipient = match (&lead.recipient, lead.channel) {
        (Some(r), Channel::Sms | Channel::Messenger) => Some(r.clone()),
        _ => None,
    };
    let Some(recipient) = recipient else {
        return match ask {
            Ask::Person => hand_over(conn, settings, lead, conversation_id, message).await,
            _ => Ok(Handled::No),
        };
    };
    let opted_out = messaging_rules::opted_out(conn, lead.channel, &recipient)
        .await?
        .is_some();
    let sms = lead.channel == Channel::Sms;
    match ask {
        Ask::StopKeyword if sms => {
            let reason = messaging_rules::reason::KEYWORD;
            messaging_rules::opt_out(conn, lead.channel, &recipient, reason, None).await?;
            tracing::info!(conversation = %conversation_id, "opted out by keyword");
            Ok(Handled::Yes)
        }
        Ask::StopKeyword | Ask::Revoked => {
            if opted_out {
                return Ok(Handled::Yes);
            }
            let confirmation = if sms {
                "OK, we won't text you again. If you change your mind, reply START."
            } else {
                "OK, we won't message you again. If you change your mind, send START."
            };
            let id =
                outbox::reply(conn, conversation_id, Some(message.id), lead, confirmation).await?;
            let reason = messaging_rules::reason::WORDS;
            messaging_rules::opt_out(conn, lead.channel, &recipient, reason, Some(id)).await?;
            tracing::info!(conversation = %conversation_id, "opted out in words");
            if messaging::wants_person(message.text) {
                hand_over_quietly(conn, lead, conversation_id, message.text).await?;
                return Ok(Handled::HandedOver);
            }
            Ok(Handled::Yes)
        }
        Ask::StartKeyword if opted_out => {
            messaging_rules::opt_in(conn, lead.channel, &recipient).await?;
            tracing::info!(conversation = %conversation_id, "opted in again");
            Ok(Handled::Yes)
        }
        Ask::HelpKeyword if sms => Ok(Handled::Yes),
        // Kept in the thread for the operator; no answer can go to them.
        _ if opted_out => Ok(Handled::Yes),
        Ask::Person => hand_over(conn, settings, lead, conversation_id, message).await,
        _ => Ok(Handled::No),
    }
}

/// Hands the conversation to the operator at the customer's request: taken over, the owner
/// told, and the customer told when to expect a call.
async fn hand_over(
    conn: &mut PgConnection,
    settings: &settings::Settings,
    lead: &leads::Lead,
    conversation_id: Uuid,
    message: &Incoming<'_>,
) -> sqlx::Result<Handled> {
    hand_over_quietly(conn, lead, conversation_id, message.text).await?;
    let hours = &settings.hours;
    let local = Utc::now().with_timezone(&hours.time_zone).time();
    let when = if local >= hours.open && local < hours.close {
        "shortly".to_owned()
    } else {
        format!(
            "during business hours ({}–{})",
            hours.open.format("%-I:%M %p"),
            hours.close.format("%-I:%M %p")
        )
    };
    let reply = format!(
        "Of course. I've asked someone from our team to call you {when}. You can keep writing \
         here too; a person will read it."
    );
    outbox::reply(conn, conversation_id, Some(message.id), lead, &reply).await?;
    Ok(Handled::HandedOver)
}

/// Takes the conversation over for the operator and tells the owner, by text.
async fn hand_over_quietly(
    conn: &mut PgConnection,
    lead: &leads::Lead,
    conversation_id: Uuid,
    text: &str,
) -> sqlx::Result<()> {
    conversations::take_over(conn, conversation_id, Some("customer's request")).await?;
    let who = match (lead.channel, lead.recipient.as_deref()) {
        (Channel::Sms, Some(phone)) => format!("the customer at {phone}"),
        (channel, _) => format!("a customer on {channel}"),
    };
    let said: String = text.chars().take(200).collect();
    outbox::notify_owner(
        conn,
        &format!(
            "A person is wanted: {who} asked to talk to someone (\"{said}\"). The assistant has \
             stopped answering; reply from the console (conversation {conversation_id})."
        ),
    )
    .await?;
    Ok(())
}

/// A customer message to answer.
struct Incoming<'a> {
    id: Uuid,
    text: &'a str,
    photos: i32,
}

/// The rule-based agent's replies to one message (a verification code checked first, what the
/// message tells of the customer written down).
async fn answer(
    conn: &mut PgConnection,
    agent: &Agent,
    settings: &settings::Settings,
    lead: &mut leads::Lead,
    conversation_id: Uuid,
    message: &Incoming<'_>,
) -> sqlx::Result<Vec<String>> {
    let now = Utc::now();
    if let Some(reply) = verification(conn, agent, lead, conversation_id, message.text).await? {
        return Ok(vec![reply]);
    }
    let notice = learn(conn, agent, lead, conversation_id, message.text, now).await?;
    // The rule-based agent reads memory only to welcome a returning customer and to offer
    // their last address; most messages need neither.
    let wanted = !lead.state.greeted || lead.address.is_none();
    let context = if wanted {
        read_context(conn, agent, lead).await?
    } else {
        None
    };
    let known = rules::Known {
        context: context.as_ref(),
        strict_address: agent.options.strict_address,
    };
    let mut replies = rules::respond(
        conn,
        settings,
        lead,
        message.text,
        message.photos > 0,
        now,
        known,
    )
    .await?;
    replies.extend(notice);
    Ok(replies)
}

async fn read_context(
    conn: &mut PgConnection,
    agent: &Agent,
    lead: &leads::Lead,
) -> sqlx::Result<Option<Context>> {
    match lead.customer_id {
        Some(customer_id) if agent.options.memory => {
            context::load(conn, customer_id, agent.options.budget).await
        }
        _ => Ok(None),
    }
}

/// A code entered after one was sent: checks it and, when right, gives the proven identity to
/// the conversation's customer (who may thereby become the customer who already held it
/// verified). `None` when the message is not a code or none was asked for.
async fn verification(
    conn: &mut PgConnection,
    agent: &Agent,
    lead: &mut leads::Lead,
    conversation_id: Uuid,
    text: &str,
) -> sqlx::Result<Option<String>> {
    let Some(code) = challenges::code_in(text) else {
        return Ok(None);
    };
    let Some(prover) = lead.customer_id else {
        return Ok(None);
    };
    Ok(Some(match challenges::attempt(conn, conversation_id, &code).await? {
        Attempt::NoChallenge => return Ok(None),
        Attempt::Locked => {
            "Too many wrong codes were entered for that today, so it can't be confirmed until tomorrow."
                .to_owned()
        }
        Attempt::Wrong(0) | Attempt::Expired => {
            "That code can't be used any more. Send your phone number or email again for a new one."
                .to_owned()
        }
        Attempt::Wrong(left) => format!(
            "That code doesn't match. Please check it and try again ({left} tries left)."
        ),
        Attempt::Verified(identity) => {
            lead.customer_id = Some(customers::prove(conn, prover, &identity).await?);
            let context = read_context(conn, agent, lead).await?;
            let name = context
                .as_ref()
                .and_then(Context::first_name)
                .map(|n| format!(", {n}"))
                .unwrap_or_default();
            lead.state.greeted = true;
            let known = rules::Known {
                context: context.as_ref(),
                strict_address: agent.options.strict_address,
            };
            let next = match rules::ask_address(lead, known) {
                Some(question) if lead.state.quote_id.is_some() => format!(" {question}"),
                _ if lead.state.quote_id.is_none() => {
                    " What would you like hauled away?".to_owned()
                }
                _ => String::new(),
            };
            format!("Thanks{name}, you're verified.{next}")
        }
    }))
}

/// The identity a message claims: its first phone number, else its first email. One message
/// claims one at most, however many it lists.
fn claimed_in(text: &str, region: Region) -> Option<Identity> {
    let found = find_in_text(text, region);
    let phone = found.iter().position(|i| i.kind == IdentityKind::Phone);
    let email = found.iter().position(|i| i.kind == IdentityKind::Email);
    phone.or(email).map(|at| found[at].clone())
}

/// Writes down what the message tells about the customer: their name and durable facts (memory
/// notes). A phone or email they give is not stored: a code is sent there, and it becomes theirs
/// when they enter it (see [`verification`]). Returns the notice to add to the reply, which
/// reads the same whether the number or email is anyone's.
async fn learn(
    conn: &mut PgConnection,
    agent: &Agent,
    lead: &leads::Lead,
    conversation_id: Uuid,
    text: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<String>> {
    let Some(customer_id) = lead.customer_id else {
        return Ok(None);
    };
    if let Some(name) = name_in(text) {
        customers::name_if_unknown(conn, customer_id, &name).await?;
    }
    for fact in facts_in(text) {
        memory::remember(conn, customer_id, conversation_id, &fact, now).await?;
    }
    let Some(identity) = claimed_in(text, agent.options.region) else {
        return Ok(None);
    };
    // A texter's own number is proven by the carrier; a number or email in a text is someone
    // they mention, and nothing is sent there (an SMS conversation is never a way to text
    // codes to other people).
    if lead.channel == Channel::Sms {
        return Ok(None);
    }
    // Already theirs and proven: nothing to prove. (Only its holder can see this difference.)
    if customers::owner_of(conn, &identity).await? == Some((customer_id, true)) {
        return Ok(None);
    }
    Ok(Some(
        match challenges::start(conn, conversation_id, customer_id, &identity).await? {
            Started::Sent => {
                "To confirm it's yours, we've sent a 6-digit code there; reply with it here."
                    .to_owned()
            }
            Started::TooMany => {
                "We've sent several codes already; please try again in an hour.".to_owned()
            }
            Started::DayOver => {
                "No more codes can be sent there today; please try again tomorrow.".to_owned()
            }
        },
    ))
}

/// Records the owner's decision on an approval and tells the customer, in one transaction.
pub async fn decide(
    pool: &PgPool,
    key: quotes::ApprovalKey<'_>,
    decision: quotes::Decision,
    approver: &str,
) -> sqlx::Result<Result<(), quotes::DecisionRefused>> {
    let mut tx = pool.begin().await?;
    let conversation_id = match quotes::decide(&mut tx, key, decision, approver).await? {
        Ok(id) => id,
        Err(refused) => {
            tx.rollback().await?;
            return Ok(Err(refused));
        }
    };
    let settings = settings::load(&mut tx).await?;
    let mut lead = leads::lead_of_conversation(&mut tx, conversation_id).await?;
    let approved = decision == quotes::Decision::Approve;
    let reply =
        rules::approval_decided(&mut tx, &settings, &mut lead, approved, Utc::now()).await?;
    // `quotes::decide` locked the conversation.
    let taken_over = conversations::lock(&mut tx, conversation_id)
        .await?
        .is_some_and(|c| c.taken_over);
    if taken_over {
        // The operator talking with the customer tells them; the thread shows what the
        // assistant would have said.
        conversations::note_unsent(&mut tx, conversation_id, &reply).await?;
    } else if !settings.paused {
        outbox::reply(&mut tx, conversation_id, None, &lead, &reply).await?;
    }
    leads::save_lead(&mut tx, &lead).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

//! The conversation engine: answers a conversation's new messages, one conversation at a time
//! and each conversation's messages in the order they arrived.

pub mod llm;
pub mod rules;

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            memory: true,
            strict_address: true,
            region: Region::US,
            budget: Budget::default(),
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

/// Answers every stored but unanswered message of a conversation, in arrival order, in one
/// transaction. The conversation's row lock makes concurrent callers take turns, so a message is
/// answered once, after the ones before it. A message whose answer fails is rolled back alone
/// (a savepoint), retried later with backoff, and after [`MAX_ANSWER_ATTEMPTS`] set aside with
/// the owner told; the messages after it wait, to keep the order. Returns how many messages were
/// answered.
pub async fn process(agent: &Agent, pool: &PgPool, conversation_id: Uuid) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    // An operator who took the conversation over from the console answers it themselves.
    let mut taken_over = conversations::lock(&mut tx, conversation_id)
        .await?
        .is_some_and(|c| c.taken_over);
    let pending = inbox::pending(&mut tx, conversation_id).await?;
    if pending.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let settings = settings::load(&mut tx).await?;
    let mut lead: Option<leads::Lead> = None;
    let mut answered = 0;
    for waiting in &pending {
        // Paused, or taken over by an operator: the message is kept and marked read, and
        // nobody is answered automatically.
        if settings.paused || taken_over {
            inbox::processed(&mut tx, waiting, None).await?;
            continue;
        }
        let before = lead.clone();
        let mut step = sqlx::Connection::begin(&mut *tx).await?;
        let message = Incoming {
            id: waiting.message_id,
            text: &waiting.text,
            photos: waiting.photos,
        };
        // The messaging rules first: an opt-out, an opt-in or a request for a person is
        // handled here, and the agent answers only what is left.
        let result =
            match rules_first(&mut step, &settings, &mut lead, conversation_id, &message).await {
                Ok(Handled::No) => {
                    answer(
                        &mut step,
                        agent,
                        &settings,
                        &mut lead,
                        conversation_id,
                        message,
                    )
                    .await
                }
                Ok(Handled::Yes) => Ok(()),
                Ok(Handled::HandedOver) => {
                    taken_over = true;
                    Ok(())
                }
                Err(e) => Err(e),
            };
        match result {
            Ok(()) => {
                step.commit().await?;
                inbox::processed(&mut tx, waiting, None).await?;
                answered += 1;
            }
            Err(e) => {
                step.rollback().await?;
                lead = before;
                let attempts = waiting.attempts + 1;
                tracing::warn!(conversation = %conversation_id, attempts, error = %e, "answering a message failed");
                if attempts >= MAX_ANSWER_ATTEMPTS {
                    inbox::processed(&mut tx, waiting, Some(&e.to_string())).await?;
                    outbox::notify_owner(
                        &mut tx,
                        &format!(
                            "A customer message could not be answered automatically after {attempts} tries; please reply yourself (conversation {conversation_id})."
                        ),
                    )
                    .await?;
                    continue;
                }
                inbox::retry_later(&mut tx, waiting, attempts, &e.to_string()).await?;
                // The messages after it wait for it: answers keep the order of the questions.
                break;
            }
        }
    }
    if let Some(lead) = &lead {
        leads::save_lead(&mut tx, lead).await?;
    }
    tx.commit().await?;
    Ok(answered)
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
    lead: &mut Option<leads::Lead>,
    conversation_id: Uuid,
    message: &Incoming<'_>,
) -> sqlx::Result<Handled> {
    if lead.is_none() {
        *lead = Some(leads::lead_of_conversation(conn, conversation_id).await?);
    }
    let Some(lead) = lead.as_mut() else {
        return Err(sqlx::Error::RowNotFound);
    };
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

/// Answers one message: the lead is loaded on first use.
async fn answer(
    conn: &mut PgConnection,
    agent: &Agent,
    settings: &settings::Settings,
    lead: &mut Option<leads::Lead>,
    conversation_id: Uuid,
    message: Incoming<'_>,
) -> sqlx::Result<()> {
    if lead.is_none() {
        *lead = Some(leads::lead_of_conversation(conn, conversation_id).await?);
    }
    let Some(lead) = lead.as_mut() else {
        return Err(sqlx::Error::RowNotFound);
    };
    let now = Utc::now();
    // The first reply of a conversation says it comes from an automated assistant.
    let first_reply = !lead.state.greeted;
    let mut replies = match verification(conn, agent, lead, conversation_id, message.text).await? {
        Some(reply) => vec![reply],
        None => {
            let notice = learn(conn, agent, lead, conversation_id, message.text, now).await?;
            // The rule-based agent reads memory only to welcome a returning customer and to
            // offer their last address; most messages need neither.
            let wanted = agent.llm.is_some() || !lead.state.greeted || lead.address.is_none();
            let context = if wanted {
                read_context(conn, agent, lead).await?
            } else {
                None
            };
            let known = rules::Known {
                context: context.as_ref(),
                strict_address: agent.options.strict_address,
            };
            let from_llm = match &agent.llm {
                Some(model) => {
                    let turn = llm::Turn {
                        conversation_id,
                        message_id: message.id,
                        settings,
                        known,
                        now,
                    };
                    ask_llm(conn, model, &turn, lead, message.text).await?
                }
                None => None,
            };
            let by = match (&from_llm, &agent.llm) {
                (Some(_), _) => "model",
                (None, Some(_)) => "model_fell_back",
                (None, None) => "rules",
            };
            metrics::counter!("junkquote_answers_total", "agent" => by).increment(1);
            let mut replies = match from_llm {
                Some(replies) => replies,
                None => {
                    rules::respond(
                        conn,
                        settings,
                        lead,
                        message.text,
                        message.photos > 0,
                        now,
                        known,
                    )
                    .await?
                }
            };
            replies.extend(notice);
            replies
        }
    };
    if first_reply && let Some(first) = replies.first_mut() {
        first.insert_str(0, &format!("{} ", settings.messaging.intro()));
    }
    for reply in replies {
        outbox::reply(conn, conversation_id, Some(message.id), lead, &reply).await?;
    }
    Ok(())
}

/// The LLM agent's replies, with everything its tools did; `None` (and nothing done) when it
/// failed, so that the rule-based agent answers instead.
async fn ask_llm(
    conn: &mut PgConnection,
    model: &llm::Llm,
    turn: &llm::Turn<'_>,
    lead: &mut leads::Lead,
    text: &str,
) -> sqlx::Result<Option<Vec<String>>> {
    let before = lead.clone();
    let mut attempt = sqlx::Connection::begin(&mut *conn).await?;
    match llm::respond(model, &mut attempt, turn, lead, text).await {
        Ok(replies) => {
            attempt.commit().await?;
            lead.state.greeted = true;
            Ok(Some(replies))
        }
        Err(e) => {
            attempt.rollback().await?;
            *lead = before;
            metrics::counter!("junkquote_model_errors_total", "kind" => e.kind()).increment(1);
            tracing::warn!(conversation = %turn.conversation_id, error = %e, "the LLM agent failed; the rule-based agent answers");
            Ok(None)
        }
    }
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

//! The optional LLM agent: any OpenAI-compatible chat-completions endpoint with tool calling.
//!
//! The model writes the words; the code keeps the rules. Its tools are the rule-based agent's
//! own operations, bound to the lead, customer and conversation of this run: they take no ids,
//! so a call naming another customer is refused, not obeyed. Prices, approvals and bookings come
//! only from those operations, and a reply that states a dollar amount no tool produced is
//! refused. Any error, timeout or refusal sends the message to the rule-based agent instead.
//! The model is called with no connection held: each tool call is a short transaction of its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::rules::{self, Known};
use crate::domain::items::recognise;
use crate::domain::memory::MAX_NOTE;
use crate::domain::secret::Secret;
use crate::domain::stages::Stage;
use crate::store::leads::Lead;
use crate::store::settings::Settings;
use crate::store::{conversations, leads, memory};

/// Where the model is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The API's base URL, up to and including `/v1` (`https://api.openai.com/v1`).
    pub base_url: String,
    /// The model name.
    pub model: String,
    /// The bearer key, if the endpoint needs one.
    pub api_key: Option<Secret>,
    /// How long one completion may take.
    pub timeout: Duration,
}

/// A client for the configured endpoint.
#[derive(Debug, Clone)]
pub struct Llm {
    config: LlmConfig,
    http: reqwest::Client,
}

/// Why the model's answer was not used.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The endpoint could not be reached, or timed out.
    #[error("the model endpoint failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The endpoint answered with an error status.
    #[error("the model endpoint answered {0}")]
    Status(u16),
    /// The answer was not a chat completion, or a tool call could not be read.
    #[error("malformed answer from the model: {0}")]
    Malformed(String),
    /// The model asked for something its tools do not allow, or said something unfounded.
    #[error("refused: {0}")]
    Refused(String),
    /// The database failed while running a tool.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl LlmError {
    /// The kind of failure, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Http(e) if e.is_timeout() => "timeout",
            LlmError::Http(_) => "unreachable",
            LlmError::Status(_) => "status",
            LlmError::Malformed(_) => "malformed",
            LlmError::Refused(_) => "refused",
            LlmError::Database(_) => "database",
        }
    }
}

/// Tool rounds per customer message, at most.
const MAX_ROUNDS: usize = 4;
/// Earlier messages of this conversation shown to the model.
const THREAD_MESSAGES: usize = 20;

impl Llm {
    /// A client, or `None` when the configuration cannot make one.
    pub fn new(config: LlmConfig) -> Option<Llm> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .ok()?;
        Some(Llm { config, http })
    }

    async fn complete(&self, messages: &[Value]) -> Result<Reply, LlmError> {
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let mut request = self.http.post(url).json(&json!({
            "model": self.config.model,
            "messages": messages,
            "tools": tools(),
            "tool_choice": "auto",
            "temperature": 0.2,
        }));
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose());
        }
        let started = std::time::Instant::now();
        let response = request.send().await;
        metrics::histogram!("junkquote_model_request_duration_seconds").record(started.elapsed());
        let response = response?;
        if !response.status().is_success() {
            return Err(LlmError::Status(response.status().as_u16()));
        }
        let completion: Completion = response
            .json()
            .await
            .map_err(|e| LlmError::Malformed(e.to_string()))?;
        completion
            .choices
            .into_iter()
            .next()
            .map(|c| c.message)
            .ok_or_else(|| LlmError::Malformed("no choices".into()))
    }
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Reply,
}

#[derive(Deserialize)]
struct Reply {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCall>,
}

#[derive(Deserialize, serde::Serialize, Clone)]
struct ToolCall {
    id: String,
    function: FunctionCall,
}

#[derive(Deserialize, serde::Serialize, Clone)]
struct FunctionCall {
    name: String,
    arguments: String,
}

fn function(name: &str, description: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            },
        },
    })
}

fn tools() -> Value {
    json!([
        function(
            "price_items",
            "Price what the customer wants hauled, from their own words (items and quantities, stairs, curbside). Returns the estimate to tell them.",
            json!({"description": {"type": "string"}}),
            &["description"],
        ),
        function(
            "set_pickup_address",
            "Record the pickup address the customer gave or confirmed.",
            json!({"address": {"type": "string"}}),
            &["address"],
        ),
        function(
            "offer_windows",
            "Offer numbered pickup windows (only once there is an approved estimate and an address).",
            json!({}),
            &[],
        ),
        function(
            "book_window",
            "Book the pickup window the customer chose, by its number in the last offer, or a day and time in their words.",
            json!({"choice": {"type": "string"}}),
            &["choice"],
        ),
        function(
            "search_history",
            "Search everything this customer and we have written before (older conversations included) for words, e.g. \"gate code\".",
            json!({"query": {"type": "string"}}),
            &["query"],
        ),
        function(
            "save_note",
            "Remember a durable fact about the customer for next time (gate code, pets, stairs, parking, preferred times).",
            json!({"content": {"type": "string"}}),
            &["content"],
        ),
    ])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceItems {
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetAddress {
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArguments {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookWindow {
    choice: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchHistory {
    query: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveNote {
    content: String,
}

/// A tool call's arguments, with control characters taken out of every string: a model can
/// write a `\r` into an address, which would then end a line of the iCal feed or an SMS.
fn arguments<T: serde::de::DeserializeOwned>(call: &ToolCall) -> Result<T, LlmError> {
    let refused = |e: serde_json::Error| {
        // Unknown fields (an id of any kind) are how a call reaches outside this conversation.
        LlmError::Refused(format!("arguments of {}: {e}", call.function.name))
    };
    let mut value: Value = serde_json::from_str(&call.function.arguments).map_err(refused)?;
    clean_strings(&mut value);
    serde_json::from_value(value).map_err(refused)
}

/// Replaces each run of control characters (line breaks and tabs included) in the strings of
/// `value` with one space.
fn clean_strings(value: &mut Value) {
    match value {
        Value::String(s) if s.chars().any(char::is_control) => {
            let mut cleaned = String::with_capacity(s.len());
            let mut in_run = false;
            for c in s.chars() {
                if c.is_control() {
                    if !in_run {
                        cleaned.push(' ');
                    }
                    in_run = true;
                } else {
                    cleaned.push(c);
                    in_run = false;
                }
            }
            *s = cleaned;
        }
        Value::Array(items) => items.iter_mut().for_each(clean_strings),
        Value::Object(fields) => fields.values_mut().for_each(clean_strings),
        _ => {}
    }
}

/// One turn of the conversation with the tools bound to this lead.
pub struct Turn<'a> {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The customer's message being answered.
    pub message_id: Uuid,
    /// Company settings.
    pub settings: &'a Settings,
    /// What is known of the customer.
    pub known: Known<'a>,
    /// Now.
    pub now: DateTime<Utc>,
    /// The answering lease the turn runs under.
    pub holder: Uuid,
    /// How long a renewal of that lease lasts.
    pub lease: Duration,
}

/// What the model is shown, read before it is called (the connection is released then).
pub struct Prompt {
    /// The system prompt: the lead, the customer, the thread so far.
    system: String,
    /// Amounts the model may state: the current quote's, and later the ones its tools give.
    grounded: String,
}

/// Reads what the model needs for `lead`'s turn.
pub async fn prepare(
    conn: &mut PgConnection,
    turn: &Turn<'_>,
    lead: &Lead,
) -> sqlx::Result<Prompt> {
    let system = system_prompt(conn, turn, lead).await?;
    let mut grounded = String::new();
    if let Some(quote_id) = lead.state.quote_id {
        let total = crate::store::quotes::quote_total(conn, quote_id).await?;
        grounded.push_str(&total.to_string());
    }
    Ok(Prompt { system, grounded })
}

/// The model's replies to `text`. No connection is held while the model thinks: each tool call
/// runs in a short transaction of its own, on the lead as it is then (re-read, since the owner
/// or an operator may have changed it meanwhile), and only while `holder` still holds the
/// conversation's answering lease.
pub async fn respond(
    llm: &Llm,
    pool: &PgPool,
    turn: &Turn<'_>,
    prompt: Prompt,
    text: &str,
) -> Result<Vec<String>, LlmError> {
    let Prompt {
        system,
        mut grounded,
    } = prompt;
    let mut messages = vec![
        json!({"role": "system", "content": system}),
        json!({"role": "user", "content": text}),
    ];
    for _ in 0..MAX_ROUNDS {
        let reply = llm.complete(&messages).await?;
        if reply.tool_calls.is_empty() {
            let content = reply
                .content
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .ok_or_else(|| LlmError::Malformed("an empty reply".into()))?;
            check_amounts(&content, &grounded)?;
            return Ok(vec![content]);
        }
        messages.push(json!({
            "role": "assistant",
            "content": reply.content,
            "tool_calls": reply.tool_calls.iter().map(|c| json!({
                "id": c.id, "type": "function", "function": c.function,
            })).collect::<Vec<_>>(),
        }));
        for call in &reply.tool_calls {
            let result = tool_in_own_transaction(pool, turn, call).await?;
            grounded.push_str(&result);
            messages.push(json!({"role": "tool", "tool_call_id": call.id, "content": result}));
        }
    }
    Err(LlmError::Malformed(format!(
        "still calling tools after {MAX_ROUNDS} rounds"
    )))
}

/// Runs one tool call in a transaction of its own: the conversation locked, the lease checked
/// (and renewed), the lead re-read, the tool applied and the lead saved.
async fn tool_in_own_transaction(
    pool: &PgPool,
    turn: &Turn<'_>,
    call: &ToolCall,
) -> Result<String, LlmError> {
    let mut tx = pool.begin().await?;
    let taken_over = conversations::lock(&mut tx, turn.conversation_id)
        .await?
        .is_none_or(|c| c.taken_over);
    if taken_over {
        return Err(LlmError::Refused(
            "an operator took the conversation over".into(),
        ));
    }
    if !conversations::renew_lease(&mut tx, turn.conversation_id, turn.holder, turn.lease).await? {
        return Err(LlmError::Refused(
            "another worker has this conversation now".into(),
        ));
    }
    let mut lead = leads::lead_of_conversation(&mut tx, turn.conversation_id).await?;
    let result = run_tool(&mut tx, turn, &mut lead, call).await?;
    leads::save_lead(&mut tx, &lead).await?;
    tx.commit().await?;
    Ok(result)
}

async fn run_tool(
    conn: &mut PgConnection,
    turn: &Turn<'_>,
    lead: &mut Lead,
    call: &ToolCall,
) -> Result<String, LlmError> {
    let (settings, now, known) = (turn.settings, turn.now, turn.known);
    Ok(match call.function.name.as_str() {
        "price_items" => {
            let args: PriceItems = arguments(call)?;
            let found = recognise(&args.description);
            if found.is_empty() {
                "No items recognised; ask the customer what they want hauled.".to_owned()
            } else {
                rules::quote_reply(conn, settings, lead, found, now, known).await?
            }
        }
        "set_pickup_address" => {
            let args: SetAddress = arguments(call)?;
            let address = args.address.trim();
            if address.is_empty() || address.chars().count() > 300 {
                return Err(LlmError::Refused("an empty or overlong address".into()));
            }
            lead.address = Some(address.to_owned());
            lead.state.proposed_address = None;
            format!("Pickup address recorded: {address}")
        }
        "offer_windows" => {
            let _: NoArguments = arguments(call)?;
            match lead.state.quote_id {
                Some(quote_id) if crate::store::quotes::bookable(conn, quote_id).await? => {
                    if lead.address.is_none() {
                        "Ask for the pickup address first.".to_owned()
                    } else {
                        rules::offer_reply(conn, settings, lead, now, "Windows").await?
                    }
                }
                Some(_) => {
                    "The estimate waits for the owner's approval; windows come after.".to_owned()
                }
                None => "There is no estimate yet; price the items first.".to_owned(),
            }
        }
        "book_window" => {
            let args: BookWindow = arguments(call)?;
            if lead.stage != Stage::Scheduling {
                "No windows have been offered yet.".to_owned()
            } else {
                rules::schedule_reply(conn, settings, lead, &args.choice, now).await?
            }
        }
        "search_history" => {
            let args: SearchHistory = arguments(call)?;
            let query = args.query.trim();
            if query.is_empty() || query.chars().count() > 200 {
                return Err(LlmError::Refused("an empty or overlong search".into()));
            }
            match lead.customer_id {
                Some(customer_id) => {
                    let mut hits = memory::search(conn, customer_id, query, 6).await?;
                    // The message being answered is not history.
                    hits.retain(|h| h.message_id != turn.message_id);
                    if hits.is_empty() {
                        "Nothing found.".to_owned()
                    } else {
                        hits.iter()
                            .map(|h| {
                                format!("{} {}: {}", h.created_at.date_naive(), h.role, h.content)
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                }
                None => "Nothing found.".to_owned(),
            }
        }
        "save_note" => {
            let args: SaveNote = arguments(call)?;
            let content = args.content.trim();
            if content.is_empty() || content.chars().count() > MAX_NOTE {
                return Err(LlmError::Refused("an empty or overlong note".into()));
            }
            if let Some(customer_id) = lead.customer_id {
                let fact = crate::domain::memory::Fact {
                    key: "assistant",
                    content: content.to_owned(),
                    lifetime: None,
                };
                memory::remember_new(conn, customer_id, turn.conversation_id, &fact).await?;
            }
            "Noted.".to_owned()
        }
        other => return Err(LlmError::Refused(format!("unknown tool {other:?}"))),
    })
}

/// Every dollar amount in `reply` must be one the tools returned. Amounts are compared as
/// numbers of cents, not as text: a text search let `$15` pass on the strength of `$150`, and
/// would refuse `$1,250.00` for `$1,250`.
fn check_amounts(reply: &str, grounded: &str) -> Result<(), LlmError> {
    let known: Vec<i64> = dollar_amounts(grounded)
        .filter_map(|(_, cents)| cents)
        .collect();
    for (text, cents) in dollar_amounts(reply) {
        if !cents.is_some_and(|c| known.contains(&c)) {
            return Err(LlmError::Refused(format!(
                "the reply states {text}, which no tool produced"
            )));
        }
    }
    Ok(())
}

/// The dollar amounts written in `text` (`$1,250`, `$1250.00`, `$12.5`), each as written and as
/// cents; `None` when it cannot be read as an amount (too large, three decimals). A `$` with no
/// digit after it is not an amount; a full stop after the digits ends a sentence, not a number;
/// `$.50` is fifty cents.
fn dollar_amounts(text: &str) -> impl Iterator<Item = (&str, Option<i64>)> {
    text.match_indices('$').filter_map(|(at, _)| {
        let rest = &text[at + 1..];
        let whole_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ','))
            .unwrap_or(rest.len());
        let whole = rest[..whole_len].trim_end_matches(',');
        let after = &rest[whole.len()..];
        let fraction = after
            .strip_prefix('.')
            .map(|f| &f[..f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len())])
            .filter(|f| !f.is_empty());
        if whole.is_empty() && fraction.is_none() {
            return None;
        }
        let len = 1 + whole.len() + fraction.map_or(0, |f| f.len() + 1);
        let dollars = if whole.is_empty() { "0" } else { whole };
        Some((
            &text[at..at + len],
            cents_of(dollars, fraction.unwrap_or("")),
        ))
    })
}

/// `whole` dollars (digits and thousands commas) and `fraction` (at most two digits) in cents.
fn cents_of(whole: &str, fraction: &str) -> Option<i64> {
    if fraction.len() > 2 {
        return None;
    }
    let dollars: i64 = whole.replace(',', "").parse().ok()?;
    let cents: i64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().ok()? * 10,
        _ => fraction.parse().ok()?,
    };
    dollars.checked_mul(100)?.checked_add(cents)
}

async fn system_prompt(
    conn: &mut PgConnection,
    turn: &Turn<'_>,
    lead: &Lead,
) -> sqlx::Result<String> {
    let mut thread = conversations::thread(conn, turn.conversation_id).await?;
    // The newest message is the one being answered; it is sent as the user turn.
    thread.pop();
    let start = thread.len().saturating_sub(THREAD_MESSAGES);
    let transcript: Vec<String> = thread[start..]
        .iter()
        .map(|m| format!("{}: {}", m.role, m.content))
        .collect();
    let customer = match turn.known.context {
        Some(context) => serde_json::to_string(&json!({
            "name": context.customer.name,
            "addresses": context.addresses,
            "notes": context.notes.iter().map(|n| &n.content).collect::<Vec<_>>(),
            "earlier_messages": context.messages.iter()
                .filter(|m| m.conversation_id != turn.conversation_id)
                .map(|m| format!("{}: {}", m.role, m.content))
                .collect::<Vec<_>>(),
            "open_jobs": context.jobs,
        }))
        .unwrap_or_default(),
        None => "(memory is off)".to_owned(),
    };
    Ok(format!(
        "You are the text-message assistant of a junk-removal company. Be brief, friendly and \
         plain; one short message per reply. Use the tools to price items, record the pickup \
         address, offer windows and book; never state a price, fee or time a tool did not give \
         you; never promise anything the tools did not do. Prices are estimates pending onsite \
         confirmation. If the customer's request is unclear, ask one question.\n\n\
         This lead: stage {stage}; address {address}; quote {quote}; windows offered {offers}.\n\
         What we know of this customer: {customer}\n\
         This conversation so far:\n{transcript}",
        stage = lead.stage,
        address = lead.address.as_deref().unwrap_or("not given"),
        quote = if lead.state.quote_id.is_some() {
            "made"
        } else {
            "none yet"
        },
        offers = lead.state.offers.len(),
        transcript = if transcript.is_empty() {
            "(this is the first message)".to_owned()
        } else {
            transcript.join("\n")
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_tool_arguments_become_one_space() {
        let mut value = json!({"address": "12 Oak St\r\nEND:VEVENT\u{0}", "n": [1, "a\tb"]});
        clean_strings(&mut value);
        assert_eq!(
            value,
            json!({"address": "12 Oak St END:VEVENT ", "n": [1, "a b"]})
        );
    }

    #[test]
    fn amounts_must_come_from_the_tools() {
        assert!(check_amounts("Your estimate is $377.", "estimate is $377 (3/8 load)").is_ok());
        assert!(check_amounts("That'll be $99!", "estimate is $377").is_err());
        assert!(check_amounts("no money here", "").is_ok());
    }

    #[test]
    fn a_prefix_of_a_grounded_amount_is_not_grounded() {
        assert!(check_amounts("Only $15 today", "estimate is $150").is_err());
        assert!(check_amounts("It's $1.", "estimate is $1,250 (full load)").is_err());
        assert!(check_amounts("It's $1,25.", "estimate is $1,250").is_err());
        assert!(check_amounts("That's $12.5", "fee $12.50").is_ok());
        assert!(check_amounts("That's $12.5", "fee $12.05").is_err());
    }

    #[test]
    fn amounts_are_compared_as_numbers() {
        assert!(check_amounts("Total: $1,250.00.", "estimate is $1,250").is_ok());
        assert!(check_amounts("Total: $1250", "estimate is $1,250").is_ok());
        assert!(check_amounts("Total: $1,250", "estimate is $1,250.00").is_ok());
        assert!(check_amounts("Total: $1,250.01", "estimate is $1,250").is_err());
        assert!(check_amounts("$150 and $819, so $969.", "$150 + $819 = $969").is_ok());
        assert!(check_amounts("A lone $ sign", "").is_ok());
        assert!(check_amounts("just $.50", "fee $0.50").is_ok());
        assert!(check_amounts("just $.50", "fee $50").is_err());
        assert!(check_amounts("$99999999999999999999", "$99999999999999999999").is_err());
    }
}

//! The rule-based agent: deterministic, no network. It follows the lead through its stages:
//! what to haul → a price → the owner's approval when needed → the address → pickup windows →
//! a booking, and answers politely whatever it does not understand.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;

use crate::domain::items::{Recognition, recognise};
use crate::domain::money::Cents;
use crate::domain::pricing::{PriceQuote, price};
use crate::domain::schedule::{self, Choice, Window};
use crate::domain::stages::Stage;
use crate::domain::token::{hash_token, new_token};
use crate::store::context::Context;
use crate::store::jobs::{self, Booked};
use crate::store::leads::Lead;
use crate::store::settings::Settings;
use crate::store::{audit, quotes};
use crate::store::{customers, memory};

/// How long the owner's approval link works.
pub const APPROVAL_VALID_HOURS: i64 = 48;

/// The least time between two approval texts to the owner about one lead: a newer estimate
/// within it replaces the one waiting instead of texting again.
pub const APPROVAL_NOTICE_QUIET_MINUTES: i64 = 10;

/// The most item lines one lead's estimate holds; past it the customer is told, politely,
/// that the crew goes over the rest on site.
pub const MAX_ITEM_LINES: usize = 100;

const GREETING: &str = "Thanks for reaching out! Tell us what you'd like hauled away (for example: \
                        \"a couch, a fridge and 5 bags of trash\") and we'll text you a price right away.";

/// What the agent knows of the customer beyond this lead.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// Their context, when memory is read.
    pub context: Option<&'a Context>,
    /// Ask "Same address as last time?" before reusing an address (else reuse it and say so).
    pub strict_address: bool,
}

impl Known<'_> {
    fn last_address(&self) -> Option<&str> {
        self.context.and_then(Context::last_address)
    }
}

/// The replies to one customer message; updates `lead` (saved by the caller).
pub async fn respond(
    conn: &mut PgConnection,
    settings: &Settings,
    lead: &mut Lead,
    text: &str,
    photo: bool,
    now: DateTime<Utc>,
    known: Known<'_>,
) -> sqlx::Result<Vec<String>> {
    let welcome = match known.context.and_then(Context::first_name) {
        Some(name) if !lead.state.greeted => format!("Welcome back, {name}! "),
        _ => String::new(),
    };
    lead.state.greeted = true;
    let mut replies = respond_to(conn, settings, lead, text, photo, now, known).await?;
    if let Some(first) = replies.first_mut() {
        first.insert_str(0, &welcome);
    }
    Ok(replies)
}

async fn respond_to(
    conn: &mut PgConnection,
    settings: &Settings,
    lead: &mut Lead,
    text: &str,
    photo: bool,
    now: DateTime<Utc>,
    known: Known<'_>,
) -> sqlx::Result<Vec<String>> {
    let found = recognise(text);
    // A weight or a narrow window adds to a job already described; alone it is not one.
    let found = if found.items.is_empty() && lead.state.recognition.items.is_empty() {
        Recognition::default()
    } else {
        found
    };
    if photo && found.is_empty() && text.trim().is_empty() {
        // The photo is on the lead for the owner; pricing needs words.
        return Ok(vec![
            "Thanks for the photo! The owner will take a look. To get a price right away, tell us \
             what's in it (for example: \"a couch and 5 bags of trash\")."
                .to_owned(),
        ]);
    }
    let reply = match lead.stage {
        Stage::Scheduling => schedule_reply(conn, settings, lead, text, now).await?,
        Stage::Booked | Stage::Reminding => booked_reply(conn, settings, lead).await?,
        // More items while the owner looks: priced again, and the owner asked about the new
        // estimate (the earlier request stops working).
        Stage::AwaitingOwner if !found.is_empty() => {
            quote_reply(conn, settings, lead, found, now, known).await?
        }
        Stage::AwaitingOwner => {
            if let Some(answer) = confirm_address(lead, text)
                && found.is_empty()
            {
                match answer {
                    Confirmed::Yes => format!(
                        "Great, {}. As soon as the owner confirms your estimate we'll text you pickup windows.",
                        lead.address.as_deref().unwrap_or_default()
                    ),
                    Confirmed::No => "No problem: what's the pickup address?".to_owned(),
                }
            } else if lead.address.is_none() && looks_like_address(text) && found.is_empty() {
                lead.address = Some(text.trim().to_owned());
                format!(
                    "Got it: {}. As soon as the owner confirms your estimate we'll text you pickup windows.",
                    text.trim()
                )
            } else {
                "Your estimate is with the owner for a quick check; we'll text you as soon as it's confirmed."
                    .to_owned()
            }
        }
        // New, still describing the job, or quoted and waiting for the address (a lead the
        // original left done or awaiting photos starts over the same way).
        Stage::AwaitingPhotos | Stage::Clarifying | Stage::Quoting | Stage::Done => {
            if !found.is_empty() {
                quote_reply(conn, settings, lead, found, now, known).await?
            } else if lead.state.quote_id.is_some()
                && let Some(answer) = confirm_address(lead, text)
            {
                match answer {
                    Confirmed::Yes => offer_reply(conn, settings, lead, now, "Great").await?,
                    Confirmed::No => "No problem: what's the pickup address?".to_owned(),
                }
            } else if lead.state.quote_id.is_some() && lead.state.proposed_address.is_some() {
                format!(
                    "Is the pickup at {} again? Reply yes, or send the new address.",
                    lead.state.proposed_address.as_deref().unwrap_or_default()
                )
            } else if lead.state.quote_id.is_some() && looks_like_address(text) {
                lead.address = Some(text.trim().to_owned());
                offer_reply(conn, settings, lead, now, "Great").await?
            } else if lead.state.quote_id.is_some() {
                "Could you send the pickup address (street, city and ZIP)?".to_owned()
            } else {
                GREETING.to_owned()
            }
        }
    };
    Ok(vec![reply])
}

/// The customer's answer to "Same address as last time?".
enum Confirmed {
    /// That address (now the lead's), or a new one they wrote instead.
    Yes,
    /// Not that address, and no new one yet.
    No,
}

/// Reads an answer to an address question, when one is open: "yes" takes the proposed
/// address, a new address replaces it, "no" drops it.
fn confirm_address(lead: &mut Lead, text: &str) -> Option<Confirmed> {
    let proposed = lead.state.proposed_address.clone()?;
    let lower = text.trim().to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |list: &[&str]| words.iter().any(|w| list.contains(w));
    if looks_like_address(text) {
        lead.address = Some(text.trim().to_owned());
    } else if has(&["no", "nope", "different", "new", "moved", "not"]) {
        lead.state.proposed_address = None;
        return Some(Confirmed::No);
    } else if has(&[
        "yes", "yep", "yeah", "yup", "y", "same", "correct", "right", "sure", "ok", "okay",
    ]) {
        lead.address = Some(proposed);
    } else {
        return None;
    }
    lead.state.proposed_address = None;
    Some(Confirmed::Yes)
}

/// The question for the pickup address: the one used last time when there is one (or, when
/// not asked first, that address taken and `None` returned).
pub fn ask_address(lead: &mut Lead, known: Known<'_>) -> Option<String> {
    if lead.address.is_some() {
        return None;
    }
    match known.last_address() {
        Some(last) if known.strict_address => {
            lead.state.proposed_address = Some(last.to_owned());
            Some(format!("Same address as last time — {last}?"))
        }
        Some(last) => {
            lead.address = Some(last.to_owned());
            None
        }
        None => Some("What's the pickup address?".to_owned()),
    }
}

/// Prices what the customer has described so far and asks for what is missing.
pub(crate) async fn quote_reply(
    conn: &mut PgConnection,
    settings: &Settings,
    lead: &mut Lead,
    found: Recognition,
    now: DateTime<Utc>,
    known: Known<'_>,
) -> sqlx::Result<String> {
    if lead.state.recognition.items.len() >= MAX_ITEM_LINES && !found.items.is_empty() {
        // Nothing re-priced, no new quote, nothing for the owner.
        return Ok(format!(
            "That's quite a list! Your estimate already covers {MAX_ITEM_LINES} items, as many \
             as we price by message; the crew will go over anything else with you on site."
        ));
    }
    let noted = noted(&found);
    lead.state.recognition.merge(found);
    let capped = lead.state.recognition.items.len() > MAX_ITEM_LINES;
    lead.state.recognition.items.truncate(MAX_ITEM_LINES);
    let recognition = &lead.state.recognition;
    let quote = price(&settings.pricebook, &recognition.job_spec());
    let quote_id = quotes::insert_quote(conn, lead.id, recognition, &quote).await?;
    lead.state.quote_id = Some(quote_id);
    lead.state.quoted_same_day = false;
    lead.state.offers.clear();
    let mut summary = format!(
        "For {} your estimate is {} ({}).{noted}",
        describe_items(recognition),
        quote.total,
        breakdown(&quote)
    );
    if capped {
        summary.push_str(&format!(
            " We priced the first {MAX_ITEM_LINES} items; the crew will go over the rest with you on site."
        ));
    }
    audit::audit(
        conn,
        Some(lead.id),
        "agent",
        "quote_created",
        serde_json::json!({"quote_id": quote_id, "total_cents": quote.total.get()}),
    )
    .await?;
    if quote.needs_approval {
        let token = new_token();
        let notice = format!(
            "Approval needed: {} for {} ({}). Approve or deny within {APPROVAL_VALID_HOURS} h: \
             POST /api/approvals/{token} with {{\"decision\": \"approve\"}} or {{\"decision\": \"deny\"}}.",
            quote.total,
            describe_items(&lead.state.recognition),
            quote.approval_reasons.join("; ")
        );
        let approval_id = quotes::request_approval(
            conn,
            lead.id,
            quote_id,
            &hash_token(&token),
            now + Duration::hours(APPROVAL_VALID_HOURS),
            &notice,
            Duration::minutes(APPROVAL_NOTICE_QUIET_MINUTES),
        )
        .await?;
        audit::audit(
            conn,
            Some(lead.id),
            "agent",
            "approval_requested",
            serde_json::json!({"approval_id": approval_id, "reasons": quote.approval_reasons}),
        )
        .await?;
        lead.stage = Stage::AwaitingOwner;
        let ask = match ask_address(lead, known) {
            Some(question) => format!(" Meanwhile: {}", lower_first(&question)),
            None => String::new(),
        };
        return Ok(format!(
            "Thanks! {summary} The owner will confirm this price shortly.{ask} {}",
            quote.disclaimer
        ));
    }
    let question = ask_address(lead, known);
    let Some(question) = question else {
        return offer_reply(conn, settings, lead, now, &format!("Thanks! {summary}")).await;
    };
    lead.stage = Stage::Quoting;
    Ok(format!("Thanks! {summary} {} {question}", quote.disclaimer))
}

/// What the customer is told about what the owner will confirm: things the catalogue does not
/// know named back to them, and a described volume called a first estimate.
fn noted(found: &Recognition) -> String {
    let mut out = String::new();
    let unknown: Vec<String> = found.unknown().iter().map(|n| format!("the {n}")).collect();
    if !unknown.is_empty() {
        out.push_str(&format!(
            " I've noted {}; the owner will confirm {} price.",
            and_list(&unknown),
            if unknown.len() == 1 { "its" } else { "their" }
        ));
    }
    if found.has_described_volume() {
        out.push_str(" That's a first estimate from your description; the owner will confirm it.");
    }
    out
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Offers numbered pickup windows.
pub(crate) async fn offer_reply(
    conn: &mut PgConnection,
    settings: &Settings,
    lead: &mut Lead,
    now: DateTime<Utc>,
    opening: &str,
) -> sqlx::Result<String> {
    let hours = &settings.hours;
    let length = job_length(lead);
    let horizon = now + Duration::days(i64::from(hours.days_ahead) + 1);
    let busy = jobs::busy(conn, now, horizon).await?;
    let offers = schedule::offer(now, length, &busy, hours);
    lead.state.offers = offers.clone();
    if offers.is_empty() {
        lead.stage = Stage::Scheduling;
        return Ok(format!(
            "{opening}. We're fully booked for the next {} days; reply with a later day and time and we'll check it for you.",
            hours.days_ahead
        ));
    }
    lead.stage = Stage::Scheduling;
    let numbers: Vec<String> = (1..=offers.len()).map(|n| n.to_string()).collect();
    let list: Vec<String> = offers
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{}) {}", i + 1, w.describe(hours.time_zone)))
        .collect();
    let address = lead.address.as_deref().unwrap_or_default();
    Ok(format!(
        "{opening}: {address}. Pickup windows:\n{}\nReply {}, or name a day and time that suits you.",
        list.join("\n"),
        or_list(&numbers)
    ))
}

/// Books the window the customer picked, or explains what to do.
pub(crate) async fn schedule_reply(
    conn: &mut PgConnection,
    settings: &Settings,
    lead: &mut Lead,
    text: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<String> {
    let hours = &settings.hours;
    let choice = schedule::read_choice(text, lead.state.offers.len(), now, hours);
    if choice.is_none() {
        let found = recognise(text);
        if !found.is_empty() {
            // More to haul: price again, then offer windows again.
            return quote_reply(conn, settings, lead, found, now, Known::default()).await;
        }
    }
    let window = match choice {
        Some(Choice::Offer(n)) => lead.state.offers.get(n - 1).copied(),
        Some(Choice::At(start)) => Some(Window {
            start,
            end: start + job_length(lead),
        }),
        None => None,
    };
    // An offer made yesterday, or a time of the customer's own, must still be bookable now.
    if let Some(window) = window
        && !within_hours(&window, settings, now)
    {
        return offer_reply(
            conn,
            settings,
            lead,
            now,
            "That time is outside our hours or too soon",
        )
        .await;
    }
    let (Some(window), Some(quote_id)) = (window, lead.state.quote_id) else {
        return offer_reply(
            conn,
            settings,
            lead,
            now,
            "Sorry, I didn't catch which window",
        )
        .await;
    };
    // A pickup the customer asks for today costs the same-day fee (the windows we offer carry
    // none: no surprise on "1"); the quote follows the day chosen.
    let tz = hours.time_zone;
    let same_day = matches!(choice, Some(Choice::At(_)))
        && window.start.with_timezone(&tz).date_naive() == now.with_timezone(&tz).date_naive();
    let mut quote_id = quote_id;
    if same_day != lead.state.quoted_same_day {
        let mut spec = lead.state.recognition.job_spec();
        spec.same_day = same_day;
        let quote = price(&settings.pricebook, &spec);
        if quote.needs_approval && same_day {
            return Ok(format!(
                "A same-day pickup adds {}, which takes your estimate to {} and needs the owner's OK. \
                 Reply with a number for a later day to book now.",
                settings.pricebook.same_day_fee, quote.total
            ));
        }
        quote_id = quotes::insert_quote(conn, lead.id, &lead.state.recognition, &quote).await?;
        lead.state.quote_id = Some(quote_id);
        lead.state.quoted_same_day = same_day;
    }
    match jobs::book(conn, lead, quote_id, window, hours.crews).await? {
        Booked::Job(job_id) => {
            if let Some(customer_id) = lead.customer_id {
                if let Some(address) = &lead.address {
                    customers::remember_address(conn, customer_id, address).await?;
                }
                memory::to_job(conn, customer_id, job_id).await?;
            }
            lead.state.job_id = Some(job_id);
            lead.state.offers.clear();
            lead.stage = Stage::Booked;
            let total = quotes::quote_total(conn, quote_id).await?;
            Ok(format!(
                "You're booked! {} at {}. Estimated total {total}{}. We'll text you a reminder before we arrive.",
                window.describe(hours.time_zone),
                lead.address.as_deref().unwrap_or("your address"),
                if same_day {
                    " (with the same-day fee)"
                } else {
                    ""
                }
            ))
        }
        Booked::Taken => {
            offer_reply(
                conn,
                settings,
                lead,
                now,
                "Sorry, that window was just taken",
            )
            .await
        }
        Booked::NotApproved => {
            lead.stage = Stage::AwaitingOwner;
            Ok("Your estimate still needs the owner's OK; we'll text you pickup windows as soon as it's confirmed.".to_owned())
        }
    }
}

/// Tells the customer what the owner decided about their quote, and moves the lead on.
pub async fn approval_decided(
    conn: &mut PgConnection,
    settings: &Settings,
    lead: &mut Lead,
    approved: bool,
    now: DateTime<Utc>,
) -> sqlx::Result<String> {
    if !approved {
        lead.stage = Stage::Done;
        return Ok("Sorry, we can't confirm that estimate by text. The office will call you to work out the details.".to_owned());
    }
    let total = match lead.state.quote_id {
        Some(quote_id) => quotes::quote_total(conn, quote_id).await?,
        None => Cents::ZERO,
    };
    let opening = format!("Good news: the owner confirmed your estimate of {total}");
    if lead.address.is_some() {
        return offer_reply(conn, settings, lead, now, &opening).await;
    }
    lead.stage = Stage::Quoting;
    Ok(match &lead.state.proposed_address {
        Some(last) => format!("{opening}. Same address as last time — {last}?"),
        None => format!("{opening}. What's the pickup address?"),
    })
}

async fn booked_reply(
    conn: &mut PgConnection,
    settings: &Settings,
    lead: &Lead,
) -> sqlx::Result<String> {
    let window = match lead.state.job_id {
        Some(job) => jobs::window(conn, job).await?,
        None => None,
    };
    Ok(match window {
        Some(window) => format!(
            "You're booked for {}. If anything changes, reply here and the office will get back to you.",
            window.describe(settings.hours.time_zone)
        ),
        None => "Thanks! The office will get back to you shortly.".to_owned(),
    })
}

fn job_length(lead: &Lead) -> Duration {
    let r = &lead.state.recognition;
    let slow = r.items.iter().any(|i| i.heavy) || r.stairs_flights > 0 || r.carry_feet > 50;
    schedule::duration(r.job_spec().volume, slow)
}

fn within_hours(window: &Window, settings: &Settings, now: DateTime<Utc>) -> bool {
    let hours = &settings.hours;
    let start = window.start.with_timezone(&hours.time_zone);
    let end = window.end.with_timezone(&hours.time_zone);
    window.start >= now + Duration::minutes(i64::from(hours.lead_minutes))
        && start.date_naive() == end.date_naive()
        && start.time() >= hours.open
        && end.time() <= hours.close
}

/// "a couch, a refrigerator and 5 bags of trash": the same item mentioned twice counted once,
/// and a long list cut short so that a reply fits in a text message.
fn describe_items(r: &Recognition) -> String {
    const SHOWN: usize = 8;
    let mut merged: Vec<(String, u32)> = Vec::new();
    for item in &r.items {
        match merged.iter_mut().find(|(d, _)| *d == item.description) {
            Some((_, quantity)) => *quantity += item.quantity,
            None => merged.push((item.description.clone(), item.quantity)),
        }
    }
    let mut parts: Vec<String> = merged
        .iter()
        .take(SHOWN)
        .map(|(description, quantity)| {
            if *quantity == 1 {
                let article = if description.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                format!("{article} {description}")
            } else {
                format!("{quantity} {}", plural(description))
            }
        })
        .collect();
    if merged.len() > SHOWN {
        parts.push(format!("{} more kinds of items", merged.len() - SHOWN));
    }
    and_list(&parts)
}

fn plural(description: &str) -> String {
    // "bag of trash" → "bags of trash"; "box" → "boxes"; "mattress (king)" → "mattresses (king)"
    let (head, tail) = match description.find([' ', '(']) {
        Some(i) if description[i..].starts_with(" of") || description[i..].starts_with(" (") => {
            description.split_at(i)
        }
        _ => (description, ""),
    };
    let head = if head.ends_with(['s', 'x']) || head.ends_with("ch") {
        format!("{head}es")
    } else {
        format!("{head}s")
    };
    format!("{head}{tail}")
}

fn and_list(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn or_list(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The main lines of a quote, short enough for a text message.
fn breakdown(quote: &PriceQuote) -> String {
    quote
        .lines
        .iter()
        .take(6)
        .map(|l| format!("{} {}", l.label, l.amount))
        .chain((quote.lines.len() > 6).then(|| "more".to_owned()))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Whether a message reads like a street address: a house number followed by a street name
/// with a street word ("St", "Ave", …), or a ZIP code; never a time ("5 pm tomorrow").
pub(crate) fn looks_like_address(text: &str) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let timey = words.iter().any(|w| {
        matches!(
            *w,
            "am" | "pm" | "today" | "tomorrow" | "tonight" | "morning" | "afternoon" | "evening"
        )
    });
    let house_number = words
        .windows(2)
        .any(|w| w[0].chars().all(|c| c.is_ascii_digit()) && w[1].chars().all(char::is_alphabetic));
    let street = words.iter().any(|w| STREET_WORDS.contains(w));
    let zip = words
        .iter()
        .any(|w| w.len() == 5 && w.chars().all(|c| c.is_ascii_digit()));
    !timey && ((house_number && street) || zip)
}

const STREET_WORDS: &[&str] = &[
    "st",
    "street",
    "ave",
    "avenue",
    "rd",
    "road",
    "dr",
    "drive",
    "ln",
    "lane",
    "blvd",
    "boulevard",
    "ct",
    "court",
    "way",
    "pl",
    "place",
    "hwy",
    "highway",
    "pkwy",
    "parkway",
    "cir",
    "circle",
    "ter",
    "terrace",
    "trl",
    "trail",
    "apt",
    "suite",
    "unit",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_read_naturally() {
        let r = recognise("a couch, a fridge and 5 bags of trash");
        assert_eq!(
            describe_items(&r),
            "a couch, a refrigerator and 5 bags of trash"
        );
        assert_eq!(
            describe_items(&recognise("2 boxes and an armchair")),
            "2 boxes and an armchair"
        );
    }

    #[test]
    fn unknown_things_and_described_volumes_are_told_to_the_customer() {
        let r = recognise("a couch, a jet ski and an old hovercraft");
        assert_eq!(
            noted(&r),
            " I've noted the jet ski and the hovercraft; the owner will confirm their price."
        );
        assert!(noted(&recognise("half a trailer of junk")).contains("first estimate"));
        assert_eq!(noted(&recognise("a couch")), "");
    }

    #[test]
    fn addresses_are_told_from_chatter() {
        assert!(looks_like_address("123 Main St, Canton GA 30114"));
        assert!(looks_like_address("45 Oak Avenue Marietta"));
        assert!(!looks_like_address("1"));
        assert!(!looks_like_address("thanks!"));
        assert!(!looks_like_address("Can you come at 5 pm tomorrow"));
        assert!(!looks_like_address("yes 10 am works"));
    }
}

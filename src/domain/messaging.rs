//! The messaging rules (DESIGN §4) as pure decisions: what a customer's message asks of the
//! rules (opting out or in, help, a person), when JunkQuote may write first (quiet hours), and
//! how a Messenger message may go (Meta's 24-hour window). Storage applies them to every send.

use chrono::{DateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// What a customer's message asks of the messaging rules, before the agent reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// A carrier opt-out keyword (the whole message): Twilio confirms it and blocks later
    /// sends itself, so JunkQuote records it and says nothing.
    StopKeyword,
    /// A carrier opt-in keyword: the number may be written to again (Twilio confirms it). Only
    /// an opt-in when the number is opted out; otherwise ("yes") it is an answer for the agent.
    StartKeyword,
    /// HELP or INFO: Twilio answers it; JunkQuote stays silent.
    HelpKeyword,
    /// Consent revoked in other words ("stop texting me"): recorded, with one plain
    /// confirmation (the carrier knows nothing of it).
    Revoked,
    /// The customer asks for a person: the conversation goes to the operator.
    Person,
    /// Anything else: the agent answers.
    Other,
}

/// The carriers' opt-out keywords (Twilio's defaults).
pub const STOP_KEYWORDS: [&str; 8] = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
/// The carriers' opt-in keywords.
pub const START_KEYWORDS: [&str; 3] = ["START", "YES", "UNSTOP"];
/// The carriers' help keywords.
pub const HELP_KEYWORDS: [&str; 2] = ["HELP", "INFO"];

/// What `text` asks of the messaging rules. Keywords are the whole message (any case,
/// surrounding whitespace ignored), as carriers match them; revocations and requests for a
/// person are recognised in English and Spanish phrasing.
pub fn classify(text: &str) -> Ask {
    let keyword = text.trim().to_uppercase();
    if STOP_KEYWORDS.contains(&keyword.as_str()) {
        return Ask::StopKeyword;
    }
    if START_KEYWORDS.contains(&keyword.as_str()) {
        return Ask::StartKeyword;
    }
    if HELP_KEYWORDS.contains(&keyword.as_str()) {
        return Ask::HelpKeyword;
    }
    let words = words(text);
    if revokes(&words) {
        Ask::Revoked
    } else if asks_for_person(&words) {
        Ask::Person
    } else {
        Ask::Other
    }
}

/// Whether `text` asks for a person (also when it revokes consent: "don't text me, call me").
pub fn wants_person(text: &str) -> bool {
    asks_for_person(&words(text))
}

/// Lower-case words without accents or punctuation ("Don't" → "dont", "más" → "mas").
fn words(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'á' | 'à' | 'ä' | 'â' => 'a',
            'é' | 'è' | 'ë' | 'ê' => 'e',
            'í' | 'ì' | 'ï' | 'î' => 'i',
            'ó' | 'ò' | 'ö' | 'ô' => 'o',
            'ú' | 'ù' | 'ü' | 'û' => 'u',
            'ñ' => 'n',
            other => other,
        };
        if c.is_alphanumeric() {
            cleaned.push(c);
        } else if c != '\'' && c != '’' {
            cleaned.push(' ');
        }
    }
    cleaned.split_whitespace().map(str::to_owned).collect()
}

fn is_any(word: Option<&String>, set: &[&str]) -> bool {
    word.is_some_and(|w| set.contains(&w.as_str()))
}

/// Verbs of writing to someone: what a revocation asks to stop.
const MESSAGING: &[&str] = &[
    "text",
    "texts",
    "texting",
    "txt",
    "txting",
    "message",
    "messages",
    "messaging",
    "msg",
    "msgs",
    "contact",
    "contacting",
    "email",
    "emailing",
    "sending",
    "spamming",
    "bothering",
    "writing",
    "calling",
];

/// Words that may follow "don't text me" when it still means "ever".
const EVER: &[&str] = &[
    "anymore", "again", "ever", "please", "pls", "plz", "thanks", "thank", "stop", "any", "no",
    "more",
];

/// Words that add nothing to a one-word message ("stop please", "just stop!").
const FILLER: &[&str] = &[
    "please", "pls", "plz", "now", "thanks", "thank", "you", "it", "just", "ok", "okay", "all",
];

fn revokes(w: &[String]) -> bool {
    if w.is_empty() {
        return false;
    }
    // "unsubscribe me please", "opt me out", "desuscribirme", "darme de baja".
    if w.iter().any(|x| {
        matches!(
            x.as_str(),
            "unsubscribe" | "unsub" | "optout" | "desuscribir" | "desuscribirme" | "desuscribanme"
        )
    }) {
        return true;
    }
    // "stop!", "stop please", "quit it".
    let content: Vec<&String> = w.iter().filter(|x| !FILLER.contains(&x.as_str())).collect();
    if !content.is_empty()
        && content
            .iter()
            .all(|x| matches!(x.as_str(), "stop" | "stopall" | "quit"))
    {
        return true;
    }
    for i in 0..w.len() {
        let next = w.get(i + 1);
        let after = w.get(i + 2);
        match w[i].as_str() {
            // "stop texting me", "stop sending me messages", "please quit messaging".
            "stop" | "quit" | "cease"
                if is_any(next, MESSAGING)
                    || (is_any(next, &["sending", "send"])
                        && is_any(after, &["me", "us", "texts", "messages"])) =>
            {
                return true;
            }
            // "don't text me anymore", "do not contact me", "never message me again".
            "dont" | "never" | "not" => {
                let (verb, rest) = if is_any(next, &["me", "us"]) {
                    (after, i + 3)
                } else {
                    (next, i + 2)
                };
                if is_any(verb, MESSAGING) && !is_any(verb, &["calling", "writing"]) {
                    let rest = if is_any(w.get(rest), &["me", "us"]) {
                        rest + 1
                    } else {
                        rest
                    };
                    if w.get(rest).is_none() || is_any(w.get(rest), EVER) {
                        return true;
                    }
                }
            }
            // "no more texts", "no más mensajes".
            "no" if is_any(next, &["more", "mas"])
                && is_any(
                    after,
                    &["texts", "text", "messages", "msgs", "mensajes", "textos"],
                ) =>
            {
                return true;
            }
            // "no me escriban", "no me manden mensajes", "no me envien mas mensajes".
            "no" if is_any(next, &["me", "nos"])
                && is_any(
                    after,
                    &[
                        "escriban",
                        "escribas",
                        "escriba",
                        "manden",
                        "mandes",
                        "envien",
                        "envies",
                        "contacten",
                        "textees",
                        "texteen",
                    ],
                ) =>
            {
                return true;
            }
            // "dejen de escribirme", "deja de mandarme mensajes".
            "deja" | "dejen" | "dejar" | "deje"
                if next.is_some_and(|x| x == "de")
                    && after.is_some_and(|x| {
                        x.starts_with("escrib")
                            || x.starts_with("mand")
                            || x.starts_with("envi")
                            || x.starts_with("text")
                            || x.starts_with("contact")
                    }) =>
            {
                return true;
            }
            // "remove me from your list", "take me off the list", "leave me alone".
            "remove" | "off"
                if (w[i] == "remove" && next.is_some_and(|x| x == "me"))
                    || (w[i] == "off" && i > 0 && w[i - 1] == "me") =>
            {
                let tail = &w[i..w.len().min(i + 5)];
                if tail.iter().any(|x| x == "list" || x == "texts") {
                    return true;
                }
            }
            "leave" if next.is_some_and(|x| x == "me") && after.is_some_and(|x| x == "alone") => {
                return true;
            }
            "baja" if i > 0 && w[i - 1] == "de" => return true,
            // "opt out", "opt me out".
            "opt"
                if is_any(next, &["out"]) || (is_any(next, &["me"]) && is_any(after, &["out"])) =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// Who a customer may ask for.
const PEOPLE: &[&str] = &[
    "person",
    "human",
    "agent",
    "representative",
    "rep",
    "operator",
    "someone",
    "somebody",
    "owner",
    "manager",
    "people",
    "persona",
    "humano",
    "agente",
    "representante",
    "operador",
    "alguien",
    "dueno",
    "gerente",
];

/// Words around a short request for a person that say nothing more ("can I talk to a human
/// please", "quiero hablar con una persona").
const ASKING: &[&str] = &[
    "please", "pls", "plz", "a", "an", "the", "i", "want", "need", "to", "talk", "speak", "with",
    "can", "could", "get", "me", "real", "live", "actual", "id", "like", "un", "una", "quiero",
    "hablar", "con", "por", "favor", "necesito", "puedo", "hi", "hello", "hey", "hola",
];

/// What may follow "call me" in a request for a call ("call me back", "call me at 404…"), as
/// opposed to "call me Bob".
const CALL_ME_TAIL: &[&str] = &[
    "at",
    "back",
    "please",
    "pls",
    "plz",
    "asap",
    "now",
    "today",
    "tomorrow",
    "tonight",
    "later",
    "when",
    "on",
    "if",
    "instead",
    "before",
    "after",
    "in",
    "thanks",
    "soon",
    "first",
    "maybe",
    "morning",
    "afternoon",
    "evening",
    "so",
    "and",
    "or",
    "thx",
];

fn asks_for_person(w: &[String]) -> bool {
    if w.is_empty() {
        return false;
    }
    // A short message that names a person and nothing else: "agent", "human please",
    // "talk to a person". A longer one ("the agent at the dump said…") only by its phrasing.
    let content: Vec<&String> = w.iter().filter(|x| !ASKING.contains(&x.as_str())).collect();
    if w.len() <= 8
        && !content.is_empty()
        && content.len() <= 2
        && content.iter().all(|x| PEOPLE.contains(&x.as_str()))
    {
        return true;
    }
    for i in 0..w.len() {
        let next = w.get(i + 1);
        let after = w.get(i + 2);
        match w[i].as_str() {
            // "can I talk to someone about this", "speak with the owner".
            "talk" | "speak" | "chat" if is_any(next, &["to", "with"]) => {
                let tail = &w[i + 2..w.len().min(i + 5)];
                if tail.iter().any(|x| PEOPLE.contains(&x.as_str())) {
                    return true;
                }
            }
            "hablar" | "comunicarme" if is_any(next, &["con"]) => {
                let tail = &w[i + 2..w.len().min(i + 5)];
                if tail.iter().any(|x| PEOPLE.contains(&x.as_str())) {
                    return true;
                }
            }
            // "is this a real person?", "una persona real".
            "real" | "live" | "actual" if is_any(next, &["person", "human", "people"]) => {
                return true;
            }
            "persona" | "humano" if is_any(next, &["real"]) => return true,
            "un" if is_any(next, &["humano"]) => return true,
            // "call me", "call me back", "call me at 404…", but not "call me Bob".
            "call"
                if is_any(next, &["me", "us"])
                    && (after.is_none()
                        || is_any(after, CALL_ME_TAIL)
                        || after.is_some_and(|x| x.chars().all(|c| c.is_ascii_digit()))) =>
            {
                return true;
            }
            // "give me a call", "can someone call", "could you call".
            "a" if is_any(next, &["call", "ring"]) && i > 0 && w[i - 1] == "me" => return true,
            "someone" | "somebody" | "you" | "please" | "pls"
                if is_any(next, &["call"]) && (is_any(after, &["me", "us"]) || after.is_none()) =>
            {
                return true;
            }
            "llamame" | "llameme" | "llamenme" | "marcame" | "marquenme" => return true,
            "llamar" | "llamarme"
                if i > 0 && matches!(w[i - 1].as_str(), "pueden" | "puede" | "me") =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// The messaging rules' settings (kept in `Config.messaging`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessagingSettings {
    /// When JunkQuote may write first, in the recipient's (the company's) time zone.
    pub sending_hours: SendingHours,
    /// The company's name, as the assistant introduces itself.
    pub company_name: Option<String>,
    /// The assistant's introduction in a conversation's first reply; the default names the
    /// company.
    pub intro: Option<String>,
}

impl MessagingSettings {
    /// The first reply's introduction: that this is the company's automated assistant.
    pub fn intro(&self) -> String {
        if let Some(intro) = self
            .intro
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            return intro.to_owned();
        }
        match self
            .company_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(name) => format!("Hi! This is {name}'s automated assistant."),
            None => "Hi! This is an automated assistant.".to_owned(),
        }
    }
}

/// The local hours in which a message JunkQuote sends first may go: 8 AM to 9 PM by law's
/// and carriers' custom, and only narrower by choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendingHours {
    /// The earliest local time (inclusive).
    pub from: NaiveTime,
    /// The latest local time (exclusive).
    pub until: NaiveTime,
}

/// Why sending hours were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendingHoursError {
    /// Outside 8 AM–9 PM.
    #[error("sending hours must lie between 8:00 and 21:00")]
    TooWide,
    /// Empty or reversed.
    #[error("sending hours must start before they end")]
    Reversed,
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default()
}

impl Default for SendingHours {
    fn default() -> Self {
        Self {
            from: hm(8, 0),
            until: hm(21, 0),
        }
    }
}

impl SendingHours {
    /// Hours `from`–`until`, when they lie within 8 AM–9 PM.
    pub fn new(from: NaiveTime, until: NaiveTime) -> Result<Self, SendingHoursError> {
        let widest = Self::default();
        if from >= until {
            return Err(SendingHoursError::Reversed);
        }
        if from < widest.from || until > widest.until {
            return Err(SendingHoursError::TooWide);
        }
        Ok(Self { from, until })
    }

    /// `None` when a first message may go at `now` in `tz`; otherwise when the hours next
    /// open. Hours stored wider than the law allows are narrowed to it.
    pub fn next_opening(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let widest = Self::default();
        let from = self.from.max(widest.from);
        let until = self.until.min(widest.until).max(from);
        let local = now.with_timezone(&tz);
        let time = local.time();
        if time >= from && time < until {
            return None;
        }
        let day = if time < from {
            local.date_naive()
        } else {
            local.date_naive() + TimeDelta::days(1)
        };
        // A DST gap at the opening time: the first moment after it.
        let opening = (0..4).find_map(|h| {
            tz.from_local_datetime(&day.and_time(from + TimeDelta::hours(h)))
                .earliest()
        });
        Some(opening.map_or(now + TimeDelta::hours(1), |t| t.with_timezone(&Utc)))
    }
}

/// How long after a customer's last Messenger message the page may answer as a response.
pub const MESSENGER_WINDOW: TimeDelta = TimeDelta::hours(24);
/// How long after it a person (never an automation) may still answer with `HUMAN_AGENT`.
pub const HUMAN_AGENT_WINDOW: TimeDelta = TimeDelta::days(7);

/// How a Messenger message goes, when it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessengerSend {
    /// `messaging_type: RESPONSE`: an answer within 24 hours of the customer's message.
    Response,
    /// `messaging_type: UPDATE`: something JunkQuote says first, within the same 24 hours.
    Update,
    /// `messaging_type: MESSAGE_TAG`, `tag: HUMAN_AGENT`: a person's reply within 7 days.
    HumanAgent,
    /// Not on Messenger: by SMS to a proven phone, else left for the operator.
    Elsewhere,
}

/// How a Messenger message may go at `now`, given the customer's last message, whether it
/// answers one (`reply`), and whether a person wrote it. No automated message uses a tag.
pub fn messenger_send(
    last_customer_message: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    reply: bool,
    by_person: bool,
) -> MessengerSend {
    let Some(last) = last_customer_message else {
        return MessengerSend::Elsewhere;
    };
    let since = now - last;
    if since <= MESSENGER_WINDOW {
        if reply || by_person {
            MessengerSend::Response
        } else {
            MessengerSend::Update
        }
    } else if by_person && since <= HUMAN_AGENT_WINDOW {
        MessengerSend::HumanAgent
    } else {
        MessengerSend::Elsewhere
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn carrier_keywords_are_the_whole_message_in_any_case() {
        for text in [
            "STOP",
            "stop",
            " Stop \n",
            "STOPALL",
            "unsubscribe",
            "Cancel",
            "end",
            "QUIT",
            "revoke",
            "OptOut",
        ] {
            assert_eq!(classify(text), Ask::StopKeyword, "{text:?}");
        }
        for text in ["START", "yes", " Unstop "] {
            assert_eq!(classify(text), Ask::StartKeyword, "{text:?}");
        }
        for text in ["HELP", "info"] {
            assert_eq!(classify(text), Ask::HelpKeyword, "{text:?}");
        }
    }

    #[test]
    fn revocations_in_other_words_are_heard() {
        for text in [
            "stop texting me",
            "Stop texting me!!",
            "please stop messaging me",
            "STOP!",
            "stop please",
            "just stop",
            "don't text me anymore",
            "Dont text me",
            "do not contact me again",
            "never message me again",
            "no more texts",
            "no más mensajes",
            "No mas mensajes por favor",
            "no me escriban",
            "dejen de escribirme",
            "unsubscribe me please",
            "opt me out",
            "please opt out",
            "remove me from your list",
            "take me off the list",
            "leave me alone",
            "stop sending me texts",
            "quiero darme de baja",
        ] {
            assert_eq!(classify(text), Ask::Revoked, "{text:?}");
        }
    }

    #[test]
    fn ordinary_messages_that_mention_stopping_are_not_revocations() {
        for text in [
            "stop by at 3",
            "can you stop at the corner",
            "cancel the TV, keep the couch",
            "the truck can end at the alley",
            "don't text me the price, just come",
            "don't send the truck before 9",
            "I have a message from my landlord",
            "yes please",
            "a couch and 2 mattresses",
            "end table and a lamp",
            "no, more mattresses than that",
            "stop sign at the end of the street",
            "drop off the list of items at the curb",
        ] {
            assert_ne!(classify(text), Ask::Revoked, "{text:?}");
            assert_ne!(classify(text), Ask::StopKeyword, "{text:?}");
        }
    }

    #[test]
    fn asking_for_a_person_is_heard() {
        for text in [
            "talk to a person",
            "Can I speak to someone?",
            "call me",
            "please call me at 404-555-0100",
            "call me back",
            "give me a call",
            "agent",
            "Human please",
            "representative",
            "real person",
            "is this a real person?",
            "hablar con una persona",
            "quiero hablar con alguien",
            "un humano",
            "agente",
            "llámame",
            "can someone call me",
            "I want to talk with the owner",
        ] {
            assert_eq!(classify(text), Ask::Person, "{text:?}");
        }
    }

    #[test]
    fn mentioning_people_is_not_asking_for_one() {
        for text in [
            "the agent at the dump said they take mattresses",
            "you can call me Bob",
            "my real estate agent will let you in",
            "a person will meet you at the gate",
            "a couch, a fridge and 5 bags",
            "I'll talk to my wife and get back to you",
        ] {
            assert_eq!(classify(text), Ask::Other, "{text:?}");
        }
        assert!(wants_person("don't text me, call me"));
    }

    #[test]
    fn quiet_hours_hold_first_messages_until_8_am_local() {
        let tz = chrono_tz::America::New_York;
        let hours = SendingHours::default();
        let at = |s: &str| {
            tz.from_local_datetime(
                &chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("time"),
            )
            .single()
            .expect("local")
            .with_timezone(&Utc)
        };
        assert_eq!(hours.next_opening(at("2026-11-24 12:00"), tz), None);
        assert_eq!(hours.next_opening(at("2026-11-24 08:00"), tz), None);
        assert_eq!(
            hours.next_opening(at("2026-11-24 23:00"), tz),
            Some(at("2026-11-25 08:00"))
        );
        assert_eq!(
            hours.next_opening(at("2026-11-24 21:00"), tz),
            Some(at("2026-11-25 08:00"))
        );
        assert_eq!(
            hours.next_opening(at("2026-11-25 06:30"), tz),
            Some(at("2026-11-25 08:00"))
        );
        let narrow = SendingHours::new(hm(9, 0), hm(20, 0)).expect("narrower");
        assert_eq!(
            narrow.next_opening(at("2026-11-24 20:30"), tz),
            Some(at("2026-11-25 09:00"))
        );
        assert_eq!(
            SendingHours::new(hm(7, 0), hm(20, 0)),
            Err(SendingHoursError::TooWide)
        );
        assert_eq!(
            SendingHours::new(hm(12, 0), hm(12, 0)),
            Err(SendingHoursError::Reversed)
        );
    }

    #[test]
    fn messenger_sends_without_tags_except_a_persons_reply() {
        let now = Utc::now();
        let ago = |h| Some(now - TimeDelta::hours(h));
        assert_eq!(
            messenger_send(ago(1), now, true, false),
            MessengerSend::Response
        );
        assert_eq!(
            messenger_send(ago(1), now, false, false),
            MessengerSend::Update
        );
        assert_eq!(
            messenger_send(ago(72), now, false, false),
            MessengerSend::Elsewhere
        );
        assert_eq!(
            messenger_send(ago(25), now, true, false),
            MessengerSend::Elsewhere
        );
        assert_eq!(
            messenger_send(ago(72), now, false, true),
            MessengerSend::HumanAgent
        );
        assert_eq!(
            messenger_send(ago(24 * 8), now, false, true),
            MessengerSend::Elsewhere
        );
        assert_eq!(
            messenger_send(None, now, false, false),
            MessengerSend::Elsewhere
        );
    }

    #[test]
    fn the_intro_names_the_company_or_is_the_operators_text() {
        let mut settings = MessagingSettings::default();
        assert!(settings.intro().contains("automated assistant"));
        settings.company_name = Some("Hauler Bros".into());
        assert_eq!(
            settings.intro(),
            "Hi! This is Hauler Bros's automated assistant."
        );
        settings.intro = Some("Hello from the Hauler Bros bot.".into());
        assert_eq!(settings.intro(), "Hello from the Hauler Bros bot.");
    }

    proptest! {
        #[test]
        fn classifying_never_panics(text in "\\PC{0,200}") {
            let _ = classify(&text);
            let _ = wants_person(&text);
        }

        #[test]
        fn the_next_opening_is_within_sending_hours(secs in 0i64..4_000_000_000) {
            let now = DateTime::from_timestamp(secs, 0).expect("time");
            let tz = chrono_tz::America::Los_Angeles;
            let hours = SendingHours::default();
            if let Some(opening) = hours.next_opening(now, tz) {
                prop_assert!(opening > now);
                prop_assert!(opening - now <= TimeDelta::hours(13));
                prop_assert_eq!(hours.next_opening(opening, tz), None);
            }
        }
    }
}

//! Durable facts about a customer, read from what they write: access codes, pets, stairs,
//! parking, preferred times, how they like to be contacted, and their name. Each fact has a key
//! (a newer fact with the same key replaces the older) and, where facts go stale, a lifetime.

use chrono::Duration;

/// A fact worth remembering about a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// What kind of fact it is; one note per key is kept.
    pub key: &'static str,
    /// The note as the crew and the assistant read it.
    pub content: String,
    /// How long it stays true, when it goes stale.
    pub lifetime: Option<Duration>,
}

/// The longest note kept, in characters.
pub const MAX_NOTE: usize = 2000;

/// What the customer says their name is ("my name is Jane Doe", "this is Jane").
pub fn name_in(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    for cue in ["my name is ", "my name's ", "this is ", "name is "] {
        let Some(at) = lower.find(cue) else { continue };
        // Byte offsets of `lower` match `text` only when lower-casing kept lengths; check.
        let Some(rest) = text.get(at + cue.len()..) else {
            continue;
        };
        let mut words: Vec<&str> = Vec::new();
        for raw in rest.split_whitespace().take(3) {
            let word = raw.trim_matches(|c: char| !c.is_alphabetic());
            let name_like = word.chars().next().is_some_and(char::is_uppercase)
                && word.len() > 1
                && word
                    .chars()
                    .all(|c| c.is_alphabetic() || c == '\'' || c == '-');
            if !name_like {
                break;
            }
            words.push(word);
            if raw.ends_with([',', '.', '!', '?', ';', ':']) {
                break;
            }
        }
        if !words.is_empty() && words.iter().map(|w| w.len()).sum::<usize>() <= 60 {
            return Some(words.join(" "));
        }
    }
    None
}

/// The facts in one customer message.
pub fn facts_in(text: &str) -> Vec<Fact> {
    let lower = text.to_lowercase();
    let mut facts = Vec::new();
    if let Some(fact) = access_code(&lower) {
        facts.push(fact);
    }
    let sentence_with = |words: &[&str]| {
        sentences(text)
            .find(|s| {
                let s = s.to_lowercase();
                words.iter().any(|w| contains_word(&s, w))
            })
            .map(str::to_owned)
    };
    if let Some(s) = sentence_with(&["dog", "dogs", "cat", "cats", "puppy", "pets", "pet"]) {
        facts.push(Fact {
            key: "pets",
            content: format!("Pets: {s}"),
            lifetime: Some(Duration::days(365)),
        });
    }
    if let Some(s) = sentence_with(&[
        "stairs",
        "staircase",
        "basement",
        "attic",
        "upstairs",
        "downstairs",
        "floor",
        "elevator",
        "crawlspace",
    ]) {
        facts.push(Fact {
            key: "access",
            content: format!("Access: {s}"),
            lifetime: Some(Duration::days(180)),
        });
    }
    if let Some(s) = sentence_with(&["park", "parking", "driveway", "alley"]) {
        facts.push(Fact {
            key: "parking",
            content: format!("Parking: {s}"),
            lifetime: None,
        });
    }
    if let Some(fact) = contact_preference(&lower) {
        facts.push(fact);
    }
    if let Some(s) = sentences(text).find(|s| {
        let s = s.to_lowercase();
        (s.contains("prefer") || s.contains("best") || s.contains("works for me"))
            && [
                "morning",
                "afternoon",
                "evening",
                "weekend",
                "weekday",
                "early",
                "late",
            ]
            .iter()
            .any(|w| s.contains(w))
    }) {
        facts.push(Fact {
            key: "preferred_time",
            content: format!("Preferred time: {s}"),
            lifetime: None,
        });
    }
    for fact in &mut facts {
        fact.content = fact.content.chars().take(MAX_NOTE).collect();
    }
    facts
}

/// "gate code is 4321", "the code for the gate: #1234", "door code 5678", "lockbox 0000".
fn access_code(lower: &str) -> Option<Fact> {
    let things = [
        "gate", "door", "lockbox", "lock box", "garage", "building", "entry",
    ];
    let thing = things.iter().find(|t| lower.contains(*t))?;
    let at = lower.find("code").or_else(|| lower.find("lockbox"))?;
    let code: String = lower[at..]
        .chars()
        .skip_while(|c| !(c.is_ascii_digit() || *c == '#'))
        .take_while(|c| c.is_ascii_digit() || *c == '#' || *c == '*')
        .collect();
    let digits = code.chars().filter(char::is_ascii_digit).count();
    (3..=10).contains(&digits).then(|| Fact {
        key: "access_code",
        content: format!("{} code: {code}", capitalise(thing)),
        lifetime: Some(Duration::days(365)),
    })
}

fn contact_preference(lower: &str) -> Option<Fact> {
    let call = [
        "call don't text",
        "call dont text",
        "call, don't text",
        "please call",
        "call me instead",
        "prefer a call",
        "prefer calls",
        "don't text",
        "dont text",
        "no texts",
    ];
    let text = [
        "text don't call",
        "text dont call",
        "text only",
        "don't call",
        "dont call",
        "no calls",
        "prefer text",
    ];
    let content = if text.iter().any(|c| lower.contains(c)) {
        "Prefers texts, not calls"
    } else if call.iter().any(|c| lower.contains(c)) {
        "Prefers a phone call, not texts"
    } else {
        return None;
    };
    Some(Fact {
        key: "contact",
        content: content.to_owned(),
        lifetime: None,
    })
}

fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split(['.', '!', '?', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w == word)
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys(text: &str) -> Vec<&'static str> {
        facts_in(text).into_iter().map(|f| f.key).collect()
    }

    #[test]
    fn access_codes_are_remembered() {
        let facts = facts_in("Sure. The gate code is 4321, see you then");
        assert_eq!(facts[0].content, "Gate code: 4321");
        assert_eq!(facts_in("door code #7788")[0].content, "Door code: #7788");
        assert!(facts_in("the gate is open").is_empty());
        assert!(facts_in("I have 2 codes of conduct").is_empty());
    }

    #[test]
    fn pets_stairs_parking_times_and_contact_are_remembered() {
        assert_eq!(keys("We have a big dog in the yard."), ["pets"]);
        assert_eq!(keys("Everything is in the basement"), ["access"]);
        assert_eq!(keys("You can park in the driveway"), ["parking"]);
        assert_eq!(keys("Mornings are best for me"), ["preferred_time"]);
        assert_eq!(keys("please call, don't text"), ["contact"]);
        assert_eq!(
            facts_in("text only please")[0].content,
            "Prefers texts, not calls"
        );
        assert!(facts_in("a couch, a fridge and 5 bags of trash").is_empty());
        assert!(facts_in("a dogged old couch").is_empty());
    }

    #[test]
    fn names_are_read_when_given() {
        assert_eq!(
            name_in("Hi, my name is Jane Doe.").as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(
            name_in("this is Bob, I need a pickup").as_deref(),
            Some("Bob")
        );
        assert_eq!(name_in("this is a couch"), None);
        assert_eq!(name_in("a couch and 5 bags"), None);
    }

    proptest! {
        #[test]
        fn reading_facts_never_panics(text in "\\PC{0,300}") {
            for fact in facts_in(&text) {
                prop_assert!(fact.content.chars().count() <= MAX_NOTE);
            }
            let _ = name_in(&text);
        }
    }
}

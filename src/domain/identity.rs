//! Who a customer is: phone numbers in E.164, emails trimmed and lower-cased, Messenger PSIDs as
//! given. Only a normalised identifier is ever used to match; what cannot be normalised is kept
//! as typed by the caller and matches nothing.

use std::fmt;
use std::str::FromStr;

use phonenumber::country;
use serde::{Deserialize, Serialize};

/// The region a phone number without a country code is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    /// The United States (the default).
    pub const US: Region = Region(country::Id::US);
}

impl Default for Region {
    fn default() -> Self {
        Region::US
    }
}

impl FromStr for Region {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        country::Id::from_str(&s.trim().to_ascii_uppercase())
            .map(Region)
            .map_err(|_| format!("{s:?} is not a two-letter region code such as US or CA"))
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

/// The E.164 form, as a PostgreSQL regular expression: the same rule as [`is_e164`], for the
/// SQL that cannot call Rust (migration 14's `Customer_phone_e164_check`, the quality gates of
/// `db check`, the pre-check of `tighten`). Bind it as a parameter; a test on PostgreSQL checks
/// that it and [`is_e164`] agree.
pub const E164_PATTERN: &str = r"^\+[1-9][0-9]{6,14}$";

/// Whether `number` is written in E.164 form: `+`, then a country code (which never begins with
/// 0), then the rest, 7 to 15 ASCII digits in all (15 is E.164's limit; 7 is the shortest number
/// in use, e.g. Niue's `+683 4002`). Only the form: [`normalize_phone`] decides whether a number
/// exists, and what it returns always has this form. The one definition: webhooks, storage and
/// the SQL of [`E164_PATTERN`] use it.
pub fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// A phone number in E.164 form (`+14045550123`), or `None` when `raw` is not a valid number
/// (too short, no digits, a number no carrier can have).
pub fn normalize_phone(raw: &str, region: Region) -> Option<String> {
    let raw = raw.trim();
    let digits = raw.chars().filter(char::is_ascii_digit).count();
    // The parser reads letters as a vanity keypad ("call me" would be digits); a number is
    // written with digits.
    if digits < 7
        || raw
            .chars()
            .any(|c| c.is_alphabetic() && !matches!(c, 'x' | 'X'))
    {
        return None;
    }
    let number = phonenumber::parse(Some(region.0), raw).ok()?;
    phonenumber::is_valid(&number)
        .then(|| number.format().mode(phonenumber::Mode::E164).to_string())
}

/// An email address trimmed and lower-cased, or `None` when `raw` is not shaped like one
/// (`local@domain.tld`, no spaces inside).
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let well_formed = !local.is_empty()
        && local.len() <= 64
        && email.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    well_formed.then_some(email)
}

/// A Messenger page-scoped id: digits, as Facebook sends them.
pub fn normalize_psid(raw: &str) -> Option<String> {
    let psid = raw.trim();
    (!psid.is_empty() && psid.len() <= 64 && psid.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| psid.to_owned())
}

/// The kind of a strong identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "\"IdentityKind\"", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    /// A phone number (E.164).
    Phone,
    /// An email address (lower-case).
    Email,
    /// A Messenger page-scoped id.
    Psid,
}

impl IdentityKind {
    /// The name in the database's `"IdentityKind"` enum.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Phone => "phone",
            IdentityKind::Email => "email",
            IdentityKind::Psid => "psid",
        }
    }
}

/// A normalised identifier: two customers with an equal one are the same person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// What it is.
    pub kind: IdentityKind,
    /// Its normalised value.
    pub value: String,
}

impl Identity {
    /// A phone identity, when `raw` is a valid number.
    pub fn phone(raw: &str, region: Region) -> Option<Identity> {
        normalize_phone(raw, region).map(|value| Identity {
            kind: IdentityKind::Phone,
            value,
        })
    }

    /// An email identity, when `raw` is shaped like an address.
    pub fn email(raw: &str) -> Option<Identity> {
        normalize_email(raw).map(|value| Identity {
            kind: IdentityKind::Email,
            value,
        })
    }

    /// A Messenger identity.
    pub fn psid(raw: &str) -> Option<Identity> {
        normalize_psid(raw).map(|value| Identity {
            kind: IdentityKind::Psid,
            value,
        })
    }

    /// The key that serialises work on this identity (an advisory-lock name).
    pub fn lock_key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.value)
    }
}

/// Phone numbers and email addresses written in a free-text message, in order, normalised.
pub fn find_in_text(text: &str, region: Region) -> Vec<Identity> {
    let mut found = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '<' | '>')) {
        let word = word.trim_matches(|c: char| matches!(c, '.' | '!' | '?' | ':' | '(' | ')'));
        if word.contains('@')
            && let Some(identity) = Identity::email(word)
        {
            found.push(identity);
        }
    }
    // Phone numbers are often written with spaces inside: read runs of phone-ish characters.
    let mut run = String::new();
    let flush = |run: &mut String, found: &mut Vec<Identity>| {
        if let Some(identity) = Identity::phone(run, region) {
            found.push(identity);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || matches!(c, '+' | '(' | ')' | '-' | '.' | ' ') {
            if !(run.is_empty() && matches!(c, ' ' | '.' | '-' | ')')) {
                run.push(c);
            }
        } else {
            flush(&mut run, &mut found);
        }
    }
    flush(&mut run, &mut found);
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn us_numbers_in_every_usual_format_are_one_number() {
        for raw in [
            "(404) 555-0123",
            "404.555.0123",
            "+1 404 555 0123",
            "4045550123",
            "1-404-555-0123",
            " +14045550123 ",
        ] {
            assert_eq!(
                normalize_phone(raw, Region::US).as_deref(),
                Some("+14045550123"),
                "{raw}"
            );
        }
    }

    #[test]
    fn what_is_not_a_number_matches_nothing() {
        for raw in [
            "555-0123",
            "call me",
            "123",
            "",
            "+1 000 000 0000",
            "1-800-CALL-NOW",
        ] {
            assert_eq!(normalize_phone(raw, Region::US), None, "{raw}");
        }
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_email("  Jane.Doe@Example.COM ").as_deref(),
            Some("jane.doe@example.com")
        );
        for raw in [
            "jane",
            "jane@",
            "@example.com",
            "ja ne@example.com",
            "a@b",
            "a@@b.com",
        ] {
            assert_eq!(normalize_email(raw), None, "{raw}");
        }
    }

    #[test]
    fn regions_are_read_from_their_codes() {
        assert_eq!("us".parse::<Region>(), Ok(Region::US));
        assert!("Narnia".parse::<Region>().is_err());
        let gb: Region = "GB".parse().expect("GB is a region");
        assert_eq!(
            normalize_phone("020 7946 0018", gb).as_deref(),
            Some("+442079460018")
        );
    }

    #[test]
    fn identifiers_are_found_in_a_message() {
        let found = find_in_text(
            "sure, it's (404) 555-0123 or Jane@Example.com. thanks",
            Region::US,
        );
        assert_eq!(
            found,
            vec![
                Identity::email("jane@example.com").expect("email"),
                Identity::phone("4045550123", Region::US).expect("phone"),
            ]
        );
        assert!(find_in_text("2 couches and 5 bags", Region::US).is_empty());
    }

    /// Examples of the E.164 form, and whether each has it.
    const E164_EXAMPLES: &[(&str, bool)] = &[
        ("+14045550123", true),
        ("+442079460018", true),
        ("+6834002", true),
        ("+123456789012345", true),
        ("+0123456789", false),
        ("+04045550123", false),
        ("+123456", false),
        ("+1234567890123456", false),
        ("14045550123", false),
        ("+1 404 555 0123", false),
        ("+1-404-555-0123", false),
        ("+1404555012a", false),
        ("+１４０４５５５０１２３", false),
        (" +14045550123", false),
        ("+14045550123\n", false),
        ("++14045550123", false),
        ("+", false),
        ("", false),
    ];

    #[test]
    fn the_e164_form_is_a_plus_and_7_to_15_digits_not_starting_with_0() {
        for (number, expected) in E164_EXAMPLES {
            assert_eq!(is_e164(number), *expected, "{number:?}");
        }
    }

    #[test]
    fn the_shortest_numbers_in_use_have_the_e164_form() {
        // Niue and Tokelau: a three-digit country code and four digits.
        for number in ["+6834002", "+6907290"] {
            assert_eq!(
                normalize_phone(number, Region::US).as_deref(),
                Some(number),
                "{number}"
            );
            assert!(is_e164(number));
        }
    }

    proptest! {
        #[test]
        fn what_normalisation_returns_has_the_e164_form(raw in "\\+?[0-9 ()+.-]{0,20}") {
            if let Some(e164) = normalize_phone(&raw, Region::US) {
                prop_assert!(is_e164(&e164), "{raw:?} → {e164:?}");
            }
        }

        #[test]
        fn phone_normalisation_is_idempotent(raw in "[0-9 ()+.-]{0,20}") {
            if let Some(e164) = normalize_phone(&raw, Region::US) {
                prop_assert_eq!(normalize_phone(&e164, Region::US), Some(e164.clone()));
            }
        }

        #[test]
        fn email_normalisation_is_idempotent(raw in "\\PC{0,40}") {
            if let Some(email) = normalize_email(&raw) {
                prop_assert_eq!(normalize_email(&email), Some(email.clone()));
            }
        }

        #[test]
        fn finding_identifiers_never_panics(text in "\\PC{0,200}") {
            let _ = find_in_text(&text, Region::US);
        }
    }
}

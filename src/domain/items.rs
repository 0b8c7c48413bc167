//! Item recognition: what a customer wants hauled, read from free text.
//!
//! "Hi, I need a couch, a fridge and like 10 bags of trash picked up" becomes a couch, a fridge
//! (a regulated item) and ten bags, each with its volume; stairs (and their absence: "no
//! stairs", "ground floor", "there's an elevator"), a long carry, curbside pickup and hazards are
//! picked up on the way. Counts come in digits and words ("half a dozen", "a couple", "both"),
//! units count what they hold ("6 cans of paint", "three 5-gallon pails of stain"), a bed is its
//! frame, mattress and box spring, and a misspelled catalogue word ("mattres") is read as the
//! item it is near. A described volume ("half a trailer", "a 5x10 storage unit", "two rooms of
//! stuff") is a line of its own in cubic yards. Something that looks like a thing but is not in
//! the catalogue ("a jet ski") is kept in the customer's words, flagged for the owner, and lowers
//! the estimate's confidence: it is never silently dropped. Requests, addresses, times, prices
//! and phone numbers ("a quote", "9 Elm", "3:15", "$100") are not things.
//!
//! Pure and cheap: it runs on every message, with the catalogue indexed once.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::pricing::{CubicYards, Hazard, JobSpec, RegulatedItem};

#[path = "catalog.rs"]
mod catalog;

use catalog::{
    BED, BED_FRAME, BOX_SPRING, CATALOG, COMMON_WORDS, GARAGE_PER_CAR_YARDS, HAUL_CUES, Kind,
    NO_FUZZY_TARGET, NOT_ITEMS, NOT_THINGS, PAINT_FIVE_GALLON, PAINT_GALLON, PICKUP_YARDS,
    STORAGE_DEFAULT_SQUARE_FEET, STORAGE_YARDS_PER_SQUARE_FOOT, TRAILER_YARDS, WEAK, mattress_for,
    space_yards,
};

/// One recognised line: a kind of item and how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemLine {
    /// The item's name (the catalog's, or the words the customer used for an unknown one).
    pub description: String,
    /// How many.
    pub quantity: u32,
    /// Volume of one, in cubic feet (an unknown item gets a cautious guess).
    pub cubic_feet_each: f64,
    /// Its disposal fee class, if any.
    pub regulated: Option<RegulatedItem>,
    /// Heavy (takes longer to load).
    pub heavy: bool,
    /// Not in the catalog, a described volume or a guessed amount: kept for the owner to review.
    pub needs_review: bool,
    /// Bedload (concrete, dirt), priced by the yard rather than by trailer volume.
    #[serde(default)]
    pub bedload: Option<Bedload>,
    /// Where the line comes from: the catalogue, the customer's words for an unknown thing, or a
    /// described volume.
    #[serde(default)]
    pub origin: Origin,
}

/// Where a recognised line comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// An item the catalogue knows (or bedload).
    #[default]
    Catalog,
    /// A thing the catalogue does not know, in the customer's words ("jet ski"): named back to
    /// them, priced by a cautious guess and flagged for the owner.
    Unknown,
    /// A volume the customer described ("half a trailer") rather than items counted: its size
    /// is the description's, for the owner to check.
    Described,
}

/// Heavy material priced by the cubic yard, at most so much a trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bedload {
    /// Concrete, tile, pavers, brick, rubble.
    Concrete,
    /// Clean dirt, soil, sand.
    Dirt,
}

/// What a message says about the job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recognition {
    /// The items, in the order mentioned.
    pub items: Vec<ItemLine>,
    /// Hazards mentioned.
    pub hazards: BTreeSet<Hazard>,
    /// Everything is at the curb.
    pub curbside: bool,
    /// Flights of stairs.
    pub stairs_flights: u32,
    /// Carrying distance in feet, when given.
    pub carry_feet: u32,
    /// The load's weight in pounds, when the customer gives it.
    #[serde(default)]
    pub weight_lbs: Option<u32>,
    /// The customer needs a narrow arrival window ("exactly at 9", "a one-hour window").
    #[serde(default)]
    pub tight_window: bool,
    /// The customer said there are no stairs to carry down ("no stairs", "ground floor", "the
    /// building has an elevator"): a later message's stairs count again.
    #[serde(default)]
    pub no_stairs: bool,
}

/// Volume assumed for an item the catalog does not know.
const UNKNOWN_CUBIC_FEET: f64 = 15.0;

/// The most of an unknown thing taken as a count ("40 pallets"); a larger number is a code,
/// a year or a price, not a quantity.
const MAX_UNKNOWN_QUANTITY: u32 = 100;

/// The most cubic yards one description is taken for ("ten houses full" is a joke or a typo).
const MAX_DESCRIBED_YARDS: f64 = 200.0;

impl Recognition {
    /// Whether the message mentioned nothing to haul.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.weight_lbs.is_none() && !self.tight_window
    }

    /// Adds what `other` (a later message) says to this recognition; what it says about stairs
    /// replaces what was said before when it says there are none.
    pub fn merge(&mut self, other: Recognition) {
        self.items.extend(other.items);
        self.hazards.extend(other.hazards);
        self.curbside |= other.curbside;
        if other.no_stairs {
            self.no_stairs = true;
            self.stairs_flights = 0;
        } else if other.stairs_flights > 0 {
            self.no_stairs = false;
            self.stairs_flights = self.stairs_flights.max(other.stairs_flights);
        }
        self.carry_feet = self.carry_feet.max(other.carry_feet);
        self.weight_lbs = self.weight_lbs.max(other.weight_lbs);
        self.tight_window |= other.tight_window;
    }

    /// How sure an estimate from this can be, 0 to 1: each line for review (an unknown thing, a
    /// described volume, a guessed amount) and any hazard lower it.
    pub fn confidence(&self) -> f64 {
        if self.items.is_empty() {
            return 0.2;
        }
        let unknown = self.items.iter().filter(|i| i.needs_review).count() as f64;
        let mut confidence = 0.9 - 0.25 * unknown;
        if !self.hazards.is_empty() {
            confidence -= 0.1;
        }
        confidence.clamp(0.1, 0.95)
    }

    /// The things the catalogue does not know, in the customer's words ("jet ski"), each once:
    /// to be named back to the customer and confirmed by the owner.
    pub fn unknown(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for item in self.items.iter().filter(|i| i.origin == Origin::Unknown) {
            if !names.contains(&item.description.as_str()) {
                names.push(&item.description);
            }
        }
        names
    }

    /// Whether part of the job is a described volume rather than counted items.
    pub fn has_described_volume(&self) -> bool {
        self.items.iter().any(|i| i.origin == Origin::Described)
    }

    /// The pricing engine's input for these items. A described volume is taken as the whole
    /// load: counted items alongside it add their fees, and their volume only where it is more
    /// than the description's.
    pub fn job_spec(&self) -> JobSpec {
        let mut spec = JobSpec {
            hazards: self.hazards.clone(),
            curbside: self.curbside,
            stairs_flights: if self.no_stairs {
                0
            } else {
                self.stairs_flights
            },
            carry_feet: self.carry_feet,
            confidence: self.confidence(),
            weight_lbs: self.weight_lbs,
            tight_window: self.tight_window,
            ..JobSpec::default()
        };
        let (mut counted, mut described) = (0.0, 0.0);
        let (mut concrete, mut dirt) = (0.0, 0.0);
        for item in &self.items {
            let item_feet = item.cubic_feet_each * f64::from(item.quantity);
            match (item.bedload, item.origin) {
                (Some(Bedload::Concrete), _) => concrete += item_feet / 27.0,
                (Some(Bedload::Dirt), _) => dirt += item_feet / 27.0,
                (None, Origin::Described) => described += item_feet,
                (None, _) => counted += item_feet,
            }
            if let Some(class) = item.regulated {
                *spec.regulated.entry(class).or_default() += item.quantity;
            }
        }
        spec.volume = CubicYards::from_cubic_feet(f64::max(counted, described));
        spec.bedload_concrete = CubicYards::new(concrete);
        spec.bedload_dirt = CubicYards::new(dirt);
        spec
    }
}

/// The most of one item a message can order: more is a typo or a joke, and is kept for review.
const MAX_QUANTITY: u32 = 500;

/// Reads the items, hazards and access details in `text`.
pub fn recognise(text: &str) -> Recognition {
    let normalised = normalise(text);
    let words: Vec<&str> = normalised.split_whitespace().collect();
    let mut scan = Scan::new(&words);
    scan.things();
    scan.unknowns();
    let mut result = scan.result;
    scan_flags(&words, &mut result);
    if result.items.is_empty() && !result.hazards.is_empty() {
        // "There's asbestos in the basement": the hazard is the job, for the owner to price.
        let names: Vec<&str> = result.hazards.iter().map(|h| h.label()).collect();
        push_line(
            &mut result,
            &format!("load with {}", names.join(" and ")),
            1,
            UNKNOWN_CUBIC_FEET,
            None,
            false,
            Origin::Unknown,
        );
    }
    result
}

/// Lower case, letters and digits only; clause breaks (`,` `;` `.` `!` `?` `:` new line) become
/// the marker word `|`. Punctuation between digits stays ("3:15", "1/2", "555-0123", "10.5"), and
/// `$` and `#` stay on the number they mark ("$100", "#12"), so that none of them reads as a
/// count.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    let mut prev = ' ';
    while let Some(c) = chars.next() {
        let next = chars.peek().copied().unwrap_or(' ');
        let between_digits = prev.is_ascii_digit() && next.is_ascii_digit();
        match c {
            '.' | ':' | '/' | '-' | ',' if between_digits => out.push(c),
            '$' | '#' => {
                out.push(' ');
                out.push(c);
            }
            '%' => out.push('%'),
            ',' | ';' | '!' | '?' | '\n' | '(' | ')' | ':' | '.' => out.push_str(" | "),
            '&' | '+' => out.push_str(" and "),
            '-' | '/' | '_' => out.push(' '),
            '\'' | '’' => {}
            c if c.is_alphanumeric() => out.extend(c.to_lowercase()),
            _ => out.push(' '),
        }
        prev = c;
    }
    out
}

/// Clause breaks: `|` and the words that join items ("a couch and a chair", "with", "plus").
fn is_break(word: &str) -> bool {
    matches!(
        word,
        "|" | "and" | "plus" | "also" | "with" | "n" | "w" | "but" | "then"
    )
}

/// Singular of a word, good enough for item names ("boxes" → "box", "mattresses" → "mattress",
/// "shelves" → "shelf", "TVs" → "tv").
fn singular(word: &str) -> String {
    if let Some(short) = match word {
        "tvs" => Some("tv"),
        "pcs" => Some("pc"),
        "acs" => Some("ac"),
        _ => None,
    } {
        return short.to_owned();
    }
    for (plural, single) in [
        ("ies", "y"),
        ("sses", "ss"),
        ("xes", "x"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("lves", "lf"),
    ] {
        if let Some(stem) = word.strip_suffix(plural)
            && !stem.is_empty()
        {
            return format!("{stem}{single}");
        }
    }
    match word.strip_suffix('s') {
        Some(stem) if stem.len() > 2 && !stem.ends_with('s') => stem.to_owned(),
        _ => word.to_owned(),
    }
}

/// A number word's value: "one" to "twenty", the tens, "hundred".
fn number_word(word: &str) -> Option<u32> {
    Some(match word {
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

/// A number in digits or words ending at word `j` ("25", "twenty five", "a hundred"), with the
/// word it starts at.
fn number_ending_at(words: &[&str], j: usize) -> Option<(u32, usize)> {
    let word = words[j];
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
        return word.parse().ok().map(|n| (n, j));
    }
    if word == "hundred" {
        return match j.checked_sub(1).map(|k| (k, words[k])) {
            Some((k, "a" | "one")) => Some((100, k)),
            Some((k, w)) => number_word(w)
                .filter(|n| *n < 10)
                .map(|n| (n * 100, k))
                .or(Some((100, j))),
            None => Some((100, j)),
        };
    }
    let n = number_word(word)?;
    if n < 10
        && let Some(k) = j.checked_sub(1)
        && let Some(tens) = number_word(words[k]).filter(|t| *t >= 20 && t % 10 == 0)
    {
        return Some((tens + n, k));
    }
    Some((n, j))
}

/// A count ending at word `j` ("3", "a", "a couple", "half a dozen", "two dozen", "both", "no"),
/// with the word it starts at.
fn count_ending_at(words: &[&str], j: usize) -> Option<(u32, usize)> {
    let before = |k: usize| j.checked_sub(k).map_or("", |p| words[p]);
    let with_article = |n: u32| {
        if matches!(before(1), "a" | "an") {
            Some((n, j - 1))
        } else {
            Some((n, j))
        }
    };
    match words[j] {
        "dozen" => {
            if before(1) == "a" && before(2) == "half" {
                return Some((6, j - 2));
            }
            if before(1) == "half" {
                return Some((6, j - 1));
            }
            if j > 0
                && let Some((n, start)) = number_ending_at(words, j - 1)
            {
                return Some((n.saturating_mul(12), start));
            }
            with_article(12)
        }
        "couple" | "pair" => with_article(2),
        "few" => with_article(3),
        "several" => Some((4, j)),
        "bunch" | "lot" | "lots" | "ton" | "tons" | "many" | "bunches" => with_article(5),
        "both" => Some((2, j)),
        "a" | "an" | "another" | "single" => Some((1, j)),
        "no" | "zero" | "none" => Some((0, j)),
        _ => number_ending_at(words, j),
    }
}

/// Words that may stand between a count and its item ("10 big old bags", "3 of the chairs").
fn is_between(word: &str) -> bool {
    matches!(
        word,
        "of" | "the"
            | "big"
            | "small"
            | "large"
            | "huge"
            | "giant"
            | "little"
            | "tiny"
            | "medium"
            | "old"
            | "used"
            | "broken"
            | "heavy"
            | "full"
            | "black"
            | "white"
            | "brown"
            | "gray"
            | "grey"
            | "red"
            | "blue"
            | "green"
            | "wooden"
            | "wood"
            | "metal"
            | "plastic"
            | "glass"
            | "leather"
            | "fabric"
            | "antique"
            | "vintage"
            | "rusty"
            | "dirty"
            | "nasty"
            | "ugly"
            | "worn"
            | "torn"
            | "stained"
            | "dusty"
            | "cheap"
            | "electric"
            | "outdoor"
            | "indoor"
            | "queen"
            | "king"
            | "twin"
            | "double"
            | "california"
            | "cal"
            | "size"
            | "sized"
            | "xl"
            | "my"
            | "our"
            | "his"
            | "her"
            | "their"
            | "your"
            | "these"
            | "those"
            | "extra"
            | "more"
            | "other"
            | "really"
            | "very"
            | "pretty"
            | "super"
            | "same"
    )
}

/// The count in the few words before position `i`, skipping adjectives, with the word it starts
/// at. "about", "like" and "around" stand before a count, never after it: "call 555 3344 about
/// the couch" orders one couch.
fn count_before(words: &[&str], i: usize) -> Option<(u32, usize)> {
    let mut j = i;
    let mut skipped = 0;
    while j > 0 && skipped < 4 {
        j -= 1;
        if let Some(found) = count_ending_at(words, j) {
            return Some(found);
        }
        if !is_between(words[j]) {
            return None;
        }
        skipped += 1;
    }
    None
}

/// Prepositions: "by the door", "in a box", "at 3" name places and times, not things.
fn is_preposition(word: &str) -> bool {
    matches!(
        word,
        "in" | "on"
            | "at"
            | "by"
            | "for"
            | "from"
            | "to"
            | "into"
            | "onto"
            | "near"
            | "behind"
            | "under"
            | "over"
            | "inside"
            | "outside"
            | "beside"
            | "through"
            | "of"
            | "off"
            | "around"
            | "about"
            | "like"
            | "than"
            | "per"
            | "til"
            | "till"
            | "until"
            | "after"
            | "before"
    )
}

/// Words that are not nouns worth flagging as an unknown item.
fn is_function_word(word: &str) -> bool {
    matches!(
        word,
        "i" | "me"
            | "we"
            | "you"
            | "it"
            | "its"
            | "is"
            | "are"
            | "was"
            | "were"
            | "be"
            | "been"
            | "am"
            | "im"
            | "id"
            | "ive"
            | "youre"
            | "theyre"
            | "to"
            | "need"
            | "needs"
            | "want"
            | "wants"
            | "have"
            | "has"
            | "had"
            | "got"
            | "get"
            | "can"
            | "could"
            | "would"
            | "will"
            | "should"
            | "may"
            | "might"
            | "must"
            | "please"
            | "pls"
            | "plz"
            | "thanks"
            | "thank"
            | "thx"
            | "hi"
            | "hello"
            | "hey"
            | "yes"
            | "no"
            | "not"
            | "ok"
            | "okay"
            | "sure"
            | "that"
            | "this"
            | "there"
            | "theres"
            | "here"
            | "up"
            | "out"
            | "away"
            | "down"
            | "removed"
            | "hauled"
            | "picked"
            | "gone"
            | "taken"
            | "good"
            | "great"
            | "nice"
            | "fine"
            | "do"
            | "does"
            | "did"
            | "dont"
            | "doesnt"
            | "didnt"
            | "cant"
            | "wont"
            | "isnt"
            | "if"
            | "so"
            | "or"
            | "as"
            | "just"
            | "only"
            | "still"
            | "even"
            | "very"
            | "really"
            | "too"
            | "who"
            | "what"
            | "which"
            | "when"
            | "where"
            | "why"
            | "how"
            | "whole"
            | "entire"
            | "some"
            | "any"
            | "all"
            | "each"
            | "every"
            | "lol"
            | "tho"
            | "though"
            | "they"
            | "them"
            | "he"
            | "she"
            | "him"
            | "us"
            | "an"
            | "a"
            | "the"
    )
}

/// The catalogue's names, split into singular words, longest first; `None` for phrases that
/// name no item ("front door", "flower bed").
static INDEX: LazyLock<Vec<(Vec<String>, Option<&'static Kind>)>> = LazyLock::new(|| {
    let split = |name: &str| name.split(' ').map(singular).collect::<Vec<_>>();
    let mut index: Vec<(Vec<String>, Option<&'static Kind>)> = CATALOG
        .iter()
        .flat_map(|kind| kind.names.iter().map(move |name| (split(name), Some(kind))))
        .chain(NOT_ITEMS.iter().map(|phrase| (split(phrase), None)))
        .collect();
    index.sort_by_key(|(parts, _)| std::cmp::Reverse(parts.len()));
    index
});

/// Single-word catalogue names a misspelling may be read as ("mattres" → "mattress").
static FUZZY_TARGETS: LazyLock<Vec<(&'static str, &'static Kind)>> = LazyLock::new(|| {
    CATALOG
        .iter()
        .flat_map(|kind| kind.names.iter().map(move |name| (*name, kind)))
        .filter(|(name, _)| {
            name.len() >= 5
                && !name.contains(' ')
                && !NO_FUZZY_TARGET.contains(name)
                && !WEAK.contains(name)
        })
        .collect()
});

/// The words fuzzy matching leaves alone: shorter ones are too easily another word.
const FUZZY_MIN_LETTERS: usize = 5;

/// Materials sold by the can: paint and its kin.
fn is_paint(word: &str) -> bool {
    matches!(
        word,
        "paint"
            | "stain"
            | "primer"
            | "varnish"
            | "sealer"
            | "sealant"
            | "lacquer"
            | "polyurethane"
    )
}

/// Words that say what paint it is, or in what state, between its container and it.
fn is_paint_word(word: &str) -> bool {
    matches!(
        word,
        "old"
            | "leftover"
            | "used"
            | "unused"
            | "latex"
            | "oil"
            | "acrylic"
            | "exterior"
            | "interior"
            | "house"
            | "dried"
            | "dry"
            | "wood"
            | "deck"
    )
}

/// What paint comes in, and whether it is a five-gallon one unless told otherwise.
fn paint_container(word: &str) -> Option<bool> {
    match word {
        "pail" | "bucket" => Some(true),
        "can" | "gallon" | "gal" | "tin" | "jug" | "quart" | "container" | "tub" => Some(false),
        _ => None,
    }
}

/// Bedload materials.
fn bedload_kind(word: &str) -> Option<Bedload> {
    match word {
        "concrete" | "tile" | "paver" | "brick" | "rubble" => Some(Bedload::Concrete),
        "dirt" | "soil" | "sand" | "topsoil" => Some(Bedload::Dirt),
        _ => None,
    }
}

/// A fraction word: "half", "third", "quarter", "1/3".
fn fraction_word(word: &str) -> Option<f64> {
    match word {
        "half" => Some(0.5),
        "third" | "thirds" => Some(1.0 / 3.0),
        "quarter" | "quarters" | "fourth" | "fourths" => Some(0.25),
        "eighth" | "eighths" => Some(0.125),
        _ => {
            let (top, bottom) = word.split_once('/')?;
            let (top, bottom): (f64, f64) = (top.parse().ok()?, bottom.parse().ok()?);
            (bottom > 0.0 && top > 0.0 && top <= bottom * 4.0).then(|| top / bottom)
        }
    }
}

/// A number in digits (decimals too) or words.
fn amount(word: &str) -> Option<f64> {
    if word.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return word.parse::<f64>().ok().filter(|n| n.is_finite());
    }
    number_word(word).map(f64::from)
}

/// A storage unit's size written "5x10": its floor in square feet.
fn floor_size(word: &str) -> Option<f64> {
    let (a, b) = word.split_once('x')?;
    let (a, b): (f64, f64) = (a.parse().ok()?, b.parse().ok()?);
    (a > 0.0 && b > 0.0 && a * b <= 2_000.0).then_some(a * b)
}

/// Words a described volume may stand among ("about a third of the truck").
fn is_volume_filler(word: &str) -> bool {
    matches!(
        word,
        "a" | "an"
            | "the"
            | "my"
            | "our"
            | "his"
            | "her"
            | "their"
            | "this"
            | "that"
            | "of"
            | "about"
            | "around"
            | "like"
            | "maybe"
            | "roughly"
            | "approximately"
            | "approx"
            | "probably"
            | "almost"
            | "nearly"
            | "just"
            | "over"
            | "under"
            | "least"
            | "big"
            | "small"
            | "little"
            | "large"
            | "standard"
            | "regular"
            | "average"
            | "living"
            | "dining"
            | "family"
            | "spare"
            | "guest"
            | "bonus"
            | "master"
            | "kids"
            | "back"
            | "front"
    )
}

/// Words that say a space or a truck is full: "full", "packed", "worth".
fn is_fill_word(word: &str) -> bool {
    matches!(
        word,
        "full" | "filled" | "packed" | "stuffed" | "loaded" | "worth" | "whole" | "entire"
    )
}

/// What a message is scanned into.
struct Scan<'a> {
    words: &'a [&'a str],
    singulars: Vec<String>,
    /// Words already read as part of something.
    taken: Vec<bool>,
    result: Recognition,
    /// Beds read as parts: where, and how many of each part (frame, mattress, box spring) a
    /// mention just after it ("a bed with the mattress") is already counted in.
    beds: Vec<(usize, [u32; 3])>,
}

impl<'a> Scan<'a> {
    fn new(words: &'a [&'a str]) -> Self {
        Self {
            words,
            singulars: words.iter().map(|w| singular(w)).collect(),
            taken: vec![false; words.len()],
            result: Recognition::default(),
            beds: Vec::new(),
        }
    }

    fn word(&self, i: usize) -> &'a str {
        self.words.get(i).copied().unwrap_or("")
    }

    fn singular_at(&self, i: usize) -> &str {
        self.singulars.get(i).map_or("", String::as_str)
    }

    fn take(&mut self, from: usize, to: usize) {
        for t in &mut self.taken[from..to.min(self.words.len())] {
            *t = true;
        }
    }

    /// Described volumes, paint, bedload and catalogue items, left to right.
    fn things(&mut self) {
        let mut i = 0;
        while i < self.words.len() {
            if self.taken[i] || is_break(self.words[i]) {
                i += 1;
                continue;
            }
            i = self
                .volume_at(i)
                .or_else(|| self.paint_at(i))
                .or_else(|| self.bedload_at(i))
                .or_else(|| self.kind_at(i))
                .unwrap_or(i + 1);
        }
    }

    /// A described volume whose main word is at `i`: "about a third of a truck", "a full
    /// pickup bed", "a one-car garage full", "a 5x10 storage unit", "two rooms of stuff",
    /// "3 cubic yards".
    fn volume_at(&mut self, i: usize) -> Option<usize> {
        #[derive(PartialEq)]
        enum Measure {
            Load,
            Truck,
            Pickup,
            Garage,
            Storage,
            Space(f64),
            Yards,
            Feet,
        }
        let word = self.singular_at(i).to_owned();
        let next = self.singular_at(i + 1).to_owned();
        let after = self.singular_at(i + 2).to_owned();
        let (measure, mut end, needs_fill) = match word.as_str() {
            "truckload" | "trailerload" => (Measure::Truck, i + 1, false),
            "truck" | "trailer" if next == "bed" => (Measure::Pickup, i + 2, false),
            "truck" | "trailer" if next == "load" || next == "full" => {
                (Measure::Truck, i + 2, false)
            }
            "truck" | "trailer" => (Measure::Truck, i + 1, true),
            "pickup" if matches!(next.as_str(), "bed" | "load" | "truckload" | "full") => {
                (Measure::Pickup, i + 2, false)
            }
            "pickup" if next == "truck" && matches!(after.as_str(), "bed" | "load" | "full") => {
                (Measure::Pickup, i + 3, false)
            }
            "pickup" if next == "truck" => (Measure::Pickup, i + 2, true),
            "pickup" => (Measure::Pickup, i + 1, true),
            "load" => (Measure::Load, i + 1, true),
            "bed"
                if next == "of"
                    && (2..4).any(|k| {
                        matches!(self.singular_at(i + k), "truck" | "pickup")
                            && (2..k).all(|m| is_volume_filler(self.word(i + m)))
                    }) =>
            {
                let k = (2..4)
                    .find(|k| matches!(self.singular_at(i + k), "truck" | "pickup"))
                    .unwrap_or(2);
                (Measure::Pickup, i + k + 1, false)
            }
            "garage" => (Measure::Garage, i + 1, true),
            "storage" if matches!(next.as_str(), "unit" | "locker" | "room" | "space") => {
                (Measure::Storage, i + 2, false)
            }
            "unit" | "locker" if i > 0 && floor_size(self.words[i - 1]).is_some() => {
                (Measure::Storage, i + 1, false)
            }
            "cubic" if matches!(next.as_str(), "yard" | "yd") => (Measure::Yards, i + 2, false),
            "cubic" if matches!(next.as_str(), "foot" | "feet" | "ft") => {
                (Measure::Feet, i + 2, false)
            }
            "yd3" | "yd³" | "cuyd" => (Measure::Yards, i + 1, false),
            "yard" | "yd"
                if next == "of"
                    && !(i + 2..i + 5).any(|k| bedload_kind(self.singular_at(k)).is_some()) =>
            {
                (Measure::Yards, i + 1, false)
            }
            other => (Measure::Space(space_yards(other)?), i + 1, true),
        };
        let by_number = matches!(measure, Measure::Yards | Measure::Feet);

        // Back: the fraction, the count, the cars, the unit's size, "full".
        let mut fraction: Option<f64> = None;
        let mut count: Option<f64> = None;
        let mut cars: Option<f64> = None;
        let mut floor: Option<f64> = None;
        let mut full = false;
        let mut start = i;
        if measure == Measure::Storage {
            let at = i;
            let before = |k: usize| at.checked_sub(k).map_or("", |p| self.words[p]);
            if let Some(size) = floor_size(before(1)) {
                floor = Some(size);
                start = at - 1;
            } else if matches!(before(2), "x" | "by")
                && let (Some(a), Some(b)) = (amount(before(3)), amount(before(1)))
            {
                floor = Some(a * b).filter(|f| *f > 0.0 && *f <= 2_000.0);
                start = at - 3;
            }
        }
        let mut saw_car = false;
        let mut steps = 0;
        while start > 0 && steps < 7 {
            let k = start - 1;
            let w = self.words[k];
            if self.taken[k] || w == "|" {
                break;
            }
            let after_this = self.word(k + 1);
            if let Some(f) = fraction_word(w) {
                fraction = Some(f * fraction.unwrap_or(1.0));
            } else if w == "most" {
                fraction = Some(0.75);
            } else if matches!(w, "car" | "cars") && measure == Measure::Garage {
                saw_car = true;
            } else if w == "single" && saw_car {
                cars = Some(1.0);
            } else if w == "double" && measure == Measure::Garage {
                cars = Some(2.0);
            } else if let Some(n) = amount(w) {
                if saw_car && cars.is_none() {
                    cars = Some(n);
                } else if fraction_word(after_this).is_some() && fraction.is_some() {
                    // "two thirds", "three quarters"
                    fraction = fraction.map(|f| f * n);
                } else if count.is_none() {
                    count = Some(n);
                } else {
                    break;
                }
            } else if is_fill_word(w) {
                full = true;
            } else if matches!(
                w,
                "clean" | "clear" | "empty" | "cleaning" | "clearing" | "out"
            ) {
                full |= w != "out" || matches!(self.word(k.wrapping_sub(1)), "clean" | "clear");
            } else if !is_volume_filler(w) {
                break;
            }
            start = k;
            steps += 1;
        }

        // Forward: "full", "half full", "of stuff", "and a half", "cleanout".
        let mut extra_half = false;
        loop {
            let w = self.word(end);
            if is_fill_word(w) || w == "load" {
                full = true;
                end += 1;
            } else if w == "half" && self.word(end + 1) == "full" {
                fraction = Some(0.5 * fraction.unwrap_or(1.0));
                full = true;
                end += 2;
            } else if matches!(w, "cleanout" | "clearout") {
                full = true;
                end += 1;
            } else if w == "and" && self.word(end + 1) == "a" && self.word(end + 2) == "half" {
                extra_half = true;
                end += 3;
            } else if w == "of" && (measure != Measure::Load || by_number) {
                full |= measure != Measure::Load;
                end += 1;
                // What it is full of is the description's: up to two words.
                let mut k = 0;
                while k < 2
                    && !self.word(end).is_empty()
                    && !is_break(self.word(end))
                    && match_index(&self.singulars, end).is_none()
                    && !is_paint(self.singular_at(end))
                {
                    end += 1;
                    k += 1;
                }
                break;
            } else if matches!(
                w,
                "|" | "is" | "its" | "about" | "around" | "maybe" | "mostly"
            ) && (1..4).any(|k| {
                let ahead = self.word(end + k);
                is_fill_word(ahead) || ahead == "half"
            }) && (1..4)
                .all(|k| !is_break(self.word(end + k)) || self.word(end + k) == "|")
                && measure != Measure::Yards
            {
                // "a 10x10 unit, about half full": look past the comma for how full.
                let mut k = end + 1;
                while k < end + 4 && !(is_fill_word(self.word(k)) || self.word(k) == "half") {
                    k += 1;
                }
                end = k;
            } else {
                break;
            }
        }

        let counted = count.filter(|n| *n >= 1.0);
        let explicit_load = matches!(measure, Measure::Load | Measure::Truck | Measure::Pickup)
            && counted.is_some_and(|n| n >= 2.0 || self.word(start) != "a");
        if needs_fill && !full && fraction.is_none() && !explicit_load {
            return None;
        }
        if by_number && counted.is_none() && fraction.is_none() {
            return None;
        }
        let one = match measure {
            Measure::Load | Measure::Truck => TRAILER_YARDS,
            Measure::Pickup => PICKUP_YARDS,
            Measure::Garage => cars.unwrap_or(1.0).clamp(1.0, 4.0) * GARAGE_PER_CAR_YARDS,
            Measure::Storage => {
                floor.unwrap_or(STORAGE_DEFAULT_SQUARE_FEET) * STORAGE_YARDS_PER_SQUARE_FOOT
            }
            Measure::Space(yards) => yards,
            Measure::Yards => 1.0,
            Measure::Feet => 1.0 / 27.0,
        };
        let mut yards = one * counted.unwrap_or(1.0) * fraction.unwrap_or(1.0);
        if extra_half {
            yards += one * 0.5;
        }
        if !(yards.is_finite() && yards > 0.0) {
            return None;
        }
        let yards = yards.min(MAX_DESCRIBED_YARDS);
        let phrase = self.words[start..end]
            .iter()
            .filter(|w| **w != "|")
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        self.take(start, end);
        push_line(
            &mut self.result,
            &format!("load of about {yards:.1} yd³ (\"{phrase}\")"),
            1,
            yards * 27.0,
            None,
            false,
            Origin::Described,
        );
        Some(end)
    }

    /// Paint and its kin at `i`, counted by the container: "6 cans of paint", "three 5-gallon
    /// pails of stain", "old paint cans". A spill is a hazard and thinner a chemical, not cans.
    fn paint_at(&mut self, i: usize) -> Option<usize> {
        let material = self.singular_at(i).to_owned();
        if !is_paint(&material) {
            return None;
        }
        let prev = if i > 0 { self.words[i - 1] } else { "" };
        let next = self.word(i + 1);
        if material == "paint" && (next.starts_with("spill") || next == "thinner" || next == "job")
            || matches!(prev, "spilled" | "spilt")
        {
            let end = i + 1 + usize::from(next.starts_with("spill") || next == "thinner");
            self.take(i, end);
            return Some(end);
        }
        // Up to two words about the paint may stand between "of" and it ("8 gallons of old
        // paint", "4 cans of leftover latex paint").
        let mut lead = i;
        while lead > 0 && i - lead < 2 && is_paint_word(self.words[lead - 1]) {
            lead -= 1;
        }
        let container = if lead >= 2 && self.words[lead - 1] == "of" {
            paint_container(self.singular_at(lead - 2)).map(|five| (lead - 2, five))
        } else {
            None
        }
        .or_else(|| paint_container(self.singular_at(i + 1)).map(|five| (i + 1, five)));
        if container.is_none() && material != "paint" {
            // "a stain on the carpet"
            return None;
        }
        let anchor = container.map_or(i, |(c, _)| c.min(i));
        let mut five = container.is_some_and(|(_, five)| five);
        let mut from = anchor;
        let before = |k: usize| anchor.checked_sub(k).map_or("", |p| self.words[p]);
        if matches!(before(1), "gallon" | "gal" | "gallons") && container.is_some() {
            match before(2) {
                "5" | "five" => {
                    five = true;
                    from = anchor - 2;
                }
                "1" | "one" => {
                    five = false;
                    from = anchor - 2;
                }
                _ => {
                    five = false;
                    from = anchor - 1;
                }
            }
        } else if matches!(before(1), "5gal" | "5gallon") {
            five = true;
            from = anchor - 1;
        }
        let end = container.map_or(i, |(c, _)| c.max(i)) + 1;
        let plural = (anchor..end).any(|k| self.words[k] != self.singulars[k]);
        let (quantity, start) = match count_before(self.words, from) {
            Some(found) => found,
            None => (if plural { 2 } else { 1 }, from),
        };
        self.take(start, end);
        let kind = if five {
            &PAINT_FIVE_GALLON
        } else {
            &PAINT_GALLON
        };
        push_kind(&mut self.result, kind, quantity);
        Some(end)
    }

    /// Bedload at `i`: "3 yards of concrete", "some dirt" (a yard, for the owner to check).
    /// Asbestos tiles are a hazard, not clean bedload.
    fn bedload_at(&mut self, i: usize) -> Option<usize> {
        let kind = bedload_kind(self.singular_at(i))?;
        if (1..3).any(|k| i >= k && self.words[i - k] == "asbestos") {
            self.take(i, i + 1);
            return Some(i + 1);
        }
        // "<n> (cubic) yards (of)" before the material.
        let mut start = i;
        let yards = self.words[..i]
            .iter()
            .enumerate()
            .rev()
            .take(5)
            .take_while(|(_, w)| **w != "|")
            .find_map(|(k, w)| {
                if !matches!(*w, "yard" | "yards" | "yd" | "yds") {
                    return None;
                }
                let mut before = self.words[..k]
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(|(_, w)| **w != "cubic");
                let (at, first) = before.next()?;
                // "half a yard"
                if matches!(*first, "a" | "an")
                    && let Some((half_at, &"half")) = before.next()
                {
                    start = half_at;
                    return Some(0.5);
                }
                start = at;
                match *first {
                    "half" => Some(0.5),
                    other => amount(other),
                }
            });
        let name = match kind {
            Bedload::Concrete => "concrete/tile/pavers",
            Bedload::Dirt => "clean dirt",
        };
        let given = yards.filter(|y| y.is_finite() && *y > 0.0 && *y <= 100.0);
        if given.is_none() {
            start = i;
        }
        let yards = given.unwrap_or(1.0);
        self.take(start, i + 1);
        self.result.items.push(ItemLine {
            description: format!("{name} ({yards} yd³)"),
            quantity: 1,
            cubic_feet_each: yards * 27.0,
            regulated: None,
            heavy: true,
            needs_review: given.is_none(),
            bedload: Some(kind),
            origin: Origin::Catalog,
        });
        Some(i + 1)
    }

    /// A catalogue item at `i`, by its name or a near misspelling of it, with its count.
    fn kind_at(&mut self, i: usize) -> Option<usize> {
        let (kind, len) = match match_index(&self.singulars, i) {
            Some((Some(kind), len)) => (kind, len),
            Some((None, len)) => {
                self.take(i, i + len);
                return Some(i + len);
            }
            None => (self.fuzzy_at(i)?, 1),
        };
        if len == 1 && WEAK.contains(&self.singular_at(i)) && !self.weak_is_item(i) {
            return None;
        }
        let plural = (i..i + len).any(|k| self.words[k] != self.singulars[k]);
        let (quantity, start) = match count_before(self.words, i) {
            Some(found) => found,
            None => (if plural { 2 } else { 1 }, i),
        };
        let mut end = i + len;
        // "3 boxes of books": what they hold is part of them.
        if self.word(end) == "of" {
            let mut k = end + 1;
            while k < end + 4
                && k < self.words.len()
                && !is_break(self.words[k])
                && !self.taken[k]
                && match_index(&self.singulars, k).is_none()
                && !is_paint(self.singular_at(k))
                && bedload_kind(self.singular_at(k)).is_none()
            {
                k += 1;
            }
            if k > end + 1 {
                end = k;
            }
        }
        self.take(start, end);
        if kind.name == BED {
            self.push_bed(i, quantity);
        } else if !self.absorbed_by_bed(i, kind, quantity) {
            push_kind(&mut self.result, kind, quantity);
        }
        Some(end)
    }

    /// The catalogue item a misspelled word at `i` is nearest ("mattres", "couhc"): only words of
    /// five letters or more, never an ordinary word, at most one letter off (two for long names),
    /// and starting with the same letter.
    fn fuzzy_at(&self, i: usize) -> Option<&'static Kind> {
        let word = self.words[i];
        let single = self.singular_at(i);
        if word.len() < FUZZY_MIN_LETTERS
            || !word.bytes().all(|b| b.is_ascii_lowercase())
            || [word, single].iter().any(|w| {
                COMMON_WORDS.contains(w)
                    || NOT_THINGS.contains(w)
                    || is_between(w)
                    || is_function_word(w)
                    || is_preposition(w)
            })
        {
            return None;
        }
        let mut best: Option<(usize, &'static Kind)> = None;
        for (name, kind) in FUZZY_TARGETS.iter() {
            if name.as_bytes().first() != word.as_bytes().first() {
                continue;
            }
            let limit = if name.len() >= 8 { 2 } else { 1 };
            let distance = strsim::damerau_levenshtein(word, name)
                .min(strsim::damerau_levenshtein(single, name));
            if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, kind));
            }
        }
        best.map(|(_, kind)| kind)
    }

    /// Whether a catalogue word that is also an ordinary word ("safe", "door", "box") names the
    /// item here: a count, an article or an owner's word before it, no preposition before that
    /// ("by the door", "in a box"), and not "safe to", "a range of".
    fn weak_is_item(&self, i: usize) -> bool {
        let word = self.singular_at(i);
        let next = self.word(i + 1);
        let container = matches!(word, "box" | "bag" | "bin" | "tote" | "crate");
        if (next == "of" && !container)
            || matches!(
                next,
                "to" | "for" | "place" | "spot" | "side" | "enough" | "distance" | "is"
            ) && word == "safe"
        {
            return false;
        }
        let mut j = i;
        let mut skipped = 0;
        while j > 0 && skipped < 3 {
            j -= 1;
            let w = self.words[j];
            let determiner = count_ending_at(self.words, j).is_some()
                || matches!(
                    w,
                    "the"
                        | "my"
                        | "our"
                        | "his"
                        | "her"
                        | "their"
                        | "your"
                        | "this"
                        | "that"
                        | "these"
                        | "those"
                        | "old"
                        | "extra"
                );
            if determiner {
                let start = count_ending_at(self.words, j).map_or(j, |(_, s)| s);
                return start == 0
                    || !is_preposition(self.words[start - 1])
                    || matches!(self.words[start - 1], "like" | "about" | "around" | "of");
            }
            if !is_between(w) {
                return false;
            }
            skipped += 1;
        }
        false
    }

    /// "a queen bed": a frame, a mattress of its size and a box spring, each `quantity`.
    fn push_bed(&mut self, i: usize, quantity: u32) {
        let size = (1..3)
            .filter_map(|k| i.checked_sub(k).map(|p| self.words[p]))
            .find(|w| matches!(*w, "twin" | "single" | "full" | "double" | "king" | "queen"))
            .unwrap_or("queen");
        for kind in [&BED_FRAME, mattress_for(size), &BOX_SPRING] {
            push_kind(&mut self.result, kind, quantity);
        }
        self.beds.push((i, [quantity; 3]));
    }

    /// Whether a frame, mattress or box spring named just after a bed ("a bed with the mattress
    /// and box spring") is that bed's, already counted.
    fn absorbed_by_bed(&mut self, i: usize, kind: &Kind, quantity: u32) -> bool {
        let part = if kind.name == BED_FRAME.name {
            0
        } else if kind.name == BOX_SPRING.name {
            2
        } else if kind.regulated == Some(RegulatedItem::Mattress) {
            1
        } else {
            return false;
        };
        let words = self.words;
        let Some((_, left)) = self.beds.iter_mut().rev().find(|(at, left)| {
            *at < i && i - *at <= 8 && left[part] > 0 && !words[*at..i].contains(&"|")
        }) else {
            return false;
        };
        left[part] = left[part].saturating_sub(quantity);
        true
    }

    /// Things the catalogue does not know: "a jet ski", "2 pallets", "my kayak" (after "get rid
    /// of"). Not after a preposition ("in a rush"), not in an address or a time, not a request,
    /// a place, a person or a unit of time ("a quote", "2 dogs", "10 minutes"), and a number of
    /// two or more only before a plural ("9 Elm" is a street).
    fn unknowns(&mut self) {
        let n = self.words.len();
        let mut from = 0;
        while from < n {
            let to = (from..n).find(|k| is_break(self.words[*k])).unwrap_or(n);
            self.unknowns_in(from, to);
            from = to + 1;
        }
    }

    fn unknowns_in(&mut self, from: usize, to: usize) {
        let clause = &self.words[from..to];
        if looks_like_address_or_time(clause) {
            return;
        }
        let cued = clause.iter().any(|w| HAUL_CUES.contains(w));
        let mut j = from;
        while j < to {
            if self.taken[j] {
                j += 1;
                continue;
            }
            let word = self.words[j];
            let possessive = cued && matches!(word, "my" | "our" | "the" | "this" | "these");
            let Some((mut count, _)) = count_ending_at(self.words, j)
                .filter(|(n, _)| *n >= 1)
                .or(possessive.then_some((1, j)))
            else {
                j += 1;
                continue;
            };
            let digits = word.bytes().all(|b| b.is_ascii_digit());
            let labelled = self.words[from.max(j.saturating_sub(3))..j]
                .iter()
                .any(|w| {
                    matches!(
                        *w,
                        "code"
                            | "number"
                            | "no"
                            | "unit"
                            | "apt"
                            | "suite"
                            | "pin"
                            | "zip"
                            | "lockbox"
                            | "room"
                            | "exit"
                            | "route"
                            | "gate"
                            | "box"
                    )
                });
            let after_preposition = j > from && is_preposition(self.words[j - 1]);
            if labelled
                || after_preposition
                || count > MAX_UNKNOWN_QUANTITY
                || (digits && count < 2)
            {
                j += 1;
                continue;
            }
            // Past the rest of the count and its adjectives to the noun.
            let mut k = j + 1;
            while k < to && !self.taken[k] {
                if let Some((more, _)) = count_ending_at(self.words, k) {
                    count = more;
                } else if !is_between(self.words[k]) {
                    break;
                }
                k += 1;
            }
            let noun_start = k;
            while k < to && k < noun_start + 3 && !self.taken[k] && is_noun_like(self.words[k]) {
                k += 1;
            }
            let run = &self.words[noun_start..k];
            // "a pool table": the words were its modifiers; "one less thing": a non-thing's.
            let followed_by_item = k < to
                && (self.taken[k]
                    || NOT_THINGS.contains(&self.words[k])
                    || NOT_THINGS.contains(&singular(self.words[k]).as_str()));
            let plural = run
                .last()
                .is_some_and(|w| singular(w) != *w || *w == "people");
            if run.is_empty()
                || followed_by_item
                || count == 0
                || run
                    .iter()
                    .any(|w| NOT_THINGS.contains(w) || NOT_THINGS.contains(&singular(w).as_str()))
                || ((count >= 2 || digits) && !plural)
            {
                j += 1;
                continue;
            }
            let count = if plural && count == 1 && possessive {
                2
            } else {
                count
            };
            let mut parts: Vec<String> = run.iter().map(|w| (*w).to_owned()).collect();
            if let Some(last) = parts.last_mut() {
                *last = singular(last);
            }
            self.take(j, k);
            push_line(
                &mut self.result,
                &parts.join(" "),
                count,
                UNKNOWN_CUBIC_FEET,
                None,
                false,
                Origin::Unknown,
            );
            j = k;
        }
    }
}

/// A word that may be part of a thing's name: letters only, not a function word, a
/// preposition, a count or an adverb.
fn is_noun_like(word: &str) -> bool {
    word.len() >= 3
        && word.bytes().all(|b| b.is_ascii_lowercase())
        && !is_function_word(word)
        && !is_preposition(word)
        && !is_break(word)
        && number_word(word).is_none()
        && !word.ends_with("ly")
        && (!word.ends_with("ing")
            || matches!(
                word,
                "painting"
                    | "railing"
                    | "siding"
                    | "flooring"
                    | "decking"
                    | "fencing"
                    | "bedding"
                    | "clothing"
                    | "shelving"
                    | "carpeting"
                    | "roofing"
                    | "ceiling"
            ))
        && !word.ends_with("ed")
}

/// The longest catalogue name (or not-an-item phrase) starting at word `i`, and its length.
fn match_index(singulars: &[String], i: usize) -> Option<(Option<&'static Kind>, usize)> {
    INDEX.iter().find_map(|(parts, kind)| {
        let fits = parts.len() <= singulars.len().saturating_sub(i)
            && parts
                .iter()
                .enumerate()
                .all(|(k, p)| singulars[i + k] == *p);
        fits.then_some((*kind, parts.len()))
    })
}

fn looks_like_address_or_time(words: &[&str]) -> bool {
    words.iter().any(|w| {
        is_street_word(w)
            || (w.len() == 5 && w.bytes().all(|b| b.is_ascii_digit()))
            || w.contains(':')
            || matches!(
                *w,
                "am" | "pm"
                    | "oclock"
                    | "tomorrow"
                    | "today"
                    | "tonight"
                    | "monday"
                    | "tuesday"
                    | "wednesday"
                    | "thursday"
                    | "friday"
                    | "saturday"
                    | "sunday"
                    | "address"
                    | "located"
                    | "live"
                    | "zip"
            )
    })
}

/// Street-name words ("St", "Ave"): a clause with one is an address, not an item.
fn is_street_word(word: &str) -> bool {
    matches!(
        word,
        "st" | "street"
            | "ave"
            | "avenue"
            | "rd"
            | "road"
            | "dr"
            | "drive"
            | "ln"
            | "lane"
            | "blvd"
            | "ct"
            | "court"
            | "way"
            | "pl"
            | "hwy"
            | "pkwy"
            | "apt"
            | "cir"
            | "circle"
            | "ter"
            | "terrace"
            | "trl"
            | "trail"
    )
}

fn push_kind(result: &mut Recognition, kind: &Kind, quantity: u32) {
    if quantity == 0 {
        return;
    }
    result.items.push(ItemLine {
        description: kind.name.to_owned(),
        quantity: quantity.min(MAX_QUANTITY),
        cubic_feet_each: kind.cubic_feet,
        regulated: kind.regulated,
        heavy: kind.heavy,
        needs_review: quantity > MAX_QUANTITY,
        bedload: None,
        origin: Origin::Catalog,
    });
}

fn push_line(
    result: &mut Recognition,
    description: &str,
    quantity: u32,
    cubic_feet_each: f64,
    regulated: Option<RegulatedItem>,
    heavy: bool,
    origin: Origin,
) {
    if quantity == 0 {
        return;
    }
    result.items.push(ItemLine {
        description: description.to_owned(),
        quantity: quantity.min(MAX_QUANTITY),
        cubic_feet_each,
        regulated,
        heavy,
        needs_review: true,
        bedload: None,
        origin,
    });
}

/// Whether the word at `i` is negated: "no stairs", "zero stairs", "without an elevator", "not
/// at the curb", "no chemicals or needles".
fn negated(words: &[&str], i: usize) -> bool {
    words[i.saturating_sub(3)..i]
        .iter()
        .rev()
        .take_while(|w| **w != "|")
        .any(|w| {
            matches!(
                *w,
                "no" | "not"
                    | "zero"
                    | "without"
                    | "none"
                    | "never"
                    | "nothing"
                    | "dont"
                    | "doesnt"
                    | "isnt"
                    | "arent"
                    | "0"
            )
        })
        || matches!(words.get(i + 1).copied(), Some("none" | "0"))
}

/// Access and hazards, read across the whole message.
fn scan_flags(words: &[&str], result: &mut Recognition) {
    let mut flights = 0u32;
    let mut none = false;
    let mut ground = false;
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        let prev = if i > 0 { words[i - 1] } else { "" };
        let no = negated(words, i);
        match *word {
            "curb" | "curbside" | "kerb" | "roadside" if !no => result.curbside = true,
            "flight" | "flights" => {
                let n = i
                    .checked_sub(1)
                    .and_then(|p| count_ending_at(words, p))
                    .map_or(1, |(n, _)| n);
                if n == 0 || no {
                    none = true;
                } else {
                    flights = flights.max(n.min(20));
                }
            }
            "stairs" | "stair" | "staircase" | "stairway" | "steps" => {
                if no {
                    none = true;
                } else {
                    flights = flights.max(1);
                }
            }
            "upstairs" | "downstairs" | "attic" if !no => flights = flights.max(1),
            "basement" if !no && !matches!(prev, "walkout" | "out") => flights = flights.max(1),
            "floor" => {
                let level = match prev {
                    "second" | "2nd" => 1,
                    "third" | "3rd" => 2,
                    "fourth" | "4th" => 3,
                    "fifth" | "5th" => 4,
                    "sixth" | "6th" => 5,
                    "ground" | "first" | "1st" | "main" | "bottom" | "street" => {
                        ground = true;
                        0
                    }
                    _ => 0,
                };
                flights = flights.max(level);
            }
            "level" | "story" | "storey"
                if matches!(prev, "ground" | "street" | "single" | "one" | "main") =>
            {
                ground = true;
            }
            "elevator" | "elevators" | "lift" => {
                let noun = *word != "lift"
                    || matches!(
                        prev,
                        "a" | "an" | "the" | "freight" | "service" | "has" | "have" | "theres"
                    );
                let broken = words[i + 1..words.len().min(i + 4)]
                    .iter()
                    .any(|w| matches!(*w, "broken" | "out" | "down" | "not" | "doesnt" | "isnt"));
                if noun && !no && !broken {
                    none = true;
                }
            }
            "ft" | "feet" | "foot" if prev != "cubic" => {
                if let Ok(n) = prev.parse::<u32>() {
                    result.carry_feet = result.carry_feet.max(n.min(5_000));
                }
            }
            // Pounds only: tons go with bedload (concrete, dirt), priced by the yard.
            "lb" | "lbs" | "pound" | "pounds" => {
                if let Ok(n) = prev.parse::<u32>() {
                    result.weight_lbs = result.weight_lbs.max(Some(n.min(100_000)));
                }
            }
            "window" => {
                let before = if i > 1 { words[i - 2] } else { "" };
                if matches!(prev, "tight" | "narrow" | "short" | "exact" | "specific")
                    || (prev == "hour" && matches!(before, "one" | "1" | "an" | "half"))
                {
                    result.tight_window = true;
                }
            }
            "exactly" | "promptly"
                if next == "at" || next.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                result.tight_window = true;
            }
            _ if no => {}
            "needle" | "needles" | "syringe" | "syringes" | "sharps" => {
                result.hazards.insert(Hazard::Needles);
            }
            "chemical" | "chemicals" | "pesticide" | "pesticides" | "solvent" | "solvents"
            | "antifreeze" | "gasoline" | "bleach" | "thinner" | "herbicide" | "herbicides" => {
                result.hazards.insert(Hazard::Chemicals);
            }
            "asbestos" => {
                result.hazards.insert(Hazard::Asbestos);
            }
            "biohazard" | "blood" | "feces" | "poop" | "urine" | "mold" | "mould" => {
                result.hazards.insert(Hazard::Biohazard);
            }
            "spill" | "spilled" | "spilt" if prev == "paint" || next == "paint" => {
                result.hazards.insert(Hazard::PaintSpill);
            }
            _ => {}
        }
    }
    if none {
        result.no_stairs = true;
        result.stairs_flights = 0;
    } else if flights > 0 {
        result.stairs_flights = flights;
    } else if ground {
        result.no_stairs = true;
    }
}

#[cfg(test)]
#[path = "items_tests.rs"]
mod understanding;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_markup_and_big_numbers_are_not_things_to_haul() {
        for text in [
            "the gate code is 4821 <script>alert(1)</script>",
            "the gate code is 4821 <img src=x onerror=alert(1)>",
            "apt 12 windows face the street",
            "it was built in 1998 windows and all",
        ] {
            let r = recognise(text);
            assert!(r.items.is_empty(), "{text}: {:?}", r.items);
        }
        assert_eq!(recognise("2 pallets").items.len(), 1);
    }

    #[test]
    fn weight_and_a_tight_window_are_read_and_priced() {
        let r = recognise("a piano, about 3500 lbs, and I need a one-hour window");
        assert_eq!(r.weight_lbs, Some(3500));
        assert!(r.tight_window);
        assert_eq!(r.items.len(), 1, "{:?}", r.items);
        let spec = r.job_spec();
        assert_eq!((spec.weight_lbs, spec.tight_window), (Some(3500), true));
        let later = recognise("oh and it has to be exactly at 9am");
        assert!(later.tight_window && !later.is_empty());
        let plain = recognise("a couch and 5 bags of trash");
        assert_eq!((plain.weight_lbs, plain.tight_window), (None, false));
    }
    use proptest::prelude::*;

    fn lines(text: &str) -> Vec<(String, u32, bool)> {
        recognise(text)
            .items
            .into_iter()
            .map(|i| (i.description, i.quantity, i.needs_review))
            .collect()
    }

    fn known(items: &[(&str, u32)]) -> Vec<(String, u32, bool)> {
        items
            .iter()
            .map(|(d, q)| ((*d).to_owned(), *q, false))
            .collect()
    }

    #[test]
    fn the_reference_message() {
        let r = recognise("Hi, I need a couch, a fridge and 5 bags of trash picked up");
        assert_eq!(
            r.items
                .iter()
                .map(|i| (i.description.as_str(), i.quantity))
                .collect::<Vec<_>>(),
            [("couch", 1), ("refrigerator", 1), ("bag of trash", 5)]
        );
        let spec = r.job_spec();
        assert_eq!(spec.regulated.get(&RegulatedItem::FridgeOrAc), Some(&1));
        assert!((spec.volume.get() - 140.0 / 27.0).abs() < 1e-9);
        assert!(spec.confidence >= 0.7);
    }

    #[test]
    fn quantities_in_words_digits_and_vague_amounts() {
        assert_eq!(lines("2 mattresses"), known(&[("mattress", 2)]));
        assert_eq!(lines("a couple chairs"), known(&[("chair", 2)]));
        assert_eq!(lines("like 10 bags"), known(&[("bag of trash", 10)]));
        assert_eq!(
            lines("a few boxes and three old tires"),
            known(&[("box", 3), ("tire", 3)])
        );
        assert_eq!(
            lines("a dozen bags of garbage"),
            known(&[("bag of trash", 12)])
        );
    }

    #[test]
    fn synonyms_plurals_and_longest_names_win() {
        assert_eq!(lines("a sofa"), lines("a couch"));
        assert_eq!(lines("2 refrigerators"), known(&[("refrigerator", 2)]));
        assert_eq!(lines("a mini fridge"), known(&[("mini fridge", 1)]));
        assert_eq!(
            lines("a king mattress and a box spring"),
            known(&[("mattress (king)", 1), ("box spring", 1)])
        );
        assert_eq!(
            lines("an L-shaped sectional couch"),
            known(&[("sectional sofa", 1)])
        );
        assert_eq!(
            lines("washer & dryer"),
            known(&[("washer", 1), ("dryer", 1)])
        );
    }

    #[test]
    fn unknown_items_are_kept_and_flagged() {
        // (A kayak, the example here once, is in the catalogue now.)
        let r = recognise("a couch and a jet ski");
        assert_eq!(
            lines("a couch and a jet ski"),
            vec![
                ("couch".to_owned(), 1, false),
                ("jet ski".to_owned(), 1, true)
            ]
        );
        assert!(
            r.confidence() < 0.7,
            "an unknown item sends the quote to the owner"
        );
        assert_eq!(lines("2 pallets"), vec![("pallet".to_owned(), 2, true)]);
    }

    #[test]
    fn addresses_times_and_chatter_are_not_items() {
        assert!(recognise("123 Main St, Canton GA 30114").is_empty());
        assert!(recognise("Can you come tomorrow at 10am?").is_empty());
        assert!(recognise("1").is_empty());
        assert!(recognise("Hola, necesito ayuda").is_empty());
        assert!(recognise("🛋️🛋️ ???").is_empty());
        assert!(recognise("").is_empty());
    }

    #[test]
    fn access_and_hazards() {
        let r = recognise(
            "It's in the basement, 2 flights of stairs, about a 150 ft carry. Some needles and a paint spill.",
        );
        assert_eq!(r.stairs_flights, 2);
        assert_eq!(r.carry_feet, 150);
        assert!(r.hazards.contains(&Hazard::Needles));
        assert!(r.hazards.contains(&Hazard::PaintSpill));
        assert!(
            !r.items.iter().any(|i| i.description.starts_with("paint")),
            "a spill is not a paint can"
        );
        assert!(recognise("everything is at the curb").curbside);
        assert_eq!(recognise("a dresser on the third floor").stairs_flights, 2);
    }

    #[test]
    fn regulated_items_are_counted_for_their_fees() {
        let spec = recognise("3 tires, a TV, 2 cans of paint and a propane tank").job_spec();
        assert_eq!(spec.regulated.get(&RegulatedItem::Tire), Some(&3));
        assert_eq!(spec.regulated.get(&RegulatedItem::Screen), Some(&1));
        assert_eq!(spec.regulated.get(&RegulatedItem::PaintGallon), Some(&2));
        assert_eq!(spec.regulated.get(&RegulatedItem::PropaneTank), Some(&1));
    }

    #[test]
    fn bedload_is_priced_by_the_yard() {
        let spec = recognise("3 yards of concrete and a couch").job_spec();
        assert!((spec.bedload_concrete.get() - 3.0).abs() < 1e-9);
        assert!(
            (spec.volume.get() - 60.0 / 27.0).abs() < 1e-9,
            "the couch is a load of its own"
        );
        let vague = recognise("some dirt");
        assert!((vague.job_spec().bedload_dirt.get() - 1.0).abs() < 1e-9);
        assert!(
            vague.items[0].needs_review,
            "a guessed amount is for the owner to check"
        );
        let half = recognise("half a yard of pavers").job_spec();
        assert!((half.bedload_concrete.get() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn absurd_quantities_are_capped_and_flagged() {
        let r = recognise("999999 couches");
        assert_eq!(r.items[0].quantity, MAX_QUANTITY);
        assert!(r.items[0].needs_review);
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC{0,300}") {
            let r = recognise(&text);
            let spec = r.job_spec();
            prop_assert!(spec.volume.get() >= 0.0);
            prop_assert!((0.0..=1.0).contains(&spec.confidence));
        }

        #[test]
        fn never_panics_on_item_like_text(words in proptest::collection::vec("(a|an|2|10|like|couch|bags|of|trash|and|,|fridge|kayak|stairs|ft|150|\\.)", 0..30)) {
            let text = words.join(" ");
            let r = recognise(&text);
            prop_assert!(r.items.iter().all(|i| i.quantity >= 1 && i.quantity <= MAX_QUANTITY));
        }
    }
}

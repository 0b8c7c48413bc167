//! Item recognition: what a customer wants hauled, read from free text.
//!
//! "Hi, I need a couch, a fridge and like 10 bags of trash picked up" becomes a couch, a fridge
//! (a regulated item) and ten bags, each with its volume; stairs, a long carry, curbside pickup and
//! hazards are picked up on the way. Something that looks like an item but is not in the catalog
//! ("a kayak") is kept, flagged for the owner to review, and lowers the estimate's confidence: it
//! is never silently dropped.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::pricing::{CubicYards, Hazard, JobSpec, RegulatedItem};

/// A kind of item the catalog knows.
#[derive(Debug, Clone, Copy)]
struct Kind {
    /// The name shown on quotes and job items.
    name: &'static str,
    /// The words that name it, singular; multi-word names are matched as a whole.
    names: &'static [&'static str],
    /// Its typical volume in cubic feet.
    cubic_feet: f64,
    /// A disposal fee class, if it has one.
    regulated: Option<RegulatedItem>,
    /// Heavy enough to take longer (pianos, hot tubs).
    heavy: bool,
}

const fn kind(name: &'static str, names: &'static [&'static str], cubic_feet: f64) -> Kind {
    Kind {
        name,
        names,
        cubic_feet,
        regulated: None,
        heavy: false,
    }
}

const fn regulated(
    name: &'static str,
    names: &'static [&'static str],
    cubic_feet: f64,
    class: RegulatedItem,
) -> Kind {
    Kind {
        name,
        names,
        cubic_feet,
        regulated: Some(class),
        heavy: false,
    }
}

const fn heavy(name: &'static str, names: &'static [&'static str], cubic_feet: f64) -> Kind {
    Kind {
        name,
        names,
        cubic_feet,
        regulated: None,
        heavy: true,
    }
}

/// The catalog: typical volumes from the pricebook's guide (27 ft³ = 1 yd³).
const CATALOG: &[Kind] = &[
    kind(
        "sectional sofa",
        &["sectional", "sectional sofa", "sectional couch"],
        120.0,
    ),
    kind("loveseat", &["loveseat", "love seat"], 35.0),
    kind(
        "couch",
        &["couch", "sofa", "futon", "sofa bed", "sleeper sofa"],
        60.0,
    ),
    kind("recliner", &["recliner", "lazy boy", "lazyboy"], 25.0),
    kind("armchair", &["armchair", "arm chair", "easy chair"], 15.0),
    kind(
        "chair",
        &["chair", "dining chair", "office chair", "stool"],
        8.0,
    ),
    regulated(
        "mattress (twin)",
        &["twin mattress"],
        25.0,
        RegulatedItem::Mattress,
    ),
    regulated(
        "mattress (full)",
        &["full mattress", "full size mattress", "double mattress"],
        45.0,
        RegulatedItem::Mattress,
    ),
    regulated(
        "mattress (king)",
        &["king mattress", "king size mattress"],
        70.0,
        RegulatedItem::Mattress,
    ),
    regulated(
        "mattress",
        &["mattress", "queen mattress", "queen size mattress"],
        60.0,
        RegulatedItem::Mattress,
    ),
    regulated(
        "box spring",
        &["box spring", "boxspring"],
        40.0,
        RegulatedItem::Mattress,
    ),
    regulated(
        "mini fridge",
        &[
            "mini fridge",
            "mini refrigerator",
            "minifridge",
            "dorm fridge",
        ],
        10.0,
        RegulatedItem::FridgeOrAc,
    ),
    regulated(
        "refrigerator",
        &["fridge", "refrigerator", "refridgerator", "frig"],
        60.0,
        RegulatedItem::FridgeOrAc,
    ),
    regulated(
        "chest freezer",
        &["freezer", "chest freezer", "deep freezer"],
        15.0,
        RegulatedItem::FridgeOrAc,
    ),
    regulated(
        "air conditioner",
        &["air conditioner", "ac unit", "window unit", "a c unit"],
        8.0,
        RegulatedItem::FridgeOrAc,
    ),
    kind("washer", &["washer", "washing machine"], 28.0),
    kind("dryer", &["dryer", "clothes dryer"], 28.0),
    kind("stove", &["stove", "oven", "range"], 30.0),
    kind("dishwasher", &["dishwasher"], 20.0),
    kind("microwave", &["microwave"], 3.0),
    heavy("treadmill", &["treadmill"], 35.0),
    heavy("elliptical", &["elliptical"], 35.0),
    kind(
        "dresser",
        &["dresser", "chest of drawers", "armoire", "wardrobe"],
        35.0,
    ),
    kind(
        "nightstand",
        &["nightstand", "night stand", "end table", "side table"],
        6.0,
    ),
    kind("desk", &["desk"], 30.0),
    kind(
        "table",
        &["table", "dining table", "kitchen table", "coffee table"],
        20.0,
    ),
    kind(
        "bed frame",
        &["bed frame", "bedframe", "bed", "headboard", "crib"],
        20.0,
    ),
    kind(
        "bookshelf",
        &["bookshelf", "bookcase", "shelf", "shelving unit"],
        20.0,
    ),
    kind(
        "cabinet",
        &["cabinet", "filing cabinet", "file cabinet"],
        15.0,
    ),
    kind(
        "entertainment center",
        &["entertainment center", "tv stand"],
        30.0,
    ),
    heavy("piano", &["piano", "upright piano"], 40.0),
    heavy("hot tub", &["hot tub", "jacuzzi", "spa"], 150.0),
    heavy("water heater", &["water heater", "hot water heater"], 15.0),
    heavy("safe", &["safe", "gun safe"], 10.0),
    regulated(
        "TV",
        &["tv", "television", "flat screen", "flatscreen"],
        6.0,
        RegulatedItem::Screen,
    ),
    regulated(
        "monitor",
        &["monitor", "computer monitor"],
        2.0,
        RegulatedItem::Screen,
    ),
    regulated("tire", &["tire", "tyre"], 6.0, RegulatedItem::Tire),
    regulated(
        "paint (5 gal)",
        &[
            "5 gallon paint",
            "5 gallon bucket of paint",
            "five gallon bucket of paint",
            "bucket of paint",
            "paint bucket",
        ],
        1.5,
        RegulatedItem::PaintFiveGallon,
    ),
    regulated(
        "paint (1 gal)",
        &["paint can", "can of paint", "gallon of paint", "paint"],
        0.5,
        RegulatedItem::PaintGallon,
    ),
    regulated(
        "propane tank",
        &["propane tank", "propane"],
        2.0,
        RegulatedItem::PropaneTank,
    ),
    kind(
        "bag of trash",
        &[
            "bag",
            "trash bag",
            "garbage bag",
            "bag of trash",
            "bag of garbage",
            "contractor bag",
            "hefty bag",
        ],
        4.0,
    ),
    kind("box", &["box", "moving box", "tote", "bin"], 3.0),
    kind("bicycle", &["bike", "bicycle"], 10.0),
    kind("grill", &["grill", "bbq", "barbecue"], 15.0),
    kind("lawn mower", &["lawn mower", "lawnmower", "mower"], 12.0),
    kind("rug", &["rug", "carpet", "area rug"], 10.0),
    kind("computer", &["computer", "printer", "pc"], 3.0),
    kind("lamp", &["lamp"], 3.0),
    kind("mirror", &["mirror"], 4.0),
    kind("trampoline", &["trampoline"], 40.0),
    kind("swing set", &["swing set", "playset"], 60.0),
    kind("toilet", &["toilet"], 8.0),
    kind("door", &["door"], 10.0),
];

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
    /// Not in the catalog: kept for the owner to review.
    pub needs_review: bool,
    /// Bedload (concrete, dirt), priced by the yard rather than by trailer volume.
    #[serde(default)]
    pub bedload: Option<Bedload>,
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
}

/// Volume assumed for an item the catalog does not know.
const UNKNOWN_CUBIC_FEET: f64 = 15.0;

/// The most of an unknown thing taken as a count ("40 pallets"); a larger number is a code,
/// a year or a price, not a quantity.
const MAX_UNKNOWN_QUANTITY: u32 = 100;

impl Recognition {
    /// Whether the message mentioned nothing to haul.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.weight_lbs.is_none() && !self.tight_window
    }

    /// Adds what `other` (a later message) says to this recognition.
    pub fn merge(&mut self, other: Recognition) {
        self.items.extend(other.items);
        self.hazards.extend(other.hazards);
        self.curbside |= other.curbside;
        self.stairs_flights = self.stairs_flights.max(other.stairs_flights);
        self.carry_feet = self.carry_feet.max(other.carry_feet);
        self.weight_lbs = self.weight_lbs.max(other.weight_lbs);
        self.tight_window |= other.tight_window;
    }

    /// How sure an estimate from this can be, 0 to 1.
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

    /// The pricing engine's input for these items.
    pub fn job_spec(&self) -> JobSpec {
        let mut spec = JobSpec {
            hazards: self.hazards.clone(),
            curbside: self.curbside,
            stairs_flights: self.stairs_flights,
            carry_feet: self.carry_feet,
            confidence: self.confidence(),
            weight_lbs: self.weight_lbs,
            tight_window: self.tight_window,
            ..JobSpec::default()
        };
        let mut feet = 0.0;
        let (mut concrete, mut dirt) = (0.0, 0.0);
        for item in &self.items {
            let item_feet = item.cubic_feet_each * f64::from(item.quantity);
            match item.bedload {
                Some(Bedload::Concrete) => concrete += item_feet / 27.0,
                Some(Bedload::Dirt) => dirt += item_feet / 27.0,
                None => feet += item_feet,
            }
            if let Some(class) = item.regulated {
                *spec.regulated.entry(class).or_default() += item.quantity;
            }
        }
        spec.volume = CubicYards::from_cubic_feet(feet);
        spec.bedload_concrete = CubicYards::new(concrete);
        spec.bedload_dirt = CubicYards::new(dirt);
        spec
    }
}

/// The most of one item a message can order: more is a typo or a joke, and is kept for review.
const MAX_QUANTITY: u32 = 500;

/// Reads the items, hazards and access details in `text`.
pub fn recognise(text: &str) -> Recognition {
    let mut result = Recognition::default();
    let normalised = normalise(text);
    let words: Vec<&str> = normalised.split_whitespace().collect();
    scan_flags(&words, &mut result);
    for segment in segments(&words) {
        scan_segment(segment, &mut result);
    }
    result
}

/// Lower case, letters and digits only; clause breaks (`,` `;` `.` `!` `?` new line) become
/// the marker word `|`.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ',' | ';' | '!' | '?' | '\n' | '(' | ')' | ':' => out.push_str(" | "),
            // A dot between digits is a decimal point; otherwise it ends a clause.
            '.' if out.ends_with(|p: char| p.is_ascii_digit())
                && chars.peek().is_some_and(|n| n.is_ascii_digit()) =>
            {
                out.push('.')
            }
            '.' => out.push_str(" | "),
            '&' | '+' => out.push_str(" and "),
            '-' | '/' | '_' => out.push(' '),
            '\'' | '’' => {}
            c if c.is_alphanumeric() => out.extend(c.to_lowercase()),
            _ => out.push(' '),
        }
    }
    out
}

/// Splits the words into clauses at `|`, "and", "plus", "also", "with".
fn segments<'a>(words: &'a [&'a str]) -> impl Iterator<Item = &'a [&'a str]> {
    words
        .split(|w| matches!(*w, "|" | "and" | "plus" | "also" | "with" | "n"))
        .filter(|s| !s.is_empty())
}

/// Singular of a word, good enough for item names ("boxes" → "box", "mattresses" → "mattress").
fn singular(word: &str) -> String {
    for (plural, single) in [
        ("ies", "y"),
        ("sses", "ss"),
        ("xes", "x"),
        ("ches", "ch"),
        ("shes", "sh"),
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

/// A quantity word: digits, number words, "a couple", "a few", "a dozen".
fn quantity(word: &str) -> Option<u32> {
    if let Ok(n) = word.parse::<u32>() {
        return Some(n);
    }
    let n = match word {
        "a" | "an" | "one" | "single" | "another" => 1,
        "two" | "pair" | "couple" => 2,
        "three" | "few" => 3,
        "four" | "several" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" | "dozen" => 12,
        "fifteen" => 15,
        "twenty" => 20,
        "thirty" => 30,
        "fifty" => 50,
        _ => return None,
    };
    Some(n)
}

/// Words that may stand between a quantity and its item ("like 10 big old bags").
fn is_filler(word: &str) -> bool {
    matches!(
        word,
        "like"
            | "about"
            | "around"
            | "maybe"
            | "approximately"
            | "roughly"
            | "some"
            | "of"
            | "the"
            | "big"
            | "small"
            | "large"
            | "huge"
            | "little"
            | "old"
            | "used"
            | "broken"
            | "heavy"
            | "full"
            | "black"
            | "white"
            | "wooden"
            | "wood"
            | "metal"
            | "plastic"
            | "leather"
            | "queen"
            | "king"
            | "twin"
            | "size"
            | "sized"
            | "my"
            | "our"
            | "these"
            | "those"
            | "extra"
            | "more"
            | "other"
            | "few"
            | "couple"
            | "or"
            | "so"
            | "dozen"
            | "just"
    )
}

/// Words that end a possible unknown item: they are about the request, not a thing.
fn is_not_an_item(word: &str) -> bool {
    is_street_word(word)
        || matches!(
            word,
            "am" | "pm"
                | "oclock"
                | "minute"
                | "minutes"
                | "hour"
                | "hours"
                | "day"
                | "days"
                | "week"
                | "weeks"
                | "month"
                | "months"
                | "year"
                | "years"
                | "time"
                | "times"
                | "pl"
                | "hwy"
                | "highway"
                | "apt"
                | "unit"
                | "suite"
                | "floor"
                | "flight"
                | "flights"
                | "stair"
                | "stairs"
                | "step"
                | "steps"
                | "ft"
                | "feet"
                | "foot"
                | "yard"
                | "yards"
                | "lb"
                | "lbs"
                | "pound"
                | "pounds"
                | "gallon"
                | "gallons"
                | "question"
                | "quote"
                | "price"
                | "estimate"
                | "sec"
                | "second"
                | "moment"
                | "lot"
                | "bunch"
                | "ton"
                | "tons"
                | "thing"
                | "things"
                | "stuff"
                | "junk"
                | "trash"
                | "pickup"
                | "pick"
                | "load"
                | "truck"
                | "trailer"
                | "dollar"
                | "dollars"
                | "bucks"
                | "percent"
        )
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
            | "is"
            | "are"
            | "was"
            | "be"
            | "to"
            | "for"
            | "at"
            | "in"
            | "on"
            | "need"
            | "needs"
            | "want"
            | "have"
            | "has"
            | "got"
            | "get"
            | "can"
            | "could"
            | "would"
            | "will"
            | "please"
            | "thanks"
            | "thank"
            | "hi"
            | "hello"
            | "hey"
            | "yes"
            | "no"
            | "ok"
            | "okay"
            | "sure"
            | "that"
            | "this"
            | "there"
            | "here"
            | "up"
            | "out"
            | "away"
            | "off"
            | "removed"
            | "hauled"
            | "picked"
            | "gone"
            | "taken"
            | "good"
            | "great"
            | "bit"
            | "while"
            | "chance"
            | "way"
            | "do"
            | "does"
            | "did"
            | "not"
            | "if"
            | "but"
    )
}

/// Bedload in a clause: "3 yards of concrete", "some dirt" (a yard, for the owner to check).
fn scan_bedload(words: &[&str], result: &mut Recognition) -> bool {
    let Some((at, kind)) = words.iter().enumerate().find_map(|(i, w)| {
        let kind = match *w {
            "concrete" | "tile" | "tiles" | "paver" | "pavers" | "brick" | "bricks" | "rubble" => {
                Bedload::Concrete
            }
            "dirt" | "soil" | "sand" | "topsoil" => Bedload::Dirt,
            _ => return None,
        };
        Some((i, kind))
    }) else {
        return false;
    };
    // "<n> (cubic) yards (of)" before the material.
    let yards = words[..at]
        .iter()
        .enumerate()
        .rev()
        .take(5)
        .find_map(|(i, w)| {
            if !matches!(*w, "yard" | "yards" | "yd" | "yds") {
                return None;
            }
            let mut before = words[..i].iter().rev().filter(|w| **w != "cubic");
            let first = *before.next()?;
            // "half a yard"
            if matches!(first, "a" | "an") && before.next() == Some(&"half") {
                return Some(0.5);
            }
            match first {
                "half" => Some(0.5),
                other => other
                    .parse::<f64>()
                    .ok()
                    .or_else(|| quantity(other).map(f64::from)),
            }
        });
    let name = match kind {
        Bedload::Concrete => "concrete/tile/pavers",
        Bedload::Dirt => "clean dirt",
    };
    let given = yards.filter(|y| y.is_finite() && *y > 0.0 && *y <= 100.0);
    let yards = given.unwrap_or(1.0);
    result.items.push(ItemLine {
        description: format!("{name} ({yards} yd³)"),
        quantity: 1,
        cubic_feet_each: yards * 27.0,
        regulated: None,
        heavy: true,
        needs_review: given.is_none(),
        bedload: Some(kind),
    });
    true
}

fn scan_segment(words: &[&str], result: &mut Recognition) {
    if scan_bedload(words, result) {
        return;
    }
    let singulars: Vec<String> = words.iter().map(|w| singular(w)).collect();
    let mut i = 0;
    let mut found_any = false;
    while i < words.len() {
        let Some((kind, len)) = match_kind(&singulars, i) else {
            i += 1;
            continue;
        };
        // Paint in a spill is a hazard, not an item.
        if kind.name.starts_with("paint")
            && words.get(i + len).is_some_and(|w| w.starts_with("spill"))
        {
            found_any = true;
            i += len;
            continue;
        }
        let count = quantity_before(words, i).unwrap_or(1);
        push_item(
            result,
            kind.name,
            count,
            kind.cubic_feet,
            kind.regulated,
            kind.heavy,
            count > MAX_QUANTITY,
        );
        found_any = true;
        i += len;
        // "5 bags of trash": the words after "of" describe this item.
        if words.get(i) == Some(&"of") {
            i += 2;
        }
    }
    if !found_any {
        scan_unknown(words, result);
    }
}

/// The longest catalog name starting at word `i`.
fn match_kind(singulars: &[String], i: usize) -> Option<(&'static Kind, usize)> {
    let mut best: Option<(&'static Kind, usize)> = None;
    for kind in CATALOG {
        for name in kind.names {
            let parts: Vec<&str> = name.split(' ').collect();
            let fits = parts.len() <= singulars.len() - i
                && parts.iter().enumerate().all(|(k, p)| {
                    singulars[i + k] == *p
                        || (k + 1 < parts.len() && singular(p) == singulars[i + k])
                });
            if fits && best.is_none_or(|(_, len)| parts.len() > len) {
                best = Some((kind, parts.len()));
            }
        }
    }
    best
}

/// The quantity in the few words before position `i`, skipping fillers.
fn quantity_before(words: &[&str], i: usize) -> Option<u32> {
    let mut j = i;
    let mut skipped = 0;
    while j > 0 && skipped < 4 {
        j -= 1;
        let word = words[j];
        if let Some(n) = quantity(word) {
            // "a couple", "a few", "a dozen": the second word decides.
            if matches!(word, "a" | "an")
                && let Some(next) = words.get(j + 1).copied().filter(|_| j + 1 < i)
                && let Some(m) = quantity(next)
            {
                return Some(m);
            }
            return Some(n);
        }
        if !is_filler(word) {
            return None;
        }
        skipped += 1;
    }
    None
}

/// A clause with a quantity and a noun the catalog does not know: "a kayak", "2 pallets".
fn scan_unknown(words: &[&str], result: &mut Recognition) {
    if looks_like_address_or_time(words) {
        return;
    }
    for (i, word) in words.iter().enumerate() {
        let Some(count) = quantity(word) else {
            continue;
        };
        // A code, a number or a unit ("gate code is 4821", "apt 12") names no things; nor does a
        // count no one has of an unknown thing.
        let labelled = words[i.saturating_sub(3)..i].iter().any(|w| {
            matches!(
                *w,
                "code" | "number" | "no" | "unit" | "apt" | "suite" | "pin" | "zip" | "lockbox"
            )
        });
        if labelled || count > MAX_UNKNOWN_QUANTITY {
            continue;
        }
        let rest: Vec<&str> = words[i + 1..]
            .iter()
            .copied()
            .skip_while(|w| is_filler(w) || quantity(w).is_some())
            .take_while(|w| !is_function_word(w) && !is_not_an_item(w) && quantity(w).is_none())
            .take(3)
            .collect();
        let Some(first) = rest.first() else { continue };
        if is_not_an_item(first) || first.chars().all(|c| c.is_ascii_digit()) || first.len() < 3 {
            continue;
        }
        let description = rest
            .iter()
            .map(|w| singular(w))
            .collect::<Vec<_>>()
            .join(" ");
        push_item(
            result,
            &description,
            count,
            UNKNOWN_CUBIC_FEET,
            None,
            false,
            true,
        );
        return;
    }
}

fn looks_like_address_or_time(words: &[&str]) -> bool {
    let has_street_word = words.iter().any(|w| is_street_word(w));
    let has_zip = words
        .iter()
        .any(|w| w.len() == 5 && w.chars().all(|c| c.is_ascii_digit()));
    let has_time = words.iter().any(|w| {
        matches!(
            *w,
            "am" | "pm"
                | "oclock"
                | "tomorrow"
                | "today"
                | "monday"
                | "tuesday"
                | "wednesday"
                | "thursday"
                | "friday"
                | "saturday"
                | "sunday"
        )
    });
    has_street_word || has_zip || has_time
}

fn push_item(
    result: &mut Recognition,
    description: &str,
    quantity: u32,
    cubic_feet_each: f64,
    regulated: Option<RegulatedItem>,
    heavy: bool,
    needs_review: bool,
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
        needs_review,
        bedload: None,
    });
}

/// Access and hazards, read across the whole message.
fn scan_flags(words: &[&str], result: &mut Recognition) {
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        let prev = if i > 0 { words[i - 1] } else { "" };
        match *word {
            "curb" | "curbside" | "kerb" | "roadside" => result.curbside = true,
            "flight" | "flights" => {
                let n = quantity(prev).unwrap_or(1);
                result.stairs_flights = result.stairs_flights.max(n.min(20));
            }
            "stairs" | "staircase" | "upstairs" | "downstairs" | "basement" | "attic" | "steps" => {
                result.stairs_flights = result.stairs_flights.max(1);
            }
            "floor" => {
                let level = match prev {
                    "second" | "2nd" => 1,
                    "third" | "3rd" => 2,
                    "fourth" | "4th" => 3,
                    "fifth" | "5th" => 4,
                    _ => 0,
                };
                result.stairs_flights = result.stairs_flights.max(level);
            }
            "ft" | "feet" | "foot" => {
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
            "needle" | "needles" | "syringe" | "syringes" | "sharps" => {
                result.hazards.insert(Hazard::Needles);
            }
            "chemical" | "chemicals" | "pesticide" | "pesticides" | "solvent" | "solvents"
            | "antifreeze" | "gasoline" | "bleach" => {
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
}

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
        let r = recognise("a couch and a kayak");
        assert_eq!(
            lines("a couch and a kayak"),
            vec![
                ("couch".to_owned(), 1, false),
                ("kayak".to_owned(), 1, true)
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

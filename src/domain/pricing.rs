//! The pricing engine: a job's description and the company's pricebook in, a quote that explains
//! itself line by line out. Pure: the same inputs always give the same quote.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::money::Cents;

/// Comparisons of volumes allow for floating-point noise (110.7 ft³ is exactly 4.1 yd³).
const EPSILON: f64 = 1e-9;

/// The original's trailer: one full load, in cubic yards (DESIGN §6).
pub const DEFAULT_TRAILER_YARDS: f64 = 16.6;

/// A volume in cubic yards: finite and never negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CubicYards(f64);

impl CubicYards {
    /// Nothing.
    pub const ZERO: CubicYards = CubicYards(0.0);

    /// A volume; negative, infinite or NaN inputs count as zero.
    pub fn new(yards: f64) -> Self {
        if yards.is_finite() && yards > 0.0 {
            Self(yards)
        } else {
            Self(0.0)
        }
    }

    /// A volume given in cubic feet (27 ft³ to the yard).
    pub fn from_cubic_feet(feet: f64) -> Self {
        Self::new(feet / 27.0)
    }

    /// The number of cubic yards.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for CubicYards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} yd³", self.0)
    }
}

/// Items that cost extra to dispose of, whatever their volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegulatedItem {
    /// A fridge, freezer or air conditioner (refrigerant).
    FridgeOrAc,
    /// A mattress or box spring.
    Mattress,
    /// A TV or monitor.
    Screen,
    /// A tire.
    Tire,
    /// A one-gallon can of paint.
    PaintGallon,
    /// A five-gallon bucket of paint.
    PaintFiveGallon,
    /// A propane tank.
    PropaneTank,
}

impl RegulatedItem {
    fn label(self) -> &'static str {
        match self {
            RegulatedItem::FridgeOrAc => "fridge/freezer/AC disposal",
            RegulatedItem::Mattress => "mattress/box spring disposal",
            RegulatedItem::Screen => "TV/monitor disposal",
            RegulatedItem::Tire => "tire disposal",
            RegulatedItem::PaintGallon => "paint disposal (1 gal)",
            RegulatedItem::PaintFiveGallon => "paint disposal (5 gal)",
            RegulatedItem::PropaneTank => "propane tank disposal",
        }
    }
}

/// Hazards that make a job dirtier, riskier and subject to the owner's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hazard {
    /// Needles or other sharps.
    Needles,
    /// Household or garden chemicals.
    Chemicals,
    /// Spilled paint.
    PaintSpill,
    /// Asbestos (suspected).
    Asbestos,
    /// Blood, waste or other biohazards.
    Biohazard,
}

impl Hazard {
    /// Whether the crew needs hazardous-material protective equipment for it (chemicals too:
    /// DESIGN §6 charges the PPE fee for them).
    fn needs_ppe(self) -> bool {
        matches!(
            self,
            Hazard::Needles | Hazard::Chemicals | Hazard::Asbestos | Hazard::Biohazard
        )
    }

    /// A short name for messages.
    pub fn label(self) -> &'static str {
        match self {
            Hazard::Needles => "needles",
            Hazard::Chemicals => "chemicals",
            Hazard::PaintSpill => "paint spill",
            Hazard::Asbestos => "asbestos",
            Hazard::Biohazard => "biohazard",
        }
    }
}

/// One volume tier: a load up to `max_yards` costs `price`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    /// Its name ("minimum", "1/4", "full").
    pub label: String,
    /// The largest volume it covers.
    pub max_yards: f64,
    /// The full-service price of such a load.
    pub price: Cents,
}

/// An optional promotion: a percentage off the load for leads that qualify.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promo {
    /// How the customer sees it.
    pub label: String,
    /// Percent off the load price.
    pub percent_off_load: u32,
}

/// A company's prices and rules. Stored as JSON in `Config.pricebook`; [`Pricebook::default`] is
/// the original JunkQuoteAgent's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pricebook {
    /// The trailer's capacity: one full load.
    pub trailer_yards: f64,
    /// Volume tiers, smallest first; the last covers a full trailer.
    pub tiers: Vec<Tier>,
    /// The least a job costs.
    pub minimum: Cents,
    /// The least a curbside job costs.
    pub curbside_minimum: Cents,
    /// Percent off the load for curbside pickups.
    pub curbside_discount_percent: u32,
    /// A promotion, if one runs.
    pub promo: Option<Promo>,
    /// Concrete, tile or pavers, per cubic yard.
    pub bedload_concrete_per_yard: Cents,
    /// Clean dirt, per cubic yard.
    pub bedload_dirt_per_yard: Cents,
    /// The most bedload one trip can carry.
    pub bedload_max_yards_per_trip: f64,
    /// Per flight of stairs.
    pub stairs_per_flight: Cents,
    /// Carrying distance included in the price.
    pub long_carry_included_feet: u32,
    /// Each further step of this many feet…
    pub long_carry_step_feet: u32,
    /// …costs this.
    pub long_carry_per_step: Cents,
    /// Fees for regulated items, each.
    pub regulated: BTreeMap<RegulatedItem, Cents>,
    /// Added once when any hazard appears.
    pub contamination_fee: Cents,
    /// Protective equipment for needles, chemicals, asbestos or biohazards.
    pub hazardous_ppe_fee: Cents,
    /// Weight included with each load.
    pub weight_included_lbs_per_load: u32,
    /// Each further step of this many pounds…
    pub weight_step_lbs: u32,
    /// …costs this.
    pub weight_per_step: Cents,
    /// Pickup on the day of booking.
    pub same_day_fee: Cents,
    /// A narrow arrival window.
    pub tight_window_fee: Cents,
    /// Quotes above this wait for the owner's approval.
    pub approval_above: Cents,
    /// Quotes with less confidence than this wait for the owner's approval.
    pub approval_min_confidence: f64,
    /// Shown with every quote.
    pub disclaimer: String,
}

impl Default for Pricebook {
    fn default() -> Self {
        let tier = |label: &str, max_yards: f64, dollars: i64| Tier {
            label: label.to_owned(),
            max_yards,
            price: Cents::dollars(dollars),
        };
        Self {
            trailer_yards: DEFAULT_TRAILER_YARDS,
            tiers: vec![
                tier("minimum", 1.5, 150),
                tier("1/8", 2.1, 189),
                tier("1/4", 4.1, 259),
                tier("3/8", 6.2, 377),
                tier("1/2", 8.3, 495),
                tier("5/8", 10.4, 567),
                tier("3/4", 12.4, 639),
                tier("7/8", 14.5, 729),
                tier("full", 16.6, 819),
            ],
            minimum: Cents::dollars(150),
            curbside_minimum: Cents::dollars(119),
            curbside_discount_percent: 10,
            promo: None,
            bedload_concrete_per_yard: Cents::dollars(204),
            bedload_dirt_per_yard: Cents::dollars(180),
            bedload_max_yards_per_trip: 4.0,
            stairs_per_flight: Cents::dollars(30),
            long_carry_included_feet: 50,
            long_carry_step_feet: 50,
            long_carry_per_step: Cents::dollars(30),
            regulated: [
                (RegulatedItem::FridgeOrAc, 48),
                (RegulatedItem::Mattress, 24),
                (RegulatedItem::Screen, 14),
                (RegulatedItem::Tire, 12),
                (RegulatedItem::PaintGallon, 10),
                (RegulatedItem::PaintFiveGallon, 50),
                (RegulatedItem::PropaneTank, 15),
            ]
            .into_iter()
            .map(|(item, dollars)| (item, Cents::dollars(dollars)))
            .collect(),
            contamination_fee: Cents::dollars(60),
            hazardous_ppe_fee: Cents::dollars(150),
            weight_included_lbs_per_load: 2000,
            weight_step_lbs: 500,
            weight_per_step: Cents::dollars(50),
            same_day_fee: Cents::dollars(50),
            tight_window_fee: Cents::dollars(50),
            approval_above: Cents::dollars(600),
            approval_min_confidence: 0.7,
            disclaimer: "Estimate pending onsite confirmation. Weight/regulated items may affect \
                         final price."
                .to_owned(),
        }
    }
}

impl Pricebook {
    /// Every problem with this pricebook, as (field, message); empty when it can be used.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut bad =
            |field: &str, message: &str| problems.push((field.to_owned(), message.to_owned()));
        if !positive(self.trailer_yards) {
            bad("trailer_yards", "must be a positive number of cubic yards");
        }
        if self.tiers.is_empty() {
            bad("tiers", "needs at least one tier");
        }
        for pair in self.tiers.windows(2) {
            if !positive(pair[1].max_yards - pair[0].max_yards) || pair[1].price < pair[0].price {
                bad(
                    "tiers",
                    "must grow in both volume and price, smallest first",
                );
                break;
            }
        }
        if let Some(last) = self.tiers.last()
            && (last.max_yards - self.trailer_yards).abs() > EPSILON
        {
            bad(
                "tiers",
                "the last tier must be a full trailer (trailer_yards)",
            );
        }
        if self
            .tiers
            .iter()
            .any(|t| !positive(t.max_yards) || t.price < Cents::ZERO)
        {
            bad("tiers", "volumes must be positive and prices not negative");
        }
        let money = [
            ("minimum", self.minimum),
            ("curbside_minimum", self.curbside_minimum),
            ("bedload_concrete_per_yard", self.bedload_concrete_per_yard),
            ("bedload_dirt_per_yard", self.bedload_dirt_per_yard),
            ("stairs_per_flight", self.stairs_per_flight),
            ("long_carry_per_step", self.long_carry_per_step),
            ("contamination_fee", self.contamination_fee),
            ("hazardous_ppe_fee", self.hazardous_ppe_fee),
            ("weight_per_step", self.weight_per_step),
            ("same_day_fee", self.same_day_fee),
            ("tight_window_fee", self.tight_window_fee),
            ("approval_above", self.approval_above),
        ];
        for (field, amount) in money {
            if amount < Cents::ZERO {
                bad(field, "must not be negative");
            }
        }
        if self.regulated.values().any(|fee| *fee < Cents::ZERO) {
            bad("regulated", "fees must not be negative");
        }
        if self.curbside_discount_percent > 100 {
            bad("curbside_discount_percent", "must be between 0 and 100");
        }
        if let Some(promo) = &self.promo
            && promo.percent_off_load + self.curbside_discount_percent > 100
        {
            bad(
                "promo",
                "together with the curbside discount it must stay under 100%",
            );
        }
        if self.long_carry_step_feet == 0 {
            bad("long_carry_step_feet", "must be at least 1");
        }
        if self.weight_step_lbs == 0 {
            bad("weight_step_lbs", "must be at least 1");
        }
        if !positive(self.bedload_max_yards_per_trip) {
            bad("bedload_max_yards_per_trip", "must be positive");
        }
        if !(0.0..=1.0).contains(&self.approval_min_confidence) {
            bad("approval_min_confidence", "must be between 0 and 1");
        }
        problems
    }

    /// The tier for a load of `yards` (at most a trailer): the first at or above it.
    fn tier_for(&self, yards: f64) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.max_yards + EPSILON >= yards)
    }
}

/// A finite number above zero.
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// What is to be hauled and how: the pricing engine's input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Volume of general junk (furniture, appliances, bags).
    pub volume: CubicYards,
    /// Concrete, tile or pavers.
    pub bedload_concrete: CubicYards,
    /// Clean dirt.
    pub bedload_dirt: CubicYards,
    /// Regulated items and how many of each.
    pub regulated: BTreeMap<RegulatedItem, u32>,
    /// Hazards mentioned or seen.
    pub hazards: BTreeSet<Hazard>,
    /// Everything waits at the curb.
    pub curbside: bool,
    /// Flights of stairs to carry down.
    pub stairs_flights: u32,
    /// Walking distance from the items to the truck, in feet.
    pub carry_feet: u32,
    /// Weight, when known.
    pub weight_lbs: Option<u32>,
    /// Pickup on the day of booking.
    pub same_day: bool,
    /// A narrow arrival window.
    pub tight_window: bool,
    /// The lead qualifies for the running promotion.
    pub promo_eligible: bool,
    /// How sure the estimate is, 0 to 1 (unknown items and vague descriptions lower it).
    pub confidence: f64,
}

/// One line of a quote; discounts are negative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    /// What it is for, with the arithmetic ("2 flights × $30").
    pub label: String,
    /// Its amount.
    pub amount: Cents,
}

/// A priced job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceQuote {
    /// The lines, in the order they apply.
    pub lines: Vec<QuoteLine>,
    /// The sum of the charges (before discounts).
    pub subtotal: Cents,
    /// The sum of the discounts (zero or negative).
    pub discounts: Cents,
    /// What the customer pays: never below the minimum.
    pub total: Cents,
    /// Whether the owner must approve before the customer can book.
    pub needs_approval: bool,
    /// Why approval is needed.
    pub approval_reasons: Vec<String>,
    /// The estimate's confidence.
    pub confidence: f64,
    /// Trailer loads the job takes.
    pub loads: u32,
    /// Shown with the quote.
    pub disclaimer: String,
}

impl PriceQuote {
    /// The quote as text, a line each, for the owner and the customer.
    pub fn explain(&self) -> String {
        let mut out: Vec<String> = self
            .lines
            .iter()
            .map(|l| format!("{}: {}", l.label, l.amount))
            .collect();
        out.push(format!("Total: {}", self.total));
        if self.needs_approval {
            out.push(format!(
                "Needs the owner's approval: {}",
                self.approval_reasons.join("; ")
            ));
        }
        out.push(self.disclaimer.clone());
        out.join("\n")
    }
}

/// Prices `job` with `book`.
pub fn price(book: &Pricebook, job: &JobSpec) -> PriceQuote {
    let mut lines = Vec::new();
    let mut reasons = Vec::new();
    let mut line = |label: String, amount: Cents| lines.push(QuoteLine { label, amount });

    // The load: whole trailers at the full price, the rest by the first tier at or above it.
    let volume = job.volume.get();
    let trailer = book.trailer_yards.max(EPSILON);
    let full_loads = (volume / trailer + EPSILON).floor() as u32;
    let mut rest = volume - f64::from(full_loads) * trailer;
    if rest < EPSILON {
        rest = 0.0;
    }
    let full_price = book.tiers.last().map_or(Cents::ZERO, |t| t.price);
    let mut load_price = Cents::ZERO;
    if full_loads > 0 {
        let amount = full_price * full_loads;
        line(
            format!(
                "{full_loads} full trailer load(s) ({:.1} yd³ each)",
                trailer
            ),
            amount,
        );
        load_price += amount;
    }
    if rest > 0.0 {
        // The rest is at most a trailer, and a valid pricebook's last tier is a full trailer, so
        // a tier covers it. A pricebook whose tiers stop short (`validate` refuses one, but a
        // `Config` row edited by hand is read without it) prices it as a full load: still one
        // load, counted once below.
        match book.tier_for(rest) {
            Some(tier) => {
                line(format!("{} load ({:.1} yd³)", tier.label, rest), tier.price);
                load_price += tier.price;
            }
            None => {
                line(format!("trailer load ({:.1} yd³)", rest), full_price);
                load_price += full_price;
            }
        }
    }
    let loads = full_loads + u32::from(rest > 0.0);
    if loads > 1 {
        reasons.push(format!("more than a full trailer ({})", job.volume));
    }
    if job.curbside && book.curbside_discount_percent > 0 && load_price > Cents::ZERO {
        let off = load_price.percent(book.curbside_discount_percent);
        line(
            format!(
                "curbside discount ({}% of the load)",
                book.curbside_discount_percent
            ),
            Cents::ZERO - off,
        );
    }
    if let Some(promo) = book.promo.as_ref().filter(|_| job.promo_eligible)
        && promo.percent_off_load > 0
        && load_price > Cents::ZERO
    {
        let off = load_price.percent(promo.percent_off_load);
        line(
            format!("{} ({}% off the load)", promo.label, promo.percent_off_load),
            Cents::ZERO - off,
        );
    }

    // Bedload, by the yard, at most so much a trip.
    let by_yard = |yards: f64, rate: Cents| Cents::new((yards * rate.get() as f64).round() as i64);
    if job.bedload_concrete.get() > 0.0 {
        let yards = job.bedload_concrete.get();
        line(
            format!(
                "concrete/tile/pavers {yards:.1} yd³ × {}",
                book.bedload_concrete_per_yard
            ),
            by_yard(yards, book.bedload_concrete_per_yard),
        );
    }
    if job.bedload_dirt.get() > 0.0 {
        let yards = job.bedload_dirt.get();
        line(
            format!("clean dirt {yards:.1} yd³ × {}", book.bedload_dirt_per_yard),
            by_yard(yards, book.bedload_dirt_per_yard),
        );
    }
    let bedload = job.bedload_concrete.get() + job.bedload_dirt.get();
    if bedload > book.bedload_max_yards_per_trip + EPSILON {
        let trips = (bedload / book.bedload_max_yards_per_trip - EPSILON).ceil();
        reasons.push(format!("bedload of {bedload:.1} yd³ takes {trips} trips"));
    }

    if job.stairs_flights > 0 {
        line(
            format!(
                "stairs: {} flight(s) × {}",
                job.stairs_flights, book.stairs_per_flight
            ),
            book.stairs_per_flight * job.stairs_flights,
        );
    }
    if job.carry_feet > book.long_carry_included_feet {
        let beyond = job.carry_feet - book.long_carry_included_feet;
        let steps = beyond.div_ceil(book.long_carry_step_feet.max(1));
        line(
            format!(
                "long carry: {} ft beyond the first {} ft",
                beyond, book.long_carry_included_feet
            ),
            book.long_carry_per_step * steps,
        );
    }
    for (item, count) in job.regulated.iter().filter(|(_, n)| **n > 0) {
        let fee = book.regulated.get(item).copied().unwrap_or(Cents::ZERO);
        line(format!("{} × {count} at {fee}", item.label()), fee * *count);
    }
    if !job.hazards.is_empty() {
        let names: Vec<&str> = job.hazards.iter().map(|h| h.label()).collect();
        // A fee the pricebook sets to zero is not charged, nor shown as a $0 line.
        if book.contamination_fee > Cents::ZERO {
            line(
                format!("contamination fee ({})", names.join(", ")),
                book.contamination_fee,
            );
        }
        if job.hazards.iter().any(|h| h.needs_ppe()) && book.hazardous_ppe_fee > Cents::ZERO {
            line(
                "hazardous-material protective equipment".to_owned(),
                book.hazardous_ppe_fee,
            );
        }
        reasons.push(format!("hazards: {}", names.join(", ")));
    }
    if let Some(weight) = job.weight_lbs {
        let included = book
            .weight_included_lbs_per_load
            .saturating_mul(loads.max(1));
        if weight > included {
            let steps = (weight - included).div_ceil(book.weight_step_lbs.max(1));
            line(
                format!(
                    "weight: {} lb over the {} lb included",
                    weight - included,
                    included
                ),
                book.weight_per_step * steps,
            );
        }
    }
    if job.same_day {
        line("same-day pickup".to_owned(), book.same_day_fee);
    }
    if job.tight_window {
        line("tight arrival window".to_owned(), book.tight_window_fee);
    }

    let subtotal: Cents = lines
        .iter()
        .map(|l| l.amount)
        .filter(|a| *a > Cents::ZERO)
        .sum();
    let discounts: Cents = lines
        .iter()
        .map(|l| l.amount)
        .filter(|a| *a < Cents::ZERO)
        .sum();
    let minimum = if job.curbside {
        book.curbside_minimum
    } else {
        book.minimum
    };
    let before_minimum = subtotal + discounts;
    let total = before_minimum.max(minimum);
    if total > before_minimum {
        lines.push(QuoteLine {
            label: format!(
                "raised to the {}minimum job of {minimum}",
                if job.curbside { "curbside " } else { "" }
            ),
            amount: total - before_minimum,
        });
    }

    let confidence = if job.confidence.is_finite() {
        job.confidence.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if total > book.approval_above {
        reasons.insert(0, format!("total {total} is over {}", book.approval_above));
    }
    if confidence < book.approval_min_confidence {
        reasons.push(format!(
            "confidence {confidence:.2} is below {:.2}",
            book.approval_min_confidence
        ));
    }
    PriceQuote {
        lines,
        subtotal,
        discounts,
        total,
        needs_approval: !reasons.is_empty(),
        approval_reasons: reasons,
        confidence,
        loads,
        disclaimer: book.disclaimer.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job(yards: f64) -> JobSpec {
        JobSpec {
            volume: CubicYards::new(yards),
            confidence: 0.9,
            ..JobSpec::default()
        }
    }

    #[test]
    fn the_default_pricebook_is_valid() {
        assert_eq!(
            Pricebook::default().validate(),
            Vec::<(String, String)>::new()
        );
    }

    #[test]
    fn loads_are_priced_by_the_first_tier_at_or_above_them() {
        let book = Pricebook::default();
        for (yards, dollars) in [
            (0.5, 150),
            (1.5, 150),
            (1.6, 189),
            (4.1, 259),
            (4.2, 377),
            (16.6, 819),
        ] {
            assert_eq!(
                price(&book, &job(yards)).total,
                Cents::dollars(dollars),
                "{yards} yd³"
            );
        }
        // 110.7 ft³ is 4.1 yd³ exactly, whatever floating point makes of the division.
        assert_eq!(price(&book, &job(110.7 / 27.0)).total, Cents::dollars(259));
    }

    #[test]
    fn more_than_a_trailer_is_priced_as_loads_and_needs_approval() {
        let quote = price(&Pricebook::default(), &job(20.0));
        assert_eq!(quote.loads, 2);
        assert_eq!(quote.total, Cents::dollars(819 + 259));
        assert!(quote.needs_approval);
        assert!(
            quote
                .approval_reasons
                .iter()
                .any(|r| r.contains("more than a full trailer"))
        );
    }

    #[test]
    fn exactly_a_full_trailer_is_one_load() {
        let quote = price(&Pricebook::default(), &job(16.6));
        assert_eq!(quote.loads, 1);
        assert_eq!(quote.total, Cents::dollars(819));
        assert!(
            !quote
                .approval_reasons
                .iter()
                .any(|r| r.contains("more than a full trailer")),
            "{:?}",
            quote.approval_reasons
        );
    }

    #[test]
    fn between_one_and_two_trailers_is_a_full_load_and_a_tier() {
        let book = Pricebook::default();
        for (yards, dollars) in [(16.7, 819 + 150), (20.0, 819 + 259), (25.0, 819 + 567)] {
            let quote = price(&book, &job(yards));
            assert_eq!(quote.loads, 2, "{yards} yd³");
            assert_eq!(quote.total, Cents::dollars(dollars), "{yards} yd³");
            assert!(quote.needs_approval, "{yards} yd³");
            assert_eq!(
                quote
                    .lines
                    .iter()
                    .filter(|l| l.label.contains("load"))
                    .count(),
                2,
                "{}",
                quote.explain()
            );
        }
        let two = price(&book, &job(33.2));
        assert_eq!((two.loads, two.total), (2, Cents::dollars(2 * 819)));
        assert_eq!(price(&book, &job(33.3)).loads, 3);
    }

    /// A pricebook whose tiers stop short of the trailer (the API and console refuse one, but a
    /// `Config` row edited by hand is read without validation) prices what no tier covers as a full
    /// load (its largest tier's price): one load, not two.
    #[test]
    fn a_load_no_tier_covers_is_one_load_at_the_full_price() {
        let mut book = Pricebook::default();
        book.tiers.truncate(5); // up to the 1/2 tier: 8.3 yd³ for $495
        assert!(!book.validate().is_empty());
        let quote = price(&book, &job(10.0));
        assert_eq!(quote.loads, 1, "{}", quote.explain());
        assert_eq!(quote.total, Cents::dollars(495));
        assert!(
            quote.approval_reasons.is_empty(),
            "{:?}",
            quote.approval_reasons
        );

        let mut heavy = job(10.0);
        heavy.weight_lbs = Some(2_500);
        let quote = price(&book, &heavy);
        assert!(
            quote
                .explain()
                .contains("weight: 500 lb over the 2000 lb included"),
            "one load includes one load's weight: {}",
            quote.explain()
        );

        let quote = price(&book, &job(20.0));
        assert_eq!(quote.loads, 2, "{}", quote.explain());
        assert_eq!(quote.total, Cents::dollars(495 + 259));
    }

    #[test]
    fn a_couch_a_fridge_and_five_bags() {
        // 60 + 60 + 5 × 4 = 140 ft³ ≈ 5.2 yd³ → 3/8 load, plus the fridge's disposal fee.
        let mut spec = job(140.0 / 27.0);
        spec.regulated.insert(RegulatedItem::FridgeOrAc, 1);
        let quote = price(&Pricebook::default(), &spec);
        assert_eq!(quote.total, Cents::dollars(377 + 48));
        assert!(!quote.needs_approval, "{:?}", quote.approval_reasons);
        let text = quote.explain();
        assert!(text.contains("3/8 load (5.2 yd³): $377"), "{text}");
        assert!(
            text.contains("fridge/freezer/AC disposal × 1 at $48: $48"),
            "{text}"
        );
        assert!(text.ends_with("Weight/regulated items may affect final price."));
    }

    #[test]
    fn curbside_takes_ten_percent_off_the_load_down_to_its_own_minimum() {
        let book = Pricebook::default();
        let mut spec = job(1.0);
        spec.curbside = true;
        assert_eq!(
            price(&book, &spec).total,
            Cents::dollars(135),
            "$150 less 10%"
        );
        let mut tiny = job(0.0);
        tiny.curbside = true;
        tiny.regulated.insert(RegulatedItem::Tire, 1);
        assert_eq!(
            price(&book, &tiny).total,
            Cents::dollars(119),
            "the curbside minimum"
        );
    }

    #[test]
    fn the_promo_applies_only_to_leads_that_qualify() {
        let book = Pricebook {
            promo: Some(Promo {
                label: "Spring promo".into(),
                percent_off_load: 25,
            }),
            ..Pricebook::default()
        };
        let mut spec = job(8.0);
        assert_eq!(price(&book, &spec).total, Cents::dollars(495));
        spec.promo_eligible = true;
        assert_eq!(price(&book, &spec).total, Cents::new(37_125));
    }

    #[test]
    fn access_bedload_hazards_weight_and_timing_each_add_their_line() {
        let mut spec = job(4.0);
        spec.stairs_flights = 2;
        spec.carry_feet = 120;
        spec.bedload_dirt = CubicYards::new(5.0);
        spec.hazards.insert(Hazard::Needles);
        spec.weight_lbs = Some(2600);
        spec.same_day = true;
        let quote = price(&Pricebook::default(), &spec);
        let expected = 259 + 60 + 60 + 900 + 60 + 150 + 100 + 50;
        assert_eq!(quote.total, Cents::dollars(expected), "{}", quote.explain());
        assert!(quote.needs_approval);
        let reasons = quote.approval_reasons.join("; ");
        assert!(
            reasons.contains("bedload of 5.0 yd³ takes 2 trips"),
            "{reasons}"
        );
        assert!(reasons.contains("hazards: needles"), "{reasons}");
    }

    #[test]
    fn low_confidence_needs_approval() {
        let mut spec = job(2.0);
        spec.confidence = 0.5;
        let quote = price(&Pricebook::default(), &spec);
        assert!(quote.needs_approval);
        assert_eq!(quote.approval_reasons, ["confidence 0.50 is below 0.70"]);
    }

    #[test]
    fn a_broken_pricebook_is_reported_field_by_field() {
        let book = Pricebook {
            trailer_yards: -1.0,
            minimum: Cents::new(-1),
            tiers: vec![],
            ..Pricebook::default()
        };
        let fields: Vec<String> = book.validate().into_iter().map(|(f, _)| f).collect();
        assert!(fields.contains(&"trailer_yards".to_owned()));
        assert!(fields.contains(&"minimum".to_owned()));
        assert!(fields.contains(&"tiers".to_owned()));
    }

    fn any_spec() -> impl Strategy<Value = JobSpec> {
        (
            0.0..60.0f64,
            0.0..10.0f64,
            any::<bool>(),
            0u32..6,
            0u32..400,
            proptest::option::of(0u32..20_000),
            any::<bool>(),
            any::<bool>(),
            0.0..1.0f64,
            0u32..4,
            any::<bool>(),
        )
            .prop_map(
                |(
                    volume,
                    dirt,
                    curbside,
                    stairs,
                    carry,
                    weight,
                    same_day,
                    promo,
                    confidence,
                    tires,
                    needles,
                )| {
                    let mut spec = JobSpec {
                        volume: CubicYards::new(volume),
                        bedload_dirt: CubicYards::new(dirt),
                        curbside,
                        stairs_flights: stairs,
                        carry_feet: carry,
                        weight_lbs: weight,
                        same_day,
                        promo_eligible: promo,
                        confidence,
                        ..JobSpec::default()
                    };
                    spec.regulated.insert(RegulatedItem::Tire, tires);
                    if needles {
                        spec.hazards.insert(Hazard::Needles);
                    }
                    spec
                },
            )
    }

    fn promo_book() -> Pricebook {
        Pricebook {
            promo: Some(Promo {
                label: "promo".into(),
                percent_off_load: 25,
            }),
            ..Pricebook::default()
        }
    }

    proptest! {
        #[test]
        fn never_negative_and_never_below_the_minimum(spec in any_spec()) {
            let book = promo_book();
            let quote = price(&book, &spec);
            prop_assert!(quote.total >= Cents::ZERO);
            prop_assert!(quote.total >= book.curbside_minimum.min(book.minimum));
            let sum: Cents = quote.lines.iter().map(|l| l.amount).sum();
            prop_assert_eq!(sum, quote.total, "the lines add up to the total");
        }

        #[test]
        fn more_volume_never_costs_less(spec in any_spec(), extra in 0.0..20.0f64) {
            // Weight, when known, is priced against the loads the volume takes; hold it unknown
            // so that only volume varies.
            let spec = JobSpec { weight_lbs: None, ..spec };
            let book = promo_book();
            let bigger = JobSpec { volume: CubicYards::new(spec.volume.get() + extra), ..spec.clone() };
            prop_assert!(price(&book, &bigger).total >= price(&book, &spec).total);
        }

        #[test]
        fn a_tier_boundary_is_priced_by_that_tier(index in 0usize..9) {
            let book = Pricebook::default();
            let tier = &book.tiers[index];
            let quote = price(&book, &job(tier.max_yards));
            prop_assert_eq!(quote.total, tier.price.max(book.minimum));
            if let Some(next) = book.tiers.get(index + 1) {
                let above = price(&book, &job(tier.max_yards + 0.01));
                prop_assert_eq!(above.total, next.price);
            }
        }
    }
}

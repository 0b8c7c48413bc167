//! What customers actually write (issue 16): phantom items, described volumes, misspellings and
//! counts, negated stairs, compound and plural items, unknown things and hazards.

use proptest::prelude::*;

use super::*;
use crate::domain::money::Cents;
use crate::domain::pricing::{Pricebook, price};

/// (description, quantity) of each line.
fn lines(text: &str) -> Vec<(String, u32)> {
    recognise(text)
        .items
        .into_iter()
        .map(|i| (i.description, i.quantity))
        .collect()
}

fn owned(items: &[(&str, u32)]) -> Vec<(String, u32)> {
    items.iter().map(|(d, q)| ((*d).to_owned(), *q)).collect()
}

#[test]
fn requests_addresses_times_prices_and_phones_are_not_items() {
    for text in [
        "I'd like a quote",
        "Hi! Can I get a quote please?",
        "my address is 9 Elm",
        "I'm at 42 Willow, come whenever",
        "around 3:15 works for me",
        "can you come at 3:15 tomorrow",
        "there's a big mess in the basement",
        "$100?",
        "would you do it for $100?",
        "stop by at 3",
        "call me at 555-201-3344",
        "my number is 404 555 0123",
        "zip is 30114",
        "on 6/14 if possible",
        "I have a question",
        "give me a call when you're 10 minutes out",
        "is there a fee for that?",
        "do you have a minimum?",
        "I need a favor, can you take a look first?",
        "we have 2 dogs, please close the gate",
        "it's a big job",
        "it's safe to leave by the door",
        "I'm in a bit of a rush",
    ] {
        let r = recognise(text);
        assert!(r.items.is_empty(), "{text}: {:?}", r.items);
    }
}

#[test]
fn phantom_words_do_not_join_real_items() {
    assert_eq!(
        lines("I'd like a quote for a couch"),
        owned(&[("couch", 1)])
    );
    assert_eq!(
        lines("a fridge, my address is 9 Elm, around 3:15 is fine"),
        owned(&[("refrigerator", 1)])
    );
    assert_eq!(
        lines("call 555 201 3344 about the couch"),
        owned(&[("couch", 1)])
    );
}

/// The yd³ of the one described volume in `text`.
fn described_yards(text: &str) -> f64 {
    let r = recognise(text);
    let volumes: Vec<&ItemLine> = r.items.iter().filter(|i| i.needs_review).collect();
    assert_eq!(volumes.len(), 1, "{text}: {:?}", r.items);
    volumes[0].cubic_feet_each * f64::from(volumes[0].quantity) / 27.0
}

#[test]
fn described_volumes_are_read_in_cubic_yards() {
    for (text, yards) in [
        ("about a third of a truck", 16.6 / 3.0),
        ("1/3 of a truckload", 16.6 / 3.0),
        ("half a trailer of junk", 8.3),
        ("maybe half the truck", 8.3),
        ("a full truckload", 16.6),
        ("two truckloads of stuff", 33.2),
        ("three quarters of a load", 12.45),
        ("a full pickup bed of yard waste", 2.5),
        ("a pickup truck load", 2.5),
        ("a one-car garage full", 16.6),
        ("a 2 car garage full of junk", 33.2),
        ("a 5x10 storage unit", 10.0),
        ("a 10 x 10 storage unit, half full", 10.0),
        ("two rooms of stuff", 8.0),
        ("3 cubic yards", 3.0),
        ("about 3 yards of junk", 3.0),
        ("108 cubic feet of boxes", 4.0),
    ] {
        let got = described_yards(text);
        assert!((got - yards).abs() < 0.01, "{text}: {got} yd³, not {yards}");
    }
}

#[test]
fn a_described_volume_is_priced_by_its_tier_and_sent_to_the_owner() {
    let book = Pricebook::default();
    for (text, dollars) in [
        ("about a third of a truck", 377),
        ("half a trailer", 495),
        ("a full pickup bed", 259),
        ("a one-car garage full", 819),
        ("a 5x10 storage unit", 567),
        ("two rooms of stuff", 495),
        ("3 cubic yards", 259),
    ] {
        let quote = price(&book, &recognise(text).job_spec());
        assert_eq!(
            quote.total,
            Cents::dollars(dollars),
            "{text}: {}",
            quote.explain()
        );
        assert!(
            quote.needs_approval,
            "{text}: a description is for the owner to check"
        );
    }
}

#[test]
fn misspelled_catalogue_items_are_recognised() {
    assert_eq!(
        lines("an old mattres and a dreser"),
        owned(&[("mattress", 1), ("dresser", 1)])
    );
    assert_eq!(
        lines("a couhc and a refridgerator"),
        owned(&[("couch", 1), ("refrigerator", 1)])
    );
    assert_eq!(lines("a tredmill"), owned(&[("treadmill", 1)]));
    assert_eq!(lines("a refrigerater"), owned(&[("refrigerator", 1)]));
    assert_eq!(lines("a sofa bed"), owned(&[("couch", 1)]));
    let r = recognise("an old matress");
    assert!(!r.items[0].needs_review, "{:?}", r.items);
}

#[test]
fn short_and_common_words_are_never_taken_for_misspellings() {
    for text in [
        "I have a cough",
        "the coach said so",
        "a stone wall",
        "at the store",
        "a point of order",
        "a bunch of questions",
        "my power went out",
        "we're not movers",
        "a chain link fence gate",
    ] {
        let r = recognise(text);
        assert!(
            r.items.iter().all(|i| i.needs_review),
            "{text}: no catalogue item, {:?}",
            r.items
        );
    }
}

#[test]
fn multi_word_items_are_kept_whole() {
    assert_eq!(
        lines("a chest of drawers and a patio set"),
        owned(&[("dresser", 1), ("patio set", 1)])
    );
    assert_eq!(
        lines("an old entertainment center"),
        owned(&[("entertainment center", 1)])
    );
    assert_eq!(lines("a box spring"), owned(&[("box spring", 1)]));
}

#[test]
fn counts_in_words() {
    assert_eq!(lines("a dozen boxes"), owned(&[("box", 12)]));
    assert_eq!(lines("half a dozen boxes"), owned(&[("box", 6)]));
    assert_eq!(lines("a few chairs"), owned(&[("chair", 3)]));
    assert_eq!(lines("a couple of tires"), owned(&[("tire", 2)]));
    assert_eq!(lines("both dressers"), owned(&[("dresser", 2)]));
    assert_eq!(lines("a pair of nightstands"), owned(&[("nightstand", 2)]));
    assert_eq!(lines("three lamps"), owned(&[("lamp", 3)]));
    assert_eq!(
        lines("twenty bags of trash"),
        owned(&[("bag of trash", 20)])
    );
    assert_eq!(lines("twenty five bags"), owned(&[("bag of trash", 25)]));
    assert_eq!(lines("two dozen boxes"), owned(&[("box", 24)]));
}

#[test]
fn units_count_what_they_hold() {
    let spec = recognise("6 cans of paint").job_spec();
    assert_eq!(spec.regulated.get(&RegulatedItem::PaintGallon), Some(&6));
    assert_eq!(lines("3 boxes of books"), owned(&[("box", 3)]));
    let spec = recognise("three 5-gallon pails of stain").job_spec();
    assert_eq!(
        spec.regulated.get(&RegulatedItem::PaintFiveGallon),
        Some(&3)
    );
    assert_eq!(spec.regulated.get(&RegulatedItem::PaintGallon), None);
    let spec = recognise("2 five gallon buckets of paint and a gallon of primer").job_spec();
    assert_eq!(
        spec.regulated.get(&RegulatedItem::PaintFiveGallon),
        Some(&2)
    );
    assert_eq!(spec.regulated.get(&RegulatedItem::PaintGallon), Some(&1));
    assert!(
        recognise("a stain on the carpet")
            .job_spec()
            .regulated
            .is_empty()
    );
}

#[test]
fn a_word_about_the_paint_between_its_container_and_it_keeps_the_count() {
    for (text, gallons, pails) in [
        ("8 gallons of old paint", 8, 0),
        ("4 cans of leftover latex paint", 4, 0),
        ("two 5 gallon buckets of used stain", 0, 2),
    ] {
        let spec = recognise(text).job_spec();
        let count = |class| spec.regulated.get(&class).copied().unwrap_or(0);
        assert_eq!(count(RegulatedItem::PaintGallon), gallons, "{text}");
        assert_eq!(count(RegulatedItem::PaintFiveGallon), pails, "{text}");
        assert_eq!(recognise(text).items.len(), 1, "{text}: one line");
    }
}

#[test]
fn negated_stairs_ground_floors_and_lifts_charge_no_stairs() {
    for text in [
        "a couch, zero stairs to deal with",
        "a couch, no stairs",
        "a fridge, it's on the ground floor",
        "a fridge, first floor",
        "a dresser on the 4th floor but the building has a lift",
        "a dresser on the third floor, there's an elevator",
    ] {
        let r = recognise(text);
        assert_eq!(r.job_spec().stairs_flights, 0, "{text}");
        assert_eq!(
            r.items.len(),
            1,
            "{text}: the lift is no item: {:?}",
            r.items
        );
    }
    assert_eq!(
        recognise("a dresser, 3 flights of stairs").stairs_flights,
        3
    );
    assert_eq!(recognise("a couch, second floor walk-up").stairs_flights, 1);
    assert_eq!(
        recognise("a couch on the third floor, no elevator").stairs_flights,
        2
    );
}

#[test]
fn later_messages_about_stairs_win() {
    let mut r = recognise("a dresser on the third floor");
    r.merge(recognise("oh and there's an elevator"));
    assert_eq!(r.job_spec().stairs_flights, 0);
    r.merge(recognise("sorry, the elevator is out, 2 flights of stairs"));
    assert_eq!(r.job_spec().stairs_flights, 2);
}

#[test]
fn compound_items_are_one_item() {
    for (text, name) in [
        ("an office chair", "office chair"),
        ("a floor lamp", "floor lamp"),
        ("a bunk bed", "bunk bed"),
        ("a washer-dryer combo", "washer-dryer combo"),
        ("a washer dryer combo", "washer-dryer combo"),
        ("a coffee table", "coffee table"),
        ("a pool table", "pool table"),
    ] {
        assert_eq!(lines(text), owned(&[(name, 1)]), "{text}");
    }
}

#[test]
fn a_bed_is_its_frame_mattress_and_box_spring() {
    assert_eq!(
        lines("a queen bed"),
        owned(&[("bed frame", 1), ("mattress", 1), ("box spring", 1)])
    );
    assert_eq!(
        lines("2 king beds"),
        owned(&[("bed frame", 2), ("mattress (king)", 2), ("box spring", 2)])
    );
    let spec = recognise("a bed").job_spec();
    assert_eq!(spec.regulated.get(&RegulatedItem::Mattress), Some(&2));
    assert_eq!(lines("a bed frame"), owned(&[("bed frame", 1)]));
    assert_eq!(
        lines("a bed with the mattress and box spring"),
        owned(&[("bed frame", 1), ("mattress", 1), ("box spring", 1)]),
        "the parts named again are the bed's"
    );
}

#[test]
fn plurals_keep_their_per_unit_fees() {
    let spec = recognise("2 monitors and three TVs").job_spec();
    assert_eq!(spec.regulated.get(&RegulatedItem::Screen), Some(&5));
    let spec = recognise("old TVs").job_spec();
    assert_eq!(
        spec.regulated.get(&RegulatedItem::Screen),
        Some(&2),
        "plural: at least two"
    );
}

#[test]
fn unknown_things_are_named_and_flagged_never_dropped() {
    let r = recognise("an elliptical by Bowflex, a pool table and a kayak");
    let names: Vec<&str> = r.items.iter().map(|i| i.description.as_str()).collect();
    assert_eq!(names, ["elliptical", "pool table", "kayak"]);
    let r = recognise("a couch, a jet ski and 2 pallets");
    let review: Vec<(&str, u32)> = r
        .items
        .iter()
        .filter(|i| i.needs_review)
        .map(|i| (i.description.as_str(), i.quantity))
        .collect();
    assert_eq!(review, [("jet ski", 1), ("pallet", 2)]);
    assert!(price(&Pricebook::default(), &r.job_spec()).needs_approval);
}

#[test]
fn hazards_are_read_with_their_negations() {
    assert!(
        recognise("a couch, no chemicals or needles")
            .hazards
            .is_empty()
    );
    let r = recognise("some asbestos tiles in the basement");
    assert!(r.hazards.contains(&Hazard::Asbestos));
    assert!(
        !r.items.is_empty(),
        "asbestos is something to price: {:?}",
        r
    );
    assert!(
        r.job_spec().bedload_concrete.get() == 0.0,
        "asbestos tiles are not clean bedload"
    );
    let quote = price(&Pricebook::default(), &r.job_spec());
    assert!(quote.needs_approval);
}

#[test]
fn chemicals_need_protective_equipment() {
    let quote = price(
        &Pricebook::default(),
        &recognise("a couch and some pool chemicals").job_spec(),
    );
    assert!(
        quote.explain().contains("protective equipment: $150"),
        "{}",
        quote.explain()
    );
}

#[test]
fn a_pricebook_without_hazard_fees_charges_none() {
    let book = Pricebook {
        contamination_fee: Cents::ZERO,
        hazardous_ppe_fee: Cents::ZERO,
        ..Pricebook::default()
    };
    let quote = price(&book, &recognise("a couch with needles in it").job_spec());
    assert!(
        !quote.explain().contains("contamination"),
        "{}",
        quote.explain()
    );
    assert!(
        !quote.explain().contains("protective"),
        "{}",
        quote.explain()
    );
    assert!(quote.needs_approval, "a hazard still goes to the owner");
}

#[test]
fn rambling_with_two_items_buried_in_it() {
    let text = "Hi there, hope you're having a good week. So my mother moved into a home last \
        spring and we've been putting off dealing with her place for months, which I know is a \
        terrible idea, but it's been a lot. My brother was supposed to come down from Ohio with \
        a trailer but that fell through, as things do with him. Anyway the realtor says we need \
        it empty by the end of the month and I have a full time job and two kids and honestly \
        a short temper about all of it. Most of the stuff is sorted already, we donated a ton \
        and the church took the good china. What's left is the old couch in the den, which has \
        seen better days, and a fridge in the garage that still runs but smells. I can be there \
        most afternoons after 4, though Thursdays are bad because of soccer. The driveway is \
        steep and the gate sticks, so just give it a shove. There's a dog next door who barks \
        at everyone but he's harmless. If you could text me a price that would be a huge help, \
        and let me know if you need a deposit or anything. I have a question about whether you \
        recycle things too, since my mom would want that. Thanks so much for your time, I \
        really appreciate it, it has been a long year and this is one less thing to think \
        about. Oh and my husband says to mention the gravel in the driveway is loose. We \
        tried another company a while back and they never showed up, so I am a little wary, no \
        offense. My neighbor used you two years ago and said the guys were quick and polite, \
        which is exactly what we need right now. Parking is on the street, there is usually a \
        spot right in front, and the side door is unlocked during the day.";
    assert!(text.len() > 1_600, "{}", text.len());
    assert_eq!(lines(text), owned(&[("couch", 1), ("refrigerator", 1)]));
}

#[test]
fn a_list_of_forty_items_is_read_whole() {
    let names = [
        "couch",
        "loveseat",
        "recliner",
        "armchair",
        "dresser",
        "nightstand",
        "desk",
        "bookshelf",
        "cabinet",
        "microwave",
        "dishwasher",
        "washer",
        "dryer",
        "stove",
        "treadmill",
        "lamp",
        "mirror",
        "rug",
        "grill",
        "bike",
        "toilet",
        "door",
        "tire",
        "monitor",
        "TV",
        "safe",
        "piano",
        "crib",
        "futon",
        "ottoman",
        "bench",
        "ladder",
        "kayak",
        "canoe",
        "trampoline",
        "stroller",
        "vacuum",
        "freezer",
        "fridge",
        "mattress",
    ];
    assert_eq!(names.len(), 40);
    let text = names
        .iter()
        .map(|n| format!("a {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let r = recognise(&text);
    assert_eq!(r.items.len(), 40, "{:?}", r.items);
    assert!(r.items.iter().all(|i| !i.needs_review), "{:?}", r.items);
}

proptest! {
    #[test]
    fn addresses_times_prices_and_phones_are_never_items(
        house in prop_oneof![1u32..100, 100u32..20_000],
        street in "(Elm|Oak|Main|Birchwood|Willow|Maple|Peachtree)",
        suffix in "( St| Ave| Rd| Ct|)",
        hour in 1u32..13,
        minute in 0u32..60,
        dollars in 1u32..5_000,
        phone in 2_000_000u32..9_999_999,
        zip in 10_000u32..99_999,
    ) {
        for text in [
            format!("my address is {house} {street}{suffix}"),
            format!("{house} {street}{suffix}, {zip}"),
            format!("around {hour}:{minute:02}"),
            format!("stop by at {hour}"),
            format!("${dollars}?"),
            format!("would you take ${dollars}"),
            format!("call me at 404-{}-{}", phone / 10_000, phone % 10_000),
        ] {
            let r = recognise(&text);
            prop_assert!(r.items.is_empty(), "{}: {:?}", text, r.items);
        }
    }

    #[test]
    fn recognition_never_panics_on_long_or_odd_text(text in "\\PC{0,1600}") {
        let r = recognise(&text);
        prop_assert!(r.items.iter().all(|i| i.quantity >= 1 && i.cubic_feet_each.is_finite()));
        let spec = r.job_spec();
        prop_assert!(spec.volume.get().is_finite());
    }
}

//! Pickup windows: how long a job takes, which windows to offer, and reading the customer's
//! choice, all in the company's time zone.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::pricing::CubicYards;

/// When and how the company works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hours {
    /// The company's time zone (IANA name).
    pub time_zone: Tz,
    /// Opening time, local.
    pub open: NaiveTime,
    /// Closing time, local: every job ends by then.
    pub close: NaiveTime,
    /// Window starts fall on multiples of this many minutes.
    pub step_minutes: u32,
    /// How many days ahead windows are offered.
    pub days_ahead: u32,
    /// The most windows offered at once.
    pub max_offers: usize,
    /// The soonest a window may start after the offer is made.
    pub lead_minutes: u32,
    /// How many crews work at once: a window is free while one of them is.
    pub crews: u32,
}

impl Default for Hours {
    fn default() -> Self {
        Self {
            time_zone: chrono_tz::America::New_York,
            open: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
            close: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or_default(),
            step_minutes: 15,
            days_ahead: 7,
            max_offers: 4,
            lead_minutes: 60,
            crews: 1,
        }
    }
}

/// A pickup window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// When the crew arrives.
    pub start: DateTime<Utc>,
    /// When the job is done.
    pub end: DateTime<Utc>,
}

impl Window {
    /// Whether two windows share any time.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// "Tue Nov 24, 9:00–10:30 AM" in the company's time zone.
    pub fn describe(&self, tz: Tz) -> String {
        let start = self.start.with_timezone(&tz);
        let end = self.end.with_timezone(&tz);
        let time = |t: &DateTime<Tz>| {
            let (pm, hour) = t.hour12();
            (
                format!("{hour}:{:02}", t.minute()),
                if pm { "PM" } else { "AM" },
            )
        };
        let (s, s_half) = time(&start);
        let (e, e_half) = time(&end);
        let day = start.format("%a %b %-d");
        if s_half == e_half {
            format!("{day}, {s}–{e} {e_half}")
        } else {
            format!("{day}, {s} {s_half}–{e} {e_half}")
        }
    }
}

/// How long a job takes: 90 minutes per 4 yd³ started, plus 30 for heavy items, stairs or a
/// long carry.
pub fn duration(volume: CubicYards, slow_access: bool) -> Duration {
    let blocks = (volume.get() / 4.0).ceil().max(1.0) as i64;
    Duration::minutes(blocks * 90 + if slow_access { 30 } else { 0 })
}

/// A crew's booked time.
pub type Busy = (u32, Window);

/// Up to `hours.max_offers` free windows of `length`, starting on the first day that has room
/// and spread over the day (early, middle, late), then the following days. `busy` holds the
/// windows already booked, with the crew booked.
pub fn offer(now: DateTime<Utc>, length: Duration, busy: &[Busy], hours: &Hours) -> Vec<Window> {
    let mut offers = Vec::new();
    for candidates in days(now, hours).map(|day| free_starts(day, now, length, busy, hours)) {
        let room = hours.max_offers - offers.len();
        offers.extend(spread(&candidates, room).into_iter().map(|start| Window {
            start,
            end: start + length,
        }));
        if offers.len() >= hours.max_offers {
            break;
        }
    }
    offers
}

fn days(now: DateTime<Utc>, hours: &Hours) -> impl Iterator<Item = NaiveDate> {
    let today = now.with_timezone(&hours.time_zone).date_naive();
    (0..=hours.days_ahead)
        .filter_map(move |d| today.checked_add_days(chrono::Days::new(u64::from(d))))
}

/// A local date and time as an instant; `None` for a time that does not exist (DST gap).
fn at(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&date.and_time(time))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Every start on `day` (on the step grid, after the lead time) whose window is free.
fn free_starts(
    day: NaiveDate,
    now: DateTime<Utc>,
    length: Duration,
    busy: &[Busy],
    hours: &Hours,
) -> Vec<DateTime<Utc>> {
    let tz = hours.time_zone;
    let (Some(open), Some(close)) = (at(tz, day, hours.open), at(tz, day, hours.close)) else {
        return Vec::new();
    };
    let earliest = now + Duration::minutes(i64::from(hours.lead_minutes));
    let step = Duration::minutes(i64::from(hours.step_minutes.max(1)));
    let mut starts = Vec::new();
    let mut start = open;
    while start + length <= close {
        let window = Window {
            start,
            end: start + length,
        };
        if start >= earliest && free(&window, busy, hours.crews) {
            starts.push(start);
        }
        start += step;
    }
    starts
}

/// Whether one of `crews` crews has nothing booked during `window`.
pub fn free(window: &Window, busy: &[Busy], crews: u32) -> bool {
    (1..=crews.clamp(1, MAX_CREWS))
        .any(|crew| !busy.iter().any(|(c, b)| *c == crew && b.overlaps(window)))
}

/// The most crews a company may have.
pub const MAX_CREWS: u32 = 50;

/// Up to `n` of `candidates`, evenly spread from the first to the last.
fn spread(candidates: &[DateTime<Utc>], n: usize) -> Vec<DateTime<Utc>> {
    if n == 0 || candidates.is_empty() {
        return Vec::new();
    }
    if candidates.len() <= n {
        return candidates.to_vec();
    }
    if n == 1 {
        return vec![candidates[0]];
    }
    let last = candidates.len() - 1;
    let mut picked: Vec<DateTime<Utc>> = (0..n).map(|k| candidates[k * last / (n - 1)]).collect();
    picked.dedup();
    picked
}

/// What the customer picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// One of the numbered offers (1-based).
    Offer(usize),
    /// A day and time of their own.
    At(DateTime<Utc>),
}

/// Reads a reply to the offers: "1", "option 2", "#3", a position in words ("the first one",
/// "2nd", "the latest you have", "whichever"), or a day and time ("tomorrow at 2pm", "friday
/// 10am", "Nov 28 at 9:30").
pub fn read_choice(text: &str, offers: usize, now: DateTime<Utc>, hours: &Hours) -> Option<Choice> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == ':'))
        .filter(|w| !w.is_empty())
        .collect();
    if let Some(n) = by_position(&words, offers) {
        return Some(Choice::Offer(n));
    }
    let tz = hours.time_zone;
    let today = now.with_timezone(&tz).date_naive();
    let (date, day_word) = read_date(&words, today)?;
    // The day of the month ("nov 12") is not an hour.
    let rest: Vec<&str> = words
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != day_word)
        .map(|(_, w)| *w)
        .collect();
    let time = read_time(&rest)?;
    at(tz, date, time).map(Choice::At)
}

/// Words around a pick that say nothing about which ("the second one please", "option 2
/// would be perfect, thank you").
const PICK_FILLER: &[&str] = &[
    "the", "one", "option", "number", "window", "slot", "please", "pls", "plz", "thanks", "thank",
    "you", "thx", "ty", "works", "work", "would", "be", "is", "fine", "good", "great", "perfect",
    "ok", "okay", "sounds", "of", "those", "them", "have", "possible", "for", "me", "lets", "let",
    "s", "go", "with", "i", "ll", "take", "that", "best",
];

/// The offer a reply picks by its position alone: a number in range or a position in words,
/// with nothing else but [`PICK_FILLER`] around it (so "not the first one", "the first floor"
/// and "maybe the first" pick nothing).
fn by_position(words: &[&str], offers: usize) -> Option<usize> {
    let mut meant = words.iter().filter(|w| !PICK_FILLER.contains(w));
    let (Some(word), None) = (meant.next(), meant.next()) else {
        return None;
    };
    let n = match *word {
        "first" | "1st" | "earliest" | "soonest" | "any" | "whichever" | "either" | "anything" => 1,
        "second" | "2nd" => 2,
        "third" | "3rd" => 3,
        "fourth" | "4th" => 4,
        "fifth" | "5th" => 5,
        "last" | "latest" => offers,
        other => other.parse::<usize>().ok()?,
    };
    (1..=offers).contains(&n).then_some(n)
}

/// The date a reply names, and the index of the day-of-month word it used, if any.
fn read_date(words: &[&str], today: NaiveDate) -> Option<(NaiveDate, Option<usize>)> {
    for (i, word) in words.iter().enumerate() {
        match *word {
            "today" => return Some((today, None)),
            "tomorrow" | "tmrw" | "tmr" => return today.succ_opt().map(|d| (d, None)),
            _ => {}
        }
        if let Some(weekday) = weekday(word) {
            let ahead =
                (7 + weekday.num_days_from_monday() - today.weekday().num_days_from_monday()) % 7;
            return today
                .checked_add_days(chrono::Days::new(u64::from(ahead)))
                .map(|d| (d, None));
        }
        if let Some(month) = month(word)
            && let Some(day) = words
                .get(i + 1)
                .and_then(|d| d.trim_end_matches(char::is_alphabetic).parse::<u32>().ok())
        {
            let this_year = NaiveDate::from_ymd_opt(today.year(), month, day)?;
            let date = if this_year < today {
                NaiveDate::from_ymd_opt(today.year() + 1, month, day)
            } else {
                Some(this_year)
            };
            return date.map(|d| (d, Some(i + 1)));
        }
    }
    None
}

fn read_time(words: &[&str]) -> Option<NaiveTime> {
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        let (digits, suffix) = match word.find(|c: char| c.is_alphabetic()) {
            Some(k) => (&word[..k], &word[k..]),
            None => (*word, next),
        };
        let (hour, minute) = match digits.split_once(':') {
            Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
            None => match digits.parse::<u32>() {
                Ok(h) => (h, 0),
                Err(_) => continue,
            },
        };
        if hour > 23 || minute > 59 {
            continue;
        }
        let hour = match suffix {
            "pm" | "p" if hour < 12 => hour + 12,
            "am" | "a" if hour == 12 => 0,
            "am" | "a" | "pm" | "p" => hour,
            // A bare hour from 1 to 7 in a pickup conversation means the afternoon.
            _ if (1..=7).contains(&hour) => hour + 12,
            _ => hour,
        };
        return NaiveTime::from_hms_opt(hour, minute, 0);
    }
    match words.iter().find_map(|w| match *w {
        "morning" => Some(9),
        "noon" | "midday" => Some(12),
        "afternoon" => Some(14),
        "evening" => Some(16),
        _ => None,
    }) {
        Some(hour) => NaiveTime::from_hms_opt(hour, 0, 0),
        None => None,
    }
}

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" | "tues" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn month(word: &str) -> Option<u32> {
    const MONTHS: [[&str; 2]; 12] = [
        ["jan", "january"],
        ["feb", "february"],
        ["mar", "march"],
        ["apr", "april"],
        ["may", "may"],
        ["jun", "june"],
        ["jul", "july"],
        ["aug", "august"],
        ["sep", "september"],
        ["oct", "october"],
        ["nov", "november"],
        ["dec", "december"],
    ];
    let word = word.trim_end_matches('.');
    MONTHS
        .iter()
        .position(|names| names.contains(&word) || (word == "sept" && names[0] == "sep"))
        .map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("timestamp")
    }

    #[test]
    fn durations_grow_by_ninety_minutes_per_four_yards() {
        assert_eq!(duration(CubicYards::new(0.5), false), Duration::minutes(90));
        assert_eq!(duration(CubicYards::new(4.0), false), Duration::minutes(90));
        assert_eq!(
            duration(CubicYards::new(5.2), false),
            Duration::minutes(180)
        );
        assert_eq!(duration(CubicYards::new(5.2), true), Duration::minutes(210));
    }

    #[test]
    fn offers_are_spread_over_the_first_day_with_room() {
        let hours = Hours::default();
        // Tuesday 2026-11-24, 7:00 in New York (12:00 UTC).
        let now = utc("2026-11-24T12:00:00Z");
        let offers = offer(now, Duration::minutes(180), &[], &hours);
        let described: Vec<String> = offers.iter().map(|w| w.describe(hours.time_zone)).collect();
        assert_eq!(
            described,
            [
                "Tue Nov 24, 8:00–11:00 AM",
                "Tue Nov 24, 10:15 AM–1:15 PM",
                "Tue Nov 24, 12:30–3:30 PM",
                "Tue Nov 24, 3:00–6:00 PM"
            ]
        );
    }

    #[test]
    fn busy_windows_and_the_lead_time_are_avoided_and_late_days_roll_over() {
        let hours = Hours::default();
        // 16:30 in New York: nothing of 3 hours fits today any more.
        let now = utc("2026-11-24T21:30:00Z");
        let booked = Window {
            start: utc("2026-11-25T13:00:00Z"),
            end: utc("2026-11-25T23:00:00Z"),
        };
        let offers = offer(now, Duration::minutes(180), &[(1, booked)], &hours);
        assert_eq!(offers.len(), 4);
        assert!(offers.iter().all(|w| !w.overlaps(&booked)));
        // With a second crew, the first crew's booked day has room again.
        let two = Hours {
            crews: 2,
            ..hours.clone()
        };
        let with_two = offer(now, Duration::minutes(180), &[(1, booked)], &two);
        assert!(with_two.iter().any(|w| w.overlaps(&booked)), "{with_two:?}");
        assert!(
            offers[0].start.with_timezone(&hours.time_zone).date_naive()
                > NaiveDate::from_ymd_opt(2026, 11, 25).expect("date")
        );
    }

    #[test]
    fn choices_by_position_in_words() {
        let hours = Hours::default();
        let now = utc("2026-11-24T12:00:00Z");
        let pick = |text: &str| read_choice(text, 3, now, &hours);
        for (text, n) in [
            ("the first one", 1),
            ("1st", 1),
            ("earliest you have", 1),
            ("soonest possible", 1),
            ("second option", 2),
            ("the 2nd one please", 2),
            ("number 3 please", 3),
            ("third", 3),
            ("the latest you have", 3),
            ("last one works", 3),
            ("whichever", 1),
            ("any of those is fine", 1),
            ("Option 2 would be perfect, thank you!", 2),
            ("1 pls", 1),
            ("1 \u{1f44d}", 1),
        ] {
            assert_eq!(pick(text), Some(Choice::Offer(n)), "{text}");
        }
        for text in [
            "none of those work for me",
            "not the first one",
            "yes",
            "fourth",
            "the first floor",
            "can you do 11pm?",
            "maybe the first",
        ] {
            assert_eq!(pick(text), None, "{text}");
        }
    }

    #[test]
    fn choices_by_number_or_by_day_and_time() {
        let hours = Hours::default();
        let now = utc("2026-11-24T12:00:00Z"); // a Tuesday
        assert_eq!(read_choice("1", 3, now, &hours), Some(Choice::Offer(1)));
        assert_eq!(
            read_choice("option 3", 3, now, &hours),
            Some(Choice::Offer(3))
        );
        assert_eq!(
            read_choice("4", 3, now, &hours),
            None,
            "there is no fourth offer"
        );
        assert_eq!(
            read_choice("tomorrow at 2pm", 3, now, &hours),
            Some(Choice::At(utc("2026-11-25T19:00:00Z")))
        );
        assert_eq!(
            read_choice("Friday 10am works", 3, now, &hours),
            Some(Choice::At(utc("2026-11-27T15:00:00Z")))
        );
        assert_eq!(
            read_choice("nov 30 at 9:30", 3, now, &hours),
            Some(Choice::At(utc("2026-11-30T14:30:00Z")))
        );
        assert_eq!(
            read_choice("saturday morning", 3, now, &hours),
            Some(Choice::At(utc("2026-11-28T14:00:00Z")))
        );
        assert_eq!(read_choice("whenever", 3, now, &hours), None);
        // The day of the month is not the hour, and "maybe" is not May.
        assert_eq!(
            read_choice("dec 5 at 10am", 3, now, &hours),
            Some(Choice::At(utc("2026-12-05T15:00:00Z")))
        );
        assert_eq!(
            read_choice("nov 30 at 9am", 3, now, &hours),
            Some(Choice::At(utc("2026-11-30T14:00:00Z")))
        );
        assert_eq!(read_choice("maybe 5", 3, now, &hours), None);
    }

    proptest! {
        #[test]
        fn offers_are_free_within_hours_and_never_too_many(
            minutes_from_epoch in 0i64..(60 * 24 * 365 * 3),
            blocks in 1i64..6,
            busy_at in proptest::collection::vec(0i64..(60 * 24 * 8), 0..6),
        ) {
            let hours = Hours::default();
            let now = utc("2025-01-01T00:00:00Z") + Duration::minutes(minutes_from_epoch);
            let length = Duration::minutes(blocks * 90);
            let busy: Vec<Busy> = busy_at.iter().enumerate().map(|(i, m)| {
                let start = now + Duration::minutes(*m);
                ((i % 2) as u32 + 1, Window { start, end: start + Duration::minutes(120) })
            }).collect();
            let hours = Hours { crews: 2, ..hours };
            let offers = offer(now, length, &busy, &hours);
            prop_assert!(offers.len() <= hours.max_offers);
            for w in &offers {
                prop_assert!(w.start >= now + Duration::minutes(60));
                // One of the two crews is free for the whole window.
                prop_assert!((1..=2).any(|crew| busy.iter().all(|(c, b)| *c != crew || !b.overlaps(w))));
                let start = w.start.with_timezone(&hours.time_zone);
                let end = w.end.with_timezone(&hours.time_zone);
                prop_assert!(start.time() >= hours.open && end.time() <= hours.close);
                prop_assert_eq!(start.minute() % 15, 0);
            }
        }

        #[test]
        fn reading_a_choice_never_panics(text in "\\PC{0,80}") {
            let _ = read_choice(&text, 3, utc("2026-11-24T12:00:00Z"), &Hours::default());
        }
    }
}

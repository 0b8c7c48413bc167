//! Money as integer cents: prices are added and compared exactly, and shown as dollars.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Mul, Sub};

use serde::{Deserialize, Serialize};

/// An amount of money in cents (US dollars). Arithmetic saturates rather than wraps.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cents(i64);

impl Cents {
    /// Zero dollars.
    pub const ZERO: Cents = Cents(0);

    /// An amount in cents.
    pub const fn new(cents: i64) -> Self {
        Self(cents)
    }

    /// Whole dollars; beyond what fits in cents it saturates, as the arithmetic does.
    pub const fn dollars(dollars: i64) -> Self {
        Self(dollars.saturating_mul(100))
    }

    /// The amount in cents.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// This amount scaled by `percent` (0–100), rounded to the nearest cent (halves up).
    /// Computed in `i128`, where the product cannot overflow, so that rounding is exact even at
    /// the extremes; a result beyond `i64` (only possible above 100 %) saturates.
    pub fn percent(self, percent: u32) -> Cents {
        let scaled = (i128::from(self.0) * i128::from(percent) + 50).div_euclid(100);
        Cents(i64::try_from(scaled).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX }))
    }

    /// The larger of two amounts.
    pub fn max(self, other: Cents) -> Cents {
        Cents(self.0.max(other.0))
    }
}

impl Add for Cents {
    type Output = Cents;
    fn add(self, rhs: Cents) -> Cents {
        Cents(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Cents {
    fn add_assign(&mut self, rhs: Cents) {
        *self = *self + rhs;
    }
}

impl Sub for Cents {
    type Output = Cents;
    fn sub(self, rhs: Cents) -> Cents {
        Cents(self.0.saturating_sub(rhs.0))
    }
}

impl Mul<u32> for Cents {
    type Output = Cents;
    fn mul(self, rhs: u32) -> Cents {
        Cents(self.0.saturating_mul(i64::from(rhs)))
    }
}

impl Sum for Cents {
    fn sum<I: Iterator<Item = Cents>>(iter: I) -> Cents {
        iter.fold(Cents::ZERO, Add::add)
    }
}

/// `$1,234` for whole dollars, `$1,234.50` otherwise; negative amounts as `-$5`.
impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (dollars, cents) = (abs / 100, abs % 100);
        let digits = dollars.to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if cents == 0 {
            write!(f, "{sign}${grouped}")
        } else {
            write!(f, "{sign}${grouped}.{cents:02}")
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::Cents;

    #[test]
    fn shows_dollars_with_cents_only_when_needed() {
        assert_eq!(Cents::dollars(819).to_string(), "$819");
        assert_eq!(Cents::new(12_345_678).to_string(), "$123,456.78");
        assert_eq!(Cents::new(-500).to_string(), "-$5");
        assert_eq!(Cents::new(5).to_string(), "$0.05");
    }

    #[test]
    fn percentages_round_to_the_nearest_cent() {
        assert_eq!(Cents::dollars(819).percent(90), Cents::new(73_710));
        assert_eq!(Cents::new(999).percent(25), Cents::new(250));
    }

    #[test]
    fn dollars_saturate_at_the_extremes() {
        assert_eq!(Cents::dollars(i64::MAX), Cents::new(i64::MAX));
        assert_eq!(Cents::dollars(i64::MIN), Cents::new(i64::MIN));
        assert_eq!(Cents::dollars(i64::MAX / 100 + 1), Cents::new(i64::MAX));
        assert_eq!(
            Cents::dollars(i64::MAX / 100),
            Cents::new(i64::MAX / 100 * 100)
        );
    }

    #[test]
    fn percentages_saturate_at_the_extremes() {
        assert_eq!(Cents::new(i64::MAX).percent(100), Cents::new(i64::MAX));
        assert_eq!(Cents::new(i64::MIN).percent(100), Cents::new(i64::MIN));
        assert_eq!(
            Cents::new(i64::MAX).percent(90),
            Cents::new(8_301_034_833_169_298_226)
        );
        assert_eq!(Cents::new(i64::MAX).percent(u32::MAX), Cents::new(i64::MAX));
        assert_eq!(Cents::new(i64::MIN).percent(u32::MAX), Cents::new(i64::MIN));
        assert_eq!(Cents::new(i64::MIN).percent(0), Cents::ZERO);
    }

    proptest! {
        #[test]
        fn dollars_are_a_hundred_cents_or_saturate(dollars in any::<i64>()) {
            let expected = i64::try_from(i128::from(dollars) * 100)
                .unwrap_or(if dollars < 0 { i64::MIN } else { i64::MAX });
            prop_assert_eq!(Cents::dollars(dollars), Cents::new(expected));
        }

        #[test]
        fn a_percentage_lies_between_zero_and_the_whole(cents in any::<i64>(), percent in 0u32..=100) {
            let part = Cents::new(cents).percent(percent).get();
            prop_assert!(part.min(0) >= cents.min(0) && part.max(0) <= cents.max(0));
            prop_assert_eq!(Cents::new(cents).percent(100).get(), cents);
        }

        #[test]
        fn a_percentage_never_panics(cents in any::<i64>(), percent in any::<u32>()) {
            let _ = Cents::new(cents).percent(percent);
        }
    }
}

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

    /// Whole dollars.
    pub const fn dollars(dollars: i64) -> Self {
        Self(dollars * 100)
    }

    /// The amount in cents.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// This amount scaled by `percent` (0–100), rounded to the nearest cent.
    pub fn percent(self, percent: u32) -> Cents {
        Cents((self.0 * i64::from(percent) + 50).div_euclid(100))
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
}

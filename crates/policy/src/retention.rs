//! Retention periods: the `"<number> <unit>"` grammar of the policy file and its
//! conversion to a duration the expiry timer can compare with ages.
//!
//! It must never round a period up: a month counts as 30 days and a year as 365 days, so
//! data is erased at or before the time the policy states, never after.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// What the grammar is, said the same way in every error and in the docs.
pub const RETENTION_GRAMMAR: &str = "`<number> <unit>` with a whole number from 1 and a unit of day(s), week(s), month(s) or year(s), e.g. \"13 months\"";

const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

/// The unit of a retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionUnit {
    /// 24 hours.
    Days,
    /// 7 days.
    Weeks,
    /// Counted as 30 days (never longer than a calendar month, except February).
    Months,
    /// Counted as 365 days.
    Years,
}

impl RetentionUnit {
    fn days(self) -> u64 {
        match self {
            RetentionUnit::Days => 1,
            RetentionUnit::Weeks => 7,
            RetentionUnit::Months => 30,
            RetentionUnit::Years => 365,
        }
    }

    fn singular(self) -> &'static str {
        match self {
            RetentionUnit::Days => "day",
            RetentionUnit::Weeks => "week",
            RetentionUnit::Months => "month",
            RetentionUnit::Years => "year",
        }
    }
}

/// How long data of one category is kept after it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// How many units.
    pub amount: u32,
    /// Which unit.
    pub unit: RetentionUnit,
}

impl Retention {
    /// Parses `"13 months"`, `"1 year"`, `"30 days"`; the reason names the grammar.
    pub fn parse(text: &str) -> Result<Retention, String> {
        let mut words = text.split_whitespace();
        let (Some(amount_text), Some(unit_text), None) = (words.next(), words.next(), words.next())
        else {
            return Err(format!(
                "`{text}` is not a retention period; expected {RETENTION_GRAMMAR}"
            ));
        };
        let amount: u32 = amount_text.parse().map_err(|_| {
            format!(
                "`{amount_text}` in `{text}` is not a whole number; expected {RETENTION_GRAMMAR}"
            )
        })?;
        if amount == 0 {
            return Err(format!(
                "`{text}` would erase data as soon as it arrives; expected {RETENTION_GRAMMAR}"
            ));
        }
        let unit = match unit_text.to_ascii_lowercase().as_str() {
            "day" | "days" => RetentionUnit::Days,
            "week" | "weeks" => RetentionUnit::Weeks,
            "month" | "months" => RetentionUnit::Months,
            "year" | "years" => RetentionUnit::Years,
            _ => {
                return Err(format!(
                    "`{unit_text}` in `{text}` is not a unit; expected {RETENTION_GRAMMAR}"
                ));
            }
        };
        // Ten thousand years is the ceiling: anything longer is a typo, and the bound keeps
        // the conversion to seconds far from overflow.
        if u64::from(amount) * unit.days() > 10_000 * 365 {
            return Err(format!(
                "`{text}` is longer than 10000 years; expected {RETENTION_GRAMMAR}"
            ));
        }
        Ok(Retention { amount, unit })
    }

    /// The period as a duration (months of 30 days, years of 365 days).
    pub fn as_duration(&self) -> Duration {
        Duration::from_secs(self.as_seconds())
    }

    /// The period in seconds (months of 30 days, years of 365 days).
    pub fn as_seconds(&self) -> u64 {
        u64::from(self.amount) * self.unit.days() * SECONDS_PER_DAY
    }

    /// The period in whole days.
    pub fn as_days(&self) -> u64 {
        u64::from(self.amount) * self.unit.days()
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.amount == 1 { "" } else { "s" };
        write!(
            formatter,
            "{} {}{plural}",
            self.amount,
            self.unit.singular()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_singular_and_plural() {
        assert_eq!(Retention::parse("13 months").unwrap().as_days(), 390);
        assert_eq!(Retention::parse("1 month").unwrap().as_days(), 30);
        assert_eq!(Retention::parse("3 years").unwrap().as_days(), 3 * 365);
        assert_eq!(Retention::parse("6 weeks").unwrap().as_days(), 42);
        assert_eq!(Retention::parse(" 30   Days ").unwrap().as_days(), 30);
        assert_eq!(Retention::parse("1 day").unwrap().as_seconds(), 86_400);
        assert_eq!(
            Retention::parse("2 days").unwrap().as_duration(),
            Duration::from_secs(172_800)
        );
    }

    #[test]
    fn rejects_other_shapes_naming_the_grammar() {
        for text in [
            "3y",
            "P2Y",
            "18",
            "months",
            "0 days",
            "-1 days",
            "1.5 years",
            "2 decades",
            "",
            "1 year and 2 months",
            "99999 years",
        ] {
            let reason = Retention::parse(text).unwrap_err();
            assert!(reason.contains(RETENTION_GRAMMAR), "{text}: {reason}");
        }
    }

    #[test]
    fn displays_in_the_grammar_it_parses() {
        for text in ["1 day", "13 months", "3 years", "2 weeks"] {
            assert_eq!(Retention::parse(text).unwrap().to_string(), text);
        }
    }
}

//! Alias lifetime (`alias.ttl`): calendar months, as docs/REFERENCE.md says "2 calendar
//! months", or a fixed duration for tests and special deployments.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Months, Utc};

/// How long an alias lives (`alias.ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Calendar months (`2 months`).
    Months(u32),
    /// Seconds (`90d`, `3600s`; tests use short ones).
    Seconds(i64),
}

impl Ttl {
    /// When an alias made at `from` expires.
    pub fn after(self, from: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Ttl::Months(m) => from
                .checked_add_months(Months::new(m))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            Ttl::Seconds(s) => from + Duration::seconds(s),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a lifetime; write e.g. \"2 months\", \"30 days\", \"12h\", \"90s\"")]
pub struct TtlError(String);

impl FromStr for Ttl {
    type Err = TtlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || TtlError(s.to_string());
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let n: i64 = t[..split].parse().map_err(|_| err())?;
        let unit = t[split..].trim();
        if n <= 0 {
            return Err(err());
        }
        let secs = |mult: i64| n.checked_mul(mult).map(Ttl::Seconds).ok_or_else(err);
        match unit {
            "month" | "months" | "mo" => u32::try_from(n).map(Ttl::Months).map_err(|_| err()),
            "day" | "days" | "d" => secs(86_400),
            "hour" | "hours" | "h" => secs(3_600),
            "minute" | "minutes" | "min" | "m" => secs(60),
            "second" | "seconds" | "s" => secs(1),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ttl::Months(m) => write!(f, "{m} months"),
            Ttl::Seconds(s) => write!(f, "{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("2 months".parse(), Ok(Ttl::Months(2)));
        assert_eq!("30d".parse(), Ok(Ttl::Seconds(30 * 86_400)));
        assert_eq!("90s".parse(), Ok(Ttl::Seconds(90)));
        assert!("".parse::<Ttl>().is_err());
        assert!("0s".parse::<Ttl>().is_err());
        assert!("2 fortnights".parse::<Ttl>().is_err());
    }
}

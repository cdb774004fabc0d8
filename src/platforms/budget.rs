//! The app-wide budgets a platform's merchants share: what an API answer's headers say of the
//! app's usage, and the documented budgets a platform does not report, which we count.

use std::time::Duration;

use http::HeaderMap;

/// What an answer says of the app's usage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AppUsage {
    /// Nothing (no header, or a platform that reports none).
    Unreported,
    /// This share of the budget is spent (0 = none, 1 = all of it; may exceed 1).
    Spent(f64),
    /// A usage header that could not be read: ignored, and counted.
    Malformed,
}

/// A documented app-wide budget the platform does not report in its answers: we count the calls
/// that spend it, across replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedBudget {
    /// Calls allowed per window.
    pub calls: u64,
    /// The window.
    pub window: Duration,
}

/// The usage `limit` and `remaining` headers (whole numbers) report: `1 - remaining / limit`.
pub fn from_remaining(headers: &HeaderMap, limit: &str, remaining: &str) -> AppUsage {
    let number = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().ok().and_then(|t| t.trim().parse::<u64>().ok()))
    };
    match (number(limit), number(remaining)) {
        (None, None) => AppUsage::Unreported,
        (Some(Some(limit)), Some(Some(remaining))) if limit > 0 => {
            AppUsage::Spent(1.0 - remaining.min(limit) as f64 / limit as f64)
        }
        _ => AppUsage::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn limit_and_remaining_become_a_share_and_junk_is_malformed() {
        let mut headers = HeaderMap::new();
        assert_eq!(from_remaining(&headers, "l", "r"), AppUsage::Unreported);
        headers.insert("l", HeaderValue::from_static("400"));
        headers.insert("r", HeaderValue::from_static("100"));
        assert_eq!(from_remaining(&headers, "l", "r"), AppUsage::Spent(0.75));
        headers.insert("r", HeaderValue::from_static("many"));
        assert_eq!(from_remaining(&headers, "l", "r"), AppUsage::Malformed);
        headers.remove("r");
        assert_eq!(from_remaining(&headers, "l", "r"), AppUsage::Malformed);
        headers.insert("l", HeaderValue::from_static("0"));
        headers.insert("r", HeaderValue::from_static("0"));
        assert_eq!(from_remaining(&headers, "l", "r"), AppUsage::Malformed);
    }
}

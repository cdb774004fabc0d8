//! Reading query strings: the parameters of an authorization request (duplicates kept, so they can
//! be refused) and the plain name/value pairs the API handlers read.
//!
//! It owns no rules: the consent screen and the platforms decide what a parameter means.

use std::collections::HashSet;

/// The pairs of a query string, in order; an unreadable query has none.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// The first value of `name` among `pairs`.
pub(crate) fn query_param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The query parameters of an authorization request, in order, duplicates kept.
pub(crate) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Self(query_pairs(query))
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        query_param(&self.0, name)
    }

    /// The first parameter that appears more than once.
    pub(crate) fn duplicate(&self) -> Option<&str> {
        let mut seen = HashSet::new();
        self.0
            .iter()
            .find(|(key, _)| !seen.insert(key.as_str()))
            .map(|(key, _)| key.as_str())
    }
}

//! The variable reader. Every setting is read through [`Vars`], so the rules shared by all of them
//! live here once: a blank value means "not set", a secret may come from `<NAME>_FILE`, a number
//! has a range and a unit, a URL is http(s) and, where production says so, https only.
//!
//! The reader also remembers every name it was asked for: a variable in one of our namespaces that
//! nobody asked for is probably a typo, and [`Vars::finish`] reports it as a warning (never an
//! error: an unknown variable changes nothing).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::error::ConfigError;
use crate::platforms::BUILT_IN;

/// The unit a duration setting is written in (its name ends with it).
#[derive(Debug, Clone, Copy)]
pub(super) enum Unit {
    Milliseconds,
    Seconds,
    Minutes,
    Days,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::Milliseconds => "milliseconds",
            Self::Seconds => "seconds",
            Self::Minutes => "minutes",
            Self::Days => "days",
        }
    }

    fn duration(self, n: u64) -> Duration {
        match self {
            Self::Milliseconds => Duration::from_millis(n),
            Self::Seconds => Duration::from_secs(n),
            Self::Minutes => Duration::from_secs(n * 60),
            Self::Days => Duration::from_secs(n * 24 * 3600),
        }
    }
}

/// Reads settings from a variable map (the process environment, or a literal map in tests).
pub(super) struct Vars<'a> {
    map: &'a HashMap<String, String>,
    production: bool,
    asked: RefCell<BTreeSet<String>>,
    warnings: RefCell<Vec<String>>,
}

impl<'a> Vars<'a> {
    pub(super) fn new(map: &'a HashMap<String, String>) -> Self {
        Self {
            map,
            production: false,
            asked: RefCell::default(),
            warnings: RefCell::default(),
        }
    }

    /// Turns on the production-only requirements (set once `ENVIRONMENT` is read).
    pub(super) fn set_production(&mut self, production: bool) {
        self.production = production;
    }

    pub(super) fn production(&self) -> bool {
        self.production
    }

    /// The trimmed value; blank counts as not set.
    pub(super) fn get(&self, name: &str) -> Option<&'a str> {
        self.asked.borrow_mut().insert(name.to_owned());
        self.map
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A secret from `NAME`, or from the file `NAME_FILE` names (Docker and Kubernetes secrets).
    pub(super) fn secret(&self, name: &str) -> Result<Option<SecretString>, ConfigError> {
        let file_var = format!("{name}_FILE");
        match (self.get(name), self.get(&file_var)) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                file_var,
                format!("cannot be set together with {name}: set only one"),
            )),
            (Some(value), None) => Ok(Some(SecretString::from(value.to_owned()))),
            (None, Some(path)) => read_secret_file(&file_var, path).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// A comma- or whitespace-separated list of secrets (from `NAME` or `NAME_FILE`).
    pub(super) fn secret_list(&self, name: &str) -> Result<Vec<SecretString>, ConfigError> {
        use secrecy::ExposeSecret;
        Ok(self
            .secret(name)?
            .map(|text| {
                text.expose_secret()
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_owned()))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub(super) fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(_) => Err(ConfigError::new(name, "must be true or false")),
        }
    }

    /// A whole number within `range`.
    pub(super) fn number_in<T>(
        &self,
        name: &str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<T>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ConfigError::new(
                        name,
                        format!(
                            "must be a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )
                }),
        }
    }

    /// A duration written as a whole number of `unit`s within `range`.
    pub(super) fn duration_in(
        &self,
        name: &str,
        default: u64,
        range: RangeInclusive<u64>,
        unit: Unit,
    ) -> Result<Duration, ConfigError> {
        let n = match self.get(name) {
            None => default,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ConfigError::new(
                        name,
                        format!(
                            "must be a whole number of {} from {} to {}",
                            unit.name(),
                            range.start(),
                            range.end()
                        ),
                    )
                })?,
        };
        Ok(unit.duration(n))
    }

    /// A duration in whole seconds within `range`.
    pub(super) fn seconds_in(
        &self,
        name: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.duration_in(name, default, range, Unit::Seconds)
    }

    /// A comma- or space-separated list.
    pub(super) fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split([',', ' '])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An http or https URL with a host.
    pub(super) fn url(&self, name: &str) -> Result<Option<Url>, ConfigError> {
        self.get(name).map(|v| parse_http_url(name, v)).transpose()
    }

    /// A URL the service calls or sends the browser to: in production it must be https, or one
    /// typo would send client secrets, codes or tokens in clear text.
    pub(super) fn https_url_in_production(&self, name: &str) -> Result<Option<Url>, ConfigError> {
        let url = self.url(name)?;
        if let Some(url) = &url {
            require_https_in_production(self.production, name, url)?;
        }
        Ok(url)
    }

    /// `value`, which production requires: `why` completes "is required in production".
    pub(super) fn required_in_production<T>(
        &self,
        name: &str,
        value: Option<T>,
        why: &str,
    ) -> Result<Option<T>, ConfigError> {
        if self.production && value.is_none() {
            return Err(ConfigError::new(
                name,
                format!("is required in production{why}"),
            ));
        }
        Ok(value)
    }

    /// Records a warning: a setting that works but is probably not what the operator meant.
    pub(super) fn warn(&self, message: String) {
        self.warnings.borrow_mut().push(message);
    }

    /// The warnings, followed by one for each variable starting with one of `prefixes` that was
    /// never asked for.
    pub(super) fn finish(self, prefixes: &[String]) -> Vec<String> {
        let asked = self.asked.into_inner();
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|name| prefixes.iter().any(|p| name.starts_with(p.as_str())))
            .filter(|name| !asked.contains(name.as_str()))
            .filter(|name| !is_foreign(name, &self.map[name.as_str()]))
            .collect();
        unknown.sort();
        let mut warnings = self.warnings.into_inner();
        warnings.extend(unknown.into_iter().map(|name| match closest(name, &asked) {
            Some(known) => format!(
                "{name} is not a growth-engine setting and is ignored: did you mean {known}?"
            ),
            None => format!("{name} is not a growth-engine setting and is ignored"),
        }));
        warnings
    }
}

/// Parses an http(s) URL with a host.
pub(super) fn parse_http_url(name: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::new(name, format!("is not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            name,
            "must be an http or https URL with a host",
        ));
    }
    Ok(url)
}

/// Refuses a non-https `url` in production.
pub(super) fn require_https_in_production(
    production: bool,
    name: &str,
    url: &Url,
) -> Result<(), ConfigError> {
    if production && url.scheme() != "https" {
        return Err(ConfigError::new(name, "must be https in production"));
    }
    Ok(())
}

/// Reads a secret file: its contents less one trailing newline (what `echo` and editors add). The
/// error names the variable and the path, never the contents.
fn read_secret_file(variable: &str, path: &str) -> Result<SecretString, ConfigError> {
    use std::io::ErrorKind;
    let mut text = std::fs::read_to_string(path).map_err(|e| {
        let problem = match e.kind() {
            ErrorKind::NotFound => "does not exist".to_owned(),
            ErrorKind::PermissionDenied => "cannot be read by this user".to_owned(),
            ErrorKind::InvalidData => "is not UTF-8 text".to_owned(),
            kind => format!("cannot be read ({kind})"),
        };
        ConfigError::new(variable, format!("names a file that {problem}: {path}"))
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(ConfigError::new(
            variable,
            format!("names an empty file: {path}"),
        ));
    }
    Ok(SecretString::from(text))
}

/// Variables in our namespaces that others set on purpose: Kubernetes' service links for a service
/// named like us or like a platform (`GROWTH_ENGINE_SERVICE_HOST`, `GROWTH_ENGINE_PORT_8003_TCP`,
/// ...) and a platform's client libraries' own settings (its definition's `foreign_vars`).
fn is_foreign(name: &str, value: &str) -> bool {
    let port_link = name
        .split_once("_PORT_")
        .is_some_and(|(_, rest)| rest.starts_with(|c: char| c.is_ascii_digit()));
    BUILT_IN.iter().any(|p| p.foreign_vars.contains(&name))
        || name.contains("_SERVICE_HOST")
        || name.contains("_SERVICE_PORT")
        || (name.ends_with("_PORT") && (value.starts_with("tcp://") || value.starts_with("udp://")))
        || port_link
}

/// The known name closest to `name`, if one is close enough to be the intended one.
fn closest<'k>(name: &str, known: &'k BTreeSet<String>) -> Option<&'k str> {
    // `GROWTH_PORT` is most likely `PORT`: compare without our own prefix too.
    let bare = name.strip_prefix("GROWTH_").unwrap_or(name);
    known
        .iter()
        .map(|k| {
            let distance = edit_distance(name, k).min(edit_distance(bare, k));
            (distance, k)
        })
        .filter(|(distance, k)| *distance <= 3.min(k.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance between two ASCII-ish names (one row of the classic table at a time).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("META_APP_SECRET", "META_APP_SECRET"), 0);
        assert_eq!(edit_distance("META_APP_SECERT", "META_APP_SECRET"), 2);
        assert_eq!(edit_distance("PORT", "PORTS"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn a_secret_file_loses_one_trailing_newline_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, " s3cret value \n\n").unwrap();
        let vars = map(&[("WEBHOOK_SECRET_FILE", path.to_str().unwrap())]);
        let secret = Vars::new(&vars).secret("WEBHOOK_SECRET").unwrap().unwrap();
        assert_eq!(secret.expose_secret(), " s3cret value \n");
    }

    #[test]
    fn an_empty_secret_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").unwrap();
        let vars = map(&[("API_KEYS_FILE", path.to_str().unwrap())]);
        let error = Vars::new(&vars).secret("API_KEYS").unwrap_err();
        assert_eq!(error.variable, "API_KEYS_FILE");
    }

    #[test]
    fn numbers_outside_their_range_are_refused_with_the_range() {
        let vars = map(&[("N", "0"), ("M", "7")]);
        let vars = Vars::new(&vars);
        let error = vars.number_in("N", 5u32, 1..=10).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid setting N: must be a whole number from 1 to 10"
        );
        assert_eq!(vars.number_in("M", 5u32, 1..=10).unwrap(), 7);
        assert_eq!(vars.number_in("UNSET", 5u32, 1..=10).unwrap(), 5);
        let error = vars.duration_in("N", 1, 1..=9, Unit::Days).unwrap_err();
        assert!(error.problem.contains("days"), "{error}");
    }

    #[test]
    fn kubernetes_service_links_are_not_typos() {
        for (name, value) in [
            ("GROWTH_ENGINE_SERVICE_HOST", "10.0.0.7"),
            ("GROWTH_ENGINE_SERVICE_PORT_HTTP", "8003"),
            ("GROWTH_ENGINE_PORT", "tcp://10.0.0.7:8003"),
            ("GROWTH_ENGINE_PORT_8003_TCP_ADDR", "10.0.0.7"),
        ] {
            assert!(is_foreign(name, value), "{name}");
        }
        assert!(!is_foreign("GROWTH_PORT", "8003"), "a typo of PORT");
        assert!(!is_foreign("GROWTH_PORTS", "8003"));
    }
}

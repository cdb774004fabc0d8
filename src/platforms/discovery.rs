//! The small helpers the platform modules' asset discovery shares: URLs under a platform's API
//! base and reading JSON answers.

use serde_json::Value;
use url::Url;

use super::error::PlatformError;
use super::platform::PlatformSpec;

/// `rest` (e.g. `me/accounts`) under the platform's API base; a platform without one (a generic
/// provider without `<NAME>_API_URL`) has no API to call.
pub fn api_url(spec: &PlatformSpec, rest: &str) -> Result<Url, PlatformError> {
    let Some(base) = spec.api_base.clone() else {
        return Err(PlatformError::NotConfigured(spec.id.clone()));
    };
    // The base ends with a slash (the table's literals and the sandbox's bases do), so `join`
    // appends; a base without one would lose its last segment, hence the fix-up.
    let mut base = base;
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base.join(rest).unwrap_or(base))
}

/// A string field of a JSON object.
pub fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// The items of a JSON array field (empty when absent).
pub fn items<'a>(value: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::Catalog;
    use std::collections::BTreeMap;

    #[test]
    fn api_paths_stay_under_the_versioned_base() {
        let catalog = Catalog::resolve(&BTreeMap::new(), &[], None);
        let google = catalog.find("google").expect("built in");
        assert_eq!(
            api_url(google, "./customers:listAccessibleCustomers")
                .expect("an API base")
                .as_str(),
            "https://googleads.googleapis.com/v26/customers:listAccessibleCustomers"
        );
        let mut spec = google.clone();
        spec.api_base = Some(Url::parse("http://127.0.0.1:9/sandbox/google/api/v26").expect("url"));
        assert_eq!(
            api_url(&spec, "./customers:listAccessibleCustomers")
                .expect("an API base")
                .as_str(),
            "http://127.0.0.1:9/sandbox/google/api/v26/customers:listAccessibleCustomers"
        );
    }
}

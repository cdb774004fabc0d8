//! The merchant's assets on a platform (pages, Instagram accounts, ad accounts, boards, the
//! creator or user): the types discovery returns, and the small helpers the platform modules'
//! discovery hooks share. The hooks themselves live in the platform modules and are dispatched from
//! [`super::quirks::discover_assets`]; storing and selecting assets is the lifecycle's and the
//! store's business, not this module's.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use super::catalog::PlatformSpec;
use super::error::OAuthError;

/// What kind of thing an asset is. The text forms are the API's `kind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AssetKind {
    /// A Facebook Page (Meta).
    FacebookPage,
    /// An Instagram business account linked to a Page (Meta).
    InstagramAccount,
    /// A Meta ad account (`act_<n>`).
    AdAccount,
    /// A Google Ads customer the user can access.
    GoogleAdsCustomer,
    /// The TikTok creator and what its posting API allows.
    TiktokCreator,
    /// A Pinterest board.
    PinterestBoard,
    /// A Pinterest ad account.
    PinterestAdAccount,
    /// The X user.
    XUser,
}

impl AssetKind {
    /// Every kind, in the order views list them.
    pub(crate) const ALL: [AssetKind; 8] = [
        Self::FacebookPage,
        Self::InstagramAccount,
        Self::AdAccount,
        Self::GoogleAdsCustomer,
        Self::TiktokCreator,
        Self::PinterestBoard,
        Self::PinterestAdAccount,
        Self::XUser,
    ];

    /// The API's text for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FacebookPage => "facebook_page",
            Self::InstagramAccount => "instagram_account",
            Self::AdAccount => "ad_account",
            Self::GoogleAdsCustomer => "google_ads_customer",
            Self::TiktokCreator => "tiktok_creator",
            Self::PinterestBoard => "pinterest_board",
            Self::PinterestAdAccount => "pinterest_ad_account",
            Self::XUser => "x_user",
        }
    }

    /// A kind from its text.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The label the connections page gives its select.
    pub fn label(self) -> &'static str {
        match self {
            Self::FacebookPage => "Default Facebook Page",
            Self::InstagramAccount => "Default Instagram account",
            Self::AdAccount | Self::PinterestAdAccount => "Default ad account",
            Self::GoogleAdsCustomer => "Default Google Ads customer",
            Self::TiktokCreator => "TikTok creator",
            Self::PinterestBoard => "Default board",
            Self::XUser => "X user",
        }
    }
}

impl fmt::Display for AssetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One asset as discovery found it. `details` is non-secret JSON (never a token).
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// What it is.
    pub kind: AssetKind,
    /// The platform's id of it.
    pub id: String,
    /// Its display name, when the platform gives one.
    pub name: Option<String>,
    /// Further non-secret facts (category, currency, privacy levels, the Page of an Instagram
    /// account...).
    pub details: Value,
}

/// What a discovery found: the assets, and secrets that go to the sealed token set only (Meta's
/// page tokens, by `page:{id}`).
#[derive(Debug, Default)]
pub struct AssetSet {
    /// The assets.
    pub assets: Vec<Asset>,
    /// Secrets for the sealed set.
    pub secrets: BTreeMap<String, SecretString>,
}

/// `rest` (e.g. `me/accounts`) under the platform's API base; a platform without one (a generic
/// provider without `<NAME>_API_URL`) has no API to call.
pub(super) fn api_url(spec: &PlatformSpec, rest: &str) -> Result<Url, OAuthError> {
    let Some(base) = spec.api_base.clone() else {
        return Err(OAuthError::NotConfigured(spec.id.clone()));
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
pub(super) fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// The items of a JSON array field (empty when absent).
pub(super) fn items<'a>(value: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
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

    #[test]
    fn every_kind_reads_back_from_its_api_text() {
        let texts: Vec<&str> = AssetKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            texts,
            [
                "facebook_page",
                "instagram_account",
                "ad_account",
                "google_ads_customer",
                "tiktok_creator",
                "pinterest_board",
                "pinterest_ad_account",
                "x_user"
            ]
        );
        for kind in AssetKind::ALL {
            assert_eq!(AssetKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(AssetKind::parse("Facebook_Page"), None);
    }

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

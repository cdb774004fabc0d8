//! The merchant's assets on a platform (pages, linked accounts, ad accounts, boards, the creator
//! or user): the types discovery returns. Discovery itself is each platform's
//! [`Platform::discover_assets`](super::platform::Platform::discover_assets); storing and selecting
//! assets is the lifecycle's and the store's business, not this module's.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde_json::Value;

/// What kind of thing an asset is, as the platform module that discovers it defines it. The text
/// forms are the API's `kind` values; `builtin::asset_kinds` lists every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetKind {
    /// The API's text for the kind.
    pub key: &'static str,
    /// The label the connections page gives its select.
    pub label: &'static str,
    /// Whether the merchant picks a default of this kind (an identity is not a choice).
    pub selectable: bool,
    /// Which token acts for an asset of this kind.
    pub token: AssetToken,
}

/// Which token acts for an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AssetToken {
    /// The connection's own access token.
    Connection,
    /// The page token discovery sealed for the asset's own id (`page:{id}`).
    OwnPage,
    /// The page token of the page the asset's `details` name in this field (`page:{page_id}`).
    LinkedPage(&'static str),
}

impl AssetKind {
    /// The API's text for the kind.
    pub fn as_str(self) -> &'static str {
        self.key
    }

    /// The label the connections page gives its select.
    pub fn label(self) -> &'static str {
        self.label
    }

    /// The page whose token acts for an asset of this kind with `id` and `details`, if a page
    /// token does.
    pub fn page_of(self, id: &str, details: &Value) -> Option<String> {
        match self.token {
            AssetToken::Connection => None,
            AssetToken::OwnPage => Some(id.to_owned()),
            AssetToken::LinkedPage(field) => details.get(field)?.as_str().map(str::to_owned),
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

#[cfg(test)]
mod tests {
    use crate::platforms::builtin::{asset_kind, asset_kinds};

    #[test]
    fn every_kind_reads_back_from_its_api_text() {
        let texts: Vec<&str> = asset_kinds().iter().map(|k| k.as_str()).collect();
        assert_eq!(
            texts,
            [
                "facebook_page",
                "instagram_account",
                "ad_account",
                "tiktok_creator",
                "google_ads_customer",
                "pinterest_board",
                "pinterest_ad_account",
                "x_user",
                "linkedin_organization",
                "linkedin_ad_account"
            ]
        );
        for kind in asset_kinds() {
            assert_eq!(asset_kind(kind.as_str()), Some(kind));
        }
        assert_eq!(asset_kind("Facebook_Page"), None);
    }
}

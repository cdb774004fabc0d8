//! A completed authorization: what the flow returns and the lifecycle records.

use std::collections::BTreeMap;

use secrecy::SecretString;

use super::platform::{AccountInfo, TokenGrant};
use crate::domain::{PlatformId, StoreId, UserId};

/// What a grant adds besides tokens and the account (found by a platform's hooks).
#[derive(Debug, Default)]
pub struct GrantDetails {
    /// Non-secret metadata (Meta pages, Instagram accounts).
    pub metadata: serde_json::Value,
    /// Scopes the platform reported granting by other means than the token response.
    pub granted_scopes: Option<Vec<String>>,
}

/// A completed authorization, ready to be recorded as the store's connection: what the flow
/// returns and the lifecycle records.
#[derive(Debug)]
pub struct Grant {
    /// The platform.
    pub platform: PlatformId,
    /// The store the merchant connected.
    pub store_id: StoreId,
    /// The merchant's user.
    pub user_id: UserId,
    /// What the token endpoint granted.
    pub tokens: TokenGrant,
    /// The connected account.
    pub account: AccountInfo,
    /// What the platform's hooks found besides.
    pub details: GrantDetails,
    /// Further secrets to seal with the tokens (Meta's page tokens, by `page:{id}`).
    pub extra_secrets: BTreeMap<String, SecretString>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TokenSet;

    #[test]
    fn a_grants_debug_output_shows_no_secret() {
        let grant = Grant {
            platform: PlatformId::parse("acme").expect("slug"),
            store_id: StoreId::parse("store").expect("id"),
            user_id: UserId::parse("user").expect("id"),
            tokens: TokenGrant {
                tokens: TokenSet {
                    access_token: "access-secret-1".to_owned().into(),
                    refresh_token: Some("refresh-secret-2".to_owned().into()),
                    token_type: "Bearer".into(),
                    expires_at: None,
                    issued_at: None,
                    refresh_expires_at: None,
                    scopes: vec![],
                    extra: BTreeMap::new(),
                },
                scopes_reported: false,
                account_hint: None,
            },
            account: AccountInfo::default(),
            details: GrantDetails::default(),
            extra_secrets: BTreeMap::from([(
                "page:1".to_owned(),
                SecretString::from("page-secret-3".to_owned()),
            )]),
        };
        let printed = format!("{grant:?}");
        for secret in ["access-secret-1", "refresh-secret-2", "page-secret-3"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("page:1"), "{printed}");
    }
}

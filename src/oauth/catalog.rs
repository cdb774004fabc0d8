//! The platform catalog: each platform described as data (endpoints, parameter names, scope
//! separator, client authentication, PKCE, response shapes, revocation), resolved against the
//! settings (credentials, `<PLATFORM>_<ENDPOINT>_URL` and `<PLATFORM>_SCOPES` overrides, the sandbox).
//!
//! Adding a platform is adding an entry here; a genuine quirk gets a named [`Hook`] with its source.
//! The facts and their sources are in `shared/providers.md`.

use std::collections::BTreeMap;

use url::Url;

use crate::config::Settings;
use crate::domain::PlatformId;
use crate::platforms::settings::{ClientCredentials, PlatformSettings};

/// How the client proves its identity at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)` (RFC 6749 §2.3.1).
    Basic,
    /// Client id and secret as form (or query) parameters.
    RequestBody,
}

/// How the token endpoint is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMethod {
    /// `POST` with a form body (RFC 6749).
    PostForm,
    /// `GET` with query parameters (Meta's documented manual flow).
    GetQuery,
}

/// Whether PKCE (RFC 7636) is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkce {
    /// Not sent: the platform's web flow does not document it.
    None,
    /// `S256` challenge with every authorization request.
    S256,
}

/// How a grant is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// `grant_type=refresh_token`.
    RefreshToken,
    /// Meta: no refresh token; a still-valid long-lived token is exchanged (`fb_exchange_token`).
    MetaExchange,
}

/// How tokens are revoked at the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// `POST` form `token` (+ `token_type_hint`), RFC 7009, with the platform's client authentication
    /// when `authenticate` is set.
    Form {
        /// Send client credentials as the token endpoint does.
        authenticate: bool,
        /// Send `token_type_hint=access_token`.
        hint: bool,
    },
    /// Meta: `DELETE /me/permissions` with the user token removes the app's every permission.
    MetaDeletePermissions,
    /// The platform offers no revocation for user tokens; the text tells the merchant what to do.
    Unsupported(&'static str),
}

/// The shape of the platform's error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// RFC 6749 §5.2: `{"error": "...", "error_description": "..."}`.
    Rfc6749,
    /// Meta Graph: `{"error": {"message", "type", "code", "error_subcode"}}`.
    Graph,
    /// Pinterest: `{"code": <int>, "message": "..."}`.
    CodeMessage,
}

/// Where the account's fields sit in the user-info response. Each field lists JSON paths tried in
/// order, relative to `wrapper`.
#[derive(Debug, Clone)]
pub struct AccountMapping {
    /// Query parameters the user-info call needs (`fields=...`).
    pub query: Vec<(&'static str, &'static str)>,
    /// The path to the object holding the account (`data.user` for TikTok, `data` for X).
    pub wrapper: &'static [&'static str],
    /// Paths to the account id.
    pub id: &'static [&'static [&'static str]],
    /// Paths to the display name.
    pub name: &'static [&'static [&'static str]],
    /// Paths to a picture URL.
    pub picture: &'static [&'static [&'static str]],
}

/// A platform's genuine deviations from plain OAuth 2.0, each handled by a named function in
/// `quirks.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Meta: exchange the short-lived token for a long-lived one right after the code exchange.
    /// <https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived>
    MetaLongLivedExchange,
    /// Meta: read granted permissions, the merchant's pages (tokens go to the sealed set) and their
    /// Instagram business accounts.
    /// <https://developers.facebook.com/docs/graph-api/reference/user/permissions/>
    MetaPagesAndPermissions,
    /// TikTok's user-info answers HTTP 200 with `error.code` other than `ok` on failure.
    /// <https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info>
    TikTokEnvelopeError,
}

/// Everything the engine needs to speak to one platform.
#[derive(Debug, Clone)]
pub struct PlatformSpec {
    /// Slug used in paths and settings.
    pub id: PlatformId,
    /// Name shown to merchants.
    pub display_name: String,
    /// Authorization endpoint.
    pub authorize_url: Url,
    /// Token endpoint (Meta: also the long-lived exchange).
    pub token_url: Url,
    /// Revocation endpoint.
    pub revoke_url: Option<Url>,
    /// User-info endpoint.
    pub userinfo_url: Option<Url>,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// How scopes are joined in the authorization request.
    pub scope_separator: &'static str,
    /// The name of the client-id parameter (`client_key` at TikTok).
    pub client_id_param: &'static str,
    /// Token endpoint client authentication.
    pub client_auth: ClientAuth,
    /// Token endpoint method.
    pub token_method: TokenMethod,
    /// PKCE.
    pub pkce: Pkce,
    /// Further fixed authorization parameters (Google's `access_type=offline`, `prompt=consent`).
    pub extra_authorize_params: Vec<(String, String)>,
    /// How the grant is renewed.
    pub renewal: Renewal,
    /// Whether a refresh invalidates the previous refresh token.
    pub refresh_rotates: bool,
    /// How to revoke.
    pub revocation: Revocation,
    /// Error body shape.
    pub errors: ErrorShape,
    /// Where the account's fields are.
    pub account: AccountMapping,
    /// Named quirks, applied in order.
    pub hooks: Vec<Hook>,
    /// Client credentials; `None` means not configured.
    pub credentials: Option<ClientCredentials>,
    /// Served by the built-in sandbox rather than the real platform.
    pub sandboxed: bool,
    /// Whether the operator declared it (a generic provider).
    pub generic: bool,
}

impl PlatformSpec {
    /// Whether flows can run (credentials present, or the sandbox stands in).
    pub fn is_configured(&self) -> bool {
        self.credentials.is_some()
    }
}

/// The slugs of the built-in platforms, in display order.
pub const BUILT_IN: [&str; 5] = ["meta", "tiktok", "google", "pinterest", "twitter"];

fn url(text: &str) -> Option<Url> {
    // The literals below are valid URLs; a typo would drop the platform and fail the catalog tests.
    Url::parse(text).ok()
}

fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const META_GRAPH_VERSION: &str = "v25.0";

/// The built-in definition of a platform, with its real endpoints.
fn built_in(slug: &str) -> Option<PlatformSpec> {
    let id = PlatformId::parse(slug).ok()?;
    let plain_account = AccountMapping {
        query: vec![],
        wrapper: &[],
        id: &[&["id"]],
        name: &[&["name"]],
        picture: &[],
    };
    let spec = match slug {
        // providers.md §1: GET token endpoint, params not Basic, Graph errors, no refresh token,
        // long-lived exchange, pages via /me/accounts.
        "meta" => PlatformSpec {
            id,
            display_name: "Meta (Facebook & Instagram)".into(),
            authorize_url: url(&format!("https://www.facebook.com/{META_GRAPH_VERSION}/dialog/oauth"))?,
            token_url: url(&format!("https://graph.facebook.com/{META_GRAPH_VERSION}/oauth/access_token"))?,
            revoke_url: Some(url(&format!("https://graph.facebook.com/{META_GRAPH_VERSION}/me/permissions"))?),
            userinfo_url: Some(url(&format!("https://graph.facebook.com/{META_GRAPH_VERSION}/me"))?),
            scopes: scopes(&[
                "pages_show_list",
                "pages_read_engagement",
                "pages_manage_posts",
                "read_insights",
                "instagram_basic",
                "instagram_content_publish",
                "instagram_manage_insights",
                "ads_management",
                "ads_read",
                "business_management",
            ]),
            scope_separator: ",",
            client_id_param: "client_id",
            client_auth: ClientAuth::RequestBody,
            token_method: TokenMethod::GetQuery,
            // PKCE exists only in Meta's OIDC variant, "still in testing" (providers.md M11).
            pkce: Pkce::None,
            extra_authorize_params: params(&[("response_type", "code")]),
            renewal: Renewal::MetaExchange,
            refresh_rotates: false,
            revocation: Revocation::MetaDeletePermissions,
            errors: ErrorShape::Graph,
            account: AccountMapping {
                query: vec![("fields", "id,name,picture")],
                picture: &[&["picture", "data", "url"]],
                ..plain_account
            },
            hooks: vec![Hook::MetaLongLivedExchange, Hook::MetaPagesAndPermissions],
            credentials: None,
            sandboxed: false,
            generic: false,
        },
        // providers.md §2: client_key, comma scopes, flat token response, data-wrapped user info.
        "tiktok" => PlatformSpec {
            id,
            display_name: "TikTok".into(),
            authorize_url: url("https://www.tiktok.com/v2/auth/authorize/")?,
            token_url: url("https://open.tiktokapis.com/v2/oauth/token/")?,
            revoke_url: Some(url("https://open.tiktokapis.com/v2/oauth/revoke/")?),
            userinfo_url: Some(url("https://open.tiktokapis.com/v2/user/info/")?),
            scopes: scopes(&[
                "user.info.basic",
                "user.info.profile",
                "user.info.stats",
                "video.list",
                "video.publish",
                "video.upload",
            ]),
            scope_separator: ",",
            client_id_param: "client_key",
            client_auth: ClientAuth::RequestBody,
            token_method: TokenMethod::PostForm,
            // The web flow documents no PKCE; desktop PKCE uses hex, not RFC 7636 (providers.md T1, T11).
            pkce: Pkce::None,
            extra_authorize_params: params(&[("response_type", "code")]),
            renewal: Renewal::RefreshToken,
            refresh_rotates: true,
            revocation: Revocation::Form {
                authenticate: true,
                hint: false,
            },
            errors: ErrorShape::Rfc6749,
            account: AccountMapping {
                query: vec![("fields", "open_id,union_id,avatar_url,display_name")],
                wrapper: &["data", "user"],
                id: &[&["open_id"]],
                name: &[&["display_name"]],
                picture: &[&["avatar_url"]],
            },
            hooks: vec![Hook::TikTokEnvelopeError],
            credentials: None,
            sandboxed: false,
            generic: false,
        },
        // providers.md §3: offline access and consent, or there is no refresh token.
        "google" => PlatformSpec {
            id,
            display_name: "Google Ads".into(),
            authorize_url: url("https://accounts.google.com/o/oauth2/v2/auth")?,
            token_url: url("https://oauth2.googleapis.com/token")?,
            revoke_url: Some(url("https://oauth2.googleapis.com/revoke")?),
            userinfo_url: Some(url("https://openidconnect.googleapis.com/v1/userinfo")?),
            scopes: scopes(&[
                "openid",
                "email",
                "profile",
                "https://www.googleapis.com/auth/adwords",
            ]),
            scope_separator: " ",
            client_id_param: "client_id",
            client_auth: ClientAuth::RequestBody,
            token_method: TokenMethod::PostForm,
            pkce: Pkce::S256,
            extra_authorize_params: params(&[
                ("response_type", "code"),
                ("access_type", "offline"),
                ("prompt", "consent"),
                ("include_granted_scopes", "true"),
            ]),
            renewal: Renewal::RefreshToken,
            refresh_rotates: false,
            revocation: Revocation::Form {
                authenticate: false,
                hint: false,
            },
            errors: ErrorShape::Rfc6749,
            account: AccountMapping {
                id: &[&["sub"]],
                name: &[&["name"], &["email"]],
                picture: &[&["picture"]],
                ..plain_account
            },
            hooks: vec![],
            credentials: None,
            sandboxed: false,
            generic: false,
        },
        // providers.md §4: Basic at the token endpoint, comma scopes, no user-token revocation.
        "pinterest" => PlatformSpec {
            id,
            display_name: "Pinterest".into(),
            authorize_url: url("https://www.pinterest.com/oauth/")?,
            token_url: url("https://api.pinterest.com/v5/oauth/token")?,
            revoke_url: None,
            userinfo_url: Some(url("https://api.pinterest.com/v5/user_account")?),
            scopes: scopes(&[
                "user_accounts:read",
                "boards:read",
                "boards:write",
                "pins:read",
                "pins:write",
                "ads:read",
                "ads:write",
            ]),
            scope_separator: ",",
            client_id_param: "client_id",
            client_auth: ClientAuth::Basic,
            token_method: TokenMethod::PostForm,
            pkce: Pkce::None,
            extra_authorize_params: params(&[("response_type", "code")]),
            renewal: Renewal::RefreshToken,
            refresh_rotates: true,
            revocation: Revocation::Unsupported(
                "Pinterest does not let apps revoke a user's token. The tokens were deleted here; \
                 to withdraw access at Pinterest too, remove the app under Settings > Security and logins > Apps.",
            ),
            errors: ErrorShape::CodeMessage,
            account: AccountMapping {
                id: &[&["id"], &["username"]],
                name: &[&["business_name"], &["username"]],
                picture: &[&["profile_image"]],
                ..plain_account
            },
            hooks: vec![],
            credentials: None,
            sandboxed: false,
            generic: false,
        },
        // providers.md §5: PKCE mandatory, Basic, offline.access for a refresh token, rotation.
        "twitter" => PlatformSpec {
            id,
            display_name: "X (Twitter)".into(),
            authorize_url: url("https://x.com/i/oauth2/authorize")?,
            token_url: url("https://api.x.com/2/oauth2/token")?,
            revoke_url: Some(url("https://api.x.com/2/oauth2/revoke")?),
            userinfo_url: Some(url("https://api.x.com/2/users/me")?),
            scopes: scopes(&[
                "tweet.read",
                "tweet.write",
                "users.read",
                "media.write",
                "offline.access",
            ]),
            scope_separator: " ",
            client_id_param: "client_id",
            client_auth: ClientAuth::Basic,
            token_method: TokenMethod::PostForm,
            pkce: Pkce::S256,
            extra_authorize_params: params(&[("response_type", "code")]),
            renewal: Renewal::RefreshToken,
            refresh_rotates: true,
            revocation: Revocation::Form {
                authenticate: true,
                hint: true,
            },
            errors: ErrorShape::Rfc6749,
            account: AccountMapping {
                query: vec![("user.fields", "profile_image_url")],
                wrapper: &["data"],
                name: &[&["name"], &["username"]],
                picture: &[&["profile_image_url"]],
                ..plain_account
            },
            hooks: vec![],
            credentials: None,
            sandboxed: false,
            generic: false,
        },
        _ => return None,
    };
    Some(spec)
}

/// Applies the operator's overrides to a definition.
fn apply_overrides(spec: &mut PlatformSpec, settings: &PlatformSettings) {
    if let Some(u) = &settings.authorize_url {
        spec.authorize_url = u.clone();
    }
    if let Some(u) = &settings.token_url {
        spec.token_url = u.clone();
    }
    if let Some(u) = &settings.revoke_url {
        spec.revoke_url = Some(u.clone());
    }
    if let Some(u) = &settings.userinfo_url {
        spec.userinfo_url = Some(u.clone());
    }
    if let Some(s) = &settings.scopes {
        spec.scopes = s.clone();
    }
    spec.credentials = settings.credentials.clone();
}

/// Every platform this deployment knows, resolved against its settings.
#[derive(Debug, Clone)]
pub struct Catalog {
    platforms: BTreeMap<PlatformId, PlatformSpec>,
    order: Vec<PlatformId>,
}

impl Catalog {
    /// Builds the catalog: built-in platforms with overrides, unconfigured ones replaced by the
    /// sandbox when it is enabled, then the operator's generic providers.
    pub fn from_settings(settings: &Settings) -> Self {
        let mut platforms = BTreeMap::new();
        let mut order = Vec::new();
        #[cfg(feature = "sandbox")]
        let api_base = settings.api_url.as_str().trim_end_matches('/').to_owned();
        for slug in BUILT_IN {
            let Some(mut spec) = built_in(slug) else {
                continue;
            };
            if let Some(overrides) = settings.platforms.get(slug) {
                apply_overrides(&mut spec, overrides);
            }
            // X issues no refresh token without `offline.access` (providers.md X2): an override of
            // TWITTER_SCOPES must not silently lose it.
            if slug == "twitter" && !spec.scopes.iter().any(|s| s == "offline.access") {
                spec.scopes.push("offline.access".into());
            }
            #[cfg(feature = "sandbox")]
            if spec.credentials.is_none() && settings.sandbox {
                let endpoints = crate::sandbox::endpoints(&api_base, slug).and_then(|e| {
                    Some((
                        url(&e.authorize)?,
                        url(&e.token)?,
                        url(&e.userinfo)?,
                        url(&e.revoke)?,
                    ))
                });
                if let Some((authorize, token, userinfo, revoke)) = endpoints {
                    let client = crate::sandbox::Simulator::sandbox_client(slug, &api_base);
                    spec.authorize_url = authorize;
                    spec.token_url = token;
                    spec.userinfo_url = Some(userinfo);
                    if spec.revoke_url.is_some() {
                        spec.revoke_url = Some(revoke);
                    }
                    spec.credentials = Some(ClientCredentials {
                        client_id: client.client_id,
                        client_secret: client.client_secret.into(),
                    });
                    spec.sandboxed = true;
                }
            }
            order.push(spec.id.clone());
            platforms.insert(spec.id.clone(), spec);
        }
        for generic in &settings.generic_providers {
            // Settings refuse a generic provider without these two URLs.
            let (Some(authorize_url), Some(token_url)) = (
                generic.platform.authorize_url.clone(),
                generic.platform.token_url.clone(),
            ) else {
                continue;
            };
            let mut spec = PlatformSpec {
                id: generic.id.clone(),
                display_name: generic.display_name.clone(),
                authorize_url,
                token_url,
                revoke_url: None,
                userinfo_url: None,
                scopes: vec![],
                scope_separator: " ",
                client_id_param: "client_id",
                client_auth: if generic.client_auth_basic {
                    ClientAuth::Basic
                } else {
                    ClientAuth::RequestBody
                },
                token_method: TokenMethod::PostForm,
                pkce: if generic.pkce { Pkce::S256 } else { Pkce::None },
                extra_authorize_params: params(&[("response_type", "code")]),
                renewal: Renewal::RefreshToken,
                refresh_rotates: false,
                revocation: Revocation::Form {
                    authenticate: true,
                    hint: true,
                },
                errors: ErrorShape::Rfc6749,
                account: AccountMapping {
                    query: vec![],
                    wrapper: &[],
                    id: &[&["sub"], &["id"]],
                    name: &[&["name"], &["preferred_username"], &["email"]],
                    picture: &[&["picture"]],
                },
                hooks: vec![],
                credentials: None,
                sandboxed: false,
                generic: true,
            };
            spec.extra_authorize_params
                .extend(generic.authorize_params.iter().cloned());
            apply_overrides(&mut spec, &generic.platform);
            if generic.platform.revoke_url.is_none() {
                spec.revocation = Revocation::Unsupported(
                    "This provider has no revocation endpoint configured; the tokens were deleted here.",
                );
            }
            order.push(spec.id.clone());
            platforms.insert(spec.id.clone(), spec);
        }
        Self { platforms, order }
    }

    /// A platform by slug.
    pub fn get(&self, id: &PlatformId) -> Option<&PlatformSpec> {
        self.platforms.get(id)
    }

    /// Looks a platform up by the text of a path segment.
    pub fn find(&self, slug: &str) -> Option<&PlatformSpec> {
        PlatformId::parse(slug)
            .ok()
            .and_then(|id| self.platforms.get(&id))
    }

    /// Every platform, built-in first, in display order.
    pub fn all(&self) -> impl Iterator<Item = &PlatformSpec> {
        self.order.iter().filter_map(|id| self.platforms.get(id))
    }

    /// The slugs, for error messages.
    pub fn slugs(&self) -> Vec<String> {
        self.order.iter().map(|id| id.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_platform_has_real_https_endpoints() {
        for slug in BUILT_IN {
            let spec = built_in(slug).expect("defined");
            assert_eq!(spec.authorize_url.scheme(), "https", "{slug}");
            assert_eq!(spec.token_url.scheme(), "https", "{slug}");
            assert!(!spec.scopes.is_empty(), "{slug}");
        }
    }

    #[test]
    fn x_always_uses_pkce_and_asks_for_offline_access() {
        let x = built_in("twitter").expect("defined");
        assert_eq!(x.pkce, Pkce::S256);
        assert!(x.scopes.iter().any(|s| s == "offline.access"));
        assert_eq!(x.client_auth, ClientAuth::Basic);
    }
}

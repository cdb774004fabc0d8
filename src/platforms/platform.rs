//! What a platform is to the rest of the service: its [`PlatformSpec`] (the data: endpoints,
//! parameter names, scope separator, client authentication, PKCE, response shapes, revocation) and
//! its [`Platform`] behaviour (the stages where it does more than plain OAuth 2.0), with the
//! [`PlatformHttp`] calls a behaviour makes.
//!
//! Every stage of [`Platform`] has a default that does what plain OAuth 2.0 does (or nothing), so a
//! platform implements only its genuine deviations, each in its own module under `builtin/`, next
//! to the documentation it cites. The rest of the service reads only the data and calls the trait:
//! it never names a platform. The next stages (verifying inbound events, publishing) are added here
//! as methods with a default, one override per platform that has them.
//!
//! The spec and the trait share this file because each refers to the other; the HTTP client is
//! reached through [`PlatformHttp`], which `client.rs` implements, so that this file stands below it.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use super::assets::AssetSet;
use super::budget::{AppUsage, CountedBudget};
use super::error::PlatformError;
use super::events::{EventKeys, EventRejection, EventSettings, InboundRequest, Receipt};
use super::publish::{
    ApiAnswer, ApiRequest, CallFailure, Confirmation, MediaSource, PostDraft, PostErrorCode,
    Prepared, PublishFailure, PublishTarget, Sent,
};
use super::settings::{ApiHeader, ClientCredentials};
use crate::domain::{PlatformId, TokenSet};

/// What a token endpoint granted.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// The tokens, expiries and scopes (scopes empty when the platform did not say).
    pub tokens: TokenSet,
    /// Whether the response named the granted scopes.
    pub scopes_reported: bool,
    /// An account id the token response carries (`open_id` where a platform sends one).
    pub account_hint: Option<String>,
}

/// The connected account, as the platform's user-info call describes it.
#[derive(Debug, Clone, Default)]
pub struct AccountInfo {
    /// The platform's id of the account.
    pub id: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Picture URL.
    pub picture: Option<String>,
}

/// What a platform's hooks add to a grant after reading the account.
#[derive(Debug, Default)]
pub struct AccountExtras {
    /// Permissions the platform says were granted.
    pub granted_scopes: Option<Vec<String>>,
    /// Non-secret metadata (pages and their linked accounts, without their tokens).
    pub metadata: Value,
    /// Further tokens (page tokens, by `page:{id}`), for the sealed set only.
    pub page_tokens: BTreeMap<String, SecretString>,
}

/// The calls a platform's behaviour makes, each shaped by the platform's [`PlatformSpec`]:
/// implemented by `client::PlatformClient`.
#[async_trait]
pub trait PlatformHttp: Send + Sync {
    /// Calls the token endpoint with `params` and the platform's client authentication, and reads
    /// the grant from the answer.
    async fn token_grant(
        &self,
        spec: &PlatformSpec,
        params: Vec<(&'static str, String)>,
        now: DateTime<Utc>,
    ) -> Result<TokenGrant, PlatformError>;

    /// Reads the connected account from the user-info endpoint.
    async fn fetch_account(
        &self,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AccountInfo, PlatformError>;

    /// A `GET` of a JSON answer carrying the user's token in the `Authorization` header.
    async fn get_with_token(
        &self,
        spec: &PlatformSpec,
        url: Url,
        access_token: &SecretString,
        query: &[(&str, &str)],
    ) -> Result<Value, PlatformError>;

    /// A `GET` whose query carries secrets, for a call whose platform requires them there. The URL
    /// is never logged and never reaches an error.
    async fn get_with_secret_query(
        &self,
        spec: &PlatformSpec,
        url: Url,
        query: &[(&str, &SecretString)],
    ) -> Result<Value, PlatformError>;

    /// A `GET` to the platform's API (not its OAuth endpoints): the user's token and the
    /// platform's API headers.
    async fn get_api(
        &self,
        spec: &PlatformSpec,
        url: Url,
        access_token: &SecretString,
        query: &[(&str, &str)],
    ) -> Result<Value, PlatformError>;

    /// A `DELETE` to the platform's API, with the token and its API headers.
    async fn delete_api(
        &self,
        spec: &PlatformSpec,
        url: Url,
        access_token: &SecretString,
    ) -> Result<Value, PlatformError>;

    /// A `POST` of a JSON body to the platform's API, with the user's token and its API headers.
    async fn post_api(
        &self,
        spec: &PlatformSpec,
        url: Url,
        access_token: &SecretString,
        body: &Value,
    ) -> Result<Value, PlatformError>;
}

/// The raw calls publishing makes: implemented by `client::PlatformClient`.
#[async_trait]
pub trait PublishHttp: Send + Sync {
    /// Sends `request` (with `token` and the platform's API headers when its `auth` says so) and
    /// returns the answer whatever its status. Redirects are not followed; the body is bounded.
    async fn call(
        &self,
        spec: &PlatformSpec,
        request: ApiRequest,
        token: &SecretString,
    ) -> Result<ApiAnswer, CallFailure>;
}

/// Everything a platform's publishing stage is handed.
pub struct PublishContext<'a> {
    /// The raw calls.
    pub http: &'a dyn PublishHttp,
    /// The platform.
    pub spec: &'a PlatformSpec,
    /// The post.
    pub draft: &'a PostDraft,
    /// Where it goes.
    pub target: &'a PublishTarget,
    /// The caller's media as bytes.
    pub media: &'a dyn MediaSource,
    /// What the previous stage left (`Value::Null` before the first `prepare_post`).
    pub checkpoint: &'a Value,
}

impl PublishContext<'_> {
    /// The platform's API base joined with `path`.
    pub fn api_url(&self, path: &str) -> Result<Url, PublishFailure> {
        self.spec
            .api_base
            .as_ref()
            .and_then(|base| base.join(path).ok())
            .ok_or_else(|| {
                PublishFailure::permanent(
                    PostErrorCode::NotSupported,
                    format!("{} has no API to publish with", self.spec.display_name),
                )
            })
    }

    /// Sends a request with the target's token.
    pub async fn call(&self, request: ApiRequest) -> Result<ApiAnswer, PublishFailure> {
        self.http
            .call(self.spec, request, &self.target.token)
            .await
            .map_err(CallFailure::into_failure)
    }

    /// An option's text.
    pub fn option_str(&self, name: &str) -> Option<&str> {
        self.draft.options.get(name).and_then(Value::as_str)
    }

    /// A checkpoint field's text.
    pub fn checkpoint_str(&self, name: &str) -> Option<&str> {
        self.checkpoint.get(name).and_then(Value::as_str)
    }
}

/// A platform's behaviour at each stage of a connection's life, beyond its [`PlatformSpec`]'s
/// data. Every method has the plain OAuth 2.0 default; a platform overrides its genuine quirks.
#[async_trait]
pub trait Platform: Send + Sync + fmt::Debug {
    /// Stage "catalog": adjusts the requested scopes once settings are applied.
    fn adjust_scopes(&self, _scopes: &mut Vec<String>) {}

    /// Stage "code exchanged": may replace the grant the token endpoint gave.
    async fn after_code_exchange(
        &self,
        _http: &dyn PlatformHttp,
        _spec: &PlatformSpec,
        grant: TokenGrant,
        _now: DateTime<Utc>,
    ) -> Result<TokenGrant, PlatformError> {
        Ok(grant)
    }

    /// Stage "account read": checks the body of the user-info answer before it is mapped (a
    /// platform that answers failures with HTTP 200 refuses them here).
    fn check_account_response(
        &self,
        _spec: &PlatformSpec,
        _body: &Value,
    ) -> Result<(), PlatformError> {
        Ok(())
    }

    /// Stage "account known": further calls with the new access token that add to the grant.
    async fn after_account(
        &self,
        _http: &dyn PlatformHttp,
        _spec: &PlatformSpec,
        _access_token: &SecretString,
    ) -> Result<AccountExtras, PlatformError> {
        Ok(AccountExtras::default())
    }

    /// Stage "renewal" for [`Renewal::ExchangeLiveToken`]: exchanges a still-valid access token
    /// for a fresh one. A platform that renews with a refresh token never gets here.
    async fn exchange_live_token(
        &self,
        _http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        _access_token: &SecretString,
        _now: DateTime<Utc>,
    ) -> Result<TokenGrant, PlatformError> {
        Err(PlatformError::NotConfigured(spec.id.clone()))
    }

    /// Stage "renewed": after a renewal the platform accepted, may update the connection's
    /// non-secret metadata; never fails the renewal.
    async fn after_renewal(
        &self,
        _http: &dyn PlatformHttp,
        _spec: &PlatformSpec,
        _access_token: &SecretString,
        _metadata: &mut Value,
    ) {
    }

    /// Stage "API answered": whether an answer with this status and (possibly partial) body says
    /// the access token is dead, which a forced refresh can fix. RFC 6750's default: any 401.
    fn is_dead_token(&self, status: u16, _body: &[u8]) -> bool {
        status == 401
    }

    /// Stage "API answered": how many seconds a throttled answer's body asks the caller to wait,
    /// for a platform that says so in the body rather than in `Retry-After`.
    fn retry_hint(&self, _body: &[u8]) -> Option<u64> {
        None
    }

    /// Stage "API answered": what the answer's headers say of the budget every merchant of the
    /// app shares. Unreported by default.
    fn app_usage(&self, _headers: &http::HeaderMap) -> AppUsage {
        AppUsage::Unreported
    }

    /// Stage "API call": the app-wide budget the platform documents but does not report, which
    /// the proxy counts; none by default.
    fn counted_app_budget(&self) -> Option<CountedBudget> {
        None
    }

    /// Stage "assets": discovers what the merchant's consumers act on, with a valid access token.
    async fn discover_assets(
        &self,
        _http: &dyn PlatformHttp,
        _spec: &PlatformSpec,
        _access_token: &SecretString,
    ) -> Result<AssetSet, PlatformError> {
        Ok(AssetSet::default())
    }

    /// Stage "API call": a proof of possession an API call with `access_token` carries in its
    /// query besides the token (name, value), recomputed for every token (user or page).
    fn token_proof(
        &self,
        _spec: &PlatformSpec,
        _access_token: &SecretString,
    ) -> Option<(&'static str, SecretString)> {
        None
    }

    /// Stage "events": the receivers the platform posts its notices to (the last segment of
    /// `/api/v1/platform-events/{platform}/{receiver}`), each with what it receives. None by
    /// default: a platform that sends no notice (Pinterest) keeps it.
    fn event_receivers(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Stage "events": verifies a request to one of the platform's receivers and reads it. Every
    /// byte is untrusted until the signature is checked; a challenge is answered, a delivery gives
    /// its notices.
    async fn receive_events(
        &self,
        _spec: &PlatformSpec,
        _keys: &dyn EventKeys,
        _request: &InboundRequest<'_>,
    ) -> Result<Receipt, EventRejection> {
        Err(EventRejection::NoSuchReceiver)
    }

    /// Stage "events": the status a stored delivery is acknowledged with (200 by default).
    fn event_ack_status(&self, _receiver: &str) -> u16 {
        200
    }

    /// Stage "events": subscribes (or, with `subscribe` false, unsubscribes) an asset the merchant
    /// selected to the app's webhooks, with the asset's own token; `Ok(false)` when the platform
    /// has no such subscription for the kind (the default).
    async fn subscribe_asset(
        &self,
        _http: &dyn PlatformHttp,
        _spec: &PlatformSpec,
        _kind: &str,
        _asset_id: &str,
        _asset_token: &SecretString,
        _subscribe: bool,
    ) -> Result<bool, PlatformError> {
        Ok(false)
    }

    /// Stage "publish": the asset kinds a post can go to, in the order a post that names no
    /// account tries the connection's selected one. None by default: the platform publishes
    /// nothing through us.
    fn publish_kinds(&self) -> &'static [&'static str] {
        &[]
    }

    /// Stage "publish": checks a post for an asset of `kind` against the platform's rules
    /// (lengths, media count and kinds, options) before it is accepted, so that a post the
    /// platform would refuse is refused at once.
    fn check_draft(&self, _kind: &str, _draft: &PostDraft) -> Result<(), PublishFailure> {
        Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            "this platform publishes nothing through Growth Engine",
        ))
    }

    /// Stage "publish": everything before the send that may be done again without posting twice
    /// (checks, uploads, containers). Ready at once by default.
    async fn prepare_post(&self, context: &PublishContext<'_>) -> Result<Prepared, PublishFailure> {
        Ok(Prepared::Ready(context.checkpoint.clone()))
    }

    /// Stage "publish": the one call after which the post may be out. Called at most once per
    /// post, with the checkpoint `prepare_post` left.
    async fn send_post(&self, _context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
        Err(PublishFailure::permanent(
            PostErrorCode::NotSupported,
            "this platform publishes nothing through Growth Engine",
        ))
    }

    /// Stage "publish": what became of a post whose send was accepted for later publishing, or
    /// whose answer was lost. Unknowable by default: the platform has no way to ask.
    async fn confirm_post(
        &self,
        _context: &PublishContext<'_>,
    ) -> Result<Confirmation, PublishFailure> {
        Ok(Confirmation::Unknowable)
    }
}

/// Plain OAuth 2.0: every stage's default. The operator's generic providers behave so.
#[derive(Debug)]
pub struct PlainOAuth;

impl Platform for PlainOAuth {}

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
    /// No refresh token: a still-valid long-lived access token is exchanged for a fresh one, by the
    /// platform's [`Platform::exchange_live_token`].
    ExchangeLiveToken,
}

/// Until when a connection lasts without the merchant: the rule behind its health's
/// `reconnect_by` (each platform module quotes its source next to its choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectRule {
    /// The refresh token's own lifetime, where the platform reports one (`refresh_expires_in`,
    /// `refresh_token_expires_in`/`_at`): stored as the connection's `refresh_token_expires_at`.
    /// A platform that reports none has no known `reconnect_by`.
    RefreshTokenExpiry,
    /// No refresh token ([`Renewal::ExchangeLiveToken`]). The long-lived token is re-exchanged a
    /// week before it expires, but the platform does not promise that an exchange extends it; once
    /// an exchange leaves the expiry where it was (the last exchange came within a week of the
    /// expiry it left), that expiry is the end. A data-access expiry (`data_access_expires_at`),
    /// when the platform's hooks recorded one in the connection's metadata, bounds it too.
    ExchangedTokenExpiry,
    /// The refresh token's lifetime where the grant has a refresh token; without one, the access
    /// token's own expiry, since nothing can renew it.
    GrantExpiry,
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
    /// `DELETE` the revocation URL with the user's access token, which removes the app's every
    /// permission (the whole grant).
    DeleteWithAccessToken,
    /// The platform offers no revocation for user tokens; the text tells the merchant what to do.
    Unsupported(&'static str),
}

/// The shape of the platform's error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// RFC 6749 §5.2: `{"error": "...", "error_description": "..."}`.
    Rfc6749,
    /// An error object: `{"error": {"message", "type", "code", "error_subcode"}}`; codes 190 and
    /// 102 say the grant is dead.
    ErrorObject,
    /// A numeric code and a message: `{"code": <int>, "message": "..."}`.
    CodeMessage,
}

/// Where the account's fields sit in the user-info response. Each field lists JSON paths tried in
/// order, relative to `wrapper`.
#[derive(Debug, Clone)]
pub struct AccountMapping {
    /// Query parameters the user-info call needs (`fields=...`).
    pub query: &'static [(&'static str, &'static str)],
    /// The path to the object holding the account (`data.user` for TikTok, `data` for X).
    pub wrapper: &'static [&'static str],
    /// Paths to the account id.
    pub id: &'static [&'static [&'static str]],
    /// Paths to the display name.
    pub name: &'static [&'static [&'static str]],
    /// Paths to a picture URL.
    pub picture: &'static [&'static [&'static str]],
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
    /// Headers every API call carries, from the platform's API settings (a developer token, a
    /// pinned API version, a default account).
    pub api_headers: Vec<ApiHeader>,
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
    /// How "Grant missing permissions" asks for what the merchant declined.
    pub missing_consent: ConsentMode,
    /// How the grant is renewed.
    pub renewal: Renewal,
    /// Until when the grant lasts without the merchant (health's `reconnect_by`).
    pub reconnect: ReconnectRule,
    /// Whether a refresh invalidates the previous refresh token.
    pub refresh_rotates: bool,
    /// How to revoke.
    pub revocation: Revocation,
    /// Error body shape.
    pub errors: ErrorShape,
    /// Where the account's fields are.
    pub account: AccountMapping,
    /// The base URL of the platform's API (version pinned, trailing slash) for calls made with its
    /// tokens: asset discovery and the proxy. `<PLATFORM>_API_URL` overrides the table's; the
    /// sandbox's when it stands in; `None` for a generic provider, which then has neither.
    pub api_base: Option<Url>,
    /// What the platform does at each stage beyond the data above.
    pub behaviour: &'static dyn Platform,
    /// What its receivers of inbound events verify with, besides the credentials.
    pub events: EventSettings,
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

    /// The key its inbound events are signed with: `<PLATFORM>_WEBHOOK_SECRET` where set, else the
    /// client secret (what Meta, TikTok and LinkedIn sign with; X's consumer secret is set apart).
    pub fn event_signing_key(&self) -> Option<&SecretString> {
        self.events
            .secret
            .as_ref()
            .or(self.credentials.as_ref().map(|c| &c.client_secret))
    }

    /// The scopes and authorization parameters of a consent request: every scope with the fixed
    /// parameters, or, for "Grant missing permissions" (`missing` is `Some`), what the platform's
    /// [`ConsentMode`] asks for. A mode's parameter replaces a fixed one of the same name, since
    /// a platform refuses a parameter sent twice (RFC 6749 §3.1).
    pub fn consent_request(&self, missing: Option<&[String]>) -> ConsentRequest {
        let (scopes, added) = match (missing, self.missing_consent) {
            (None, _) => (self.scopes.clone(), &[][..]),
            (Some(missing), ConsentMode::Incremental { params }) if !missing.is_empty() => {
                (missing.to_vec(), params)
            }
            (Some(_), ConsentMode::Incremental { params } | ConsentMode::Full { params }) => {
                (self.scopes.clone(), params)
            }
        };
        let mut params: Vec<(String, String)> = self
            .extra_authorize_params
            .iter()
            .filter(|(name, _)| !added.iter().any(|(added, _)| added == name))
            .cloned()
            .collect();
        params.extend(
            added
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        ConsentRequest { scopes, params }
    }
}

/// How a platform asks a merchant again for permissions they declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentMode {
    /// Incremental consent: request only the missing scopes, with these parameters (Google's
    /// `include_granted_scopes=true`, Meta's `auth_type=rerequest`); the platform then reports
    /// every scope granted so far.
    Incremental {
        /// Parameters that make the platform ask again and report the union.
        params: &'static [(&'static str, &'static str)],
    },
    /// No incremental consent documented: request every scope again, with these parameters
    /// (TikTok's `disable_auto_auth=1` shows the consent screen even to a returning user).
    Full {
        /// Parameters that force the consent screen, where the platform has one.
        params: &'static [(&'static str, &'static str)],
    },
}

/// The scopes and parameters one authorization request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    /// Scopes to request.
    pub scopes: Vec<String>,
    /// Further authorization parameters.
    pub params: Vec<(String, String)>,
}

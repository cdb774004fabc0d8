//! The authorization-code flow (RFC 6749 §4.1): begin, bind to the browser, finish.
//!
//! 1. `begin` (API, for a store and user) stores a *ticket* and returns our own first-hop URL.
//! 2. `start` (the browser opens the first hop) consumes the ticket, stores the *state* with the PKCE
//!    verifier and the hash of a fresh browser-binding secret, and returns the platform's
//!    authorization URL plus that secret, which the edge sets as an HttpOnly cookie.
//! 3. `finish` (the platform redirects back) consumes the state once, checks platform and cookie,
//!    exchanges the code, applies the platform's hooks and returns the [`Grant`]; the caller (the
//!    connect workflow) records it with the lifecycle, then reports the outcome
//!    ([`Flow::count_outcome`]).
//!
//! The binding cookie means a victim who is sent someone else's callback URL (or first hop already
//! used) cannot complete a flow that would attach the victim's account to an attacker's store. Both
//! records live 10 minutes from `begin` and are single-use.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use oauth2::{CsrfToken, PkceCodeChallenge};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use crate::clock::SharedClock;
use crate::domain::{PlatformId, StoreId, UserId};
use crate::error::OAuthError;
use crate::metrics::Metrics;
use crate::platforms::error::scrub;
use crate::platforms::error::PlatformError;
use crate::platforms::{
    Catalog, Grant, GrantDetails, Pkce, PlatformClient, PlatformHttp, PlatformSpec,
};
use crate::state::FlowStates;

/// How long a flow may take, from `begin` to the callback.
pub(crate) const FLOW_TTL_MINUTES: i64 = 10;
const TICKET: &str = "ticket";
const STATE: &str = "state";

/// Who started a flow, which decides who may open its first hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowOrigin {
    /// A backend service through the API: the first hop is `/api/v1/oauth/authorize`.
    Api,
    /// The connections page: the first hop is `/dashboard/authorize`, and only a browser holding a
    /// page session for the same store and user may open it, so a merchant cannot hand the link to
    /// another merchant and attach that merchant's account to their own store.
    Dashboard,
}

/// What the ticket holds between `begin` and the first hop.
#[derive(Serialize, Deserialize)]
struct Ticket {
    platform: PlatformId,
    store_id: StoreId,
    user_id: UserId,
    started_at: DateTime<Utc>,
    origin: FlowOrigin,
    /// "Grant missing permissions": the scopes the connection lacks, asked for as the platform's
    /// [`crate::platforms::ConsentMode`] says. `None` is a full consent.
    #[serde(default)]
    missing: Option<Vec<String>>,
}

/// What the state holds between the first hop and the callback (sealed at rest by the state store).
#[derive(Serialize, Deserialize)]
struct PendingFlow {
    platform: PlatformId,
    store_id: StoreId,
    user_id: UserId,
    pkce_verifier: Option<String>,
    binding_hash: String,
    started_at: DateTime<Utc>,
    /// Carried from the ticket, so the callback knows who started the flow and how.
    origin: FlowOrigin,
    #[serde(default)]
    grant_missing: bool,
}

/// What the callback hands its caller: the grant, and how the flow was started.
#[derive(Debug)]
pub struct Finished {
    /// The grant, not yet recorded.
    pub grant: Grant,
    /// Who started the flow.
    pub origin: FlowOrigin,
    /// Whether it asked for the missing permissions only ("Grant missing permissions").
    pub grant_missing: bool,
}

/// What the first hop hands the edge.
pub struct FlowStart {
    /// Where to send the browser: the platform's consent screen.
    pub authorization_url: Url,
    /// The cookie name for this flow.
    pub cookie_name: String,
    /// The browser-binding secret to set as the cookie's value.
    pub binding: SecretString,
    /// The platform.
    pub platform: PlatformId,
    /// Seconds the cookie should live.
    pub max_age_seconds: i64,
}

/// The parameters a platform sends to the callback.
#[derive(Default)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<SecretString>,
    /// The state.
    pub state: Option<String>,
    /// An error code when the merchant declined.
    pub error: Option<String>,
}

/// The flow service.
#[derive(Debug, Clone)]
pub struct Flow {
    catalog: Arc<Catalog>,
    states: FlowStates,
    client: PlatformClient,
    clock: SharedClock,
    api_url: Url,
    metrics: Metrics,
}

pub(crate) fn random_secret() -> String {
    // 32 random bytes, base64url: the state must carry at least 32 bytes of entropy.
    CsrfToken::new_random_len(32).secret().clone()
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The cookie a flow's binding secret travels in: one per flow, so parallel flows in two tabs work.
pub(crate) fn cookie_name_for_state(state: &str) -> String {
    format!("ge_flow_{}", &hash(state)[..16])
}

impl Flow {
    /// Builds the flow service.
    pub fn new(
        catalog: Arc<Catalog>,
        states: FlowStates,
        client: PlatformClient,
        clock: SharedClock,
        api_url: Url,
        metrics: Metrics,
    ) -> Self {
        Self {
            catalog,
            states,
            client,
            clock,
            api_url,
            metrics,
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The platform client.
    pub(crate) fn client(&self) -> &PlatformClient {
        &self.client
    }

    /// The flow-state store (the page also records used links in it).
    pub fn states(&self) -> &FlowStates {
        &self.states
    }

    /// The flow's clock's now.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The platform behind a path segment, if it is configured.
    pub fn platform(&self, slug: &str) -> Result<&PlatformSpec, OAuthError> {
        let spec = self.catalog.require(slug)?;
        if !spec.is_configured() {
            return Err(OAuthError::Platform(PlatformError::NotConfigured(
                spec.id.clone(),
            )));
        }
        Ok(spec)
    }

    /// The callback URL registered at the platform.
    pub fn redirect_uri(&self, platform: &PlatformId) -> String {
        format!(
            "{}/api/v1/oauth/callback/{platform}",
            self.api_url.as_str().trim_end_matches('/')
        )
    }

    /// Starts a flow: returns the first-hop URL the merchant's browser should open.
    pub async fn begin(
        &self,
        platform: &PlatformId,
        store_id: &StoreId,
        user_id: &UserId,
        origin: FlowOrigin,
        missing: Option<Vec<String>>,
    ) -> Result<Url, OAuthError> {
        let ticket_secret = random_secret();
        let ticket = Ticket {
            platform: platform.clone(),
            store_id: store_id.clone(),
            user_id: user_id.clone(),
            started_at: self.clock.now(),
            origin,
            missing,
        };
        self.states
            .put(
                TICKET,
                &ticket_secret,
                &ticket,
                Duration::minutes(FLOW_TTL_MINUTES),
            )
            .await?;
        let hop = match origin {
            FlowOrigin::Api => "api/v1/oauth/authorize",
            FlowOrigin::Dashboard => "dashboard/authorize",
        };
        let mut url = self
            .api_url
            .join(hop)
            .map_err(|_| OAuthError::TicketInvalid)?;
        url.query_pairs_mut().append_pair("ticket", &ticket_secret);
        self.metrics.flow_started(platform.as_str());
        Ok(url)
    }

    /// The first hop: consumes the ticket and prepares the platform's authorization request.
    /// `page_session` is the store and user of the browser's page session, if it has one; a ticket
    /// started from the page is refused without the same.
    pub async fn start(
        &self,
        ticket_secret: &str,
        page_session: Option<(&StoreId, &UserId)>,
    ) -> Result<FlowStart, OAuthError> {
        let ticket: Ticket = self
            .states
            .take(TICKET, ticket_secret)
            .await?
            .ok_or(OAuthError::TicketInvalid)?;
        if ticket.origin == FlowOrigin::Dashboard
            && page_session != Some((&ticket.store_id, &ticket.user_id))
        {
            return Err(OAuthError::BrowserMismatch);
        }
        let spec = self.platform(ticket.platform.as_str())?;
        let now = self.clock.now();
        let remaining = ticket.started_at + Duration::minutes(FLOW_TTL_MINUTES) - now;
        if remaining <= Duration::zero() {
            return Err(OAuthError::TicketInvalid);
        }
        let state = random_secret();
        let binding = random_secret();
        let (challenge, verifier) = match spec.pkce {
            Pkce::S256 => {
                let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
                (Some(challenge), Some(verifier.secret().clone()))
            }
            Pkce::None => (None, None),
        };
        let pending = PendingFlow {
            platform: spec.id.clone(),
            store_id: ticket.store_id,
            user_id: ticket.user_id,
            pkce_verifier: verifier,
            binding_hash: hash(&binding),
            started_at: ticket.started_at,
            origin: ticket.origin,
            grant_missing: ticket.missing.is_some(),
        };
        self.states.put(STATE, &state, &pending, remaining).await?;

        let consent = spec.consent_request(ticket.missing.as_deref());
        let mut url = spec.authorize_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair(spec.client_id_param, &self.client_id(spec)?);
            query.append_pair("redirect_uri", &self.redirect_uri(&spec.id));
            query.append_pair("scope", &consent.scopes.join(spec.scope_separator));
            query.append_pair("state", &state);
            for (name, value) in &consent.params {
                query.append_pair(name, value);
            }
            if let Some(challenge) = &challenge {
                query.append_pair("code_challenge", challenge.as_str());
                query.append_pair("code_challenge_method", challenge.method().as_str());
            }
        }
        Ok(FlowStart {
            authorization_url: url,
            cookie_name: cookie_name_for_state(&state),
            binding: SecretString::from(binding),
            platform: spec.id.clone(),
            max_age_seconds: remaining.num_seconds(),
        })
    }

    fn client_id(&self, spec: &PlatformSpec) -> Result<String, OAuthError> {
        spec.credentials
            .as_ref()
            .map(|c| c.client_id.clone())
            .ok_or_else(|| OAuthError::Platform(PlatformError::NotConfigured(spec.id.clone())))
    }

    /// The callback: consumes the state (whatever happens next, it cannot be replayed), checks it,
    /// exchanges the code and applies the platform's hooks. Nothing is stored: the caller records
    /// the grant, so that nothing is stored unless everything succeeded.
    pub async fn finish(
        &self,
        platform_slug: &str,
        params: CallbackParams,
        binding_cookie: Option<&str>,
    ) -> Result<Finished, OAuthError> {
        let state = params.state.as_deref().ok_or(OAuthError::StateInvalid)?;
        let pending: PendingFlow = self
            .states
            .take(STATE, state)
            .await?
            .ok_or(OAuthError::StateInvalid)?;
        if pending.platform.as_str() != platform_slug.to_ascii_lowercase() {
            return Err(OAuthError::StateMismatch);
        }
        let cookie_ok = binding_cookie.is_some_and(|cookie| {
            bool::from(
                hash(cookie)
                    .as_bytes()
                    .ct_eq(pending.binding_hash.as_bytes()),
            )
        });
        if !cookie_ok {
            return Err(OAuthError::BrowserMismatch);
        }
        if let Some(error) = params.error {
            // RFC 6749 §4.1.2.1: `invalid_scope` is the request's fault (our settings), not a
            // merchant who said no.
            if error == "invalid_scope" {
                return Err(OAuthError::InvalidScope);
            }
            return Err(OAuthError::Declined(scrub(&error)));
        }
        let code = params.code.ok_or(OAuthError::MissingParameter("code"))?;
        let spec = self.platform(pending.platform.as_str())?;
        let verifier = pending.pkce_verifier.map(SecretString::from);
        let now = self.clock.now();
        let tokens = self
            .client
            .exchange_code(
                spec,
                &code,
                &self.redirect_uri(&spec.id),
                verifier.as_ref(),
                now,
            )
            .await?;
        let tokens = (spec.behaviour)
            .after_code_exchange(&self.client, spec, tokens, now)
            .await?;
        let account = self
            .client
            .fetch_account(spec, &tokens.tokens.access_token)
            .await?;
        let extras = (spec.behaviour)
            .after_account(&self.client, spec, &tokens.tokens.access_token)
            .await?;
        tracing::info!(platform = %spec.id, store_id = %pending.store_id, "connection authorized");
        let grant = Grant {
            platform: spec.id.clone(),
            store_id: pending.store_id,
            user_id: pending.user_id,
            tokens,
            account,
            details: GrantDetails {
                metadata: if extras.metadata.is_null() {
                    serde_json::json!({})
                } else {
                    extras.metadata
                },
                granted_scopes: extras.granted_scopes,
            },
            extra_secrets: extras.page_tokens,
        };
        Ok(Finished {
            grant,
            origin: pending.origin,
            grant_missing: pending.grant_missing,
        })
    }

    /// Counts a finished flow (completed, or failed with its reason) under its platform: called by
    /// the caller of [`Flow::finish`] once the grant is recorded or refused.
    pub(crate) fn count_outcome<T>(&self, platform_slug: &str, result: &Result<T, OAuthError>) {
        let label = self
            .catalog
            .find(platform_slug)
            .map_or_else(|| "unknown".to_owned(), |spec| spec.id.to_string());
        match result {
            Ok(_) => self.metrics.flow_completed(&label),
            Err(error) => self.metrics.flow_failed(&label, error.reason()),
        }
    }
}

crate::domain::redacted_debug!(FlowStart, CallbackParams);

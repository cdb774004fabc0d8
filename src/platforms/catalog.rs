//! The platform catalog: the [`Catalog`] of every platform this deployment knows, resolved from the table of built-in
//! platforms and the operator's settings (credentials, `<PLATFORM>_<ENDPOINT>_URL` and
//! `<PLATFORM>_SCOPES` overrides, generic providers, the sandbox).
//!
//! The definitions themselves live in the platform modules (`builtin/`); this module only
//! turns them into [`PlatformSpec`]s. It reads the settings types, not `config`, so that the
//! settings can be built from the table without a cycle.

use std::collections::BTreeMap;

use secrecy::SecretString;
use url::Url;

use super::builtin::BUILT_IN;
use super::definition::BuiltInPlatform;
use super::error::PlatformError;
use super::events::EventSettings;
use super::platform::{
    AccountMapping, ClientAuth, ConsentMode, ErrorShape, Pkce, PlainOAuth, PlatformSpec,
    ReconnectRule, Renewal, Revocation, TokenMethod,
};
use super::settings::{ApiHeader, GenericProviderSettings, PlatformSettings};
use crate::domain::PlatformId;

fn url(text: &str) -> Option<Url> {
    // The table's literals are valid URLs; a typo would drop the platform and fail the tests below.
    Url::parse(text).ok()
}

fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// The API headers of a definition before settings: its fixed ones and its settings' defaults.
fn default_api_headers(platform: &BuiltInPlatform) -> Vec<ApiHeader> {
    let fixed = platform
        .fixed_api_headers
        .iter()
        .map(|(name, value)| (*name, *value, false));
    let defaults = platform
        .api_settings
        .iter()
        .filter_map(|s| Some((s.header, s.default?, s.secret)));
    fixed
        .chain(defaults)
        .map(|(name, value, secret)| ApiHeader {
            name,
            value: SecretString::from(value.to_owned()),
            secret,
        })
        .collect()
}

/// A built-in platform's definition as a spec, with its real endpoints and no credentials.
fn built_in_spec(platform: &BuiltInPlatform) -> Option<PlatformSpec> {
    let endpoints = &platform.endpoints;
    let protocol = &platform.protocol;
    let optional = |text: Option<&str>| match text {
        Some(text) => url(text).map(Some),
        None => Some(None),
    };
    Some(PlatformSpec {
        id: PlatformId::parse(platform.slug).ok()?,
        display_name: platform.display_name.into(),
        authorize_url: url(endpoints.authorize)?,
        token_url: url(endpoints.token)?,
        revoke_url: optional(endpoints.revoke)?,
        userinfo_url: optional(endpoints.userinfo)?,
        api_headers: default_api_headers(platform),
        scopes: platform.scopes.iter().map(|s| (*s).to_owned()).collect(),
        scope_separator: protocol.scope_separator,
        client_id_param: protocol.client_id_param,
        client_auth: protocol.client_auth,
        token_method: protocol.token_method,
        pkce: protocol.pkce,
        extra_authorize_params: params(protocol.authorize_params),
        missing_consent: protocol.missing_consent,
        renewal: platform.renewal,
        reconnect: platform.reconnect,
        refresh_rotates: protocol.refresh_rotates,
        revocation: protocol.revocation.clone(),
        errors: protocol.errors,
        account: protocol.account.clone(),
        api_base: url(platform.api_base),
        behaviour: platform.behaviour,
        events: EventSettings {
            keys_url: platform.events.keys_url.and_then(url),
            subscribe_fields: split_fields(platform.events.subscribe_fields),
            max_age_seconds: 300,
            ..EventSettings::default()
        },
        credentials: None,
        sandboxed: false,
        generic: false,
    })
}

fn split_fields(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An operator-declared generic provider as a spec: plain OAuth 2.0 with the declared endpoints.
fn generic_spec(generic: &GenericProviderSettings) -> Option<PlatformSpec> {
    // Settings refuse a generic provider without these two URLs.
    let authorize_url = generic.platform.authorize_url.clone()?;
    let token_url = generic.platform.token_url.clone()?;
    let mut spec = PlatformSpec {
        id: generic.id.clone(),
        display_name: generic.display_name.clone(),
        authorize_url,
        token_url,
        revoke_url: None,
        userinfo_url: None,
        api_headers: Vec::new(),
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
        // A generic provider documents no incremental consent here: ask for everything again.
        missing_consent: ConsentMode::Full { params: &[] },
        renewal: Renewal::RefreshToken,
        // An operator's provider: only what its token endpoint reports (RFC 6749 defines no
        // refresh-token lifetime).
        reconnect: ReconnectRule::RefreshTokenExpiry,
        refresh_rotates: false,
        revocation: Revocation::Form {
            authenticate: true,
            hint: true,
        },
        errors: ErrorShape::Rfc6749,
        account: AccountMapping {
            query: &[],
            wrapper: &[],
            id: &[&["sub"], &["id"]],
            name: &[&["name"], &["preferred_username"], &["email"]],
            picture: &[&["picture"]],
        },
        api_base: None,
        behaviour: &PlainOAuth,
        events: EventSettings::default(),
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
    if let Some(u) = &settings.api_url {
        spec.api_base = Some(u.clone());
    }
    spec.credentials = settings.credentials.clone();
    let events = &settings.events;
    spec.events.secret = events.secret.clone();
    spec.events.verify_token = events.verify_token.clone();
    if let Some(u) = &events.keys_url {
        spec.events.keys_url = Some(u.clone());
    }
    if let Some(fields) = &events.subscribe_fields {
        spec.events.subscribe_fields = fields.clone();
    }
    if events.max_age_seconds > 0 {
        spec.events.max_age_seconds = events.max_age_seconds;
    }
}

/// Points an unconfigured platform at the built-in sandbox, with the sandbox's own client.
///
/// The one call into `crate::sandbox`, kept in one small function so that a build without the
/// sandbox only has to leave this out.
#[cfg(feature = "sandbox")]
fn sandbox_endpoints(spec: &mut PlatformSpec, api_base: &str) {
    let slug = spec.id.as_str();
    let endpoints = crate::sandbox::endpoints(api_base, slug).and_then(|e| {
        Some((
            url(&e.authorize)?,
            url(&e.token)?,
            url(&e.userinfo)?,
            url(&e.revoke)?,
        ))
    });
    let Some((authorize, token, userinfo, revoke)) = endpoints else {
        return;
    };
    let client = crate::sandbox::Simulator::sandbox_client(slug, api_base);
    spec.authorize_url = authorize;
    spec.token_url = token;
    spec.userinfo_url = Some(userinfo);
    if spec.revoke_url.is_some() {
        spec.revoke_url = Some(revoke);
    }
    spec.credentials = Some(super::settings::ClientCredentials {
        client_id: client.client_id,
        client_secret: client.client_secret.into(),
    });
    // The sandbox serves each platform's API too (identity, assets, publishing), so sandbox tokens
    // are never sent to the real platform's API.
    spec.api_base = crate::sandbox::api_base(api_base, slug).and_then(|u| url(&u));
    // The sandbox signs its events with its client's secret, publishes its own keys and checks
    // its own handshake token.
    spec.events.secret = None;
    spec.events.verify_token = Some(format!("sandbox-{slug}-verify-token").into());
    if let Some(path) = super::builtin::built_in(slug).and_then(|p| p.events.sandbox_keys_path) {
        spec.events.keys_url = url(&format!("{api_base}{path}"));
    }
    spec.sandboxed = true;
}

/// Without the sandbox feature nothing stands in for an unconfigured platform (and settings refuse
/// `SANDBOX=true`).
#[cfg(not(feature = "sandbox"))]
fn sandbox_endpoints(_spec: &mut PlatformSpec, _api_base: &str) {}

/// A built-in platform resolved against its settings: overrides applied, then the platform's
/// scope hooks, then the sandbox standing in when it has no credentials.
fn resolve_built_in(
    platform: &BuiltInPlatform,
    overrides: Option<&PlatformSettings>,
    sandbox_api_base: Option<&str>,
) -> Option<PlatformSpec> {
    let mut spec = built_in_spec(platform)?;
    if let Some(overrides) = overrides {
        apply_overrides(&mut spec, overrides);
        for header in &overrides.api_headers {
            spec.api_headers.retain(|h| h.name != header.name);
            spec.api_headers.push(header.clone());
        }
    }
    spec.behaviour.adjust_scopes(&mut spec.scopes);
    if let (None, true, Some(api_base)) = (&spec.credentials, platform.simulated, sandbox_api_base)
    {
        sandbox_endpoints(&mut spec, api_base);
        // An explicit `<PLATFORM>_API_URL` still wins over the sandbox's API.
        if let Some(u) = overrides.and_then(|o| o.api_url.as_ref()) {
            spec.api_base = Some(u.clone());
        }
    }
    Some(spec)
}

/// Every platform this deployment knows, resolved against its settings.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    platforms: BTreeMap<PlatformId, PlatformSpec>,
    order: Vec<PlatformId>,
}

impl Catalog {
    /// Builds the catalog: the built-in platforms of the table with their settings (by slug),
    /// unconfigured ones replaced by the sandbox when `sandbox_api_url` (the service's `API_URL`,
    /// which serves the sandbox) is given, then the operator's generic providers.
    pub(crate) fn resolve(
        platforms: &BTreeMap<String, PlatformSettings>,
        generic: &[GenericProviderSettings],
        sandbox_api_url: Option<&Url>,
    ) -> Self {
        let sandbox_api_base = sandbox_api_url.map(|u| u.as_str().trim_end_matches('/'));
        let mut catalog = Self::default();
        for platform in BUILT_IN.iter() {
            let overrides = platforms.get(platform.slug);
            if let Some(spec) = resolve_built_in(platform, overrides, sandbox_api_base) {
                catalog.insert(spec);
            }
        }
        for generic in generic {
            if let Some(spec) = generic_spec(generic) {
                catalog.insert(spec);
            }
        }
        catalog
    }

    fn insert(&mut self, spec: PlatformSpec) {
        self.order.push(spec.id.clone());
        self.platforms.insert(spec.id.clone(), spec);
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

    /// Looks a platform up by the text of a path segment; an unknown one is
    /// [`PlatformError::UnknownPlatform`].
    pub fn require(&self, slug: &str) -> Result<&PlatformSpec, PlatformError> {
        self.find(slug)
            .ok_or_else(|| PlatformError::UnknownPlatform(slug.to_owned()))
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
    use crate::platforms::platform::ConsentRequest;

    fn twitter() -> &'static BuiltInPlatform {
        BUILT_IN
            .iter()
            .find(|p| p.slug == "twitter")
            .expect("X is built in")
    }

    #[test]
    fn a_consent_for_missing_scopes_follows_the_platforms_mode_and_sends_no_parameter_twice() {
        let spec = |slug: &str| {
            BUILT_IN
                .iter()
                .find(|p| p.slug == slug)
                .and_then(|p| built_in_spec(p))
                .expect("built in")
        };
        let missing = vec!["https://www.googleapis.com/auth/adwords".to_owned()];
        let google = spec("google").consent_request(Some(&missing));
        assert_eq!(google.scopes, missing);
        let named = |request: &ConsentRequest, name: &str| {
            request
                .params
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(named(&google, "include_granted_scopes"), ["true"]);
        assert_eq!(named(&google, "prompt"), ["consent"]);

        let meta = spec("meta");
        let declined = vec!["ads_read".to_owned()];
        let request = meta.consent_request(Some(&declined));
        assert_eq!(request.scopes, declined);
        assert_eq!(named(&request, "auth_type"), ["rerequest"]);
        // A plain connect asks for everything, without the rerequest.
        let plain = meta.consent_request(None);
        assert_eq!(plain.scopes, meta.scopes);
        assert!(named(&plain, "auth_type").is_empty());

        let tiktok = spec("tiktok");
        let request = tiktok.consent_request(Some(&["video.list".to_owned()]));
        assert_eq!(request.scopes, tiktok.scopes);
        assert_eq!(named(&request, "disable_auto_auth"), ["1"]);
        assert!(named(&tiktok.consent_request(None), "disable_auto_auth").is_empty());
    }

    #[test]
    fn every_built_in_platform_has_real_https_endpoints() {
        for platform in BUILT_IN.iter() {
            let spec = built_in_spec(platform).expect("defined");
            assert_eq!(spec.authorize_url.scheme(), "https", "{}", platform.slug);
            assert_eq!(spec.token_url.scheme(), "https", "{}", platform.slug);
            assert!(!spec.scopes.is_empty(), "{}", platform.slug);
            assert!(url(platform.api_base).is_some(), "{}", platform.slug);
        }
    }

    #[test]
    fn x_always_uses_pkce_and_asks_for_offline_access() {
        let x = built_in_spec(twitter()).expect("defined");
        assert_eq!(x.pkce, Pkce::S256);
        assert!(x.scopes.iter().any(|s| s == "offline.access"));
        assert_eq!(x.client_auth, ClientAuth::Basic);
    }

    #[test]
    fn an_x_scope_override_without_offline_access_gets_it_back() {
        let overrides = PlatformSettings {
            scopes: Some(vec!["tweet.read".into()]),
            ..PlatformSettings::default()
        };
        let x = resolve_built_in(twitter(), Some(&overrides), None).expect("defined");
        assert_eq!(x.scopes, ["tweet.read", "offline.access"]);
    }
}

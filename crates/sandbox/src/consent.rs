//! The sandbox consent screen shared by every simulated platform: validating the authorization
//! request against the platform's description (and its own option and scope rules), rendering the
//! clearly labelled simulated consent page, and answering the form with a code or the platform's
//! cancel error.
//!
//! Validation order follows RFC 6749 §4.1.2.1: an unknown client or an unregistered redirect URI
//! is answered here with an HTML error and never redirected (the redirect target cannot be trusted);
//! every later problem is reported to the client by redirecting with `error=...`, except where a
//! platform shows its own error page instead (an unknown scope, at Meta, Google and TikTok).

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Duration;

use crate::params::QueryParams;
use crate::platform::{Platform, Rejection};
use crate::platforms::TABLE;
use crate::spec::{AuthorizeOptions, ConsentMemory, PkceRule, PlatformSpec, ScopeSeparator};
use crate::state::{
    ApprovedAuthorization, PendingAuthorization, PkceChallenge, PkceMethod, Simulator,
};

/// How long a rendered consent screen stays answerable.
const PENDING_LIFETIME_MINUTES: i64 = 30;

/// The authorize and consent routes of every platform.
pub(crate) fn routes() -> Router<Simulator> {
    TABLE
        .iter()
        .copied()
        .fold(Router::new(), |router, platform| {
            let spec = platform.spec;
            router
                .route(
                    spec.authorize_path,
                    get(
                        move |State(sim): State<Simulator>, RawQuery(query): RawQuery| async move {
                            authorize(&sim, platform, query.as_deref())
                        },
                    ),
                )
                .route(
                    &format!("/sandbox/{}/consent", spec.key),
                    post(
                        move |State(sim): State<Simulator>, body: Bytes| async move {
                            answer_consent(&sim, platform, &body)
                        },
                    ),
                )
        })
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox consent: {{ display_name }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f5; color: #18181b; }
.banner { background: #fde047; color: #422006; padding: 0.75rem 1rem; font-weight: 600; border-bottom: 2px solid #a16207; }
main { max-width: 32rem; margin: 2rem auto; background: #fff; padding: 1.5rem; border-radius: 0.5rem; border: 1px solid #d4d4d8; }
fieldset { border: 1px solid #d4d4d8; border-radius: 0.375rem; }
.scope { display: block; margin: 0.375rem 0; }
code { word-break: break-all; }
.actions { display: flex; gap: 0.75rem; margin-top: 1rem; }
button { font-size: 1rem; padding: 0.5rem 1.25rem; border-radius: 0.375rem; border: 1px solid #3f3f46; cursor: pointer; }
#approve { background: #1d4ed8; color: #fff; border-color: #1d4ed8; }
#deny { background: #fff; color: #18181b; }
</style>
</head>
<body>
<div class="banner" role="note">Sandbox — simulated {{ display_name }} consent screen. No real account is involved.</div>
<main>
<h1>Allow access to your {{ display_name }} account?</h1>
<p>Signed in as <strong>{{ account_name }}</strong> (simulated account).</p>
<p>The app <code>{{ client_id }}</code> asks for the permissions below. When you answer, you will be sent back to <code>{{ redirect_uri }}</code>.</p>
<form method="post" action="/sandbox/{{ platform_key }}/consent">
<input type="hidden" name="request_id" value="{{ request_id }}">
<fieldset>
<legend>Requested permissions</legend>
{% for scope in scopes %}<label class="scope"><input type="checkbox" name="scope" value="{{ scope }}" checked> {{ scope }}</label>
{% endfor %}{% if scopes.is_empty() %}<p>No permissions requested.</p>{% endif %}
</fieldset>
<div class="actions">
<button type="submit" name="decision" value="approve" id="approve">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Cancel</button>
</div>
</form>
</main>
</body>
</html>
"#
)]
struct ConsentPage<'a> {
    platform_key: &'a str,
    display_name: &'a str,
    account_name: &'a str,
    client_id: &'a str,
    redirect_uri: &'a str,
    scopes: &'a [String],
    request_id: &'a str,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox error: {{ display_name }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #18181b; }
.banner { background: #fde047; padding: 0.75rem 1rem; font-weight: 600; }
</style>
</head>
<body>
<div class="banner" role="note">Sandbox — simulated {{ display_name }} authorization error. No real account is involved.</div>
<main>
<h1>This authorization request cannot be completed</h1>
<p>{{ message }}</p>
</main>
</body>
</html>
"#
)]
struct ErrorPage<'a> {
    display_name: &'a str,
    message: &'a str,
}

/// An HTML answer that is never cached (a template error is a bare 500).
pub(crate) fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
    match page {
        Ok(body) => (
            status,
            [
                (CONTENT_TYPE, "text/html; charset=utf-8"),
                (CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response(),
    }
}

fn error_page(spec: &PlatformSpec, message: &str) -> Response {
    let page = ErrorPage {
        display_name: spec.display_name,
        message,
    };
    html(StatusCode::BAD_REQUEST, page.render())
}

/// A redirect back to the client with these query parameters added to its redirect URI.
fn redirect_back(
    spec: &PlatformSpec,
    status: StatusCode,
    redirect_uri: &str,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut target) = url::Url::parse(redirect_uri) else {
        return error_page(spec, "The registered redirect URI is not an absolute URL.");
    };
    {
        let mut query = target.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    (
        status,
        [(LOCATION, target.as_str()), (CACHE_CONTROL, "no-store")],
    )
        .into_response()
}

/// An error reported to the client through its redirect URI (RFC 6749 §4.1.2.1).
fn redirect_error(
    spec: &PlatformSpec,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect_back(spec, StatusCode::FOUND, redirect_uri, &params)
}

/// What a valid authorization request asks for, once its client and redirect URI are trusted.
struct CheckedRequest {
    state: String,
    requested_scopes: Vec<String>,
    pkce: Option<PkceChallenge>,
    options: AuthorizeOptions,
}

fn authorize(sim: &Simulator, platform: Platform, query: Option<&str>) -> Response {
    let spec = platform.spec;
    let params = QueryParams::parse(query);
    let (client_id, redirect_uri) = match trusted_client(sim, spec, &params) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let request = match check_request(
        platform,
        &params,
        sim.switch(platform.spec.key, crate::state::STRICT),
    ) {
        Ok(request) => request,
        Err(Rejection::Redirect((error, description))) => {
            return redirect_error(spec, redirect_uri, params.get("state"), error, &description)
        }
        Err(Rejection::Page(message)) => return error_page(spec, &message),
    };

    let account = sim.signed_in_account(spec.key);
    // A platform that remembers consents does not ask again for a scope the user declined,
    // unless the request says so.
    let declined =
        if spec.consent_memory == ConsentMemory::Always && !request.options.ask_declined_again {
            sim.remembered(spec.key, client_id, account).declined
        } else {
            Vec::new()
        };
    let shown_scopes: Vec<String> = request
        .requested_scopes
        .iter()
        .filter(|scope| !declined.contains(scope))
        .cloned()
        .collect();
    let pending = PendingAuthorization {
        platform: spec,
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: Some(request.state),
        requested_scopes: request.requested_scopes,
        pkce: request.pkce,
        options: request.options,
        shown_scopes: shown_scopes.clone(),
        account,
        expires_at: sim.now() + Duration::minutes(PENDING_LIFETIME_MINUTES),
    };
    let scopes = shown_scopes;
    let request_id = sim.store_pending(pending);
    let other_account;
    let page = ConsentPage {
        platform_key: spec.key,
        display_name: spec.display_name,
        account_name: if account == 0 {
            spec.account_name
        } else {
            other_account = format!("Other Merchant {account}");
            &other_account
        },
        client_id,
        redirect_uri,
        scopes: &scopes,
        request_id: &request_id,
    };
    html(StatusCode::OK, page.render())
}

/// The client id and redirect URI, once both are known to belong together. Until then nothing may
/// be redirected (RFC 6749 §4.1.2.1), so every problem here is an error page (boxed: a `Response`
/// is large).
fn trusted_client<'a>(
    sim: &Simulator,
    spec: &PlatformSpec,
    params: &'a QueryParams,
) -> Result<(&'a str, &'a str), Box<Response>> {
    let Some(client_id) = params.get(spec.client_param) else {
        let message = if spec.client_param != "client_id" && params.get("client_id").is_some() {
            format!(
                "Missing parameter {}: {} names the app's identifier {}, not client_id.",
                spec.client_param, spec.display_name, spec.client_param
            )
        } else {
            format!("Missing parameter {}.", spec.client_param)
        };
        return Err(Box::new(error_page(spec, &message)));
    };
    let Some(client) = sim.client(spec.key, client_id) else {
        return Err(Box::new(error_page(
            spec,
            "Unknown client: no app is registered with this identifier.",
        )));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(Box::new(error_page(
            spec,
            "Missing parameter redirect_uri.",
        )));
    };
    if !client.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return Err(Box::new(error_page(
            spec,
            "redirect_uri_mismatch: the redirect_uri is not registered for this app (it must match byte for byte).",
        )));
    }
    Ok((client_id, redirect_uri))
}

/// Checks the rest of the request against the platform's rules, in the order the platform does.
fn check_request(
    platform: Platform,
    params: &QueryParams,
    strict: bool,
) -> Result<CheckedRequest, Rejection> {
    let spec = platform.spec;
    let invalid =
        |description: &str| Rejection::Redirect(("invalid_request", description.to_owned()));
    // RFC 6749 §3.1: parameters must not be included more than once.
    if let Some(name) = params.duplicate() {
        return Err(invalid(&format!(
            "Parameter {name} is included more than once."
        )));
    }
    let Some(state) = params.get("state") else {
        return Err(invalid("Missing required parameter: state."));
    };
    if spec
        .state_max_len
        .is_some_and(|max| state.chars().count() > max)
    {
        return Err(invalid("The state parameter is too long."));
    }
    match params.get("response_type") {
        Some("code") => {}
        None if spec.response_type_optional => {}
        None => return Err(invalid("Missing required parameter: response_type.")),
        Some(_) => return Err(invalid("Unsupported response_type: only code is allowed.")),
    }
    let requested_scopes = parse_scopes(spec, params.get("scope"))
        .map_err(|(error, description)| (error, description.to_owned()))?;
    let requested_scopes = platform.rules.check_scopes(requested_scopes, strict)?;
    let pkce = parse_pkce(
        spec,
        params.get("code_challenge"),
        params.get("code_challenge_method"),
        strict,
    )
    .map_err(invalid)?;
    let options = platform.rules.authorize_options(params)?;
    Ok(CheckedRequest {
        state: state.to_owned(),
        requested_scopes,
        pkce,
        options,
    })
}

/// Splits the `scope` parameter by the platform's separator, refusing the other separator.
fn parse_scopes(
    spec: &PlatformSpec,
    scope: Option<&str>,
) -> Result<Vec<String>, (&'static str, &'static str)> {
    let Some(scope) = scope.filter(|s| !s.trim().is_empty()) else {
        return if spec.scope_required {
            Err(("invalid_request", "Missing required parameter: scope."))
        } else {
            Ok(Vec::new())
        };
    };
    let parts: Vec<&str> = match spec.scope_separator {
        ScopeSeparator::Comma => {
            if scope.contains(char::is_whitespace) {
                return Err((
                    "invalid_scope",
                    "Scopes must be separated by commas, not spaces.",
                ));
            }
            scope.split(',').collect()
        }
        ScopeSeparator::Space => {
            if scope.contains(',') {
                return Err((
                    "invalid_scope",
                    "Scopes must be separated by spaces, not commas.",
                ));
            }
            scope.split(' ').collect()
        }
        ScopeSeparator::CommaOrSpace => scope.split([',', ' ']).collect(),
    };
    let mut scopes: Vec<String> = Vec::new();
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        if !scopes.iter().any(|s| s == part) {
            scopes.push(part.to_owned());
        }
    }
    Ok(scopes)
}

/// Reads the PKCE parameters according to the platform's rule (RFC 7636 §4.3).
/// In the strict reading, PKCE a platform makes optional must be sent, with S256: the service
/// promises S256 wherever a platform takes PKCE.
fn parse_pkce(
    spec: &PlatformSpec,
    challenge: Option<&str>,
    method: Option<&str>,
    strict: bool,
) -> Result<Option<PkceChallenge>, &'static str> {
    if strict && spec.pkce == PkceRule::Optional {
        if challenge.is_none_or(str::is_empty) {
            return Err("Missing required parameter: code_challenge (strict sandbox).");
        }
        if method != Some("S256") {
            return Err("code_challenge_method must be S256 (strict sandbox).");
        }
    }
    match spec.pkce {
        PkceRule::Ignored => Ok(None),
        PkceRule::Optional | PkceRule::Required => {
            let Some(challenge) = challenge.filter(|c| !c.is_empty()) else {
                return if spec.pkce == PkceRule::Required {
                    Err("Missing required parameter: code_challenge.")
                } else {
                    Ok(None)
                };
            };
            let method = match method {
                Some("S256") => PkceMethod::S256,
                Some("plain") => PkceMethod::Plain,
                // RFC 7636 §4.3 defaults to plain; a platform requiring PKCE insists on the parameter.
                None if spec.pkce == PkceRule::Optional => PkceMethod::Plain,
                None => return Err("Missing required parameter: code_challenge_method."),
                Some(_) => return Err("code_challenge_method must be S256 or plain."),
            };
            Ok(Some(PkceChallenge {
                challenge: challenge.to_owned(),
                method,
            }))
        }
    }
}

fn answer_consent(sim: &Simulator, platform: Platform, body: &Bytes) -> Response {
    let spec = platform.spec;
    let Ok(fields) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        return error_page(spec, "The consent form could not be read.");
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let approve = match field("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return error_page(
                spec,
                "The consent form must be answered with Allow or Cancel.",
            )
        }
    };
    let Some(pending) = field("request_id").and_then(|id| sim.take_pending(id)) else {
        return error_page(
            spec,
            "This consent screen has expired or was already answered. Start the connection again.",
        );
    };
    if pending.platform.key != spec.key {
        return error_page(spec, "This consent screen belongs to another platform.");
    }
    let state = pending.state.as_deref();

    if !approve {
        let mut params = vec![("error", spec.denial_error)];
        if let Some(reason) = spec.denial_reason {
            params.push(("error_reason", reason));
        }
        params.push(("error_description", spec.denial_description));
        if let Some(state) = state {
            params.push(("state", state));
        }
        return redirect_back(spec, StatusCode::SEE_OTHER, &pending.redirect_uri, &params);
    }

    let checked: Vec<&str> = fields
        .iter()
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.as_str())
        .collect();
    let granted_now = sim.granted_scopes_override(spec.key).unwrap_or_else(|| {
        // Only what the screen asked for can be granted, whatever else the form carries.
        pending
            .shown_scopes
            .iter()
            .filter(|scope| checked.contains(&scope.as_str()))
            .cloned()
            .collect()
    });
    let (requested_scopes, granted_scopes) = granted_with_memory(sim, &pending, granted_now);
    let reported_scopes = granted_scopes.join(",");
    let code = sim.issue_code(ApprovedAuthorization {
        platform: spec,
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        requested_scopes,
        granted_scopes,
        pkce: pending.pkce.clone(),
        options: pending.options,
        account: pending.account,
    });
    let mut params = vec![("code", code.as_str())];
    if spec.callback_reports_scopes {
        params.push(("scopes", reported_scopes.as_str()));
    }
    if let Some(state) = state {
        params.push(("state", state));
    }
    redirect_back(spec, StatusCode::SEE_OTHER, &pending.redirect_uri, &params)
}

/// The grant's requested and granted scopes once what the account granted the client before
/// counts ([`ConsentMemory`]): on request, every scope granted before is added; always, the token
/// carries every scope granted to the app, and the requested list names the declined ones.
fn granted_with_memory(
    sim: &Simulator,
    pending: &PendingAuthorization,
    granted_now: Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let remembered = sim.remember_consent(
        pending.platform.key,
        &pending.client_id,
        pending.account,
        &pending.shown_scopes,
        &granted_now,
    );
    let mut requested = pending.requested_scopes.clone();
    match pending.platform.consent_memory {
        ConsentMemory::OnRequest if pending.options.include_granted_scopes => {
            (requested, remembered.granted)
        }
        ConsentMemory::Always => {
            for scope in remembered.declined.iter().chain(&remembered.granted) {
                if !requested.contains(scope) {
                    requested.push(scope.clone());
                }
            }
            (requested, remembered.granted)
        }
        _ => (requested, granted_now),
    }
}

//! Google's Cross-Account Protection (RISC) as the sandbox sends it [G15]: security event tokens
//! (RS256 JWTs, `typ` `secevent+jwt`, one event each) posted to `google/risc`, the discovery
//! document `/.well-known/risc-configuration` and the JWKS its `jwks_uri` names, and a key
//! rotation that retires the old key from the JWKS.
//!
//! Google sends them only for users who granted the app `profile` or `email` [G15], so the
//! tokens-revoked event of an app removal goes out only for such grants. `aud` is the client id
//! of the first Google client registered; without one nothing is sent.

use axum::extract::State;
use axum::http::header::HOST;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::oauth::SLUG;
use crate::exchange;
use crate::outbox::Notice;
use crate::state::{random_string, GrantView, Simulator};

const RISC: &str = "risc";

/// RISC's issuer, Google's own (the discovery document's `issuer`, the tokens' `iss`) [G15].
const ISSUER: &str = "https://accounts.google.com/";

/// "All OAuth tokens of the user were revoked" [G15].
const TOKENS_REVOKED: &str = "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked";

/// The JWKS path (Google's RISC samples read `https://www.googleapis.com/oauth2/v3/certs`).
const JWKS_PATH: &str = "/sandbox/google/oauth2/v3/certs";

/// The simulator's two RSA signing keys (2048 bits, PKCS#1 PEM), generated for the sandbox with
/// `openssl genrsa`. They are public by design: anyone may forge these tokens, which is fine for
/// a simulator and must never be trusted outside one.
const KEYS: [&str; 2] = [
    include_str!("risc_key_1.pem"),
    include_str!("risc_key_2.pem"),
];

/// The keys' moduli, base64url without padding (`openssl rsa -modulus`, re-encoded), for the JWKS.
const MODULI: [&str; 2] = [
    "p9DYHjNwihNIZ9lFyzPpzMr562C8sNegZ1f0T9RQw2iu11rK_9U7mfZaS0pvtxT6KqegzGo9u8cRqttpWQAmZx8XdJ-GJRITa0OlsnUQMHeujJmCHje2rQjfclXZ6Rnhy77kOV2vpzyZGM5Ub_8DEoVbkXWUeDHnqT4RF8tlDjQoYAmq1KqV4UOA0ij1uKpIKg-1QNHIfKodv1jsAuzMUCNmQJqe2qu2DdkVTA2PGyIEIoCW8_lmfSQmVCOWNkEi9UOzwAdSICQMqFqhrhVUsI3A4DysCezEaiQnn-vm7_pjXsSy-LsRtzjYgaTGGgovC_7sgKFYTpb0Mcy5DS5vWw",
    "mw6DAMMJ7WcP9pNN9fnEXLDgXgP7rLHg2ADEyB5XS6-Vhv5q8L4VPQ2otI-ZktLJIku0OYy_HUmXMqAO9XYGl7iNGVsxN_VW64fRjvXtbjVyO7vt5CYe0nji3aA-8IEYq9KSZPqpWWWR3PMNaqYvkdC9f8cVagpEznaETwnKeeVKnVY5lPkSbyFqW_o4ozhGhb6x6028d1bR6YvPirlS3bc1U_qmwf1VAgrRXS25Dn7J1AM2WqHrJYcof6Mb9LR3GM2xmsj4jJrQyB2SyKPlANFRF_U4ZEpCaZCt_VbR86hWhgr15xftcwzrydFvjnyp5fj1gfJi5qYppr4Tg5u8Nw",
];

/// Both keys' public exponent, 65537.
const EXPONENT: &str = "AQAB";

/// The counter of key rotations (see [`Simulator::rotate_google_risc_key`]).
const KEY_ROTATIONS: &str = "risc_key_rotations";

/// The current signing key: its `kid` (new at every rotation) and which of [`KEYS`] it is (the two
/// alternate).
fn current_key(sim: &Simulator) -> (String, usize) {
    let rotations = sim.counted(SLUG, KEY_ROTATIONS);
    (format!("sandbox-risc-{}", rotations + 1), rotations % 2)
}

/// The discovery document and the JWKS.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route(
            "/sandbox/google/.well-known/risc-configuration",
            get(configuration),
        )
        .route(JWKS_PATH, get(jwks))
}

/// `GET /.well-known/risc-configuration` [G15]: the issuer and the JWKS's absolute URL, built from
/// the request's `Host` (plain HTTP: the sandbox is served without TLS).
async fn configuration(headers: HeaderMap) -> Response {
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    exchange::json(
        StatusCode::OK,
        json!({
            "issuer": ISSUER,
            "jwks_uri": format!("http://{host}{JWKS_PATH}"),
            "delivery_methods_supported": [
                "https://schemas.openid.net/secevent/risc/delivery-method/push"
            ],
        }),
    )
}

/// `GET /oauth2/v3/certs`: the current key only (a rotated-out key disappears at once).
async fn jwks(State(sim): State<Simulator>) -> Response {
    let (kid, index) = current_key(&sim);
    exchange::json(
        StatusCode::OK,
        json!({ "keys": [{
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": kid,
            "n": MODULI[index],
            "e": EXPONENT,
        }] }),
    )
}

/// A security event token for `sub` [G15]: header `{"alg":"RS256","typ":"secevent+jwt","kid"}`,
/// claims `iss`, `aud` (the client id), `iat`, a unique `jti` and one event whose subject is
/// `iss-sub`. No `exp`: the tokens describe past events and do not expire [G15].
fn security_event(sim: &Simulator, event_uri: &str, sub: &str) -> Option<Notice> {
    let client = sim.first_client(SLUG)?;
    let (kid, index) = current_key(sim);
    let key = EncodingKey::from_rsa_pem(KEYS[index].as_bytes()).ok()?;
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("secevent+jwt".to_owned());
    header.kid = Some(kid);
    let mut events = serde_json::Map::new();
    events.insert(
        event_uri.to_owned(),
        json!({ "subject": { "subject_type": "iss-sub", "iss": ISSUER, "sub": sub } }),
    );
    let claims = json!({
        "iss": ISSUER,
        "aud": client.client_id,
        "iat": sim.now().timestamp(),
        "jti": random_string(32),
        "events": events,
    });
    let token = jsonwebtoken::encode(&header, &claims, &key).ok()?;
    Some(Notice {
        receiver: RISC,
        content_type: "application/secevent+jwt",
        body: token,
        headers: Vec::new(),
    })
}

/// Whether a grant lets Google send RISC events about its user: `profile` or `email` [G15].
fn covered(grant: &GrantView) -> bool {
    [
        "profile",
        "email",
        "https://www.googleapis.com/auth/userinfo.profile",
        "https://www.googleapis.com/auth/userinfo.email",
    ]
    .iter()
    .any(|scope| grant.has_scope(scope))
}

/// The tokens-revoked event for `sub` when one of the removed grants had `profile` or `email`.
pub(super) fn removal(sim: &Simulator, sub: &str, removed: &[GrantView]) -> Option<Notice> {
    removed
        .iter()
        .any(covered)
        .then(|| security_event(sim, TOKENS_REVOKED, sub))
        .flatten()
}

impl Simulator {
    /// Posts a RISC security event token to `google/risc` [G15]: event `event_uri` (e.g.
    /// `https://schemas.openid.net/secevent/risc/event-type/sessions-revoked`) for the Google
    /// Account `sub`, signed with the current key.
    pub fn send_google_risc(&self, event_uri: &str, sub: &str) {
        if let Some(notice) = security_event(self, event_uri, sub) {
            self.send_notice(SLUG, notice);
        }
    }

    /// Rotates the RISC signing key: a new `kid`, and the JWKS lists only the new key, so a
    /// receiver holding the old JWKS must fetch it again.
    pub fn rotate_google_risc_key(&self) {
        self.count(SLUG, KEY_ROTATIONS);
    }
}

//! The token route every simulated platform shares: it reads the call once, applies the test
//! fault set for the platform (a failure status in the platform's shape, a non-JSON body, a
//! throttle, a delay, a hold, an answer lost after the platform acted), lets the platform answer
//! by its rules, and records every call.
//!
//! The rules themselves (client authentication, grants, error wording) are the platform's
//! `SimulatedPlatform::answer_token`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;

use crate::exchange::{lost_answer, TokenCall};
use crate::platform::Platform;
use crate::platforms::TABLE;
use crate::state::{Fault, Simulator, TokenRequestRecord};

/// The token route of every platform, at its spec's path.
pub(crate) fn routes() -> Router<Simulator> {
    TABLE
        .iter()
        .copied()
        .fold(Router::new(), |router, platform| {
            let methods = if platform.spec.token_accepts_get {
                MethodFilter::POST.or(MethodFilter::GET)
            } else {
                MethodFilter::POST
            };
            router.route(
                platform.spec.token_path,
                on(
                    methods,
                    move |State(sim): State<Simulator>,
                          headers: HeaderMap,
                          RawQuery(query): RawQuery,
                          body: Bytes| async move {
                        let call = TokenCall::parse(&headers, query.as_deref(), &body);
                        token_endpoint(&sim, platform, &call).await
                    },
                ),
            )
        })
}

/// Runs a token-endpoint call through the platform's fault (if any), records it, and returns the
/// answer.
async fn token_endpoint(sim: &Simulator, platform: Platform, call: &TokenCall) -> Response {
    let key = platform.spec.key;
    let grant_type = call
        .body_or_query("grant_type")
        .unwrap_or_default()
        .to_owned();
    let (response, faulted) = match sim.fault_after_hold(key).await {
        // `fault_after_hold` returns only once the fault is no longer a hold.
        None | Some(Fault::Hold) => (platform.rules.answer_token(sim, call), false),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            (platform.rules.answer_token(sim, call), false)
        }
        Some(Fault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (platform.rules.fault_body(status), true)
        }
        Some(Fault::Garbage) => {
            let response = (
                StatusCode::OK,
                [(CONTENT_TYPE, "text/html; charset=utf-8")],
                "<html>not json",
            )
                .into_response();
            (response, true)
        }
        Some(Fault::RateLimited {
            retry_after_seconds,
        }) => {
            let mut response = platform.rules.fault_body(StatusCode::TOO_MANY_REQUESTS);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_seconds));
            (response, true)
        }
        Some(Fault::LoseAnswer) => {
            let answered = platform.rules.answer_token(sim, call);
            sim.record_token_request(
                key,
                TokenRequestRecord {
                    grant_type,
                    ok: false,
                    status: answered.status().as_u16(),
                },
            );
            return lost_answer();
        }
    };
    let status = response.status();
    sim.record_token_request(
        key,
        TokenRequestRecord {
            grant_type,
            ok: !faulted && status.is_success(),
            status: status.as_u16(),
        },
    );
    response
}

//! LinkedIn's webhook validation [L18]: before it sends events to an endpoint (and every two
//! hours after), LinkedIn sends `GET {url}?challengeCode={UUID v4}` and expects, within 3 s, a
//! 200 with `content-type: application/json` and `{"challengeCode", "challengeResponse"}`, the
//! response being the hex HMAC-SHA256 of the code keyed with the app's client secret.
//!
//! LinkedIn sends no notice when a member removes the app (linkedin.md fact 64 [L3]), so nothing
//! else is sent. The secret is the first LinkedIn client's.

use std::time::Duration;

use super::oauth::SLUG;
use crate::events::{hmac_sha256, uuid_v4};
use crate::state::Simulator;

const WEBHOOKS: &str = "webhooks";

/// How long the endpoint has to answer the challenge [L18].
const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(3);

impl Simulator {
    /// Sends LinkedIn's challenge to `linkedin/webhooks` [L18]: `GET ?challengeCode={UUID v4}`.
    /// `Ok(true)` when the receiver answered within 3 s with 200, a JSON content type and
    /// `{"challengeCode": the code, "challengeResponse": hex HMAC-SHA256(client secret, code)}`;
    /// `Err` when no receiver is set, none is registered, or it could not be reached in time.
    pub async fn check_linkedin_challenge(&self) -> Result<bool, String> {
        let secret = self
            .first_client(SLUG)
            .map(|client| client.client_secret.clone())
            .ok_or_else(|| "no LinkedIn client is registered".to_owned())?;
        let code = uuid_v4();
        let answer = self
            .challenge(
                SLUG,
                WEBHOOKS,
                &[("challengeCode", &code)],
                CHALLENGE_TIMEOUT,
            )
            .await?;
        let expected = hex::encode(hmac_sha256(secret.as_bytes(), code.as_bytes()));
        let json = answer
            .content_type
            .as_deref()
            .is_some_and(|value| value.starts_with("application/json"));
        Ok(json
            && answer.json_200().is_some_and(|body| {
                body["challengeCode"] == code.as_str()
                    && body["challengeResponse"] == expected.as_str()
            }))
    }
}

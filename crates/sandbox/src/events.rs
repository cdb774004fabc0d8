//! The platforms' notices on their way to the app: where they go ([`Simulator::set_event_receiver`]),
//! the delivery task that posts them in order, one platform at a time, and retries a failed one
//! with exponential back-off, the observations of every attempt, the duplicate delivery a
//! platform may make, and the challenge requests a platform sends to check a receiver.
//!
//! It also owns the generic helpers the platform modules sign and shape their notices with (an
//! HMAC-SHA256, JSON with its keys in the documented order, a UUID v4). It does not know any
//! notice's format, secret or receiver: each platform module builds its notices (`Notice`) and
//! words its challenges. It names no platform.
//!
//! The platforms retry over hours with decreasing frequency (Meta, 36 h [M31]) or exponential
//! back-off (TikTok, 72 h [T24]); Google's retries are "limited" [G15]. The sandbox keeps the
//! shape, compressed: the first retry after 250 ms, each gap doubling, 8 attempts by default
//! ([`Simulator::set_event_retry`]).

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;

use crate::outbox::{EventDelivery, Notice};
use crate::state::Simulator;

/// How long a receiver has to answer: X's 10 seconds [X14], the longest a platform documents
/// (TikTok and Meta say "immediately" [T24, M31]; LinkedIn's challenge asks for 3 s [L18]).
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A receiver's answer to a challenge request.
pub(crate) struct ChallengeAnswer {
    pub(crate) status: u16,
    /// The `Content-Type` header, if any.
    pub(crate) content_type: Option<String>,
    pub(crate) body: String,
}

impl ChallengeAnswer {
    /// Whether the answer is a 200 with a JSON body that parses (the answer, else `None`).
    pub(crate) fn json_200(&self) -> Option<Value> {
        (self.status == 200)
            .then(|| serde_json::from_str(&self.body).ok())
            .flatten()
    }
}

impl Simulator {
    /// Makes the platforms deliver their notices under `base`, the app's receivers' base URL
    /// (e.g. `http://127.0.0.1:8003/api/v1/platform-events`, no trailing slash): each one to
    /// `{base}/{platform}/{receiver}`. Until it is set, events are recorded (attempt 0) but not
    /// sent.
    pub fn set_event_receiver(&self, base: &str) {
        self.lock().outbox.receiver_base = Some(base.trim_end_matches('/').to_owned());
    }

    /// Changes the retry schedule of failed deliveries: the first retry after `first`, each
    /// following gap doubled, at most `attempts` attempts per event (the first one included; at
    /// least 1).
    pub fn set_event_retry(&self, first: Duration, attempts: u32) {
        let mut state = self.lock();
        state.outbox.first_retry = first;
        state.outbox.attempts = attempts.max(1);
    }

    /// Every delivery attempt of `platform`'s events so far (the last 1,000), in order.
    pub fn event_deliveries(&self, platform: &str) -> Vec<EventDelivery> {
        self.lock()
            .outbox
            .platforms
            .get(platform)
            .map(|outbox| outbox.deliveries.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Sends `platform`'s last event again, byte for byte, signature included: the duplicate
    /// delivery every platform warns about (Meta [M31], TikTok [T24], Google [G15], X [X14]).
    /// Nothing happens when the platform has sent nothing yet.
    pub fn redeliver_last_event(&self, platform: &str) {
        let last = self
            .lock()
            .outbox
            .platforms
            .get(platform)
            .and_then(|outbox| outbox.last.clone());
        if let Some(notice) = last {
            self.enqueue(platform, notice);
        }
    }

    /// Sends a notice of `platform` to the app (after the ones it sent before); returns its event
    /// number. Sync: the platform's delivery task does the sending, spawned on the current Tokio
    /// runtime unless one is already working through the queue. Called outside a runtime, the
    /// event waits for the next one sent from inside one.
    pub(crate) fn send_notice(&self, platform: &str, notice: Notice) -> u64 {
        self.enqueue(platform, Arc::new(notice))
    }

    fn enqueue(&self, platform: &str, notice: Arc<Notice>) -> u64 {
        let mut state = self.lock();
        let outbox = &mut state.outbox;
        outbox.last_event += 1;
        let event = outbox.last_event;
        let unsent = outbox.receiver_base.is_none();
        let queue = outbox.platforms.entry(platform.to_owned()).or_default();
        queue.last = Some(Arc::clone(&notice));
        if unsent {
            queue.record(delivery(event, &notice, 0, None, None));
            return event;
        }
        queue.queue.push_back((event, notice));
        if queue.sending {
            return event;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return event;
        };
        queue.sending = true;
        drop(state);
        runtime.spawn(deliver_queue(self.clone(), platform.to_owned()));
        event
    }

    /// The first attempt to deliver `event` of `platform`, once it has been made.
    pub(crate) fn first_attempt(&self, platform: &str, event: u64) -> Option<EventDelivery> {
        self.lock()
            .outbox
            .platforms
            .get(platform)?
            .deliveries
            .iter()
            .find(|delivery| delivery.event == event)
            .cloned()
    }

    /// Sends a platform's challenge to one of the app's receivers: `GET {base}/{platform}/
    /// {receiver}?{query}`, answered within `timeout`. `Err` when no receiver is set or the
    /// receiver cannot be reached in time.
    pub(crate) async fn challenge(
        &self,
        platform: &str,
        receiver: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<ChallengeAnswer, String> {
        let base =
            self.lock().outbox.receiver_base.clone().ok_or_else(|| {
                "no event receiver is set (Simulator::set_event_receiver)".to_owned()
            })?;
        let client = self.http_client()?;
        let url = url::Url::parse_with_params(&format!("{base}/{platform}/{receiver}"), query)
            .map_err(|e| format!("the receiver's URL is invalid: {e}"))?;
        let response = client
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("the receiver did not answer: {e}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .map_err(|e| format!("the receiver's answer could not be read: {e}"))?;
        Ok(ChallengeAnswer {
            status,
            content_type,
            body,
        })
    }

    /// The HTTP client of deliveries and challenges, built once. It follows no redirect: a 3xx
    /// is a failed delivery (X counts it as a failed check [X14]).
    fn http_client(&self) -> Result<reqwest::Client, String> {
        let mut state = self.lock();
        if let Some(client) = &state.outbox.client {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ANSWER_TIMEOUT)
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        state.outbox.client = Some(client.clone());
        Ok(client)
    }
}

/// A delivery record of one attempt.
fn delivery(
    event: u64,
    notice: &Notice,
    attempt: u32,
    status: Option<u16>,
    response: Option<String>,
) -> EventDelivery {
    EventDelivery {
        receiver: notice.receiver.to_owned(),
        attempt,
        status,
        body: notice.body.clone(),
        headers: notice.headers.clone(),
        response,
        event,
    }
}

/// The delivery task of one platform: delivers its queued events one after the other (so they
/// arrive in order) and ends when the queue is empty.
async fn deliver_queue(sim: Simulator, platform: String) {
    loop {
        let next = {
            let mut state = sim.lock();
            let outbox = state.outbox.platforms.entry(platform.clone()).or_default();
            match outbox.queue.front() {
                Some((event, notice)) => (*event, Arc::clone(notice)),
                None => {
                    outbox.sending = false;
                    return;
                }
            }
        };
        deliver(&sim, &platform, next.0, &next.1).await;
        if let Some(outbox) = sim.lock().outbox.platforms.get_mut(&platform) {
            outbox.queue.pop_front();
        }
    }
}

/// Delivers one event: attempts until the receiver answers 2xx or the attempts run out, waiting
/// the back-off between attempts, and records each attempt.
async fn deliver(sim: &Simulator, platform: &str, event: u64, notice: &Notice) {
    let (base, first_retry, attempts) = {
        let state = sim.lock();
        let outbox = &state.outbox;
        (
            outbox.receiver_base.clone().unwrap_or_default(),
            outbox.first_retry,
            outbox.attempts,
        )
    };
    let url = format!("{base}/{platform}/{}", notice.receiver);
    let client = sim.http_client();
    let mut gap = first_retry;
    for attempt in 1..=attempts {
        let (status, response) = match &client {
            Ok(client) => post(client, &url, notice).await,
            Err(_) => (None, None),
        };
        let delivered = status.is_some_and(|status| (200..300).contains(&status));
        sim.lock()
            .outbox
            .platforms
            .entry(platform.to_owned())
            .or_default()
            .record(delivery(event, notice, attempt, status, response));
        if delivered {
            return;
        }
        if attempt < attempts {
            tokio::time::sleep(gap).await;
            gap = gap.saturating_mul(2);
        }
    }
}

/// One POST of a notice: the receiver's status and answer, or nothing on a transport error.
async fn post(
    client: &reqwest::Client,
    url: &str,
    notice: &Notice,
) -> (Option<u16>, Option<String>) {
    let mut request = client
        .post(url)
        .header(CONTENT_TYPE, notice.content_type)
        .body(notice.body.clone());
    for (name, value) in &notice.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (Some(status), response.text().await.ok())
        }
        Err(_) => (None, None),
    }
}

/// HMAC-SHA256 of `message` keyed with `key` (RFC 2104), the raw 32 bytes.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so this cannot fail.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// A JSON object with its keys in this order, as a platform's documentation prints its payload
/// (values serialised as `serde_json` does).
pub(crate) fn ordered_json(fields: &[(&str, Value)]) -> String {
    let members: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}:{value}", Value::String((*name).to_owned())))
        .collect();
    format!("{{{}}}", members.join(","))
}

/// A random UUID, version 4 (RFC 9562 §5.4), lower-case.
pub(crate) fn uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

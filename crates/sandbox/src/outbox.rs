//! What the simulated platforms send to the app on their own (their notices: a user removed the
//! app, a webhook event) and what became of each delivery: the data behind the event sender in
//! `events`, kept in the simulator's state.
//!
//! It owns the shapes only: a [`Notice`] as a platform module builds it (already signed), the
//! per-platform queue and log, and the delivery settings. Sending, retrying and signing are
//! `events`'; the notice formats are each platform's. It names no platform.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// The first retry's delay by default: platforms retry over hours (Meta 36 h [M31], TikTok 72 h
/// [T24]); a sandbox compresses the schedule to seconds.
pub(crate) const DEFAULT_FIRST_RETRY: Duration = Duration::from_millis(250);

/// The most attempts per event by default (the first one included).
pub(crate) const DEFAULT_ATTEMPTS: u32 = 8;

/// The most delivery records kept per platform: the oldest are forgotten beyond it, so a sandbox
/// serving for days does not grow without bound.
pub(crate) const REMEMBERED_DELIVERIES: usize = 1_000;

/// One notice a platform sends to the app: an HTTP POST to one of the app's receivers, body and
/// signing headers final (a redelivery sends the same bytes).
#[derive(Clone, Debug)]
pub(crate) struct Notice {
    /// The receiver, the path segment after the platform's slug (`{base}/{slug}/{receiver}`).
    pub(crate) receiver: &'static str,
    /// The body's media type.
    pub(crate) content_type: &'static str,
    /// The raw body, exactly as signed.
    pub(crate) body: String,
    /// The signing headers (name, value).
    pub(crate) headers: Vec<(String, String)>,
}

/// One attempt to deliver one event to the app's receiver, as the tests observe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDelivery {
    /// The receiver, the path segment after the platform's slug (e.g. `deauthorize`, `webhooks`,
    /// `risc`): the request went to `{base}/{platform}/{receiver}`.
    pub receiver: String,
    /// The attempt's number, from 1 (a redelivery starts again at 1); 0 when no receiver was
    /// set, so the event was recorded but not sent.
    pub attempt: u32,
    /// The receiver's HTTP status; `None` for a transport error (or an event not sent).
    pub status: Option<u16>,
    /// The raw body sent.
    pub body: String,
    /// The signing headers sent (name, value).
    pub headers: Vec<(String, String)>,
    /// The receiver's answer body.
    pub response: Option<String>,
    /// The event this attempt delivers (a redelivery is a new event with the same bytes).
    pub(crate) event: u64,
}

/// One platform's outgoing events.
#[derive(Default)]
pub(crate) struct PlatformOutbox {
    /// Events waiting for delivery, oldest first; the front one is being delivered.
    pub(crate) queue: VecDeque<(u64, Arc<Notice>)>,
    /// Whether a delivery task is working through the queue.
    pub(crate) sending: bool,
    /// Every attempt so far, in order.
    pub(crate) deliveries: VecDeque<EventDelivery>,
    /// The last event sent, for a duplicate delivery.
    pub(crate) last: Option<Arc<Notice>>,
}

/// Where events go and how they are retried, and every platform's outgoing events.
pub(crate) struct Outbox {
    /// The app's receivers' base URL (no trailing slash); `None` records events without sending.
    pub(crate) receiver_base: Option<String>,
    pub(crate) first_retry: Duration,
    pub(crate) attempts: u32,
    /// The last event number handed out.
    pub(crate) last_event: u64,
    pub(crate) platforms: HashMap<String, PlatformOutbox>,
    /// The HTTP client every delivery and challenge shares, built on first use.
    pub(crate) client: Option<reqwest::Client>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            receiver_base: None,
            first_retry: DEFAULT_FIRST_RETRY,
            attempts: DEFAULT_ATTEMPTS,
            last_event: 0,
            platforms: HashMap::new(),
            client: None,
        }
    }
}

impl PlatformOutbox {
    /// Records an attempt, forgetting the oldest beyond [`REMEMBERED_DELIVERIES`].
    pub(crate) fn record(&mut self, delivery: EventDelivery) {
        if self.deliveries.len() >= REMEMBERED_DELIVERIES {
            self.deliveries.pop_front();
        }
        self.deliveries.push_back(delivery);
    }
}

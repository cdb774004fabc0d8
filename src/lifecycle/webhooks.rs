//! Webhook delivery from the outbox: each event is posted to `WEBHOOK_URL` with an HMAC-SHA256
//! signature over `{timestamp}.{body}`, retried with jittered exponential back-off until the receiver
//! answers 2xx, or given up on (a dead letter, counted by `webhook_dead_letters_total`) after
//! `max_attempts`. Events are claimed through the database, so several replicas deliver each event
//! once (at least once if a replica dies mid-delivery; receivers deduplicate by the delivery id).
//!
//! A claim covers its whole batch: it lasts `batch × post timeout + margin`, and no post starts
//! unless it can end before the claim does, so a slow receiver cannot make a claim lapse while its
//! events are still being posted (which would let another replica post them again). The same task
//! prunes delivered events older than the retention, in bounded deletes.
//!
//! Headers: `Growth-Engine-Event` (type), `Growth-Engine-Delivery` (event id),
//! `Growth-Engine-Signature: t=<unix seconds>,v1=<hex HMAC>`. A receiver recomputes the HMAC with
//! the shared secret over `t + "." + raw body`, compares in constant time, and rejects old timestamps.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use url::Url;

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::{OutboxEvent, Store, StoreError};

/// Attempts before an event becomes a dead letter (`WEBHOOK_MAX_ATTEMPTS` once settings carry it).
/// With the back-off capped, twelve attempts span more than a day.
pub(crate) const DEFAULT_MAX_ATTEMPTS: i32 = 12;
/// How long delivered events are kept (`WEBHOOK_RETENTION_DAYS` once settings carry it).
pub(crate) const DEFAULT_RETENTION: chrono::Duration = chrono::Duration::days(7);
/// Events claimed per round, and rounds per tick while batches come back full.
const BATCH: usize = 10;
const DRAIN_ROUNDS: usize = 5;
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack in a claim for the database writes around the posts.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);
/// How often delivered events are pruned, and how many rows one delete removes (at most
/// `PRUNE_ROUNDS` deletes per cleanup, so a huge backlog is worked off over several cleanups).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const PRUNE_BATCH: i64 = 1000;
const PRUNE_ROUNDS: usize = 50;

/// Signs `{timestamp}.{body}` with the secret; the hex digest.
pub fn sign(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac<Sha256>.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Posts outbox events to the receiver.
#[derive(Clone)]
pub struct WebhookDeliverer {
    store: Arc<dyn Store>,
    http: reqwest::Client,
    url: Url,
    secret: SecretString,
    clock: SharedClock,
    max_attempts: i32,
    retention: chrono::Duration,
    metrics: Option<Metrics>,
}

impl std::fmt::Debug for WebhookDeliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookDeliverer")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl WebhookDeliverer {
    /// A deliverer to `url`.
    pub fn new(
        store: Arc<dyn Store>,
        url: Url,
        secret: SecretString,
        clock: SharedClock,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            store,
            http,
            url,
            secret,
            clock,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retention: DEFAULT_RETENTION,
            metrics: None,
        })
    }

    /// Gives an event up after `max_attempts` failed posts (at least one).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX).max(1);
        self
    }

    /// Keeps delivered events for `retention`.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        // Beyond chrono's range (hundreds of millions of years) means "keep everything".
        self.retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        self
    }

    /// Counts dead letters in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Delivers until `shutdown` resolves, looking for due events every `interval`, and prunes
    /// delivered events every hour.
    pub async fn run(self, interval: Duration, shutdown: impl Future<Output = ()>) {
        let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
        let deliver = super::supervise::every(interval, shutdown.clone(), || self.deliver_tick());
        let cleanup = super::supervise::every(PRUNE_EVERY, shutdown, || async {
            if let Err(error) = self.prune().await {
                tracing::warn!(error = %error, "webhook outbox cleanup failed");
            }
        });
        futures::future::join(deliver, cleanup).await;
    }

    /// One delivery tick. A full batch means more may be waiting: a few more rounds, as many events
    /// per tick as one big claim would take, with each claim still covering its own posts.
    async fn deliver_tick(&self) {
        for _ in 0..DRAIN_ROUNDS {
            match self.deliver_due().await {
                Ok(delivered) if delivered == BATCH => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(error = %error, "webhook round failed");
                    break;
                }
            }
        }
    }

    /// Deletes delivered events older than the retention, in bounded batches; returns how many.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let before = self.clock.now() - self.retention;
        let mut pruned = 0;
        for _ in 0..PRUNE_ROUNDS {
            let deleted = self
                .store
                .prune_delivered_events(before, PRUNE_BATCH)
                .await?;
            pruned += deleted;
            if deleted < u64::try_from(PRUNE_BATCH).unwrap_or(u64::MAX) {
                break;
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, "pruned delivered webhook events");
        }
        Ok(pruned)
    }

    /// One round: claims due events and posts each; returns how many were delivered.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let claim = POST_TIMEOUT * u32::try_from(BATCH).unwrap_or(u32::MAX) + CLAIM_MARGIN;
        let now = self.clock.now();
        let lease_until = now + chrono::Duration::from_std(claim).unwrap_or(chrono::Duration::MAX);
        let started = tokio::time::Instant::now();
        let events = self
            .store
            .claim_events(now, lease_until, i64::try_from(BATCH).unwrap_or(1))
            .await?;
        let mut delivered = 0;
        for event in events {
            // A post that could outlive the claim is not started: the event is due again when the
            // claim ends, and no other replica can be posting it meanwhile.
            if started.elapsed() + POST_TIMEOUT > claim - CLAIM_MARGIN / 2 {
                break;
            }
            match self.post(&event).await {
                Ok(()) => {
                    self.store
                        .mark_event_delivered(event.id, self.clock.now())
                        .await?;
                    delivered += 1;
                }
                Err(reason) => self.failed(&event, &reason).await?,
            }
        }
        Ok(delivered)
    }

    /// Schedules a retry, or turns the event into a dead letter once it has had every attempt.
    async fn failed(&self, event: &OutboxEvent, reason: &str) -> Result<(), StoreError> {
        if event.attempts >= self.max_attempts {
            tracing::error!(event = %event.event_type, delivery = %event.id, attempts = event.attempts, %reason, "webhook delivery failed for the last time; the event is a dead letter");
            self.store
                .mark_event_dead(event.id, self.clock.now(), reason)
                .await?;
            if let Some(metrics) = &self.metrics {
                metrics.webhook_dead_lettered();
            }
            return Ok(());
        }
        let next = self.clock.now() + super::outcome::backoff(event.attempts, None);
        tracing::warn!(event = %event.event_type, delivery = %event.id, attempts = event.attempts, %reason, "webhook delivery failed; will retry");
        self.store.mark_event_failed(event.id, next, reason).await
    }

    async fn post(&self, event: &OutboxEvent) -> Result<(), String> {
        let body = serde_json::to_vec(&serde_json::json!({
            "id": event.id,
            "type": event.event_type,
            "created_at": event.created_at,
            "data": event.payload,
        }))
        .map_err(|e| e.to_string())?;
        let timestamp = self.clock.now().timestamp();
        let signature = sign(&self.secret, timestamp, &body);
        let response = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("growth-engine-event", &event.event_type)
            .header("growth-engine-delivery", event.id.to_string())
            .header(
                "growth-engine-signature",
                format!("t={timestamp},v1={signature}"),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timed out".to_owned()
                } else {
                    "connection failed".to_owned()
                }
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "receiver answered HTTP {}",
                response.status().as_u16()
            ))
        }
    }
}

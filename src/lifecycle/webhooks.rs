//! Webhook delivery from the outbox: each event is posted to `WEBHOOK_URL` with an HMAC-SHA256
//! signature over `{timestamp}.{body}`, retried with jittered exponential back-off until the receiver
//! answers 2xx. Events are claimed through the database, so several replicas deliver each event once
//! (at least once if a replica dies mid-delivery; receivers deduplicate by the delivery id).
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
use crate::store::{OutboxEvent, Store, StoreError};

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
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            store,
            http,
            url,
            secret,
            clock,
        })
    }

    /// Delivers until `shutdown` resolves, looking for due events every `interval`.
    pub async fn run(self, interval: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {
                    if let Err(error) = self.deliver_due().await {
                        tracing::warn!(error = %error, "webhook round failed");
                    }
                }
            }
        }
    }

    /// One round: claims due events and posts each; returns how many were delivered.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let events = self
            .store
            .claim_events(now, now + chrono::Duration::seconds(60), 50)
            .await?;
        let mut delivered = 0;
        for event in events {
            match self.post(&event).await {
                Ok(()) => {
                    self.store
                        .mark_event_delivered(event.id, self.clock.now())
                        .await?;
                    delivered += 1;
                }
                Err(reason) => {
                    let next = self.clock.now() + super::backoff(event.attempts, None);
                    tracing::warn!(event = %event.event_type, delivery = %event.id, attempts = event.attempts, %reason, "webhook delivery failed; will retry");
                    self.store
                        .mark_event_failed(event.id, next, &reason)
                        .await?;
                }
            }
        }
        Ok(delivered)
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

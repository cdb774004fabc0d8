//! The liveness probe and the health sweep, run by one background task in every replica.
//!
//! The probe checks each connected token once per `LIVENESS_CHECK_INTERVAL_SECONDS` with the
//! platform's identity call, so that a grant the merchant revoked at the platform is found within a
//! period instead of at the next use. Replicas coordinate through the database alone: a pass claims
//! the due rows with one statement that also moves their `next_check_at` a period ahead, so each row
//! is checked by one replica. A token the platform calls dead gets one forced refresh through the
//! lifecycle's single-flight path; a dead grant is then marked by the refresh's own classification
//! (`outcome.rs`), with its `connection.revoked`/`connection.expired` event. An outage only counts
//! in the metric: the refresher owns `refresh_failures`.
//!
//! The sweep sends the health events that time alone triggers (`connection.expiring`,
//! `connection.refresh_failing`), each recorded by a conditional update of the alert columns in the
//! event's transaction, so two replicas sweeping together send it once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use uuid::Uuid;

use super::events;
use super::health::{self, HealthSettings};
use super::shared::Core;
use super::tokens::Tokens;
use crate::domain::Connection;
use crate::error::OAuthError;
use crate::metrics::Metrics;
use crate::platforms::client::{Identity, PlatformClient};
use crate::platforms::error::PlatformError;
use crate::platforms::PlatformSpec;

/// How long a claim holds a row before another pass may take it (a check cut short by a crash or
/// a shutdown is taken up again after this, not a period later).
const CLAIM_HOLD: Duration = Duration::minutes(15);

/// Rows claimed or swept per statement.
const BATCH: i64 = 64;
/// The most batches one pass claims, so a backlog drains over several ticks.
const MAX_BATCHES: usize = 50;
/// How often the task runs a pass at most (the sweep's resolution).
pub const MAX_TICK: StdDuration = StdDuration::from_secs(60);

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Connections this replica claimed and checked.
    pub checked: usize,
    /// Tokens found working (directly, or after one forced refresh).
    pub alive: usize,
    /// Connections found dead (now REVOKED or EXPIRED).
    pub dead: usize,
    /// Checks that could not conclude (outage, refusal, no identity endpoint).
    pub inconclusive: usize,
    /// `connection.expiring` events sent.
    pub expiry_warnings: usize,
    /// `connection.refresh_failing` events sent.
    pub failing_alerts: usize,
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Alive,
    Renewed,
    Dead,
    StillDead,
    Refused,
    Unavailable,
    Skipped,
    /// The service began shutting down: the row's claim runs out and another pass takes it up.
    Interrupted,
}

impl Checked {
    fn label(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Renewed => "renewed",
            Self::Dead => "dead",
            Self::StillDead => "still_dead",
            Self::Refused => "refused",
            Self::Unavailable => "unavailable",
            Self::Skipped => "skipped",
            Self::Interrupted => "interrupted",
        }
    }
}

/// The probe and sweep. A cheap clone.
#[derive(Debug, Clone)]
pub struct Liveness {
    core: Core,
    tokens: Tokens,
    client: PlatformClient,
    metrics: Metrics,
    settings: Arc<HealthSettings>,
    concurrency: usize,
}

/// What the probe and sweep are built from.
#[derive(Debug)]
pub struct LivenessParts {
    /// Valid tokens to probe with (a due token is renewed first).
    pub tokens: Tokens,
    /// Makes the identity calls.
    pub client: PlatformClient,
    /// Counts each probe's outcome.
    pub metrics: Metrics,
    /// The period, the warning thresholds and the alert delay.
    pub settings: Arc<HealthSettings>,
    /// The most platform calls at once.
    pub concurrency: usize,
}

impl Liveness {
    /// A probe making at most `concurrency` platform calls at once.
    pub fn new(parts: LivenessParts) -> Self {
        Self {
            core: parts.tokens.core().clone(),
            tokens: parts.tokens,
            client: parts.client,
            metrics: parts.metrics,
            settings: parts.settings,
            concurrency: parts.concurrency.max(1),
        }
    }

    /// Runs a pass every `tick` until `shutdown` resolves.
    pub async fn run(self, tick: StdDuration, shutdown: impl Future<Output = ()>) {
        let this = &self;
        super::supervise::every(tick, shutdown, move || async move {
            match this.run_once().await {
                Ok(pass) if pass != Pass::default() => tracing::info!(?pass, "liveness pass"),
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "liveness pass failed"),
            }
        })
        .await;
    }

    /// One pass now: the checks due (claimed by this replica), then the health sweep.
    pub async fn run_once(&self) -> Result<Pass, OAuthError> {
        let mut pass = Pass::default();
        let interval = self.settings.interval();
        for _ in 0..MAX_BATCHES {
            let now = self.core.clock().now();
            // The claim holds the rows briefly; each finished check sets its next one a period on.
            let claimed = self
                .core
                .store()
                .claim_liveness_checks(now, now + CLAIM_HOLD.min(interval), BATCH)
                .await?;
            let full = claimed.len() >= usize::try_from(BATCH).unwrap_or(64);
            let outcomes: Vec<Checked> = futures::stream::iter(claimed)
                .map(|connection| self.check(connection))
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            for outcome in outcomes {
                pass.checked += 1;
                match outcome {
                    Checked::Alive | Checked::Renewed => pass.alive += 1,
                    Checked::Dead => pass.dead += 1,
                    _ => pass.inconclusive += 1,
                }
            }
            if !full {
                break;
            }
        }
        self.sweep(&mut pass).await?;
        Ok(pass)
    }

    /// Checks one claimed connection and counts the outcome.
    async fn check(&self, connection: Connection) -> Checked {
        let platform = connection.platform.clone();
        let outcome = match self.core.catalog().get(&platform).cloned() {
            Some(spec) => self.check_with(&spec, &connection).await,
            None => Checked::Skipped,
        };
        if outcome != Checked::Interrupted {
            self.finish(&connection, outcome).await;
        }
        self.metrics
            .liveness_probe(platform.as_str(), outcome.label());
        if matches!(outcome, Checked::Dead | Checked::StillDead) {
            tracing::warn!(platform = %platform, store_id = %connection.store_id, outcome = outcome.label(), "the liveness probe found a dead token");
        }
        outcome
    }

    async fn check_with(&self, spec: &PlatformSpec, connection: &Connection) -> Checked {
        // A token due for renewal is renewed first, by the one single-flight path: a dead grant
        // may show right here, classified by the refresh.
        let token = match self
            .tokens
            .access_token(spec, &connection.store_id, false)
            .await
        {
            Ok(token) => token,
            Err(error) => return Self::failed(&error),
        };
        match self.client.probe_identity(spec, &token.access_token).await {
            Identity::Alive => Checked::Alive,
            Identity::Dead => self.after_dead_token(spec, connection).await,
            Identity::Refused(detail) => {
                tracing::info!(platform = %spec.id, store_id = %connection.store_id, detail = %detail, "the identity call was refused; not a dead token");
                Checked::Refused
            }
            Identity::Unavailable(_) => Checked::Unavailable,
            Identity::Unsupported => Checked::Skipped,
        }
    }

    /// The platform called the token dead: one forced refresh, whose own classification marks a
    /// dead grant; a renewed token is checked once more.
    async fn after_dead_token(&self, spec: &PlatformSpec, connection: &Connection) -> Checked {
        match self
            .tokens
            .access_token(spec, &connection.store_id, true)
            .await
        {
            Ok(token) => match self.client.probe_identity(spec, &token.access_token).await {
                Identity::Alive => Checked::Renewed,
                Identity::Dead => Checked::StillDead,
                Identity::Unavailable(_) => Checked::Unavailable,
                Identity::Refused(_) | Identity::Unsupported => Checked::Refused,
            },
            Err(error) => Self::failed(&error),
        }
    }

    /// Records the finished check: when the token was found working, and the next check a period on.
    async fn finish(&self, connection: &Connection, outcome: Checked) {
        let now = self.core.clock().now();
        let alive = matches!(outcome, Checked::Alive | Checked::Renewed);
        if let Err(error) = self
            .core
            .store()
            .record_liveness_check(
                connection.id,
                alive.then_some(now),
                now + self.settings.interval(),
            )
            .await
        {
            tracing::warn!(error = %error, "could not record a liveness check");
        }
        if alive {
            // `last_checked_at` is part of the listed health.
            self.core.changed(&connection.store_id).await;
        }
    }

    fn failed(error: &OAuthError) -> Checked {
        match error {
            // The refresh marked the connection (REVOKED, EXPIRED or ERROR) and sent its event.
            OAuthError::NotUsable(_) => Checked::Dead,
            OAuthError::Platform(PlatformError::Unavailable { .. }) => Checked::Unavailable,
            OAuthError::ShuttingDown => Checked::Interrupted,
            _ => Checked::Refused,
        }
    }

    /// Sends the expiry warnings and refresh-failing alerts that are due, once each.
    async fn sweep(&self, pass: &mut Pass) -> Result<(), OAuthError> {
        let settings = self.settings.clone();
        let now = self.core.clock().now();
        let failing_alert =
            Duration::from_std(settings.failing_alert).unwrap_or(Duration::hours(1));
        let mut after = Uuid::nil();
        loop {
            let rows = self
                .core
                .store()
                .health_sweep_candidates(
                    now - failing_alert,
                    now + settings.warning_window(),
                    after,
                    BATCH,
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let full = rows.len() >= usize::try_from(BATCH).unwrap_or(64);
            for row in &rows {
                if self.warn_expiry(row, &settings.warning_days, now).await? {
                    pass.expiry_warnings += 1;
                }
                if self.alert_failing(row, now - failing_alert, now).await? {
                    pass.failing_alerts += 1;
                }
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    async fn warn_expiry(
        &self,
        row: &Connection,
        thresholds: &[u32],
        now: DateTime<Utc>,
    ) -> Result<bool, OAuthError> {
        let rule = self.core.reconnect_rule(row);
        let Some(by) = health::reconnect_by(rule, row) else {
            return Ok(false);
        };
        let by = health::episode_end(by, row.expiry_warned_for);
        let Some(days) = health::expiry_warning(
            by,
            thresholds,
            now,
            row.expiry_warned_for,
            row.expiry_warned_days,
        ) else {
            return Ok(false);
        };
        let event = events::expiring(row, days, by, now);
        let sent = self
            .core
            .store()
            .mark_expiry_warned(row.id, by, i32::try_from(days).unwrap_or(i32::MAX), &event)
            .await?;
        if sent {
            tracing::info!(platform = %row.platform, store_id = %row.store_id, days, reconnect_by = %by, "connection.expiring sent");
        }
        Ok(sent)
    }

    async fn alert_failing(
        &self,
        row: &Connection,
        failing_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, OAuthError> {
        let Some(since) = row.failing_since else {
            return Ok(false);
        };
        if since > failing_before || row.failing_alerted_at.is_some() {
            return Ok(false);
        }
        let event = events::refresh_failing(row, since, now);
        let sent = self
            .core
            .store()
            .mark_failing_alerted(row.id, since, now, &event)
            .await?;
        if sent {
            tracing::warn!(platform = %row.platform, store_id = %row.store_id, failing_since = %since, "connection.refresh_failing sent");
        }
        Ok(sent)
    }
}

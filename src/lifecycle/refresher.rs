//! The background refresher that runs in every replica: it renews connections before they expire.
//!
//! Replicas coordinate through the database alone: each round reads the due rows from the partial
//! index on `next_refresh_at` (so its cost follows the due rows, not the table), and a connection is
//! refreshed only by whoever takes its lease. Failures push `next_refresh_at` out with jittered
//! exponential back-off, so a failing connection cools down and cannot starve the others.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

use super::refresh::Refresh;
use crate::domain::{Connection, ConnectionStatus};
use crate::error::OAuthError;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Due rows read.
    pub due: usize,
    /// Refreshed successfully.
    pub refreshed: usize,
    /// Failed (transiently or for good).
    pub failed: usize,
    /// Skipped because another replica holds the lease.
    pub skipped: usize,
}

/// The refresher's loop.
#[derive(Debug, Clone)]
pub struct Refresher {
    refresh: Refresh,
    concurrency: usize,
    interval: Duration,
}

impl Refresher {
    /// A refresher that runs a round every `interval` with at most `concurrency` platform calls at once.
    pub fn new(refresh: Refresh, concurrency: usize, interval: Duration) -> Self {
        Self {
            refresh,
            concurrency: concurrency.max(1),
            interval,
        }
    }

    /// Runs rounds until `shutdown` resolves. A round that found a full batch is followed at once by
    /// another (up to [`MAX_ROUNDS_PER_TICK`]), so a backlog drains at the platforms' pace rather
    /// than one batch per interval.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        super::supervise::every(self.interval, shutdown, || self.tick()).await;
    }

    /// One tick: rounds until one finds less than a full batch (or fails).
    async fn tick(&self) {
        for _ in 0..MAX_ROUNDS_PER_TICK {
            match self.run_once().await {
                Ok(round) => {
                    if round.due > 0 {
                        tracing::info!(?round, "refresher round");
                    }
                    if round.due < self.batch() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "refresher round failed");
                    break;
                }
            }
        }
    }

    fn batch(&self) -> usize {
        self.concurrency * 8
    }

    /// One round: every due connection, at most `concurrency` at a time. Rows parked as ERROR
    /// because their key was unknown come back first once the key is known.
    pub async fn run_once(&self) -> Result<Round, OAuthError> {
        self.refresh.heal_unknown_keys().await?;
        let core = self.refresh.core();
        let now = core.clock().now();
        let limit = i64::try_from(self.batch()).unwrap_or(64);
        let due = core.store().due_for_refresh(now, limit).await?;
        let mut round = Round {
            due: due.len(),
            ..Round::default()
        };
        let outcomes: Vec<Outcome> = futures::stream::iter(due)
            .map(|connection| self.refresh_one(connection))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for outcome in outcomes {
            match outcome {
                Outcome::Refreshed => round.refreshed += 1,
                Outcome::Failed => round.failed += 1,
                Outcome::Skipped => round.skipped += 1,
            }
        }
        Ok(round)
    }

    async fn refresh_one(&self, connection: Connection) -> Outcome {
        let refresh = &self.refresh;
        let store = refresh.core().store();
        let owner = refresh.lease_owner("refresher");
        let leased = match refresh.take_lease(connection.id, &owner).await {
            Ok(Some(leased)) => leased,
            // Another replica holds it.
            Ok(None) => return Outcome::Skipped,
            Err(OAuthError::ShuttingDown) => return Outcome::Skipped,
            Err(error) => {
                tracing::warn!(error = %error, "refresher could not take a lease");
                return Outcome::Failed;
            }
        };
        // Someone refreshed it between the scan and the lease.
        if leased.version != connection.version {
            let _ = store.release_refresh_lease(leased.id, &owner).await;
            return Outcome::Skipped;
        }
        let Some(spec) = refresh.core().catalog().get(&leased.platform).cloned() else {
            self.park_unconfigured(leased, &owner).await;
            return Outcome::Failed;
        };
        // A renewed set another process could not store comes first.
        match refresh.settle_recovery(&spec, leased.clone(), &owner).await {
            Ok(Some(_)) => return Outcome::Refreshed,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %error, "a recovery record could not be applied yet");
                let _ = store.release_refresh_lease(leased.id, &owner).await;
                return Outcome::Failed;
            }
        }
        let failures_before = leased.refresh_failures;
        let (store_id, platform) = (leased.store_id.clone(), leased.platform.clone());
        // In the service's tracked task set, so that shutdown waits for it.
        match refresh.refresh_leased(&spec, leased, owner).await {
            // A transient failure still hands out the valid old token: count it as failed.
            Ok(_) => match store.get_connection(&store_id, &platform).await {
                Ok(Some(row)) if row.refresh_failures > failures_before => Outcome::Failed,
                _ => Outcome::Refreshed,
            },
            _ => Outcome::Failed,
        }
    }

    /// The operator removed the platform; it may come back, so look again later rather than
    /// letting the row block the queue.
    async fn park_unconfigured(&self, leased: Connection, owner: &str) {
        let next = self.refresh.core().clock().now() + chrono::Duration::hours(6);
        let reason = format!("platform {} is no longer configured", leased.platform);
        tracing::warn!(platform = %leased.platform, store_id = %leased.store_id, "{reason}");
        let _ = self
            .refresh
            .park(
                leased,
                owner,
                ConnectionStatus::Connected,
                Some(next),
                &reason,
            )
            .await;
    }
}

enum Outcome {
    Refreshed,
    Failed,
    Skipped,
}

/// The most rounds run back to back when every round finds a full batch.
pub(crate) const MAX_ROUNDS_PER_TICK: usize = 50;

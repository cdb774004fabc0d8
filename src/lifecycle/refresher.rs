//! The background refresher that runs in every replica: it renews connections before they expire.
//!
//! Replicas coordinate through the database alone: each round reads the due rows from the partial
//! index on `next_refresh_at` (so its cost follows the due rows, not the table), and a connection is
//! refreshed only by whoever takes its lease. Failures push `next_refresh_at` out with jittered
//! exponential back-off, so a failing connection cools down and cannot starve the others.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use uuid::Uuid;

use super::Connections;
use crate::oauth::error::OAuthError;

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
    connections: Connections,
    concurrency: usize,
    interval: Duration,
}

impl Refresher {
    /// A refresher that runs a round every `interval` with at most `concurrency` platform calls at once.
    pub fn new(connections: Connections, concurrency: usize, interval: Duration) -> Self {
        Self {
            connections,
            concurrency: concurrency.max(1),
            interval,
        }
    }

    /// Runs rounds until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => {
                    match self.run_once().await {
                        Ok(round) if round.due > 0 => tracing::info!(?round, "refresher round"),
                        Ok(_) => {}
                        Err(error) => tracing::warn!(error = %error, "refresher round failed"),
                    }
                }
            }
        }
    }

    /// One round: every due connection, at most `concurrency` at a time.
    pub async fn run_once(&self) -> Result<Round, OAuthError> {
        let now = self.connections.clock.now();
        let limit = i64::try_from(self.concurrency * 8).unwrap_or(64);
        let due = self.connections.store.due_for_refresh(now, limit).await?;
        let mut round = Round {
            due: due.len(),
            ..Round::default()
        };
        let outcomes: Vec<Option<bool>> = futures::stream::iter(due)
            .map(|connection| async move {
                let spec = self.connections.catalog.get(&connection.platform)?.clone();
                let owner = format!("{}:refresher:{}", self.connections.replica, Uuid::new_v4());
                let now = self.connections.clock.now();
                let until = now + chrono::Duration::seconds(30);
                let leased = self
                    .connections
                    .store
                    .acquire_refresh_lease(connection.id, &owner, now, until)
                    .await
                    .ok()
                    .flatten()?;
                // Someone refreshed it between the scan and the lease.
                if leased.version != connection.version {
                    let _ = self
                        .connections
                        .store
                        .release_refresh_lease(leased.id, &owner)
                        .await;
                    return None;
                }
                let result = self
                    .connections
                    .refresh_holding_lease(&spec, leased, &owner)
                    .await;
                Some(result.is_ok())
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for outcome in outcomes {
            match outcome {
                Some(true) => round.refreshed += 1,
                Some(false) => round.failed += 1,
                None => round.skipped += 1,
            }
        }
        Ok(round)
    }
}

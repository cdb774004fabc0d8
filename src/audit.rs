//! The audit trail: who did what to which store's connection, and how it ended.
//!
//! Owns the [`AuditLog`] service that records [`AuditEvent`]s (token hand-outs, forced refreshes,
//! connects, disconnects, page actions, key changes, and, once wired by their owners, background
//! refreshes and proxied calls), the writer task that stores them, and the pruning of rows older
//! than `AUDIT_RETENTION_DAYS`. The rows live in the store (`audit` table); reading them is the
//! edge's job (`GET /api/v1/audit`, the page's "Recent activity").
//!
//! Recording is best-effort and off the request path: [`AuditLog::record`] puts the event on a
//! bounded channel and returns; one writer task stores what is queued in one multi-row insert per
//! batch (up to [`BATCH`] rows). An idle writer writes an event as soon as it comes; under load it
//! writes at most once per [`LINGER`] (sooner when a batch is full), so a busy replica makes a few
//! writes a second whatever its rate of calls, and an event reaches the table within about
//! [`LINGER`] plus one write. When the channel is full the event is
//! dropped and counted (`growth_engine_audit_dropped`); a failed write is logged and counted
//! (`growth_engine_audit_write_failures`). Neither ever fails the request.
//!
//! Under normal operation the trail is complete: a graceful shutdown calls [`AuditLog::flush`],
//! which returns once every event recorded before it is stored. What a crash (or a kill) loses is
//! what sits in memory: the queued events and the batch being written, i.e. the last moments'
//! events (at most [`CHANNEL_CAPACITY`] plus one batch).
//!
//! An event never carries a token, code, state, secret or key: its fields are names, ids, and short
//! outcome codes chosen by the caller.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::domain::StoreId;
use crate::metrics::Metrics;
use crate::store::{AuditRow, Store, StoreError};

/// How many events wait for the writer before new ones are dropped.
pub const CHANNEL_CAPACITY: usize = 4096;

/// The most events one write stores (9 bound values each: far below either backend's limit).
pub const BATCH: usize = 500;

/// Under load, the least time between the starts of two writes: what a batch waits to fill.
pub const LINGER: Duration = Duration::from_millis(100);

/// The most rows one prune statement deletes, so it never holds a long transaction.
const PRUNE_BATCH: i64 = 1000;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A backend service, by its API key's name (`env:1` for a key from `API_KEYS`).
    ApiKey(String),
    /// The merchant's user on the connections page (or finishing a consent screen).
    PageUser(String),
    /// A task of the service itself (`refresher`, `cli`).
    System(String),
    /// A platform's own notice (the platform's slug): a removal, a data deletion request.
    Platform(String),
}

impl Actor {
    fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey(_) => "api_key",
            Self::PageUser(_) => "page_user",
            Self::System(_) => "system",
            Self::Platform(_) => "platform",
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::ApiKey(name)
            | Self::PageUser(name)
            | Self::System(name)
            | Self::Platform(name) => name,
        }
    }
}

/// One thing that happened. Build it with [`AuditEvent::new`] and the `with_*` methods.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    actor: Actor,
    operation: &'static str,
    outcome: String,
    store_id: Option<String>,
    platform: Option<String>,
    detail: Option<String>,
}

impl AuditEvent {
    /// `actor` did `operation` (`connect`, `disconnect`, `token`, `refresh`, `proxy`,
    /// `selection`, `api_key.create`, `api_key.revoke`) with `outcome` (`success`, `started`,
    /// `failure`).
    pub fn new(actor: Actor, operation: &'static str, outcome: impl Into<String>) -> Self {
        Self {
            actor,
            operation,
            outcome: outcome.into(),
            store_id: None,
            platform: None,
            detail: None,
        }
    }

    /// The store concerned.
    pub(crate) fn with_store(mut self, store_id: &StoreId) -> Self {
        self.store_id = Some(store_id.to_string());
        self
    }

    /// The platform concerned.
    pub(crate) fn with_platform(mut self, platform: &str) -> Self {
        self.platform = Some(platform.to_owned());
        self
    }

    /// A short, non-secret detail: an error code, a revocation outcome, a status code, a key name.
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        let mut detail: String = detail.into();
        // At a character boundary: `truncate` panics inside a multi-byte character.
        let mut end = detail.len().min(200);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
        self.detail = Some(detail);
        self
    }

    /// The same event, ended in `failure` with `code` (a stable error code) as its detail.
    pub fn failed(self, code: &str) -> Self {
        Self {
            outcome: "failure".to_owned(),
            ..self
        }
        .with_detail(code)
    }

    /// The row this event becomes at `at`.
    pub(crate) fn into_row(self, at: DateTime<Utc>) -> AuditRow {
        AuditRow {
            id: Uuid::now_v7(),
            at,
            actor_kind: self.actor.kind().to_owned(),
            actor: self.actor.name().to_owned(),
            store_id: self.store_id,
            platform: self.platform,
            operation: self.operation.to_owned(),
            outcome: self.outcome,
            detail: self.detail,
        }
    }
}

/// What the writer is sent: rows, or a request to say when everything before it is stored.
enum Queued {
    Row(AuditRow),
    Flush(oneshot::Sender<()>),
}

/// Records audit events; a cheap-clone handle.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Queued>,
    store: Arc<dyn Store>,
    clock: SharedClock,
    metrics: Metrics,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

impl AuditLog {
    /// The log and its writer task (spawned here; it ends when the last handle is dropped).
    pub fn start(store: Arc<dyn Store>, clock: SharedClock, metrics: Metrics) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(write_events(rx, store.clone(), metrics.clone()));
        Self {
            tx,
            store,
            clock,
            metrics,
        }
    }

    /// Records an event, stamped now. Never waits and never fails: a full queue drops the event
    /// (counted and logged).
    pub fn record(&self, event: AuditEvent) {
        let row = event.into_row(self.clock.now());
        if let Err(error) = self.tx.try_send(Queued::Row(row)) {
            self.metrics.audit_dropped();
            let operation = match &error {
                mpsc::error::TrySendError::Full(Queued::Row(row))
                | mpsc::error::TrySendError::Closed(Queued::Row(row)) => row.operation.clone(),
                _ => String::new(),
            };
            tracing::warn!(%operation, "audit queue full: event dropped");
        }
    }

    /// Waits (up to `grace`) until every event recorded before this call is stored (or its write
    /// failed, which is logged). For shutdown; `false` when the grace ran out.
    pub async fn flush(&self, grace: Duration) -> bool {
        let (done, stored) = oneshot::channel();
        let flushed =
            async { self.tx.send(Queued::Flush(done)).await.is_ok() && stored.await.is_ok() };
        let finished = tokio::time::timeout(grace, flushed).await.unwrap_or(false);
        if !finished {
            tracing::error!(
                "the audit trail could not be flushed at shutdown: its last events may be missing"
            );
        }
        finished
    }

    /// Deletes rows older than `retention`, in bounded batches; returns how many.
    pub async fn prune(&self, retention: chrono::Duration) -> Result<u64, StoreError> {
        let before = self.clock.now() - retention;
        let mut total = 0;
        loop {
            let done = self.store.prune_audit(before, PRUNE_BATCH).await?;
            total += done;
            if done < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Prunes every `interval` until `shutdown` resolves.
    pub(crate) async fn run_pruner(
        self,
        retention: chrono::Duration,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            match self.prune(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned old audit rows"),
                Err(error) => tracing::warn!(error = %error, "could not prune the audit trail"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Where a page of the trail stops: the `(at, id)` of its last row, as opaque URL-safe base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    at: DateTime<Utc>,
    id: Uuid,
}

impl Cursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            self.id
        ))
    }

    /// Reads the text form back; `None` for anything this service did not hand out.
    pub fn decode(text: &str) -> Option<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (at, id) = text.split_once('|')?;
        Some(Self {
            at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            id: id.parse().ok()?,
        })
    }
}

/// A page of a store's trail, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The rows.
    pub rows: Vec<AuditRow>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

impl AuditLog {
    /// Up to `limit` of a store's rows at or after `since`, newest first, after `cursor`.
    pub async fn page(
        &self,
        store_id: &StoreId,
        since: DateTime<Utc>,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let asked = i64::try_from(limit).unwrap_or(200);
        let mut rows = self
            .store
            .list_audit(
                store_id,
                since,
                cursor.map(|c| (c.at, c.id)),
                asked.saturating_add(1),
            )
            .await?;
        // One row more than asked says whether another page exists.
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = rows.last().filter(|_| more).map(|row| Cursor {
            at: row.at,
            id: row.id,
        });
        Ok(Page { rows, next })
    }
}

/// The writer task: stores what is queued, one multi-row insert per batch, until every sender is
/// gone; answers a flush once everything queued before it is written.
async fn write_events(mut rx: mpsc::Receiver<Queued>, store: Arc<dyn Store>, metrics: Metrics) {
    let mut queued = Vec::with_capacity(BATCH);
    let mut rows = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    // When the last write started; an event arriving within LINGER of it waits for company.
    let mut last_write: Option<tokio::time::Instant> = None;
    while rx.recv_many(&mut queued, BATCH).await > 0 {
        if let Some(fill_until) = last_write.map(|at| at + LINGER) {
            let flushing = |queued: &[Queued]| queued.iter().any(|q| matches!(q, Queued::Flush(_)));
            while queued.len() < BATCH && !flushing(&queued) {
                let room = BATCH - queued.len();
                match tokio::time::timeout_at(fill_until, rx.recv_many(&mut queued, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        for item in queued.drain(..) {
            match item {
                Queued::Row(row) => rows.push(row),
                Queued::Flush(done) => flushes.push(done),
            }
        }
        if !rows.is_empty() {
            last_write = Some(tokio::time::Instant::now());
            if let Err(error) = store.insert_audit(&rows).await {
                metrics.audit_write_failed(rows.len() as u64);
                tracing::warn!(error = %error, rows = rows.len(), "could not write audit rows");
            }
            rows.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

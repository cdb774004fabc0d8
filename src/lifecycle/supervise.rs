//! Supervision of the background tasks (refresher, webhook sender, recovery writer): a task that
//! panics is logged, counted in `background_task_panics_total{task}` and started again after a short
//! pause, so one bad round cannot silently stop token renewal for good.
//!
//! This module owns the restart loop and [`every`], the periodic loop most tasks run their rounds
//! in; each task owns its own work and its shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// The pause before a panicked task is started again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Runs the task `start` makes, and starts a new one each time it panics. Ends when a task returns
/// normally (its shutdown signal) or is cancelled.
pub(crate) fn supervise<F, Fut>(name: &'static str, metrics: Metrics, start: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(start()).await {
                Ok(()) => return,
                Err(error) if error.is_panic() => {
                    let panic = error.into_panic();
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-text panic".into());
                    metrics.background_task_panic(name);
                    tracing::error!(task = name, panic = %message, "a background task panicked; restarting it");
                    tokio::time::sleep(RESTART_PAUSE).await;
                }
                Err(_) => return,
            }
        }
    })
}

/// Runs `round` every `period` (the first at once) until `stop`; a round in progress finishes, and
/// a round longer than the period delays the next tick rather than bunching the missed ones.
pub(crate) async fn every<Round: Future<Output = ()>>(
    period: Duration,
    stop: impl Future<Output = ()>,
    mut round: impl FnMut() -> Round,
) {
    tokio::pin!(stop);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = ticker.tick() => round().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_counted_and_restarted_until_it_returns() {
        let metrics = Metrics::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let handle = supervise("flaky", metrics.clone(), move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("boom");
                }
            }
        });
        handle.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let text = metrics.render();
        assert!(
            text.contains("growth_engine_background_task_panics_total{task=\"flaky\"} 2"),
            "{text}"
        );
    }
}

//! The binary's commands, kept out of `main` so that they are plain functions.

use anyhow::Context;

use crate::app::{self, Application, Services};
use crate::clock::SystemClock;
use crate::config::Settings;

/// Sets up tracing: JSON in production (or `LOG_FORMAT=json`), readable text otherwise; `RUST_LOG`
/// filters (default `info`).
pub fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("LOG_FORMAT")
        .map(|v| v.eq_ignore_ascii_case("json"))
        .unwrap_or(settings.is_production());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `serve`.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let api_url = settings.api_url.clone();
    let application = Application::build(settings)
        .await
        .context("starting the service")?;
    tracing::info!(port = application.port(), %api_url, "growth-engine listening");
    if application.services().sandbox.is_some() {
        tracing::info!("sandbox platforms enabled: unconfigured platforms are simulated under {api_url}sandbox/");
    }
    application.run_until(app::shutdown_signal()).await?;
    Ok(())
}

/// `migrate`.
pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = crate::store::connect(&settings.database).await?;
    store.migrate().await.context("applying migrations")?;
    println!("migrations applied ({})", store.backend());
    Ok(())
}

/// `rotate-keys`: re-seals, in batches, every row sealed with an old key.
pub async fn rotate_keys(settings: Settings) -> anyhow::Result<()> {
    let services = Services::build(settings, std::sync::Arc::new(SystemClock)).await?;
    services
        .store
        .migrate()
        .await
        .context("applying migrations")?;
    let mut total = 0;
    loop {
        let done = services.connections.reseal_batch(500).await?;
        total += done;
        if done == 0 {
            break;
        }
    }
    println!(
        "re-encrypted {total} connection(s) with key {}",
        services.keyring.current_key_id()
    );
    Ok(())
}

/// `check-config`: the settings, secrets masked.
pub fn check_config(settings: &Settings) -> anyhow::Result<()> {
    println!("configuration is valid");
    for (name, value) in settings.summary() {
        println!("  {name:<24} {value}");
    }
    Ok(())
}

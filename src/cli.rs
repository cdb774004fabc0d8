//! The binary's commands, kept out of `main` so that they are plain functions.

use anyhow::Context;

use secrecy::ExposeSecret;

use crate::access;
use crate::app::{self, Application, Services};
use crate::audit::{Actor, AuditEvent};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::{StoreId, UserId};
use crate::links::{DashboardLinks, LINK_MAX_MINUTES};
use crate::store::ApiKeyRecord;

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

/// Logs, once, each setting that works but is probably not what the operator meant.
pub(crate) fn log_warnings(settings: &Settings) {
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
}

/// `serve`.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    log_warnings(&settings);
    let api_url = settings.api_url.clone();
    let application = Application::build(settings)
        .await
        .context("starting the service")?;
    tracing::info!(port = application.port(), %api_url, "growth-engine listening");
    #[cfg(feature = "sandbox")]
    if application.services().sandbox.is_some() {
        tracing::info!("sandbox platforms enabled: unconfigured platforms are simulated under {api_url}sandbox/");
    }
    // Only on a pure development setup (sandbox on, no dashboard secret of the operator's own):
    // once real secrets are configured, a live link in the log would be a credential in the log.
    let settings = &application.services().settings;
    if !settings.is_production() && settings.sandbox && !settings.dashboard_secret_configured() {
        log_demo_link(application.services());
    }
    application.run_until(app::shutdown_signal()).await?;
    Ok(())
}

/// `migrate`.
pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = app::connect_store(&settings.database, settings.statement_timeout).await?;
    store.migrate().await.context("applying migrations")?;
    println!("migrations applied ({})", store.backend());
    Ok(())
}

/// `rotate-keys`: re-seals, in pages, every row sealed with an old key, going past rows it cannot
/// open, and prints what it did: re-sealed, already current, and unreadable rows by key id.
pub async fn rotate_keys(settings: Settings) -> anyhow::Result<()> {
    let services = Services::build(settings, std::sync::Arc::new(SystemClock)).await?;
    services
        .store
        .migrate()
        .await
        .context("applying migrations")?;
    let report = services.grants.reseal_all(500).await?;
    println!(
        "re-encrypted {} connection(s) with key {}; {} already current",
        report.resealed,
        services.keyring.current_key_id(),
        report.already_current
    );
    for (key_id, count) in &report.unreadable {
        println!(
            "  unreadable: {count} connection(s) sealed with key {key_id}, which these settings cannot open (add it to TOKEN_ENCRYPTION_OLD_KEYS)"
        );
    }
    Ok(())
}

/// `check-config`: the settings, secrets masked; and, when the database answers, the key ids it
/// holds tokens under that these settings cannot open (a key rollout not finished here).
pub async fn check_config(settings: &Settings) -> anyhow::Result<()> {
    log_warnings(settings);
    println!("configuration is valid");
    for (name, value) in settings.summary() {
        println!("  {name:<24} {value}");
    }
    match unknown_key_ids(settings).await {
        Ok(unknown) if unknown.is_empty() => {
            println!("every key id in the database can be opened with these settings");
        }
        Ok(unknown) => {
            for (key_id, count) in unknown {
                println!("  key {key_id} sealed {count} connection(s) but is not in TOKEN_ENCRYPTION_KEY or TOKEN_ENCRYPTION_OLD_KEYS");
            }
        }
        Err(error) => println!("  (database not checked for key ids: {error})"),
    }
    Ok(())
}

async fn unknown_key_ids(settings: &Settings) -> anyhow::Result<Vec<(String, i64)>> {
    // Never create the development key file from a check.
    if !matches!(settings.keys, crate::config::KeySettings::Configured { .. }) {
        anyhow::bail!("TOKEN_ENCRYPTION_KEY is not set");
    }
    let keyring = app::load_keyring(&settings.keys)?;
    let store = app::connect_store(&settings.database, settings.statement_timeout).await?;
    let counts = tokio::time::timeout(std::time::Duration::from_secs(5), store.key_id_counts())
        .await
        .context("the database did not answer")??;
    Ok(counts
        .into_iter()
        .filter(|(id, _)| !keyring.knows(id))
        .collect())
}

/// `dashboard-link`: prints a link that opens the store's connections page (valid `minutes`).
pub fn dashboard_link(
    settings: Settings,
    store_id: &str,
    user_id: &str,
    minutes: i64,
) -> anyhow::Result<()> {
    let store_id = StoreId::parse(store_id).context("--store-id")?;
    let user_id = UserId::parse(user_id).context("--user-id")?;
    let keyring = app::load_keyring(&settings.keys)?;
    let links =
        DashboardLinks::from_settings(&settings, &keyring, std::sync::Arc::new(SystemClock));
    let link = links.mint_link(&store_id, &user_id, minutes)?;
    println!("{link}");
    Ok(())
}

/// A command line the operator must fix (an invalid name or scope): `main` exits with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Opens and migrates the store for the `api-key` commands.
async fn key_store(settings: &Settings) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
    let store = app::connect_store(&settings.database, settings.statement_timeout).await?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// Writes a key change to the audit trail, synchronously (the command exits right after).
async fn audit_key_change(
    store: &dyn crate::store::Store,
    operation: &'static str,
    name: &str,
    detail: String,
) -> anyhow::Result<()> {
    let row = AuditEvent::new(Actor::System("cli".into()), operation, "success")
        .with_detail(format!("key {name}: {detail}"))
        .into_row(chrono::Utc::now());
    store
        .insert_audit(&[row])
        .await
        .context("recording the change in the audit trail")
}

/// `api-key create`: stores a new key's hash and prints the key, once, on stdout. With `stores`,
/// the key acts only for those stores; without, for every store.
pub async fn api_key_create(
    settings: Settings,
    name: &str,
    scopes: &str,
    stores: Option<&str>,
) -> anyhow::Result<()> {
    if !access::valid_key_name(name) {
        return Err(UsageError(format!(
            "--name {name:?}: use 1 to 64 characters of a-z, 0-9, '_' and '-'"
        ))
        .into());
    }
    let scopes = access::parse_scopes(scopes, &app::catalog(&settings).slugs())
        .map_err(|e| UsageError(format!("--scopes: {e}")))?;
    let stores = stores
        .map(access::parse_stores)
        .transpose()
        .map_err(|e| UsageError(format!("--stores: {e}")))?;
    let store = key_store(&settings).await?;
    let key = access::generate_key();
    let record = ApiKeyRecord {
        id: uuid::Uuid::now_v7(),
        name: name.to_owned(),
        scopes: access::format_scopes(&scopes),
        stores: stores.as_deref().map(access::format_stores),
        created_at: chrono::Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    match store
        .create_api_key(&record, &access::hash_key(key.expose_secret()))
        .await
    {
        Ok(()) => {}
        Err(crate::store::StoreError::Conflict) => {
            return Err(UsageError(format!("a key named {name:?} already exists")).into())
        }
        Err(error) => return Err(error).context("storing the key"),
    }
    let covers = stores_text(record.stores.as_deref());
    audit_key_change(
        &*store,
        "api_key.create",
        name,
        format!("scopes {}; stores {covers}", record.scopes),
    )
    .await?;
    println!("{}", key.expose_secret());
    eprintln!(
        "created API key {name} with scopes {} for stores {covers}. It is shown once: store it now.",
        record.scopes
    );
    Ok(())
}

/// A key's stores as `api-key` prints them: `*` for every store.
fn stores_text(stores: Option<&str>) -> &str {
    stores.unwrap_or("*")
}

/// `api-key list`: every key's name, scopes, stores and dates; never the key or its hash.
pub async fn api_key_list(settings: Settings) -> anyhow::Result<()> {
    let store = key_store(&settings).await?;
    let keys = store.list_api_keys().await.context("listing keys")?;
    let date = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map(|at| at.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "-".into())
    };
    println!("NAME\tSCOPES\tSTORES\tCREATED\tLAST_USED\tREVOKED");
    for key in keys {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            key.name,
            key.scopes,
            stores_text(key.stores.as_deref()),
            date(Some(key.created_at)),
            date(key.last_used_at),
            date(key.revoked_at)
        );
    }
    Ok(())
}

/// `api-key revoke`: running services refuse the key within about a second (each replica checks
/// for revocations every second; at most the 30 s cache window while it cannot reach the database).
pub async fn api_key_revoke(settings: Settings, name: &str) -> anyhow::Result<()> {
    let store = key_store(&settings).await?;
    if !store
        .revoke_api_key(name, chrono::Utc::now())
        .await
        .context("revoking the key")?
    {
        return Err(UsageError(format!("no active key named {name:?}")).into());
    }
    audit_key_change(&*store, "api_key.revoke", name, "revoked".into()).await?;
    eprintln!(
        "revoked API key {name}; running services refuse it within about {} s",
        access::REVOCATION_CHECK.as_secs()
    );
    Ok(())
}

/// Development only: logs a ready link to the demo store's page. The link is a credential, but
/// only for a demo store on a development machine, where having it in the log is the point.
fn log_demo_link(services: &Services) {
    let (Ok(store_id), Ok(user_id)) = (StoreId::parse("demo-store"), UserId::parse("demo-user"))
    else {
        return;
    };
    match services
        .dashboard
        .mint_link(&store_id, &user_id, LINK_MAX_MINUTES)
    {
        Ok(link) => tracing::info!(
            "development: the demo store's connections page (link valid {LINK_MAX_MINUTES} minutes; `growth-engine dashboard-link` prints a new one): {link}"
        ),
        Err(error) => tracing::warn!(%error, "could not mint the demo dashboard link"),
    }
}

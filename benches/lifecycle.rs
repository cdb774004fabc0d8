//! The token lifecycle at scale: 1,000,000 connections in PostgreSQL, 1% of them due for refresh.
//!
//! Measures the refresher's scan (`Store::due_for_refresh`): one round's read (64 rows, the default
//! `REFRESHER_CONCURRENCY` 8 × 8) and a draining read of all 10,000 due rows, and, for comparison, one
//! round's read over a table of 10,000 rows (1% due), to show that the scan's cost follows the due rows
//! and not the table. It prints once the `EXPLAIN (ANALYZE, BUFFERS)` of the round's query, with a
//! custom and a generic plan (sqlx prepares statements, and PostgreSQL may switch a prepared statement
//! to its generic plan after five runs).
//!
//! It also leaves behind what `scripts/bench-lifecycle` needs to load the token endpoint: one real
//! connection (`store_id=bench-token-store`, `google`) recorded through `Grants::record_grant`,
//! whose access token expires in a year, so serving it never needs a refresh.
//!
//! Run: `scripts/bench-lifecycle` (everything, with the endpoint's load test), or only this part:
//! `cargo bench --bench lifecycle`.
//!
//! Environment:
//! - `BENCH_DATABASE_URL` [postgres://postgres@127.0.0.1:5432/growth_engine_bench]: created (through
//!   the server's `test` database) when missing; seeded when it does not hold the expected rows. Its
//!   name must contain `bench`: seeding deletes and writes `bench-store-*` rows. The comparison table
//!   lives in the database of the same name with `_10k` appended.
//! - `TOKEN_ENCRYPTION_KEY`: the key the real connection is sealed with. When unset, a throwaway key is
//!   generated into `BENCH_KEY_FILE` [`$CARGO_TARGET_DIR` or `target/`, then `bench-lifecycle.key`] on
//!   first run and reused after, so that the service the script starts can open the same row.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{black_box, Criterion};
use growth_engine::app::Services;
use growth_engine::clock::SystemClock;
use growth_engine::config::Settings;
use growth_engine::domain::{PlatformId, StoreId, TokenSet, UserId};
use growth_engine::platforms::{AccountInfo, Grant, GrantDetails, TokenGrant};
use growth_engine::store::{PgStore, Store};
use growth_engine::vault::Key;
use sqlx::postgres::PgPool;
use sqlx::{Connection as _, Row};
use url::Url;

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// Rows in the large table; 1% of them are due.
const LARGE: i64 = 1_000_000;
/// Rows in the comparison table; 1% of them are due.
const SMALL: i64 = 10_000;
/// One refresher round's read: `REFRESHER_CONCURRENCY` (default 8) × 8, as `Refresher::run_once`.
const ROUND: i64 = 64;
/// The store id of the one real connection the token endpoint is loaded with.
const TOKEN_STORE: &str = "bench-token-store";

/// `CONNECTION_COLUMNS` of `src/store/sql.rs` (private there), for the EXPLAIN of the same query.
const CONNECTION_COLUMNS: &str = "id, store_id, user_id, platform, status, account_id, \
    account_name, account_picture, sealed_tokens, key_id, metadata, granted_scopes, missing_scopes, \
    access_token_expires_at, refresh_token_expires_at, last_refreshed_at, next_refresh_at, \
    refresh_failures, last_error, version, created_at, updated_at";

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let fixture = runtime.block_on(prepare())?;
    let mut criterion = Criterion::default().configure_from_args();
    scans(&mut criterion, &runtime, &fixture);
    criterion.final_summary();
    Ok(())
}

/// The seeded stores and the time the scans run at.
struct Fixture {
    large: Arc<dyn Store>,
    small: Arc<dyn Store>,
    now: DateTime<Utc>,
}

async fn prepare() -> BenchResult<Fixture> {
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/growth_engine_bench".into());
    let small_url = sibling_database(&url, "_10k")?;
    let key = load_or_create_key()?;

    let large = seeded_store(&url, LARGE).await?;
    record_token_connection(&url, &key).await?;
    let small = seeded_store(&small_url, SMALL).await?;

    let now = Utc::now();
    // What is measured must be what was meant: a full round, and exactly the due rows when draining.
    for (store, limit, expected) in [
        (&large, ROUND, ROUND),
        (&large, LARGE, LARGE / 100),
        (&small, ROUND, ROUND),
    ] {
        let got = store.due_for_refresh(now, limit).await?.len();
        if i64::try_from(got)? != expected {
            return Err(
                format!("due_for_refresh(now, {limit}) read {got} rows, not {expected}").into(),
            );
        }
    }
    explain_round(&url, now).await?;
    Ok(Fixture { large, small, now })
}

fn scans(c: &mut Criterion, runtime: &tokio::runtime::Runtime, fixture: &Fixture) {
    let now = fixture.now;
    let mut group = c.benchmark_group("refresher scan");
    group.bench_function("round: 64 due of 1,000,000 rows", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(fixture.large.due_for_refresh(now, ROUND).await) })
    });
    group.bench_function("round: 64 due of 10,000 rows", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(fixture.small.due_for_refresh(now, ROUND).await) })
    });
    // Each iteration reads and decodes 10,000 rows (several MB): fewer, longer samples.
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("drain: all 10,000 due of 1,000,000 rows", |b| {
        b.to_async(runtime)
            .iter(|| async { black_box(fixture.large.due_for_refresh(now, 10_000).await) })
    });
    group.finish();
}

/// The URL of the database named like `url`'s with `suffix` appended.
fn sibling_database(url: &str, suffix: &str) -> BenchResult<String> {
    let mut parsed = Url::parse(url)?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    parsed.set_path(&format!("/{name}{suffix}"));
    Ok(parsed.to_string())
}

/// The key from `TOKEN_ENCRYPTION_KEY`, else from the benchmark's key file (created on first run).
fn load_or_create_key() -> BenchResult<Key> {
    if let Ok(text) = std::env::var("TOKEN_ENCRYPTION_KEY") {
        return Ok(Key::parse(&text)?);
    }
    let path = match std::env::var_os("BENCH_KEY_FILE") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("bench-lifecycle.key"),
    };
    if path.exists() {
        return Ok(Key::parse(&std::fs::read_to_string(&path)?)?);
    }
    let key = Key::generate();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    std::io::Write::write_all(&mut options.open(&path)?, key.to_base64().as_bytes())?;
    println!("created a throwaway benchmark key in {}", path.display());
    Ok(key)
}

/// Creates the database when missing, migrates it, and seeds `rows` connections (1% due) unless they
/// are already there.
async fn seeded_store(url: &str, rows: i64) -> BenchResult<Arc<dyn Store>> {
    let parsed = Url::parse(url)?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    if !name.contains("bench")
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "refusing to seed database {name:?}: its name must contain `bench` and only a-z, 0-9, _"
        )
        .into());
    }
    let mut admin_url = parsed.clone();
    admin_url.set_path("/test");
    let mut admin = sqlx::PgConnection::connect(admin_url.as_str()).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        sqlx::query(&format!("create database \"{name}\""))
            .execute(&mut admin)
            .await?;
    }
    admin.close().await?;

    let store = PgStore::connect(url).await?;
    store.migrate().await?;
    let pool = store.pool();
    // Counting the fixture reads the whole table, which a database kept from earlier runs may have
    // bloated (a migration that updates every row leaves as many dead ones): like the seed, it runs
    // without the store's statement timeout, in a transaction of its own.
    let mut tx = pool.begin().await?;
    sqlx::query("set local statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    let (present, due): (i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where next_refresh_at <= now()) \
         from platform_connections where store_id like 'bench-store-%'",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if present == rows && due == rows / 100 {
        println!("{name}: {rows} connections already seeded ({due} due)");
    } else {
        let started = Instant::now();
        seed(pool, rows).await?;
        println!(
            "{name}: seeded {rows} connections ({} due) in {:.1} s, ANALYZE included",
            rows / 100,
            started.elapsed().as_secs_f64()
        );
    }
    let sizes: (String, String) = sqlx::query_as(
        "select pg_size_pretty(pg_total_relation_size('platform_connections')), \
         pg_size_pretty(pg_relation_size('platform_connections_next_refresh_idx'))",
    )
    .fetch_one(pool)
    .await?;
    println!(
        "{name}: platform_connections {} in all; next_refresh_at index {}",
        sizes.0, sizes.1
    );
    Ok(Arc::new(store))
}

/// One set-based insert: store ids `bench-store-N`, the five platforms in turn, every hundredth row due
/// (in the past, spread over ~3 hours), the rest due between 1 hour and ~30 days ahead. Filler rows
/// carry a sealed-looking value of a typical size (~520 characters) that no key opens.
async fn seed(pool: &PgPool, rows: i64) -> BenchResult<()> {
    let mut tx = pool.begin().await?;
    // Only this transaction's commit waits less; the rows are a disposable fixture.
    sqlx::query("set local synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    // Seeding a million rows takes longer than the store's statement timeout (which protects the
    // service, not a fixture): lift it for this transaction only.
    sqlx::query("set local statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    sqlx::query("delete from platform_connections where store_id like 'bench-store-%'")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "insert into platform_connections (id, store_id, user_id, platform, status, account_id, \
           account_name, sealed_tokens, key_id, granted_scopes, access_token_expires_at, \
           next_refresh_at, version, created_at, updated_at) \
         select gen_random_uuid(), 'bench-store-' || n, 'bench-user-' || n, \
           (array['meta', 'tiktok', 'google', 'pinterest', 'twitter'])[1 + n % 5], 'CONNECTED', \
           'acct-' || n, 'Bench account ' || n, \
           'v1.benchfiller.' || translate(encode(decode(repeat(md5(n::text), 24), 'hex'), 'base64'), \
             E'+/=\\n', '-_'), \
           'benchfiller', '[\"ads_read\", \"business_management\"]'::jsonb, \
           due + interval '7 minutes 30 seconds', due, 1, now() - interval '30 days', now() \
         from ( \
           select n, case when n % 100 = 0 \
             then now() - interval '1 minute' - (n / 100) * interval '1 second' \
             else now() + interval '1 hour' + (n * 2.6) * interval '1 second' end as due \
           from generate_series(1, $1::bigint) as n \
         ) as s",
    )
    .bind(rows)
    .execute(&mut *tx)
    .await?;
    // Inside the transaction, so that it runs without the statement timeout too.
    sqlx::query("analyze platform_connections")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Records `bench-token-store` on Google through the lifecycle service, with the benchmark's key and
/// an access token valid for a year (re-recorded each run, so it always matches the key).
async fn record_token_connection(url: &str, key: &Key) -> BenchResult<()> {
    let vars: std::collections::HashMap<String, String> = [
        ("DATABASE_URL", url.to_owned()),
        ("TOKEN_ENCRYPTION_KEY", key.to_base64()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = Settings::from_vars(&vars)?;
    let services = Services::build(settings, Arc::new(SystemClock)).await?;
    let platform = PlatformId::parse("google")?;
    let spec = services
        .core
        .catalog()
        .get(&platform)
        .ok_or("google is not in the catalog")?
        .clone();
    let now = Utc::now();
    let grant = TokenGrant {
        tokens: TokenSet {
            // Sizes as Google issues them (access tokens up to 2048 B; these are typical).
            access_token: format!("ya29.bench-{}", "a0Ab".repeat(60)).into(),
            refresh_token: Some(format!("1//0g-bench-{}", "Cg".repeat(48)).into()),
            token_type: "Bearer".into(),
            expires_at: Some(now + chrono::Duration::days(365)),
            issued_at: Some(now),
            refresh_expires_at: None,
            scopes: spec.scopes.clone(),
            extra: Default::default(),
        },
        scopes_reported: true,
        account_hint: None,
    };
    let account = AccountInfo {
        id: Some("bench-google-account".into()),
        name: Some("Bench account".into()),
        picture: None,
    };
    let saved = services
        .grants
        .record_grant(
            &spec,
            Grant {
                platform: spec.id.clone(),
                store_id: StoreId::parse(TOKEN_STORE)?,
                user_id: UserId::parse("bench-user")?,
                tokens: grant,
                account,
                details: GrantDetails::default(),
                extra_secrets: Default::default(),
            },
        )
        .await?;
    println!(
        "recorded {TOKEN_STORE}/google (access token valid until {}, next refresh {})",
        saved
            .access_token_expires_at
            .map_or_else(|| "-".into(), |t| t.to_rfc3339()),
        saved
            .next_refresh_at
            .map_or_else(|| "-".into(), |t| t.to_rfc3339())
    );
    Ok(())
}

/// Prints the plans of the round's query as the store runs it (`src/store/sql.rs`), prepared and run
/// with bound values, once as a custom plan and once as the generic plan.
async fn explain_round(url: &str, now: DateTime<Utc>) -> BenchResult<()> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(&format!(
        "prepare round(timestamptz, bigint) as select {CONNECTION_COLUMNS} from platform_connections \
         where next_refresh_at is not null and next_refresh_at <= $1 and status = 'CONNECTED' \
         and (refresh_lease_until is null or refresh_lease_until < $1) \
         order by next_refresh_at limit $2"
    ))
    .execute(&mut conn)
    .await?;
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::raw_sql(&format!("set plan_cache_mode = {mode}"))
            .execute(&mut conn)
            .await?;
        let rows = sqlx::raw_sql(&format!(
            "explain (analyze, buffers) execute round('{}', {ROUND})",
            now.to_rfc3339()
        ))
        .fetch_all(&mut conn)
        .await?;
        println!("EXPLAIN (ANALYZE, BUFFERS) of one round's read, {mode}:");
        for row in rows {
            println!("    {}", row.try_get::<String, _>(0)?);
        }
    }
    conn.close().await?;
    Ok(())
}

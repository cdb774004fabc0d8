//! The scheduler's claim at scale: `PostStore::claim_due_posts` over 1,000,000 stored posts and
//! over 10,000, each with 1,000 posts due (the rest published, failed or cancelled: final posts
//! leave the due index). A claim takes 64 posts, the default `POSTS_SCHEDULER_CONCURRENCY`.
//!
//! Each claim is given a "now" far ahead and a lease that ends before it, so the posts it takes
//! stay due and every iteration claims from the same number of due posts.
//!
//! Run: `cargo bench --bench posts`. Environment: `BENCH_DATABASE_URL`
//! [postgres://postgres@127.0.0.1:5432/growth_engine_bench_posts]; its name must contain `bench`
//! (it is seeded, and its `posts` rows replaced). The small table lives in the database of the
//! same name with `_10k` appended. Both are created through the server's `test` database when
//! missing, and seeded once (kept for later runs while they hold the expected rows).

#![allow(clippy::expect_used, clippy::panic)]

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use criterion::{black_box, Criterion};
use growth_engine::store::{PgStore, Store};
use sqlx::Connection as _;

type BenchResult<T> = Result<T, Box<dyn Error>>;

const LARGE: i64 = 1_000_000;
const SMALL: i64 = 10_000;
const DUE: i64 = 1_000;
const CLAIM: i64 = 64;

fn main() -> BenchResult<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/growth_engine_bench_posts".into());
    if !url.contains("bench") {
        return Err("BENCH_DATABASE_URL must name a database whose name contains `bench`".into());
    }
    let small_url = format!("{url}_10k");
    let large = runtime.block_on(prepare(&url, LARGE))?;
    let small = runtime.block_on(prepare(&small_url, SMALL))?;
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("claim_due_posts");
    for (name, store) in [("1m_stored", &large), ("10k_stored", &small)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let now = Utc::now() + Duration::days(3650);
                let claimed = store
                    .claim_due_posts(now, now - Duration::seconds(1), CLAIM)
                    .await
                    .expect("claim");
                assert_eq!(claimed.len() as i64, CLAIM);
                black_box(claimed)
            })
        });
    }
    group.finish();
    criterion.final_summary();
    Ok(())
}

async fn prepare(url: &str, rows: i64) -> BenchResult<Arc<dyn Store>> {
    let (server, name) = url
        .rsplit_once('/')
        .ok_or("BENCH_DATABASE_URL has no database")?;
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/test")).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        sqlx::query(&format!("create database \"{name}\""))
            .execute(&mut admin)
            .await?;
    }
    // Seeding a million rows takes longer than the default statement timeout.
    let store = PgStore::connect_with(url, std::time::Duration::from_secs(900)).await?;
    store.migrate().await?;
    let pool = store.pool().clone();
    let (stored, due): (i64, i64) =
        sqlx::query_as("select count(*), count(*) filter (where due_at is not null) from posts")
            .fetch_one(&pool)
            .await?;
    if stored != rows || due != DUE {
        let started = Instant::now();
        sqlx::query("truncate posts").execute(&pool).await?;
        // Every post a store's, final but for the first DUE, which are due over the last hour.
        sqlx::query(
            "insert into posts (id, store_id, platform, account_kind, account_id, idempotency_key, \
             request_digest, created_by, draft, status, publish_at, deadline_at, due_at, stage, \
             checkpoint, attempts, created_at, updated_at) \
             select gen_random_uuid(), 'bench-store-' || (n % 5000), 'twitter', 'x_user', 'u', \
             'key-' || n, 'digest', 'api_key:bench', '{\"text\": \"benchmark post\"}'::jsonb, \
             case when n <= $2 then 'scheduled' else 'published' end, \
             now() - interval '1 hour', now() + interval '1 hour', \
             case when n <= $2 then now() - (n || ' seconds')::interval end, 'prepare', 'null'::jsonb, \
             0, now(), now() from generate_series(1, $1) as n",
        )
        .bind(rows)
        .bind(DUE)
        .execute(&pool)
        .await?;
        sqlx::query("analyze posts").execute(&pool).await?;
        eprintln!("seeded {rows} posts ({DUE} due) in {:?}", started.elapsed());
    }
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "explain (analyze, buffers) select id from posts where due_at is not null and due_at <= now() + interval '10 years' order by due_at limit {CLAIM} for update skip locked"
    ))
    .fetch_all(&pool)
    .await?;
    eprintln!(
        "{rows} posts stored, the claim's plan:\n{}",
        plan.join("\n")
    );
    Ok(Arc::new(store))
}

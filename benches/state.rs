//! The flow-state store while Redis is known to be unreachable: with the circuit breaker open a
//! call is refused before any I/O, so it should cost about what an atomic load and an error cost
//! (the integration test `state.rs` proves that no command reaches Redis; the speed is measured
//! here, where a busy machine cannot fail it).
//!
//! Run: `cargo bench --bench state` (no Redis needed: the handle points at a closed port).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use growth_engine::clock::{SharedClock, SystemClock};
use growth_engine::redis_conn::RedisHandle;
use growth_engine::state::FlowStates;
use growth_engine::vault::{Key, Keyring};

fn breaker_open(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Nothing listens on port 1: the first call fails to connect, which opens the breaker.
    let redis = RedisHandle::new(&"redis://127.0.0.1:1".to_owned().into(), "bench:").unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let keyring = Arc::new(Keyring::new(Key::generate(), vec![]));
    let states = FlowStates::redis(redis.clone(), keyring, clock);
    runtime.block_on(async {
        assert!(states.take::<u32>("state", "first").await.is_err());
    });
    assert!(!redis.is_available(), "the breaker is open");
    c.bench_function(
        "take a flow state with the breaker open (refused, no I/O)",
        |b| {
            b.to_async(&runtime)
                .iter(|| async { states.take::<u32>("state", "absent").await.is_err() })
        },
    );
}

criterion_group!(benches, breaker_open);
criterion_main!(benches);

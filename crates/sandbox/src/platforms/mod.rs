//! The simulated platforms: one child module per platform, and the table, the one place that
//! lists them (in the service's order), with the lookup the shared code uses to find one by key.
//!
//! Adding a platform is a child module implementing `platform::SimulatedPlatform` and its line
//! in [`TABLE`]. Nothing else in the crate names a platform.

mod google;
mod linkedin;
mod meta;
mod pinterest;
mod tiktok;
mod twitter;

use crate::platform::Platform;

/// Every simulated platform, in the order of the service's platform table.
pub(crate) const TABLE: &[Platform] = &[
    meta::PLATFORM,
    tiktok::PLATFORM,
    google::PLATFORM,
    pinterest::PLATFORM,
    twitter::PLATFORM,
    linkedin::PLATFORM,
];

/// The platforms the sandbox simulates, by the key used in its paths (the table's keys, in its
/// order).
pub const PLATFORMS: [&str; TABLE.len()] = keys(TABLE);

/// The keys of `table`, at compile time.
const fn keys<const N: usize>(table: &[Platform]) -> [&'static str; N] {
    let mut keys = [""; N];
    let mut i = 0;
    while i < N {
        keys[i] = table[i].spec.key;
        i += 1;
    }
    keys
}

/// The simulated platform with this key.
pub(crate) fn find(key: &str) -> Option<Platform> {
    TABLE
        .iter()
        .copied()
        .find(|platform| platform.spec.key == key)
}

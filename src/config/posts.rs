//! Publishing's settings: the operator's default for the merchant's approval, how long a post
//! waits for it, how long a post not yet out is retried, the scheduler's pace, and the limits on
//! fetching the callers' media.

use std::time::Duration;

use super::error::ConfigError;
use super::vars::Vars;

/// What publishing is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostSettings {
    /// `POSTS_REQUIRE_APPROVAL` (default false): whether a store that never chose on the page has
    /// its posts wait for the merchant's approval.
    pub require_approval: bool,
    /// `POSTS_APPROVAL_TTL_HOURS` (default 24, 1 to 720): how long a post waits for an answer.
    pub approval_ttl: Duration,
    /// `POSTS_RETRY_DEADLINE_MINUTES` (default 60, 1 to 1440): how long after its time a post the
    /// platform has not accepted yet is retried.
    pub retry_deadline: Duration,
    /// `POSTS_SCHEDULER_ENABLED` (default true).
    pub scheduler_enabled: bool,
    /// `POSTS_SCHEDULER_CONCURRENCY` (default 64, 1 to 1024): posts one replica handles at once.
    pub concurrency: usize,
    /// `POSTS_SCHEDULER_POLL_MILLISECONDS` (default 250, 20 to 60000): how often an idle replica
    /// looks for due posts.
    pub poll: Duration,
    /// `POSTS_LEASE_SECONDS` (default 120, 2 to 3600): how long a replica holds a post it claimed
    /// without writing; a replica that dies leaves its posts to another after this.
    pub lease: Duration,
    /// `MEDIA_MAX_BYTES` (default 268435456 = 256 MiB, 1 KiB to 4 GiB): the largest medium fetched.
    pub media_max_bytes: u64,
    /// `MEDIA_FETCH_TIMEOUT_SECONDS` (default 120, 1 to 3600): the limit on fetching one medium.
    pub media_timeout: Duration,
    /// `MEDIA_ALLOW_PRIVATE_ADDRESSES` (default: true only with the sandbox in development): fetch
    /// media from loopback, private and link-local addresses. Off, a URL that resolves to one is
    /// refused, so a caller cannot make us read the internal network.
    pub media_allow_private: bool,
}

impl PostSettings {
    /// Reads the section; `sandbox_default` is the default of `MEDIA_ALLOW_PRIVATE_ADDRESSES`.
    pub(super) fn read(vars: &Vars<'_>, sandbox_default: bool) -> Result<Self, ConfigError> {
        Ok(Self {
            require_approval: vars.bool("POSTS_REQUIRE_APPROVAL", false)?,
            approval_ttl: Duration::from_secs(
                3600 * vars.number_in::<u64>("POSTS_APPROVAL_TTL_HOURS", 24, 1..=720)?,
            ),
            retry_deadline: Duration::from_secs(
                60 * vars.number_in::<u64>("POSTS_RETRY_DEADLINE_MINUTES", 60, 1..=1440)?,
            ),
            scheduler_enabled: vars.bool("POSTS_SCHEDULER_ENABLED", true)?,
            concurrency: vars.number_in("POSTS_SCHEDULER_CONCURRENCY", 64, 1..=1024)?,
            poll: Duration::from_millis(vars.number_in::<u64>(
                "POSTS_SCHEDULER_POLL_MILLISECONDS",
                250,
                20..=60_000,
            )?),
            lease: vars.seconds_in("POSTS_LEASE_SECONDS", 120, 2..=3600)?,
            media_max_bytes: vars.number_in::<u64>(
                "MEDIA_MAX_BYTES",
                256 * 1024 * 1024,
                1024..=4 * 1024 * 1024 * 1024,
            )?,
            media_timeout: vars.seconds_in("MEDIA_FETCH_TIMEOUT_SECONDS", 120, 1..=3600)?,
            media_allow_private: vars.bool("MEDIA_ALLOW_PRIVATE_ADDRESSES", sandbox_default)?,
        })
    }
}

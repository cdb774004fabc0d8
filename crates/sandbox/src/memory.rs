//! What a simulated user granted and declined an app before: the state behind incremental
//! consent ([`ConsentMemory`](crate::spec::ConsentMemory)).
//!
//! A platform that remembers on request (providers.md §3, platform-apis.md §3): with the request's
//! "include granted scopes" option the new grant, and the token response's `scope`, carry every
//! scope the user granted the client before; without it, only what this consent granted. A
//! platform that always remembers (platform-apis.md §1, "Incremental authorization"): a scope the
//! user declined is not asked again unless the request says so, and a user token carries every
//! permission granted to the app, listed with the declined ones. Removing the app (revocation)
//! forgets it all. This module owns the bookkeeping; the consent screen applies it.

use crate::state::{Remembered, Simulator};

impl Simulator {
    /// What `account` granted and declined `client_id` at `platform` so far.
    pub(crate) fn remembered(&self, platform: &str, client_id: &str, account: u32) -> Remembered {
        self.lock()
            .remembered
            .get(&(platform.to_owned(), client_id.to_owned(), account))
            .cloned()
            .unwrap_or_default()
    }

    /// Records a consent: `shown` were on the screen, `granted` approved. Returns the memory after.
    pub(crate) fn remember_consent(
        &self,
        platform: &str,
        client_id: &str,
        account: u32,
        shown: &[String],
        granted: &[String],
    ) -> Remembered {
        let mut state = self.lock();
        let entry = state
            .remembered
            .entry((platform.to_owned(), client_id.to_owned(), account))
            .or_default();
        for scope in granted {
            if !entry.granted.contains(scope) {
                entry.granted.push(scope.clone());
            }
        }
        for scope in shown.iter().filter(|s| !granted.contains(s)) {
            if !entry.declined.contains(scope) && !entry.granted.contains(scope) {
                entry.declined.push(scope.clone());
            }
        }
        entry.declined.retain(|s| !entry.granted.contains(s));
        entry.clone()
    }

    /// Forgets what `account` granted `client_id` at `platform` (the user removed the app).
    pub(crate) fn forget_consent(&self, platform: &str, client_id: &str, account: u32) {
        self.lock()
            .remembered
            .remove(&(platform.to_owned(), client_id.to_owned(), account));
    }
}

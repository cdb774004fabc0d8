//! What a simulated user granted and declined an app before, and which simulated account signs in
//! on the consent screens: the state behind incremental consent.
//!
//! Google (providers.md §3, platform-apis.md §3): with `include_granted_scopes=true` the new grant,
//! and the token response's `scope`, carry every scope the user granted the client before; without
//! it, only what this consent granted. Meta (platform-apis.md §1, "Incremental authorization"): a
//! permission the user declined is not asked again unless the request carries
//! `auth_type=rerequest`, and a user token carries every permission granted to the app, which
//! `/me/permissions` lists with the declined ones. Removing the app (revocation) forgets it all.

use super::spec::Platform;
use super::Simulator;

/// What one account has granted and declined one client.
#[derive(Clone, Debug, Default)]
pub(crate) struct Remembered {
    /// Granted so far, in the order first granted.
    pub(crate) granted: Vec<String>,
    /// Declined and not granted since.
    pub(crate) declined: Vec<String>,
}

impl Simulator {
    /// Makes `platform`'s consent screens sign in as the sandbox's account `account`: 0 is the
    /// default merchant, any other number a different merchant with its own id and name (Meta and
    /// Google answer them in their identity endpoints), for tests of a reconnect with another
    /// account.
    pub fn set_signed_in_account(&self, platform: &str, account: u32) {
        self.control(platform, |p| p.account = account);
    }

    pub(crate) fn signed_in_account(&self, platform: Platform) -> u32 {
        self.lock()
            .platforms
            .get(&platform)
            .map_or(0, |p| p.account)
    }

    /// What `account` granted and declined `client_id` at `platform` so far.
    pub(crate) fn remembered(
        &self,
        platform: Platform,
        client_id: &str,
        account: u32,
    ) -> Remembered {
        self.lock()
            .remembered
            .get(&(platform, client_id.to_owned(), account))
            .cloned()
            .unwrap_or_default()
    }

    /// Records a consent: `shown` were on the screen, `granted` approved. Returns the memory after.
    pub(crate) fn remember_consent(
        &self,
        platform: Platform,
        client_id: &str,
        account: u32,
        shown: &[String],
        granted: &[String],
    ) -> Remembered {
        let mut state = self.lock();
        let entry = state
            .remembered
            .entry((platform, client_id.to_owned(), account))
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
    pub(crate) fn forget_consent(&self, platform: Platform, client_id: &str, account: u32) {
        self.lock()
            .remembered
            .remove(&(platform, client_id.to_owned(), account));
    }
}

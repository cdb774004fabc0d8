//! Data deletion requests: the confirmation code a request is answered with, and what its status
//! page shows. The code is derived from the request's dedupe key, so a platform that sends the
//! same request again gets the same code; the key holds the request's signature, so the code
//! cannot be guessed from the account id.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::store::DeletionRequest;

/// The confirmation code of the deletion request with this dedupe key: 16 upper-case
/// alphanumerics, as Meta asks ("an alphanumeric confirmation code") [M29].
pub fn confirmation_code(platform: &str, dedupe_key: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"data-deletion\0")
        .chain_update(platform.as_bytes())
        .chain_update([0])
        .chain_update(dedupe_key.as_bytes())
        .finalize();
    hex::encode_upper(&digest[..8])
}

/// A digest of the account a request names: the record keeps it once the account's data is gone.
pub(super) fn account_digest(platform: &str, account_id: &str) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(platform.as_bytes())
            .chain_update([0])
            .chain_update(account_id.as_bytes())
            .finalize(),
    )
}

/// What the status page shows of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionStatus {
    /// The code.
    pub confirmation_code: String,
    /// The platform's slug.
    pub platform: String,
    /// When it was received.
    pub requested_at: DateTime<Utc>,
    /// When the deletion finished (`None` while it is pending).
    pub completed_at: Option<DateTime<Utc>>,
    /// How many connections were deleted.
    pub connections_deleted: i32,
}

impl From<DeletionRequest> for DeletionStatus {
    fn from(request: DeletionRequest) -> Self {
        Self {
            confirmation_code: request.confirmation_code,
            platform: request.platform,
            requested_at: request.requested_at,
            completed_at: request.completed_at,
            connections_deleted: request.connections_deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redelivered_request_gets_the_same_code_and_another_request_another() {
        let a = confirmation_code("meta", "sha256:aa");
        assert_eq!(a, confirmation_code("meta", "sha256:aa"));
        assert_ne!(a, confirmation_code("meta", "sha256:ab"));
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}

//! Receiving: a request to `/api/v1/platform-events/{platform}/{receiver}` is verified by the
//! platform's scheme, its notices stored (new ones only), a data deletion request given its code,
//! and the answer the platform expects returned. Nothing is stored or changed before the
//! signature is checked; a refused request stores nothing.

use serde_json::json;

use super::deletion::{account_digest, confirmation_code, DeletionStatus};
use super::service::Inbox;
use crate::platforms::events::{
    EventRejection, InboundRequest, Notice, NoticeAccount, NoticeKind, Receipt,
};
use crate::platforms::PlatformError;
use crate::store::{DeletionRequest, NewPlatformEvent, StoreError};

/// What the receiver answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A challenge's answer, with 200.
    Challenge {
        /// `text/plain` or `application/json`.
        content_type: &'static str,
        /// The body.
        body: String,
    },
    /// Stored (or already stored): the platform's acknowledgement status and, for a data
    /// deletion request, `{url, confirmation_code}`.
    Stored {
        /// 200, or 202 where the platform expects it.
        status: u16,
        /// The JSON body (`{"received": n}` by default).
        body: serde_json::Value,
    },
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// No such platform, or a platform not configured.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The request failed verification (nothing was stored).
    #[error(transparent)]
    Rejected(#[from] EventRejection),
    /// The notices could not be stored: the platform must send them again.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Inbox {
    /// Verifies a request to one of `platform`'s receivers, stores its notices and answers.
    pub async fn receive(
        &self,
        platform: &str,
        request: &InboundRequest<'_>,
    ) -> Result<Answer, ReceiveError> {
        let parts = self.parts();
        let spec = parts.grants.core().catalog().require(platform)?;
        let receipt = spec
            .behaviour
            .receive_events(spec, &parts.keys, request)
            .await
            .inspect_err(|rejection| {
                let outcome = match rejection {
                    EventRejection::BadSignature(_) => "rejected_signature",
                    EventRejection::Stale => "rejected_stale",
                    _ => "rejected_malformed",
                };
                parts.metrics.platform_event(platform, "unknown", outcome);
            })?;
        let notices = match receipt {
            Receipt::Challenge { content_type, body } => {
                return Ok(Answer::Challenge { content_type, body })
            }
            Receipt::Notices(notices) => notices,
        };
        let rows: Vec<NewPlatformEvent> = notices
            .iter()
            .map(|notice| stored_form(&spec.id, request, notice))
            .collect();
        let fresh = parts
            .grants
            .core()
            .store()
            .insert_platform_events(&rows)
            .await?;
        for (row, new) in rows.iter().zip(&fresh) {
            let outcome = if *new { "stored" } else { "duplicate" };
            parts.metrics.platform_event(platform, &row.kind, outcome);
        }
        if fresh.iter().any(|new| *new) {
            parts.wake.notify_one();
        }
        let status = spec.behaviour.event_ack_status(request.receiver);
        let deletion = rows
            .iter()
            .zip(&notices)
            .find(|(_, notice)| notice.kind == NoticeKind::DataDeletion);
        let body = match deletion {
            Some((row, notice)) => self.deletion_answer(row, notice).await?,
            None => json!({ "received": rows.len() }),
        };
        Ok(Answer::Stored { status, body })
    }

    /// Records the deletion request (once: a redelivery finds its code) and answers with its
    /// status page and code [M29].
    async fn deletion_answer(
        &self,
        row: &NewPlatformEvent,
        notice: &Notice,
    ) -> Result<serde_json::Value, StoreError> {
        let platform = row.platform.as_str();
        let code = confirmation_code(platform, &row.dedupe_key);
        let account = match &notice.account {
            Some(NoticeAccount::User(id) | NoticeAccount::Asset(id)) => id.as_str(),
            None => "",
        };
        let request = DeletionRequest {
            confirmation_code: code.clone(),
            platform: platform.to_owned(),
            account_digest: account_digest(platform, account),
            status: "pending".into(),
            requested_at: row.received_at,
            completed_at: None,
            connections_deleted: 0,
        };
        let store = self.parts().grants.core().store();
        store.create_deletion_request(&request).await?;
        Ok(json!({ "url": self.status_url(platform, &code), "confirmation_code": code }))
    }

    /// The status page of a deletion request.
    pub fn status_url(&self, platform: &str, code: &str) -> String {
        format!(
            "{}/api/v1/platform-events/{platform}/data-deletion/{code}",
            self.parts().api_url.as_str().trim_end_matches('/')
        )
    }

    /// A deletion request's status, for its page.
    pub async fn deletion_status(
        &self,
        platform: &str,
        code: &str,
    ) -> Result<Option<DeletionStatus>, StoreError> {
        let request = self
            .parts()
            .grants
            .core()
            .store()
            .deletion_request(code)
            .await?;
        Ok(request
            .filter(|r| r.platform == platform)
            .map(DeletionStatus::from))
    }
}

/// A notice as the inbox table stores it.
fn stored_form(
    platform: &crate::domain::PlatformId,
    request: &InboundRequest<'_>,
    notice: &Notice,
) -> NewPlatformEvent {
    let (account_kind, account_id) = match &notice.account {
        Some(NoticeAccount::User(id)) => (Some("user".to_owned()), Some(id.clone())),
        Some(NoticeAccount::Asset(id)) => (Some("asset".to_owned()), Some(id.clone())),
        None => (None, None),
    };
    NewPlatformEvent {
        platform: platform.clone(),
        dedupe_key: notice.dedupe_key(),
        receiver: request.receiver.to_owned(),
        kind: notice.kind.as_str().to_owned(),
        event_type: notice.event_type.clone(),
        account_kind,
        account_id,
        payload: notice.payload.clone(),
        occurred_at: notice.occurred_at,
        received_at: request.now,
    }
}

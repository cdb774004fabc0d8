//! The connect workflow: what becomes of the grant an authorization flow returns. It sits above the
//! flow ([`crate::oauth`]) and the lifecycle ([`crate::lifecycle`]), which do not know each other,
//! and below the edge, whose handlers only translate requests and answers.
//!
//! It owns park-or-record after a callback (a reconnect from the page that signed in to another
//! account waits for the merchant; anything else is recorded, then its assets discovered), the
//! merchant's answer to a parked grant (replace the account, or keep the old one) and the reaper
//! of grants nobody answered, each recorded in the audit trail. It does not own the flow's
//! protocol, the parked grants' storage (`oauth::parked`) nor what a recorded row holds
//! (`lifecycle::grants`).
//!
//! Layout: `workflow` ([`ConnectWorkflow`]: the callback's outcome, recording a grant) and
//! `replace` ([`Replacements`]: showing, confirming, declining and reaping parked grants).

mod replace;
mod workflow;

pub use replace::{ReplacementView, Replacements};
pub use workflow::{Completed, ConnectWorkflow};

//! The outbound side: CRM changes on their way to Microsoft.
//!
//! ```text
//! CRM edit (CLI, API) --edits.rs--> event + outbox row, one transaction
//!                                        |
//! the user's mailbox work --push.rs--> one Graph write per event (POST with a transactionId,
//!                                        PATCH of the changed fields, DELETE), answer stored
//! ```
//!
//! [`edits`] is the CRM side's create, change and delete of a user's event, each with its
//! outbox row in the same transaction when the tenant's direction pushes (C1, C5; a delete only
//! when deletes from the CRM are on at that moment, C3); [`push`] drains a user's outbox into
//! Graph writes during their primary mailbox's work, after the calendar's pull (so Microsoft
//! wins a conflict); [`status`] says where each change stands (sent, queued, waiting for the
//! user's Sync Events or the outbound range, or not sent and why), for the push, the CLI and
//! the API alike. The conversions
//! both directions share are [`crate::sync::calendar::convert`]'s.
//!
//! [`mail`] is email sent from the CRM through a linked mailbox (E15): an outbox of its own
//! with idempotency keys, sent exactly once through a findable draft.

pub mod edits;
pub mod mail;
pub mod push;
pub mod status;

use m365sync_store::events::Direction;

/// C9's warning for a direction that writes CRM events to Microsoft (`None` for to_crm):
/// Microsoft, not m365sync, emails the attendees, so an admin choosing such a direction must
/// hear it. One text for every place that chooses a direction (`events settings`, `activate`,
/// the admin API's settings), so they cannot drift apart.
pub fn invitation_warning(direction: Direction) -> Option<String> {
    direction.pushes().then(|| {
        format!(
            "calendar direction is {}: CRM events are written to Microsoft, which emails invitations, updates and cancellations to their attendees when an event's \"send invitations\" is on (C9); the default is to_crm",
            direction.as_str()
        )
    })
}

//! What happened to one instance sent to one destination.

use radroute_dimse::{Status, StatusClass};

/// Outcome of sending one instance, as the queue needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The destination has it (success or a warning status).
    Delivered {
        /// The status it answered with.
        status: Status,
    },
    /// Try again later (out of resources, association failure, timeout).
    Retry {
        /// Why.
        reason: String,
        /// The status, when the destination answered.
        status: Option<Status>,
    },
    /// Sending again will not help (refused, or no way to encode it for this destination).
    Dead {
        /// Why.
        reason: String,
        /// The status, when the destination answered.
        status: Option<Status>,
    },
}

impl SendOutcome {
    /// Maps a C-STORE-RSP status (PS3.4 B.2.3): success and warnings B000/B006/B007 are delivered;
    /// A7xx retries; any other refusal is permanent.
    pub fn from_status(status: Status, comment: Option<&str>) -> SendOutcome {
        let detail = comment.map(|c| format!(": {c}")).unwrap_or_default();
        match status.class() {
            StatusClass::Success | StatusClass::Warning => SendOutcome::Delivered { status },
            StatusClass::OutOfResources => SendOutcome::Retry {
                reason: format!("destination out of resources ({status}){detail}"),
                status: Some(status),
            },
            _ => SendOutcome::Dead {
                reason: format!("destination refused the instance ({status}){detail}"),
                status: Some(status),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        assert!(matches!(
            SendOutcome::from_status(Status(0), None),
            SendOutcome::Delivered { .. }
        ));
        for w in [0xB000, 0xB006, 0xB007] {
            assert!(matches!(
                SendOutcome::from_status(Status(w), None),
                SendOutcome::Delivered { .. }
            ));
        }
        assert!(matches!(
            SendOutcome::from_status(Status(0xA700), None),
            SendOutcome::Retry { .. }
        ));
        assert!(matches!(
            SendOutcome::from_status(Status(0xA702), None),
            SendOutcome::Retry { .. }
        ));
        assert!(matches!(
            SendOutcome::from_status(Status(0xA900), None),
            SendOutcome::Dead { .. }
        ));
        assert!(matches!(
            SendOutcome::from_status(Status(0xC000), Some("x")),
            SendOutcome::Dead { .. }
        ));
    }
}

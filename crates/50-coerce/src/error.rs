//! The one error type of this crate.

/// Why the result could not be written into a dataset.
#[derive(Debug, thiserror::Error)]
pub enum CoerceError {
    /// Every private creator slot (gggg,0010–00FF) of the group is taken by other creators.
    #[error("instance {uid}: no free private creator slot in group {group:04X}")]
    PrivateBlockFull {
        /// SOP Instance UID.
        uid: String,
        /// The private group.
        group: u16,
    },
    /// The classification input is unusable (e.g. scores without class names).
    #[error("instance {uid}: invalid classification input: {detail}")]
    InvalidInput {
        /// SOP Instance UID.
        uid: String,
        /// What is wrong.
        detail: String,
    },
}

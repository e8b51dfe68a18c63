//! DIMSE status codes (PS3.7 annex C) and their classes.
//!
//! The SCP answers every C-STORE with one of these; the SCU maps the peer's answer to an outcome
//! (delivered, retry, dead letter) by its [`StatusClass`].

/// A DIMSE status code as carried in (0000,0900).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

/// The broad meaning of a status code: what a sender should do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 0000: stored.
    Success,
    /// Bxxx, 0001, 0107, 0116: stored, with a remark.
    Warning,
    /// A7xx: the receiver is out of resources; try again later.
    OutOfResources,
    /// Any other failure (A9xx, Cxxx, 01xx, 02xx...): retrying the same data will not help.
    Failure,
    /// FE00: the operation was cancelled.
    Cancel,
    /// FF00/FF01: pending (not used by C-STORE).
    Pending,
}

impl Status {
    /// Success.
    pub const SUCCESS: Status = Status(0x0000);
    /// Warning: coercion of data elements (the receiver changed attributes).
    pub const WARNING_COERCION: Status = Status(0xB000);
    /// Warning: elements discarded.
    pub const WARNING_ELEMENTS_DISCARDED: Status = Status(0xB006);
    /// Warning: data set does not match SOP class.
    pub const WARNING_DATASET_MISMATCH: Status = Status(0xB007);
    /// Refused: out of resources (storage full, spool unavailable).
    pub const OUT_OF_RESOURCES: Status = Status(0xA700);
    /// Error: data set does not match SOP class.
    pub const DATASET_MISMATCH: Status = Status(0xA900);
    /// Error: cannot understand (the data set could not be parsed).
    pub const CANNOT_UNDERSTAND: Status = Status(0xC000);
    /// Refused: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: Status = Status(0x0122);
    /// Unrecognized operation.
    pub const UNRECOGNIZED_OPERATION: Status = Status(0x0211);
    /// Processing failure.
    pub const PROCESSING_FAILURE: Status = Status(0x0110);

    /// Classifies the code as PS3.4 annex B.2.3 and PS3.7 annex C define it.
    pub fn class(self) -> StatusClass {
        match self.0 {
            0x0000 => StatusClass::Success,
            0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => StatusClass::Warning,
            0xA700..=0xA7FF => StatusClass::OutOfResources,
            0xFE00 => StatusClass::Cancel,
            0xFF00 | 0xFF01 => StatusClass::Pending,
            _ => StatusClass::Failure,
        }
    }

    /// True for success and warnings: the peer has the instance.
    pub fn is_stored(self) -> bool {
        matches!(self.class(), StatusClass::Success | StatusClass::Warning)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X}H", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_ps3_4() {
        assert_eq!(Status(0x0000).class(), StatusClass::Success);
        assert_eq!(Status(0xB000).class(), StatusClass::Warning);
        assert_eq!(Status(0xB007).class(), StatusClass::Warning);
        assert_eq!(Status(0xA700).class(), StatusClass::OutOfResources);
        assert_eq!(Status(0xA7FF).class(), StatusClass::OutOfResources);
        assert_eq!(Status(0xA900).class(), StatusClass::Failure);
        assert_eq!(Status(0xC000).class(), StatusClass::Failure);
        assert_eq!(Status(0x0122).class(), StatusClass::Failure);
        assert!(Status(0xB006).is_stored());
        assert!(!Status(0xA700).is_stored());
    }
}

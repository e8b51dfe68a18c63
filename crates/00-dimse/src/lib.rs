//! DIMSE messages for radroute: the C-ECHO and C-STORE command sets, their status codes, and the
//! reassembly and fragmentation of P-DATA values.
//!
//! dicom-ul stops at the upper layer (PDUs and associations); it has no DIMSE layer. Both sides of
//! radroute need one: the SCP in `radroute-receive` decodes C-STORE-RQ and encodes C-STORE-RSP, the
//! SCU in `radroute-forward` does the reverse. They share the typed messages of this crate, so no
//! command field is ever written by hand twice.
//!
//! Modules:
//! - [`command`]: typed command sets ([`CEchoRq`], [`CStoreRq`], ...) encoded in Implicit VR Little
//!   Endian with a Command Group Length, as PS3.7 section 6.3.1 requires.
//! - [`status`]: DIMSE status codes and their classes (success, warning, failure kinds).
//! - [`reassembly`]: collects command and data fragments (PDVs) from P-DATA-TF PDUs into whole
//!   messages; command sets may be fragmented too.
//! - [`fragment`]: splits an outgoing message into P-DATA-TF PDUs that fit the peer's max PDU.
//!
//! Architecture invariant: no I/O here, no tokio, no knowledge of spool or queue.
#![deny(missing_docs)]

pub mod command;
pub mod fragment;
pub mod reassembly;
pub mod status;

pub use command::{CEchoRq, CEchoRsp, CStoreRq, CStoreRsp, Command, CommandError, Priority};
pub use fragment::{fragment_data, fragment_message, pdv_value_capacity};
pub use reassembly::{
    AssembledMessage, PDataAssembler, ReassemblyError, DEFAULT_MAX_DATA_LEN, MAX_COMMAND_SET_LEN,
};
pub use status::{Status, StatusClass};

/// Verification SOP Class (C-ECHO).
pub const VERIFICATION_SOP_CLASS: &str = "1.2.840.10008.1.1";

//! Typed DIMSE command sets for C-ECHO and C-STORE (PS3.7 sections 9.3.1 and 9.3.5).
//!
//! Command sets are always encoded in Implicit VR Little Endian and start with a Command Group
//! Length (0000,0000) (PS3.7 section 6.3.1), whatever transfer syntax the data set uses.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

use crate::status::Status;

const COMMAND_GROUP_LENGTH: Tag = Tag(0x0000, 0x0000);
const AFFECTED_SOP_CLASS_UID: Tag = Tag(0x0000, 0x0002);
const COMMAND_FIELD: Tag = Tag(0x0000, 0x0100);
const MESSAGE_ID: Tag = Tag(0x0000, 0x0110);
const MESSAGE_ID_BEING_RESPONDED_TO: Tag = Tag(0x0000, 0x0120);
const PRIORITY: Tag = Tag(0x0000, 0x0700);
const COMMAND_DATA_SET_TYPE: Tag = Tag(0x0000, 0x0800);
const STATUS: Tag = Tag(0x0000, 0x0900);
const ERROR_COMMENT: Tag = Tag(0x0000, 0x0902);
const AFFECTED_SOP_INSTANCE_UID: Tag = Tag(0x0000, 0x1000);
const MOVE_ORIGINATOR_AE_TITLE: Tag = Tag(0x0000, 0x1030);
const MOVE_ORIGINATOR_MESSAGE_ID: Tag = Tag(0x0000, 0x1031);

/// Command Data Set Type value meaning "no data set follows".
const NO_DATA_SET: u16 = 0x0101;

const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
const C_ECHO_RQ: u16 = 0x0030;
const C_ECHO_RSP: u16 = 0x8030;

/// Why a command set could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The bytes are not a valid Implicit VR Little Endian data set.
    #[error("cannot parse command set: {0}")]
    Parse(#[source] Box<dicom_object::ReadError>),
    /// A required command element is missing or has the wrong type.
    #[error("command set lacks a valid {name} {tag}")]
    MissingElement {
        /// Name of the element.
        name: &'static str,
        /// Its tag.
        tag: Tag,
    },
    /// The command field names a DIMSE service radroute does not implement.
    #[error("unsupported DIMSE command field {0:#06x}")]
    UnsupportedCommand(u16),
    /// Writing the command set failed (should not happen for well-formed values).
    #[error("cannot encode command set: {0}")]
    Encode(#[source] Box<dicom_object::WriteError>),
    /// An element declares a value longer than the bytes that follow it (the parser would size
    /// its buffer from the declared length before reading: a 4 GiB allocation from 100 bytes).
    #[error("command element {tag} declares {declared} bytes but only {available} follow")]
    DeclaredLength {
        /// The element.
        tag: Tag,
        /// Its declared value length.
        declared: u32,
        /// Bytes actually present after its header.
        available: usize,
    },
    /// An element outside group 0000, or of undefined length: command sets hold only command
    /// elements (PS3.7 section 6.3), all of defined length.
    #[error("command set holds {tag} {reason}")]
    NotCommandElement {
        /// The element.
        tag: Tag,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The bytes end inside an element header.
    #[error("command set ends inside an element header at offset {0}")]
    Truncated(usize),
    /// The shared pre-parse walk refuses it: the parser would lose its place in the bytes (a
    /// US of 1 byte is read as no element but counted as one byte), then size a buffer from a
    /// length inside a value (found by fuzzing `command_decode`: 168 MB from 83 bytes).
    #[error("command set cannot be parsed safely: {0}")]
    Unreadable(#[from] radroute_dataset::Refusal),
}

/// Checks every element header of an Implicit VR Little Endian command set before it is parsed:
/// each is a group-0000 element of defined length whose value lies within `bytes`. After this
/// the parser cannot allocate more than `bytes.len()` for any value.
pub fn check_element_lengths(bytes: &[u8]) -> Result<(), CommandError> {
    let mut at = 0usize;
    while at < bytes.len() {
        let header = bytes.get(at..at + 8).ok_or(CommandError::Truncated(at))?;
        let group = u16::from_le_bytes([header[0], header[1]]);
        let element = u16::from_le_bytes([header[2], header[3]]);
        let declared = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let tag = Tag(group, element);
        if group != 0x0000 {
            return Err(CommandError::NotCommandElement {
                tag,
                reason: "outside group 0000",
            });
        }
        if declared == u32::MAX {
            return Err(CommandError::NotCommandElement {
                tag,
                reason: "with an undefined length",
            });
        }
        let available = bytes.len() - at - 8;
        if declared as usize > available {
            return Err(CommandError::DeclaredLength {
                tag,
                declared,
                available,
            });
        }
        at += 8 + declared as usize;
    }
    // The one walker of data-set bytes (radroute-dataset) follows the parser where the flat
    // check above cannot: values that are not whole elements of their VR.
    radroute_dataset::check(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())?;
    Ok(())
}

/// C-STORE priority (0000,0700).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// 0000H.
    #[default]
    Medium,
    /// 0001H.
    High,
    /// 0002H.
    Low,
}

impl Priority {
    fn code(self) -> u16 {
        match self {
            Priority::Medium => 0,
            Priority::High => 1,
            Priority::Low => 2,
        }
    }
    fn from_code(code: u16) -> Self {
        match code {
            1 => Priority::High,
            2 => Priority::Low,
            _ => Priority::Medium,
        }
    }
}

/// C-ECHO-RQ: "are you there?"
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CEchoRq {
    /// Message ID.
    pub message_id: u16,
}

/// C-ECHO-RSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CEchoRsp {
    /// The request's message ID.
    pub message_id_being_responded_to: u16,
    /// Status, normally success.
    pub status: Status,
}

/// C-STORE-RQ: the command part of a store; the data set travels separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CStoreRq {
    /// Message ID.
    pub message_id: u16,
    /// SOP Class UID of the instance.
    pub affected_sop_class_uid: String,
    /// SOP Instance UID of the instance.
    pub affected_sop_instance_uid: String,
    /// Priority.
    pub priority: Priority,
    /// Move originator AE title, when the store is part of a C-MOVE.
    pub move_originator_ae_title: Option<String>,
    /// Move originator message ID, when the store is part of a C-MOVE.
    pub move_originator_message_id: Option<u16>,
}

/// C-STORE-RSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CStoreRsp {
    /// The request's message ID.
    pub message_id_being_responded_to: u16,
    /// SOP Class UID of the instance.
    pub affected_sop_class_uid: String,
    /// SOP Instance UID of the instance.
    pub affected_sop_instance_uid: String,
    /// Outcome of the store.
    pub status: Status,
    /// Free-text reason for a failure (Error Comment, at most 64 characters).
    pub error_comment: Option<String>,
}

/// Any command radroute understands, as decoded from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// C-ECHO-RQ.
    EchoRq(CEchoRq),
    /// C-ECHO-RSP.
    EchoRsp(CEchoRsp),
    /// C-STORE-RQ.
    StoreRq(CStoreRq),
    /// C-STORE-RSP.
    StoreRsp(CStoreRsp),
}

impl Command {
    /// Decodes a command set (Implicit VR Little Endian bytes of group 0000).
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        check_element_lengths(bytes)?;
        let obj =
            InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
                .map_err(|e| CommandError::Parse(Box::new(e)))?;
        let field = req_u16(&obj, COMMAND_FIELD, "Command Field")?;
        Ok(match field {
            C_ECHO_RQ => Command::EchoRq(CEchoRq {
                message_id: req_u16(&obj, MESSAGE_ID, "Message ID")?,
            }),
            C_ECHO_RSP => Command::EchoRsp(CEchoRsp {
                message_id_being_responded_to: req_u16(
                    &obj,
                    MESSAGE_ID_BEING_RESPONDED_TO,
                    "Message ID Being Responded To",
                )?,
                status: Status(req_u16(&obj, STATUS, "Status")?),
            }),
            C_STORE_RQ => Command::StoreRq(CStoreRq {
                message_id: req_u16(&obj, MESSAGE_ID, "Message ID")?,
                affected_sop_class_uid: req_str(
                    &obj,
                    AFFECTED_SOP_CLASS_UID,
                    "Affected SOP Class UID",
                )?,
                affected_sop_instance_uid: req_str(
                    &obj,
                    AFFECTED_SOP_INSTANCE_UID,
                    "Affected SOP Instance UID",
                )?,
                priority: Priority::from_code(opt_u16(&obj, PRIORITY).unwrap_or(0)),
                move_originator_ae_title: opt_str(&obj, MOVE_ORIGINATOR_AE_TITLE),
                move_originator_message_id: opt_u16(&obj, MOVE_ORIGINATOR_MESSAGE_ID),
            }),
            C_STORE_RSP => Command::StoreRsp(CStoreRsp {
                message_id_being_responded_to: req_u16(
                    &obj,
                    MESSAGE_ID_BEING_RESPONDED_TO,
                    "Message ID Being Responded To",
                )?,
                affected_sop_class_uid: opt_str(&obj, AFFECTED_SOP_CLASS_UID).unwrap_or_default(),
                affected_sop_instance_uid: opt_str(&obj, AFFECTED_SOP_INSTANCE_UID)
                    .unwrap_or_default(),
                status: Status(req_u16(&obj, STATUS, "Status")?),
                error_comment: opt_str(&obj, ERROR_COMMENT),
            }),
            other => return Err(CommandError::UnsupportedCommand(other)),
        })
    }

    /// Reads only the Command Field and Message ID, so that an SCP can answer an unsupported
    /// command with a proper status instead of dropping the association.
    pub fn peek_field(bytes: &[u8]) -> Option<(u16, Option<u16>)> {
        check_element_lengths(bytes).ok()?;
        let obj =
            InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
                .ok()?;
        Some((opt_u16(&obj, COMMAND_FIELD)?, opt_u16(&obj, MESSAGE_ID)))
    }

    /// True when a data set follows this command.
    pub fn has_data_set(&self) -> bool {
        matches!(self, Command::StoreRq(_))
    }

    /// Encodes the command set, Command Group Length first.
    pub fn encode(&self) -> Result<Vec<u8>, CommandError> {
        let mut obj = InMemDicomObject::new_empty();
        let mut data_set_type = NO_DATA_SET;
        match self {
            Command::EchoRq(rq) => {
                put_uid(
                    &mut obj,
                    AFFECTED_SOP_CLASS_UID,
                    crate::VERIFICATION_SOP_CLASS,
                );
                put_u16(&mut obj, COMMAND_FIELD, C_ECHO_RQ);
                put_u16(&mut obj, MESSAGE_ID, rq.message_id);
            }
            Command::EchoRsp(rsp) => {
                put_uid(
                    &mut obj,
                    AFFECTED_SOP_CLASS_UID,
                    crate::VERIFICATION_SOP_CLASS,
                );
                put_u16(&mut obj, COMMAND_FIELD, C_ECHO_RSP);
                put_u16(
                    &mut obj,
                    MESSAGE_ID_BEING_RESPONDED_TO,
                    rsp.message_id_being_responded_to,
                );
                put_u16(&mut obj, STATUS, rsp.status.0);
            }
            Command::StoreRq(rq) => {
                data_set_type = 0x0000;
                put_uid(&mut obj, AFFECTED_SOP_CLASS_UID, &rq.affected_sop_class_uid);
                put_u16(&mut obj, COMMAND_FIELD, C_STORE_RQ);
                put_u16(&mut obj, MESSAGE_ID, rq.message_id);
                put_u16(&mut obj, PRIORITY, rq.priority.code());
                put_uid(
                    &mut obj,
                    AFFECTED_SOP_INSTANCE_UID,
                    &rq.affected_sop_instance_uid,
                );
                if let Some(ae) = &rq.move_originator_ae_title {
                    obj.put(DataElement::new(
                        MOVE_ORIGINATOR_AE_TITLE,
                        VR::AE,
                        PrimitiveValue::from(pad_even(ae, b' ')),
                    ));
                }
                if let Some(id) = rq.move_originator_message_id {
                    put_u16(&mut obj, MOVE_ORIGINATOR_MESSAGE_ID, id);
                }
            }
            Command::StoreRsp(rsp) => {
                put_uid(
                    &mut obj,
                    AFFECTED_SOP_CLASS_UID,
                    &rsp.affected_sop_class_uid,
                );
                put_u16(&mut obj, COMMAND_FIELD, C_STORE_RSP);
                put_u16(
                    &mut obj,
                    MESSAGE_ID_BEING_RESPONDED_TO,
                    rsp.message_id_being_responded_to,
                );
                put_u16(&mut obj, STATUS, rsp.status.0);
                put_uid(
                    &mut obj,
                    AFFECTED_SOP_INSTANCE_UID,
                    &rsp.affected_sop_instance_uid,
                );
                if let Some(comment) = &rsp.error_comment {
                    let comment: String = comment.chars().take(64).collect();
                    obj.put(DataElement::new(
                        ERROR_COMMENT,
                        VR::LO,
                        PrimitiveValue::from(pad_even(&comment, b' ')),
                    ));
                }
            }
        }
        put_u16(&mut obj, COMMAND_DATA_SET_TYPE, data_set_type);

        let mut body = Vec::with_capacity(256);
        obj.write_dataset_with_ts(&mut body, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .map_err(|e| CommandError::Encode(Box::new(e)))?;
        let mut out = Vec::with_capacity(body.len() + 12);
        // (0000,0000) UL, implicit VR: tag, 4-byte length, 4-byte value.
        out.extend_from_slice(&COMMAND_GROUP_LENGTH.group().to_le_bytes());
        out.extend_from_slice(&COMMAND_GROUP_LENGTH.element().to_le_bytes());
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }
}

fn pad_even(s: &str, pad: u8) -> String {
    let mut s = s.to_string();
    if s.len() % 2 == 1 {
        s.push(pad as char);
    }
    s
}

fn put_uid(obj: &mut InMemDicomObject, tag: Tag, uid: &str) {
    obj.put(DataElement::new(
        tag,
        VR::UI,
        PrimitiveValue::from(pad_even(uid, 0)),
    ));
}

fn put_u16(obj: &mut InMemDicomObject, tag: Tag, value: u16) {
    obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
}

fn opt_u16(obj: &InMemDicomObject, tag: Tag) -> Option<u16> {
    obj.element_opt(tag).ok().flatten()?.to_int::<u16>().ok()
}

fn req_u16(obj: &InMemDicomObject, tag: Tag, name: &'static str) -> Result<u16, CommandError> {
    opt_u16(obj, tag).ok_or(CommandError::MissingElement { name, tag })
}

fn opt_str(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = obj.element_opt(tag).ok().flatten()?.to_str().ok()?;
    let trimmed = value.trim_end_matches(['\0', ' ']).trim_start();
    Some(trimmed.to_string())
}

fn req_str(obj: &InMemDicomObject, tag: Tag, name: &'static str) -> Result<String, CommandError> {
    opt_str(obj, tag)
        .filter(|s| !s.is_empty())
        .ok_or(CommandError::MissingElement { name, tag })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(cmd: Command) {
        let bytes = cmd.encode().expect("encode");
        assert_eq!(bytes.len() % 2, 0, "command sets have even length");
        let group_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        assert_eq!(group_len, bytes.len() - 12, "group length covers the rest");
        assert_eq!(Command::decode(&bytes).expect("decode"), cmd);
    }

    #[test]
    fn echo_roundtrips() {
        roundtrip(Command::EchoRq(CEchoRq { message_id: 7 }));
        roundtrip(Command::EchoRsp(CEchoRsp {
            message_id_being_responded_to: 7,
            status: Status::SUCCESS,
        }));
    }

    #[test]
    fn store_roundtrips_with_odd_uids() {
        roundtrip(Command::StoreRq(CStoreRq {
            message_id: 1,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            affected_sop_instance_uid: "1.2.3.4.5".into(),
            priority: Priority::High,
            move_originator_ae_title: Some("MOVER".into()),
            move_originator_message_id: Some(3),
        }));
        roundtrip(Command::StoreRsp(CStoreRsp {
            message_id_being_responded_to: 1,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            affected_sop_instance_uid: "1.2.3.4.5".into(),
            status: Status::CANNOT_UNDERSTAND,
            error_comment: Some("dataset does not parse".into()),
        }));
    }

    #[test]
    fn store_rq_announces_a_data_set() {
        let rq = Command::StoreRq(CStoreRq {
            message_id: 1,
            affected_sop_class_uid: "1.2".into(),
            affected_sop_instance_uid: "1.3".into(),
            priority: Priority::Medium,
            move_originator_ae_title: None,
            move_originator_message_id: None,
        });
        let bytes = rq.encode().expect("encode");
        // Command Data Set Type (0000,0800) must not be 0101H.
        let obj =
            InMemDicomObject::read_dataset_with_ts(&bytes[..], &IMPLICIT_VR_LITTLE_ENDIAN.erased())
                .expect("parse");
        assert_ne!(opt_u16(&obj, COMMAND_DATA_SET_TYPE), Some(NO_DATA_SET));
        let echo = Command::EchoRq(CEchoRq { message_id: 2 })
            .encode()
            .expect("encode");
        let obj =
            InMemDicomObject::read_dataset_with_ts(&echo[..], &IMPLICIT_VR_LITTLE_ENDIAN.erased())
                .expect("parse");
        assert_eq!(opt_u16(&obj, COMMAND_DATA_SET_TYPE), Some(NO_DATA_SET));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Command::decode(&[1, 2, 3]).is_err());
        assert!(Command::decode(&[]).is_err());
    }

    /// Found #1 of issue 10: a C-STORE-RQ whose Affected SOP Class UID declares ~4 GiB in a
    /// command set of ~100 bytes. Before the walk, dicom-parser reserved the declared length.
    #[test]
    fn huge_declared_length_is_refused_before_parsing() {
        let mut bytes = Command::StoreRq(CStoreRq {
            message_id: 1,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            affected_sop_instance_uid: "1.2.3".into(),
            priority: Priority::Medium,
            move_originator_ae_title: None,
            move_originator_message_id: None,
        })
        .encode()
        .expect("encode");
        // (0000,0002) follows the 12-byte group length: its length field is at 16..20.
        assert_eq!(&bytes[12..16], &[0, 0, 2, 0]);
        bytes[16..20].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let err = Command::decode(&bytes).expect_err("must be refused");
        assert!(
            matches!(
                err,
                CommandError::DeclaredLength {
                    declared: 0xFFFF_FFF0,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(Command::peek_field(&bytes), None);
    }

    /// Found by fuzzing (fuzz/regressions/command_decode): a Command Field (US) of 1 byte is
    /// read by dicom-parser as no value but counted as one byte, so the next header comes from
    /// the middle of the bytes, where a 168 MB length was waiting.
    #[test]
    fn values_that_are_not_whole_elements_are_refused() {
        // (0000,0100) US of 1 byte, then (0000,0800) of 8: every length fits the bytes.
        let mut bytes = vec![0, 0, 0, 1, 1, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0, 0, 0, 8, 8, 0, 0, 0]);
        bytes.extend_from_slice(&[0x0A; 8]);
        assert!(matches!(
            check_element_lengths(&bytes),
            Err(CommandError::Unreadable(
                radroute_dataset::Refusal::Misaligned { .. }
            ))
        ));
    }

    #[test]
    fn foreign_groups_undefined_lengths_and_torn_headers_are_refused() {
        // (0008,0016) in a command set: a data set element, whose nested lengths the walk
        // does not follow, so it is refused outright.
        let mut foreign = vec![0x08, 0x00, 0x16, 0x00, 2, 0, 0, 0, b'1', 0];
        assert!(matches!(
            check_element_lengths(&foreign),
            Err(CommandError::NotCommandElement { .. })
        ));
        foreign[0] = 0;
        foreign[1] = 0;
        assert!(check_element_lengths(&foreign).is_ok());
        let undefined = [0, 0, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(matches!(
            check_element_lengths(&undefined),
            Err(CommandError::NotCommandElement { .. })
        ));
        assert!(matches!(
            check_element_lengths(&[0, 0, 0, 1, 2]),
            Err(CommandError::Truncated(0))
        ));
    }

    #[test]
    fn unknown_command_field_is_reported() {
        let mut obj = InMemDicomObject::new_empty();
        put_u16(&mut obj, COMMAND_FIELD, 0x0020); // C-FIND-RQ
        put_u16(&mut obj, MESSAGE_ID, 9);
        let mut bytes = Vec::new();
        obj.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .expect("write");
        assert!(matches!(
            Command::decode(&bytes),
            Err(CommandError::UnsupportedCommand(0x0020))
        ));
        assert_eq!(Command::peek_field(&bytes), Some((0x0020, Some(9))));
    }
}

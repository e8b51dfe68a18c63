//! Reassembly of DIMSE messages from P-DATA values (PDVs).
//!
//! A message is a command set, optionally followed by a data set. Each travels as one or more
//! PDVs of its presentation context; the last fragment carries the "last" bit (PS3.8 annex E.2).
//! Peers fragment command sets too (dcmtk does for large PDUs set small), so both parts are
//! accumulated. The assembler is fed PDVs in arrival order and hands back whole messages.

use dicom_ul::pdu::{PDataValue, PDataValueType};

use crate::command::{Command, CommandError};

/// A complete DIMSE message: its decoded command and, when one followed, the data set bytes
/// exactly as received (in the presentation context's transfer syntax).
#[derive(Debug)]
pub struct AssembledMessage {
    /// Presentation context the message arrived on.
    pub presentation_context_id: u8,
    /// The decoded command.
    pub command: Command,
    /// Raw data set bytes, when the command announces one.
    pub data: Option<Vec<u8>>,
}

/// Why a stream of PDVs does not form valid messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReassemblyError {
    /// A data fragment arrived while no command was waiting for one.
    #[error("data PDV on presentation context {0} without a preceding command")]
    UnexpectedData(u8),
    /// Fragments of one message switched presentation context.
    #[error("PDV on presentation context {got} while a message on context {expected} is open")]
    ContextSwitch {
        /// Context of the open message.
        expected: u8,
        /// Context of the stray fragment.
        got: u8,
    },
    /// A command fragment arrived while a data set was being received.
    #[error("command PDV while a data set is being received on context {0}")]
    UnexpectedCommand(u8),
    /// The command set did not decode.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The command set decoded to a command radroute does not implement.
    #[error("unsupported command {field:#06x} (message id {message_id:?})")]
    Unsupported {
        /// Command Field.
        field: u16,
        /// Message ID, when readable.
        message_id: Option<u16>,
        /// Context it arrived on.
        presentation_context_id: u8,
    },
}

#[derive(Debug, Default)]
enum State {
    /// Waiting for the first fragment of a command.
    #[default]
    Idle,
    /// Accumulating command fragments.
    Command { pc: u8, buf: Vec<u8> },
    /// Command complete; accumulating the data set.
    Data {
        pc: u8,
        command: Command,
        buf: Vec<u8>,
    },
}

/// Accumulates PDVs into [`AssembledMessage`]s.
#[derive(Debug, Default)]
pub struct PDataAssembler {
    state: State,
    /// Size of the last data set: a modality sends images of one size in a row, so the next
    /// data set's buffer is sized for it up front instead of doubling its way there (each
    /// doubling of a 10 MB buffer copies it).
    last_data_len: usize,
}

/// Largest buffer reserved up front from the previous data set's size.
const MAX_RESERVE: usize = 256 << 20;

impl PDataAssembler {
    /// A fresh assembler, waiting for a command.
    pub fn new() -> Self {
        Self::default()
    }

    /// True while part of a message has been received but not all of it.
    pub fn is_mid_message(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Feeds one PDV. Returns a message when this PDV completed one.
    ///
    /// The PDV's bytes are moved, not copied, when a part consists of one fragment.
    pub fn push(&mut self, pdv: PDataValue) -> Result<Option<AssembledMessage>, ReassemblyError> {
        let pc = pdv.presentation_context_id;
        let state = std::mem::take(&mut self.state);
        match (state, pdv.value_type.clone()) {
            (State::Idle, PDataValueType::Command) => self.command_fragment(pc, Vec::new(), pdv),
            (State::Command { pc: open, buf }, PDataValueType::Command) => {
                if open != pc {
                    return Err(ReassemblyError::ContextSwitch {
                        expected: open,
                        got: pc,
                    });
                }
                self.command_fragment(pc, buf, pdv)
            }
            (State::Idle, PDataValueType::Data) => Err(ReassemblyError::UnexpectedData(pc)),
            (State::Command { pc: open, .. }, PDataValueType::Data) => {
                Err(ReassemblyError::UnexpectedData(open))
            }
            (
                State::Data {
                    pc: open,
                    command,
                    mut buf,
                },
                PDataValueType::Data,
            ) => {
                if open != pc {
                    return Err(ReassemblyError::ContextSwitch {
                        expected: open,
                        got: pc,
                    });
                }
                if buf.capacity() == 0 {
                    if pdv.is_last || self.last_data_len <= pdv.data.len() {
                        buf = pdv.data;
                    } else {
                        buf = Vec::with_capacity(self.last_data_len.min(MAX_RESERVE));
                        buf.extend_from_slice(&pdv.data);
                    }
                } else {
                    buf.extend_from_slice(&pdv.data);
                }
                if pdv.is_last {
                    self.last_data_len = buf.len();
                    Ok(Some(AssembledMessage {
                        presentation_context_id: pc,
                        command,
                        data: Some(buf),
                    }))
                } else {
                    self.state = State::Data { pc, command, buf };
                    Ok(None)
                }
            }
            (State::Data { pc: open, .. }, PDataValueType::Command) => {
                Err(ReassemblyError::UnexpectedCommand(open))
            }
        }
    }

    fn command_fragment(
        &mut self,
        pc: u8,
        mut buf: Vec<u8>,
        pdv: PDataValue,
    ) -> Result<Option<AssembledMessage>, ReassemblyError> {
        if buf.is_empty() {
            buf = pdv.data;
        } else {
            buf.extend_from_slice(&pdv.data);
        }
        if !pdv.is_last {
            self.state = State::Command { pc, buf };
            return Ok(None);
        }
        let command = match Command::decode(&buf) {
            Ok(command) => command,
            Err(CommandError::UnsupportedCommand(field)) => {
                let message_id = Command::peek_field(&buf).and_then(|(_, id)| id);
                return Err(ReassemblyError::Unsupported {
                    field,
                    message_id,
                    presentation_context_id: pc,
                });
            }
            Err(e) => return Err(e.into()),
        };
        if command.has_data_set() {
            self.state = State::Data {
                pc,
                command,
                buf: Vec::new(),
            };
            Ok(None)
        } else {
            Ok(Some(AssembledMessage {
                presentation_context_id: pc,
                command,
                data: None,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CEchoRq, CStoreRq, Priority};

    fn pdv(kind: PDataValueType, last: bool, data: &[u8]) -> PDataValue {
        PDataValue {
            presentation_context_id: 1,
            value_type: kind,
            is_last: last,
            data: data.to_vec(),
        }
    }

    #[test]
    fn fragmented_command_and_data_are_joined() {
        let cmd = Command::StoreRq(CStoreRq {
            message_id: 5,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            affected_sop_instance_uid: "1.2.3".into(),
            priority: Priority::Medium,
            move_originator_ae_title: None,
            move_originator_message_id: None,
        });
        let bytes = cmd.encode().expect("encode");
        let mut asm = PDataAssembler::new();
        for chunk in bytes.chunks(7).take(bytes.len().div_ceil(7) - 1) {
            assert!(asm
                .push(pdv(PDataValueType::Command, false, chunk))
                .expect("ok")
                .is_none());
        }
        let tail = &bytes[(bytes.len().div_ceil(7) - 1) * 7..];
        assert!(asm
            .push(pdv(PDataValueType::Command, true, tail))
            .expect("ok")
            .is_none());
        assert!(asm.is_mid_message());
        assert!(asm
            .push(pdv(PDataValueType::Data, false, b"abc"))
            .expect("ok")
            .is_none());
        let msg = asm
            .push(pdv(PDataValueType::Data, true, b"def"))
            .expect("ok")
            .expect("complete");
        assert_eq!(msg.command, cmd);
        assert_eq!(msg.data.as_deref(), Some(&b"abcdef"[..]));
        assert!(!asm.is_mid_message());
    }

    #[test]
    fn echo_completes_without_data() {
        let bytes = Command::EchoRq(CEchoRq { message_id: 1 })
            .encode()
            .expect("encode");
        let mut asm = PDataAssembler::new();
        let msg = asm
            .push(pdv(PDataValueType::Command, true, &bytes))
            .expect("ok")
            .expect("complete");
        assert!(msg.data.is_none());
    }

    #[test]
    fn data_without_command_is_an_error() {
        let mut asm = PDataAssembler::new();
        assert!(matches!(
            asm.push(pdv(PDataValueType::Data, true, b"x")),
            Err(ReassemblyError::UnexpectedData(1))
        ));
    }

    #[test]
    fn next_data_set_is_sized_from_the_last_one() {
        let cmd = Command::StoreRq(CStoreRq {
            message_id: 1,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            affected_sop_instance_uid: "1.2.3".into(),
            priority: Priority::Medium,
            move_originator_ae_title: None,
            move_originator_message_id: None,
        })
        .encode()
        .expect("encode");
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut asm = PDataAssembler::new();
        let mut send = || {
            asm.push(pdv(PDataValueType::Command, true, &cmd))
                .expect("ok");
            let mut out = None;
            for (i, chunk) in data.chunks(1000).enumerate() {
                out = asm
                    .push(pdv(PDataValueType::Data, i == 2, chunk))
                    .expect("ok");
            }
            out.expect("complete").data.expect("data")
        };
        let first = send();
        assert_eq!(first, data);
        let second = send();
        assert_eq!(second, data);
        // Reserved once at the right size, not grown by doubling.
        assert_eq!(second.capacity(), data.len());
    }
}

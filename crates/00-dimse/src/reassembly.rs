//! Reassembly of DIMSE messages from P-DATA values (PDVs).
//!
//! A message is a command set, optionally followed by a data set. Each travels as one or more
//! PDVs of its presentation context; the last fragment carries the "last" bit (PS3.8 annex E.2).
//! Peers fragment command sets too (dcmtk does for large PDUs set small), so both parts are
//! accumulated. The assembler is fed PDVs in arrival order and hands back whole messages.
//!
//! Both parts are bounded before they allocate: a command set by [`MAX_COMMAND_SET_LEN`], a data
//! set by the assembler's `max_data_len`. The caller learns the capacity a data PDV will need
//! ([`PDataAssembler::capacity_after`]) before pushing it, so it can reserve that memory from a
//! shared budget first (radroute-receive does).

use std::borrow::Cow;

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
    /// The command set grew past [`MAX_COMMAND_SET_LEN`].
    #[error("command set of {len} bytes exceeds the limit of {max}")]
    CommandTooLong {
        /// Bytes the command set would have with the refused fragment.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The data set grew past the assembler's limit.
    #[error("data set of more than {max} bytes ({len} so far)")]
    DataSetTooLarge {
        /// Bytes the data set would have with the refused fragment.
        len: usize,
        /// The limit.
        max: usize,
    },
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
#[derive(Debug)]
pub struct PDataAssembler {
    state: State,
    /// Size of the last data set: a modality sends images of one size in a row, so the next
    /// data set's buffer is sized for it up front instead of doubling its way there (each
    /// doubling of a 10 MB buffer copies it).
    last_data_len: usize,
    /// Largest data set accepted; past it, [`ReassemblyError::DataSetTooLarge`].
    max_data_len: usize,
}

impl Default for PDataAssembler {
    fn default() -> Self {
        Self::with_max_data_len(DEFAULT_MAX_DATA_LEN)
    }
}

/// Largest buffer reserved up front from the previous data set's size.
const MAX_RESERVE: usize = 256 << 20;

/// Largest command set accepted. A C-STORE-RQ is about 150 bytes and the largest DIMSE command
/// sets (N-GET with an attribute list) a few KiB; a command set is parsed whole, so its size is
/// capped well below anything that matters for memory.
pub const MAX_COMMAND_SET_LEN: usize = 16 << 10;

/// Data set limit of [`PDataAssembler::new`] (the SCP's default `max_instance_mb`).
pub const DEFAULT_MAX_DATA_LEN: usize = 256 << 20;

impl PDataAssembler {
    /// A fresh assembler, waiting for a command, accepting data sets up to
    /// [`DEFAULT_MAX_DATA_LEN`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh assembler accepting data sets of at most `max_data_len` bytes (0: no data set
    /// bytes at all, for a side that only expects responses).
    pub fn with_max_data_len(max_data_len: usize) -> Self {
        PDataAssembler {
            state: State::Idle,
            last_data_len: 0,
            max_data_len,
        }
    }

    /// Capacity in bytes of the data set buffer being filled (0 when none is open).
    pub fn data_capacity(&self) -> usize {
        match &self.state {
            State::Data { buf, .. } => buf.capacity(),
            _ => 0,
        }
    }

    /// The capacity the open data set's buffer will have once `pdv` is pushed, so that a
    /// caller can reserve the memory before it is allocated; the current capacity when `pdv`
    /// does not extend a data set. Fails as [`PDataAssembler::push`] would when the data set
    /// would grow past the limit.
    pub fn capacity_after(&self, pdv: &PDataValue) -> Result<usize, ReassemblyError> {
        let State::Data { pc, buf, .. } = &self.state else {
            return Ok(0);
        };
        if *pc != pdv.presentation_context_id || pdv.value_type != PDataValueType::Data {
            return Ok(buf.capacity());
        }
        self.grown_capacity(buf, pdv.data.len(), pdv.data.capacity(), pdv.is_last)
    }

    /// Capacity of `buf` after appending a fragment of `len` bytes held in a buffer of
    /// `capacity` (`is_last`: the data set's last): the first fragment is moved in as it is, or
    /// copied into a buffer sized from the last data set; later growth doubles (never past the
    /// limit), so a data set of n bytes costs O(log n) reallocations.
    fn grown_capacity(
        &self,
        buf: &Vec<u8>,
        len: usize,
        capacity: usize,
        is_last: bool,
    ) -> Result<usize, ReassemblyError> {
        let needed = buf.len().saturating_add(len);
        if needed > self.max_data_len {
            return Err(ReassemblyError::DataSetTooLarge {
                len: needed,
                max: self.max_data_len,
            });
        }
        let current = buf.capacity();
        if current == 0 {
            if is_last || self.last_data_len <= len {
                return Ok(capacity.max(needed));
            }
            return Ok(self
                .last_data_len
                .min(MAX_RESERVE)
                .min(self.max_data_len)
                .max(needed));
        }
        if needed <= current {
            return Ok(current);
        }
        Ok(current.saturating_mul(2).min(self.max_data_len).max(needed))
    }

    /// True while part of a message has been received but not all of it.
    pub fn is_mid_message(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Feeds one PDV. Returns a message when this PDV completed one.
    ///
    /// The PDV's bytes are moved, not copied, when a part consists of one fragment.
    pub fn push(&mut self, pdv: PDataValue) -> Result<Option<AssembledMessage>, ReassemblyError> {
        let PDataValue {
            presentation_context_id,
            value_type,
            is_last,
            data,
        } = pdv;
        self.feed(
            presentation_context_id,
            value_type,
            is_last,
            Cow::Owned(data),
        )
    }

    /// Feeds one PDV whose bytes stay the caller's: they are copied in, never moved, so the
    /// caller can hand the PDV's buffer on (the SCP gives it to the write-behind of the data set
    /// instead of copying it a second time).
    pub fn push_copied(
        &mut self,
        pdv: &PDataValue,
    ) -> Result<Option<AssembledMessage>, ReassemblyError> {
        self.feed(
            pdv.presentation_context_id,
            pdv.value_type.clone(),
            pdv.is_last,
            Cow::Borrowed(&pdv.data),
        )
    }

    fn feed(
        &mut self,
        pc: u8,
        value_type: PDataValueType,
        is_last: bool,
        data: Cow<'_, [u8]>,
    ) -> Result<Option<AssembledMessage>, ReassemblyError> {
        let state = std::mem::take(&mut self.state);
        match (state, value_type) {
            (State::Idle, PDataValueType::Command) => {
                self.command_fragment(pc, Vec::new(), is_last, data)
            }
            (State::Command { pc: open, buf }, PDataValueType::Command) => {
                if open != pc {
                    return Err(ReassemblyError::ContextSwitch {
                        expected: open,
                        got: pc,
                    });
                }
                self.command_fragment(pc, buf, is_last, data)
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
                let owned_capacity = match &data {
                    Cow::Owned(v) => v.capacity(),
                    Cow::Borrowed(_) => 0,
                };
                let target = self.grown_capacity(&buf, data.len(), owned_capacity, is_last)?;
                match data {
                    Cow::Owned(v) if buf.capacity() == 0 && target == v.capacity() => buf = v,
                    data => {
                        if target > buf.capacity() {
                            buf.reserve_exact(target - buf.len());
                        }
                        buf.extend_from_slice(&data);
                    }
                }
                if is_last {
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
        is_last: bool,
        data: Cow<'_, [u8]>,
    ) -> Result<Option<AssembledMessage>, ReassemblyError> {
        let len = buf.len().saturating_add(data.len());
        if len > MAX_COMMAND_SET_LEN {
            return Err(ReassemblyError::CommandTooLong {
                len,
                max: MAX_COMMAND_SET_LEN,
            });
        }
        if buf.is_empty() {
            buf = data.into_owned();
        } else {
            buf.extend_from_slice(&data);
        }
        if !is_last {
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

    /// `push_copied` assembles the same message as `push`, leaves every PDV's bytes with the
    /// caller, and sizes its buffer as `capacity_after` said (the SCP reserves that much).
    #[test]
    fn copied_fragments_assemble_the_same_message_and_stay_with_the_caller() {
        let cmd = Command::StoreRq(CStoreRq {
            message_id: 9,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            affected_sop_instance_uid: "1.2.4".into(),
            priority: Priority::Medium,
            move_originator_ae_title: None,
            move_originator_message_id: None,
        });
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut pdvs = vec![pdv(
            PDataValueType::Command,
            true,
            &cmd.encode().expect("encode"),
        )];
        let parts: Vec<&[u8]> = data.chunks(1_000).collect();
        for (i, part) in parts.iter().enumerate() {
            pdvs.push(pdv(PDataValueType::Data, i + 1 == parts.len(), part));
        }
        let (mut moved, mut copied) = (PDataAssembler::new(), PDataAssembler::new());
        let (mut by_move, mut by_copy) = (None, None);
        for p in &pdvs {
            let want = copied.capacity_after(p).expect("within limits");
            let out = copied.push_copied(p).expect("ok");
            assert!(copied.data_capacity() <= want.max(p.data.len()));
            by_copy = by_copy.or(out);
            by_move = by_move.or(moved.push(p.clone()).expect("ok"));
        }
        let (by_move, by_copy) = (by_move.expect("complete"), by_copy.expect("complete"));
        assert_eq!(by_copy.command, cmd);
        assert_eq!(by_copy.data.as_deref(), Some(&data[..]));
        assert_eq!(by_move.data, by_copy.data);
        assert_eq!(pdvs[1].data, data[..1_000], "the caller keeps its bytes");
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

    fn store_rq() -> Vec<u8> {
        Command::StoreRq(CStoreRq {
            message_id: 1,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            affected_sop_instance_uid: "1.2.3".into(),
            priority: Priority::Medium,
            move_originator_ae_title: None,
            move_originator_message_id: None,
        })
        .encode()
        .expect("encode")
    }

    /// Found #1 of issue 10, on either side (the SCP reading requests, the SCU reading
    /// responses): a command set of ~100 bytes declaring a ~4 GiB element is a protocol error,
    /// not a 4 GiB allocation.
    #[test]
    fn command_declaring_a_huge_element_is_an_error() {
        let mut cmd = store_rq();
        cmd[16..20].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        for mut asm in [PDataAssembler::new(), PDataAssembler::with_max_data_len(0)] {
            assert!(matches!(
                asm.push(pdv(PDataValueType::Command, true, &cmd)),
                Err(ReassemblyError::Command(
                    CommandError::DeclaredLength { .. }
                ))
            ));
        }
    }

    #[test]
    fn command_set_is_capped() {
        let mut asm = PDataAssembler::new();
        let chunk = vec![0u8; 4096];
        let mut refused = None;
        for i in 0..8 {
            match asm.push(pdv(PDataValueType::Command, false, &chunk)) {
                Ok(None) => {}
                Ok(Some(_)) => panic!("no message from unfinished fragments"),
                Err(e) => {
                    refused = Some((i, e));
                    break;
                }
            }
        }
        let (i, e) = refused.expect("refused before 32 KiB");
        assert_eq!(i * 4096, MAX_COMMAND_SET_LEN, "refused at the limit");
        assert!(matches!(e, ReassemblyError::CommandTooLong { .. }), "{e}");
    }

    /// Found #2 of issue 10: a data set that never ends is refused once it passes the limit,
    /// and the buffer never grows past the limit on the way.
    #[test]
    fn data_set_is_capped_and_capacity_is_announced() {
        let max = 10_000;
        let mut asm = PDataAssembler::with_max_data_len(max);
        asm.push(pdv(PDataValueType::Command, true, &store_rq()))
            .expect("command");
        let chunk = vec![7u8; 1500];
        let mut total = 0;
        loop {
            let next = pdv(PDataValueType::Data, false, &chunk);
            match asm.capacity_after(&next) {
                Ok(want) => {
                    assert!(want <= max, "announced {want} > {max}");
                    asm.push(next).expect("within the limit");
                    total += chunk.len();
                    assert_eq!(
                        asm.data_capacity(),
                        want,
                        "announced capacity is the real one"
                    );
                }
                Err(e) => {
                    assert!(total + chunk.len() > max);
                    assert!(matches!(e, ReassemblyError::DataSetTooLarge { .. }), "{e}");
                    assert!(matches!(
                        asm.push(next),
                        Err(ReassemblyError::DataSetTooLarge { .. })
                    ));
                    break;
                }
            }
        }
        // A responses-only assembler takes no data set bytes at all.
        let mut asm = PDataAssembler::with_max_data_len(0);
        asm.push(pdv(PDataValueType::Command, true, &store_rq()))
            .expect("command");
        assert!(asm.push(pdv(PDataValueType::Data, true, b"x")).is_err());
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

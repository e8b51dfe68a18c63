//! Splitting an outgoing DIMSE message into P-DATA-TF PDUs.
//!
//! Each PDU may hold at most the peer's maximum PDU length (its "max length received"); a PDV
//! inside costs 6 bytes of header (4 length, 1 context ID, 1 control header).

use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

/// Bytes of PDV item header inside a P-DATA-TF PDU.
const PDV_HEADER: usize = 6;

/// Splits `command` and optional `data` into P-DATA-TF PDUs for presentation context `pc`.
///
/// `peer_max_pdu` is the maximum PDU length the peer accepts (0 means unlimited by the standard;
/// it is treated as 16 MiB). Each PDU carries exactly one PDV.
pub fn fragment_message(
    pc: u8,
    command: Vec<u8>,
    data: Option<&[u8]>,
    peer_max_pdu: u32,
) -> Vec<Pdu> {
    let chunk = pdv_value_capacity(peer_max_pdu);
    let mut pdus = Vec::new();
    push_chunks(&mut pdus, pc, PDataValueType::Command, &command, chunk);
    if let Some(data) = data {
        push_chunks(&mut pdus, pc, PDataValueType::Data, data, chunk);
    }
    pdus
}

/// Splits a data set alone into P-DATA-TF PDUs for presentation context `pc` (its command was
/// sent before), as [`fragment_message`] does.
pub fn fragment_data(pc: u8, data: &[u8], peer_max_pdu: u32) -> Vec<Pdu> {
    let mut pdus = Vec::new();
    push_chunks(
        &mut pdus,
        pc,
        PDataValueType::Data,
        data,
        pdv_value_capacity(peer_max_pdu),
    );
    pdus
}

/// Value bytes one PDV may carry in a P-DATA-TF PDU for a peer maximum PDU length (0: unlimited,
/// treated as 16 MiB). The one rule every P-DATA writer of radroute follows: the PDUs built here
/// for dicom-ul and the PDU headers `radroute-forward` writes in front of `sendfile`.
pub fn pdv_value_capacity(peer_max_pdu: u32) -> usize {
    let max = if peer_max_pdu == 0 {
        16 << 20
    } else {
        peer_max_pdu as usize
    };
    max.saturating_sub(PDV_HEADER).max(2)
}

fn push_chunks(out: &mut Vec<Pdu>, pc: u8, kind: PDataValueType, bytes: &[u8], chunk: usize) {
    if bytes.is_empty() {
        out.push(Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: kind,
                is_last: true,
                data: Vec::new(),
            }],
        });
        return;
    }
    let n = bytes.len().div_ceil(chunk);
    for (i, part) in bytes.chunks(chunk).enumerate() {
        out.push(Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: kind.clone(),
                is_last: i + 1 == n,
                data: part.to_vec(),
            }],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CStoreRq, Command, Priority};
    use crate::PDataAssembler;

    #[test]
    fn fragments_fit_and_reassemble() {
        let cmd = Command::StoreRq(CStoreRq {
            message_id: 1,
            affected_sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            affected_sop_instance_uid: "9.8.7".into(),
            priority: Priority::Medium,
            move_originator_ae_title: None,
            move_originator_message_id: None,
        });
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let pdus = fragment_message(3, cmd.encode().expect("encode"), Some(&data), 1024);
        let mut asm = PDataAssembler::new();
        let mut done = None;
        for pdu in pdus {
            let Pdu::PData { data: pdvs } = pdu else {
                panic!("not pdata")
            };
            for pdv in pdvs {
                assert!(pdv.data.len() + PDV_HEADER <= 1024);
                if let Some(msg) = asm.push(pdv).expect("valid") {
                    done = Some(msg);
                }
            }
        }
        let msg = done.expect("message completes");
        assert_eq!(msg.presentation_context_id, 3);
        assert_eq!(msg.command, cmd);
        assert_eq!(msg.data.expect("data"), data);
    }
}

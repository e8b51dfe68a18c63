//! A hand-written DICOM peer on `std::net::TcpStream`: builders for the PDUs and command sets
//! that tests send byte by byte, for tests that must send what real tools (dcmtk, pynetdicom)
//! never send: a data set cut off half-way, a command set declaring a 4 GiB element, an
//! A-ASSOCIATE-RQ dribbled out one byte at a time.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

/// CR Image Storage, the SOP class the raw peer stores: what the sample instances are.
pub const CR: &str = "1.2.840.10008.5.1.4.1.1.1";
/// Verification (C-ECHO), proposed next to CR where a test also wants an echo context.
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
/// Explicit VR Little Endian, the one transfer syntax the raw peer proposes.
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
/// The DICOM application context name every A-ASSOCIATE-RQ carries.
pub const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";

/// A value padded to even length with NUL (UIDs), as items and elements need.
pub fn even(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

/// One A-ASSOCIATE-RQ item: type, reserved, 2-byte length, value; the pieces
/// [`associate_rq`] is built from, for tests that build a variant of it.
pub fn item(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![kind, 0];
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// An A-ASSOCIATE-RQ PDU from `calling` to `called` proposing each `(context id, abstract
/// syntax)` of `contexts` in Explicit VR LE, with a max PDU length of 16 KiB.
pub fn associate_rq(calling: &str, called: &str, contexts: &[(u8, &str)]) -> Vec<u8> {
    let ae = |s: &str| format!("{s:<16}").into_bytes();
    let mut body = vec![0, 1, 0, 0]; // protocol version 1, reserved
    body.extend(ae(called));
    body.extend(ae(calling));
    body.extend([0u8; 32]);
    body.extend(item(0x10, APPLICATION_CONTEXT.as_bytes()));
    for (id, abstract_syntax) in contexts {
        let mut pc = vec![*id, 0, 0, 0];
        pc.extend(item(0x30, abstract_syntax.as_bytes()));
        pc.extend(item(0x40, EXPLICIT_LE.as_bytes()));
        body.extend(item(0x20, &pc));
    }
    let mut user = item(0x51, &16384u32.to_be_bytes());
    user.extend(item(0x52, b"1.2.3.4"));
    body.extend(item(0x50, &user));
    let mut pdu = vec![0x01, 0];
    pdu.extend_from_slice(&(body.len() as u32).to_be_bytes());
    pdu.extend(body);
    pdu
}

/// A P-DATA-TF PDU with one PDV on context 1: a command or data fragment, last or not.
pub fn pdata(command: bool, last: bool, data: &[u8]) -> Vec<u8> {
    let control = u8::from(command) | (u8::from(last) << 1);
    let mut pdu = vec![0x04, 0];
    pdu.extend_from_slice(&((data.len() + 6) as u32).to_be_bytes());
    pdu.extend_from_slice(&((data.len() + 2) as u32).to_be_bytes());
    pdu.extend([1, control]);
    pdu.extend_from_slice(data);
    pdu
}

/// An Implicit VR LE element (command sets are always Implicit VR LE), so tests can write
/// command sets, valid or not.
pub fn element(group: u16, elem: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// A valid C-STORE-RQ command set for CR instance `uid`, announcing a data set.
pub fn store_rq(uid: &str) -> Vec<u8> {
    let mut body = element(0x0000, 0x0002, &even(CR));
    body.extend(element(0x0000, 0x0100, &1u16.to_le_bytes()));
    body.extend(element(0x0000, 0x0110, &1u16.to_le_bytes()));
    body.extend(element(0x0000, 0x0700, &0u16.to_le_bytes()));
    body.extend(element(0x0000, 0x0800, &0u16.to_le_bytes()));
    body.extend(element(0x0000, 0x1000, &even(uid)));
    let mut out = element(0x0000, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// Reads one PDU (type, body, at most 1 MiB kept); None when the peer closed or `limit`
/// passed, so a test can tell an answer from silence.
pub fn read_pdu(stream: &mut TcpStream, limit: Duration) -> Option<(u8, Vec<u8>)> {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut header = [0u8; 6];
    stream.read_exact(&mut header).ok()?;
    let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    let mut body = vec![0u8; len.min(1 << 20)];
    stream.read_exact(&mut body).ok()?;
    Some((header[0], body))
}

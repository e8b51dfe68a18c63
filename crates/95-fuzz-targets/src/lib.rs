//! The bodies of radroute's fuzz targets (fuzz/fuzz_targets/*.rs), as plain functions.
//!
//! The cargo-fuzz binaries (nightly flags, not workspace members) and the corpus replay test
//! (`tests/corpus_replay.rs`, run by `cargo test --workspace` on stable) call the same
//! functions, so the committed corpus is replayed through exactly what was fuzzed. Each target
//! takes arbitrary bytes and must neither panic nor allocate from a length it has not checked;
//! what it returns does not matter.
#![deny(missing_docs)]

use dicom_core::{DataElement, PrimitiveValue};
use dicom_dictionary_std::tags;
use dicom_ul::pdu::{PDataValue, PDataValueType};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets by name (the names of fuzz/fuzz_targets/*.rs and fuzz/corpus/*).
pub const TARGETS: [(&str, Target); 5] = [
    ("pdata_reassembly", pdata_reassembly),
    ("command_decode", command_decode),
    ("preparse_walk", preparse_walk),
    ("splice_point", splice_point),
    ("decode_entry", decode_entry),
];

/// Inflated size allowed to deflated inputs (the daemon's is configured; small here so a
/// bomb is found as a refusal, not as memory).
const MAX_INFLATED: usize = 4 << 20;

/// Transfer syntaxes a one-byte selector picks from.
const SYNTAXES: [&str; 6] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.4.70",
];

/// Splits a selector byte off `data`: the transfer syntax it picks and the rest.
fn syntax_and_rest(data: &[u8]) -> Option<(&'static str, &[u8])> {
    let (&selector, rest) = data.split_first()?;
    Some((SYNTAXES[selector as usize % SYNTAXES.len()], rest))
}

/// P-DATA reassembly: the input is a series of PDVs, each a flags byte (bit 0: command, bit 1:
/// last fragment, bits 2-7: presentation context id), a little-endian u16 length and that many
/// bytes (fewer at the end of the input), pushed into one [`radroute_dimse::PDataAssembler`]
/// as an association's PDUs would be; the first error ends it, as it aborts an association.
pub fn pdata_reassembly(mut data: &[u8]) {
    // A small data set limit, so long inputs exercise the limit too.
    let mut assembler = radroute_dimse::PDataAssembler::with_max_data_len(1 << 16);
    while let [flags, a, b, rest @ ..] = data {
        let len = (u16::from_le_bytes([*a, *b]) as usize).min(rest.len());
        let pdv = PDataValue {
            presentation_context_id: (flags >> 2) | 1,
            value_type: if flags & 1 == 1 {
                PDataValueType::Command
            } else {
                PDataValueType::Data
            },
            is_last: flags & 2 == 2,
            data: rest[..len].to_vec(),
        };
        data = &rest[len..];
        if assembler.push(pdv).is_err() {
            return;
        }
    }
}

/// Command-set parsing: the input is a command set (group 0000, Implicit VR Little Endian).
pub fn command_decode(data: &[u8]) {
    let _ = radroute_dimse::Command::decode(data);
}

/// The store step's read of a received data set (walk, bounded inflate, parse): a selector
/// byte picks the transfer syntax, the rest is the data set.
pub fn preparse_walk(data: &[u8]) {
    let Some((ts, rest)) = syntax_and_rest(data) else {
        return;
    };
    if let Ok(read) = radroute_dataset::read_received(rest, ts, MAX_INFLATED) {
        if let Some(n) = read.native {
            assert!(n.element < n.value && n.value < rest.len());
        }
    }
}

/// The forwarder's splice point: a selector byte picks the transfer syntax, the rest is a
/// Part-10 file; where its top-level Pixel Data starts must be a Pixel Data header inside it.
pub fn splice_point(data: &[u8]) {
    let Some((ts, file)) = syntax_and_rest(data) else {
        return;
    };
    if let Ok(Some(at)) = radroute_forward::part10::splice_offset(file, ts) {
        assert!(at + 8 <= file.len(), "splice point {at} past the end");
        let tag: [u8; 4] = if ts == "1.2.840.10008.1.2.2" {
            [0x7F, 0xE0, 0x00, 0x10]
        } else {
            [0xE0, 0x7F, 0x10, 0x00]
        };
        assert_eq!(&file[at..at + 4], &tag[..], "{ts}");
    }
}

/// The decode entry: a Part-10 file read as the store step reads a data set, then frame 0 to
/// the model input, as the processing step does with the object it is handed.
///
/// radroute-decode catches codec panics (dicom-pixeldata's RLE decoder indexes past a short
/// segment, for one) and reports them as corrupt pixel data: its fuzz binary installs a panic
/// hook that does not abort, so only a panic that escapes this function is a crash.
pub fn decode_entry(data: &[u8]) {
    let Ok((meta, read)) = radroute_dataset::read_part10(data, MAX_INFLATED) else {
        return;
    };
    let mut object = read.object;
    if let Some(n) = read.native {
        // As the store step does: the received bytes become the Pixel Data value.
        let Ok(offset) = radroute_forward::part10::dataset_offset(data) else {
            return;
        };
        let value = data[offset + n.value..].to_vec();
        object.put(DataElement::new(
            tags::PIXEL_DATA,
            n.vr,
            PrimitiveValue::from(value),
        ));
    }
    let obj = object.with_exact_meta(meta);
    let _ = radroute_decode::model_input(&obj);
}

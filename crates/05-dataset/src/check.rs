//! The structural check of a received data set, before the full parse.
//!
//! dicom-parser 0.10 trusts declared lengths: it allocates and zero-fills a value's declared
//! length before reading it, and accepts encapsulated Pixel Data whose last fragment is cut
//! short. Walking the element headers first ([`crate::walk`]) refuses such data sets in
//! microseconds. Only headers are read.

pub use crate::walk::{Refusal, MAX_NESTING};

/// Refuses a data set encoded in `ts` (not deflated: see [`crate::read_received`]) that the
/// parser cannot read within its bytes: a value, item or fragment declared longer than the
/// bytes left, encapsulated Pixel Data without its Sequence Delimitation Item, sequences nested
/// deeper than [`MAX_NESTING`]. What the parser fails on anyway (a header it cannot decode) is
/// left to the parser, which reads nothing past it.
pub fn check(data: &[u8], ts: &dicom_encoding::TransferSyntax) -> Result<(), Refusal> {
    crate::walk::walk(data, ts, |_| std::ops::ControlFlow::Continue(())).map(|_| ())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{check, Refusal, MAX_NESTING};
    use dicom_transfer_syntax_registry::entries::{
        EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
    };

    /// An Explicit VR Little Endian element; `declared` overrides the length field.
    pub(crate) fn explicit(
        tag: (u16, u16),
        vr: &[u8; 2],
        value: &[u8],
        declared: Option<u32>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(vr);
        let len = declared.unwrap_or(value.len() as u32);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&len.to_le_bytes());
        } else {
            out.extend_from_slice(&(len as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    /// An item, item delimiter or sequence delimiter (`element` E000, E00D, E0DD).
    pub(crate) fn item(element: u16, len: u32, value: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF];
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    /// An Implicit VR Little Endian element.
    fn implicit(tag: (u16, u16), value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    fn explicit_le(data: &[u8]) -> Result<(), Refusal> {
        check(data, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
    }

    #[test]
    fn well_formed_data_sets_pass() {
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        // A sequence of undefined length with one item.
        data.extend(explicit((0x0008, 0x1140), b"SQ", &[], Some(u32::MAX)));
        data.extend(item(
            0xE000,
            u32::MAX,
            &explicit((0x0008, 0x1155), b"UI", b"1.2\0\0", None),
        ));
        data.extend(item(0xE00D, 0, &[]));
        data.extend(item(0xE0DD, 0, &[]));
        // A defined-length sequence with a defined-length item.
        let inner = explicit((0x0008, 0x0100), b"SH", b"T-1234", None);
        let one = item(0xE000, inner.len() as u32, &inner);
        data.extend(explicit((0x0008, 0x2218), b"SQ", &one, None));
        // Encapsulated pixel data: empty offset table, one fragment.
        data.extend(explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX)));
        data.extend(item(0xE000, 0, &[]));
        data.extend(item(0xE000, 4, &[1, 2, 3, 4]));
        data.extend(item(0xE0DD, 0, &[]));
        assert_eq!(explicit_le(&data), Ok(()));

        let mut data = implicit((0x0008, 0x0018), b"1.2\0");
        data.extend(implicit((0x7FE0, 0x0010), &[0; 16]));
        assert_eq!(check(&data, &IMPLICIT_VR_LITTLE_ENDIAN.erased()), Ok(()));
    }

    #[test]
    fn lengths_beyond_the_data_are_caught() {
        // Native pixel data declared longer than what follows.
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        data.extend(explicit((0x7FE0, 0x0010), b"OW", &[0; 16], Some(8192)));
        assert!(matches!(
            explicit_le(&data),
            Err(Refusal::TooLong { declared: 8192, .. })
        ));
        // A pixel fragment cut short.
        let mut data = explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX));
        data.extend(item(0xE000, 0, &[]));
        data.extend(item(0xE000, 65536, &[0; 100]));
        assert!(matches!(
            explicit_le(&data),
            Err(Refusal::TooLong {
                declared: 65536,
                ..
            })
        ));
        // Fragments complete, sequence delimiter missing.
        let mut data = explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX));
        data.extend(item(0xE000, 0, &[]));
        data.extend(item(0xE000, 4, &[1, 2, 3, 4]));
        assert!(matches!(
            explicit_le(&data),
            Err(Refusal::Unterminated { .. })
        ));
    }

    /// Issue 10: the old walk gave up at the first undefined-length element that was not a
    /// sequence (UN) and let the parser read the rest. dicom-parser 0.10 reads an
    /// undefined-length UN as items in the data set's own encoding (Explicit VR here), so the
    /// Implicit VR content PS3.5 6.2.2 prescribes is misread: the value "DOE^JOHN" of
    /// (0010,0010) becomes a 4-byte length of 0x5E454F44 (1.58 GB) that the parser zero-fills.
    /// A conformant data set; the walk now reads it as the parser does and refuses it.
    pub(crate) fn un_of_undefined_length() -> Vec<u8> {
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        let content = implicit((0x0010, 0x0010), b"DOE^JOHN");
        data.extend(explicit((0x0009, 0x1010), b"UN", &[], Some(u32::MAX)));
        data.extend(item(0xE000, content.len() as u32, &content));
        data.extend(item(0xE0DD, 0, &[]));
        data
    }

    #[test]
    fn undefined_length_un_is_walked_as_the_parser_reads_it() {
        let data = un_of_undefined_length();
        assert!(matches!(
            explicit_le(&data),
            Err(Refusal::TooLong {
                declared: 0x5E45_4F44,
                ..
            })
        ));
        // Walked, not given up on: what follows an undefined-length UN is checked too.
        let mut data = explicit((0x0009, 0x1010), b"UN", &[], Some(u32::MAX));
        let inner = explicit((0x0010, 0x0010), b"PN", b"DOE^JOHN", None);
        data.extend(item(0xE000, inner.len() as u32, &inner));
        data.extend(item(0xE0DD, 0, &[]));
        assert_eq!(explicit_le(&data), Ok(()));
        data.extend(explicit(
            (0x0010, 0x0020),
            b"OB",
            &[0; 8],
            Some(0x4000_0000),
        ));
        assert!(matches!(
            explicit_le(&data),
            Err(Refusal::TooLong {
                declared: 0x4000_0000,
                ..
            })
        ));
    }

    #[test]
    fn item_headers_outside_sequences_are_values_to_the_parser() {
        // The parser reads a top-level Sequence Delimitation Item with a length as a value of
        // that length; the old walk stepped over its 8 bytes and checked the bytes of that
        // value as headers, then skipped the header the parser reads next.
        let hidden = explicit((0x0010, 0x0010), b"OB", &[], Some(0x4000_0000));
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        let cover = explicit(
            (0x0009, 0x0010),
            b"OB",
            &[0; 4],
            Some(4 + hidden.len() as u32),
        );
        data.extend(item(0xE0DD, cover.len() as u32, &cover));
        data.extend(hidden);
        assert!(matches!(
            explicit_le(&data),
            Err(Refusal::TooLong {
                declared: 0x4000_0000,
                ..
            })
        ));
    }

    #[test]
    fn deep_nesting_is_refused() {
        fn nested(levels: usize) -> Vec<u8> {
            let mut data = Vec::new();
            for _ in 0..levels {
                data.extend(explicit((0x0040, 0xA730), b"SQ", &[], Some(u32::MAX)));
                data.extend(item(0xE000, u32::MAX, &[]));
            }
            for _ in 0..levels {
                data.extend(item(0xE00D, 0, &[]));
                data.extend(item(0xE0DD, 0, &[]));
            }
            data
        }
        assert_eq!(explicit_le(&nested(MAX_NESTING)), Ok(()));
        assert!(matches!(
            explicit_le(&nested(MAX_NESTING + 1)),
            Err(Refusal::TooDeep { .. })
        ));
    }

    /// Found by fuzzing (preparse_walk, 1.14 GB malloc): dicom-parser 0.10 reads an FL of 6
    /// bytes as one float (4 bytes) but counts 6, so its next header starts 2 bytes early, inside
    /// the value, where the walk saw none: here an OB declaring 1 GiB.
    #[test]
    fn binary_values_of_a_partial_element_are_refused() {
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        data.extend(explicit(
            (0x0009, 0x1001),
            b"FL",
            &[0, 0, 0, 0, 0x09, 0x00],
            None,
        ));
        data.extend_from_slice(&[0x02, 0x10, b'O', b'B', 0, 0, 0, 0, 0, 0x40]);
        assert!(matches!(
            explicit_le(&data),
            Err(Refusal::Misaligned {
                declared: 6,
                size: 4,
                ..
            })
        ));
        // A Basic Offset Table that is not whole u32s.
        let mut data = explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX));
        data.extend(item(0xE000, 6, &[0; 6]));
        data.extend(item(0xE0DD, 0, &[]));
        assert!(matches!(
            explicit_le(&data),
            Err(Refusal::Misaligned { size: 4, .. })
        ));
    }

    #[test]
    fn sequence_headers_on_us_or_ss_attributes_are_refused() {
        // Smallest Image Pixel Value (US or SS) encoded as SQ.
        let data = explicit((0x0028, 0x0106), b"SQ", &[], Some(0));
        assert!(matches!(explicit_le(&data), Err(Refusal::Ambiguous { .. })));
    }
}

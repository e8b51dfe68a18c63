//! A cheap structural check of a received data set, before the full parse.
//!
//! dicom-parser 0.10 trusts declared lengths: it allocates and zero-fills a value's declared
//! length before reading it, and accepts encapsulated Pixel Data whose last fragment is cut
//! short. Walking the element headers first refuses such data sets in microseconds.

use dicom_dictionary_std::tags;

/// True when an element (or an item or pixel fragment) declares a defined length longer than the
/// bytes left in the data set, or when encapsulated Pixel Data has no Sequence Delimitation Item:
/// it is truncated or garbled, and can never be read.
///
/// Checked before parsing because dicom-parser 0.10 allocates and zero-fills a value's declared
/// length before reading it: one garbled header in a 38 KB data set cost 1.3 GB of memory and
/// 15-60 s of CPU per store. dicom-parser also accepts encapsulated Pixel Data whose last
/// fragment is cut short, which destinations then refuse forever. Only headers are read; on
/// anything the walk does not understand it returns false and leaves the verdict to the parser.
pub(crate) fn declares_length_beyond_data(
    data: &[u8],
    ts: &dicom_encoding::TransferSyntax,
) -> bool {
    use dicom_core::VR;
    const DEFLATED: &[&str] = &["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95"];
    if DEFLATED.contains(&ts.uid()) {
        return false;
    }
    let Some(decoder) = ts.decoder_for::<&[u8]>() else {
        return false;
    };
    let mut rest = data;
    let mut in_fragments = false;
    while rest.len() >= 8 {
        let Ok((header, _)) = decoder.decode_header(&mut rest) else {
            return false;
        };
        let len = header.len.get().map(|n| n as usize);
        if header.tag.group() == 0xFFFE {
            match (header.tag.element(), len) {
                // An item: a pixel fragment is skipped, a sequence item is walked into.
                (0xE000, Some(n)) if n > rest.len() => return true,
                (0xE000, Some(n)) if in_fragments => rest = &rest[n..],
                (0xE0DD, _) => in_fragments = false,
                _ => {}
            }
            continue;
        }
        match len {
            Some(n) if n > rest.len() => return true,
            // Walk into sequences; skip every other value.
            Some(_) if header.vr == VR::SQ => {}
            Some(n) => rest = &rest[n..],
            None if header.vr == VR::SQ => {}
            None if header.tag == tags::PIXEL_DATA => in_fragments = true,
            // Undefined length elsewhere (e.g. UN holding implicit VR): not ours to judge.
            None => return false,
        }
    }
    // Encapsulated Pixel Data must end with its Sequence Delimitation Item.
    in_fragments
}

#[cfg(test)]
mod tests {
    use super::{declares_length_beyond_data, native_pixels_at_end, NativePixels};
    use dicom_transfer_syntax_registry::entries::{
        EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
    };

    fn explicit(tag: (u16, u16), vr: &[u8; 2], value: &[u8], declared: Option<u32>) -> Vec<u8> {
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

    fn item(element: u16, len: u32, value: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF];
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn well_formed_data_sets_pass() {
        let ts = EXPLICIT_VR_LITTLE_ENDIAN.erased();
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
        // Encapsulated pixel data: empty offset table, one fragment.
        data.extend(explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX)));
        data.extend(item(0xE000, 0, &[]));
        data.extend(item(0xE000, 4, &[1, 2, 3, 4]));
        data.extend(item(0xE0DD, 0, &[]));
        assert!(!declares_length_beyond_data(&data, &ts));

        let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
        let mut data = Vec::new();
        data.extend_from_slice(&[0x08, 0, 0x18, 0, 4, 0, 0, 0]);
        data.extend_from_slice(b"1.2\0");
        assert!(!declares_length_beyond_data(&data, &ts));
    }

    #[test]
    fn native_pixels_at_the_end_are_found() {
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        let element = data.len();
        data.extend(explicit((0x7FE0, 0x0010), b"OW", &[1, 0, 2, 0], None));
        let explicit_le = "1.2.840.10008.1.2.1";
        assert_eq!(
            native_pixels_at_end(&data, explicit_le),
            Some(NativePixels {
                element,
                value: element + 12,
                vr: dicom_core::VR::OW
            })
        );
        // Something after Pixel Data, another syntax, encapsulated: parse it all.
        let mut trailing = data.clone();
        trailing.extend(explicit((0xFFFC, 0xFFFC), b"OB", &[0, 0], None));
        assert_eq!(native_pixels_at_end(&trailing, explicit_le), None);
        assert_eq!(native_pixels_at_end(&data, "1.2.840.10008.1.2.2"), None);
        let mut encapsulated = data[..element].to_vec();
        encapsulated.extend(explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX)));
        encapsulated.extend(item(0xE000, 0, &[]));
        encapsulated.extend(item(0xE0DD, 0, &[]));
        assert_eq!(native_pixels_at_end(&encapsulated, explicit_le), None);
        // Implicit VR Little Endian.
        let mut implicit = vec![0x08, 0, 0x18, 0, 4, 0, 0, 0];
        implicit.extend_from_slice(b"1.2\0");
        implicit.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, 2, 0, 0, 0, 7, 7]);
        let found = native_pixels_at_end(&implicit, "1.2.840.10008.1.2").expect("found");
        assert_eq!((found.element, found.value), (12, 20));
    }

    #[test]
    fn lengths_beyond_the_data_are_caught() {
        let ts = EXPLICIT_VR_LITTLE_ENDIAN.erased();
        // Native pixel data declared longer than what follows.
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        data.extend(explicit((0x7FE0, 0x0010), b"OW", &[0; 16], Some(8192)));
        assert!(declares_length_beyond_data(&data, &ts));
        // A pixel fragment cut short.
        let mut data = explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX));
        data.extend(item(0xE000, 0, &[]));
        data.extend(item(0xE000, 65536, &[0; 100]));
        assert!(declares_length_beyond_data(&data, &ts));
        // Fragments complete, sequence delimiter missing.
        let mut data = explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX));
        data.extend(item(0xE000, 0, &[]));
        data.extend(item(0xE000, 4, &[1, 2, 3, 4]));
        assert!(declares_length_beyond_data(&data, &ts));
    }
}

/// Where native Pixel Data sits in a received data set, when the data set can be parsed without
/// it: the header is `data[..element]`, the pixel value `data[value..]` (to the end, nothing
/// after it), `vr` OB or OW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NativePixels {
    pub element: usize,
    pub value: usize,
    pub vr: dicom_core::VR,
}

/// Finds native Pixel Data at the end of a little-endian data set (Implicit or Explicit VR
/// Little Endian), so the store step can parse the header alone and hand the pixels on as the
/// received bytes instead of copying them into the object. `None` (parse everything) for other
/// syntaxes, encapsulated or absent Pixel Data, or elements after it.
pub(crate) fn native_pixels_at_end(data: &[u8], ts_uid: &str) -> Option<NativePixels> {
    use dicom_core::VR;
    use dicom_encoding::TransferSyntaxIndex;
    const LITTLE_ENDIAN_NATIVE: [&str; 2] = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"];
    if !LITTLE_ENDIAN_NATIVE.contains(&ts_uid) {
        return None;
    }
    let element = radroute_forward::part10::pixel_data_offset(data, ts_uid)?;
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get(ts_uid)?;
    let decoder = ts.decoder_for::<&[u8]>()?;
    let mut rest = &data[element..];
    let (header, _) = decoder.decode_header(&mut rest).ok()?;
    let value = data.len() - rest.len();
    let len = header.len.get()? as usize;
    let vr = match header.vr {
        VR::OB => VR::OB,
        // Implicit VR: the dictionary's "OB or OW"; 16-bit samples are words.
        _ => VR::OW,
    };
    (header.tag == tags::PIXEL_DATA && value + len == data.len() && len > 0)
        .then_some(NativePixels { element, value, vr })
}

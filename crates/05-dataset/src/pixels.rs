//! Where Pixel Data sits in an encoded data set, found by the walk.

use std::ops::ControlFlow;

use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::walk::{walk, Outcome};

/// Offset of the top-level Pixel Data element's header (7FE0,0010) in a data set encoded in
/// `ts_uid`, walking element headers only ([`crate::walk`]). `None` when the data set has no
/// top-level Pixel Data, ends or is refused before it, is deflated or is in a syntax the walk
/// cannot read. Used by the forwarder to join a coerced header to the incoming pixels.
pub fn pixel_data_offset(dataset: &[u8], ts_uid: &str) -> Option<usize> {
    let ts = TransferSyntaxRegistry.get(ts_uid)?;
    let mut found = None;
    let outcome = walk(dataset, ts, |e| {
        if e.depth == 0 && e.tag.group() != 0xFFFE && e.tag >= tags::PIXEL_DATA {
            found = (e.tag == tags::PIXEL_DATA).then_some(e.at);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    matches!(outcome, Ok(Outcome::Stopped)).then_some(found)?
}

/// Where native Pixel Data sits in a received data set, when the data set can be parsed without
/// it: the header is `data[..element]`, the pixel value `data[value..]` (to the end, nothing
/// after it), `vr` OB or OW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativePixels {
    /// Offset of the Pixel Data element's header.
    pub element: usize,
    /// Offset of its value.
    pub value: usize,
    /// OB or OW.
    pub vr: VR,
}

/// Finds native Pixel Data at the end of a little-endian data set (Implicit or Explicit VR
/// Little Endian), so the store step can parse the header alone and hand the pixels on as the
/// received bytes instead of copying them into the object. `None` (parse everything) for other
/// syntaxes, encapsulated or absent Pixel Data, or elements after it.
pub fn native_pixels_at_end(data: &[u8], ts_uid: &str) -> Option<NativePixels> {
    const LITTLE_ENDIAN_NATIVE: [&str; 2] = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"];
    if !LITTLE_ENDIAN_NATIVE.contains(&ts_uid) {
        return None;
    }
    let element = pixel_data_offset(data, ts_uid)?;
    let ts = TransferSyntaxRegistry.get(ts_uid)?;
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

#[cfg(test)]
mod tests {
    use super::{native_pixels_at_end, pixel_data_offset, NativePixels};
    use crate::check::tests::{explicit, item};

    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

    #[test]
    fn native_pixels_at_the_end_are_found() {
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        let element = data.len();
        data.extend(explicit((0x7FE0, 0x0010), b"OW", &[1, 0, 2, 0], None));
        assert_eq!(
            native_pixels_at_end(&data, EXPLICIT_LE),
            Some(NativePixels {
                element,
                value: element + 12,
                vr: dicom_core::VR::OW
            })
        );
        // Something after Pixel Data, another syntax, encapsulated: parse it all.
        let mut trailing = data.clone();
        trailing.extend(explicit((0xFFFC, 0xFFFC), b"OB", &[0, 0], None));
        assert_eq!(native_pixels_at_end(&trailing, EXPLICIT_LE), None);
        assert_eq!(native_pixels_at_end(&data, "1.2.840.10008.1.2.2"), None);
        let mut encapsulated = data[..element].to_vec();
        encapsulated.extend(explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX)));
        encapsulated.extend(item(0xE000, 0, &[]));
        encapsulated.extend(item(0xE0DD, 0, &[]));
        assert_eq!(native_pixels_at_end(&encapsulated, EXPLICIT_LE), None);
        // Implicit VR Little Endian.
        let mut implicit = vec![0x08, 0, 0x18, 0, 4, 0, 0, 0];
        implicit.extend_from_slice(b"1.2\0");
        implicit.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, 2, 0, 0, 0, 7, 7]);
        let found = native_pixels_at_end(&implicit, IMPLICIT_LE).expect("found");
        assert_eq!((found.element, found.value), (12, 20));
        assert_eq!(pixel_data_offset(&implicit, IMPLICIT_LE), Some(12));
    }

    #[test]
    fn finds_top_level_pixel_data_past_nested_ones() {
        let mut data = explicit((0x0008, 0x0018), b"UI", b"1.2.3.4\0", None);
        // Icon Image Sequence (undefined length) whose item holds its own Pixel Data.
        data.extend(explicit((0x0088, 0x0200), b"SQ", &[], Some(u32::MAX)));
        let mut icon = explicit((0x0028, 0x0010), b"US", &[2, 0], None);
        icon.extend(explicit((0x7FE0, 0x0010), b"OB", &[], Some(u32::MAX)));
        icon.extend(item(0xE000, 0, &[]));
        icon.extend(item(0xE000, 2, &[9, 9]));
        icon.extend(item(0xE0DD, 0, &[]));
        data.extend(item(0xE000, u32::MAX, &icon));
        data.extend(item(0xE00D, 0, &[]));
        data.extend(item(0xE0DD, 0, &[]));
        // A defined-length sequence too.
        let inner = item(0xE000, 12, &explicit((0x7FE0, 0x0010), b"OB", &[], Some(0)));
        data.extend(explicit((0x0400, 0x0561), b"SQ", &inner, None));
        let at = data.len();
        data.extend(explicit((0x7FE0, 0x0010), b"OW", &[1, 2, 3, 4], None));
        data.extend(explicit((0xFFFC, 0xFFFC), b"OB", &[0, 0], None));
        assert_eq!(pixel_data_offset(&data, EXPLICIT_LE), Some(at));
        // Found from a prefix that ends inside the pixel value (the forwarder reads a head).
        assert_eq!(pixel_data_offset(&data[..at + 14], EXPLICIT_LE), Some(at));
        // Without top-level Pixel Data: trailing padding is not taken for it.
        let mut no_pixels = data[..at].to_vec();
        no_pixels.extend(explicit((0xFFFC, 0xFFFC), b"OB", &[0, 0], None));
        assert_eq!(pixel_data_offset(&no_pixels, EXPLICIT_LE), None);
        // Cut short before Pixel Data.
        assert_eq!(pixel_data_offset(&data[..at - 3], EXPLICIT_LE), None);
        assert_eq!(
            pixel_data_offset(&data, crate::syntax::DEFLATED_EXPLICIT_VR_LE),
            None
        );
    }
}

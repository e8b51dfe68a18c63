//! JPEG through libjpeg-turbo 3's TurboJPEG API: 12-bit lossy (JPEG Extended, process 4) and
//! lossless (process 14, any predictor, 2–16 bits), strict about corrupt data.
//!
//! jpeg-decoder, used by dicom-pixeldata, refuses sample precision 12; libjpeg-turbo ≥ 3 decodes it
//! (`tj3Decompress12`). The library is built from the source vendored in `turbojpeg-sys` and linked
//! statically, so nothing is needed at run time. The same library decodes 8-bit JPEG files for
//! [`crate::load_image_file`], which makes that decode identical to Pillow's (also libjpeg-turbo).

use std::ffi::CStr;
use std::os::raw::c_int;

use turbojpeg_sys as tj;

/// What a TurboJPEG decode gives back: interleaved samples and the stream's geometry.
pub(crate) struct TjImage<T> {
    pub width: u32,
    pub height: u32,
    pub components: u32,
    #[allow(dead_code)] // kept for diagnostics
    pub precision: u32,
    pub samples: Vec<T>,
}

/// Owns a TurboJPEG decompressor handle and frees it on drop.
struct Handle(tj::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed exactly once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Handle {
    fn new() -> Result<Self, String> {
        // SAFETY: plain constructor call; a null result is checked.
        let h = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if h.is_null() {
            return Err("cannot initialise TurboJPEG".into());
        }
        Ok(Handle(h))
    }

    fn error(&self) -> String {
        // SAFETY: the handle is valid; TurboJPEG returns a NUL-terminated static or per-handle
        // buffer that we copy at once.
        unsafe {
            let p = tj::tj3GetErrorStr(self.0);
            if p.is_null() {
                "unknown TurboJPEG error".into()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: valid handle, integer parameter query.
        unsafe { tj::tj3Get(self.0, param as c_int) }
    }

    /// Reads the header; returns (width, height, components, precision).
    fn header(&self, data: &[u8]) -> Result<(u32, u32, u32, u32), String> {
        // SAFETY: pointer and length describe a live slice.
        let rc =
            unsafe { tj::tj3DecompressHeader(self.0, data.as_ptr(), data.len() as tj::size_t) };
        if rc != 0 {
            return Err(self.error());
        }
        let w = self.get(tj::TJPARAM_TJPARAM_JPEGWIDTH);
        let h = self.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT);
        let p = self.get(tj::TJPARAM_TJPARAM_PRECISION);
        let cs = self.get(tj::TJPARAM_TJPARAM_COLORSPACE);
        if w <= 0 || h <= 0 {
            return Err(format!("invalid JPEG size {w}x{h}"));
        }
        let comps = if cs == tj::TJCS_TJCS_GRAY as c_int {
            1
        } else {
            3
        };
        Ok((w as u32, h as u32, comps, p.max(0) as u32))
    }
}

/// Number of samples of an image, refusing absurd sizes instead of overflowing.
fn sample_count(w: u32, h: u32, c: u32) -> Result<usize, String> {
    (w as usize)
        .checked_mul(h as usize)
        .and_then(|n| n.checked_mul(c as usize))
        .filter(|n| *n <= 1 << 31)
        .ok_or_else(|| format!("JPEG too large: {w}x{h}x{c}"))
}

fn pixel_format(components: u32) -> c_int {
    if components == 1 {
        tj::TJPF_TJPF_GRAY as c_int
    } else {
        tj::TJPF_TJPF_RGB as c_int
    }
}

/// Decodes a lossy (8–12-bit) or lossless (2–16-bit) JPEG into interleaved `u16` samples
/// (gray or RGB). Warnings such as "corrupt JPEG data" are errors: a damaged stream must not
/// become a plausible-looking image.
pub(crate) fn decode_any(data: &[u8], want_components: u32) -> Result<TjImage<u16>, String> {
    let h = Handle::new()?;
    // SAFETY: valid handle, integer parameter.
    unsafe { tj::tj3Set(h.0, tj::TJPARAM_TJPARAM_STOPONWARNING as c_int, 1) };
    let (w, ht, _, precision) = h.header(data)?;
    let n = sample_count(w, ht, want_components)?;
    let pf = pixel_format(want_components);
    let (ptr, len) = (data.as_ptr(), data.len() as tj::size_t);
    let (rc, samples) = match precision {
        2..=8 => {
            let mut out = vec![0u8; n];
            // SAFETY: `out` holds width*height*components samples; pitch 0 = tightly packed.
            let rc = unsafe { tj::tj3Decompress8(h.0, ptr, len, out.as_mut_ptr(), 0, pf) };
            (rc, out.into_iter().map(u16::from).collect())
        }
        9..=12 => {
            let mut out = vec![0i16; n];
            // SAFETY: as above.
            let rc = unsafe { tj::tj3Decompress12(h.0, ptr, len, out.as_mut_ptr(), 0, pf) };
            (rc, out.into_iter().map(|v| v.max(0) as u16).collect())
        }
        13..=16 => {
            let mut out = vec![0u16; n];
            // SAFETY: as above.
            let rc = unsafe { tj::tj3Decompress16(h.0, ptr, len, out.as_mut_ptr(), 0, pf) };
            (rc, out)
        }
        p => return Err(format!("unsupported JPEG sample precision {p}")),
    };
    if rc != 0 {
        return Err(h.error());
    }
    Ok(TjImage {
        width: w,
        height: ht,
        components: want_components,
        precision,
        samples,
    })
}

/// Decodes an 8-bit JPEG into gray (1 component) or RGB (3) samples.
pub(crate) fn decode8(data: &[u8]) -> Result<TjImage<u8>, String> {
    let h = Handle::new()?;
    let (w, ht, comps, precision) = h.header(data)?;
    if precision != 8 {
        return Err(format!("sample precision {precision}, expected 8"));
    }
    let n = sample_count(w, ht, comps)?;
    let mut out = vec![0u8; n];
    // SAFETY: as in decode12.
    let rc = unsafe {
        tj::tj3Decompress8(
            h.0,
            data.as_ptr(),
            data.len() as tj::size_t,
            out.as_mut_ptr(),
            0,
            pixel_format(comps),
        )
    };
    if rc != 0 {
        return Err(h.error());
    }
    Ok(TjImage {
        width: w,
        height: ht,
        components: comps,
        precision,
        samples: out,
    })
}

/// Sample precision of the first SOF marker of a JPEG stream, if one is found.
pub(crate) fn sof_precision(data: &[u8]) -> Option<u8> {
    let mut i = 2usize; // after SOI
    if data.get(0..2)? != [0xFF, 0xD8] {
        return None;
    }
    while i + 4 <= data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            return data.get(i + 4).copied();
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sof_precision_reads_first_frame_header() {
        let stream = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC1, 0x00, 0x0B, 12,
        ];
        assert_eq!(sof_precision(&stream), Some(12));
        assert_eq!(sof_precision(&[0x00, 0x01]), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_any(&[0xFF, 0xD8, 0xFF, 0xC1, 0, 2], 1).is_err());
        assert!(decode8(b"not a jpeg").is_err());
    }
}

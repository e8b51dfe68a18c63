//! Deflated data sets inflated with a bound.
//!
//! A deflate stream compresses runs of zeros about 1000:1, so a 1 MB data set can inflate to
//! a gigabyte: the inflated size, not the received one, is what the parse costs. Inflating
//! here, up to a cap, lets the walk check the inflated bytes and the parser read them from
//! memory instead of from the stream.

use std::io::Read;

use crate::walk::Refusal;

/// Inflates the raw deflate stream `data` (PS3.5 A.5: no zlib header) into at most `max`
/// bytes. The stream is inflated twice: once to count, into nothing, stopping past `max` (a
/// bomb is refused having cost CPU only), then into a buffer of exactly the size counted.
pub fn inflate_bounded(data: &[u8], max: usize) -> Result<Vec<u8>, Refusal> {
    let limit = (max as u64).saturating_add(1);
    let inflate_error = |e: std::io::Error| Refusal::Inflate(e.to_string());
    let len = std::io::copy(
        &mut flate2::read::DeflateDecoder::new(data).take(limit),
        &mut std::io::sink(),
    )
    .map_err(inflate_error)?;
    if len > max as u64 {
        return Err(Refusal::InflatesTooLarge { max });
    }
    let mut out = Vec::with_capacity(len as usize);
    flate2::read::DeflateDecoder::new(data)
        .take(len)
        .read_to_end(&mut out)
        .map_err(inflate_error)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::inflate_bounded;
    use crate::walk::Refusal;
    use std::io::Write;

    pub(crate) fn deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn inflates_within_the_cap_and_refuses_past_it() {
        let plain = vec![7u8; 100_000];
        let packed = deflate(&plain);
        assert!(packed.len() < 1000, "{}", packed.len());
        assert_eq!(inflate_bounded(&packed, 100_000).unwrap(), plain);
        assert_eq!(
            inflate_bounded(&packed, 99_999),
            Err(Refusal::InflatesTooLarge { max: 99_999 })
        );
        assert!(matches!(
            inflate_bounded(&[0xFF, 0xFF, 0xFF], 10),
            Err(Refusal::Inflate(_))
        ));
    }
}

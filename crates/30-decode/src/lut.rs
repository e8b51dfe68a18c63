//! Lookup tables of the Modality LUT Sequence (0028,3000) and VOI LUT Sequence (0028,3010).

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::DecodeError;

/// One LUT: input values `first ..= first + data.len() - 1` map to `data`; values outside clamp
/// to the first or last entry (PS3.3 C.11.1.1 / C.11.2.1.1).
#[derive(Debug, Clone)]
pub(crate) struct Lut {
    pub first: i64,
    pub bits: u32,
    pub data: Vec<f32>,
}

impl Lut {
    /// Output for input `x` (rounded to the nearest integer index).
    pub fn apply(&self, x: f32) -> f32 {
        let last = self.data.len() as i64 - 1;
        let i = (x.round() as i64 - self.first).clamp(0, last);
        self.data[i as usize]
    }

    /// The largest value an entry can have, `2^bits - 1`.
    pub fn max_value(&self) -> f32 {
        ((1u64 << self.bits.clamp(1, 32)) - 1) as f32
    }
}

/// The first item's LUT of sequence `seq_tag`, if the sequence is present and has an item.
pub(crate) fn first_lut(
    obj: &InMemDicomObject,
    seq_tag: Tag,
    name: &'static str,
    signed_input: bool,
    uid: &str,
) -> Result<Option<Lut>, DecodeError> {
    let Some(seq) = obj.element_opt(seq_tag).ok().flatten() else {
        return Ok(None);
    };
    let Some(item) = seq.items().and_then(|items| items.first()) else {
        return Ok(None);
    };
    let invalid = |value: String| DecodeError::InvalidAttribute {
        uid: uid.to_string(),
        name,
        value,
    };
    let desc: Vec<i64> = item
        .element_opt(tags::LUT_DESCRIPTOR)
        .ok()
        .flatten()
        .ok_or_else(|| invalid("item without LUT Descriptor".into()))?
        .to_multi_int::<i64>()
        .map_err(|e| invalid(format!("LUT Descriptor: {e}")))?;
    let [n, first, bits] = desc[..] else {
        return Err(invalid(format!("LUT Descriptor {desc:?}")));
    };
    // a US value of 0 entries means 65536; the first mapped value is SS when the input is signed
    let n = match n {
        0 => 65536,
        1..=65535 => n as usize,
        _ => return Err(invalid(format!("LUT Descriptor entries {n}"))),
    };
    let first = if signed_input && first > 32767 {
        first - 65536
    } else {
        first
    };
    let raw: Vec<u16> = item
        .element_opt(tags::LUT_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| invalid("item without LUT Data".into()))?
        .to_multi_int::<u16>()
        .map_err(|e| invalid(format!("LUT Data: {e}")))?;
    let data: Vec<f32> = if raw.len() >= n {
        raw[..n].iter().map(|&v| f32::from(v)).collect()
    } else if bits <= 8 && raw.len() * 2 >= n {
        // 8-bit entries packed two per 16-bit word
        raw.iter()
            .flat_map(|w| w.to_le_bytes())
            .take(n)
            .map(f32::from)
            .collect()
    } else {
        return Err(invalid(format!(
            "{} LUT entries for {n} declared",
            raw.len()
        )));
    };
    if !(1..=16).contains(&bits) {
        return Err(invalid(format!("LUT bits {bits}")));
    }
    Ok(Some(Lut {
        first,
        bits: bits as u32,
        data,
    }))
}

//! Small typed readers of header attributes, mapping absence and bad values to [`DecodeError`].

use dicom_core::Tag;
use dicom_object::InMemDicomObject;

use crate::DecodeError;

/// SOP Instance UID of the object, or `"?"`, for error messages.
pub(crate) fn uid_of(obj: &InMemDicomObject) -> String {
    string_opt(obj, dicom_dictionary_std::tags::SOP_INSTANCE_UID).unwrap_or_else(|| "?".into())
}

/// The trimmed string value of an attribute, if present and non-empty.
pub(crate) fn string_opt(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok().flatten()?;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// A required unsigned 16-bit attribute (Rows, Columns, Bits Allocated ...).
pub(crate) fn req_u16(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &'static str,
    uid: &str,
) -> Result<u16, DecodeError> {
    opt_u16(obj, tag, name, uid)?.ok_or_else(|| DecodeError::MissingAttribute {
        uid: uid.to_string(),
        name,
    })
}

/// An optional unsigned 16-bit attribute; present but unreadable is an error.
pub(crate) fn opt_u16(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &'static str,
    uid: &str,
) -> Result<Option<u16>, DecodeError> {
    let Some(e) = obj.element_opt(tag).ok().flatten() else {
        return Ok(None);
    };
    if e.value().primitive().is_some_and(|p| p.multiplicity() == 0) {
        return Ok(None);
    }
    e.to_int::<u16>()
        .map(Some)
        .map_err(|_| DecodeError::InvalidAttribute {
            uid: uid.to_string(),
            name,
            value: e.to_str().map(|s| s.into_owned()).unwrap_or_default(),
        })
}

/// The first value of a decimal-string attribute (Rescale Slope, Window Center ...).
/// Absent or empty gives `None`; unparsable gives an error.
pub(crate) fn opt_f64_first(
    obj: &InMemDicomObject,
    tag: Tag,
    name: &'static str,
    uid: &str,
) -> Result<Option<f64>, DecodeError> {
    let Some(e) = obj.element_opt(tag).ok().flatten() else {
        return Ok(None);
    };
    if e.value().primitive().is_some_and(|p| p.multiplicity() == 0) {
        return Ok(None);
    }
    // parse the text: the first backslash-separated value (also covers values that an editor
    // stored as one string containing backslashes)
    let text = e.to_str().map(|s| s.into_owned()).unwrap_or_default();
    let first = text
        .split('\\')
        .next()
        .unwrap_or("")
        .trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if first.is_empty() {
        return Ok(None);
    }
    let vals: Vec<f64> = match first.parse::<f64>() {
        Ok(v) => vec![v],
        Err(_) => e
            .to_multi_float64()
            .map_err(|_| DecodeError::InvalidAttribute {
                uid: uid.to_string(),
                name,
                value: text.clone(),
            })?,
    };
    match vals.first() {
        Some(v) if v.is_finite() => Ok(Some(*v)),
        Some(v) => Err(DecodeError::InvalidAttribute {
            uid: uid.to_string(),
            name,
            value: v.to_string(),
        }),
        None => Ok(None),
    }
}

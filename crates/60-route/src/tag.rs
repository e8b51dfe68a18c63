//! Attribute tags and the trait through which conditions read an instance's attributes.

use std::fmt;

use dicom_core::dictionary::{DataDictionary, TagRange};
use dicom_dictionary_std::StandardDataDictionary;

/// A DICOM attribute tag, (group, element). Own type so that callers need no dicom-rs types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    /// Group number.
    pub group: u16,
    /// Element number.
    pub element: u16,
}

impl Tag {
    /// Modality (0008,0060), read by the `modality` condition.
    pub const MODALITY: Tag = Tag::new(0x0008, 0x0060);

    /// A tag from its group and element numbers.
    pub const fn new(group: u16, element: u16) -> Tag {
        Tag { group, element }
    }

    /// What this attribute is when routing may not edit it (identity, file meta, group
    /// lengths, pixel data, the audit trail of prior values), else `None`. The one list both
    /// check-config (rule validation) and the edit step consult.
    pub fn protected(self) -> Option<&'static str> {
        match (self.group, self.element) {
            (0x0002, _) => Some("file meta information"),
            (_, 0x0000) => Some("a group length"),
            (0x0008, 0x0016) => Some("SOPClassUID"),
            (0x0008, 0x0018) => Some("SOPInstanceUID"),
            (0x0020, 0x000D) => Some("StudyInstanceUID"),
            (0x0020, 0x000E) => Some("SeriesInstanceUID"),
            (0x0400, 0x0561) => Some("OriginalAttributesSequence"),
            (0x7FE0, 0x0010) => Some("PixelData"),
            _ => None,
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:04X},{:04X})", self.group, self.element)
    }
}

/// Read access to an instance's attributes, implemented by the caller (e.g. over a
/// dicom-rs `InMemDicomObject`) so that this crate stays independent of the object model.
pub trait Attributes {
    /// The value as a string (multiple values joined with `\`), or `None` when absent or
    /// not representable as text.
    fn get(&self, tag: Tag) -> Option<String>;
    /// Whether the attribute is present (even if empty or binary).
    fn exists(&self, tag: Tag) -> bool {
        self.get(tag).is_some()
    }
}

/// Resolves a keyword (`InstitutionName`, standard dictionary) or a tag written as
/// `(gggg,eeee)`, `gggg,eeee` or `ggggeeee` (hexadecimal) to a [`Tag`].
/// The error is a short reason suitable for a config error message.
pub fn parse_tag(text: &str) -> Result<Tag, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty tag".into());
    }
    let inner = t
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(t);
    let hex: String = inner.chars().filter(|c| *c != ',').collect();
    let looks_numeric = inner.contains(',') || t.starts_with('(') || hex.len() == 8;
    if looks_numeric && hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let (g, e) = hex.split_at(4);
        if inner.contains(',') && inner.find(',') != Some(4) {
            return Err(format!("malformed tag {t:?}, expected (gggg,eeee)"));
        }
        let group = u16::from_str_radix(g, 16).map_err(|e| e.to_string())?;
        let element = u16::from_str_radix(e, 16).map_err(|e| e.to_string())?;
        return Ok(Tag::new(group, element));
    }
    if looks_numeric && (t.starts_with('(') || inner.contains(',')) {
        return Err(format!("malformed tag {t:?}, expected (gggg,eeee)"));
    }
    match StandardDataDictionary.by_name(t) {
        Some(entry) => match entry.tag {
            TagRange::Single(tag) => Ok(Tag::new(tag.group(), tag.element())),
            _ => Err(format!(
                "keyword {t:?} names a range of tags; write the tag as (gggg,eeee)"
            )),
        },
        None => Err(format!(
            "unknown keyword {t:?} (not in the standard dictionary)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_and_keywords() {
        let inst = Tag::new(0x0008, 0x0080);
        assert_eq!(parse_tag("InstitutionName"), Ok(inst));
        assert_eq!(parse_tag("(0008,0080)"), Ok(inst));
        assert_eq!(parse_tag("0008,0080"), Ok(inst));
        assert_eq!(parse_tag("00080080"), Ok(inst));
        assert_eq!(parse_tag("(0009,10ab)"), Ok(Tag::new(0x0009, 0x10ab)));
        assert!(parse_tag("InstitutionNam").is_err());
        assert!(parse_tag("(0008,008)").is_err());
        assert!(parse_tag("(00G8,0080)").is_err());
        assert!(parse_tag("").is_err());
        assert_eq!(inst.to_string(), "(0008,0080)");
    }
}

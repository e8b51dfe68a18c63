//! Transfer-syntax facts used across the workspace, in one place.

use dicom_dictionary_std::uids;

/// Deflated Explicit VR Little Endian.
pub const DEFLATED_EXPLICIT_VR_LE: &str = uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;

/// Transfer syntaxes whose data set is deflated (PS3.5 A.5): Deflated Explicit VR Little
/// Endian, JPIP Referenced Deflate and JPIP HTJ2K Referenced Deflate. Their bytes are not
/// element headers until inflated; inflated, they are Explicit VR Little Endian.
pub const DEFLATED_SYNTAXES: [&str; 3] = [
    uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    uids::JPIP_REFERENCED_DEFLATE,
    uids::JPIPHTJ2K_REFERENCED_DEFLATE,
];

/// True when `ts_uid` (trailing NUL or space padding ignored) is a deflated transfer syntax.
pub fn is_deflated(ts_uid: &str) -> bool {
    DEFLATED_SYNTAXES.contains(&ts_uid.trim_end_matches(['\0', ' ']))
}

#[cfg(test)]
mod tests {
    #[test]
    fn deflated_syntaxes_are_known_with_padding() {
        assert!(super::is_deflated("1.2.840.10008.1.2.1.99\0"));
        assert!(super::is_deflated("1.2.840.10008.1.2.4.95"));
        assert!(!super::is_deflated("1.2.840.10008.1.2.1"));
    }
}

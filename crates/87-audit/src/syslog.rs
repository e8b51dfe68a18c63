//! RFC 5424 syslog messages carrying an audit message, framed for a stream transport by
//! octet counting (RFC 5425 section 4.3, which RFC 6587 also uses over plain TCP):
//! `MSG-LEN SP <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - BOM XML`.
//!
//! IHE ITI-20 asks for facility 10 (authpriv) and severity 5 (notice), hence PRI 85, and
//! MSGID `IHE+RFC-3881`.

use chrono::{DateTime, SecondsFormat, Utc};

/// `<PRI>`: facility authpriv (10) × 8 + severity notice (5).
const PRI: u8 = 85;
/// MSGID of an ATNA audit message.
const MSGID: &str = "IHE+RFC-3881";
/// The UTF-8 byte order mark that tells the receiver MSG is UTF-8 (RFC 5424 6.4).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A header field: printable US-ASCII without spaces, at most `max` characters, `-` when
/// nothing is left (RFC 5424 6.2: NILVALUE).
fn header_field(value: &str, max: usize) -> String {
    let s: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// One framed syslog message carrying `xml`, ready to write to the stream.
pub fn frame(
    xml: &str,
    at: DateTime<Utc>,
    hostname: &str,
    app_name: &str,
    process_id: u32,
) -> Vec<u8> {
    let header = format!(
        "<{PRI}>1 {} {} {} {} {MSGID} - ",
        at.to_rfc3339_opts(SecondsFormat::Millis, true),
        header_field(hostname, 255),
        header_field(app_name, 48),
        process_id,
    );
    let len = header.len() + BOM.len() + xml.len();
    let mut out = Vec::with_capacity(len + 12);
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(BOM);
    out.extend_from_slice(xml.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_count_covers_the_whole_message() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap_or_default();
        let framed = frame("<a/>", at, "my host", "radroute", 42);
        let text = String::from_utf8_lossy(&framed).into_owned();
        let (len, rest) = text.split_once(' ').unwrap_or_default();
        assert_eq!(
            len.parse::<usize>().ok(),
            Some(framed.len() - len.len() - 1)
        );
        assert!(
            rest.starts_with(
                "<85>1 2023-11-14T22:13:20.123Z myhost radroute 42 IHE+RFC-3881 - \u{FEFF}<a/>"
            ),
            "{rest}"
        );
        assert_eq!(header_field("", 5), "-");
    }
}

//! The DICOM audit message (PS3.15 A.5.1) as Rust types, and its XML.
//!
//! The types follow the schema's elements one to one and [`AuditMessage::to_xml`] writes them
//! in the order the schema requires (RELAX NG groups are ordered for elements). Every text
//! value goes through [`xml_safe`] first: patient names and AE titles come from the network,
//! and characters XML 1.0 cannot carry even escaped (C0 controls) would make the whole
//! message invalid.

use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

/// A coded value (`CodedValueType`: `csd-code`, `codeSystemName`, `originalText`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The code value, e.g. `110104`.
    pub code: &'static str,
    /// The coding scheme, e.g. `DCM`.
    pub system: &'static str,
    /// The code meaning, e.g. `DICOM Instances Transferred`.
    pub meaning: &'static str,
}

impl Code {
    /// A code of the DICOM controlled terminology (PS3.16 Annex D, scheme `DCM`).
    pub const fn dcm(code: &'static str, meaning: &'static str) -> Code {
        Code {
            code,
            system: "DCM",
            meaning,
        }
    }

    /// A code of the RFC 3881 value sets that PS3.15 A.5.1.2 keeps (scheme `RFC-3881`).
    pub const fn rfc3881(code: &'static str, meaning: &'static str) -> Code {
        Code {
            code,
            system: "RFC-3881",
            meaning,
        }
    }
}

/// `EventActionCode`: what the event did to the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionCode {
    /// C: created (an instance received and stored).
    Create,
    /// R: read (an instance sent on).
    Read,
    /// U: updated.
    Update,
    /// D: deleted.
    Delete,
    /// E: executed (start, stop, an operator's command).
    Execute,
}

impl ActionCode {
    fn as_str(self) -> &'static str {
        match self {
            ActionCode::Create => "C",
            ActionCode::Read => "R",
            ActionCode::Update => "U",
            ActionCode::Delete => "D",
            ActionCode::Execute => "E",
        }
    }
}

/// `EventOutcomeIndicator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: success.
    Success,
    /// 4: minor failure (action restarted, e.g. a transfer that will be retried).
    MinorFailure,
    /// 8: serious failure (action terminated).
    SeriousFailure,
    /// 12: major failure (the application is unavailable).
    MajorFailure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "0",
            Outcome::MinorFailure => "4",
            Outcome::SeriousFailure => "8",
            Outcome::MajorFailure => "12",
        }
    }
}

/// `NetworkAccessPointTypeCode` with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessPoint {
    /// 1: a machine name (DNS name).
    Host(String),
    /// 2: an IP address.
    Ip(String),
}

/// `ActiveParticipant`: a person or process that took part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveParticipant {
    /// `UserID`: an AE title, a process id or an operator's identity.
    pub user_id: String,
    /// `AlternativeUserID`, e.g. the process id of radroute.
    pub alternative_user_id: Option<String>,
    /// `UserIsRequestor`.
    pub requestor: bool,
    /// `NetworkAccessPointID` and its type.
    pub access_point: Option<AccessPoint>,
    /// `RoleIDCode`s.
    pub roles: Vec<Code>,
}

/// `AuditSourceIdentification`: who reports the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSource {
    /// `AuditEnterpriseSiteID`.
    pub site_id: Option<String>,
    /// `AuditSourceID`: this installation (by default the host name).
    pub source_id: String,
}

/// One SOP class of a study and the instances of it the event concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SopClassInstances {
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UIDs.
    pub instance_uids: Vec<String>,
}

/// `ParticipantObjectIdentification`: a study, a patient, a job...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantObject {
    /// `ParticipantObjectIDTypeCode`.
    pub id_type: Code,
    /// `ParticipantObjectName` (the schema requires a name or a query).
    pub name: String,
    /// `ParticipantObjectID`.
    pub id: String,
    /// `ParticipantObjectTypeCode`: 1 person, 2 system object, 3 organization, 4 other.
    pub type_code: u8,
    /// `ParticipantObjectTypeCodeRole` (A.5.1.2.2), e.g. 1 patient, 3 report, 20 job.
    pub role: Option<u8>,
    /// `ParticipantObjectDescription`: accession numbers.
    pub accessions: Vec<String>,
    /// `ParticipantObjectDescription`: SOP classes and instances.
    pub sop_classes: Vec<SopClassInstances>,
}

/// `EventIdentification`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventIdentification {
    /// `EventID`.
    pub id: Code,
    /// `EventTypeCode`s.
    pub types: Vec<Code>,
    /// `EventActionCode`.
    pub action: Option<ActionCode>,
    /// `EventDateTime` (UTC).
    pub time: DateTime<Utc>,
    /// `EventOutcomeIndicator`.
    pub outcome: Outcome,
    /// `EventOutcomeDescription`.
    pub outcome_description: Option<String>,
}

/// One audit message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditMessage {
    /// What happened, when, with what outcome.
    pub event: EventIdentification,
    /// Who took part (at least one).
    pub participants: Vec<ActiveParticipant>,
    /// Who reports it.
    pub source: AuditSource,
    /// What it concerned.
    pub objects: Vec<ParticipantObject>,
}

/// Replaces the characters XML 1.0 cannot carry (C0 controls other than tab, line feed and
/// carriage return; U+FFFE, U+FFFF) with U+FFFD.
pub fn xml_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}'
    };
    if s.chars().any(bad) {
        s.chars()
            .map(|c| if bad(c) { '\u{FFFD}' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// An element start with attributes, escaping each value.
fn start<'a>(name: &'a str, attrs: &[(&str, &str)]) -> BytesStart<'a> {
    let mut e = BytesStart::new(name);
    for (k, v) in attrs {
        e.push_attribute((*k, xml_safe(v).as_ref()));
    }
    e
}

/// A small XML writer over a `Vec<u8>` (its writes cannot fail).
struct Xml(Writer<Vec<u8>>);

impl Xml {
    fn event(&mut self, e: Event<'_>) {
        // Writing into a Vec<u8> has no I/O error to report.
        let _ = self.0.write_event(e);
    }

    fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.event(Event::Empty(start(name, attrs)));
    }

    fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.event(Event::Start(start(name, attrs)));
    }

    fn close(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    fn text_element(&mut self, name: &str, text: &str) {
        self.open(name, &[]);
        self.event(Event::Text(BytesText::new(&xml_safe(text))));
        self.close(name);
    }

    fn code(&mut self, name: &str, code: &Code) {
        self.empty(
            name,
            &[
                ("csd-code", code.code),
                ("codeSystemName", code.system),
                ("originalText", code.meaning),
            ],
        );
    }
}

impl AuditMessage {
    /// The message as an XML document (UTF-8, with an XML declaration).
    pub fn to_xml(&self) -> String {
        let mut x = Xml(Writer::new(Vec::with_capacity(2048)));
        x.event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        x.open("AuditMessage", &[]);

        let ev = &self.event;
        let time = ev.time.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut attrs = vec![
            ("EventDateTime", time.as_str()),
            ("EventOutcomeIndicator", ev.outcome.as_str()),
        ];
        if let Some(a) = ev.action {
            attrs.insert(0, ("EventActionCode", a.as_str()));
        }
        x.open("EventIdentification", &attrs);
        x.code("EventID", &ev.id);
        for t in &ev.types {
            x.code("EventTypeCode", t);
        }
        if let Some(d) = &ev.outcome_description {
            x.text_element("EventOutcomeDescription", d);
        }
        x.close("EventIdentification");

        for p in &self.participants {
            let requestor = if p.requestor { "true" } else { "false" };
            let mut attrs = vec![("UserID", p.user_id.as_str())];
            if let Some(alt) = &p.alternative_user_id {
                attrs.push(("AlternativeUserID", alt));
            }
            attrs.push(("UserIsRequestor", requestor));
            match &p.access_point {
                Some(AccessPoint::Host(h)) => {
                    attrs.push(("NetworkAccessPointID", h));
                    attrs.push(("NetworkAccessPointTypeCode", "1"));
                }
                Some(AccessPoint::Ip(ip)) => {
                    attrs.push(("NetworkAccessPointID", ip));
                    attrs.push(("NetworkAccessPointTypeCode", "2"));
                }
                None => {}
            }
            if p.roles.is_empty() {
                x.empty("ActiveParticipant", &attrs);
            } else {
                x.open("ActiveParticipant", &attrs);
                for r in &p.roles {
                    x.code("RoleIDCode", r);
                }
                x.close("ActiveParticipant");
            }
        }

        let s = &self.source;
        let mut attrs = vec![("AuditSourceID", s.source_id.as_str())];
        if let Some(site) = &s.site_id {
            attrs.insert(0, ("AuditEnterpriseSiteID", site));
        }
        x.open("AuditSourceIdentification", &attrs);
        // 4: application server process.
        x.empty("AuditSourceTypeCode", &[("csd-code", "4")]);
        x.close("AuditSourceIdentification");

        for o in &self.objects {
            let type_code = o.type_code.to_string();
            let role = o.role.map(|r| r.to_string());
            let mut attrs = vec![
                ("ParticipantObjectID", o.id.as_str()),
                ("ParticipantObjectTypeCode", type_code.as_str()),
            ];
            if let Some(r) = &role {
                attrs.push(("ParticipantObjectTypeCodeRole", r));
            }
            x.open("ParticipantObjectIdentification", &attrs);
            x.code("ParticipantObjectIDTypeCode", &o.id_type);
            x.text_element("ParticipantObjectName", &o.name);
            if !o.accessions.is_empty() || !o.sop_classes.is_empty() {
                x.open("ParticipantObjectDescription", &[]);
                for a in &o.accessions {
                    x.empty("Accession", &[("Number", a)]);
                }
                for c in &o.sop_classes {
                    let n = c.instance_uids.len().to_string();
                    x.open(
                        "SOPClass",
                        &[("UID", &c.sop_class_uid), ("NumberOfInstances", &n)],
                    );
                    for uid in &c.instance_uids {
                        x.empty("Instance", &[("UID", uid)]);
                    }
                    x.close("SOPClass");
                }
                x.close("ParticipantObjectDescription");
            }
            x.close("ParticipantObjectIdentification");
        }

        x.close("AuditMessage");
        // The writer only ever received UTF-8 text.
        String::from_utf8_lossy(&x.0.into_inner()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_replaced_and_markup_escaped() {
        assert_eq!(xml_safe("a\u{1}b\tc"), "a\u{FFFD}b\tc");
        let msg = AuditMessage {
            event: EventIdentification {
                id: Code::dcm("110104", "DICOM Instances Transferred"),
                types: vec![],
                action: Some(ActionCode::Create),
                time: DateTime::from_timestamp_millis(0).unwrap_or_default(),
                outcome: Outcome::Success,
                outcome_description: Some("<b>&\u{0}".into()),
            },
            participants: vec![ActiveParticipant {
                user_id: "A\"E<".into(),
                alternative_user_id: None,
                requestor: true,
                access_point: None,
                roles: vec![],
            }],
            source: AuditSource {
                site_id: None,
                source_id: "host".into(),
            },
            objects: vec![],
        };
        let xml = msg.to_xml();
        assert!(xml.contains("UserID=\"A&quot;E&lt;\""), "{xml}");
        assert!(xml.contains("&lt;b&gt;&amp;\u{FFFD}"), "{xml}");
        assert!(!xml.contains('\u{0}'));
        assert!(
            xml.contains("EventDateTime=\"1970-01-01T00:00:00.000Z\""),
            "{xml}"
        );
    }
}

//! The audit messages radroute sends, built per PS3.15 A.5.3: which EventID, EventTypeCode,
//! EventActionCode, roles and participant objects each event carries.
//!
//! | radroute event | PS3.15 event | action |
//! |---|---|---|
//! | C-STORE received and stored | A.5.3.4 DICOM Instances Transferred (110104) | C |
//! | instance delivered to / given up for a destination | A.5.3.4 DICOM Instances Transferred (110104) | R |
//! | start, stop | A.5.3.1 Application Activity (110100), Application Start/Stop (110120/110121) | E |
//! | operator retry, drop, echo | A.5.3.11 Security Alert (110113), Use of Restricted Function (110132) | E |
//! | rule reload | A.5.3.11 Security Alert (110113), Software Configuration (110131) | E |

use chrono::{DateTime, Utc};

use crate::message::{
    AccessPoint, ActionCode, ActiveParticipant, AuditMessage, AuditSource, Code,
    EventIdentification, Outcome, ParticipantObject, SopClassInstances,
};
use crate::operator::{OperatorAction, OperatorActionKind};

const APPLICATION_ACTIVITY: Code = Code::dcm("110100", "Application Activity");
const INSTANCES_TRANSFERRED: Code = Code::dcm("110104", "DICOM Instances Transferred");
const SECURITY_ALERT: Code = Code::dcm("110113", "Security Alert");
const APPLICATION_START: Code = Code::dcm("110120", "Application Start");
const APPLICATION_STOP: Code = Code::dcm("110121", "Application Stop");
const SOFTWARE_CONFIGURATION: Code = Code::dcm("110131", "Software Configuration");
const RESTRICTED_FUNCTION: Code = Code::dcm("110132", "Use of Restricted Function");
const ROLE_APPLICATION: Code = Code::dcm("110150", "Application");
const ROLE_APPLICATION_LAUNCHER: Code = Code::dcm("110151", "Application Launcher");
const ROLE_DESTINATION: Code = Code::dcm("110152", "Destination Role ID");
const ROLE_SOURCE: Code = Code::dcm("110153", "Source Role ID");
const STUDY_INSTANCE_UID: Code = Code::dcm("110180", "Study Instance UID");
const PATIENT_NUMBER: Code = Code::rfc3881("2", "Patient Number");
const URI: Code = Code::rfc3881("12", "URI");

/// radroute itself as a participant and as the audit source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdentity {
    /// radroute's AE title (the SCP's), its `UserID` in transfers.
    pub ae_title: String,
    /// Host name, the `AuditSourceID` and radroute's network access point.
    pub host: String,
    /// `AuditEnterpriseSiteID`, when configured.
    pub site_id: Option<String>,
    /// Process id, radroute's `AlternativeUserID`.
    pub process_id: u32,
    /// Who launched the process (the OS user), when known.
    pub launched_by: Option<String>,
}

impl AppIdentity {
    /// radroute with this AE title, on this machine (host name from the kernel), this process.
    pub fn local(ae_title: &str, site_id: Option<String>) -> AppIdentity {
        AppIdentity {
            ae_title: ae_title.to_string(),
            host: local_host_name(),
            site_id,
            process_id: std::process::id(),
            launched_by: std::env::var("USER").ok().filter(|u| !u.is_empty()),
        }
    }

    fn source(&self) -> AuditSource {
        AuditSource {
            site_id: self.site_id.clone(),
            source_id: self.host.clone(),
        }
    }

    fn participant(&self, requestor: bool, roles: Vec<Code>) -> ActiveParticipant {
        ActiveParticipant {
            user_id: self.ae_title.clone(),
            alternative_user_id: Some(self.process_id.to_string()),
            requestor,
            access_point: Some(AccessPoint::Host(self.host.clone())),
            roles,
        }
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`), or `localhost`.
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A DICOM peer: the modality that sent, or the destination radroute sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its AE title.
    pub ae_title: String,
    /// Its address: an IP address or a host name (port left out).
    pub address: Option<String>,
}

impl Peer {
    fn participant(&self, requestor: bool, role: Code) -> ActiveParticipant {
        ActiveParticipant {
            user_id: self.ae_title.clone(),
            alternative_user_id: None,
            requestor,
            access_point: self.address.as_deref().map(access_point),
            roles: vec![role],
        }
    }
}

/// An IP address or a host name, as the schema tells them apart.
fn access_point(address: &str) -> AccessPoint {
    if address.parse::<std::net::IpAddr>().is_ok() {
        AccessPoint::Ip(address.to_string())
    } else {
        AccessPoint::Host(address.to_string())
    }
}

/// What an audit message says about one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceRef {
    /// Study Instance UID (empty when the data set has none).
    pub study_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Accession Number, when present.
    pub accession_number: Option<String>,
    /// Patient ID, when known (received instances; the queue does not keep it for sends).
    pub patient_id: Option<String>,
    /// Patient's Name, when known.
    pub patient_name: Option<String>,
}

impl InstanceRef {
    fn objects(&self) -> Vec<ParticipantObject> {
        let mut objects = vec![ParticipantObject {
            id_type: STUDY_INSTANCE_UID,
            name: self
                .accession_number
                .clone()
                .unwrap_or_else(|| self.study_instance_uid.clone()),
            id: self.study_instance_uid.clone(),
            type_code: 2,
            role: Some(3),
            accessions: self.accession_number.iter().cloned().collect(),
            sop_classes: vec![SopClassInstances {
                sop_class_uid: self.sop_class_uid.clone(),
                instance_uids: vec![self.sop_instance_uid.clone()],
            }],
        }];
        if let Some(pid) = &self.patient_id {
            objects.push(ParticipantObject {
                id_type: PATIENT_NUMBER,
                name: self.patient_name.clone().unwrap_or_default(),
                id: pid.clone(),
                type_code: 1,
                role: Some(1),
                accessions: vec![],
                sop_classes: vec![],
            });
        }
        objects
    }
}

/// C-STORE received from `from` and stored (EventActionCode C).
pub fn instance_received(
    app: &AppIdentity,
    from: &Peer,
    instance: &InstanceRef,
    at: DateTime<Utc>,
) -> AuditMessage {
    AuditMessage {
        event: EventIdentification {
            id: INSTANCES_TRANSFERRED,
            types: vec![],
            action: Some(ActionCode::Create),
            time: at,
            outcome: Outcome::Success,
            outcome_description: None,
        },
        participants: vec![
            from.participant(true, ROLE_SOURCE),
            app.participant(false, vec![ROLE_DESTINATION]),
        ],
        source: app.source(),
        objects: instance.objects(),
    }
}

/// An instance sent to `to` (EventActionCode R): delivered (success), or given up (dead
/// letter: serious failure, with the reason).
pub fn instance_forwarded(
    app: &AppIdentity,
    to: &Peer,
    instance: &InstanceRef,
    failure: Option<&str>,
    at: DateTime<Utc>,
) -> AuditMessage {
    AuditMessage {
        event: EventIdentification {
            id: INSTANCES_TRANSFERRED,
            types: vec![],
            action: Some(ActionCode::Read),
            time: at,
            outcome: if failure.is_some() {
                Outcome::SeriousFailure
            } else {
                Outcome::Success
            },
            outcome_description: failure.map(str::to_string),
        },
        participants: vec![
            app.participant(true, vec![ROLE_SOURCE]),
            to.participant(false, ROLE_DESTINATION),
        ],
        source: app.source(),
        objects: instance.objects(),
    }
}

/// radroute started (`started`) or stopped.
pub fn application_activity(app: &AppIdentity, started: bool, at: DateTime<Utc>) -> AuditMessage {
    let mut participants = vec![app.participant(false, vec![ROLE_APPLICATION])];
    if let Some(user) = &app.launched_by {
        participants.push(ActiveParticipant {
            user_id: user.clone(),
            alternative_user_id: None,
            requestor: true,
            access_point: None,
            roles: vec![ROLE_APPLICATION_LAUNCHER],
        });
    }
    AuditMessage {
        event: EventIdentification {
            id: APPLICATION_ACTIVITY,
            types: vec![if started {
                APPLICATION_START
            } else {
                APPLICATION_STOP
            }],
            action: Some(ActionCode::Execute),
            time: at,
            outcome: Outcome::Success,
            outcome_description: None,
        },
        participants,
        source: app.source(),
        objects: vec![],
    }
}

/// An operator's action (retry, drop, echo, rule reload).
pub fn operator_action(app: &AppIdentity, action: &OperatorAction) -> AuditMessage {
    let event_type = match action.kind {
        OperatorActionKind::ReloadRules => SOFTWARE_CONFIGURATION,
        _ => RESTRICTED_FUNCTION,
    };
    // A.5.1.2.2: 20 job, 16 data destination, 5 master file (the rules).
    let role = match action.kind {
        OperatorActionKind::RetryJob
        | OperatorActionKind::DropJob
        | OperatorActionKind::RetryDead => 20,
        OperatorActionKind::Echo => 16,
        OperatorActionKind::ReloadRules => 5,
    };
    AuditMessage {
        event: EventIdentification {
            id: SECURITY_ALERT,
            types: vec![event_type],
            action: Some(ActionCode::Execute),
            time: action.at,
            outcome: if action.succeeded {
                Outcome::Success
            } else {
                Outcome::SeriousFailure
            },
            outcome_description: Some(format!("{}: {}", action.kind.as_str(), action.detail)),
        },
        participants: vec![
            ActiveParticipant {
                user_id: action.who.clone(),
                alternative_user_id: None,
                requestor: true,
                access_point: action.from.as_deref().map(access_point),
                roles: vec![],
            },
            app.participant(false, vec![ROLE_APPLICATION]),
        ],
        source: app.source(),
        objects: vec![ParticipantObject {
            id_type: URI,
            name: action.kind.as_str().to_string(),
            id: action.target.clone(),
            type_code: 2,
            role: Some(role),
            accessions: vec![],
            sop_classes: vec![],
        }],
    }
}

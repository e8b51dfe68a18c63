//! What the console reads of a running node beyond its spool and queue: the model, the live
//! destinations and rules (as the last start-up or reload set them), the disk watermark, the
//! evidence store, and the rule tester ([`Inspect::test_rules`]), which labels and routes a
//! copy of an instance without writing, queueing or sending anything.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use radroute_evidence::{Evidence, EvidenceStore};
use radroute_queue::{ForwardQueue, InstanceRecord, UnixMillis};
use radroute_route::{RouteInput, RuleSet};
use radroute_spool::{FileKind, InstanceId, InstanceStore};

use crate::label::{LabelOutcome, Labeler};
use crate::Topology;

/// Largest file the rule tester reads.
pub const MAX_TEST_FILE: usize = 64 << 20;

/// The model the node runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// Manifest name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// ONNX Runtime execution provider (`CPU`, `CUDA`).
    pub execution_provider: String,
}

/// What the rule tester runs on.
#[derive(Debug, Clone)]
pub enum TestInput {
    /// A received instance (spool id): its file as received.
    Instance(String),
    /// A Part-10 file's bytes (with the 128-byte preamble).
    File(Vec<u8>),
}

/// The settings the last start-up or reload applied, as the console shows them.
struct Shown {
    rules: Arc<RuleSet>,
    rules_text: String,
    destinations: Vec<radroute_forward::Destination>,
    min_free_bytes: u64,
}

/// A running node's facts for the console.
pub struct Inspect {
    /// The SCP's AE title.
    pub ae_title: String,
    /// The model, when one is configured (`None` also when it failed to load).
    pub model: Option<ModelSummary>,
    /// The evidence store, when the node keeps one.
    pub evidence: Option<Arc<EvidenceStore>>,
    labeler: Option<Arc<dyn Labeler>>,
    shown: RwLock<Shown>,
}

impl Inspect {
    pub(crate) fn new(
        ae_title: String,
        model: Option<ModelSummary>,
        evidence: Option<Arc<EvidenceStore>>,
        labeler: Option<Arc<dyn Labeler>>,
        topology: &Topology,
    ) -> Inspect {
        Inspect {
            ae_title,
            model,
            evidence,
            labeler,
            shown: RwLock::new(Shown::of(topology)),
        }
    }

    /// Called by start-up and every reload.
    pub(crate) fn set(&self, topology: &Topology) {
        *self.shown.write().unwrap_or_else(|e| e.into_inner()) = Shown::of(topology);
    }

    fn shown<T>(&self, f: impl FnOnce(&Shown) -> T) -> T {
        f(&self.shown.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The configured destinations.
    pub fn destinations(&self) -> Vec<radroute_forward::Destination> {
        self.shown(|s| s.destinations.clone())
    }

    /// `[routing]` and `[[routes]]` as TOML.
    pub fn rules_text(&self) -> String {
        self.shown(|s| s.rules_text.clone())
    }

    /// The disk watermark.
    pub fn min_free_bytes(&self) -> u64 {
        self.shown(|s| s.min_free_bytes)
    }

    /// Labels (in memory) and routes a copy of `input` with the current model and rules:
    /// the decision as evidence. Nothing is written, queued or sent. Labelling counts in the
    /// label metrics like any other run of the model.
    pub fn test_rules(
        &self,
        spool: &dyn InstanceStore,
        queue: &dyn ForwardQueue,
        input: TestInput,
    ) -> Result<Evidence, String> {
        let (mut obj, record) = match input {
            TestInput::Instance(id) => {
                let detail = queue
                    .instance(&id)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no instance {id:?}"))?;
                let spool_id = id.parse::<InstanceId>().map_err(|e| e.to_string())?;
                let bytes = spool
                    .read(FileKind::Incoming, &spool_id)
                    .map_err(|e| format!("cannot read instance {id}: {e} (purged?)"))?;
                (parse(&bytes)?, Some(detail.instance))
            }
            TestInput::File(bytes) => (parse(&bytes)?, None),
        };
        let header = crate::evidence::Header::of(&obj);
        let outcome = match &self.labeler {
            Some(labeler) => labeler.label(&mut obj),
            None => LabelOutcome::default(),
        };
        let rules = self.shown(|s| s.rules.clone());
        let (calling_ae, called_ae) = record
            .as_ref()
            .map(|r| (r.calling_ae.clone(), r.called_ae.clone()))
            .unwrap_or_else(|| ("UPLOAD".into(), self.ae_title.clone()));
        let arrival = crate::process::Arrival::of(&record.clone().unwrap_or_else(uploaded));
        let decision = rules.evaluate(&RouteInput {
            attributes: &crate::process::ObjectAttributes(&obj),
            label: outcome.label.as_deref(),
            confidence: outcome.confidence,
            calling_ae: &calling_ae,
            called_ae: &called_ae,
            peer: arrival.peer,
            local_time: arrival.local_time,
        });
        let id = record.map(|r| r.id).unwrap_or_else(|| "upload".into());
        let note = outcome.note.clone();
        Ok(crate::evidence::build(
            &id,
            &calling_ae,
            header,
            &outcome,
            &decision,
            note,
        ))
    }
}

/// An uploaded file arrives now, from this machine.
fn uploaded() -> InstanceRecord {
    InstanceRecord {
        id: "upload".into(),
        sop_instance_uid: String::new(),
        sop_class_uid: String::new(),
        transfer_syntax: String::new(),
        study_instance_uid: None,
        calling_ae: "UPLOAD".into(),
        called_ae: String::new(),
        peer_addr: "127.0.0.1:0".into(),
        received_at: UnixMillis::now(),
        updated_at: UnixMillis::now(),
        state: radroute_queue::InstanceState::Received,
        label: None,
        processing_note: None,
        bytes: 0,
    }
}

/// Parses a Part-10 file after radroute-dataset's bounded walk accepted its data set (the
/// parser trusts declared lengths; the walk checks them first, as the store step does).
fn parse(bytes: &[u8]) -> Result<DefaultDicomObject, String> {
    if bytes.len() > MAX_TEST_FILE {
        return Err(format!("file larger than {} MiB", MAX_TEST_FILE >> 20));
    }
    let offset = radroute_dataset::part10_dataset_offset(bytes)
        .filter(|o| *o <= bytes.len())
        .ok_or("not a DICOM Part-10 file (no preamble, DICM and file meta group length)")?;
    let meta = dicom_object::FileMetaTable::from_reader(&bytes[128..offset])
        .map_err(|e| format!("file meta group: {e}"))?;
    radroute_dataset::read_received(&bytes[offset..], meta.transfer_syntax(), MAX_TEST_FILE)
        .map_err(|e| format!("data set does not parse: {e}"))?;
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .from_reader(Cursor::new(&bytes[128..]))
        .map_err(|e| format!("cannot read the file: {e}"))
}

impl Shown {
    fn of(t: &Topology) -> Shown {
        Shown {
            rules: Arc::new(t.rules.clone()),
            rules_text: t.rules_text.clone(),
            destinations: t.destinations.clone(),
            min_free_bytes: t.min_free_bytes,
        }
    }
}

/// `[routing]` and `[[routes]]` of `cfg` as TOML (what the rules say, in the file's terms).
pub(crate) fn rules_text(cfg: &radroute_config::Config) -> String {
    #[derive(serde::Serialize)]
    struct Rules<'a> {
        routing: &'a radroute_route::RoutingOptions,
        routes: &'a [radroute_route::RouteConfig],
    }
    toml::to_string_pretty(&Rules {
        routing: &cfg.routing,
        routes: &cfg.routes,
    })
    .unwrap_or_else(|e| format!("# cannot show the rules as TOML: {e}\n{:#?}", cfg.routes))
}

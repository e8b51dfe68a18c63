//! The ONNX labeler: decode (radroute-decode) → classify (radroute-classify, batched across
//! associations) → write the result into the header (radroute-coerce).
//!
//! The processing step runs more instances at once than `[classify] workers` (up to
//! `workers + max_batch`, node/mod.rs): only `workers` of them decode at a time (the CPU-heavy
//! step, [`DecodeSlots`]), the others wait for the classifier without holding a decode slot,
//! so images from several associations meet in one inference batch.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use std::time::Instant;

use dicom_object::DefaultDicomObject;
use radroute_classify::{BatchConfig, BatchingClassifier, Model, RuntimeOptions};
use radroute_coerce::{
    apply_label, should_classify, BodyPart, Classification, CoercionPolicy, Outcome,
};
use tracing::{info, warn};

use super::label::{LabelOutcome, Labeler};
use crate::telemetry::record;
use radroute_config::ClassifyConfig;

/// Labels instances with an ONNX model ensemble.
pub struct OnnxLabeler {
    classifier: Arc<BatchingClassifier>,
    decode_slots: DecodeSlots,
    model: radroute_coerce::ModelInfo,
    policy: CoercionPolicy,
    /// ONNX Runtime execution provider (`CPU`, `CUDA`).
    provider: &'static str,
}

impl OnnxLabeler {
    /// Loads the model directory and starts the batching worker.
    pub fn load(cfg: &ClassifyConfig, model_dir: &std::path::Path) -> Result<OnnxLabeler, String> {
        let started = Instant::now();
        let model = Model::load(
            model_dir,
            &RuntimeOptions {
                library_path: cfg.onnxruntime.clone(),
                device: cfg.device,
                intra_threads: cfg.threads,
            },
        )
        .map_err(|e| format!("cannot load model {}: {e}", model_dir.display()))?;
        let info = model.info();
        let provider = model.execution_provider();
        let classifier = BatchingClassifier::start(
            model,
            BatchConfig {
                max_batch: cfg.max_batch.max(1),
                max_wait: std::time::Duration::from_millis(cfg.max_wait_ms),
                ..BatchConfig::default()
            },
        )
        .map_err(|e| format!("cannot start the classifier: {e}"))?;
        record::execution_provider(provider);
        info!(
            model = %info.name,
            version = %info.version,
            execution_provider = provider,
            ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(OnnxLabeler {
            classifier: Arc::new(classifier),
            decode_slots: DecodeSlots::new(cfg.workers),
            model: radroute_coerce::ModelInfo {
                name: info.name,
                version: info.version,
            },
            provider,
            policy: CoercionPolicy {
                overwrite: cfg.overwrite,
                modalities: cfg.modalities.clone(),
                sop_classes: cfg.sop_classes.clone(),
            },
        })
    }
}

impl OnnxLabeler {
    /// The model's name, version and execution provider (for the console).
    pub fn summary(&self) -> crate::inspect::ModelSummary {
        crate::inspect::ModelSummary {
            name: self.model.name.clone(),
            version: self.model.version.clone(),
            execution_provider: self.provider.to_string(),
        }
    }
}

impl Labeler for OnnxLabeler {
    fn label(&self, obj: &mut DefaultDicomObject) -> LabelOutcome {
        if !should_classify(obj, &self.policy) {
            record::abstention("not_configured");
            return LabelOutcome::default();
        }
        let t0 = Instant::now();
        let decoded = {
            let _slot = self.decode_slots.take();
            radroute_decode::model_input(obj)
        };
        let input = match decoded {
            Ok(input) => input,
            Err(e) => {
                record::abstention("decode_error");
                warn!(error = %e, "pixel data not decodable: forwarding unlabelled");
                return LabelOutcome {
                    note: Some(format!("not labelled: pixel data not decodable: {e}")),
                    ..Default::default()
                };
            }
        };
        let t1 = Instant::now();
        record::stage("decode", (t1 - t0).as_secs_f64());
        // Evidence for the console: the exact model input as a picture (~1 ms).
        let model_input_png = radroute_evidence::model_input_png(
            &input,
            radroute_decode::preprocess::SIZE,
            radroute_decode::preprocess::MEAN[0],
            radroute_decode::preprocess::STD[0],
        );
        let prediction = match self.classifier.classify(input) {
            Ok(p) => p,
            Err(e) => {
                record::abstention("model_error");
                warn!(error = %e, "classification failed: forwarding unlabelled");
                return LabelOutcome {
                    note: Some(format!("not labelled: model error: {e}")),
                    ..Default::default()
                };
            }
        };
        let t2 = Instant::now();
        record::stage("classify", (t2 - t1).as_secs_f64());
        let ai_label = prediction.label.as_ref().map(|c| c.body_part.clone());
        let seen = LabelOutcome {
            scores: prediction.scores.clone(),
            model: Some(format!("{} {}", self.model.name, self.model.version)),
            model_input_png,
            ..Default::default()
        };
        let classification = Classification {
            label: prediction.label.map(|c| BodyPart {
                class: c.name,
                body_part: c.body_part,
                snomed: c.snomed,
                meaning: c.meaning,
                correct_threshold: c.correct_threshold,
            }),
            scores: prediction.scores,
        };
        let now = chrono::Local::now().fixed_offset();
        let report = match apply_label(obj, &classification, &self.model, &self.policy, now) {
            Ok(report) => report,
            Err(e) => {
                record::abstention("coerce_error");
                return LabelOutcome {
                    label: ai_label,
                    confidence: Some(prediction.top.1),
                    note: Some(format!("label not written: {e}")),
                    modified: false,
                    ..seen
                };
            }
        };
        record::stage("coerce", t2.elapsed().as_secs_f64());
        let note = match report.outcome {
            Outcome::Labelled => {
                record::label(report.body_part.as_deref().unwrap_or(""));
                None
            }
            Outcome::Corrected => {
                let (from, to) = (
                    report.previous_body_part.unwrap_or_default(),
                    report.body_part.unwrap_or_default(),
                );
                record::label(&to);
                record::correction(&to);
                info!(
                    from = %from,
                    to = %to,
                    score = prediction.top.1,
                    "corrected Body Part Examined {from:?} to {to}"
                );
                Some(format!(
                    "corrected Body Part Examined {from:?} to {to} (score {:.3})",
                    prediction.top.1
                ))
            }
            Outcome::Agreed => None,
            Outcome::Abstained => {
                record::abstention("below_threshold");
                Some(format!(
                    "model abstained (top {} {:.3})",
                    prediction.top.0, prediction.top.1
                ))
            }
            Outcome::KeptExisting => Some(format!(
                "kept existing Body Part Examined {:?} (model: {}, {:.3}; {})",
                report.previous_body_part.unwrap_or_default(),
                ai_label.as_deref().unwrap_or("none"),
                prediction.top.1,
                report
                    .relation
                    .map(|r| format!("{} region", r.as_str()))
                    .unwrap_or_else(|| "policy".into())
            )),
        };
        LabelOutcome {
            label: ai_label,
            confidence: Some(prediction.top.1),
            note,
            modified: true,
            ..seen
        }
    }
}

/// The longest an instance waits for a decode slot; past it, it decodes anyway (the slots only
/// share the CPU, they protect nothing).
const MAX_DECODE_WAIT: Duration = Duration::from_secs(60);

/// A counting semaphore for blocking threads: decodes running at once.
struct DecodeSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// One decode slot, given back when dropped (also when the decoder panics).
struct DecodeSlot<'a> {
    slots: &'a DecodeSlots,
    held: bool,
}

impl DecodeSlots {
    fn new(slots: usize) -> DecodeSlots {
        DecodeSlots {
            free: Mutex::new(slots.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot (at most [`MAX_DECODE_WAIT`]) and takes it.
    fn take(&self) -> DecodeSlot<'_> {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let (mut free, waited) = self
            .freed
            .wait_timeout_while(free, MAX_DECODE_WAIT, |free| *free == 0)
            .unwrap_or_else(|e| e.into_inner());
        let held = !waited.timed_out() || *free > 0;
        if held {
            *free -= 1;
        } else {
            warn!("no decode slot within 60 s: decoding anyway");
        }
        DecodeSlot { slots: self, held }
    }
}

impl Drop for DecodeSlot<'_> {
    fn drop(&mut self) {
        if self.held {
            *self.slots.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            self.slots.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn decode_slots_bound_concurrency() {
        let slots = Arc::new(DecodeSlots::new(2));
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (slots, now, peak) = (slots.clone(), now.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _slot = slots.take();
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(*slots.free.lock().unwrap(), 2, "every slot given back");
    }
}

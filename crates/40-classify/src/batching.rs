//! Batching across callers: one worker thread owns the [`Model`]; callers on any thread block on
//! a reply channel. Images that arrive close together (within `max_wait` of the first one in a
//! batch, up to `max_batch`) run as one batch, which is how radroute batches instances across
//! associations without touching the async runtime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::model::{Model, ModelInfo};
use crate::prediction::Prediction;
use crate::ClassifyError;

/// Histogram of the images per inference batch (Prometheus name), recorded for every batch.
pub const BATCH_SIZE_METRIC: &str = "radroute_classify_batch_size";

/// Batch limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Largest batch handed to the model.
    pub max_batch: usize,
    /// Longest a request waits for others to join its batch.
    pub max_wait: Duration,
    /// Requests that may queue before `classify` blocks on sending (back-pressure).
    pub queue_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 8,
            max_wait: Duration::from_millis(10),
            queue_capacity: 64,
        }
    }
}

struct Job {
    input: Vec<f32>,
    reply: SyncSender<Result<Prediction, ClassifyError>>,
}

/// Counters of the worker, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches run.
    pub batches: u64,
    /// Images classified (successfully or not) in those batches.
    pub images: u64,
    /// Batches whose inference failed.
    pub failed_batches: u64,
    /// Largest batch so far.
    pub max_batch_seen: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    images: AtomicU64,
    failed: AtomicU64,
    max_batch: AtomicU64,
}

/// A thread-safe, batching front of a [`Model`] (share it in an `Arc`).
///
/// ```no_run
/// # use std::sync::Arc;
/// # use radroute_classify::*;
/// # fn main() -> Result<(), ClassifyError> {
/// let model = Model::load("models/bodypart".as_ref(), &RuntimeOptions::default())?;
/// let clf = Arc::new(BatchingClassifier::start(model, BatchConfig::default())?);
/// // from any blocking thread (e.g. tokio::task::spawn_blocking):
/// let tensor: Vec<f32> = vec![0.0; 3 * 224 * 224]; // radroute_decode::model_input(&obj)?
/// let prediction = clf.classify(tensor)?;
/// println!("{:?} {:?}", prediction.label.map(|c| c.body_part), prediction.top);
/// # Ok(())
/// # }
/// ```
pub struct BatchingClassifier {
    tx: Mutex<Option<SyncSender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    info: ModelInfo,
    execution_provider: &'static str,
    input_len: usize,
    counters: Arc<Counters>,
}

impl BatchingClassifier {
    /// Starts the worker thread that owns `model`.
    pub fn start(model: Model, config: BatchConfig) -> Result<Self, ClassifyError> {
        let info = model.info();
        let execution_provider = model.execution_provider();
        let input_len = model.input_len();
        let (tx, rx) = mpsc::sync_channel::<Job>(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let worker_counters = Arc::clone(&counters);
        let worker = std::thread::Builder::new()
            .name("radroute-classify".into())
            .spawn(move || worker_loop(model, rx, config, &worker_counters))
            .map_err(|e| ClassifyError::Stopped {
                model: format!("{} {} (cannot spawn worker: {e})", info.name, info.version),
            })?;
        Ok(BatchingClassifier {
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            info,
            execution_provider,
            input_len,
            counters,
        })
    }

    /// Batches and images so far.
    pub fn stats(&self) -> BatchStats {
        let c = &self.counters;
        BatchStats {
            batches: c.batches.load(Ordering::Relaxed),
            images: c.images.load(Ordering::Relaxed),
            failed_batches: c.failed.load(Ordering::Relaxed),
            max_batch_seen: c.max_batch.load(Ordering::Relaxed),
        }
    }

    /// Classifies one `[3, size, size]` tensor; blocks until its batch has run.
    pub fn classify(&self, input: Vec<f32>) -> Result<Prediction, ClassifyError> {
        if input.len() != self.input_len {
            return Err(ClassifyError::Input {
                expected: self.input_len,
                got: input.len(),
            });
        }
        let stopped = || ClassifyError::Stopped {
            model: format!("{} {}", self.info.name, self.info.version),
        };
        let tx = self
            .tx
            .lock()
            .map_err(|_| stopped())?
            .as_ref()
            .cloned()
            .ok_or_else(stopped)?;
        let (reply, rx) = mpsc::sync_channel(1);
        tx.send(Job { input, reply }).map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }

    /// Name and version of the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// `"CUDA"` or `"CPU"`.
    pub fn execution_provider(&self) -> &'static str {
        self.execution_provider
    }

    /// Stops accepting work, lets queued requests finish and joins the worker.
    pub fn shutdown(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for BatchingClassifier {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker_loop(mut model: Model, rx: Receiver<Job>, config: BatchConfig, counters: &Counters) {
    let max_batch = config.max_batch.max(1);
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + config.max_wait;
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(job) => jobs.push(job),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        let inputs: Vec<&[f32]> = jobs.iter().map(|j| j.input.as_slice()).collect();
        let result = model.classify_batch(&inputs);
        tracing::debug!(batch = jobs.len(), ok = result.is_ok(), "classified batch");
        let n = jobs.len() as u64;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.images.fetch_add(n, Ordering::Relaxed);
        counters.max_batch.fetch_max(n, Ordering::Relaxed);
        metrics::histogram!(BATCH_SIZE_METRIC).record(n as f64);
        if result.is_err() {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(preds) => {
                for (job, p) in jobs.iter().zip(preds) {
                    let _ = job.reply.send(Ok(p));
                }
            }
            Err(e) => {
                let detail = e.to_string();
                let info = model.info();
                for job in &jobs {
                    let _ = job.reply.send(Err(ClassifyError::Inference {
                        model: format!("{} {}", info.name, info.version),
                        detail: detail.clone(),
                    }));
                }
            }
        }
    }
}

//! Prometheus metrics: the global recorder, the metric names and their help texts, and small
//! helpers for the data path. They live with the node, which records them; the admin crate's
//! `/metrics` handler renders them and reads the queue and spool gauges at scrape time, so
//! they are never stale. docs/admin-api.md lists every metric.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Associations, by `outcome` (`accepted`, `rejected`). Counter (recorded by radroute-receive).
pub const ASSOCIATIONS: &str = "radroute_associations_total";
/// Associations open now. Gauge (recorded by radroute-receive).
pub const ASSOCIATIONS_ACTIVE: &str = "radroute_associations_active";
/// C-STORE requests by `outcome` (`stored`, `refused`). Counter (recorded by radroute-receive).
pub const INSTANCES_RECEIVED: &str = "radroute_instances_received_total";
/// Bytes received. Counter.
pub const BYTES_RECEIVED: &str = "radroute_bytes_received_total";
/// C-STOREs refused, by `reason`. Counter.
pub const STORE_REFUSED: &str = "radroute_store_refused_total";
/// Forward attempts by `destination` and `outcome` (`delivered`, `retry`, `dead`). Counter.
pub const FORWARD: &str = "radroute_forward_total";
/// Associations a destination serves at once as learned by its forward workers (at most its
/// `associations`), by `destination`. Gauge (node/forward_gate.rs).
pub const FORWARD_ASSOCIATIONS_LIMIT: &str = "radroute_forward_associations_limit";
/// Forward associations open or opening, by `destination`. Gauge (node/forward_gate.rs).
pub const FORWARD_ASSOCIATIONS_OPEN: &str = "radroute_forward_associations_open";
/// Association openings that waited past their patience while others to the same destination
/// were open (the destination serves fewer at once), by `destination`. Counter.
pub const FORWARD_ASSOCIATION_STALLS: &str = "radroute_forward_association_stalls_total";
/// Studies routed by study-scope routes. Counter.
pub const STUDIES_ROUTED: &str = "radroute_studies_routed_total";
/// Configuration reloads (SIGHUP). Counter.
pub const CONFIG_RELOADS: &str = "radroute_config_reloads_total";
/// Labels written, by `label`. Counter.
pub const LABELS: &str = "radroute_labels_total";
/// Body Part Examined values replaced because they named another region (`overwrite =
/// "correct"`, or `always`), by the written `label`. Counter.
pub const CORRECTIONS: &str = "radroute_corrections_total";
/// Abstentions (no label written), by `reason`. Counter.
pub const ABSTENTIONS: &str = "radroute_abstentions_total";
/// Stage latency in seconds, by `stage`. Histogram.
pub const STAGE_SECONDS: &str = "radroute_stage_seconds";
/// 1 for the ONNX Runtime execution provider in use, by `provider`. Gauge.
pub const EXECUTION_PROVIDER: &str = "radroute_execution_provider";
/// 1 when the model is loaded, 0 when configured but not loaded (absent when not
/// configured). Gauge, read at scrape time.
pub const MODEL_LOADED: &str = "radroute_model_loaded";
/// Jobs by `destination` and `state`. Gauge, read at scrape time.
pub const QUEUE_JOBS: &str = "radroute_queue_jobs";
/// Instances by `state`. Gauge, read at scrape time.
pub const QUEUE_INSTANCES: &str = "radroute_queue_instances";
/// Free bytes on the spool's file system. Gauge, read at scrape time.
pub const SPOOL_FREE_BYTES: &str = "radroute_spool_free_bytes";
/// What start-up recovery did where spool and queue disagreed, by `action` (`reingested`,
/// `quarantined`, `missing`, `purge_finished`). Counter (recorded by node/recover.rs).
pub const SPOOL_RECOVERED: &str = "radroute_spool_recovered_total";
/// Cluster mode: 1 while this node's heartbeats reach PostgreSQL, 0 when the last one failed.
/// Gauge (node/cluster/heartbeat.rs).
pub const CLUSTER_DATABASE_UP: &str = "radroute_cluster_database_up";
/// Cluster mode: unix time (s) of this node's last heartbeat written. Gauge.
pub const CLUSTER_HEARTBEAT_SECONDS: &str = "radroute_cluster_heartbeat_timestamp_seconds";
/// Cluster mode: heartbeats that could not be written. Counter.
pub const CLUSTER_HEARTBEAT_FAILURES: &str = "radroute_cluster_heartbeat_failures_total";
/// Cluster mode: nodes by `state` (`up`, `draining`, `left`, `dead`). Gauge, read at scrape time.
pub const CLUSTER_NODES: &str = "radroute_cluster_nodes";
/// Cluster mode: leases held by `node`. Gauge, read at scrape time.
pub const CLUSTER_LEASES: &str = "radroute_cluster_leases";

/// Histogram buckets of [`STAGE_SECONDS`] (1 ms to 1 min).
pub const STAGE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Histogram buckets of the classifier's batch sizes (`radroute_classify_batch_size`).
pub const BATCH_SIZE_BUCKETS: &[f64] =
    &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0];

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global Prometheus recorder once (with the stage histogram buckets and the
/// help texts); later calls reuse it. `None` if another recorder was installed first.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(STAGE_SECONDS.into()), STAGE_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(radroute_classify::BATCH_SIZE_METRIC.into()),
                        BATCH_SIZE_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        ASSOCIATIONS,
        "DICOM associations by outcome (accepted, rejected)"
    );
    describe_gauge!(ASSOCIATIONS_ACTIVE, "DICOM associations open now");
    describe_counter!(
        INSTANCES_RECEIVED,
        "C-STORE requests by outcome (stored: spooled, queued and acknowledged; refused)"
    );
    describe_counter!(BYTES_RECEIVED, Unit::Bytes, "Bytes received");
    describe_counter!(STORE_REFUSED, "C-STORE requests refused, by reason");
    describe_counter!(
        FORWARD,
        "Forward attempts by destination and outcome (delivered, retry, dead)"
    );
    describe_gauge!(
        FORWARD_ASSOCIATIONS_LIMIT,
        "Associations a destination serves at once, as learned (at most its associations)"
    );
    describe_gauge!(
        FORWARD_ASSOCIATIONS_OPEN,
        "Forward associations open or opening, by destination"
    );
    describe_counter!(
        FORWARD_ASSOCIATION_STALLS,
        "Association openings not answered promptly while others to the destination were open"
    );
    describe_counter!(STUDIES_ROUTED, "Studies routed by study-scope routes");
    describe_counter!(CONFIG_RELOADS, "Configuration reloads (SIGHUP)");
    describe_counter!(LABELS, "Body-part labels written, by label");
    describe_counter!(
        CORRECTIONS,
        "Body Part Examined values replaced because they named another region, by written label"
    );
    describe_counter!(ABSTENTIONS, "Instances left unlabelled, by reason");
    describe_histogram!(STAGE_SECONDS, Unit::Seconds, "Latency of a pipeline stage");
    describe_histogram!(
        radroute_classify::BATCH_SIZE_METRIC,
        "Images per inference batch (batched across associations)"
    );
    describe_gauge!(
        EXECUTION_PROVIDER,
        "1 for the ONNX Runtime execution provider in use"
    );
    describe_gauge!(MODEL_LOADED, "1 when the body-part model is loaded");
    describe_gauge!(QUEUE_JOBS, "Forward jobs by destination and state");
    describe_gauge!(QUEUE_INSTANCES, "Instances by pipeline state");
    describe_counter!(
        SPOOL_RECOVERED,
        "Start-up recovery actions where spool and queue disagreed, by action"
    );
    describe_gauge!(
        SPOOL_FREE_BYTES,
        Unit::Bytes,
        "Free space of the spool file system"
    );
}

/// Helpers for the data path, so the names and labels stay those documented.
#[allow(dead_code)] // wired by the node (integrator) one by one
pub mod record {
    use super::*;

    /// Processing wrote `label`.
    pub fn label(label: &str) {
        metrics::counter!(LABELS, "label" => label.to_ascii_uppercase()).increment(1);
    }

    /// A received Body Part Examined naming another region was replaced by `label`.
    pub fn correction(label: &str) {
        metrics::counter!(CORRECTIONS, "label" => label.to_ascii_uppercase()).increment(1);
    }

    /// Processing wrote no label (`reason`: `abstained`, `no_model`, `decode_error`, ...).
    pub fn abstention(reason: &'static str) {
        metrics::counter!(ABSTENTIONS, "reason" => reason).increment(1);
    }

    /// The execution provider the model runs on (`cpu`, `cuda`, ...); call once at start-up.
    pub fn execution_provider(provider: &str) {
        metrics::gauge!(EXECUTION_PROVIDER, "provider" => provider.to_ascii_lowercase()).set(1.0);
    }

    /// A stage took `seconds`.
    pub fn stage(stage: &'static str, seconds: f64) {
        metrics::histogram!(STAGE_SECONDS, "stage" => stage).record(seconds);
    }
}

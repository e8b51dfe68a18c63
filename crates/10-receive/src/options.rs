//! The SCP's negotiation and limit policy.

use std::time::Duration;

use crate::access::AccessPolicy;

/// How the SCP negotiates and what it limits.
#[derive(Debug, Clone)]
pub struct ScpOptions {
    /// This node's AE title.
    pub ae_title: String,
    /// When true, associations whose called AE title is not `ae_title` are rejected.
    pub require_called_ae_title: bool,
    /// Concurrent associations; beyond it, A-ASSOCIATE-RJ (transient, local limit exceeded).
    pub max_associations: usize,
    /// Concurrent associations per calling AE title (0: no per-AE limit); beyond it,
    /// A-ASSOCIATE-RJ (transient). Over TLS the calling AE title is inside the encrypted
    /// stream, which dicom-ul reads itself: the limit is checked right after negotiation and an
    /// association over it is aborted (A-ABORT).
    pub max_associations_per_ae: usize,
    /// The PS3.8 ARTIM timer: the whole negotiation (TLS handshake, A-ASSOCIATE-RQ, answer)
    /// must finish within it, or the connection is closed.
    pub artim_timeout: Duration,
    /// Connections still negotiating at once; they hold no association slot. Past it, new
    /// connections are closed at once. Fixed at start.
    pub max_negotiating: usize,
    /// Largest data set accepted on an association; a larger one aborts it (A-ABORT).
    pub max_instance_bytes: usize,
    /// Memory for data sets being received, shared by all associations. An association that
    /// finds it exhausted stops reading (TCP backpressure) for up to `idle_timeout`, then is
    /// aborted. Fixed at start.
    pub receive_memory_bytes: usize,
    /// Maximum PDU length this node receives.
    pub max_pdu: u32,
    /// Storage SOP Class UIDs accepted (Verification is always accepted).
    pub sop_classes: Vec<String>,
    /// Transfer syntax UIDs accepted, in order of preference. Only syntaxes radroute can decode.
    pub transfer_syntaxes: Vec<String>,
    /// An association idle for this long is aborted.
    pub idle_timeout: Duration,
    /// On shutdown, associations in flight get this long to finish before they are aborted.
    pub shutdown_grace: Duration,
    /// Which calling AE titles (and addresses) may connect.
    pub access: AccessPolicy,
    /// DICOM TLS (PS3.15 annex B.1): when set, every association must start with a TLS
    /// handshake (the binary builds it from PEM files).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

/// Storage SOP classes a radiology department sends, accepted by default.
pub const DEFAULT_SOP_CLASSES: &[(&str, &str)] = &[
    (
        "1.2.840.10008.5.1.4.1.1.1",
        "Computed Radiography Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.1.1",
        "Digital X-Ray Image Storage - For Presentation",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.1.1.1",
        "Digital X-Ray Image Storage - For Processing",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.1.2",
        "Digital Mammography X-Ray Image Storage - For Presentation",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.1.2.1",
        "Digital Mammography X-Ray Image Storage - For Processing",
    ),
    ("1.2.840.10008.5.1.4.1.1.2", "CT Image Storage"),
    ("1.2.840.10008.5.1.4.1.1.2.1", "Enhanced CT Image Storage"),
    ("1.2.840.10008.5.1.4.1.1.4", "MR Image Storage"),
    ("1.2.840.10008.5.1.4.1.1.4.1", "Enhanced MR Image Storage"),
    ("1.2.840.10008.5.1.4.1.1.6.1", "Ultrasound Image Storage"),
    (
        "1.2.840.10008.5.1.4.1.1.3.1",
        "Ultrasound Multi-frame Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.7",
        "Secondary Capture Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.7.2",
        "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.7.3",
        "Multi-frame Grayscale Word Secondary Capture Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.7.4",
        "Multi-frame True Color Secondary Capture Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.20",
        "Nuclear Medicine Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.12.1",
        "X-Ray Angiographic Image Storage",
    ),
    (
        "1.2.840.10008.5.1.4.1.1.12.2",
        "X-Ray Radiofluoroscopic Image Storage",
    ),
    ("1.2.840.10008.5.1.4.1.1.481.1", "RT Image Storage"),
];

/// Transfer syntaxes accepted by default: those radroute's decoder reads (docs/decode.md).
pub const DEFAULT_TRANSFER_SYNTAXES: &[(&str, &str)] = &[
    ("1.2.840.10008.1.2.1", "Explicit VR Little Endian"),
    ("1.2.840.10008.1.2", "Implicit VR Little Endian"),
    ("1.2.840.10008.1.2.2", "Explicit VR Big Endian"),
    (
        radroute_dataset::DEFLATED_EXPLICIT_VR_LE,
        "Deflated Explicit VR Little Endian",
    ),
    ("1.2.840.10008.1.2.5", "RLE Lossless"),
    ("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)"),
    ("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)"),
    (
        "1.2.840.10008.1.2.4.57",
        "JPEG Lossless, Non-Hierarchical (Process 14)",
    ),
    (
        "1.2.840.10008.1.2.4.70",
        "JPEG Lossless, First-Order Prediction (Process 14 SV1)",
    ),
    ("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless"),
    ("1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless Only"),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000"),
    (
        "1.2.840.10008.1.2.4.201",
        "High-Throughput JPEG 2000 Lossless",
    ),
    (
        "1.2.840.10008.1.2.4.202",
        "High-Throughput JPEG 2000 with RPCL Options Lossless",
    ),
    ("1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000"),
];

impl Default for ScpOptions {
    fn default() -> Self {
        ScpOptions {
            ae_title: "RADROUTE".into(),
            require_called_ae_title: false,
            max_associations: 32,
            max_associations_per_ae: 0,
            artim_timeout: Duration::from_secs(10),
            max_negotiating: 64,
            max_instance_bytes: radroute_dimse::DEFAULT_MAX_DATA_LEN,
            receive_memory_bytes: 384 << 20,
            max_pdu: 65_536,
            sop_classes: DEFAULT_SOP_CLASSES
                .iter()
                .map(|(uid, _)| uid.to_string())
                .collect(),
            transfer_syntaxes: DEFAULT_TRANSFER_SYNTAXES
                .iter()
                .map(|(uid, _)| uid.to_string())
                .collect(),
            idle_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(30),
            access: AccessPolicy::default(),
            tls: None,
        }
    }
}

//! A PACS destination: where to send and how.

use std::time::Duration;

/// A DICOM destination as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Name used in routes, queue rows, logs and metrics.
    pub name: String,
    /// Called AE title.
    pub ae_title: String,
    /// host:port.
    pub address: String,
    /// Calling AE title radroute presents.
    pub calling_ae_title: String,
    /// Maximum PDU length radroute receives on this association.
    pub max_pdu: u32,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each PDU exchange.
    pub io_timeout: Duration,
    /// DICOM TLS towards this destination.
    pub tls: Option<ClientTls>,
    /// Associations radroute may have open to this destination at once (forward workers).
    pub associations: usize,
    /// How long an idle association stays open waiting for more instances before release.
    pub linger: Duration,
}

/// TLS settings for one destination.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// rustls client configuration (trusted CAs, optional client certificate).
    pub config: std::sync::Arc<rustls::ClientConfig>,
    /// Name the destination's certificate must carry.
    pub server_name: String,
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

impl Eq for ClientTls {}

impl Destination {
    /// A destination with default limits.
    pub fn new(name: &str, ae_title: &str, address: &str, calling_ae_title: &str) -> Self {
        Destination {
            name: name.into(),
            ae_title: ae_title.into(),
            address: address.into(),
            calling_ae_title: calling_ae_title.into(),
            max_pdu: 65_536,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(60),
            tls: None,
            associations: 2,
            linger: Duration::from_secs(2),
        }
    }
}

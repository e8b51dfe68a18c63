//! The connection to the audit repository: a bounded queue in front of one TCP (or TLS)
//! stream, reconnecting with exponential backoff.
//!
//! Architecture invariant: auditing never slows the image path. [`Sink::send`] never waits:
//! when the queue is full (the repository is down or slow), the message is dropped, counted
//! (`radroute_audit_messages_total{outcome="dropped"}`) and the first drop of an outage is
//! logged. Delivery is at most once: a message written just before the connection broke may
//! be lost (syslog over TCP has no acknowledgement).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::AuditError;

/// Where and how to send audit messages.
#[derive(Clone)]
pub struct SinkSettings {
    /// The audit repository's host name or IP address.
    pub host: String,
    /// Its port (6514 is the registered port of syslog over TLS).
    pub port: u16,
    /// TLS (RFC 5425) with this client configuration; plain TCP when `None`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Messages waiting to be sent at most; past it new ones are dropped.
    pub queue_capacity: usize,
    /// Limit on connecting (TCP and TLS handshake).
    pub connect_timeout: Duration,
    /// Limit on writing one message.
    pub write_timeout: Duration,
    /// Longest wait between two connection attempts.
    pub max_backoff: Duration,
}

impl std::fmt::Debug for SinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("queue_capacity", &self.queue_capacity)
            .finish()
    }
}

/// Counters of a sink, for tests and the console.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Messages written to the repository.
    pub sent: AtomicU64,
    /// Messages dropped (queue full or sink stopped).
    pub dropped: AtomicU64,
    /// Whether a connection is open now.
    pub connected: AtomicBool,
    /// Set at the first drop of an outage, cleared by the next message sent.
    dropping: AtomicBool,
}

/// A running sender: the queue's sending end and the task that drains it.
pub struct Sink {
    tx: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    capacity: usize,
    /// Counters.
    pub stats: Arc<SinkStats>,
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// First wait after a failed connection attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(250);

impl Sink {
    /// Starts the sender task on the current tokio runtime.
    pub fn start(settings: SinkSettings) -> Result<Sink, AuditError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| AuditError::NoRuntime)?;
        if settings.tls.is_some() {
            server_name(&settings.host)?;
        }
        let capacity = settings.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(SinkStats::default());
        let task = handle.spawn(run(rx, settings, stats.clone()));
        Ok(Sink {
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
            capacity,
            stats,
        })
    }

    /// Queues one framed message; never waits. Returns false when it was dropped.
    pub fn send(&self, framed: Vec<u8>) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let queued = tx.is_some_and(|tx| tx.try_send(framed).is_ok());
        if !queued {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("radroute_audit_messages_total", "outcome" => "dropped").increment(1);
            if !self.stats.dropping.swap(true, Ordering::Relaxed) {
                warn!(
                    queue = self.capacity,
                    "audit repository unreachable or slow: audit messages are being dropped \
                     (counted in radroute_audit_messages_total{{outcome=\"dropped\"}})"
                );
            }
        }
        queued
    }

    /// Stops accepting messages and gives the queued ones up to `grace` to go out.
    pub async fn shutdown(&self, grace: Duration) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(grace, &mut task).await.is_err() {
                task.abort();
                warn!("audit messages still queued at shutdown were not sent");
            }
        }
    }
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, AuditError> {
    rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| AuditError::ServerName(host.to_string()))
}

async fn connect(settings: &SinkSettings) -> Result<Box<dyn Stream>, String> {
    let addr = (settings.host.as_str(), settings.port);
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &settings.tls {
            None => Ok(Box::new(tcp) as Box<dyn Stream>),
            Some(config) => {
                let name = server_name(&settings.host).map_err(|e| e.to_string())?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake: {e}"))?;
                Ok(Box::new(tls) as Box<dyn Stream>)
            }
        }
    };
    tokio::time::timeout(settings.connect_timeout, attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// Drains the queue into the connection, reconnecting with backoff; ends when the sending
/// side is dropped and everything queued was written.
async fn run(mut rx: mpsc::Receiver<Vec<u8>>, settings: SinkSettings, stats: Arc<SinkStats>) {
    let target = format!("{}:{}", settings.host, settings.port);
    let mut backoff = MIN_BACKOFF;
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let mut conn = match connect(&settings).await {
            Ok(conn) => {
                info!(repository = %target, tls = settings.tls.is_some(), "audit repository connected");
                backoff = MIN_BACKOFF;
                conn
            }
            Err(e) => {
                warn!(repository = %target, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot reach the audit repository");
                if rx.is_closed() && rx.is_empty() && pending.is_none() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(settings.max_backoff.max(MIN_BACKOFF));
                continue;
            }
        };
        stats.connected.store(true, Ordering::Relaxed);
        metrics::gauge!("radroute_audit_connected").set(1.0);
        loop {
            let msg = match pending.take() {
                Some(msg) => msg,
                None => {
                    // The repository never writes: readable means it closed the connection.
                    let mut probe = [0u8; 64];
                    tokio::select! {
                        msg = rx.recv() => match msg {
                            Some(msg) => msg,
                            None => {
                                let _ = tokio::time::timeout(settings.write_timeout, conn.shutdown()).await;
                                stats.connected.store(false, Ordering::Relaxed);
                                return;
                            }
                        },
                        read = conn.read(&mut probe) => match read {
                            Ok(n) if n > 0 => continue,
                            _ => {
                                warn!(repository = %target, "audit repository closed the connection");
                                break;
                            }
                        },
                    }
                }
            };
            let write = async {
                conn.write_all(&msg).await?;
                conn.flush().await
            };
            match tokio::time::timeout(settings.write_timeout, write).await {
                Ok(Ok(())) => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("radroute_audit_messages_total", "outcome" => "sent")
                        .increment(1);
                    if stats.dropping.swap(false, Ordering::Relaxed) {
                        info!(
                            dropped_so_far = stats.dropped.load(Ordering::Relaxed),
                            "audit messages are flowing again"
                        );
                    }
                }
                Ok(Err(e)) => {
                    warn!(repository = %target, error = %e, "audit message write failed; reconnecting");
                    pending = Some(msg);
                    break;
                }
                Err(_) => {
                    warn!(repository = %target, "audit message write timed out; reconnecting");
                    pending = Some(msg);
                    break;
                }
            }
        }
        stats.connected.store(false, Ordering::Relaxed);
        metrics::gauge!("radroute_audit_connected").set(0.0);
        tokio::time::sleep(backoff).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn settings(port: u16, capacity: usize) -> SinkSettings {
        SinkSettings {
            host: "127.0.0.1".into(),
            port,
            tls: None,
            queue_capacity: capacity,
            connect_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            max_backoff: Duration::from_millis(500),
        }
    }

    /// A closed port: messages beyond the queue are dropped at once, the caller never waits.
    #[tokio::test(flavor = "multi_thread")]
    async fn full_queue_drops_without_waiting() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let sink = Sink::start(settings(port, 4)).expect("start");
        let started = std::time::Instant::now();
        let accepted = (0..100).filter(|_| sink.send(b"x".to_vec())).count();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(accepted <= 4, "{accepted}");
        assert!(sink.stats.dropped.load(Ordering::Relaxed) >= 96);
        sink.shutdown(Duration::from_millis(100)).await;
    }

    /// Messages queued while the repository is down arrive once it is up, in order.
    #[tokio::test(flavor = "multi_thread")]
    async fn reconnects_and_delivers_in_order() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let sink = Sink::start(settings(port, 16)).expect("start");
        assert!(sink.send(b"one ".to_vec()));
        assert!(sink.send(b"two ".to_vec()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("rebind");
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("reconnected within 5 s")
            .expect("accept");
        let mut got = vec![0u8; 8];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut got))
            .await
            .expect("data within 5 s")
            .expect("read");
        assert_eq!(&got, b"one two ");
        sink.shutdown(Duration::from_secs(1)).await;
        assert_eq!(sink.stats.sent.load(Ordering::Relaxed), 2);
    }
}

//! A-ASSOCIATE-RJ for connections that are refused before negotiation (association limit).
//!
//! dicom-ul negotiates or rejects inside `establish_async`, but the association limit is known
//! before that. To answer as PS3.8 asks (a transient rejection the modality will retry) instead
//! of closing the socket, read the A-ASSOCIATE-RQ PDU and answer with an RJ PDU ourselves.

use std::time::Duration;

use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJSource, Pdu,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest A-ASSOCIATE-RQ we are willing to read before answering (they are a few hundred bytes).
const MAX_RQ_LEN: usize = 1 << 20;

/// Reads the peer's A-ASSOCIATE-RQ (bounded in size and time) and answers with a transient
/// A-ASSOCIATE-RJ, "local limit exceeded". Errors are returned for logging only.
pub async fn reject_over_limit(mut socket: TcpStream, timeout: Duration) -> std::io::Result<()> {
    tokio::time::timeout(timeout, async {
        let mut header = [0u8; 6];
        socket.read_exact(&mut header).await?;
        let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
        if header[0] == 0x01 && len <= MAX_RQ_LEN {
            let mut body = vec![0u8; len];
            socket.read_exact(&mut body).await?;
        }
        let rj = Pdu::AssociationRJ(AssociationRJ {
            result: AssociationRJResult::Transient,
            source: AssociationRJSource::ServiceProviderPresentation(
                AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
            ),
        });
        let mut out = Vec::with_capacity(16);
        dicom_ul::write_pdu(&mut out, &rj).map_err(std::io::Error::other)?;
        socket.write_all(&out).await?;
        socket.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "peer sent no A-ASSOCIATE-RQ"))?
}

/// Reads the calling AE title of the A-ASSOCIATE-RQ waiting on `socket` without consuming it
/// (TCP peek), so negotiation proceeds normally afterwards. `None` when the peer sends no
/// A-ASSOCIATE-RQ header within `timeout`.
pub async fn peek_calling_ae(socket: &TcpStream, timeout: Duration) -> Option<String> {
    // PDU type (1), reserved (1), length (4), protocol version (2), reserved (2),
    // called AE (16), calling AE (16).
    let mut buf = [0u8; 42];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf[0] != 0x01 {
            return None;
        }
        if n >= buf.len() {
            let ae = String::from_utf8_lossy(&buf[26..42]).trim().to_string();
            return Some(ae);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

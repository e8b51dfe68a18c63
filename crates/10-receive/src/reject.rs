//! The A-ASSOCIATE-RQ seen before dicom-ul negotiates (plain TCP), and the A-ASSOCIATE-RJ for
//! connections refused a slot.
//!
//! dicom-ul negotiates or rejects inside `establish_async`, but the association limits must be
//! applied with the calling AE title, once the request is here and before it is accepted. The
//! request is peeked (left in the socket for dicom-ul), and an over-limit one is answered as
//! PS3.8 asks (a transient rejection the modality will retry) instead of closing the socket.

use std::time::Duration;

use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJSource, Pdu,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest part of an A-ASSOCIATE-RQ read or peeked before answering (they are a few hundred
/// bytes to a few KiB); bounds the memory of every negotiating connection.
const MAX_RQ_LEN: usize = 64 << 10;

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

/// What the first PDU on a plain connection is, as far as admission is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peeked {
    /// An A-ASSOCIATE-RQ, all of it in the socket buffer, from this calling AE.
    AssociateRq {
        /// Calling AE title, trimmed.
        calling_ae: String,
    },
    /// An A-ASSOCIATE-RQ declaring more than 64 KiB (real ones are a few KiB): refused
    /// before anything reads it, so a negotiating connection never buffers up to `max_pdu`.
    Oversized(usize),
    /// Anything else, or the peer closed: dicom-ul's negotiation answers it (A-ABORT), and no
    /// association can come of it.
    Other,
}

/// Waits until the peer's first PDU is in the socket buffer, without consuming it (TCP peek),
/// so that negotiation proceeds normally afterwards. Not bounded in time: the caller runs it
/// under the ARTIM timer.
pub async fn peek_associate_rq(socket: &TcpStream) -> std::io::Result<Peeked> {
    // PDU type (1), reserved (1), length (4), protocol version (2), reserved (2),
    // called AE (16), calling AE (16).
    const AE_END: usize = 42;
    let mut buf = vec![0u8; MAX_RQ_LEN];
    let mut pause = Duration::from_millis(1);
    loop {
        let n = socket.peek(&mut buf).await?;
        if n == 0 || buf[0] != 0x01 {
            return Ok(Peeked::Other);
        }
        if n >= 6 {
            let len = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
            if len.saturating_add(6) > MAX_RQ_LEN {
                return Ok(Peeked::Oversized(len));
            }
            let whole = (len + 6).max(AE_END);
            if n >= whole {
                let calling_ae = String::from_utf8_lossy(&buf[26..AE_END]).trim().to_string();
                return Ok(Peeked::AssociateRq { calling_ae });
            }
        }
        // Part of the request is here: peek returns at once until more arrives.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    fn rq_header(len: u32, calling: &str) -> Vec<u8> {
        let mut pdu = vec![0x01, 0];
        pdu.extend_from_slice(&len.to_be_bytes());
        pdu.extend_from_slice(&[0, 1, 0, 0]);
        pdu.extend_from_slice(format!("{:<16}", "RADROUTE").as_bytes());
        pdu.extend_from_slice(format!("{calling:<16}").as_bytes());
        pdu
    }

    #[tokio::test]
    async fn peek_waits_for_the_whole_request_and_leaves_it() {
        let (mut client, server) = pair().await;
        let mut rq = rq_header(100, "SLOWAE");
        rq.resize(106, 0);
        client.write_all(&rq[..60]).await.expect("write");
        let early = tokio::time::timeout(Duration::from_millis(100), peek_associate_rq(&server));
        assert!(
            early.await.is_err(),
            "must wait for the rest of the request"
        );
        client.write_all(&rq[60..]).await.expect("write");
        let peeked = tokio::time::timeout(Duration::from_secs(5), peek_associate_rq(&server))
            .await
            .expect("in time")
            .expect("peek");
        assert_eq!(
            peeked,
            Peeked::AssociateRq {
                calling_ae: "SLOWAE".into()
            }
        );
        let mut left = [0u8; 106];
        assert_eq!(
            server.peek(&mut left).await.expect("peek"),
            106,
            "not consumed"
        );
    }

    #[tokio::test]
    async fn oversized_and_foreign_first_pdus() {
        let (mut client, server) = pair().await;
        client
            .write_all(&rq_header(1 << 20, "BIG"))
            .await
            .expect("write");
        assert_eq!(
            peek_associate_rq(&server).await.expect("peek"),
            Peeked::Oversized(1 << 20)
        );
        let (mut client, server) = pair().await;
        client.write_all(&[0x16, 3, 1]).await.expect("write"); // TLS
        assert_eq!(
            peek_associate_rq(&server).await.expect("peek"),
            Peeked::Other
        );
    }
}

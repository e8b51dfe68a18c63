//! The process's exit for the SCP's end: the DICOM node is the daemon's reason to exist, so an
//! accept loop that gave up must make `radroute serve` exit non-zero.

use tracing::warn;

use super::NodeError;

/// The node's result for the SCP's: an accept loop that gave up is an error, so the process
/// exits non-zero and a supervisor (systemd `Restart=on-failure`) restarts it.
pub(super) fn scp_outcome(
    result: Result<(), radroute_receive::ServeError>,
) -> Result<(), NodeError> {
    result.map_err(|e| {
        warn!(error = %e, "SCP stopped: exiting with an error");
        NodeError::Scp(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_scp_that_gives_up_is_an_error() {
        assert!(scp_outcome(Ok(())).is_ok());
        let failed = scp_outcome(Err(radroute_receive::ServeError::Accept {
            addr: "127.0.0.1:104".into(),
            source: std::io::Error::from_raw_os_error(libc::EMFILE),
        }));
        assert!(
            matches!(&failed, Err(NodeError::Scp(_))),
            "must be an error so that main exits non-zero: {failed:?}"
        );
    }
}

//! Who may open an association: an allow-list of calling AE titles, each optionally tied to a
//! source address. An empty list allows everyone (the default for a node on a closed network).

use std::net::IpAddr;

/// One allowed peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPeer {
    /// Calling AE title, compared exactly after trimming spaces.
    pub ae_title: String,
    /// When set, the association must also come from this address.
    pub address: Option<IpAddr>,
}

/// The allow-list; empty means every calling AE title is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Allowed peers.
    pub allowed: Vec<AllowedPeer>,
}

impl AccessPolicy {
    /// True when `calling_ae` from `peer` may associate.
    pub fn permits(&self, calling_ae: &str, peer: IpAddr) -> bool {
        if self.allowed.is_empty() {
            return true;
        }
        let calling_ae = calling_ae.trim();
        self.allowed
            .iter()
            .any(|p| p.ae_title.trim() == calling_ae && p.address.is_none_or(|addr| addr == peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_list_allows_all_and_entries_restrict() {
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.9".parse().expect("ip");
        assert!(AccessPolicy::default().permits("ANY", local));
        let policy = AccessPolicy {
            allowed: vec![
                AllowedPeer {
                    ae_title: "MODALITY1".into(),
                    address: None,
                },
                AllowedPeer {
                    ae_title: "CR2".into(),
                    address: Some(local),
                },
            ],
        };
        assert!(policy.permits("MODALITY1 ", other));
        assert!(policy.permits("CR2", local));
        assert!(!policy.permits("CR2", other));
        assert!(!policy.permits("STRANGER", local));
    }
}

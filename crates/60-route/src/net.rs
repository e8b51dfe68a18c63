//! IP address / CIDR block matching for the `source` condition (no extra dependency).

use std::net::IpAddr;

/// An IPv4 or IPv6 network; a plain address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `192.168.1.7`, `fd00::/8`, `::1`.
    pub(crate) fn parse(text: &str) -> Result<Cidr, String> {
        let t = text.trim();
        let (addr_text, prefix_text) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{addr_text:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix length {p:?} is not 0..={max}"))?,
        };
        let cidr = Cidr { addr, prefix };
        if cidr.masked(addr) != addr_bits(addr) {
            return Err(format!("host bits set; did you mean {}?", cidr.network()));
        }
        Ok(cidr)
    }

    fn masked(&self, addr: IpAddr) -> u128 {
        let bits = addr_bits(addr);
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let host = width - u32::from(self.prefix);
        if host >= 128 {
            0
        } else {
            (bits >> host) << host
        }
    }

    fn network(&self) -> String {
        let bits = self.masked(self.addr);
        let addr = match self.addr {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(bits as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(bits)),
        };
        format!("{addr}/{}", self.prefix)
    }

    /// Whether `peer` is in this network; IPv4-mapped IPv6 peers are compared as IPv4.
    pub(crate) fn contains(&self, peer: IpAddr) -> bool {
        let peer = normalize(peer);
        if peer.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        self.masked(peer) == addr_bits(self.addr)
    }
}

fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn addr_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    #[test]
    fn matches() {
        let c = Cidr::parse("10.0.0.0/8").expect("cidr");
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .expect("any")
            .contains(ip("1.2.3.4")));
        assert!(Cidr::parse("::/0").expect("any6").contains(ip("fd00::1")));
        assert!(Cidr::parse("192.168.1.7")
            .expect("host")
            .contains(ip("192.168.1.7")));
        assert!(Cidr::parse("fd00::/8").expect("v6").contains(ip("fd12::1")));
        assert!(Cidr::parse("10.0.0.1/8").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0/8").is_err());
    }
}

//! Value checks of the configuration that serde cannot express: ranges, finite numbers, ports,
//! and routes on labels the configured model never gives.
//!
//! [`super::Config::problems`] (refusals) and [`super::Config::warnings`] call these, and both
//! `radroute check-config` and `radroute serve` go through them, so the two refuse the same files
//! with the same messages.

use radroute_route::RuleSet;

/// Smallest `node.max_pdu`: dicom-ul 0.10's smallest negotiable maximum length
/// (`dicom_ul::pdu::MINIMUM_PDU_SIZE`, 1 KiB less the PDU header); PS3.8 leaves the minimum to
/// the implementation.
pub const MIN_PDU: u32 = 1_024 - 6;

/// Largest `node.max_pdu` (16 MiB). PS3.8 allows up to 2^32 − 1 and 0 for "no limit", but a
/// peer may fill every PDU up to what radroute advertises: the advertised length bounds the
/// memory one PDU can take, so radroute never advertises more than this (or "no limit").
pub const MAX_PDU: u32 = 16 << 20;

/// Longest retry delay accepted (30 days): anything longer is a typo, and a delay must convert
/// to a [`std::time::Duration`] and add to a timestamp without overflowing.
pub const MAX_BACKOFF_SECS: f64 = 30.0 * 86_400.0;

/// A retry delay (`queue.backoff_*_secs`): a finite number of seconds in 0..=[`MAX_BACKOFF_SECS`].
/// TOML allows `inf` and `nan`, which would make the queue's delay arithmetic panic or never fire.
pub fn backoff_secs(key: &str, value: f64) -> Option<String> {
    (!(0.0..=MAX_BACKOFF_SECS).contains(&value)).then(|| {
        format!("queue.{key}: {value} is not a number of seconds in 0..={MAX_BACKOFF_SECS}")
    })
}

/// `node.max_pdu` in [`MIN_PDU`]..=[`MAX_PDU`].
pub fn max_pdu(value: u32) -> Option<String> {
    (!(MIN_PDU..=MAX_PDU).contains(&value)).then(|| {
        format!(
            "node.max_pdu: {value} is outside {MIN_PDU}..={MAX_PDU} (0, \"no limit\" in PS3.8, \
             is refused: the advertised length bounds what one PDU may hold)"
        )
    })
}

/// The port of a `host:port` (or `[v6]:port`) address: 1..=65535, or why not.
pub fn port_of(address: &str) -> Result<u16, String> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("{address:?} is not host:port"));
    };
    if host.is_empty() {
        return Err(format!("{address:?} has no host"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err(format!(
            "{address:?}: port 0 is not a port a peer can reach"
        )),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("{address:?}: port {port:?} is not in 1..=65535")),
    }
}

/// Routes testing for a label the model never gives, one line each. `labels` are the model's
/// Body Part terms; `None` when no model is configured (then no label is ever given).
pub fn label_warnings(rules: &RuleSet, labels: Option<&[String]>) -> Vec<String> {
    rules
        .label_conditions()
        .into_iter()
        .filter(|(_, label)| {
            !labels.is_some_and(|known| known.iter().any(|k| k.eq_ignore_ascii_case(label)))
        })
        .map(|(rule, label)| match labels {
            Some(known) => format!(
                "route {rule}: when.label {label:?} is not a label of the configured model \
                 (it gives {}): the condition never holds",
                known.join(", ")
            ),
            None => format!(
                "route {rule}: when.label {label:?} but no classify.model is configured: \
                 the condition never holds"
            ),
        })
        .collect()
}

/// Serde for path keys that must be written as strings. The `config` crate turns any scalar into
/// a string on request, so `spool.dir = 5` would otherwise become the relative directory `5`.
pub mod strict_path {
    use std::fmt;
    use std::path::PathBuf;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serialize, Serializer};

    struct PathVisitor;

    impl Visitor<'_> for PathVisitor {
        type Value = PathBuf;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a path written as a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<PathBuf, E> {
            Ok(PathBuf::from(v))
        }
    }

    /// Serializes the path as a string.
    pub fn serialize<S: Serializer>(p: &PathBuf, s: S) -> Result<S::Ok, S::Error> {
        p.serialize(s)
    }

    /// Accepts only a string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        d.deserialize_any(PathVisitor)
    }

    /// The same for an optional path.
    pub mod option {
        use std::path::PathBuf;

        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        /// A string path, as [`super::deserialize`] reads it.
        #[derive(Deserialize)]
        struct Strict(#[serde(deserialize_with = "super::deserialize")] PathBuf);

        /// Serializes the path, if any, as a string.
        pub fn serialize<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
            p.serialize(s)
        }

        /// Accepts a string or nothing.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
            Ok(Option::<Strict>::deserialize(d)?.map(|s| s.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_must_be_finite_and_in_range() {
        for bad in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -1.0, 1e20] {
            assert!(backoff_secs("backoff_max_secs", bad).is_some(), "{bad}");
        }
        for good in [0.0, 0.5, 5.0, 600.0, MAX_BACKOFF_SECS] {
            assert_eq!(backoff_secs("backoff_max_secs", good), None, "{good}");
            // What the queue then does with it must not panic.
            let _ = std::time::Duration::from_secs_f64(good);
        }
    }

    #[test]
    fn max_pdu_range() {
        for bad in [0, 1, MIN_PDU - 1, MAX_PDU + 1, u32::MAX] {
            assert!(max_pdu(bad).is_some(), "{bad}");
        }
        for good in [MIN_PDU, 16_384, 65_536, MAX_PDU] {
            assert_eq!(max_pdu(good), None, "{good}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(port_of("127.0.0.1:104"), Ok(104));
        assert_eq!(port_of("[::1]:65535"), Ok(65535));
        assert_eq!(port_of("pacs.example:11112"), Ok(11112));
        for bad in [
            "127.0.0.1:99999",
            "127.0.0.1:0",
            "pacs",
            ":104",
            "h:-1",
            "h:",
        ] {
            assert!(port_of(bad).is_err(), "{bad}");
        }
    }
}

/// An admin listener beyond loopback without a token would show patient data (the console)
/// and accept retries and drops from anyone on the network: refused, with the fix.
pub(crate) fn admin_exposed(listen: &str, token: Option<&str>) -> Option<String> {
    let addr = listen.parse::<std::net::SocketAddr>().ok()?;
    let has_token = token.is_some_and(|t| !t.trim().is_empty());
    (!addr.ip().is_loopback() && !has_token).then(|| {
        format!(
            "admin.listen: {listen} is reachable from other machines but admin.token is not set: \
             the console shows patient data and its actions retry and drop images. Set \
             [admin] token = \"<a long random secret>\" (or RADROUTE__ADMIN__TOKEN), or listen on \
             127.0.0.1"
        )
    })
}

#[cfg(test)]
mod admin_tests {
    use super::admin_exposed;

    #[test]
    fn exposed_admin_needs_a_token() {
        assert!(admin_exposed("0.0.0.0:8080", None).is_some());
        assert!(admin_exposed("10.1.2.3:8080", Some("  ")).is_some());
        assert!(admin_exposed("[::]:8080", None).is_some());
        assert!(admin_exposed("0.0.0.0:8080", Some("secret")).is_none());
        assert!(admin_exposed("127.0.0.1:8080", None).is_none());
        assert!(admin_exposed("[::1]:8080", None).is_none());
        assert!(admin_exposed("", None).is_none());
    }
}

//! Validation of the `[node]` admission, storage-wait and receive-memory limits
//! (`artim_timeout_secs`, `store_timeout_secs`, `max_negotiating`, `max_instance_mb`,
//! `receive_memory_mb`): values a peer could otherwise turn
//! against the node, refused by `check-config` and at start alike.

use super::NodeConfig;

impl NodeConfig {
    /// Problems with the admission and receive-memory limits.
    pub(super) fn limit_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=600).contains(&self.artim_timeout_secs) {
            problems.push(format!(
                "node.artim_timeout_secs: {} is outside 1 to 600",
                self.artim_timeout_secs
            ));
        }
        if !(1..=3600).contains(&self.store_timeout_secs) {
            problems.push(format!(
                "node.store_timeout_secs: {} is outside 1 to 3600",
                self.store_timeout_secs
            ));
        }
        if self.max_negotiating == 0 {
            problems.push("node.max_negotiating: at least 1".into());
        }
        // 1 TiB: far past any real instance, and small enough that MiB → bytes cannot overflow.
        const MAX_MB: usize = 1 << 20;
        for (key, value) in [
            ("max_instance_mb", self.max_instance_mb),
            ("receive_memory_mb", self.receive_memory_mb),
        ] {
            if !(1..=MAX_MB).contains(&value) {
                problems.push(format!("node.{key}: {value} is outside 1 to {MAX_MB}"));
            }
        }
        if self.max_instance_mb > self.receive_memory_mb {
            problems.push(format!(
                "node.max_instance_mb ({}) exceeds node.receive_memory_mb ({}): such an instance could never be received",
                self.max_instance_mb, self.receive_memory_mb
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_limits_are_refused() {
        assert!(NodeConfig::default().limit_problems().is_empty());
        let bad = |edit: fn(&mut NodeConfig)| {
            let mut node = NodeConfig::default();
            edit(&mut node);
            node.limit_problems()
        };
        assert_eq!(bad(|n| n.artim_timeout_secs = 0).len(), 1);
        assert_eq!(bad(|n| n.store_timeout_secs = 0).len(), 1);
        assert_eq!(bad(|n| n.store_timeout_secs = 3601).len(), 1);
        assert_eq!(bad(|n| n.max_negotiating = 0).len(), 1);
        // 0 is not "unlimited".
        assert!(!bad(|n| n.max_instance_mb = 0).is_empty());
        let over = bad(|n| n.max_instance_mb = n.receive_memory_mb + 1);
        assert_eq!(over.len(), 1, "{over:?}");
        assert!(over[0].contains("could never be received"), "{over:?}");
    }
}

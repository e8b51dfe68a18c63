//! Received instances handed from the store step to the processing step in memory.
//!
//! The store step parses every data set before it acknowledges it (what radroute cannot read it
//! must not acknowledge). Keeping that parsed object for the processing step spares reading the
//! spooled file back and parsing it a second time: for a 10 MB radiograph, two copies of the
//! pixels and a parse. The spool file stays the source of truth: an instance not found here
//! (budget full, restart, study relabelling) is read from disk as before.
//!
//! The budget bounds the memory held: past it, nothing more is kept until the processing step
//! has taken some.

use std::collections::HashMap;
use std::sync::Mutex;

use dicom_object::DefaultDicomObject;

/// Parsed instances waiting for processing, by instance id, within a byte budget.
pub struct Handoff {
    budget: usize,
    inner: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    bytes: usize,
    objects: HashMap<String, (DefaultDicomObject, usize)>,
}

impl Handoff {
    /// A handoff keeping at most `budget` bytes of data sets (0 keeps none).
    pub fn new(budget: usize) -> Handoff {
        Handoff {
            budget,
            inner: Mutex::default(),
        }
    }

    /// Keeps `obj` (whose data set is `bytes` long) for the processing step, if the budget
    /// allows; returns whether it was kept. Call before the instance becomes visible to the
    /// processing step (the queue commit), so processing never misses an object that is kept.
    pub fn offer(&self, id: &str, obj: DefaultDicomObject, bytes: usize) -> bool {
        let mut held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if held.bytes + bytes > self.budget {
            return false;
        }
        held.bytes += bytes;
        if let Some((_, old)) = held.objects.insert(id.to_string(), (obj, bytes)) {
            held.bytes -= old;
        }
        metrics::gauge!("radroute_handoff_bytes").set(held.bytes as f64);
        true
    }

    /// Takes the object kept for `id`, if any.
    pub fn take(&self, id: &str) -> Option<DefaultDicomObject> {
        let mut held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (obj, bytes) = held.objects.remove(id)?;
        held.bytes -= bytes;
        metrics::gauge!("radroute_handoff_bytes").set(held.bytes as f64);
        Some(obj)
    }

    /// Forgets the object kept for `id` (its store failed after the offer).
    pub fn discard(&self, id: &str) {
        drop(self.take(id));
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    fn object() -> DefaultDicomObject {
        InMemDicomObject::new_empty()
            .with_meta(
                FileMetaTableBuilder::new()
                    .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.1")
                    .media_storage_sop_instance_uid("1.2.3")
                    .transfer_syntax("1.2.840.10008.1.2.1"),
            )
            .expect("valid meta")
    }

    #[test]
    fn keeps_within_budget_and_releases_on_take() {
        let h = Handoff::new(100);
        assert!(h.offer("a", object(), 60));
        assert!(!h.offer("b", object(), 60), "over budget");
        assert_eq!(h.held_bytes(), 60);
        assert!(h.take("b").is_none());
        assert!(h.take("a").is_some());
        assert!(h.take("a").is_none(), "taken twice");
        assert_eq!(h.held_bytes(), 0);
        assert!(h.offer("b", object(), 60));
        h.discard("b");
        assert_eq!(h.held_bytes(), 0);
        assert!(!Handoff::new(0).offer("c", object(), 1));
    }
}

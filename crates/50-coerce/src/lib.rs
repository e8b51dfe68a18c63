//! Writes the classification result into the dataset, keeping the SOP Instance UID.
#![deny(missing_docs)]

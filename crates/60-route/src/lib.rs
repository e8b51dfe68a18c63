//! Routing rules: from an instance's attributes and label to destinations and edits.
#![deny(missing_docs)]

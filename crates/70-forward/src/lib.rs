//! C-STORE SCU forwarding to PACS destinations.
#![deny(missing_docs)]

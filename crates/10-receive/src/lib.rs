//! The C-STORE SCP: listener, association limits, negotiation policy and shutdown.
#![deny(missing_docs)]

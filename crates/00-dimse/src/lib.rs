//! DIMSE messages (C-ECHO, C-STORE), status codes and P-DATA reassembly, with no I/O.
#![deny(missing_docs)]

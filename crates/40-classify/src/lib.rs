//! Body-part classification with an ONNX model ensemble through ONNX Runtime.
#![deny(missing_docs)]

//! Pixel data to a display-ready grayscale image, and the model's preprocessing.
#![deny(missing_docs)]

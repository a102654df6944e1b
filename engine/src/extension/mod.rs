//! (extension: being written)

//! (directory: being written)

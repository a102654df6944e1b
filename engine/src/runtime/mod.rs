//! (runtime: being written)

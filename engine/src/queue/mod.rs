//! (queue: being written)

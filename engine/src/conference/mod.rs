//! (conference: being written)

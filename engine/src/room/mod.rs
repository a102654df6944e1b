//! (room: being written)

//! KurrentDB backend (in progress).

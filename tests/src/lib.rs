//! Shared test support; see `conformance`.

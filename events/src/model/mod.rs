//! Placeholder, replaced by the domain-model work.

//! Abuse cases: memory (to be written).

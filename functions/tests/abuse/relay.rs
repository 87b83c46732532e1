//! Abuse cases: relay (to be written).

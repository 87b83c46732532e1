//! Abuse cases: versions (to be written).

//! Abuse cases: http_limits (to be written).

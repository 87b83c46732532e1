//! Abuse cases: retention (to be written).

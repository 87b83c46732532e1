//! Accounts outside any one request: the secret that signs tokens.

mod signing_secret;

pub use signing_secret::token_secret;

//! Authentication: token → [`Principal`].
//!
//! [`Verifier::verify`] is local and CPU-only (no network on the hot path).
//! [`token_source`] finds the token in a request (`Authorization: Bearer` first,
//! then `?token=`), [`extract`] makes `Principal` an axum extractor, and
//! [`AuthError`] maps every failure to the wire contract in one place.

mod error;
mod extract;
pub use extract::AuthState;
mod identity;
mod keys;
mod principal;
pub mod token_source;
mod verifier;

pub use error::{AuthError, InvalidReason};
pub use identity::is_valid_identity;
pub use keys::{is_hmac, parse_algorithm, PublicKey};
pub use principal::Principal;
pub use verifier::Verifier;

#[cfg(test)]
mod tests;

//! Authentication: token → [`Principal`].
//!
//! - [`authenticate`] is the one path every job takes: [`token_source`] finds the
//!   token (`auth.token_sources`: header, query, cookie), [`Verifier::verify`] checks
//!   it, [`revocation::check`] refuses revoked tokens. [`Principal`] is an axum
//!   extractor built on it.
//! - [`Verifier`] verifies locally and CPU-only on the hot path: keys come from a
//!   secret, a PEM key, or a key set (`jwks`, with OIDC discovery in `oidc`)
//!   cached in memory; only an unknown `kid` may wait for a (rate-limited) fetch.
//!   `claims` turns claims into identity, name, roles and checks `azp`.
//! - `remote` asks `auth.verify` about each new token (answers cached);
//!   `refresh` trades a refresh token for a new access token; both go through
//!   `provider` and the SSRF-guarded [`crate::net::HttpClient`].
//! - [`AuthError`] maps every refusal to the wire contract in one place;
//!   [`ProviderError`] says why a provider call failed (logged, counted).
//! - [`revocation`] stores revocations in the broker and checks them at connect;
//!   [`RevocationWatch`] ends open connections when a revocation notice arrives.
//! - [`api_key`] checks server-to-server keys (`/api/publish`, `/admin/*`).

pub mod api_key;
mod cache;
mod claims;
mod error;
mod extract;
mod identity;
mod jwks;
mod key_set;
mod keys;
mod lifetime;
mod oidc;
mod principal;
mod provider;
mod refresh;
mod remote;
pub mod revocation;
mod revocation_watch;
pub mod token_source;
mod validation;
mod verifier;

pub use api_key::{api_key_matches, check_api_key, ApiKeyRefusal};
pub use error::{AuthError, InvalidReason, ProviderError};
pub use extract::{authenticate, AuthState};
pub use identity::is_valid_identity;
pub use keys::{is_hmac, parse_algorithm, PublicKey};
pub use lifetime::{deadline, AuthEvent, AuthLifetime};
pub use principal::Principal;
pub use refresh::Refreshed;
pub use revocation::Revocation;
pub use revocation_watch::{RevocationWatch, Watched};
pub use token_source::TokenSources;
pub use verifier::Verifier;

#[cfg(test)]
mod tests;

//! The HTTP endpoints, one file per endpoint family. Handlers read the request, call the
//! protocol decisions, the store and the minter, and render the response; [`respond`] renders
//! the protocol's errors.

pub mod authorize;
pub mod callback;
pub mod discovery;
pub mod health;
pub mod introspect;
pub mod respond;
pub mod revoke;
pub mod token;

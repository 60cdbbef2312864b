//! The HTTP endpoints, one file per endpoint family. Handlers read the request, call the
//! protocol decisions, the store and the minter, and render the response; [`respond`] renders
//! the protocol's errors.

pub(crate) mod authorize;
pub(crate) mod callback;
pub(crate) mod discovery;
pub(crate) mod health;
pub(crate) mod introspect;
pub(crate) mod respond;
pub(crate) mod revoke;
pub(crate) mod token;

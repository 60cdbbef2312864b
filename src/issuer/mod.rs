//! The token issuer: the OAuth 2.0 endpoints that enforce the reconciled policies.
//!
//! - [`protocol`]: the decisions (which API, which scopes, may a refresh token exist), pure.
//! - [`grants`]: one module per token grant, each a function of the parsed request, the client,
//!   the configuration, a store and the time; no HTTP.
//! - [`authorization`]: the authorization request and its redirect, pure.
//! - [`client_auth`]: who the client is; [`users`]: who the person is; [`first_party`]: the
//!   clients the platform vouches for.
//! - [`login`]: the password form and its CSRF binding; [`sign_ins`]: sign-ins in progress,
//!   sealed in the store so any replica can finish them; [`throttle`]: brute-force limits,
//!   by username and by [`client_address`];
//!   [`page`]: the login and error pages; [`upstream`]: sign-in at an upstream OpenID Provider.
//! - [`form`]: hostile-input parsing of request parameters; [`error`]: RFC 6749 errors.
//! - [`routes`]: the endpoints; [`server`]: the routers ([`crate::serve`] serves them).
//! - [`snapshot`]: the configuration in force, swapped whole; [`standalone`]: its file source;
//!   [`cluster`]: its source in cluster mode, the objects the controller writes.
//! - [`audit`]: the audit trail and the request id.
//! - [`state`]: what handlers share; [`metrics`]: Prometheus metrics; [`key_file`]: standalone
//!   mode's signing keys, rotated in `--data-dir`.
//! - [`mod@run`]: `tokenwarden issuer`, standalone or cluster mode.

pub mod audit;
pub mod authorization;
pub mod client_address;
pub mod client_auth;
pub mod cluster;
pub mod error;
pub mod first_party;
pub mod form;
pub mod grants;
pub mod key_file;
pub mod login;
pub mod metrics;
pub mod page;
pub mod protocol;
pub mod routes;
pub mod run;
pub mod server;
pub mod sign_ins;
pub mod snapshot;
pub mod standalone;
pub mod state;
pub mod throttle;
pub mod upstream;
pub mod users;

pub use run::{IssuerOptions, run};
pub use server::{metrics_router, router};
pub use snapshot::{ConfigSource, InForce, Snapshot};
pub use state::{Clock, Issuer, Keys};

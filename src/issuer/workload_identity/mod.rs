//! Workload identity: a workload's own token instead of a client secret. A pod presents its
//! projected ServiceAccount token, a CI job the OIDC token of its CI system (a FederatedIssuer),
//! as a client assertion (RFC 7523 §2.2) or as the subject token of a token exchange (RFC 8693).
//!
//! - [`verify`]: the rules, pure: signature, `iss`, `aud`, `exp`/`nbf`/`iat` with a stated
//!   skew, the ServiceAccount's UID now, federated subjects and claims; and which client the
//!   workload acts as.
//!
//! Must not decide grants or render HTTP: the token route authenticates the client with what
//! this module says, and the grants issue as for any client.

pub mod verify;

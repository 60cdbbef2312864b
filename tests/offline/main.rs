//! The tests that need no server and no test tool: the CRDs and their admission rules, the
//! README's metrics table, the release check and `tokenwarden validate`. One test binary (one
//! link) for all of them; each file is a module named as its test binary was, so
//! `cargo test --test offline crds::` runs what `cargo test --test crds` ran. See
//! tests/README.md for how the tests are laid out.

#[path = "../cases/mod.rs"]
mod cases;

mod admission;
mod crds;
mod readme_metrics;
mod release;
mod validate_cli;

//! The test control plane itself and the CRDs on it: the API server, its RBAC and
//! TokenRequest tokens; the CRDs applied server-side, Established and guarded by RBAC; their
//! admission, defaults and columns. These tests share the binary's one control plane: each
//! works in namespaces of its own, and the only cluster-scoped objects they touch are the CRDs,
//! which `ControlPlane::install_crds` installs once per binary. No test here starts a
//! controller or stops the API server (those keep binaries of their own: tests/README.md).
//! Each file is a module named as its test binary was: `cargo test --test apiserver
//! cluster_admission::` runs what `cargo test --test cluster_admission` ran.

#[path = "../cases/mod.rs"]
mod cases;
#[path = "../support/mod.rs"]
mod support;

mod apiserver_crds;
mod cluster_admission;
mod control_plane;

//! Loopback ports for the servers the tests start. A port is picked at random below the
//! kernel's ephemeral range (32768-60999 by default) and checked to be free: a port the kernel
//! hands out for `bind(0)` is also one it may give an outgoing connection (a PostgreSQL or API
//! server client) between the pick and the server's own bind, which made tests fail with
//! "Address already in use" under load. One file, included by `support`, `fixtures` and
//! `operator`, so every test binary picks ports the same way.

use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{Ipv4Addr, TcpListener};

/// The range picked from: above the well-known ports, below the ephemeral range.
const FIRST: u64 = 20_000;
const COUNT: u64 = 12_000;

/// A loopback port nothing listens on now, outside the ephemeral range, and never handed out
/// before in this process: a port picked for one server is free until that server binds it,
/// so without this two servers started together (etcd's and the API server's ports, say)
/// could be given the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1_000 {
        // A fresh `RandomState` is seeded differently on every call.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = u16::try_from(FIRST + random % COUNT).expect("below 65536");
        if !given.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!(
        "no free loopback port between {FIRST} and {} after 1,000 tries",
        FIRST + COUNT - 1
    );
}

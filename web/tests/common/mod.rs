//! Shared by every test that runs the `ledgerline` binary: the command with the caller's
//! environment cleared of `LEDGERLINE_*` settings, and a free loopback port.

#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use std::net::TcpListener;
use std::process::Command;

/// `ledgerline`, unaffected by the environment the tests run in; its SIP edge (when it serves)
/// takes a free loopback port, so tests run side by side.
pub(crate) fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ledgerline"));
    c.env_remove("LEDGERLINE_STORE")
        .env_remove("LEDGERLINE_DATA_DIR")
        .env_remove("LEDGERLINE_CONFIG")
        .env_remove("LEDGERLINE_HTTP")
        .env("LEDGERLINE_SIP", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    c
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

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

/// Sends SIGINT (what Ctrl-C sends) to process `pid`.
pub(crate) fn interrupt(pid: u32) {
    let sent = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -INT {pid}");
}

/// A child process killed when dropped (a failing test leaves nothing running).
pub(crate) struct KillOnDrop(pub(crate) Option<std::process::Child>);

impl KillOnDrop {
    /// Waits for the child to exit on its own (at most `within`), with what it printed.
    pub(crate) fn wait_with_output(mut self, within: std::time::Duration) -> std::process::Output {
        let child = self.0.take().expect("a child");
        let pid = child.id();
        let (done, waited) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output());
        });
        match waited.recv_timeout(within) {
            Ok(output) => output.expect("the child's output"),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("process {pid} did not exit within {within:?}");
            }
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! The conformance suite against the in-memory log (reopening a key returns the same instance,
//! which is what "durable" means for a process-local log).
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use events::EventLog;
use events::log::memory::MemoryLog;
use futures_util::future::BoxFuture;
use tests::conformance::{Backend, run_all};

#[derive(Default)]
struct Memory(Mutex<HashMap<String, Arc<MemoryLog>>>);

impl Backend for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Arc<dyn EventLog>> {
        Box::pin(async move {
            let mut logs = self.0.lock().expect("lock");
            logs.entry(key.to_owned()).or_default().clone() as Arc<dyn EventLog>
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_log_conforms() {
    run_all(Arc::new(Memory::default())).await;
}

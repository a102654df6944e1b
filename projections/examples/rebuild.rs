//! The rebuild benchmark: writes a synthetic busy log (unless the store already holds one),
//! then rebuilds the panel and CDR projections from position 0 and prints events per second.
//!
//! ```text
//! cargo run --release -p projections --example rebuild -- [--events N] [--store URL] [--seed S]
//! ```
//!
//! `--store` takes what `ledgerline --store` takes (`sqlite:PATH` or a path, `postgres://…`);
//! without it a SQLite file in a temporary directory is used. The log is written with relaxed
//! fsync (it is scratch data); the rebuild reads it back in full.

use std::sync::Arc;
use std::time::Instant;

use events::{EventLog, StoreOptions, StoreUrl};
use projections::bench::{Synthetic, populate, rebuild};
use projections::cdr::CdrStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut params = Synthetic::default();
    let mut store: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--events" => params.events = value()?.replace('_', "").parse()?,
            "--seed" => params.seed = value()?.parse()?,
            "--users" => params.users = value()?.parse()?,
            "--store" => store = Some(value()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let scratch = tempfile::tempdir()?;
    let url = match &store {
        Some(s) => StoreUrl::parse(s)?,
        None => StoreUrl::Sqlite(scratch.path().join("rebuild.db")),
    };
    let options = StoreOptions {
        fsync_every_commit: false,
        ..StoreOptions::default()
    };
    let log: Arc<dyn EventLog> = events::open(&url, &options).await?;
    let head = log.head().await?;
    if head.0 == 0 {
        let started = Instant::now();
        let written = populate(&log, &params).await?;
        println!(
            "wrote {written} synthetic events ({} users) in {:.1} s",
            params.users,
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("the store already holds {head} events; rebuilding from them");
    }
    let cdrs = CdrStore::open(&url).await?;
    let figures = rebuild(log, cdrs).await?;
    println!("{figures}");
    Ok(())
}

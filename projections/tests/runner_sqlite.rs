//! The runner and the CDR store against a real SQLite file (the embedded log's own file, in a
//! temporary directory): live equals rebuild, restarts resume from the checkpoint without a
//! duplicate row, rows and checkpoint commit together, queries match the reference predicate.

mod common;

use common::flows;
use common::stores::Stores;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_state_equals_a_rebuild_from_zero() {
    flows::live_equals_rebuild(&Stores::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_survives_a_restart_without_duplicate_rows() {
    flows::restart_resumes_without_duplicates(&Stores::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_and_checkpoint_commit_together_or_not_at_all() {
    flows::rows_and_checkpoint_are_one_transaction(&Stores::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_from_the_file_match_the_reference_predicate() {
    flows::queries_match_the_predicate(&Stores::sqlite()).await;
}

/// The log and the projections share one file and its WAL: the log's tables are untouched and
/// reopening the log after the projections wrote still verifies its records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_and_the_projections_share_the_file() {
    let stores = Stores::sqlite();
    let pbx = flows::busy_pbx(2, 20);
    let source = flows::read_everything(&pbx.log()).await;
    {
        let log = stores.log().await;
        flows::copy(&log, &source).await;
        projections::Runner::new(log)
            .with(projections::CdrProjection::new(stores.cdr_store().await))
            .catch_up()
            .await
            .expect("projection");
    }
    let reopened = stores.log().await;
    assert_eq!(flows::read_everything(&reopened).await, source);
    let Stores::Sqlite { path, .. } = &stores else {
        unreachable!("a SQLite store")
    };
    let conn = rusqlite::Connection::open(path).expect("open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal");
    assert!(stores.tables().await.cdr_rows > 0);
}

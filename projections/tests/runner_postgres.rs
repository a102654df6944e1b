//! The runner and the CDR store against a real PostgreSQL server (`LEDGERLINE_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), each test in a database of its own: live
//! equals rebuild, restarts resume from the checkpoint without a duplicate row, rows and
//! checkpoint commit together, queries match the reference predicate, and the schema can be
//! applied by several processes at once.

mod common;

use common::flows;
use common::stores::{Stores, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_state_equals_a_rebuild_from_zero() {
    flows::live_equals_rebuild(&Stores::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_survives_a_restart_without_duplicate_rows() {
    flows::restart_resumes_without_duplicates(&Stores::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_and_checkpoint_commit_together_or_not_at_all() {
    flows::rows_and_checkpoint_are_one_transaction(&Stores::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_from_the_database_match_the_reference_predicate() {
    flows::queries_match_the_predicate(&Stores::postgres().await).await;
}

/// The log's migrations and the projections' schema, applied by four connections at once,
/// leave one set of tables and no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_applies_concurrently_and_twice() {
    let db = TestDb::create_with_suffix("schema").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            projections::cdr::PgCdrStore::connect(&url)
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.expect("task").expect("schema");
    }
    let client = db.client().await;
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN \
             ('projection_checkpoints', 'cdr', 'cdr_open_calls')",
            &[],
        )
        .await
        .expect("tables")
        .get(0);
    assert_eq!(tables, 3);
}

//! The runner scenarios every store passes. The source of events is a busy stretch of the
//! engine-driven PBX in memory; it is copied into the store's log event by event (same streams,
//! versions and positions), while a runner follows or between runner restarts. The reference is
//! the pure fold of the source: the CDRs every leg must have, and the panel's digest.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use events::codec::decode;
use events::ids::{DepartmentId, TenantId, UserId};
use events::{EventLog, ExpectedVersion, GlobalPosition};
use projections::cdr::{Cdr, CdrFold, CdrProjection, CdrQuery, CdrStore};
use projections::panel::{PanelProjection, PanelView};
use projections::runner::Runner;

use super::pbx::Pbx;
use super::stores::Stores;

/// A busy stretch: 30 extensions, `calls` calls with every outcome.
pub(crate) fn busy_pbx(seed: u64, calls: u32) -> Pbx {
    let mut pbx = Pbx::new(seed, 30, &[]);
    pbx.busy(calls, 6.0);
    pbx
}

/// Everything in `log`, in order.
pub(crate) async fn read_everything(log: &Arc<dyn EventLog>) -> Vec<events::StoredEvent> {
    let mut out = Vec::new();
    let mut after = GlobalPosition::START;
    loop {
        let page = log.read_all(after, 4096).await.expect("read the log");
        let Some(last) = page.last() else { break };
        after = last.position;
        out.extend(page);
    }
    out
}

/// The reference: the CDRs and the panel digest of the pure folds over `events`.
pub(crate) fn reference(events: &[events::StoredEvent]) -> (Vec<Cdr>, String, PanelView) {
    let mut fold = CdrFold::new();
    let mut panel = PanelView::new();
    let mut rows = Vec::new();
    for e in events {
        let r = decode(e).expect("decode");
        panel.apply(&r);
        rows.extend(fold.apply(&r));
    }
    CdrQuery::sort(&mut rows);
    let digest = panel.digest();
    (rows, digest, panel)
}

/// Appends `events` to `to`, grouping consecutive events of one stream into one append, and
/// checks each lands at the position it had in the source.
pub(crate) async fn copy(to: &Arc<dyn EventLog>, events: &[events::StoredEvent]) {
    let mut i = 0;
    while i < events.len() {
        let first = &events[i];
        let mut j = i + 1;
        while j < events.len() && events[j].stream == first.stream && j - i < 16 {
            j += 1;
        }
        let records = events[i..j].iter().map(|e| e.record.clone()).collect();
        let out = to
            .append(
                &first.stream,
                ExpectedVersion::Exact(first.version - 1),
                records,
            )
            .await
            .expect("copy append");
        assert_eq!(
            out.first_position, first.position,
            "the copy keeps positions"
        );
        i = j;
    }
}

pub(crate) fn sim() -> TenantId {
    TenantId::parse("sim").expect("tenant")
}

async fn all_rows(store: &CdrStore) -> Vec<Cdr> {
    store
        .query(&CdrQuery::new(sim()).limit(usize::MAX >> 1))
        .await
        .expect("query")
}

/// A runner following the log live while the events are appended ends with the state a
/// rebuild from position 0 gives, and both with the reference.
pub(crate) async fn live_equals_rebuild(stores: &Stores) {
    let pbx = busy_pbx(7, 150);
    let source = read_everything(&pbx.log()).await;
    let (expected_rows, expected_digest, _) = reference(&source);
    assert!(
        expected_rows.len() > 200,
        "a busy log: {} rows",
        expected_rows.len()
    );

    let log = stores.log().await;
    let store = stores.cdr_store().await;
    let (panel, handle) = PanelProjection::new();
    let mut runner = Runner::new(log.clone())
        .with(panel)
        .with(CdrProjection::new(store.clone()))
        .with_live_batch(64);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let following = tokio::spawn(async move {
        runner
            .run(async {
                let _ = stopped.await;
            })
            .await
            .map(|()| runner)
    });
    let mut changes = handle.changes();
    let head = source.last().map(|e| e.position).unwrap_or_default();
    let watcher = tokio::spawn(async move {
        let mut wake_ups = 0u32;
        while *changes.borrow_and_update() < head {
            tokio::time::timeout(Duration::from_secs(60), changes.changed())
                .await
                .expect("the runner stalled")
                .expect("the panel went away");
            wake_ups += 1;
        }
        wake_ups
    });
    for chunk in source.chunks(97) {
        copy(&log, chunk).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let wake_ups = watcher.await.expect("watcher");
    assert!(
        wake_ups > 10,
        "followed live in many batches, not one catch-up: {wake_ups}"
    );
    let _ = stop.send(());
    let runner = following.await.expect("runner task").expect("runner");
    assert_eq!(runner.position(), head);
    let live_digest = handle.read().digest();
    let live_rows = all_rows(&store).await;
    assert_eq!(live_digest, expected_digest, "live panel = reference");
    assert_eq!(live_rows, expected_rows, "live CDRs = reference");

    let (panel, rebuilt) = PanelProjection::new();
    let mut rebuild = Runner::new(log.clone())
        .with(panel)
        .with(CdrProjection::rebuilding(store.clone()));
    let caught = rebuild.catch_up().await.expect("rebuild");
    assert_eq!(caught.position, head);
    assert_eq!(
        rebuilt.read().digest(),
        live_digest,
        "rebuild from 0 = live"
    );
    assert_eq!(all_rows(&store).await, live_rows);
    rebuilt.read().verify_counters().expect("counters");
}

/// A restart resumes from the checkpoint, finishes the calls that were in progress, and writes
/// no row twice.
pub(crate) async fn restart_resumes_without_duplicates(stores: &Stores) {
    let pbx = busy_pbx(11, 120);
    let source = read_everything(&pbx.log()).await;
    let (expected_rows, _, _) = reference(&source);
    let log = stores.log().await;
    let split = source.len() / 2;
    copy(&log, &source[..split]).await;
    let at_split = source[split - 1].position;

    let first = Runner::new(log.clone()).with(CdrProjection::new(stores.cdr_store().await));
    let mut first = first.with_batch(500);
    assert_eq!(
        first.catch_up().await.expect("first run").position,
        at_split
    );
    drop(first);
    let before = stores.tables().await;
    let done_by_split = expected_rows
        .iter()
        .filter(|r| r.end_position() <= at_split)
        .count() as i64;
    assert_eq!(before.checkpoint, Some(at_split.0 as i64));
    assert_eq!(before.cdr_rows, done_by_split);
    assert!(before.open_calls > 0, "calls were in progress at the split");

    copy(&log, &source[split..]).await;
    let store = stores.cdr_store().await;
    let mut second = Runner::new(log.clone()).with(CdrProjection::new(store.clone()));
    assert_eq!(
        second.start().await.expect("start"),
        at_split,
        "resumes from the checkpoint"
    );
    let head = second.catch_up().await.expect("second run").position;
    let after = stores.tables().await;
    assert_eq!(after.checkpoint, Some(head.0 as i64));
    assert_eq!(after.cdr_rows, expected_rows.len() as i64);
    assert_eq!(after.distinct_legs, after.cdr_rows, "no leg twice");
    assert_eq!(after.open_calls, 0, "every call ended");
    assert_eq!(all_rows(&store).await, expected_rows);

    // A third start has nothing to do and writes nothing.
    let mut third = Runner::new(log).with(CdrProjection::new(store));
    assert_eq!(third.catch_up().await.expect("third run").events, 0);
    assert_eq!(stores.tables().await, after);
}

/// A commit whose checkpoint write fails leaves no row of it behind: rows and checkpoint are
/// one transaction.
pub(crate) async fn rows_and_checkpoint_are_one_transaction(stores: &Stores) {
    let pbx = busy_pbx(5, 60);
    let source = read_everything(&pbx.log()).await;
    let (expected_rows, _, _) = reference(&source);
    let log = stores.log().await;
    let split = source.len() / 3;
    copy(&log, &source[..split]).await;
    Runner::new(log.clone())
        .with(CdrProjection::new(stores.cdr_store().await))
        .catch_up()
        .await
        .expect("first run");
    let committed = stores.tables().await;
    assert!(committed.cdr_rows > 0);

    copy(&log, &source[split..]).await;
    stores.break_checkpoints().await;
    let failed = Runner::new(log.clone())
        .with(CdrProjection::new(stores.cdr_store().await))
        .catch_up()
        .await;
    assert!(failed.is_err(), "the injected crash surfaces");
    assert_eq!(
        stores.tables().await,
        committed,
        "nothing of the failed commit remains: no rows, no call states, the old checkpoint"
    );

    stores.heal().await;
    let store = stores.cdr_store().await;
    Runner::new(log)
        .with(CdrProjection::new(store.clone()))
        .catch_up()
        .await
        .expect("after healing");
    let healed = stores.tables().await;
    assert_eq!(healed.cdr_rows, expected_rows.len() as i64);
    assert_eq!(healed.distinct_legs, healed.cdr_rows);
    assert_eq!(all_rows(&store).await, expected_rows);
}

/// The store answers queries exactly as the reference predicate does.
pub(crate) async fn queries_match_the_predicate(stores: &Stores) {
    let pbx = busy_pbx(3, 80);
    let source = read_everything(&pbx.log()).await;
    let (rows, _, _) = reference(&source);
    let log = stores.log().await;
    copy(&log, &source).await;
    let store = stores.cdr_store().await;
    Runner::new(log)
        .with(CdrProjection::new(store.clone()))
        .catch_up()
        .await
        .expect("projection");
    let set = |ds: &[&str]| -> BTreeSet<DepartmentId> {
        ds.iter()
            .map(|d| DepartmentId::parse(d).expect("dept"))
            .collect()
    };
    let user = |u: &str| UserId::parse(u).expect("user");
    let middle = rows[rows.len() / 2].start;
    let late = rows[rows.len() * 3 / 4].start;
    let base = CdrQuery::new(sim());
    let queries = vec![
        base.clone(),
        base.clone().between(Some(middle), None),
        base.clone().between(Some(middle), Some(late)),
        base.clone().between(None, Some(middle)),
        base.clone().for_user(user("10004")),
        base.clone().in_departments(set(&["support"])),
        base.clone().in_departments(set(&["support", "management"])),
        base.clone().in_departments(set(&[])),
        base.clone()
            .visible_to(Some(user("10001")), set(&["management"])),
        base.clone().visible_to(Some(user("10002")), set(&[])),
        base.clone().visible_to(None, set(&[])),
        base.clone()
            .for_user(user("10005"))
            .in_departments(set(&["sales"]))
            .between(Some(middle), None),
        base.clone().limit(7),
        CdrQuery::new(TenantId::parse("other").expect("tenant")),
    ];
    for q in queries {
        let mut want: Vec<Cdr> = rows.iter().filter(|r| q.matches(r)).cloned().collect();
        CdrQuery::sort(&mut want);
        want.truncate(q.limit);
        let got = store.query(&q).await.expect("query");
        assert_eq!(got, want, "{q:?}");
    }
}

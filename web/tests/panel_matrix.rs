//! The authorisation matrix, end to end against the binary: a generated directory of two
//! tenants (three departments each, members, panel users with different grants, a `basic` user,
//! an administrator, and one user name present in both tenants), calls seeded into the log, and
//! then every viewer × every person × every action, over HTTP and over the websocket.
//!
//! A leak is anything a viewer may not see showing up in a response or a frame: the name of a
//! person outside their granted departments or tenant (their own card excepted; an
//! administrator's account is never on the panel, whatever its department), the name of a
//! department they were not granted, another tenant's name, a card or department summary of a
//! department they were not granted, a CDR row that involves neither them nor a granted
//! department. The test also checks the other direction: every viewer gets everything they may
//! see (cards, live changes, CDRs). It fails on the first wrong status and on any leak, and
//! prints the size of the matrix.

mod common;
mod panel_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use engine::directory::WebPasswordHash;
use events::codec::{Metadata, encode};
use events::ids::{
    CallId, DepartmentId, EventId, ExtensionNumber, LegId, PhoneNumber, TenantId, TrunkId, UserId,
};
use events::model::{
    CallEvent, CallOrigin, Direction, Disposition, Event, HangupCause, HangupSide, LegRole, Party,
};
use events::{EventLog, ExpectedVersion, StoreOptions, StoreUrl, StreamId};
use panel_support::{Http, Server, Socket, free_port};
use serde_json::{Value, json};

const DEPTS: [&str; 3] = ["alpha", "beta", "gamma"];
const GRANTS: [&[&str]; 5] = [
    &[],
    &["alpha"],
    &["alpha", "beta"],
    &["beta", "gamma"],
    &["alpha", "beta", "gamma"],
];
const QUIET: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Member,
    Panel(BTreeSet<String>),
    Basic,
    Admin,
}

#[derive(Debug, Clone)]
struct Person {
    tenant: String,
    id: String,
    name: String,
    ext: String,
    dept: String,
    kind: Kind,
}

impl Person {
    fn password(&self) -> String {
        format!("pw-{}-{}", self.tenant, self.id)
    }
    /// How to sign in: the shared name needs its tenant.
    fn login(&self) -> String {
        if self.id == "shared" {
            format!("{}@{}", self.id, self.tenant)
        } else {
            self.id.clone()
        }
    }
    fn grants(&self) -> BTreeSet<String> {
        match &self.kind {
            Kind::Panel(g) => g.clone(),
            _ => BTreeSet::new(),
        }
    }
    fn is_user_role(&self) -> bool {
        self.kind != Kind::Admin
    }
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

struct World {
    people: Vec<Person>,
    tenants: Vec<(&'static str, &'static str)>,
}

impl World {
    fn generate() -> World {
        let tenants = vec![("north", "North Org"), ("south", "South Org")];
        let mut people = Vec::new();
        for (t, (tenant, _)) in tenants.iter().enumerate() {
            let mut ext = 100 * (t as u32 + 1);
            let mut next = || {
                ext += 1;
                ext.to_string()
            };
            for d in DEPTS {
                for i in 1..=2 {
                    people.push(Person {
                        tenant: tenant.to_string(),
                        id: format!("{tenant}-{d}-{i}"),
                        name: format!("{} {} Member {i}", title(tenant), title(d)),
                        ext: next(),
                        dept: d.into(),
                        kind: Kind::Member,
                    });
                }
            }
            for (k, grants) in GRANTS.iter().enumerate() {
                people.push(Person {
                    tenant: tenant.to_string(),
                    id: format!("{tenant}-p{k}"),
                    name: format!("{} Viewer {k}", title(tenant)),
                    ext: next(),
                    dept: DEPTS[k % 3].into(),
                    kind: Kind::Panel(grants.iter().map(|s| s.to_string()).collect()),
                });
            }
            let shared: &[&str] = if t == 0 { &["alpha"] } else { &["gamma"] };
            people.push(Person {
                tenant: tenant.to_string(),
                id: "shared".into(),
                name: format!("{} Shared Viewer", title(tenant)),
                ext: next(),
                dept: "beta".into(),
                kind: Kind::Panel(shared.iter().map(|s| s.to_string()).collect()),
            });
            people.push(Person {
                tenant: tenant.to_string(),
                id: format!("{tenant}-basic"),
                name: format!("{} Basic User", title(tenant)),
                ext: next(),
                dept: "alpha".into(),
                kind: Kind::Basic,
            });
            people.push(Person {
                tenant: tenant.to_string(),
                id: format!("{tenant}-admin"),
                name: format!("{} Administrator", title(tenant)),
                ext: next(),
                dept: "gamma".into(),
                kind: Kind::Admin,
            });
        }
        World { people, tenants }
    }

    fn dept_name(tenant: &str, d: &str) -> String {
        format!("{} team of {}", title(d), title(tenant))
    }

    fn toml(&self) -> String {
        let mut s = String::new();
        for (tenant, name) in &self.tenants {
            s += &format!(
                "[[tenants]]\nid = \"{tenant}\"\nname = \"{name}\"\nsip_domain = \"{tenant}.example\"\n\n"
            );
            for (id, label, ty) in [
                ("available", "Available", "available"),
                ("lunch", "Out to lunch", "away"),
                ("busy", "Busy", "dnd"),
            ] {
                s += &format!(
                    "[[tenants.presence_states]]\nid = \"{id}\"\nlabel = \"{label}\"\ntype = \"{ty}\"\n\n"
                );
            }
            s += "[[tenants.profiles]]\nid = \"panel\"\nname = \"Panel\"\nfeatures = [\"call_panel\", \"call_history\"]\n\n";
            s += "[[tenants.profiles]]\nid = \"basic\"\nname = \"Basic\"\nfeatures = [\"call_history\"]\n\n";
            for d in DEPTS {
                s += &format!(
                    "[[tenants.departments]]\nid = \"{d}\"\nname = \"{}\"\n\n",
                    Self::dept_name(tenant, d)
                );
            }
            for p in self.people.iter().filter(|p| &p.tenant == tenant) {
                let salt = format!("salt-{}-{}", p.tenant, p.id);
                let hash = WebPasswordHash::hash(
                    &p.password(),
                    salt.as_bytes(),
                    WebPasswordHash::demo_params(),
                )
                .unwrap();
                let (profile, role, grants) = match &p.kind {
                    Kind::Panel(g) => ("panel", "user", g.iter().cloned().collect::<Vec<_>>()),
                    Kind::Admin => ("panel", "client_admin", Vec::new()),
                    Kind::Member | Kind::Basic => ("basic", "user", Vec::new()),
                };
                s += &format!(
                    "[[tenants.users]]\nid = \"{}\"\nname = \"{}\"\nextension = \"{}\"\ndepartment = \"{}\"\nprofile = \"{profile}\"\nrole = \"{role}\"\nweb_password_hash = \"{}\"\ngrants = {:?}\n",
                    p.id,
                    p.name,
                    p.ext,
                    p.dept,
                    hash.as_phc(),
                    grants
                );
                if p.is_user_role() {
                    s += &format!("sip_password = \"sip-{}\"\n", p.ext);
                }
                s += "\n";
            }
        }
        s
    }

    fn find(&self, tenant: &str, id: &str) -> Option<&Person> {
        self.people
            .iter()
            .find(|p| p.tenant == tenant && p.id == id)
    }

    /// Whether `viewer` sees `p`'s card: a user-level account (never an administrator's) in a
    /// granted department of their tenant.
    fn sees(viewer: &Person, p: &Person) -> bool {
        p.tenant == viewer.tenant && p.is_user_role() && viewer.grants().contains(&p.dept)
    }

    /// The users whose cards `viewer` sees.
    fn visible_to(&self, viewer: &Person) -> BTreeSet<String> {
        self.people
            .iter()
            .filter(|p| World::sees(viewer, p))
            .map(|p| p.id.clone())
            .collect()
    }

    /// Strings `viewer` must never receive.
    fn forbidden(&self, viewer: &Person) -> Vec<String> {
        let mut out: Vec<String> = self
            .people
            .iter()
            .filter(|p| {
                !(Self::sees(viewer, p) || (p.tenant == viewer.tenant && p.id == viewer.id))
            })
            .map(|p| p.name.clone())
            .collect();
        for (tenant, name) in &self.tenants {
            for d in DEPTS {
                if *tenant != viewer.tenant || !viewer.grants().contains(d) {
                    out.push(Self::dept_name(tenant, d));
                }
            }
            if *tenant != viewer.tenant {
                out.push(name.to_string());
            }
        }
        out
    }
}

/// Collects leaks and counts what was checked.
#[derive(Default)]
struct Audit {
    leaks: Vec<String>,
    responses: usize,
    frames: usize,
    expectations: usize,
}

/// The users of a snapshot (a frame or the answer of `GET /api/v1/panel`).
fn snapshot_users(v: &Value) -> BTreeSet<String> {
    v["snapshot"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user"].as_str().unwrap().to_owned())
        .collect()
}

impl Audit {
    /// A websocket frame `viewer` received: counted, and checked as [`Audit::text`] and
    /// [`Audit::panel`] check.
    fn frame(&mut self, world: &World, viewer: &Person, what: &str, f: &Value) {
        self.frames += 1;
        self.text(world, viewer, what, &f.to_string());
        self.panel(viewer, what, f);
    }

    fn text(&mut self, world: &World, viewer: &Person, what: &str, body: &str) {
        for f in world.forbidden(viewer) {
            if body.contains(&f) {
                self.leaks.push(format!(
                    "{}@{} got {f:?} in {what}",
                    viewer.id, viewer.tenant
                ));
            }
        }
    }

    /// Cards, department summaries and pinned lists of a panel frame or response.
    fn panel(&mut self, viewer: &Person, what: &str, v: &Value) {
        let grants = viewer.grants();
        let mut bad = |why: String| {
            self.leaks
                .push(format!("{}@{}: {why} in {what}", viewer.id, viewer.tenant))
        };
        let mut cards: Vec<&Value> = Vec::new();
        for path in [&["snapshot", "users"][..], &["delta", "users"], &["users"]] {
            let mut at = v;
            for k in path {
                at = &at[*k];
            }
            if let Some(list) = at.as_array() {
                cards.extend(list);
            }
        }
        for c in cards {
            let dept = c["department"].as_str().unwrap_or("");
            if c["user"] != viewer.id.as_str() && !grants.contains(dept) {
                bad(format!("card {} of department {dept}", c["user"]));
            }
        }
        for path in [
            &["snapshot", "departments"][..],
            &["delta", "departments"],
            &["departments"],
        ] {
            let mut at = v;
            for k in path {
                at = &at[*k];
            }
            for d in at.as_array().into_iter().flatten() {
                let id = d["department"].as_str().or(d["id"].as_str()).unwrap_or("");
                if !grants.contains(id) {
                    bad(format!("department {id}"));
                }
            }
        }
        for t in [
            &v["tenant"],
            &v["snapshot"]["tenant"],
            &v["delta"]["tenant"],
        ] {
            if let Some(t) = t.as_str()
                && t != viewer.tenant
            {
                bad(format!("tenant {t}"));
            }
        }
    }

    /// CDR rows: each must involve the viewer or a granted department, in their tenant.
    fn cdrs(&mut self, viewer: &Person, what: &str, rows: &[Value]) {
        let grants = viewer.grants();
        for r in rows {
            let involves_me =
                r["src_user"] == viewer.id.as_str() || r["dst_user"] == viewer.id.as_str();
            let granted = [&r["src_department"], &r["dst_department"]]
                .iter()
                .any(|d| d.as_str().is_some_and(|d| grants.contains(d)));
            if r["tenant"] != viewer.tenant.as_str() || !(involves_me || granted) {
                self.leaks.push(format!(
                    "{}@{}: CDR {} {}→{} in {what}",
                    viewer.id, viewer.tenant, r["linkedid"], r["src_user"], r["dst_user"]
                ));
            }
        }
    }

    fn expect(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.expectations += 1;
        assert!(ok, "{}", what());
    }
}

// ---- seeded calls --------------------------------------------------------------------------

struct SeededCall {
    tenant: &'static str,
    id: CallId,
    caller: Option<&'static str>,
    callee: &'static str,
    /// Whether the seeding run ended it; an open one is ended by the server when it starts.
    ended: bool,
}

fn party(world: &World, tenant: &str, id: Option<&str>, number: &str) -> Party {
    match id.and_then(|id| world.find(tenant, id)) {
        Some(p) => Party {
            number: Some(PhoneNumber::parse(&p.ext).unwrap()),
            name: None,
            extension: Some(ExtensionNumber::parse(&p.ext).unwrap()),
            user: Some(UserId::parse(&p.id).unwrap()),
            department: Some(DepartmentId::parse(&p.dept).unwrap()),
            trunk: None,
        },
        None => Party {
            number: Some(PhoneNumber::parse(number).unwrap()),
            name: None,
            extension: None,
            user: None,
            department: None,
            trunk: Some(TrunkId::parse("carrier").unwrap()),
        },
    }
}

fn seeded_calls() -> Vec<SeededCall> {
    let call = |n: u128| CallId::from_uuid(uuid::Uuid::from_u128(0xca11_0000 + n));
    vec![
        SeededCall {
            tenant: "north",
            id: call(1),
            caller: Some("north-alpha-1"),
            callee: "north-beta-1",
            ended: true,
        },
        SeededCall {
            tenant: "north",
            id: call(2),
            caller: Some("north-gamma-1"),
            callee: "north-gamma-2",
            ended: true,
        },
        SeededCall {
            tenant: "north",
            id: call(3),
            caller: None,
            callee: "north-alpha-2",
            ended: true,
        },
        SeededCall {
            tenant: "north",
            id: call(4),
            caller: Some("north-beta-2"),
            callee: "north-gamma-2",
            ended: false,
        },
        SeededCall {
            tenant: "north",
            id: call(5),
            caller: Some("north-p1"),
            callee: "north-gamma-1",
            ended: true,
        },
        SeededCall {
            tenant: "south",
            id: call(6),
            caller: Some("south-alpha-1"),
            callee: "south-alpha-2",
            ended: true,
        },
    ]
}

async fn seed(world: &World, data: &Path) {
    let log: Arc<dyn EventLog> = events::open(
        &StoreUrl::Sqlite(data.join("ledgerline.db")),
        &StoreOptions::default(),
    )
    .await
    .expect("the log opens");
    let start: DateTime<Utc> = "2026-01-05T10:00:00Z".parse().unwrap();
    let mut n = 0u128;
    for (i, c) in seeded_calls().into_iter().enumerate() {
        let tenant = TenantId::parse(c.tenant).unwrap();
        let at = start + TimeDelta::minutes(i as i64);
        let caller = party(world, c.tenant, c.caller, "+15550100");
        let callee = party(world, c.tenant, Some(c.callee), "");
        let (l1, l2) = (
            LegId::from_uuid(uuid::Uuid::from_u128(0x1e90_0000 + 2 * i as u128)),
            LegId::from_uuid(uuid::Uuid::from_u128(0x1e90_0001 + 2 * i as u128)),
        );
        let direction = if c.caller.is_some() {
            Direction::Internal
        } else {
            Direction::Inbound
        };
        let mut events = vec![
            (
                0,
                CallEvent::CallCreated {
                    call: c.id,
                    direction,
                    caller: caller.clone(),
                    callee: callee.clone(),
                    dialled: callee.number.clone().unwrap(),
                    origin: if c.caller.is_some() {
                        CallOrigin::Device
                    } else {
                        CallOrigin::Trunk
                    },
                    trunk: c
                        .caller
                        .is_none()
                        .then(|| TrunkId::parse("carrier").unwrap()),
                    requested_by: None,
                },
            ),
            (
                0,
                CallEvent::LegCreated {
                    call: c.id,
                    leg: l1,
                    role: LegRole::Caller,
                    party: caller,
                    contact: None,
                    parent: None,
                    ring_timeout_ms: None,
                    voicemail: None,
                },
            ),
            (
                100,
                CallEvent::LegCreated {
                    call: c.id,
                    leg: l2,
                    role: LegRole::Callee,
                    party: callee,
                    contact: None,
                    parent: Some(l1),
                    ring_timeout_ms: None,
                    voicemail: None,
                },
            ),
            (
                3000,
                CallEvent::CallAnswered {
                    call: c.id,
                    leg: l2,
                    contact: None,
                },
            ),
            (
                3000,
                CallEvent::CallAnswered {
                    call: c.id,
                    leg: l1,
                    contact: None,
                },
            ),
        ];
        if c.ended {
            for leg in [l2, l1] {
                events.push((
                    63_000,
                    CallEvent::LegEnded {
                        call: c.id,
                        leg,
                        cause: HangupCause::NormalClearing,
                        disposition: Disposition::Answered,
                        ended_by: HangupSide::Party,
                        sip_status: None,
                        duration_ms: if leg == l1 { 63_000 } else { 62_900 },
                        billable_ms: 60_000,
                    },
                ));
            }
            events.push((
                63_000,
                CallEvent::CallEnded {
                    call: c.id,
                    cause: HangupCause::NormalClearing,
                    disposition: Disposition::Answered,
                    duration_ms: 63_000,
                    talk_ms: 60_000,
                },
            ));
        }
        let records = events
            .into_iter()
            .map(|(ms, e)| {
                n += 1;
                let meta = Metadata::new(
                    EventId::from_uuid(uuid::Uuid::from_u128(0xe0e0_0000 + n)),
                    at + TimeDelta::milliseconds(ms),
                )
                .with_tenant(tenant.clone());
                encode(&Event::Call(e), meta)
            })
            .collect();
        log.append(&StreamId::call(c.id), ExpectedVersion::NoStream, records)
            .await
            .expect("seeded");
    }
}

/// The calls `viewer` may see CDRs of: those with a party that is them or in a granted
/// department of their tenant. Every seeded call has ended by then: the one seeded open was
/// left by "a previous run", and the server ends it when it starts.
fn visible_calls(world: &World, viewer: &Person) -> BTreeSet<String> {
    seeded_calls()
        .into_iter()
        .filter(|c| c.tenant == viewer.tenant)
        .filter(|c| {
            [c.caller, Some(c.callee)].into_iter().flatten().any(|id| {
                id == viewer.id
                    || world
                        .find(c.tenant, id)
                        .is_some_and(|p| viewer.grants().contains(&p.dept))
            })
        })
        .map(|c| c.id.to_string())
        .collect()
}

// ---- the matrix ----------------------------------------------------------------------------

async fn http_matrix(world: &World, viewer: &Person, http: &Http, audit: &mut Audit) {
    let me = format!("{}@{}", viewer.id, viewer.tenant);
    let is_panel = matches!(viewer.kind, Kind::Panel(_));
    let check = |audit: &mut Audit, what: &str, r: &panel_support::Response| {
        audit.responses += 1;
        audit.text(world, viewer, what, &r.body);
        if r.body.starts_with('{') && r.status == 200 {
            let v = r.json();
            audit.panel(viewer, what, &v);
            // A single card: the viewer's own, or one of a granted department.
            if let (Some(user), Some(dept)) = (v["user"].as_str(), v["department"].as_str())
                && user != viewer.id
                && !viewer.grants().contains(dept)
            {
                audit.leaks.push(format!(
                    "{}@{}: card {user} of {dept} in {what}",
                    viewer.id, viewer.tenant
                ));
            }
        }
    };

    let r = http.get("/api/v1/me").await.unwrap();
    check(audit, "GET /api/v1/me", &r);
    audit.expect(r.status == 200, || format!("{me}: /me {}", r.status));

    let r = http.get("/api/v1/panel").await.unwrap();
    check(audit, "GET /api/v1/panel", &r);
    audit.expect(r.status == if is_panel { 200 } else { 403 }, || {
        format!("{me}: /panel {}", r.status)
    });
    if is_panel {
        let got = snapshot_users(&r.json());
        let want = world.visible_to(viewer);
        audit.expect(got == want, || {
            format!("{me}: snapshot {got:?} != {want:?}")
        });
        // The counters count the same people: user-level accounts only.
        for d in r.json()["snapshot"]["departments"].as_array().unwrap() {
            let id = d["department"].as_str().unwrap();
            let want = world
                .people
                .iter()
                .filter(|p| p.tenant == viewer.tenant && p.dept == id && p.is_user_role())
                .count();
            audit.expect(d["total"].as_u64() == Some(want as u64), || {
                format!(
                    "{me}: department {id} counts {} users, not {want}",
                    d["total"]
                )
            });
        }
    }

    let mut pinned = BTreeSet::new();
    for p in &world.people {
        let target = world.find(&viewer.tenant, &p.id);
        let visible = target.is_some_and(|t| World::sees(viewer, t));
        let own = p.id == viewer.id;
        let r = http
            .get(&format!("/api/v1/panel/users/{}", p.id))
            .await
            .unwrap();
        check(audit, &format!("GET card {}", p.id), &r);
        audit.expect(r.status == if visible || own { 200 } else { 404 }, || {
            format!("{me}: card {} → {}", p.id, r.status)
        });

        let r = http.post("/api/v1/pinned", &json!({ "user": p.id })).await;
        check(audit, &format!("POST pin {}", p.id), &r);
        let again = !pinned.insert(p.id.clone());
        let want = match (is_panel, visible) {
            (false, _) => 403,
            (true, false) => 404,
            // The same user name in the other tenant means the same card here.
            (true, true) if again => 409,
            (true, true) => 200,
        };
        audit.expect(r.status == want, || {
            format!("{me}: pin {} → {} {}", p.id, r.status, r.body)
        });
        let want = if want == 409 { 200 } else { want };

        let r = http
            .post(
                "/api/v1/pinned/move",
                &json!({ "user": p.id, "before": null }),
            )
            .await;
        check(audit, &format!("POST move {}", p.id), &r);
        audit.expect(r.status == want, || {
            format!("{me}: move {} → {} {}", p.id, r.status, r.body)
        });

        let r = http.post("/api/v1/call", &json!({ "to": p.id })).await;
        check(audit, &format!("POST call {}", p.id), &r);
        // A visible user is called through the SIP edge, which first rings the viewer's own
        // phone: none is registered here.
        let want_call = if visible { 409 } else { 400 };
        audit.expect(r.status == want_call, || {
            format!("{me}: call {} → {} {}", p.id, r.status, r.body)
        });

        let r = http
            .get(&format!("/api/v1/cdrs?user={}", p.id))
            .await
            .unwrap();
        check(audit, &format!("GET cdrs user={}", p.id), &r);
        audit.expect(r.status == 200, || {
            format!("{me}: cdrs user={} {}", p.id, r.status)
        });
        let rows = r.json().as_array().cloned().unwrap_or_default();
        audit.cdrs(viewer, &format!("cdrs user={}", p.id), &rows);
        audit.expect(
            rows.iter()
                .all(|r| r["src_user"] == p.id.as_str() || r["dst_user"] == p.id.as_str()),
            || format!("{me}: user filter {}", p.id),
        );
    }
    let r = http.get("/api/v1/pinned").await.unwrap();
    check(audit, "GET pinned", &r);
    if is_panel {
        let got: Vec<String> = r.json()["pinned"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let want = world.visible_to(viewer);
        audit.expect(got.iter().cloned().collect::<BTreeSet<_>>() == want, || {
            format!("{me}: pinned {got:?}")
        });
        for id in got {
            let r = http.delete(&format!("/api/v1/pinned/{id}")).await;
            check(audit, "DELETE pinned", &r);
            audit.expect(r.status == 200, || format!("{me}: unpin {id} {}", r.status));
        }
    }
    for d in DEPTS {
        let r = http
            .get(&format!("/api/v1/cdrs?department={d}"))
            .await
            .unwrap();
        check(audit, &format!("GET cdrs department={d}"), &r);
        audit.cdrs(
            viewer,
            &format!("cdrs department={d}"),
            &r.json().as_array().cloned().unwrap_or_default(),
        );
    }
    let r = http.get("/api/v1/cdrs").await.unwrap();
    check(audit, "GET cdrs", &r);
    let rows = r.json().as_array().cloned().unwrap_or_default();
    audit.cdrs(viewer, "cdrs", &rows);
    let calls: BTreeSet<String> = rows
        .iter()
        .map(|r| r["linkedid"].as_str().unwrap().to_owned())
        .collect();
    let want = visible_calls(world, viewer);
    audit.expect(calls == want, || {
        format!("{me}: CDR calls {calls:?} != {want:?}")
    });
    let r = http
        .get("/api/v1/cdrs.csv?from=2026-01-01&to=2026-02-01")
        .await
        .unwrap();
    check(audit, "GET cdrs.csv", &r);
    audit.expect(
        r.status == 200 && r.body.starts_with("start,answer,end,"),
        || format!("{me}: csv {}", r.status),
    );
    audit.expect(r.body.lines().count() == rows.len() + 1, || {
        format!("{me}: csv rows")
    });
    let r = http.get("/api/v1/cdrs?from=2026-02-01").await.unwrap();
    audit.expect(r.json().as_array().is_some_and(Vec::is_empty), || {
        format!("{me}: date range")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_viewer_ever_sees_what_they_were_not_granted() {
    let world = World::generate();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("directory.toml");
    std::fs::write(&config, world.toml()).unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    Server::start(&data, Some(&config), port).await.stop();
    seed(&world, &data).await;
    let _server = Server::start(&data, Some(&config), port).await;
    let mut audit = Audit::default();
    let origin = format!("http://127.0.0.1:{port}");

    // Anonymous: nothing but 401s, with nothing in them.
    let anon = Http::new(port);
    let nobody = Person {
        tenant: "none".into(),
        id: "nobody".into(),
        name: String::new(),
        ext: String::new(),
        dept: String::new(),
        kind: Kind::Member,
    };
    for path in [
        "/api/v1/me",
        "/api/v1/panel",
        "/api/v1/pinned",
        "/api/v1/cdrs",
        "/api/v1/cdrs.csv",
        "/api/v1/panel/users/north-alpha-1",
    ] {
        let r = anon.get(path).await.unwrap();
        audit.responses += 1;
        audit.text(&world, &nobody, path, &r.body);
        audit.expect(r.status == 401, || {
            format!("anonymous {path}: {}", r.status)
        });
    }
    let r = anon.get("/").await.unwrap();
    audit.expect(
        r.status == 303 && r.header("location") == Some("/login"),
        || "/ sends strangers to /login".into(),
    );
    let r = Http::new(port).login("shared", "pw-north-shared").await;
    audit.expect(r.status == 400 && r.body.contains("@"), || {
        format!("an ambiguous name is refused with advice: {}", r.body)
    });

    // Who can sign in, and the answers of those who cannot.
    let mut sessions: Vec<(Person, Http)> = Vec::new();
    for (i, p) in world.people.iter().enumerate() {
        let mut http = Http::new(port);
        let r = http.login(&p.login(), &p.password()).await;
        audit.responses += 1;
        audit.text(&world, p, "login", &r.body);
        let want = match p.kind {
            Kind::Panel(_) => 200,
            _ => 403,
        };
        audit.expect(r.status == want, || {
            format!("login {}@{}: {} {}", p.id, p.tenant, r.status, r.body)
        });
        match p.kind {
            Kind::Panel(_) => sessions.push((p.clone(), http)),
            Kind::Basic | Kind::Member => audit.expect(r.body.contains("call panel"), || {
                format!("basic refusal: {}", r.body)
            }),
            Kind::Admin => audit.expect(r.body.contains("dministrator"), || {
                format!("admin refusal: {}", r.body)
            }),
        }
        // Each wrong password from its own loopback address: one address failing for every
        // name in turn would be stopped as a guesser.
        let guesser = std::net::IpAddr::from([127, 0, 1, u8::try_from(i % 250).unwrap() + 1]);
        let r = Http::from_address(port, guesser)
            .login(&p.login(), "not-the-password")
            .await;
        audit.expect(r.status == 401, || {
            format!("wrong password for {}: {}", p.id, r.status)
        });
    }

    // Every panel viewer's socket: the first frame is a snapshot of exactly what they may see.
    let mut sockets = Vec::new();
    for (p, http) in &sessions {
        let mut ws = Socket::open(http, "v=1", Some(&origin))
            .await
            .expect("the socket opens");
        let snap = ws.next(Duration::from_secs(10)).await.expect("a snapshot");
        audit.frame(&world, p, "snapshot frame", &snap);
        let got = snapshot_users(&snap);
        let want = world.visible_to(p);
        audit.expect(got == want, || {
            format!("{}@{}: ws snapshot {got:?} != {want:?}", p.id, p.tenant)
        });
        sockets.push(ws);
    }

    // The HTTP matrix: panel viewers with their session; basic users over HTTP Basic.
    for (p, http) in &sessions {
        http_matrix(&world, p, http, &mut audit).await;
    }
    for p in world.people.iter().filter(|p| p.kind == Kind::Basic) {
        let http = Http::basic(port, &p.login(), &p.password());
        http_matrix(&world, p, &http, &mut audit).await;
    }
    for p in world.people.iter().filter(|p| p.kind == Kind::Admin) {
        let r = Http::basic(port, &p.login(), &p.password())
            .get("/api/v1/cdrs")
            .await
            .unwrap();
        audit.responses += 1;
        audit.text(&world, p, "admin cdrs", &r.body);
        audit.expect(r.status == 403, || format!("admin API: {}", r.status));
    }

    // Everyone with a phone changes their presence; each socket gets exactly the changes of
    // the people it may see, and nothing else.
    for p in world.people.iter().filter(|p| p.is_user_role()) {
        let r = Http::basic(port, &p.login(), &p.password())
            .post("/api/v1/presence", &json!({ "state": "lunch" }))
            .await;
        audit.expect(r.status == 200, || {
            format!("presence of {}@{}: {} {}", p.id, p.tenant, r.status, r.body)
        });
    }
    for ((p, _), ws) in sessions.iter().zip(sockets.iter_mut()) {
        let frames = ws.drain(QUIET).await;
        let mut changed = BTreeSet::new();
        for f in &frames {
            audit.frame(&world, p, "live frame", f);
            for c in f["delta"]["users"].as_array().into_iter().flatten() {
                if c["presence"]["state"] == "lunch" {
                    changed.insert(c["user"].as_str().unwrap().to_owned());
                }
            }
        }
        // Every card is a user-level account's: all of them changed.
        let want = world.visible_to(p);
        audit.expect(changed == want, || {
            format!(
                "{}@{}: live changes {changed:?} != {want:?}",
                p.id, p.tenant
            )
        });
    }

    // Actions over the socket: pinning is allowed exactly for visible cards.
    for ((p, _), ws) in sessions.iter().zip(sockets.iter_mut()) {
        let mut pinned = BTreeSet::new();
        for (i, x) in world.people.iter().enumerate() {
            let id = 1000 + i as u64;
            ws.send(&json!({ "type": "pin", "id": id, "user": x.id }))
                .await;
            let (result, skipped) = ws.until("result", Duration::from_secs(10)).await;
            let result = result.expect("a result");
            for f in skipped.iter().chain(std::iter::once(&result)) {
                audit.frame(&world, p, "action frame", f);
            }
            let visible = world
                .find(&p.tenant, &x.id)
                .is_some_and(|t| World::sees(p, t));
            // The same name in the other tenant is the same card here: pinned already.
            let first = pinned.insert(x.id.clone());
            audit.expect(
                result["id"] == id && result["ok"] == (visible && first),
                || format!("{}@{}: ws pin {} → {result}", p.id, p.tenant, x.id),
            );
        }
        let rest = ws.drain(Duration::from_millis(300)).await;
        for f in &rest {
            audit.frame(&world, p, "action frame", f);
        }
    }

    let viewers = sessions.len()
        + world
            .people
            .iter()
            .filter(|p| p.kind == Kind::Basic)
            .count();
    println!(
        "matrix: {} people in {} tenants, {viewers} viewers; {} HTTP responses and {} websocket frames checked, {} expectations, {} leaks",
        world.people.len(),
        world.tenants.len(),
        audit.responses,
        audit.frames,
        audit.expectations,
        audit.leaks.len()
    );
    assert!(audit.leaks.is_empty(), "leaks:\n{}", audit.leaks.join("\n"));
}

//! Given/when/then for conference rooms: configuration, admission, moderation, invitations,
//! talking and the end of a run.

use chrono::{DateTime, Duration, Utc};

use events::ids::{CallId, ConferenceId, LegId, UserId};
use events::model::{ConferenceEvent as E, MemberLeftReason, Party};

use super::*;
use crate::testing::{given, t0};

fn room_id() -> ConferenceId {
    "weekly".parse().unwrap_or_else(|e| panic!("{e}"))
}
fn uuid_id<T: std::str::FromStr>(kind: u32, n: u32) -> T
where
    T::Err: std::fmt::Debug,
{
    format!("00000000-0000-4000-8{kind:03}-{n:012}")
        .parse()
        .unwrap_or_else(|e| panic!("{e:?}"))
}
fn call(n: u32) -> CallId {
    uuid_id(2, n)
}
fn leg(n: u32) -> LegId {
    uuid_id(3, n)
}
fn user(n: u32) -> UserId {
    UserId::parse(format!("{}", 1000 + n)).unwrap_or_else(|e| panic!("{e}"))
}
fn party(n: u32) -> Party {
    Party {
        user: Some(user(n)),
        ..Party::default()
    }
}
fn secs(s: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(s)
}

fn settings() -> ConferenceSettings {
    ConferenceSettings {
        name: "Weekly".into(),
        extension: "3000".parse().unwrap_or_else(|e| panic!("{e}")),
        pin: Some("1234".into()),
        max_members: 3,
        owner: Some(user(11)),
        record: false,
    }
}

fn configured() -> E {
    let s = settings();
    E::ConferenceConfigured {
        conference: room_id(),
        name: s.name,
        extension: s.extension,
        pin: s.pin,
        max_members: s.max_members,
        owner: s.owner,
        record: s.record,
    }
}
fn started() -> E {
    E::ConferenceStarted {
        conference: room_id(),
    }
}
fn joined(n: u32, moderator: bool) -> E {
    E::ConferenceMemberJoined {
        conference: room_id(),
        call: call(n),
        leg: leg(n),
        party: party(n),
        moderator,
        muted: false,
    }
}
fn left(n: u32, reason: MemberLeftReason, duration_ms: u64) -> E {
    E::ConferenceMemberLeft {
        conference: room_id(),
        leg: leg(n),
        reason,
        duration_ms,
    }
}

fn join(n: u32, pin: Option<&str>) -> ConferenceCommand {
    ConferenceCommand::Join {
        call: call(n),
        leg: leg(n),
        party: party(n),
        pin: pin.map(str::to_owned),
        admin: false,
        muted: false,
    }
}

fn configured_room() -> Vec<E> {
    vec![configured()]
}

/// Members 1 and 2 in the room since t0.
fn two_members() -> Vec<E> {
    let mut h = configured_room();
    h.extend([started(), joined(1, false), joined(2, false)]);
    h
}

#[test]
fn configuring_records_the_settings_and_refuses_bad_ones() {
    given::<Conference>([])
        .when(ConferenceCommand::Configure {
            conference: room_id(),
            settings: settings(),
        })
        .then([configured()])
        .when(ConferenceCommand::Configure {
            conference: room_id(),
            settings: settings(),
        })
        .then_nothing()
        .when(ConferenceCommand::Configure {
            conference: room_id(),
            settings: ConferenceSettings {
                pin: Some("12a4".into()),
                ..settings()
            },
        })
        .then_rejected(ConferenceRejection::InvalidSettings(
            "the PIN must be one or more digits",
        ))
        .when(ConferenceCommand::Configure {
            conference: room_id(),
            settings: ConferenceSettings {
                max_members: 0,
                ..settings()
            },
        })
        .then_rejected(ConferenceRejection::InvalidSettings(
            "the capacity must be at least one member",
        ));
    given::<Conference>([])
        .when(join(1, Some("1234")))
        .then_rejected(ConferenceRejection::NotConfigured);
}

#[test]
fn the_first_member_starts_the_room_and_a_wrong_pin_is_refused() {
    let s = given::<Conference>(configured_room())
        .when(join(1, Some("9999")))
        .then_rejected(ConferenceRejection::WrongPin)
        .when(join(1, None))
        .then_rejected(ConferenceRejection::WrongPin)
        .at(secs(5))
        .when(join(1, Some("1234")))
        .then([started(), joined(1, false)])
        .when(join(2, Some("1234")))
        .then([joined(2, false)])
        .when(join(2, Some("1234")))
        .then_rejected(ConferenceRejection::AlreadyMember(leg(2)));
    assert_eq!(s.state().member_count(), 2);
}

#[test]
fn a_full_room_refuses_everyone_even_its_owner() {
    let mut h = two_members();
    h.push(joined(3, false));
    given::<Conference>(h)
        .when(join(4, Some("1234")))
        .then_rejected(ConferenceRejection::Full(3))
        .when(join(11, None))
        .then_rejected(ConferenceRejection::Full(3));
}

#[test]
fn a_locked_room_admits_only_its_owner_and_admins() {
    let admin = ConferenceCommand::Join {
        call: call(5),
        leg: leg(5),
        party: party(5),
        pin: None,
        admin: true,
        muted: true,
    };
    given::<Conference>(two_members())
        .when(ConferenceCommand::Lock { by: Some(user(1)) })
        .then([E::ConferenceLocked {
            conference: room_id(),
            by: Some(user(1)),
        }])
        .when(ConferenceCommand::Lock { by: None })
        .then_nothing()
        .when(join(3, Some("1234")))
        .then_rejected(ConferenceRejection::Locked)
        // The owner of the personal room needs neither the PIN nor an unlocked room.
        .when(join(11, None))
        .then([joined(11, true)])
        .when(ConferenceCommand::Leave { leg: leg(2) })
        .accepted()
        .when(admin)
        .then([E::ConferenceMemberJoined {
            conference: room_id(),
            call: call(5),
            leg: leg(5),
            party: party(5),
            moderator: true,
            muted: true,
        }])
        .when(ConferenceCommand::Unlock { by: None })
        .then([E::ConferenceUnlocked {
            conference: room_id(),
            by: None,
        }]);
}

#[test]
fn locking_an_idle_room_is_refused() {
    given::<Conference>(configured_room())
        .when(ConferenceCommand::Lock { by: None })
        .then_rejected(ConferenceRejection::NotInUse);
}

#[test]
fn members_are_muted_and_unmuted_once() {
    let s = given::<Conference>(two_members())
        .when(ConferenceCommand::Mute {
            leg: leg(2),
            by: Some(user(1)),
        })
        .then([E::ConferenceMemberMuted {
            conference: room_id(),
            leg: leg(2),
            by: Some(user(1)),
        }])
        .when(ConferenceCommand::Mute {
            leg: leg(2),
            by: None,
        })
        .then_nothing();
    assert!(s.state().member(leg(2)).is_some_and(|m| m.muted));
    s.when(ConferenceCommand::Unmute {
        leg: leg(2),
        by: None,
    })
    .then([E::ConferenceMemberUnmuted {
        conference: room_id(),
        leg: leg(2),
        by: None,
    }])
    .when(ConferenceCommand::Mute {
        leg: leg(9),
        by: None,
    })
    .then_rejected(ConferenceRejection::UnknownMember(leg(9)));
}

#[test]
fn a_kicked_member_leaves_with_kicked() {
    given::<Conference>(two_members())
        .at(secs(30))
        .when(ConferenceCommand::Kick {
            leg: leg(2),
            by: user(11),
        })
        .then([
            E::ConferenceMemberKicked {
                conference: room_id(),
                leg: leg(2),
                by: user(11),
            },
            left(2, MemberLeftReason::Kicked, 30_000),
        ])
        .when(ConferenceCommand::Kick {
            leg: leg(2),
            by: user(11),
        })
        .then_rejected(ConferenceRejection::UnknownMember(leg(2)));
}

#[test]
fn talking_stretches_are_measured() {
    given::<Conference>(two_members())
        .at(secs(10))
        .when(ConferenceCommand::TalkingStarted { leg: leg(1) })
        .then([E::ConferenceMemberTalkingStarted {
            conference: room_id(),
            leg: leg(1),
        }])
        .when(ConferenceCommand::TalkingStarted { leg: leg(1) })
        .then_nothing()
        .at(secs(14))
        .when(ConferenceCommand::TalkingStopped { leg: leg(1) })
        .then([E::ConferenceMemberTalkingStopped {
            conference: room_id(),
            leg: leg(1),
            talked_ms: 4_000,
        }])
        .when(ConferenceCommand::TalkingStopped { leg: leg(1) })
        .then_nothing()
        // A member who hangs up mid-sentence stops talking first.
        .when(ConferenceCommand::TalkingStarted { leg: leg(2) })
        .accepted()
        .at(secs(16))
        .when(ConferenceCommand::Leave { leg: leg(2) })
        .then([
            E::ConferenceMemberTalkingStopped {
                conference: room_id(),
                leg: leg(2),
                talked_ms: 2_000,
            },
            left(2, MemberLeftReason::HungUp, 16_000),
        ]);
}

#[test]
fn an_invited_call_joins_past_the_pin_and_the_lock() {
    let invitee = party(7);
    given::<Conference>(two_members())
        .when(ConferenceCommand::Lock { by: None })
        .accepted()
        .when(ConferenceCommand::Invite {
            invitee: invitee.clone(),
            by: user(1),
            call: call(7),
        })
        .then([E::ConferenceInviteSent {
            conference: room_id(),
            invitee,
            by: user(1),
            call: call(7),
        }])
        .when(join(7, None))
        .then([joined(7, false)])
        .when(ConferenceCommand::Invite {
            invitee: party(8),
            by: user(1),
            call: call(8),
        })
        .then_rejected(ConferenceRejection::Full(3));
}

#[test]
fn the_room_ends_a_grace_period_after_the_last_member_leaves() {
    let s = given::<Conference>(two_members())
        .at(secs(60))
        .when(ConferenceCommand::Leave { leg: leg(1) })
        .then([left(1, MemberLeftReason::HungUp, 60_000)])
        .at(secs(90))
        .when(ConferenceCommand::Leave { leg: leg(2) })
        .then([left(2, MemberLeftReason::HungUp, 90_000)]);
    let end = Deadline::new(
        secs(90) + Duration::milliseconds(END_WHEN_EMPTY_AFTER_MS as i64),
        ConferenceCommand::EndIfEmpty,
    );
    assert_eq!(s.state().deadlines(), vec![end.clone()]);
    assert_eq!(
        Conference::replay(s.history()).deadlines(),
        vec![end.clone()]
    );
    let s = s
        .at(secs(91))
        .when(ConferenceCommand::EndIfEmpty)
        .then_nothing()
        .at(end.at)
        .when(end.command)
        .then([E::ConferenceEnded {
            conference: room_id(),
            duration_ms: 90_000,
            peak_members: 2,
        }]);
    assert!(s.state().run().is_none());
    assert!(s.state().deadlines().is_empty());
    // The next member starts a new run.
    s.when(join(3, Some("1234")))
        .then([started(), joined(3, false)]);
}

#[test]
fn member_and_run_times_come_from_when_the_history_happened() {
    // Started with member 1 at 10, member 2 joined at 20.
    let s = crate::testing::given_at::<Conference>([
        (secs(0), configured()),
        (secs(10), started()),
        (secs(10), joined(1, false)),
        (secs(20), joined(2, false)),
    ])
    .at(secs(50))
    .when(ConferenceCommand::Leave { leg: leg(2) })
    .then([left(2, MemberLeftReason::HungUp, 30_000)])
    .at(secs(60))
    .when(ConferenceCommand::Leave { leg: leg(1) })
    .then([left(1, MemberLeftReason::HungUp, 50_000)]);
    let end = Deadline::new(secs(70), ConferenceCommand::EndIfEmpty);
    assert_eq!(s.state().deadlines(), vec![end.clone()]);
    assert_eq!(s.rebuilt().deadlines(), vec![end.clone()]);
    s.at(end.at).when(end.command).then([E::ConferenceEnded {
        conference: room_id(),
        duration_ms: 50_000,
        peak_members: 2,
    }]);
}

#[test]
fn someone_coming_back_in_the_grace_period_keeps_the_run_going() {
    given::<Conference>(two_members())
        .when(ConferenceCommand::Lock { by: None })
        .accepted()
        .when(ConferenceCommand::Leave { leg: leg(1) })
        .accepted()
        .when(ConferenceCommand::Leave { leg: leg(2) })
        .accepted()
        .at(secs(5))
        .when(join(11, None))
        .then([joined(11, true)])
        .at(secs(60))
        .when(ConferenceCommand::EndIfEmpty)
        .then_nothing();
}

#[test]
fn deleting_a_room_in_use_drops_its_members_and_ends_the_run() {
    given::<Conference>(two_members())
        .at(secs(20))
        .when(ConferenceCommand::Delete)
        .then([
            left(1, MemberLeftReason::ConferenceClosed, 20_000),
            left(2, MemberLeftReason::ConferenceClosed, 20_000),
            E::ConferenceEnded {
                conference: room_id(),
                duration_ms: 20_000,
                peak_members: 2,
            },
            E::ConferenceDeleted {
                conference: room_id(),
            },
        ])
        .when(join(1, Some("1234")))
        .then_rejected(ConferenceRejection::Deleted(room_id()));
}

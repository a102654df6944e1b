//! Given/when/then tests of the voicemail box: deposits and capacity, read/unread and folders,
//! deletion, forwarding and transfer, greetings, settings, the PIN, and when the phones'
//! message-waiting indication changes.

use events::ids::{CallId, ExtensionNumber, PhoneNumber, RecordingId, UserId, VoicemailMessageId};
use events::model::{
    DepositReason, GreetingKind, GreetingSource, Party, VoicemailDeleteReason, VoicemailEvent as E,
    VoicemailFolder as F, VoicemailForwardKind,
};

use super::*;
use crate::testing::{Scenario, given};

fn u(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}
fn mbx() -> ExtensionNumber {
    ExtensionNumber::parse("1001").unwrap()
}
fn other() -> ExtensionNumber {
    ExtensionNumber::parse("1006").unwrap()
}
fn vm(n: u32) -> VoicemailMessageId {
    VoicemailMessageId::parse(format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}
fn rec(n: u32) -> RecordingId {
    RecordingId::parse(format!("00000000-0000-4000-9000-{n:012}")).unwrap()
}
fn call() -> CallId {
    CallId::parse("00000000-0000-4000-a000-000000000001").unwrap()
}
fn caller() -> Party {
    Party {
        number: Some(PhoneNumber::parse("+4930123456").unwrap()),
        name: Some("Dana".into()),
        ..Party::default()
    }
}
fn created() -> E {
    E::VoicemailBoxCreated {
        mailbox: mbx(),
        owner: u("1001"),
        department: None,
    }
}
fn deposited(n: u32) -> E {
    E::VoicemailDeposited {
        mailbox: mbx(),
        message: vm(n),
        caller: caller(),
        call: Some(call()),
        reason: DepositReason::Unavailable,
        forwarded_from: None,
        duration_ms: 12_000,
        recording: rec(n),
        folder: F::Inbox,
    }
}
fn mwi(new: u32, old: u32) -> E {
    E::MessageWaitingChanged {
        mailbox: mbx(),
        new_messages: new,
        old_messages: old,
    }
}
fn empty_box() -> Scenario<VoicemailBox> {
    given([created()])
}
/// Two new messages, the phones told so.
fn two_new() -> Scenario<VoicemailBox> {
    given([created(), deposited(1), deposited(2), mwi(2, 0)])
}
fn deposit(n: u32, reason: DepositReason) -> VoicemailCommand {
    deposit_with(n, reason, 12_000, false)
}
fn deposit_with(n: u32, reason: DepositReason, duration_ms: u64, urgent: bool) -> VoicemailCommand {
    VoicemailCommand::Deposit {
        message: vm(n),
        caller: caller(),
        call: Some(call()),
        reason,
        duration_ms,
        recording: rec(n),
        urgent,
    }
}

#[test]
fn a_box_is_created_once_and_nothing_happens_before() {
    given::<VoicemailBox>([])
        .when(deposit(1, DepositReason::Busy))
        .then_rejected(VoicemailRejection::NoBox)
        .when(VoicemailCommand::Create {
            mailbox: mbx(),
            owner: u("1001"),
            department: None,
        })
        .then([created()])
        .when(VoicemailCommand::Create {
            mailbox: mbx(),
            owner: u("1001"),
            department: None,
        })
        .then_rejected(VoicemailRejection::AlreadyExists);
}

#[test]
fn a_message_after_no_answer_lights_the_phones() {
    let s = empty_box()
        .when(deposit(1, DepositReason::Unavailable))
        .then([deposited(1), mwi(1, 0)]);
    assert_eq!(s.state().counts(), MessageCounts { new: 1, old: 0 });
    let m = s.state().message(&vm(1)).unwrap();
    assert_eq!(
        (m.duration_ms, m.caller.name.as_deref()),
        (12_000, Some("Dana"))
    );
}

#[test]
fn a_busy_or_urgent_message_is_recorded_as_such() {
    let (events, _) = empty_box()
        .when(deposit_with(1, DepositReason::Busy, 12_000, true))
        .events();
    assert!(matches!(
        &events[0],
        E::VoicemailDeposited {
            reason: DepositReason::Busy,
            folder: F::Urgent,
            ..
        }
    ));
    assert_eq!(events[1], mwi(1, 0));
}

#[test]
fn deposits_need_audio_a_fresh_id_and_the_right_command() {
    two_new()
        .when(deposit(1, DepositReason::Busy))
        .then_rejected(VoicemailRejection::DuplicateMessage(vm(1)))
        .when(deposit_with(3, DepositReason::Busy, 0, false))
        .then_rejected(VoicemailRejection::NoAudio)
        .when(deposit(3, DepositReason::Forwarded))
        .then_rejected(VoicemailRejection::ForwardedDeposit);
}

#[test]
fn a_full_box_takes_no_more_messages() {
    let mut history = vec![created()];
    history.extend((0..MAX_MESSAGES as u32).map(deposited));
    let s = given::<VoicemailBox>(history);
    assert!(s.state().is_full());
    s.when(deposit(1000, DepositReason::Unavailable))
        .then_rejected(VoicemailRejection::Full { max: MAX_MESSAGES });
}

#[test]
fn reading_moves_to_old_and_updates_the_indication() {
    let s = two_new()
        .when(VoicemailCommand::MarkRead {
            message: vm(1),
            by: u("1001"),
        })
        .then([
            E::VoicemailRead {
                mailbox: mbx(),
                message: vm(1),
                by: u("1001"),
            },
            E::VoicemailMoved {
                mailbox: mbx(),
                message: vm(1),
                from: F::Inbox,
                to: F::Old,
                by: Some(u("1001")),
            },
            mwi(1, 1),
        ])
        .when(VoicemailCommand::MarkRead {
            message: vm(1),
            by: u("1001"),
        })
        .then_nothing();
    assert_eq!(s.state().counts(), MessageCounts { new: 1, old: 1 });
    s.when(VoicemailCommand::MarkUnread {
        message: vm(1),
        by: u("1001"),
    })
    .then([
        E::VoicemailMarkedUnread {
            mailbox: mbx(),
            message: vm(1),
            by: u("1001"),
        },
        E::VoicemailMoved {
            mailbox: mbx(),
            message: vm(1),
            from: F::Old,
            to: F::Inbox,
            by: Some(u("1001")),
        },
        mwi(2, 0),
    ])
    .when(VoicemailCommand::MarkRead {
        message: vm(9),
        by: u("1001"),
    })
    .then_rejected(VoicemailRejection::UnknownMessage(vm(9)));
}

#[test]
fn moving_to_old_or_new_sets_the_read_flag_and_other_folders_keep_it() {
    two_new()
        .when(VoicemailCommand::Move {
            message: vm(1),
            to: F::Old,
            by: u("1001"),
        })
        .then([
            E::VoicemailMoved {
                mailbox: mbx(),
                message: vm(1),
                from: F::Inbox,
                to: F::Old,
                by: Some(u("1001")),
            },
            E::VoicemailRead {
                mailbox: mbx(),
                message: vm(1),
                by: u("1001"),
            },
            mwi(1, 1),
        ])
        .when(VoicemailCommand::Move {
            message: vm(1),
            to: F::Work,
            by: u("1001"),
        })
        // Filing elsewhere does not change what the phones show: no indication.
        .then([E::VoicemailMoved {
            mailbox: mbx(),
            message: vm(1),
            from: F::Old,
            to: F::Work,
            by: Some(u("1001")),
        }])
        .when(VoicemailCommand::Move {
            message: vm(1),
            to: F::Inbox,
            by: u("1001"),
        })
        .then([
            E::VoicemailMoved {
                mailbox: mbx(),
                message: vm(1),
                from: F::Work,
                to: F::Inbox,
                by: Some(u("1001")),
            },
            E::VoicemailMarkedUnread {
                mailbox: mbx(),
                message: vm(1),
                by: u("1001"),
            },
            mwi(2, 0),
        ])
        .when(VoicemailCommand::Move {
            message: vm(1),
            to: F::Inbox,
            by: u("1001"),
        })
        .then_nothing();
}

#[test]
fn deleting_the_last_message_turns_the_light_off() {
    given::<VoicemailBox>([created(), deposited(1), mwi(1, 0)])
        .when(VoicemailCommand::Delete {
            message: vm(1),
            by: u("1001"),
        })
        .then([
            E::VoicemailDeleted {
                mailbox: mbx(),
                message: vm(1),
                reason: VoicemailDeleteReason::User,
                by: Some(u("1001")),
            },
            mwi(0, 0),
        ])
        .when(VoicemailCommand::Delete {
            message: vm(1),
            by: u("1001"),
        })
        .then_rejected(VoicemailRejection::UnknownMessage(vm(1)))
        .when(VoicemailCommand::Expire { message: vm(1) })
        .then_nothing();
}

#[test]
fn retention_expires_a_message() {
    two_new()
        .when(VoicemailCommand::Expire { message: vm(2) })
        .then([
            E::VoicemailDeleted {
                mailbox: mbx(),
                message: vm(2),
                reason: VoicemailDeleteReason::Retention,
                by: None,
            },
            mwi(1, 0),
        ]);
}

#[test]
fn a_transfer_delivers_a_copy_to_the_target_and_removes_the_original() {
    let source = two_new();
    let deliver = source.state().forwarded_copy(&vm(1), vm(50)).unwrap();
    let target_mbx = other();
    let target = given::<VoicemailBox>([E::VoicemailBoxCreated {
        mailbox: target_mbx.clone(),
        owner: u("1006"),
        department: None,
    }]);
    let target = target.when(deliver).then([
        E::VoicemailDeposited {
            mailbox: target_mbx.clone(),
            message: vm(50),
            caller: caller(),
            call: None,
            reason: DepositReason::Forwarded,
            forwarded_from: Some(mbx()),
            duration_ms: 12_000,
            recording: rec(1),
            folder: F::Inbox,
        },
        E::MessageWaitingChanged {
            mailbox: target_mbx.clone(),
            new_messages: 1,
            old_messages: 0,
        },
    ]);
    assert_eq!(target.state().counts().new, 1);
    source
        .when(VoicemailCommand::Forward {
            message: vm(1),
            to_mailbox: target_mbx.clone(),
            copy: vm(50),
            kind: VoicemailForwardKind::Transfer,
            by: u("1001"),
        })
        .then([
            E::VoicemailForwarded {
                mailbox: mbx(),
                message: vm(1),
                to_mailbox: target_mbx,
                copy: vm(50),
                kind: VoicemailForwardKind::Transfer,
                by: u("1001"),
            },
            E::VoicemailDeleted {
                mailbox: mbx(),
                message: vm(1),
                reason: VoicemailDeleteReason::Transferred,
                by: Some(u("1001")),
            },
            mwi(1, 0),
        ]);
}

#[test]
fn a_forwarded_copy_keeps_the_original_and_never_goes_to_the_same_box() {
    two_new()
        .when(VoicemailCommand::Forward {
            message: vm(1),
            to_mailbox: other(),
            copy: vm(50),
            kind: VoicemailForwardKind::Copy,
            by: u("1001"),
        })
        .then([E::VoicemailForwarded {
            mailbox: mbx(),
            message: vm(1),
            to_mailbox: other(),
            copy: vm(50),
            kind: VoicemailForwardKind::Copy,
            by: u("1001"),
        }])
        .when(VoicemailCommand::Forward {
            message: vm(1),
            to_mailbox: mbx(),
            copy: vm(51),
            kind: VoicemailForwardKind::Copy,
            by: u("1001"),
        })
        .then_rejected(VoicemailRejection::ForwardToSelf(mbx()))
        .when(VoicemailCommand::Forward {
            message: vm(9),
            to_mailbox: other(),
            copy: vm(52),
            kind: VoicemailForwardKind::Copy,
            by: u("1001"),
        })
        .then_rejected(VoicemailRejection::UnknownMessage(vm(9)));
}

#[test]
fn a_full_target_refuses_a_forwarded_copy() {
    let mut history = vec![created()];
    history.extend((0..MAX_MESSAGES as u32).map(deposited));
    given::<VoicemailBox>(history)
        .when(VoicemailCommand::ReceiveForwarded {
            message: vm(5000),
            from_mailbox: other(),
            caller: caller(),
            duration_ms: 1000,
            recording: rec(7),
        })
        .then_rejected(VoicemailRejection::Full { max: MAX_MESSAGES });
}

#[test]
fn greetings_are_chosen_by_reason_with_system_fallbacks() {
    let set = |kind, n| VoicemailCommand::SetGreeting {
        greeting: kind,
        source: GreetingSource::Recorded,
        recording: rec(n),
        duration_ms: 4_000,
        by: u("1001"),
    };
    let s = empty_box();
    assert_eq!(
        s.state().greeting_for(DepositReason::Busy),
        GreetingToPlay::System {
            kind: GreetingKind::Busy,
            name: None
        }
    );
    let s = s
        .when(set(GreetingKind::Name, 100))
        .then([E::VoicemailGreetingChanged {
            mailbox: mbx(),
            greeting: GreetingKind::Name,
            source: GreetingSource::Recorded,
            recording: rec(100),
            duration_ms: 4_000,
            by: u("1001"),
        }])
        .when(set(GreetingKind::Unavailable, 101))
        .accepted();
    assert_eq!(
        s.state().greeting_for(DepositReason::Busy),
        GreetingToPlay::System {
            kind: GreetingKind::Busy,
            name: Some(rec(100))
        }
    );
    assert_eq!(
        s.state().greeting_for(DepositReason::Unavailable),
        GreetingToPlay::Custom(rec(101))
    );
    let s = s
        .when(VoicemailCommand::RemoveGreeting {
            greeting: GreetingKind::Unavailable,
            by: u("1001"),
        })
        .then([E::VoicemailGreetingRemoved {
            mailbox: mbx(),
            greeting: GreetingKind::Unavailable,
            by: u("1001"),
        }])
        .when(VoicemailCommand::RemoveGreeting {
            greeting: GreetingKind::Unavailable,
            by: u("1001"),
        })
        .then_nothing();
    assert_eq!(
        s.state().greeting_for(DepositReason::Unavailable),
        GreetingToPlay::System {
            kind: GreetingKind::Unavailable,
            name: Some(rec(100))
        }
    );
}

#[test]
fn a_greeting_needs_audio_and_a_sensible_length() {
    let set = |ms| VoicemailCommand::SetGreeting {
        greeting: GreetingKind::Busy,
        source: GreetingSource::Uploaded,
        recording: rec(1),
        duration_ms: ms,
        by: u("1001"),
    };
    empty_box()
        .when(set(0))
        .then_rejected(VoicemailRejection::NoAudio)
        .when(set(MAX_GREETING_MS + 1))
        .then_rejected(VoicemailRejection::GreetingTooLong {
            duration_ms: MAX_GREETING_MS + 1,
            max_ms: MAX_GREETING_MS,
        });
}

#[test]
fn settings_are_validated_trimmed_and_recorded_whole() {
    let settings = VoicemailSettings {
        email: Some(" alice@acme.example ".into()),
        pager_email: Some("".into()),
        attach: true,
        play_envelope: false,
        play_caller_id: true,
        delete_after_email: true,
    };
    empty_box()
        .when(VoicemailCommand::ChangeSettings {
            settings: settings.clone(),
            by: u("1001"),
        })
        .then([E::VoicemailSettingsChanged {
            mailbox: mbx(),
            email: Some("alice@acme.example".into()),
            pager_email: None,
            attach: true,
            play_envelope: false,
            play_caller_id: true,
            delete_after_email: true,
            by: u("1001"),
        }])
        .when(VoicemailCommand::ChangeSettings {
            settings: settings.clone(),
            by: u("1001"),
        })
        .then_nothing()
        .when(VoicemailCommand::ChangeSettings {
            settings: VoicemailSettings {
                pager_email: Some("not an address".into()),
                ..settings.clone()
            },
            by: u("1001"),
        })
        .then_rejected(VoicemailRejection::BadEmail {
            field: "pager e-mail",
            value: "not an address".into(),
        })
        .when(VoicemailCommand::ChangeSettings {
            settings: VoicemailSettings {
                email: None,
                ..settings.clone()
            },
            by: u("1001"),
        })
        .then_rejected(VoicemailRejection::DeleteWithoutEmail)
        .when(VoicemailCommand::ChangeSettings {
            settings: VoicemailSettings {
                attach: false,
                ..settings
            },
            by: u("1001"),
        })
        .then_rejected(VoicemailRejection::DeleteWithoutAttach);
}

#[test]
fn delete_after_email_removes_a_message_once_mailed_with_its_audio() {
    let s = two_new()
        .when(VoicemailCommand::ChangeSettings {
            settings: VoicemailSettings {
                email: Some("alice@acme.example".into()),
                delete_after_email: true,
                ..VoicemailSettings::default()
            },
            by: u("1001"),
        })
        .accepted();
    s.clone()
        .when(VoicemailCommand::Emailed {
            message: vm(1),
            to: "pager@acme.example".into(),
            pager: true,
            attached: false,
        })
        .then([E::VoicemailEmailed {
            mailbox: mbx(),
            message: vm(1),
            to: "pager@acme.example".into(),
            pager: true,
            attached: false,
        }]);
    s.when(VoicemailCommand::Emailed {
        message: vm(1),
        to: "alice@acme.example".into(),
        pager: false,
        attached: true,
    })
    .then([
        E::VoicemailEmailed {
            mailbox: mbx(),
            message: vm(1),
            to: "alice@acme.example".into(),
            pager: false,
            attached: true,
        },
        E::VoicemailDeleted {
            mailbox: mbx(),
            message: vm(1),
            reason: VoicemailDeleteReason::AfterEmail,
            by: None,
        },
        mwi(1, 0),
    ]);
}

#[test]
fn the_pin_is_numeric_never_the_mailbox_and_never_in_the_event() {
    assert_eq!(Pin::parse("12a4"), Err(PinError::NotNumeric));
    assert_eq!(Pin::parse("123"), Err(PinError::BadLength(3)));
    assert_eq!(Pin::parse("1234567890123"), Err(PinError::BadLength(13)));
    let pin = Pin::parse("482913").unwrap();
    assert!(!format!("{pin:?}").contains("482913"));
    let (events, s) = empty_box()
        .when(VoicemailCommand::ChangePin { pin, by: u("1001") })
        .events();
    assert_eq!(
        events,
        vec![E::VoicemailPinChanged {
            mailbox: mbx(),
            by: u("1001")
        }]
    );
    assert!(!format!("{events:?}").contains("482913"));
    assert!(s.state().has_pin());
    s.when(VoicemailCommand::ChangePin {
        pin: Pin::parse("1001").unwrap(),
        by: u("1001"),
    })
    .then_rejected(VoicemailRejection::PinIsMailbox);
}

#[test]
fn removing_the_box_clears_the_light_first_and_ends_the_stream() {
    let s = two_new()
        .when(VoicemailCommand::Remove)
        .then([mwi(0, 0), E::VoicemailBoxRemoved { mailbox: mbx() }]);
    assert!(!s.state().exists());
    s.when(deposit(3, DepositReason::Busy))
        .then_rejected(VoicemailRejection::Removed);
}

#[test]
fn the_indication_catches_up_when_history_never_announced_it() {
    // A box whose deposits predate the indication: the next change announces the true counts.
    given::<VoicemailBox>([created(), deposited(1), deposited(2)])
        .when(VoicemailCommand::MarkRead {
            message: vm(2),
            by: u("1001"),
        })
        .then([
            E::VoicemailRead {
                mailbox: mbx(),
                message: vm(2),
                by: u("1001"),
            },
            E::VoicemailMoved {
                mailbox: mbx(),
                message: vm(2),
                from: F::Inbox,
                to: F::Old,
                by: Some(u("1001")),
            },
            mwi(1, 1),
        ]);
}

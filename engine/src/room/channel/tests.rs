//! Given/when/then tests of the channel room: lifecycle, membership, roles and every
//! permission rule, then the message actions.

use events::ids::{AttachmentId, MessageId, RoomId, UserId};
use events::model::{Attachment, RoomEvent as E, RoomRole, RoomVisibility};

use super::*;
use crate::aggregate::Aggregate;
use crate::room::message::{MAX_TEXT_CHARS, MessageAction as A, MessageDraft, MessageRejection};
use crate::testing::{Scenario, given};

fn u(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}
fn room() -> RoomId {
    RoomId::parse("sales-team").unwrap()
}
fn msg(n: u32) -> MessageId {
    MessageId::parse(format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

/// 1001 owns a public room with members 1002 and 1003.
fn created(visibility: RoomVisibility) -> E {
    E::RoomCreated {
        room: room(),
        name: "sales-team".into(),
        created_by: u("1001"),
        members: vec![u("1002"), u("1003")],
        visibility,
    }
}
fn public_room() -> Scenario<ChannelRoom> {
    given([created(RoomVisibility::Public)])
}
fn posted(n: u32, author: &str, text: &str) -> E {
    E::RoomMessagePosted {
        room: room(),
        message: msg(n),
        author: u(author),
        text: text.into(),
        attachments: vec![],
        quote: None,
        thread: None,
    }
}
fn with_message() -> Scenario<ChannelRoom> {
    given([created(RoomVisibility::Public), posted(1, "1002", "hello")])
}
fn moderated() -> Scenario<ChannelRoom> {
    given([
        created(RoomVisibility::Public),
        E::RoomRoleGranted {
            room: room(),
            user: u("1003"),
            role: RoomRole::Moderator,
            by: u("1001"),
        },
        posted(1, "1002", "hello"),
    ])
}
fn archived() -> Scenario<ChannelRoom> {
    given([
        created(RoomVisibility::Public),
        posted(1, "1002", "hello"),
        E::RoomArchived {
            room: room(),
            by: u("1001"),
        },
    ])
}
fn post(n: u32, author: &str, draft: MessageDraft) -> RoomCommand {
    RoomCommand::Message(A::Post {
        message: msg(n),
        author: u(author),
        draft,
    })
}

// Lifecycle and names.

#[test]
fn creating_normalises_the_name_and_makes_the_creator_owner() {
    let s = given::<ChannelRoom>([])
        .when(RoomCommand::Create {
            room: room(),
            name: "  Sales   Team ".into(),
            by: u("1001"),
            members: vec![u("1002"), u("1001"), u("1002")],
            visibility: RoomVisibility::Private,
        })
        .then([E::RoomCreated {
            room: room(),
            name: "sales-team".into(),
            created_by: u("1001"),
            members: vec![u("1002")],
            visibility: RoomVisibility::Private,
        }]);
    assert_eq!(s.state().name(), "sales-team");
    assert!(s.state().membership(&u("1001")).unwrap().owner);
    assert!(!s.state().membership(&u("1002")).unwrap().owner);
    assert_eq!(s.state().status(), RoomStatus::Active);
}

#[test]
fn room_names_keep_unicode_letters_and_refuse_special_characters() {
    assert_eq!(
        RoomName::parse("Équipe Café").unwrap().as_str(),
        "équipe-café"
    );
    assert_eq!(RoomName::parse("q3.plan_b").unwrap().as_str(), "q3.plan_b");
    assert_eq!(RoomName::parse("   "), Err(RoomNameError::Empty));
    assert_eq!(
        RoomName::parse("Q&A"),
        Err(RoomNameError::BadCharacter('&'))
    );
    assert_eq!(RoomName::parse("-x"), Err(RoomNameError::BadStart));
    assert_eq!(
        RoomName::parse(&"a".repeat(65)),
        Err(RoomNameError::TooLong {
            chars: 65,
            max: MAX_NAME_CHARS
        })
    );
}

#[test]
fn a_bad_name_or_a_second_create_is_refused() {
    let create = |name: &str| RoomCommand::Create {
        room: room(),
        name: name.into(),
        by: u("1001"),
        members: vec![],
        visibility: RoomVisibility::Public,
    };
    given::<ChannelRoom>([])
        .when(create("sales 🎉"))
        .then_rejected(RoomRejection::BadName(RoomNameError::BadCharacter('🎉')));
    public_room()
        .when(create("other"))
        .then_rejected(RoomRejection::AlreadyExists);
    given::<ChannelRoom>([])
        .when(RoomCommand::Join { user: u("1002") })
        .then_rejected(RoomRejection::NotCreated);
}

#[test]
fn owners_and_moderators_rename_with_the_same_rule_and_members_cannot() {
    moderated()
        .when(RoomCommand::Rename {
            name: "Sales EMEA".into(),
            by: u("1003"),
        })
        .then([E::RoomRenamed {
            room: room(),
            name: "sales-emea".into(),
            previous: "sales-team".into(),
            by: u("1003"),
        }])
        .when(RoomCommand::Rename {
            name: "sales emea".into(),
            by: u("1001"),
        })
        .then_nothing()
        .when(RoomCommand::Rename {
            name: "mine".into(),
            by: u("1002"),
        })
        .then_rejected(RoomRejection::NotModerator {
            user: u("1002"),
            action: "rename the room",
        });
}

#[test]
fn owners_archive_restore_and_delete() {
    let s = public_room()
        .when(RoomCommand::Archive { by: u("1002") })
        .then_rejected(RoomRejection::NotOwner {
            user: u("1002"),
            action: "archive the room",
        })
        .when(RoomCommand::Archive { by: u("1001") })
        .then([E::RoomArchived {
            room: room(),
            by: u("1001"),
        }]);
    assert_eq!(s.state().status(), RoomStatus::Archived);
    assert!(!s.state().is_open_for(&u("1001")));
    let s = s
        .when(RoomCommand::Archive { by: u("1001") })
        .then_nothing()
        .when(RoomCommand::Restore { by: u("1001") })
        .then([E::RoomRestored {
            room: room(),
            by: u("1001"),
        }])
        .when(RoomCommand::Restore { by: u("1001") })
        .then_rejected(RoomRejection::NotArchived)
        .when(RoomCommand::Delete { by: u("1003") })
        .then_rejected(RoomRejection::NotOwner {
            user: u("1003"),
            action: "delete the room",
        })
        .when(RoomCommand::Delete { by: u("1001") })
        .then([E::RoomDeleted {
            room: room(),
            by: u("1001"),
        }]);
    assert_eq!(s.state().status(), RoomStatus::Deleted);
    s.when(RoomCommand::Join { user: u("1004") })
        .then_rejected(RoomRejection::Deleted);
}

#[test]
fn an_archived_room_can_be_deleted() {
    archived()
        .when(RoomCommand::Delete { by: u("1001") })
        .then([E::RoomDeleted {
            room: room(),
            by: u("1001"),
        }]);
}

// Membership.

#[test]
fn anyone_joins_a_public_room_but_not_a_private_one() {
    let s = public_room()
        .when(RoomCommand::Join { user: u("1004") })
        .then([E::RoomMemberJoined {
            room: room(),
            user: u("1004"),
        }])
        .when(RoomCommand::Join { user: u("1004") })
        .then_nothing();
    assert!(s.state().is_member(&u("1004")));
    given::<ChannelRoom>([created(RoomVisibility::Private)])
        .when(RoomCommand::Join { user: u("1004") })
        .then_rejected(RoomRejection::Private(u("1004")));
}

#[test]
fn members_add_people_to_public_rooms_owners_to_private_ones() {
    public_room()
        .when(RoomCommand::AddMember {
            user: u("1004"),
            by: u("1002"),
        })
        .then([E::RoomMemberInvited {
            room: room(),
            user: u("1004"),
            by: u("1002"),
        }])
        .when(RoomCommand::AddMember {
            user: u("1004"),
            by: u("1002"),
        })
        .then_rejected(RoomRejection::AlreadyMember(u("1004")))
        .when(RoomCommand::AddMember {
            user: u("1005"),
            by: u("1009"),
        })
        .then_rejected(RoomRejection::NotMember(u("1009")));
    given::<ChannelRoom>([created(RoomVisibility::Private)])
        .when(RoomCommand::AddMember {
            user: u("1004"),
            by: u("1002"),
        })
        .then_rejected(RoomRejection::NotModerator {
            user: u("1002"),
            action: "add members to a private room",
        })
        .when(RoomCommand::AddMember {
            user: u("1004"),
            by: u("1001"),
        })
        .accepted();
}

#[test]
fn a_member_leaves_and_can_no_longer_post() {
    public_room()
        .when(RoomCommand::Leave { user: u("1002") })
        .then([E::RoomMemberLeft {
            room: room(),
            user: u("1002"),
        }])
        .when(post(1, "1002", MessageDraft::text("still here?")))
        .then_rejected(RoomRejection::NotMember(u("1002")))
        .when(RoomCommand::Leave { user: u("1002") })
        .then_rejected(RoomRejection::NotMember(u("1002")));
}

#[test]
fn the_last_owner_cannot_leave_or_give_up_ownership_until_transferring_it() {
    public_room()
        .when(RoomCommand::Leave { user: u("1001") })
        .then_rejected(RoomRejection::LastOwner(u("1001")))
        .when(RoomCommand::RevokeRole {
            user: u("1001"),
            role: RoomRole::Owner,
            by: u("1001"),
        })
        .then_rejected(RoomRejection::LastOwner(u("1001")))
        .when(RoomCommand::TransferOwnership {
            to: u("1002"),
            by: u("1001"),
        })
        .then([
            E::RoomRoleGranted {
                room: room(),
                user: u("1002"),
                role: RoomRole::Owner,
                by: u("1001"),
            },
            E::RoomRoleRevoked {
                room: room(),
                user: u("1001"),
                role: RoomRole::Owner,
                by: u("1001"),
            },
        ])
        .when(RoomCommand::Leave { user: u("1001") })
        .then([E::RoomMemberLeft {
            room: room(),
            user: u("1001"),
        }]);
}

#[test]
fn an_owner_leaves_when_another_owner_remains() {
    public_room()
        .when(RoomCommand::GrantRole {
            user: u("1002"),
            role: RoomRole::Owner,
            by: u("1001"),
        })
        .accepted()
        .when(RoomCommand::Leave { user: u("1001") })
        .accepted();
}

#[test]
fn ownership_goes_only_to_a_member_and_not_to_oneself() {
    public_room()
        .when(RoomCommand::TransferOwnership {
            to: u("1001"),
            by: u("1001"),
        })
        .then_rejected(RoomRejection::TransferToSelf(u("1001")))
        .when(RoomCommand::TransferOwnership {
            to: u("1009"),
            by: u("1001"),
        })
        .then_rejected(RoomRejection::NotMember(u("1009")))
        .when(RoomCommand::TransferOwnership {
            to: u("1003"),
            by: u("1002"),
        })
        .then_rejected(RoomRejection::NotOwner {
            user: u("1002"),
            action: "transfer ownership",
        });
}

#[test]
fn only_owners_grant_and_revoke_roles() {
    let s = public_room()
        .when(RoomCommand::GrantRole {
            user: u("1003"),
            role: RoomRole::Moderator,
            by: u("1002"),
        })
        .then_rejected(RoomRejection::NotOwner {
            user: u("1002"),
            action: "grant roles",
        })
        .when(RoomCommand::GrantRole {
            user: u("1003"),
            role: RoomRole::Moderator,
            by: u("1001"),
        })
        .then([E::RoomRoleGranted {
            room: room(),
            user: u("1003"),
            role: RoomRole::Moderator,
            by: u("1001"),
        }])
        .when(RoomCommand::GrantRole {
            user: u("1003"),
            role: RoomRole::Moderator,
            by: u("1001"),
        })
        .then_nothing();
    assert!(s.state().membership(&u("1003")).unwrap().moderator);
    let owners: Vec<_> = s.state().owners().cloned().collect();
    assert_eq!(owners, vec![u("1001")]);
    s.when(RoomCommand::RevokeRole {
        user: u("1003"),
        role: RoomRole::Moderator,
        by: u("1003"),
    })
    .then_rejected(RoomRejection::NotOwner {
        user: u("1003"),
        action: "revoke roles",
    })
    .when(RoomCommand::RevokeRole {
        user: u("1003"),
        role: RoomRole::Moderator,
        by: u("1001"),
    })
    .then([E::RoomRoleRevoked {
        room: room(),
        user: u("1003"),
        role: RoomRole::Moderator,
        by: u("1001"),
    }]);
}

#[test]
fn owners_and_moderators_kick_members_but_moderators_not_owners() {
    moderated()
        .when(RoomCommand::Kick {
            user: u("1003"),
            by: u("1002"),
        })
        .then_rejected(RoomRejection::NotModerator {
            user: u("1002"),
            action: "kick members",
        })
        .when(RoomCommand::Kick {
            user: u("1001"),
            by: u("1003"),
        })
        .then_rejected(RoomRejection::CannotKickOwner(u("1001")))
        .when(RoomCommand::Kick {
            user: u("1003"),
            by: u("1003"),
        })
        .then_rejected(RoomRejection::KickSelf(u("1003")))
        .when(RoomCommand::Kick {
            user: u("1009"),
            by: u("1003"),
        })
        .then_rejected(RoomRejection::NotMember(u("1009")))
        .when(RoomCommand::Kick {
            user: u("1002"),
            by: u("1003"),
        })
        .then([E::RoomMemberKicked {
            room: room(),
            user: u("1002"),
            by: u("1003"),
        }])
        .when(RoomCommand::Kick {
            user: u("1003"),
            by: u("1001"),
        })
        .accepted();
}

#[test]
fn closing_hides_the_room_for_one_member_only() {
    let s = public_room()
        .when(RoomCommand::Close { user: u("1002") })
        .then([E::RoomClosed {
            room: room(),
            user: u("1002"),
        }])
        .when(RoomCommand::Close { user: u("1002") })
        .then_nothing();
    assert!(!s.state().is_open_for(&u("1002")));
    assert!(s.state().is_open_for(&u("1003")));
    assert!(s.state().is_member(&u("1002")));
    let s = s
        .when(RoomCommand::Reopen { user: u("1002") })
        .then([E::RoomReopened {
            room: room(),
            user: u("1002"),
        }]);
    assert!(s.state().is_open_for(&u("1002")));
    s.when(RoomCommand::Close { user: u("1009") })
        .then_rejected(RoomRejection::NotMember(u("1009")));
}

#[test]
fn the_members_query_lists_everyone_with_their_roles() {
    let s = moderated();
    let members: Vec<(String, bool, bool)> = s
        .state()
        .members()
        .map(|(u, m)| (u.to_string(), m.owner, m.moderator))
        .collect();
    assert_eq!(
        members,
        vec![
            ("1001".into(), true, false),
            ("1002".into(), false, false),
            ("1003".into(), false, true)
        ]
    );
}

// An archived room is read-only.

#[test]
fn an_archived_room_refuses_writes() {
    let s = archived();
    for command in [
        post(2, "1002", MessageDraft::text("hi")),
        RoomCommand::Message(A::Edit {
            message: msg(1),
            text: "changed".into(),
            by: u("1002"),
        }),
        RoomCommand::Message(A::Delete {
            message: msg(1),
            by: u("1002"),
        }),
        RoomCommand::Message(A::React {
            message: msg(1),
            user: u("1003"),
            emoji: "👍".into(),
        }),
        RoomCommand::Rename {
            name: "x".into(),
            by: u("1001"),
        },
        RoomCommand::Join { user: u("1004") },
        RoomCommand::AddMember {
            user: u("1004"),
            by: u("1001"),
        },
        RoomCommand::Kick {
            user: u("1002"),
            by: u("1001"),
        },
        RoomCommand::GrantRole {
            user: u("1002"),
            role: RoomRole::Moderator,
            by: u("1001"),
        },
    ] {
        s.clone()
            .when(command)
            .then_rejected(RoomRejection::Archived);
    }
}

#[test]
fn an_archived_room_still_lets_members_leave_close_star_follow_and_report() {
    archived()
        .when(RoomCommand::Leave { user: u("1003") })
        .accepted()
        .when(RoomCommand::Close { user: u("1002") })
        .accepted()
        .when(RoomCommand::Message(A::Star {
            message: msg(1),
            user: u("1002"),
        }))
        .accepted()
        .when(RoomCommand::Message(A::Follow {
            message: msg(1),
            user: u("1002"),
        }))
        .accepted()
        .when(RoomCommand::Message(A::Report {
            message: msg(1),
            by: u("1001"),
            reason: None,
        }))
        .accepted();
}

// Messages.

#[test]
fn members_post_emoji_text_with_attachments() {
    let file = Attachment {
        attachment: AttachmentId::parse("00000000-0000-4000-8000-000000000042").unwrap(),
        file_name: "offer.pdf".into(),
        content_type: "application/pdf".into(),
        size_bytes: 48_213,
    };
    let draft = MessageDraft {
        text: "Offer attached 🎉👍🏽 — ça marche".into(),
        attachments: vec![file.clone()],
        ..MessageDraft::default()
    };
    let s = public_room()
        .when(post(1, "1002", draft))
        .then([E::RoomMessagePosted {
            room: room(),
            message: msg(1),
            author: u("1002"),
            text: "Offer attached 🎉👍🏽 — ça marche".into(),
            attachments: vec![file],
            quote: None,
            thread: None,
        }]);
    assert_eq!(s.state().message(&msg(1)).unwrap().author, u("1002"));
}

#[test]
fn an_attachment_alone_is_a_message_but_nothing_at_all_is_not() {
    let file = Attachment {
        attachment: AttachmentId::parse("00000000-0000-4000-8000-000000000042").unwrap(),
        file_name: "photo.png".into(),
        content_type: "image/png".into(),
        size_bytes: 1000,
    };
    public_room()
        .when(post(
            1,
            "1002",
            MessageDraft {
                attachments: vec![file],
                ..MessageDraft::default()
            },
        ))
        .accepted()
        .when(post(2, "1002", MessageDraft::text("  \n ")))
        .then_rejected(MessageRejection::Empty.into());
}

#[test]
fn non_members_cannot_post() {
    public_room()
        .when(post(1, "1009", MessageDraft::text("hi")))
        .then_rejected(RoomRejection::NotMember(u("1009")));
}

#[test]
fn message_size_limits_are_enforced() {
    let too_long = "😀".repeat(MAX_TEXT_CHARS + 1);
    public_room()
        .when(post(
            1,
            "1002",
            MessageDraft::text("😀".repeat(MAX_TEXT_CHARS)),
        ))
        .accepted()
        .when(post(2, "1002", MessageDraft::text(too_long)))
        .then_rejected(
            MessageRejection::TextTooLong {
                chars: MAX_TEXT_CHARS + 1,
                max: MAX_TEXT_CHARS,
            }
            .into(),
        );
    let big = Attachment {
        attachment: AttachmentId::parse("00000000-0000-4000-8000-000000000042").unwrap(),
        file_name: "huge.iso".into(),
        content_type: "application/octet-stream".into(),
        size_bytes: crate::room::MAX_ATTACHMENT_BYTES + 1,
    };
    public_room()
        .when(post(
            1,
            "1002",
            MessageDraft {
                text: "x".into(),
                attachments: vec![big.clone()],
                ..MessageDraft::default()
            },
        ))
        .then_rejected(
            MessageRejection::AttachmentTooLarge {
                attachment: big.attachment,
                size_bytes: big.size_bytes,
                max: crate::room::MAX_ATTACHMENT_BYTES,
            }
            .into(),
        );
}

#[test]
fn a_message_id_is_used_once() {
    with_message()
        .when(post(1, "1003", MessageDraft::text("again")))
        .then_rejected(MessageRejection::DuplicateId(msg(1)).into());
}

#[test]
fn thread_replies_and_quotes_point_at_live_messages() {
    let s = with_message()
        .when(post(
            2,
            "1003",
            MessageDraft {
                text: "in thread".into(),
                thread: Some(msg(1)),
                ..MessageDraft::default()
            },
        ))
        .accepted()
        // A reply to the reply lands in the same thread.
        .when(post(
            3,
            "1001",
            MessageDraft {
                text: "me too".into(),
                thread: Some(msg(2)),
                quote: Some(msg(2)),
                ..MessageDraft::default()
            },
        ))
        .then([E::RoomMessagePosted {
            room: room(),
            message: msg(3),
            author: u("1001"),
            text: "me too".into(),
            attachments: vec![],
            quote: Some(msg(2)),
            thread: Some(msg(1)),
        }]);
    assert_eq!(s.state().message(&msg(1)).unwrap().replies, 2);
    s.when(post(
        4,
        "1001",
        MessageDraft {
            text: "?".into(),
            quote: Some(msg(99)),
            ..MessageDraft::default()
        },
    ))
    .then_rejected(MessageRejection::Unknown(msg(99)).into());
}

#[test]
fn the_author_edits_and_deletes_their_message() {
    let s = with_message()
        .when(RoomCommand::Message(A::Edit {
            message: msg(1),
            text: "hello all 👋".into(),
            by: u("1002"),
        }))
        .then([E::RoomMessageEdited {
            room: room(),
            message: msg(1),
            text: "hello all 👋".into(),
            by: u("1002"),
        }]);
    assert!(s.state().message(&msg(1)).unwrap().edited);
    s.when(RoomCommand::Message(A::Delete {
        message: msg(1),
        by: u("1002"),
    }))
    .then([E::RoomMessageDeleted {
        room: room(),
        message: msg(1),
        by: u("1002"),
    }]);
}

#[test]
fn other_members_cannot_edit_or_delete_but_moderators_and_owners_can() {
    let not_author = |user: &str| -> RoomRejection {
        MessageRejection::NotAuthor {
            message: msg(1),
            user: u(user),
        }
        .into()
    };
    let s = moderated()
        .when(RoomCommand::Join { user: u("1004") })
        .accepted()
        .when(RoomCommand::Message(A::Edit {
            message: msg(1),
            text: "hijacked".into(),
            by: u("1004"),
        }))
        .then_rejected(not_author("1004"))
        .when(RoomCommand::Message(A::Delete {
            message: msg(1),
            by: u("1004"),
        }))
        .then_rejected(not_author("1004"));
    s.clone()
        .when(RoomCommand::Message(A::Edit {
            message: msg(1),
            text: "tidied by a moderator".into(),
            by: u("1003"),
        }))
        .accepted();
    s.clone()
        .when(RoomCommand::Message(A::Edit {
            message: msg(1),
            text: "tidied by the owner".into(),
            by: u("1001"),
        }))
        .accepted();
    s.when(RoomCommand::Message(A::Delete {
        message: msg(1),
        by: u("1003"),
    }))
    .accepted();
}

#[test]
fn a_deleted_message_cannot_be_edited_reacted_to_or_quoted() {
    let s = with_message()
        .when(RoomCommand::Message(A::Delete {
            message: msg(1),
            by: u("1002"),
        }))
        .accepted();
    assert!(s.state().message(&msg(1)).unwrap().deleted);
    s.when(RoomCommand::Message(A::Edit {
        message: msg(1),
        text: "undo".into(),
        by: u("1002"),
    }))
    .then_rejected(MessageRejection::Deleted(msg(1)).into())
    .when(RoomCommand::Message(A::React {
        message: msg(1),
        user: u("1003"),
        emoji: "👍".into(),
    }))
    .then_rejected(MessageRejection::Deleted(msg(1)).into())
    .when(post(
        2,
        "1003",
        MessageDraft {
            text: "quoting".into(),
            quote: Some(msg(1)),
            ..MessageDraft::default()
        },
    ))
    .then_rejected(MessageRejection::Deleted(msg(1)).into())
    .when(RoomCommand::Message(A::Delete {
        message: msg(1),
        by: u("1002"),
    }))
    .then_nothing();
}

#[test]
fn an_edit_to_an_unknown_message_or_to_empty_text_is_refused() {
    with_message()
        .when(RoomCommand::Message(A::Edit {
            message: msg(7),
            text: "x".into(),
            by: u("1002"),
        }))
        .then_rejected(MessageRejection::Unknown(msg(7)).into())
        .when(RoomCommand::Message(A::Edit {
            message: msg(1),
            text: " ".into(),
            by: u("1002"),
        }))
        .then_rejected(MessageRejection::Empty.into())
        .when(RoomCommand::Message(A::Edit {
            message: msg(1),
            text: "hello".into(),
            by: u("1002"),
        }))
        .then_nothing();
}

#[test]
fn reactions_toggle_per_user_and_emoji() {
    let react = |user: &str, emoji: &str| {
        RoomCommand::Message(A::React {
            message: msg(1),
            user: u(user),
            emoji: emoji.into(),
        })
    };
    let s = with_message()
        .when(react("1003", "👍🏽"))
        .then([E::RoomReactionAdded {
            room: room(),
            message: msg(1),
            user: u("1003"),
            emoji: "👍🏽".into(),
        }])
        .when(react("1003", "👍🏽"))
        .then_nothing()
        .when(react("1001", "👍🏽"))
        .accepted();
    assert_eq!(s.state().message(&msg(1)).unwrap().reactions["👍🏽"].len(), 2);
    let s = s
        .when(RoomCommand::Message(A::Unreact {
            message: msg(1),
            user: u("1003"),
            emoji: "👍🏽".into(),
        }))
        .then([E::RoomReactionRemoved {
            room: room(),
            message: msg(1),
            user: u("1003"),
            emoji: "👍🏽".into(),
        }])
        .when(RoomCommand::Message(A::Unreact {
            message: msg(1),
            user: u("1003"),
            emoji: "👍🏽".into(),
        }))
        .then_nothing();
    for bad in ["", "ok", "👍 👍", "🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉"]
    {
        s.clone()
            .when(react("1002", bad))
            .then_rejected(MessageRejection::BadEmoji(bad.into()).into());
    }
    s.when(react("1009", "👍"))
        .then_rejected(RoomRejection::NotMember(u("1009")));
}

#[test]
fn follow_and_star_are_per_user_toggles() {
    let s = with_message()
        .when(RoomCommand::Message(A::Follow {
            message: msg(1),
            user: u("1003"),
        }))
        .then([E::RoomMessageFollowed {
            room: room(),
            message: msg(1),
            user: u("1003"),
        }])
        .when(RoomCommand::Message(A::Follow {
            message: msg(1),
            user: u("1003"),
        }))
        .then_nothing()
        .when(RoomCommand::Message(A::Star {
            message: msg(1),
            user: u("1003"),
        }))
        .then([E::RoomMessageStarred {
            room: room(),
            message: msg(1),
            user: u("1003"),
        }]);
    let m = s.state().message(&msg(1)).unwrap();
    assert!(m.followers.contains(&u("1003")) && m.starred_by.contains(&u("1003")));
    s.when(RoomCommand::Message(A::Unfollow {
        message: msg(1),
        user: u("1003"),
    }))
    .then([E::RoomMessageUnfollowed {
        room: room(),
        message: msg(1),
        user: u("1003"),
    }])
    .when(RoomCommand::Message(A::Unstar {
        message: msg(1),
        user: u("1003"),
    }))
    .then([E::RoomMessageUnstarred {
        room: room(),
        message: msg(1),
        user: u("1003"),
    }])
    .when(RoomCommand::Message(A::Unstar {
        message: msg(1),
        user: u("1003"),
    }))
    .then_nothing();
}

#[test]
fn a_report_is_recorded_once_per_user_with_a_trimmed_reason() {
    with_message()
        .when(RoomCommand::Message(A::Report {
            message: msg(1),
            by: u("1003"),
            reason: Some("  spam ".into()),
        }))
        .then([E::RoomMessageReported {
            room: room(),
            message: msg(1),
            by: u("1003"),
            reason: Some("spam".into()),
        }])
        .when(RoomCommand::Message(A::Report {
            message: msg(1),
            by: u("1003"),
            reason: None,
        }))
        .then_nothing()
        .when(RoomCommand::Message(A::Report {
            message: msg(1),
            by: u("1001"),
            reason: Some("x".repeat(501)),
        }))
        .then_rejected(
            MessageRejection::ReasonTooLong {
                chars: 501,
                max: 500,
            }
            .into(),
        );
}

#[test]
fn replaying_the_history_rebuilds_the_same_room() {
    let s = moderated()
        .when(post(2, "1003", MessageDraft::text("two")))
        .accepted()
        .when(RoomCommand::Close { user: u("1002") })
        .accepted();
    let rebuilt = ChannelRoom::replay(s.history());
    assert_eq!(format!("{rebuilt:?}"), format!("{:?}", s.state()));
}

//! Given/when/then tests of the direct conversation: starting (direct or group), membership,
//! hiding, and the author-only message rules.

use events::ids::{ConversationId, MessageId, UserId};
use events::model::{ConversationEvent as E, ConversationKind};

use super::*;
use crate::room::message::{MessageAction as A, MessageDraft, MessageRejection};
use crate::testing::{Scenario, given};

fn u(name: &str) -> UserId {
    UserId::parse(name).unwrap()
}
fn conv() -> ConversationId {
    ConversationId::parse("00000000-0000-4000-8000-0000000000c1").unwrap()
}
fn msg(n: u32) -> MessageId {
    MessageId::parse(format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}
fn started(kind: ConversationKind, members: &[&str]) -> E {
    E::ConversationStarted {
        conversation: conv(),
        kind,
        started_by: u(members[0]),
        members: members.iter().map(|m| u(m)).collect(),
    }
}
fn posted(n: u32, author: &str, text: &str) -> E {
    E::DirectMessagePosted {
        conversation: conv(),
        message: msg(n),
        author: u(author),
        text: text.into(),
        attachments: vec![],
        quote: None,
        thread: None,
    }
}
fn direct() -> Scenario<Conversation> {
    given([
        started(ConversationKind::Direct, &["1001", "1002"]),
        posted(1, "1001", "hi 👋"),
    ])
}
fn group() -> Scenario<Conversation> {
    given([started(ConversationKind::Group, &["1001", "1002", "1003"])])
}
fn say(n: u32, author: &str, text: &str) -> ConversationCommand {
    ConversationCommand::Message(A::Post {
        message: msg(n),
        author: u(author),
        draft: MessageDraft::text(text),
    })
}

#[test]
fn starting_with_one_person_is_direct_and_sends_the_first_message() {
    given::<Conversation>([])
        .when(ConversationCommand::Start {
            conversation: conv(),
            by: u("1001"),
            with: vec![u("1002"), u("1001")],
            first_message: Some((msg(1), MessageDraft::text("hi 👋"))),
        })
        .then([
            started(ConversationKind::Direct, &["1001", "1002"]),
            posted(1, "1001", "hi 👋"),
        ]);
}

#[test]
fn starting_with_several_people_is_a_group() {
    let s = given::<Conversation>([])
        .when(ConversationCommand::Start {
            conversation: conv(),
            by: u("1001"),
            with: vec![u("1002"), u("1003")],
            first_message: None,
        })
        .then([started(ConversationKind::Group, &["1001", "1002", "1003"])]);
    assert_eq!(s.state().kind(), Some(ConversationKind::Group));
    s.when(ConversationCommand::Start {
        conversation: conv(),
        by: u("1001"),
        with: vec![u("1002")],
        first_message: None,
    })
    .then_rejected(ConversationRejection::AlreadyStarted);
}

#[test]
fn a_conversation_needs_someone_else_and_a_valid_first_message() {
    given::<Conversation>([])
        .when(ConversationCommand::Start {
            conversation: conv(),
            by: u("1001"),
            with: vec![u("1001")],
            first_message: None,
        })
        .then_rejected(ConversationRejection::NobodyElse(u("1001")))
        .when(ConversationCommand::Start {
            conversation: conv(),
            by: u("1001"),
            with: vec![u("1002")],
            first_message: Some((msg(1), MessageDraft::text(""))),
        })
        .then_rejected(MessageRejection::Empty.into())
        .when(say(1, "1001", "hello"))
        .then_rejected(ConversationRejection::NotStarted);
}

#[test]
fn groups_are_capped() {
    let many: Vec<UserId> = (0..MAX_GROUP_MEMBERS)
        .map(|i| u(&format!("u{i}")))
        .collect();
    given::<Conversation>([])
        .when(ConversationCommand::Start {
            conversation: conv(),
            by: u("1001"),
            with: many,
            first_message: None,
        })
        .then_rejected(ConversationRejection::TooManyMembers {
            count: MAX_GROUP_MEMBERS + 1,
            max: MAX_GROUP_MEMBERS,
        });
}

#[test]
fn a_direct_conversation_keeps_its_two_people() {
    direct()
        .when(ConversationCommand::AddMember {
            user: u("1003"),
            by: u("1001"),
        })
        .then_rejected(ConversationRejection::DirectIsFixed)
        .when(ConversationCommand::Leave { user: u("1002") })
        .then_rejected(ConversationRejection::CannotLeaveDirect);
}

#[test]
fn group_members_add_people_and_leave() {
    group()
        .when(ConversationCommand::AddMember {
            user: u("1004"),
            by: u("1002"),
        })
        .then([E::ConversationMemberAdded {
            conversation: conv(),
            user: u("1004"),
            by: u("1002"),
        }])
        .when(ConversationCommand::AddMember {
            user: u("1004"),
            by: u("1002"),
        })
        .then_rejected(ConversationRejection::AlreadyMember(u("1004")))
        .when(ConversationCommand::AddMember {
            user: u("1005"),
            by: u("1009"),
        })
        .then_rejected(ConversationRejection::NotMember(u("1009")))
        .when(ConversationCommand::Leave { user: u("1003") })
        .then([E::ConversationMemberLeft {
            conversation: conv(),
            user: u("1003"),
        }])
        .when(say(1, "1003", "back?"))
        .then_rejected(ConversationRejection::NotMember(u("1003")));
}

#[test]
fn outsiders_cannot_post() {
    direct()
        .when(say(2, "1003", "hi"))
        .then_rejected(ConversationRejection::NotMember(u("1003")));
}

#[test]
fn hiding_is_per_member_and_a_new_message_shows_it_again() {
    let s = direct()
        .when(ConversationCommand::Hide { user: u("1002") })
        .then([E::ConversationHidden {
            conversation: conv(),
            user: u("1002"),
        }])
        .when(ConversationCommand::Hide { user: u("1002") })
        .then_nothing();
    assert!(!s.state().is_visible_to(&u("1002")));
    assert!(s.state().is_visible_to(&u("1001")));
    let s = s.when(say(2, "1001", "ping")).then([
        posted(2, "1001", "ping"),
        E::ConversationShown {
            conversation: conv(),
            user: u("1002"),
        },
    ]);
    assert!(s.state().is_visible_to(&u("1002")));
    s.when(ConversationCommand::Hide { user: u("1001") })
        .accepted()
        .when(ConversationCommand::Show { user: u("1001") })
        .then([E::ConversationShown {
            conversation: conv(),
            user: u("1001"),
        }])
        .when(ConversationCommand::Show { user: u("1001") })
        .then_nothing()
        .when(ConversationCommand::Hide { user: u("1009") })
        .then_rejected(ConversationRejection::NotMember(u("1009")));
}

#[test]
fn only_the_author_edits_or_deletes_and_deleted_messages_stay_deleted() {
    direct()
        .when(ConversationCommand::Message(A::Edit {
            message: msg(1),
            text: "changed".into(),
            by: u("1002"),
        }))
        .then_rejected(
            MessageRejection::NotAuthor {
                message: msg(1),
                user: u("1002"),
            }
            .into(),
        )
        .when(ConversationCommand::Message(A::Edit {
            message: msg(1),
            text: "hi there 👋".into(),
            by: u("1001"),
        }))
        .then([E::DirectMessageEdited {
            conversation: conv(),
            message: msg(1),
            text: "hi there 👋".into(),
            by: u("1001"),
        }])
        .when(ConversationCommand::Message(A::Delete {
            message: msg(1),
            by: u("1002"),
        }))
        .then_rejected(
            MessageRejection::NotAuthor {
                message: msg(1),
                user: u("1002"),
            }
            .into(),
        )
        .when(ConversationCommand::Message(A::Delete {
            message: msg(1),
            by: u("1001"),
        }))
        .then([E::DirectMessageDeleted {
            conversation: conv(),
            message: msg(1),
            by: u("1001"),
        }])
        .when(ConversationCommand::Message(A::Edit {
            message: msg(1),
            text: "again".into(),
            by: u("1001"),
        }))
        .then_rejected(MessageRejection::Deleted(msg(1)).into());
}

#[test]
fn every_message_action_maps_to_its_direct_event() {
    direct()
        .when(ConversationCommand::Message(A::Post {
            message: msg(2),
            author: u("1002"),
            draft: MessageDraft {
                text: "thread reply".into(),
                quote: Some(msg(1)),
                thread: Some(msg(1)),
                ..MessageDraft::default()
            },
        }))
        .then([E::DirectMessagePosted {
            conversation: conv(),
            message: msg(2),
            author: u("1002"),
            text: "thread reply".into(),
            attachments: vec![],
            quote: Some(msg(1)),
            thread: Some(msg(1)),
        }])
        .when(ConversationCommand::Message(A::React {
            message: msg(1),
            user: u("1002"),
            emoji: "❤️".into(),
        }))
        .then([E::DirectReactionAdded {
            conversation: conv(),
            message: msg(1),
            user: u("1002"),
            emoji: "❤️".into(),
        }])
        .when(ConversationCommand::Message(A::Unreact {
            message: msg(1),
            user: u("1002"),
            emoji: "❤️".into(),
        }))
        .then([E::DirectReactionRemoved {
            conversation: conv(),
            message: msg(1),
            user: u("1002"),
            emoji: "❤️".into(),
        }])
        .when(ConversationCommand::Message(A::Follow {
            message: msg(1),
            user: u("1002"),
        }))
        .then([E::DirectMessageFollowed {
            conversation: conv(),
            message: msg(1),
            user: u("1002"),
        }])
        .when(ConversationCommand::Message(A::Unfollow {
            message: msg(1),
            user: u("1002"),
        }))
        .then([E::DirectMessageUnfollowed {
            conversation: conv(),
            message: msg(1),
            user: u("1002"),
        }])
        .when(ConversationCommand::Message(A::Star {
            message: msg(1),
            user: u("1002"),
        }))
        .then([E::DirectMessageStarred {
            conversation: conv(),
            message: msg(1),
            user: u("1002"),
        }])
        .when(ConversationCommand::Message(A::Unstar {
            message: msg(1),
            user: u("1002"),
        }))
        .then([E::DirectMessageUnstarred {
            conversation: conv(),
            message: msg(1),
            user: u("1002"),
        }])
        .when(ConversationCommand::Message(A::Report {
            message: msg(1),
            by: u("1002"),
            reason: Some("rude".into()),
        }))
        .then([E::DirectMessageReported {
            conversation: conv(),
            message: msg(1),
            by: u("1002"),
            reason: Some("rude".into()),
        }]);
}

//! One call on the wire: the task that owns the dialogs of both sides of one call, turns what
//! they hear into call commands, and acts on them from what the call's stream then holds.
//!
//! A session reacts to three sources, one at a time: the state changes of its dialogs (18x, 200,
//! CANCEL, re-INVITE and UPDATE, in-dialog OPTIONS and INFO, a missing ACK), its own inputs (a
//! BYE to record before it is answered, the end of an INVITE transaction it started, its ring-step
//! timers, a wake-up when the call actor recorded something on its own, such as the ring
//! timeout). After each, it folds the call from the log, tells the extensions their part, and
//! runs [`plan`](super::plan) to bring the dialogs in line. It ends once the call has ended and
//! nothing on the wire is left to finish; CANCELs and BYEs it sent complete on their own.
//!
//! Commands go through `Registry::try_execute`; only the bounded mailbox's overflow falls back to
//! waiting, since the steps of a call that exists must all be recorded. The order of each step
//! keeps "acknowledged means durable": ringing, answers and refusals reach the caller only after
//! the command that records them; a BYE is recorded before its 200; a re-INVITE is answered after
//! the hold or resume is. The 487 to a CANCEL is the exception: rsipstack's INVITE transaction
//! sends it as it hears the CANCEL, and the hang-up is recorded right after.

use std::sync::Arc;

use chrono::TimeDelta;
use engine::call::{CallCommand, CallRejection, RingContact};
use engine::runtime::{Execute, ExecuteError, Instance};
use events::StreamId;
use events::ids::{CallId, CorrelationId, LegId, PhoneNumber, TenantId, UserId};
use events::model::{CallOrigin, Direction, HangupCause, LegRole, Party};
use rsipstack::dialog::dialog::{
    DialogState, DialogStateReceiver, DialogStateSender, TerminatedReason, TransactionHandle,
};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{
    Auth, Header, Host, Method, Request, StatusCode, StatusCodeKind, Transport, Uri,
};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;
use tokio::sync::{mpsc, oneshot};

use super::media::{LegMedia, Sdp};
use super::observe::{self, Observer, Told};
use super::plan::{Action, BranchSip, BranchView, CallerSip, plan};
use super::route::{Reach, RingStep, Routed, Router, Then};
use super::view::CallView;
use super::{Admitted, Shared, content_type};
use crate::edge::Reply;

/// What a session is told besides its dialogs' state changes.
#[derive(Debug)]
pub(crate) enum Input {
    /// A BYE arrived in the dialog with this SIP Call-ID; `done` once it is recorded.
    Bye {
        sip_call_id: String,
        done: oneshot::Sender<()>,
    },
    /// An INVITE the engine sent ended its transaction with this final status (`None`: no final
    /// response came, or it could not be sent).
    Finished {
        sip_call_id: String,
        status: Option<u16>,
    },
    /// The call's stream reached `version` (from the live feed).
    Wake { version: u64 },
    /// The ring time of step `n` is up (no-answer forward, follow-me).
    StepTimer(usize),
    /// Click-to-call: the user's phones rang long enough.
    CandidateTimer,
}

/// An INVITE the engine sent: a callee branch, or one of the user's phones of a click-to-call.
struct Outgoing {
    dialog: InviteDialog,
    sip_call_id: String,
    sip: BranchSip,
    media: LegMedia,
}

/// One callee contact being rung, with its leg in the call.
struct Branch {
    leg: LegId,
    /// The ring step it belongs to.
    step: usize,
    out: Outgoing,
}

enum CallerKind {
    /// The caller's INVITE: we are its UAS.
    Incoming {
        dialog: InviteDialog,
        sip_call_id: String,
    },
    /// Click-to-call: the engine rings the user's phones (candidates); the first to answer is
    /// the caller's side, then `target` is rung.
    Originated {
        candidates: Vec<Outgoing>,
        chosen: Option<usize>,
        target: PhoneNumber,
    },
}

struct Caller {
    leg: LegId,
    kind: CallerKind,
    sip: CallerSip,
    media: LegMedia,
}

/// Who the engine says is calling, in the From of the INVITEs it sends.
#[derive(Debug, Clone)]
pub(crate) struct Presented {
    uri: Uri,
    name: Option<String>,
}

impl Presented {
    /// `party` as a SIP identity at `host` (the edge's address).
    fn of(party: &Party, shared: &Shared) -> Presented {
        let user = party
            .extension
            .as_ref()
            .map(|e| e.to_string())
            .or_else(|| party.number.as_ref().map(|n| n.to_string()))
            .unwrap_or_else(|| "anonymous".to_owned());
        let mut uri = shared.local_contact(Transport::Udp).unwrap_or_default();
        uri.params.clear();
        uri.auth = Some(Auth {
            user,
            password: None,
        });
        Presented {
            uri,
            name: party.name.clone(),
        }
    }
}

/// Which side of the call a dialog is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    /// A click-to-call phone of the user that was not (or not yet) chosen.
    Candidate(usize),
    Branch(usize),
}

/// One call's task.
pub(crate) struct Session {
    shared: Arc<Shared>,
    id: CallId,
    correlation: CorrelationId,
    tenant: TenantId,
    instance: Instance,
    view: CallView,
    observer: Observer,
    /// What the extensions were told and may not have recorded yet.
    told: Told,
    caller: Caller,
    branches: Vec<Branch>,
    /// What follows each ring step started so far.
    steps: Vec<Then>,
    inputs: mpsc::UnboundedReceiver<Input>,
    inputs_tx: mpsc::UnboundedSender<Input>,
    states: DialogStateReceiver,
    states_tx: DialogStateSender,
    /// The caller, as the callees see it.
    presented: Presented,
    max_forwards: u32,
    /// The caller's offer, not recorded yet: it goes in one append with the first command
    /// routing makes (the callee's `Ring`, or the `Terminate` of a declined call).
    deferred: Option<CallCommand>,
    /// The status for the caller if recording the offer failed.
    offer_failed: Option<u16>,
}

fn sdp_type() -> Vec<Header> {
    vec![Header::ContentType("application/sdp".into())]
}

fn sip_transport(t: events::model::Transport) -> Transport {
    match t {
        events::model::Transport::Udp => Transport::Udp,
        events::model::Transport::Tcp => Transport::Tcp,
        events::model::Transport::Tls => Transport::Tls,
        events::model::Transport::Ws => Transport::Ws,
        events::model::Transport::Wss => Transport::Wss,
    }
}

impl Session {
    fn new(
        shared: Arc<Shared>,
        tenant: TenantId,
        caller: Caller,
        presented: Presented,
        max_forwards: u32,
        states: (DialogStateSender, DialogStateReceiver),
    ) -> Session {
        let id = CallId::from_uuid(shared.ids.next_uuid());
        let correlation = CorrelationId::from_uuid(shared.ids.next_uuid());
        let instance = Instance::new(StreamId::call(id)).in_tenant(tenant.clone());
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        // A fresh id: the call's actor and its view start empty, without reading the log.
        shared.calls.seed_new(&instance.stream);
        shared.views.track_new(&instance.stream);
        shared.register(&instance.stream, inputs_tx.clone());
        if let CallerKind::Incoming { sip_call_id, .. } = &caller.kind {
            shared.bind_dialog(sip_call_id, &instance.stream);
        }
        Session {
            shared,
            id,
            correlation,
            tenant,
            instance,
            view: CallView::default(),
            observer: Observer::default(),
            told: Told::default(),
            caller,
            branches: Vec::new(),
            steps: Vec::new(),
            inputs,
            inputs_tx,
            states: states.1,
            states_tx: states.0,
            presented,
            max_forwards,
            deferred: None,
            offer_failed: None,
        }
    }

    /// Takes an admitted INVITE: creates its dialog, drives its transaction, and runs the call.
    pub(crate) fn start_incoming(shared: Arc<Shared>, admitted: Admitted, mut tx: Transaction) {
        let (states_tx, states) = shared.dialogs.new_dialog_state_channel();
        let contact = shared.local_contact(admitted.transport);
        let dialog =
            match shared
                .dialogs
                .get_or_create_server_invite(&tx, states_tx.clone(), None, contact)
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(error = %e, "no dialog for an INVITE");
                    crate::spawn(async move {
                        crate::edge::respond(&mut tx, Reply::new(400)).await;
                    });
                    return;
                }
            };
        let sip_call_id = dialog.id().call_id;
        let mut driving = dialog.clone();
        crate::spawn(async move {
            if let Err(e) = driving.handle(&mut tx).await {
                tracing::debug!(error = %e, "the INVITE transaction ended with an error");
            }
        });
        let mut media = LegMedia::default();
        media.received(admitted.offer.clone());
        let caller = Caller {
            leg: LegId::from_uuid(shared.ids.next_uuid()),
            kind: CallerKind::Incoming {
                dialog,
                sip_call_id,
            },
            sip: CallerSip::Offered,
            media,
        };
        let presented = Presented::of(&admitted.caller, &shared);
        let session = Session::new(
            shared,
            admitted.tenant.clone(),
            caller,
            presented,
            admitted.max_forwards,
            (states_tx, states),
        );
        crate::spawn(session.run_incoming(admitted));
    }

    async fn run_incoming(mut self, admitted: Admitted) {
        let offer = CallCommand::Offer {
            call: self.id,
            caller_leg: self.caller.leg,
            direction: Direction::Internal,
            caller: admitted.caller,
            callee: admitted.callee,
            dialled: admitted.dialled.clone(),
            origin: CallOrigin::Device,
            caller_contact: admitted.caller_contact,
            trunk: None,
            requested_by: None,
        };
        self.deferred = Some(offer);
        self.route_and_ring(&admitted.dialled).await;
        if self.deferred.take().is_some() {
            // Not even the offer could be recorded.
            let status = self.offer_failed.unwrap_or(503);
            if let CallerKind::Incoming { dialog, .. } = &self.caller.kind {
                let _ = dialog.reject(Some(StatusCode::from(status)), None);
            }
            self.end();
            return;
        }
        self.serve().await;
    }

    /// Click-to-call: records the call, rings every registered phone of the user, and runs the
    /// call in the background. Returns the call's id once it is recorded.
    pub(crate) async fn start_originated(
        shared: Arc<Shared>,
        tenant: TenantId,
        user: Party,
        phones: Vec<Reach>,
        target: (Party, PhoneNumber),
        requested_by: Option<UserId>,
    ) -> Result<CallId, ExecuteError<CallRejection>> {
        let (party, number) = target;
        let caller = Caller {
            leg: LegId::from_uuid(shared.ids.next_uuid()),
            kind: CallerKind::Originated {
                candidates: Vec::new(),
                chosen: None,
                target: number.clone(),
            },
            sip: CallerSip::Inviting,
            media: LegMedia::default(),
        };
        let presented = Presented::of(&user, &shared);
        let to_user = Presented::of(&party, &shared);
        let states = shared.dialogs.new_dialog_state_channel();
        let mut session = Session::new(shared, tenant, caller, presented, 70, states);
        let offer = CallCommand::Offer {
            call: session.id,
            caller_leg: session.caller.leg,
            direction: Direction::Internal,
            caller: user,
            callee: party,
            dialled: number,
            origin: CallOrigin::ClickToCall,
            caller_contact: None,
            trunk: None,
            requested_by,
        };
        if let Err(e) = session.execute(offer).await {
            session.end();
            return Err(e);
        }
        let address = session
            .shared
            .local_contact(Transport::Udp)
            .and_then(|u| match u.host_with_port.host {
                Host::IpAddr(ip) => Some(ip),
                Host::Domain(_) => None,
            })
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        for phone in &phones {
            let (high, _) = session.shared.ids.next_uuid().as_u64_pair();
            let media = LegMedia::originated(high >> 1, address);
            let placeholder = media.placeholder();
            match session.invite(phone, &to_user, media, &placeholder) {
                Ok(out) => {
                    if let CallerKind::Originated { candidates, .. } = &mut session.caller.kind {
                        candidates.push(out);
                    }
                }
                Err(e) => {
                    tracing::warn!(uri = %phone.uri, error = %e, "cannot ring the user's phone")
                }
            }
        }
        let none = matches!(&session.caller.kind,
            CallerKind::Originated { candidates, .. } if candidates.is_empty());
        if none {
            session.caller.sip = CallerSip::Finished;
            let _ = session
                .execute(CallCommand::Terminate {
                    cause: HangupCause::TemporaryFailure,
                    sip_status: Some(503),
                })
                .await;
        } else {
            session.after(
                session.shared.config.click_to_call_ring,
                Input::CandidateTimer,
            );
        }
        let id = session.id;
        crate::spawn(session.serve());
        Ok(id)
    }

    /// The loop: one dialog state change or input at a time, until the call is over.
    async fn serve(mut self) {
        loop {
            self.reconcile().await;
            if self.finished() {
                break;
            }
            // Dialog states first: rsipstack reports a dialog's state before the INVITE task
            // that produced it ends, so its final outcome never overtakes its 200.
            tokio::select! {
                biased;
                Some(state) = self.states.recv() => self.on_dialog(state).await,
                Some(input) = self.inputs.recv() => self.on_input(input).await,
                else => break,
            }
        }
        // The call counts as in progress until its extensions show it over.
        self.told.all().await;
        self.end();
    }

    /// Over: the call ended and nothing on the wire is left to finish.
    fn finished(&self) -> bool {
        let open = |sip: BranchSip| matches!(sip, BranchSip::Inviting | BranchSip::Answered);
        let candidates_open = match &self.caller.kind {
            CallerKind::Originated { candidates, .. } => candidates.iter().any(|c| open(c.sip)),
            CallerKind::Incoming { .. } => false,
        };
        self.view.state.is_ended()
            && self.caller.sip == CallerSip::Finished
            && !self.branches.iter().any(|b| open(b.out.sip))
            && !candidates_open
    }

    /// Leaves the tables: later requests in these dialogs get 481.
    fn end(&self) {
        let mut ids = Vec::new();
        let mut dialogs = Vec::new();
        match &self.caller.kind {
            CallerKind::Incoming {
                dialog,
                sip_call_id,
            } => {
                ids.push(sip_call_id.clone());
                dialogs.push(dialog.id());
            }
            CallerKind::Originated { candidates, .. } => {
                for c in candidates {
                    ids.push(c.sip_call_id.clone());
                    dialogs.push(c.dialog.id());
                }
            }
        }
        for b in &self.branches {
            ids.push(b.out.sip_call_id.clone());
            dialogs.push(b.out.dialog.id());
        }
        self.shared.forget(&self.instance.stream, &ids);
        for d in dialogs {
            self.shared.dialogs.remove_dialog(&d);
        }
        tracing::debug!(call = %self.id, "call session ended");
    }

    // ---- The call ----

    /// Runs one command, then folds the stream back and tells the extensions.
    async fn execute(&mut self, command: CallCommand) -> Result<(), ExecuteError<CallRejection>> {
        let deferred = self.deferred.take();
        let build = |c: &CallCommand| {
            match &deferred {
                Some(first) => Execute::new(first.clone()).then(c.clone()),
                None => Execute::new(c.clone()),
            }
            .correlated(self.correlation)
        };
        let calls = &self.shared.calls;
        let mut outcome = calls.try_execute(&self.instance, build(&command)).await;
        if matches!(outcome, Err(ExecuteError::Overloaded { .. })) {
            outcome = calls.execute(&self.instance, build(&command)).await;
        }
        if let (Some(offer), Err(e)) = (deferred, &outcome) {
            // The offer goes with the next command instead.
            self.offer_failed = Some(match e {
                ExecuteError::Rejected(_) | ExecuteError::Panicked { .. } => 500,
                _ => 503,
            });
            self.deferred = Some(offer);
        }
        let at_least = match &outcome {
            Ok(executed) => executed.version,
            Err(ExecuteError::Rejected(_)) => self.view.version,
            // Whatever the actor did, the log knows.
            Err(_) => u64::MAX,
        };
        match &outcome {
            Ok(_) => {}
            Err(ExecuteError::Rejected(r)) => {
                tracing::debug!(call = %self.id, rejection = %r, ?command, "call command refused")
            }
            Err(e) => tracing::warn!(call = %self.id, error = %e, ?command, "call command failed"),
        }
        self.refresh(at_least).await;
        outcome.map(|_| ())
    }

    /// Takes the call as of at least version `at_least` (from the call actors' feed, else read
    /// back from the log) and tells each extension whose part changed.
    async fn refresh(&mut self, at_least: u64) {
        match self
            .shared
            .views
            .current(&self.instance.stream, at_least)
            .await
        {
            Ok(view) => self.view = view,
            Err(e) => {
                tracing::error!(call = %self.id, error = %e, "cannot read the call back");
                return;
            }
        }
        let changes = self.observer.changes(&self.view.state);
        if !changes.is_empty() {
            observe::report(
                &self.shared.reports,
                &self.shared.extensions,
                &self.tenant,
                self.id,
                self.correlation,
                changes,
                &mut self.told,
            );
        }
    }

    fn router(&self) -> Router<'_> {
        Router {
            bindings: &self.shared.bindings,
            tenant: &self.tenant,
            config: &self.shared.config,
            now: self.shared.clock.now(),
        }
    }

    /// Routes the call to `number` (the callee, or click-to-call's target) and rings, or ends
    /// the call as routing declines.
    async fn route_and_ring(&mut self, number: &PhoneNumber) {
        let routed = self.router().route(number, LegRole::Callee).await;
        let (cause, status) = match routed {
            Ok(Routed::Ring(step)) => {
                if self.ring(step).await > 0 {
                    return;
                }
                (HangupCause::TemporaryFailure, 503)
            }
            Ok(Routed::Decline { cause, status }) => (cause, status),
            Err(e) => {
                tracing::error!(call = %self.id, error = %e, "cannot route the call");
                (HangupCause::TemporaryFailure, 503)
            }
        };
        let _ = self
            .execute(CallCommand::Terminate {
                cause,
                sip_status: Some(status),
            })
            .await;
    }

    /// Starts a ring step: one `Ring` per extension, then one INVITE per contact, and the step's
    /// timer when something follows it. Returns how many legs were rung.
    async fn ring(&mut self, step: RingStep) -> usize {
        let n = self.steps.len();
        let grace = u64::try_from(self.shared.config.forward_grace.as_millis()).unwrap_or(0);
        let timeout =
            TimeDelta::milliseconds(i64::try_from(step.ring_timeout_ms(grace)).unwrap_or(i64::MAX));
        self.steps.push(step.then.clone());
        let Some(offer) = self.caller.media.remote.clone() else {
            return 0;
        };
        let mut rung = 0;
        for group in step.groups {
            let targets: Vec<(LegId, Reach)> = group
                .contacts
                .into_iter()
                .map(|r| (LegId::from_uuid(self.shared.ids.next_uuid()), r))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let command = CallCommand::Ring {
                parent: self.caller.leg,
                callee: group.callee,
                role: group.role,
                contacts: targets
                    .iter()
                    .map(|(leg, r)| RingContact {
                        leg: *leg,
                        contact: Some(r.contact),
                    })
                    .collect(),
                ring_timeout: timeout,
                voicemail: None,
            };
            if self.execute(command).await.is_err() {
                continue;
            }
            rung += targets.len();
            let presented = self.presented.clone();
            for (leg, reach) in targets {
                match self.invite(&reach, &presented, LegMedia::default(), &offer) {
                    Ok(out) => self.branches.push(Branch { leg, step: n, out }),
                    Err(e) => {
                        tracing::warn!(call = %self.id, uri = %reach.uri, error = %e,
                            "cannot send an INVITE to a contact");
                        let _ = self.execute(CallCommand::Reject { leg, status: 503 }).await;
                    }
                }
            }
        }
        if rung > 0 && step.then != Then::End {
            self.after(
                std::time::Duration::from_millis(step.ring_ms),
                Input::StepTimer(n),
            );
        }
        rung
    }

    /// Sends an INVITE to `reach` offering `offer` (presented to it through `media`), as
    /// `presented`. Its final outcome comes back as [`Input::Finished`].
    fn invite(
        &self,
        reach: &Reach,
        presented: &Presented,
        mut media: LegMedia,
        offer: &Sdp,
    ) -> Result<Outgoing, Box<rsipstack::Error>> {
        let callee = Uri::try_from(reach.uri.as_str()).map_err(rsipstack::Error::from)?;
        let transport = sip_transport(reach.transport);
        // Over a connection the phone's own flow is the way back to it (its REGISTER came in
        // on it); over UDP, the contact it registered.
        let destination = match (transport, reach.source.parse::<std::net::SocketAddr>()) {
            (Transport::Udp, _) | (_, Err(_)) => {
                let mut d = SipAddr::try_from(&callee)?;
                d.r#type.get_or_insert(transport);
                d
            }
            (_, Ok(source)) => SipAddr {
                r#type: Some(transport),
                addr: source.into(),
            },
        };
        let body = media.present(offer);
        let option = InviteOption {
            caller: presented.uri.clone(),
            caller_display_name: presented.name.clone(),
            callee,
            destination: Some(destination),
            content_type: Some("application/sdp".to_owned()),
            offer: Some(body.bytes().to_vec()),
            contact: self.shared.local_contact(transport).unwrap_or_default(),
            headers: Some(vec![Header::MaxForwards(self.max_forwards.into())]),
            ..Default::default()
        };
        let (dialog, done) = self
            .shared
            .dialogs
            .do_invite_async(option, self.states_tx.clone())?;
        let sip_call_id = dialog.id().call_id;
        self.shared.bind_dialog(&sip_call_id, &self.instance.stream);
        let inputs = self.inputs_tx.clone();
        let id = sip_call_id.clone();
        crate::spawn(async move {
            let status = match done.await {
                Ok(Ok((_, Some(response)))) => Some(u16::from(response.status_code)),
                _ => None,
            };
            let _ = inputs.send(Input::Finished {
                sip_call_id: id,
                status,
            });
        });
        Ok(Outgoing {
            dialog,
            sip_call_id,
            sip: BranchSip::Inviting,
            media,
        })
    }

    /// Sends `input` to this session after `delay`.
    fn after(&self, delay: std::time::Duration, input: Input) {
        let inputs = self.inputs_tx.clone();
        crate::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = inputs.send(input);
        });
    }

    // ---- The wire, brought in line with the call ----

    async fn reconcile(&mut self) {
        // Each action moves a dialog forward; a few rounds cover actions that record something
        // (a failed bridge hangs up).
        for _ in 0..4 {
            let views: Vec<BranchView> = self
                .branches
                .iter()
                .map(|b| BranchView {
                    leg: b.leg,
                    sip: b.out.sip,
                    has_sdp: b.out.media.remote.is_some(),
                })
                .collect();
            let actions = plan(&self.view.state, self.caller.leg, self.caller.sip, &views);
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.apply(action).await;
            }
        }
    }

    async fn apply(&mut self, action: Action) {
        match action {
            Action::Ringing => {
                if let CallerKind::Incoming { dialog, .. } = &self.caller.kind
                    && let Err(e) = dialog.ringing(None, None)
                {
                    tracing::debug!(error = %e, "cannot send 180");
                }
                self.caller.sip = CallerSip::Ringing;
            }
            Action::EarlyMedia(n) => {
                let Some(remote) = self.branches[n].out.media.remote.clone() else {
                    return;
                };
                let sdp = self.caller.media.present(&remote);
                if let CallerKind::Incoming { dialog, .. } = &self.caller.kind
                    && let Err(e) = dialog.ringing(Some(sdp_type()), Some(sdp.bytes().to_vec()))
                {
                    tracing::debug!(error = %e, "cannot send 183");
                }
                self.caller.sip = CallerSip::EarlyMedia;
            }
            Action::Accept(n) => {
                let remote = self.branches[n].out.media.remote.clone();
                let body = remote.map(|r| self.caller.media.present(&r).bytes().to_vec());
                if let CallerKind::Incoming { dialog, .. } = &self.caller.kind
                    && let Err(e) = dialog.accept(Some(sdp_type()), body)
                {
                    tracing::debug!(error = %e, "cannot send 200");
                }
                self.caller.sip = CallerSip::Accepted;
            }
            Action::Bridge(n) => self.bridge(n).await,
            Action::RejectCaller(status) => {
                if let CallerKind::Incoming { dialog, .. } = &self.caller.kind
                    && let Err(e) = dialog.reject(Some(StatusCode::from(status)), None)
                {
                    tracing::debug!(error = %e, status, "cannot refuse the caller");
                }
                self.caller.sip = CallerSip::Finished;
            }
            Action::ByeCaller => {
                if let Some(dialog) = self.caller_dialog() {
                    bye(dialog);
                }
                if let CallerKind::Originated {
                    candidates,
                    chosen: Some(c),
                    ..
                } = &mut self.caller.kind
                {
                    candidates[*c].sip = BranchSip::Finished;
                }
                self.caller.sip = CallerSip::Finished;
            }
            Action::CancelCandidates => {
                if let CallerKind::Originated { candidates, .. } = &mut self.caller.kind {
                    for c in candidates.iter_mut() {
                        cancel_if_inviting(c);
                    }
                }
                self.caller.sip = CallerSip::Finished;
            }
            Action::Cancel(n) => cancel_if_inviting(&mut self.branches[n].out),
            Action::Bye(n) => {
                let out = &mut self.branches[n].out;
                bye(out.dialog.clone());
                out.sip = BranchSip::Finished;
            }
        }
    }

    /// Click-to-call: gives the user's phone the answering party's media (re-INVITE), and the
    /// answering party the phone's new answer if its media moved.
    async fn bridge(&mut self, n: usize) {
        let Some(remote) = self.branches[n].out.media.remote.clone() else {
            return;
        };
        let Some(dialog) = self.caller_dialog() else {
            return;
        };
        self.caller.sip = CallerSip::Bridged;
        let offer = self.caller.media.present(&remote);
        let response = dialog
            .reinvite(Some(sdp_type()), Some(offer.bytes().to_vec()))
            .await;
        let failed = match response {
            Ok(Some(r)) if r.status_code.kind() == StatusCodeKind::Successful => {
                if let Some(answer) = Sdp::from_body(&r.body, content_type(&r).as_deref()) {
                    let before = self.caller.media.remote.as_ref().map(Sdp::media_target);
                    let moved = before != Some(answer.media_target());
                    self.caller.media.received(answer.clone());
                    if moved {
                        let out = &mut self.branches[n].out;
                        let again = out.media.present(&answer);
                        let peer = out.dialog.clone();
                        crate::spawn(async move {
                            if let Err(e) = peer
                                .reinvite(Some(sdp_type()), Some(again.bytes().to_vec()))
                                .await
                            {
                                tracing::debug!(error = %e, "cannot update the answering party");
                            }
                        });
                    }
                }
                None
            }
            Ok(Some(r)) => Some(HangupCause::from_sip_status(u16::from(r.status_code))),
            Ok(None) | Err(_) => Some(HangupCause::RecoveryOnTimerExpiry),
        };
        if let Some(cause) = failed {
            tracing::warn!(call = %self.id, ?cause, "the user's phone refused the bridge");
            let leg = self.caller.leg;
            let _ = self
                .execute(CallCommand::HangUp {
                    leg,
                    cause: Some(cause),
                })
                .await;
        }
    }

    /// The dialog of the caller's side: the caller's INVITE, or click-to-call's chosen phone.
    fn caller_dialog(&self) -> Option<InviteDialog> {
        match &self.caller.kind {
            CallerKind::Incoming { dialog, .. } => Some(dialog.clone()),
            CallerKind::Originated {
                candidates,
                chosen: Some(c),
                ..
            } => Some(candidates[*c].dialog.clone()),
            CallerKind::Originated { .. } => None,
        }
    }

    fn side_of(&self, sip_call_id: &str) -> Option<Side> {
        match &self.caller.kind {
            CallerKind::Incoming {
                sip_call_id: id, ..
            } if id == sip_call_id => {
                return Some(Side::Caller);
            }
            CallerKind::Originated {
                candidates, chosen, ..
            } => {
                if let Some(c) = candidates.iter().position(|c| c.sip_call_id == sip_call_id) {
                    return Some(if *chosen == Some(c) {
                        Side::Caller
                    } else {
                        Side::Candidate(c)
                    });
                }
            }
            CallerKind::Incoming { .. } => {}
        }
        self.branches
            .iter()
            .position(|b| b.out.sip_call_id == sip_call_id)
            .map(Side::Branch)
    }

    // ---- What the dialogs say ----

    async fn on_dialog(&mut self, state: DialogState) {
        let Some(side) = self.side_of(&state.id().call_id) else {
            return;
        };
        match (state, side) {
            (DialogState::Early(_, response), Side::Branch(n)) => {
                let b = &mut self.branches[n];
                if b.out.sip != BranchSip::Inviting {
                    return;
                }
                let leg = b.leg;
                let code = u16::from(response.status_code.clone());
                let sdp = Sdp::from_body(&response.body, content_type(&response).as_deref());
                let command = match (code, sdp) {
                    (183, Some(sdp)) => {
                        b.out.media.received(sdp);
                        CallCommand::EarlyMedia { leg }
                    }
                    (180, _) => CallCommand::Ringing { leg },
                    _ => return,
                };
                let _ = self.execute(command).await;
            }
            (DialogState::Confirmed(_, response), Side::Branch(n)) => {
                let b = &mut self.branches[n];
                if b.out.sip != BranchSip::Inviting {
                    return;
                }
                b.out.sip = BranchSip::Answered;
                if let Some(sdp) =
                    Sdp::from_body(&response.body, content_type(&response).as_deref())
                {
                    b.out.media.received(sdp);
                }
                let leg = b.leg;
                let _ = self.execute(CallCommand::Answer { leg }).await;
            }
            (DialogState::Confirmed(_, response), Side::Candidate(c)) => {
                self.user_answered(c, &response).await;
            }
            (DialogState::Updated(_, request, handle), side) => {
                if matches!(request.method, Method::Invite | Method::Update) {
                    self.on_offer(side, request, handle).await;
                } else {
                    reply(&handle, StatusCode::OK, None).await;
                }
            }
            (
                DialogState::Info(_, _, handle)
                | DialogState::Options(_, _, handle)
                | DialogState::Notify(_, _, handle)
                | DialogState::Message(_, _, handle),
                _,
            ) => reply(&handle, StatusCode::OK, None).await,
            (DialogState::Refer(_, _, handle), _) => {
                reply(&handle, StatusCode::NotImplemented, None).await;
            }
            (DialogState::Terminated(_, reason), Side::Caller) => {
                let cause = match reason {
                    TerminatedReason::UacCancel | TerminatedReason::UacBye => None,
                    TerminatedReason::UasBye if self.is_originated() => None,
                    TerminatedReason::Timeout => Some(HangupCause::RecoveryOnTimerExpiry),
                    _ => return,
                };
                if self.caller.sip == CallerSip::Finished {
                    return;
                }
                self.caller.sip = CallerSip::Finished;
                self.finish_chosen();
                let leg = self.caller.leg;
                let _ = self.execute(CallCommand::HangUp { leg, cause }).await;
            }
            (DialogState::Terminated(_, TerminatedReason::UasBye), Side::Branch(n)) => {
                let b = &mut self.branches[n];
                if b.out.sip == BranchSip::Answered {
                    b.out.sip = BranchSip::Finished;
                    let leg = b.leg;
                    let _ = self.execute(CallCommand::HangUp { leg, cause: None }).await;
                }
            }
            _ => {}
        }
    }

    fn is_originated(&self) -> bool {
        matches!(self.caller.kind, CallerKind::Originated { .. })
    }

    fn finish_chosen(&mut self) {
        if let CallerKind::Originated {
            candidates,
            chosen: Some(c),
            ..
        } = &mut self.caller.kind
        {
            candidates[*c].sip = BranchSip::Finished;
        }
    }

    /// Click-to-call: a phone of the user answered. The first one is the caller's side; the
    /// others are cancelled (or hung up, if they answered too); then the target is rung.
    async fn user_answered(&mut self, c: usize, response: &rsipstack::sip::Response) {
        let CallerKind::Originated {
            candidates,
            chosen,
            target,
        } = &mut self.caller.kind
        else {
            return;
        };
        if candidates[c].sip != BranchSip::Inviting {
            return;
        }
        if chosen.is_some() || self.caller.sip != CallerSip::Inviting {
            candidates[c].sip = BranchSip::Finished;
            bye(candidates[c].dialog.clone());
            return;
        }
        candidates[c].sip = BranchSip::Answered;
        if let Some(sdp) = Sdp::from_body(&response.body, content_type(response).as_deref()) {
            candidates[c].media.received(sdp);
        }
        *chosen = Some(c);
        for (i, other) in candidates.iter_mut().enumerate() {
            if i != c {
                cancel_if_inviting(other);
            }
        }
        self.caller.media = candidates[c].media.clone();
        self.caller.sip = CallerSip::Answered;
        let target = target.clone();
        self.route_and_ring(&target).await;
    }

    /// A re-INVITE or UPDATE from one side: relayed to the other side, recorded as hold or
    /// resume by its direction, and answered with the other side's answer.
    async fn on_offer(&mut self, side: Side, request: Request, handle: TransactionHandle) {
        let offer = Sdp::from_body(&request.body, content_type(&request).as_deref());
        let (leg, peer) = match side {
            Side::Caller => (self.caller.leg, self.answered_branch().map(Side::Branch)),
            Side::Branch(n) => (
                self.branches[n].leg,
                self.caller_on_the_wire().then_some(Side::Caller),
            ),
            Side::Candidate(_) => {
                reply(&handle, StatusCode::RequestPending, None).await;
                return;
            }
        };
        let Some(offer) = offer else {
            // A refresh without an offer: the description this side has from us stands.
            let body = self.media_mut(side).local.clone();
            reply(&handle, StatusCode::OK, body).await;
            return;
        };
        let (Some(peer), Some(peer_dialog)) = (peer, peer.and_then(|p| self.dialog_of(p))) else {
            reply(&handle, StatusCode::RequestPending, None).await;
            return;
        };
        self.media_mut(side).received(offer.clone());
        let relayed = self.media_mut(peer).present(&offer);
        let body = Some(relayed.bytes().to_vec());
        let response = if request.method == Method::Update {
            peer_dialog.update(Some(sdp_type()), body).await
        } else {
            peer_dialog.reinvite(Some(sdp_type()), body).await
        };
        match response {
            Ok(Some(r)) if r.status_code.kind() == StatusCodeKind::Successful => {
                let answer = Sdp::from_body(&r.body, content_type(&r).as_deref());
                if let Some(a) = &answer {
                    self.media_mut(peer).received(a.clone());
                }
                let body = match answer {
                    Some(a) => Some(self.media_mut(side).present(&a)),
                    None => self.media_mut(side).local.clone(),
                };
                let answered = self
                    .view
                    .state
                    .leg(leg)
                    .is_some_and(|l| l.answered_at.is_some() && l.ended.is_none());
                if answered {
                    let command = if offer.direction().holds() {
                        CallCommand::Hold { leg }
                    } else {
                        CallCommand::Resume { leg }
                    };
                    let _ = self.execute(command).await;
                }
                reply(&handle, StatusCode::OK, body).await;
            }
            Ok(Some(r)) => reply(&handle, r.status_code, None).await,
            Ok(None) | Err(_) => reply(&handle, StatusCode::ServerInternalError, None).await,
        }
    }

    /// The branch whose answer is bridged to the caller.
    fn answered_branch(&self) -> Option<usize> {
        self.branches
            .iter()
            .position(|b| b.out.sip == BranchSip::Answered)
    }

    /// Whether the caller's side has a confirmed dialog to relay to.
    fn caller_on_the_wire(&self) -> bool {
        matches!(
            self.caller.sip,
            CallerSip::Accepted | CallerSip::Answered | CallerSip::Bridged
        )
    }

    fn media_mut(&mut self, side: Side) -> &mut LegMedia {
        match side {
            Side::Caller => &mut self.caller.media,
            Side::Branch(n) => &mut self.branches[n].out.media,
            Side::Candidate(c) => match &mut self.caller.kind {
                CallerKind::Originated { candidates, .. } => &mut candidates[c].media,
                CallerKind::Incoming { .. } => &mut self.caller.media,
            },
        }
    }

    fn dialog_of(&self, side: Side) -> Option<InviteDialog> {
        match side {
            Side::Caller => self.caller_dialog(),
            Side::Branch(n) => Some(self.branches[n].out.dialog.clone()),
            Side::Candidate(c) => match &self.caller.kind {
                CallerKind::Originated { candidates, .. } => Some(candidates[c].dialog.clone()),
                CallerKind::Incoming { .. } => None,
            },
        }
    }

    // ---- The session's own inputs ----

    async fn on_input(&mut self, input: Input) {
        match input {
            Input::Bye { sip_call_id, done } => {
                self.on_bye(&sip_call_id).await;
                let _ = done.send(());
            }
            Input::Finished {
                sip_call_id,
                status,
            } => self.on_finished(&sip_call_id, status).await,
            Input::Wake { version } => {
                if version > self.view.version {
                    self.refresh(version).await;
                }
            }
            Input::StepTimer(n) => self.on_step_timer(n).await,
            Input::CandidateTimer => {
                if self.caller.sip == CallerSip::Inviting {
                    if let CallerKind::Originated { candidates, .. } = &mut self.caller.kind {
                        candidates.iter_mut().for_each(cancel_if_inviting);
                    }
                    self.caller.sip = CallerSip::Finished;
                    let _ = self
                        .execute(CallCommand::Terminate {
                            cause: HangupCause::NoAnswer,
                            sip_status: Some(480),
                        })
                        .await;
                }
            }
        }
    }

    async fn on_bye(&mut self, sip_call_id: &str) {
        match self.side_of(sip_call_id) {
            Some(Side::Caller) => {
                if self.caller.sip == CallerSip::Finished {
                    return;
                }
                self.caller.sip = CallerSip::Finished;
                self.finish_chosen();
                let leg = self.caller.leg;
                let _ = self.execute(CallCommand::HangUp { leg, cause: None }).await;
            }
            Some(Side::Branch(n)) => {
                let b = &mut self.branches[n];
                if b.out.sip != BranchSip::Answered {
                    return;
                }
                b.out.sip = BranchSip::Finished;
                let leg = b.leg;
                let _ = self.execute(CallCommand::HangUp { leg, cause: None }).await;
            }
            Some(Side::Candidate(c)) => {
                if let CallerKind::Originated { candidates, .. } = &mut self.caller.kind {
                    candidates[c].sip = BranchSip::Finished;
                }
            }
            None => {}
        }
    }

    /// An INVITE the engine sent got its final response (or none).
    async fn on_finished(&mut self, sip_call_id: &str, status: Option<u16>) {
        match self.side_of(sip_call_id) {
            Some(Side::Branch(n)) => {
                let b = &mut self.branches[n];
                let status = match (status, b.out.sip) {
                    // Answered after our CANCEL: rsipstack hung it up.
                    (Some(200..=299), BranchSip::Cancelling) => 487,
                    // Otherwise the answer is handled as the dialog confirms.
                    (Some(200..=299), _) => return,
                    (None, BranchSip::Cancelling) => 487,
                    (None, _) => 408,
                    // A redirect is not followed: the contact cannot be reached this way.
                    (Some(s), _) if s < 400 => 480,
                    (Some(s), _) => s.min(699),
                };
                if !matches!(b.out.sip, BranchSip::Inviting | BranchSip::Cancelling) {
                    return;
                }
                b.out.sip = BranchSip::Finished;
                let leg = b.leg;
                let _ = self.execute(CallCommand::Reject { leg, status }).await;
            }
            Some(Side::Candidate(c)) => {
                let CallerKind::Originated {
                    candidates, chosen, ..
                } = &mut self.caller.kind
                else {
                    return;
                };
                if !matches!(
                    candidates[c].sip,
                    BranchSip::Inviting | BranchSip::Cancelling
                ) {
                    return;
                }
                candidates[c].sip = BranchSip::Finished;
                let all_failed =
                    chosen.is_none() && candidates.iter().all(|c| c.sip == BranchSip::Finished);
                if all_failed && self.caller.sip == CallerSip::Inviting {
                    self.caller.sip = CallerSip::Finished;
                    let (cause, status) = match status.filter(|s| *s >= 300) {
                        Some(s) => (HangupCause::from_sip_status(s), s.min(699)),
                        None => (HangupCause::NoAnswer, 480),
                    };
                    let _ = self
                        .execute(CallCommand::Terminate {
                            cause,
                            sip_status: Some(status),
                        })
                        .await;
                }
            }
            Some(Side::Caller) | None => {}
        }
    }

    /// The ring time of step `n` is up: the no-answer forward rings its target (and the step's
    /// contacts are cancelled), follow-me rings its numbers too.
    async fn on_step_timer(&mut self, n: usize) {
        let Some(then) = self.steps.get(n).cloned() else {
            return;
        };
        let call = &self.view.state;
        if call.is_ended()
            || call
                .legs()
                .iter()
                .any(|l| l.answered_at.is_some() && l.role != LegRole::Caller)
        {
            return;
        }
        match then {
            Then::End => {}
            Then::Forward(to) => match self.router().route(&to, LegRole::Forward).await {
                Ok(Routed::Ring(next)) => {
                    let ringing: Vec<usize> = (0..self.branches.len())
                        .filter(|i| {
                            self.branches[*i].step == n
                                && self.branches[*i].out.sip == BranchSip::Inviting
                        })
                        .collect();
                    if self.ring(next).await > 0 {
                        for i in ringing {
                            cancel_if_inviting(&mut self.branches[i].out);
                        }
                    }
                }
                Ok(Routed::Decline { status, .. }) => {
                    tracing::debug!(call = %self.id, %to, status,
                        "the no-answer forward cannot ring; the call rings out");
                }
                Err(e) => tracing::error!(call = %self.id, error = %e, "cannot route a forward"),
            },
            Then::FollowMe { numbers, ring_ms } => match self.router().groups_for(&numbers).await {
                Ok(groups) if !groups.is_empty() => {
                    self.ring(RingStep {
                        groups,
                        ring_ms,
                        then: Then::End,
                    })
                    .await;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(call = %self.id, error = %e, "cannot route follow-me"),
            },
        }
    }
}

/// CANCELs an INVITE still ringing (rsipstack defers it until a provisional response arrived).
fn cancel_if_inviting(out: &mut Outgoing) {
    if out.sip != BranchSip::Inviting {
        return;
    }
    out.sip = BranchSip::Cancelling;
    let dialog = out.dialog.clone();
    crate::spawn(async move {
        if let Err(e) = dialog.cancel().await {
            tracing::debug!(error = %e, "CANCEL failed");
        }
    });
}

fn bye(dialog: InviteDialog) {
    crate::spawn(async move {
        if let Err(e) = dialog.bye().await {
            tracing::debug!(error = %e, "BYE failed");
        }
    });
}

async fn reply(handle: &TransactionHandle, status: StatusCode, body: Option<Sdp>) {
    let headers = body.as_ref().map(|_| sdp_type());
    if let Err(e) = handle
        .respond(status, headers, body.map(|b| b.bytes().to_vec()))
        .await
    {
        tracing::debug!(error = %e, "cannot answer an in-dialog request");
    }
}

//! AWS's code mail to a console take-over where no rule reads its code
//! ([`code_came_unread`]), and every code mail after the first
//! (`later_code`): the engineer may ask AWS for a new code (the console's
//! resend, or the change started again), and AWS honours only its latest.
//! Until the change is confirmed ([`Rotation::hears_a_later_code`]), a later
//! code mail's code replaces the one held, or makes it stale where no rule
//! reads it; the same mail again, an older one, or one that cannot be
//! ordered changes nothing held. Mails are told apart by `Message-ID`, then
//! ordered by the receiving server's stamp (`Arrival`).

use crate::console::{await_change_confirmation, save_evidence};
use crate::model::{Mode, Phase, Rotation, Stage, VaultItem};
use crate::ports::{LifecyclePorts, LifecycleResult, Vault};
use crate::steps::{
    HANDED_OVER, Handover, OLDER_NOT_KEPT, SYSTEM_ACTOR, record_once_for_mail, refused,
    rotation_of, save_handover,
};
use rootmail_domain::{Handoff, Kind, UnreadSecret};

/// AWS's code mail `unread` reached the rotation's address and passed every
/// check a code's handoff makes, but no rule read one code in it. A console
/// take-over waiting for it goes on with nothing vaulted: the engineer reads
/// the code in the original mail, enters it in the console, and the rotation
/// waits for the change's confirmation as after
/// [`read_code`](crate::console::read_code). One that heard
/// a code mail before ([`Rotation::hears_a_later_code`]) does the same for a
/// later mail: the code it held is stale. `false`: nothing here goes on
/// without the code (a member take-over waits for it typed,
/// `steps::enter_root_email_code`; a redelivered or older mail changes
/// nothing). Where a rule reads the code, this is never reached: the code is
/// handed over. Before, a console take-over whose code no rule read waited
/// until its day ran out.
pub async fn code_came_unread<P: LifecyclePorts>(
    p: &P,
    unread: &UnreadSecret,
    now: u64,
) -> LifecycleResult<bool> {
    let mut rotation = rotation_of(p, &unread.waiting.account).await?;
    if rotation.mode != Mode::Console || unread.waiting.address != rotation.target_email {
        return Ok(false);
    }
    let message = unread.message_id.as_deref().unwrap_or("(no Message-ID)");
    let waits =
        rotation.phase == Phase::AwaitingOtp && rotation.is_waiting_for(Kind::RootEmailOtp, now);
    if !waits && !rotation.hears_a_later_code(now) {
        return Ok(false);
    }
    let this = (unread.message_id.as_deref(), unread.delivered_at);
    let arrival = arrival(this, heard(&rotation));
    if waits || arrival == Arrival::Later {
        return move_on_unread(p, &mut rotation, unread, message, now).await;
    }
    // Moved on by this mail before, and its audit row may be what failed
    // (the record is saved first): the redelivered mail writes it.
    if arrival == Arrival::Again && rotation.moved_on_by_an_unread_code() {
        let detail = || unread_detail(&rotation, message);
        record_once_for_mail(p, &rotation, CODE_CAME_UNREAD, this, detail, now).await?;
    }
    Ok(false)
}

/// The take-over goes on without a code: any code held before is stale.
async fn move_on_unread<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    unread: &UnreadSecret,
    message: &str,
    now: u64,
) -> LifecycleResult<bool> {
    let stale = rotation.handed_over.take().is_some();
    rotation.code_delivered_at = unread.delivered_at;
    rotation.code_message_id = unread.message_id.clone();
    await_change_confirmation(rotation, now);
    let mut detail = unread_detail(rotation, message);
    if stale {
        detail.push_str(
            ". AWS sent it after the code rootmail held, which is now stale and no longer given",
        );
    }
    let entry = (SYSTEM_ACTOR, CODE_CAME_UNREAD, detail);
    save_evidence(p, rotation, now, entry).await?;
    Ok(true)
}

/// How a code mail stands against the code mail a console take-over heard
/// last: the same mail again (by `Message-ID`), or else by the receiving
/// servers' stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Delivered after it: AWS sent a new code, and the one held is stale.
    Later,
    /// The same mail again (a redelivery).
    Again,
    /// Delivered before it: a late copy of an older code.
    Earlier,
    /// A stamp missing: no order is known.
    Unordered,
}

/// A code mail's `Message-ID` and the receiving server's stamp.
type CodeMail<'a> = (Option<&'a str>, Option<i64>);

/// The code mail `rotation` heard last.
fn heard(rotation: &Rotation) -> CodeMail<'_> {
    (
        rotation.code_message_id.as_deref(),
        rotation.code_delivered_at,
    )
}

fn arrival((this_id, this_at): CodeMail<'_>, (heard_id, heard_at): CodeMail<'_>) -> Arrival {
    // With no `Message-ID` on either, a mail stamped as the one heard is
    // taken for it.
    let (this_id, heard_id) = (
        this_id.filter(|id| !id.is_empty()),
        heard_id.filter(|id| !id.is_empty()),
    );
    let same_stamp = this_at.is_some() && this_at == heard_at;
    if (this_id.is_some() && this_id == heard_id)
        || (this_id.is_none() && heard_id.is_none() && same_stamp)
    {
        return Arrival::Again;
    }
    match (this_at, heard_at) {
        // Another mail stamped in the same second: the one taken now came
        // after (AWS honours only its latest code).
        (Some(this), Some(heard)) if this >= heard => Arrival::Later,
        (Some(_), Some(_)) => Arrival::Earlier,
        _ => Arrival::Unordered,
    }
}

/// AWS's code mail, its code read, reaching a console take-over that heard
/// a code mail before ([`Rotation::hears_a_later_code`]). The engineer may
/// have asked AWS for a new code (the console's resend, or the change
/// started again), which makes the one held stale: a later mail's code
/// replaces it in the vault (or is the first held, after a mail that came
/// unread), and `rotation code` gives it. The same mail again changes
/// nothing; an older one is not kept; one with no receiving stamp cannot be
/// ordered and is refused (the mail is an alert, its code sealed). Returns
/// what became of its code.
pub(crate) async fn later_code<P: LifecyclePorts>(
    p: &P,
    mut rotation: Rotation,
    handoff: &Handoff,
    now: u64,
) -> LifecycleResult<Handover> {
    let (account, target) = (rotation.account_id.clone(), rotation.target_email.clone());
    if handoff.recipient != target {
        return refused(format!(
            "the code mail was delivered to {}, not to the rotation's address {target}",
            handoff.recipient
        ));
    }
    let this = (handoff.message_id.as_deref(), handoff.delivered_at);
    let arrival = arrival(this, heard(&rotation));
    // The same mail read now where it came unread before (a rule added
    // since) gives its code as a later one does.
    let replaces =
        arrival == Arrival::Later || (arrival == Arrival::Again && rotation.handed_over.is_none());
    if !replaces {
        return keep_the_code_held(p, &mut rotation, handoff, arrival, now).await;
    }
    let reference = p
        .vault()
        .put(
            &account,
            VaultItem::Handover,
            Stage::Current,
            &handoff.secret,
        )
        .await?;
    rotation.handed_over = Some(reference.clone());
    rotation.code_delivered_at = handoff.delivered_at;
    rotation.code_message_id = handoff.message_id.clone();
    stop_waiting_for_a_code(&mut rotation);
    let mail = handoff.message_id.as_deref().unwrap_or("(no Message-ID)");
    let why = match arrival {
        Arrival::Again => "no rule read its code when it came before, one does now",
        _ => {
            "AWS sent it after the code mail heard before (a new code asked for at the console, or the change started again), so it replaces any code held, which is stale"
        }
    };
    let detail = format!(
        "{} received by mail and stored in the vault ({reference}), from mail {mail}: {why}. Read it with `rootmail rotation code --account {account} --reason ... --ticket ...`",
        Kind::RootEmailOtp
    );
    save_evidence(p, &mut rotation, now, (SYSTEM_ACTOR, HANDED_OVER, detail)).await?;
    Ok(Handover::Stored(reference))
}

/// A console take-over heard its code mail: it no longer waits for one (its
/// first handover ends the wait; a delivery whose run stopped before that
/// was saved leaves it waiting), though it hears a later one.
fn stop_waiting_for_a_code(rotation: &mut Rotation) {
    if rotation.waiting_for == Some(Kind::RootEmailOtp) {
        rotation.waiting_for = None;
    }
}

/// A code mail that replaces nothing: the same mail again (its audit row
/// written if the first delivery lost it, and its handover finished), a late
/// older one (audited once), or one that cannot be ordered (refused: the
/// mail is an alert). Returns the reference of the code held.
async fn keep_the_code_held<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    handoff: &Handoff,
    arrival: Arrival,
    now: u64,
) -> LifecycleResult<Handover> {
    let (account, target) = (&rotation.account_id, &rotation.target_email);
    let held = (rotation.handed_over.clone()).unwrap_or_else(|| "nothing held".to_string());
    let this = (handoff.message_id.as_deref(), handoff.delivered_at);
    let mail = handoff.message_id.as_deref().unwrap_or("(no Message-ID)");
    match arrival {
        Arrival::Again => {
            let kind = Kind::RootEmailOtp;
            let detail = || {
                format!(
                    "{kind} received by mail and stored in the vault ({held}), from mail {mail}"
                )
            };
            record_once_for_mail(p, rotation, HANDED_OVER, this, detail, now).await?;
            if rotation.waiting_for == Some(Kind::RootEmailOtp) {
                stop_waiting_for_a_code(rotation);
                save_handover(p, rotation, now).await?;
            }
        }
        Arrival::Earlier => {
            let detail = || {
                format!(
                    "a code mail to {target} delivered earlier than the one heard last arrived late (mail {mail}); its code is not kept"
                )
            };
            record_once_for_mail(p, rotation, OLDER_NOT_KEPT, this, detail, now).await?;
        }
        Arrival::Unordered => {
            return refused(format!(
                "account {account}'s take-over heard AWS's code mail before, and this one has no receiving stamp to tell which is later: its code is not given; read the latest code in the original mail"
            ));
        }
        Arrival::Later => {}
    }
    Ok(Handover::Kept(held))
}

const CODE_CAME_UNREAD: &str = "code mail came unread";

/// What the engineer does next, first (an audit row is shown cut short).
fn unread_detail(rotation: &Rotation, message: &str) -> String {
    let (account, target) = (&rotation.account_id, &rotation.target_email);
    format!(
        "the code is in the original mail, not the vault: no rule read one code in AWS's verified \
         code mail {message} to {target}. Read it there (its ticket names it), enter it in the \
         console and choose Confirm; AWS's mail to {target} then confirms the change, or \
         `rootmail rotation attest --account {account} --statement ...`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A redelivery is known by its `Message-ID` whatever its stamp; other
    /// mails by their stamps, a second's tie going to the mail taken now.
    #[test]
    fn code_mails_are_ordered_by_identity_then_stamp() {
        let held = (Some("<b@aws>"), Some(100));
        let cases = [
            ((Some("<b@aws>"), Some(100)), Arrival::Again),
            ((Some("<b@aws>"), None), Arrival::Again),
            ((Some("<c@aws>"), Some(101)), Arrival::Later),
            ((Some("<c@aws>"), Some(100)), Arrival::Later),
            ((None, Some(100)), Arrival::Later),
            ((None, Some(99)), Arrival::Earlier),
            ((Some("<a@aws>"), Some(99)), Arrival::Earlier),
            ((Some("<c@aws>"), None), Arrival::Unordered),
            ((Some(""), Some(101)), Arrival::Later),
        ];
        for (this, expected) in cases {
            assert_eq!(arrival(this, held), expected, "{this:?}");
        }
        assert_eq!(
            arrival((Some("<c@aws>"), Some(100)), (None, None)),
            Arrival::Unordered,
            "a record from before the stamps were kept"
        );
        assert_eq!(
            arrival((None, Some(100)), (None, Some(100))),
            Arrival::Again,
            "no Message-ID on either: the same stamp is the same mail"
        );
        assert_eq!(
            arrival((None, Some(101)), (None, Some(100))),
            Arrival::Later
        );
    }
}

//! The credential lifecycle in local mode: take-over (rootless and vaulted),
//! break-glass access, release and closure against the embedded store, the
//! encrypted local vault and the simulated AWS, with the code mail going through
//! the real mail pipeline.

use rootmail_domain::{AccountId, AccountStatus, EmailAddress, Rules, SecretValue, ThreadKey};
use rootmail_lifecycle::closure::{self, Closure};
use rootmail_lifecycle::console;
use rootmail_lifecycle::operator::OperatorRequest;
use rootmail_lifecycle::steps::{self, AccessRequest, StepOutput, TakeOver};
use rootmail_lifecycle::{
    AccountApi, AccountRegistry, AuditLog, LifecycleError, LifecyclePorts, LifecycleResult,
    MemberState, Mode, Phase, RootAccess, RootCredentialReport, Rotations, Vault, VaultItem,
};
use rootmail_local::LocalStore;
use rootmail_local::console::{ConsoleShows, ConsoleStep};
use rootmail_local::lifecycle_store::{
    LocalLifecycle, VaultKey, root_email_code_mail, simulated_aws_mail,
};
use rootmail_local::workflow::{complete, deliver_simulated_mail, resume, take_over};
use rootmail_tests::flaky::{FailsOnce, ThreadCall};

const KEY: &str = "4f1c0e9a7b3d5f2e8c6a4b2d0f9e7c5a3b1d9f8e6c4a2b0d8f7e5c3a1b9d7f6e";
const DOMAIN: &str = "root.example-msp.com";
const NOW: u64 = 1_790_000_000;
/// A seed as the console would show one (RFC 6238's test key, base32).
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn account() -> AccountId {
    AccountId::parse("444455556666").unwrap()
}

/// A release `who` asks for, with the reason and ticket every release needs.
fn releasing(account: &AccountId, who: &str) -> AccessRequest {
    AccessRequest {
        account_id: account.clone(),
        who: who.into(),
        reason: "the customer ends the contract".into(),
        ticket: "CHG-7".into(),
    }
}

/// Closes the account as `who` asks, for `reason`, with the engineer's
/// statement when there is one.
async fn close<P: LifecyclePorts>(
    lifecycle: &P,
    words: (&str, &str, Option<&str>),
    now: u64,
) -> LifecycleResult<StepOutput> {
    closure::close(lifecycle, &Words::new(words).closure(), now).await
}

/// Records the closed account open again as `who` asks, for `reason`, with
/// the engineer's statement when there is one.
async fn reopen<P: LifecyclePorts>(
    lifecycle: &P,
    words: (&str, &str, Option<&str>),
    now: u64,
) -> LifecycleResult<StepOutput> {
    closure::reopen(lifecycle, &Words::new(words).closure(), now).await
}

/// A person's words for a closure or a reopening of [`account`].
struct Words<'a> {
    account: AccountId,
    said: (&'a str, &'a str, Option<&'a str>),
}

impl<'a> Words<'a> {
    fn new(said: (&'a str, &'a str, Option<&'a str>)) -> Self {
        let account = account();
        Self { account, said }
    }

    fn closure(&self) -> Closure<'_> {
        let (who, reason, attest) = self.said;
        Closure {
            account: &self.account,
            who,
            reason,
            attest,
        }
    }
}

/// alice closes the account (AWS Organizations closes it) at `at`, and AWS
/// Support reopens it 10 seconds later.
async fn closed_then_reopened_by_support(lifecycle: &LocalLifecycle<'_>, at: u64) {
    close(lifecycle, ("alice", "customer left", None), at)
        .await
        .unwrap();
    lifecycle
        .console(&account(), ConsoleStep::SupportReopens, at + 10)
        .unwrap();
}

fn request(mode: Mode) -> TakeOver {
    TakeOver {
        account_id: account(),
        customer: "Initech".into(),
        mode,
        root_domain: DOMAIN.into(),
        execution: None,
    }
}

/// `LifecyclePorts` for a test's wrapper of the local lifecycle (its field
/// `$inner`): each port marked `own` is the wrapper's, each marked `local`
/// the lifecycle's, so a test overrides only the ports it needs.
macro_rules! lifecycle_ports {
    ($wrapper:ident<$a:lifetime>, $inner:tt, $($Port:ident $port:ident: $which:ident),+ $(,)?) => {
        impl<$a> rootmail_lifecycle::LifecyclePorts for $wrapper<$a> {
            $(type $Port = lifecycle_ports!(@type $a $which);)+
            $(fn $port(&self) -> &lifecycle_ports!(@type $a $which) {
                lifecycle_ports!(@port self, $inner, $which)
            })+
        }
    };
    (@type $a:lifetime own) => { Self };
    (@type $a:lifetime local) => { LocalLifecycle<$a> };
    (@port $self:ident, $inner:tt, own) => { $self };
    (@port $self:ident, $inner:tt, local) => { &$self.$inner };
}

struct Local {
    _dir: tempfile::TempDir,
    store: LocalStore,
    rules: Rules,
}

impl Local {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        Self {
            _dir: dir,
            store,
            rules: Rules::built_in(),
        }
    }

    /// A vaulted take-over waiting for the engineer, and AWS's reset mail
    /// (a corpus mail) addressed to its new root address.
    async fn vaulted_take_over_and_its_reset_mail(&self) -> String {
        self.take_over(Mode::Vaulted).await.unwrap();
        let rotation = Rotations::get(&self.lifecycle(), &account())
            .await
            .unwrap()
            .unwrap();
        let corpus = rootmail_tests::corpus_dir().join("security.password_reset/01-plain.eml");
        std::fs::read_to_string(corpus).unwrap().replace(
            "root+a7f3k9q2@root.example-msp.com",
            rotation.target_email.as_str(),
        )
    }

    fn lifecycle(&self) -> LocalLifecycle<'_> {
        LocalLifecycle::new(&self.store, VaultKey::from_hex(KEY).unwrap())
    }

    async fn take_over(&self, mode: Mode) -> Result<Vec<Phase>, LifecycleError> {
        self.take_over_by(&request(mode), NOW).await
    }

    /// A take-over as a Step Functions execution `execution` runs it.
    async fn take_over_as(
        &self,
        mode: Mode,
        execution: &str,
        now: u64,
    ) -> Result<Vec<Phase>, LifecycleError> {
        let execution = Some(execution.to_string());
        let request = TakeOver {
            execution,
            ..request(mode)
        };
        self.take_over_by(&request, now).await
    }

    async fn take_over_by(
        &self,
        request: &TakeOver,
        now: u64,
    ) -> Result<Vec<Phase>, LifecycleError> {
        let lifecycle = self.lifecycle();
        let trail = take_over(&lifecycle, &self.store, (&[], &self.rules), request, now).await?;
        Ok(trail.iter().map(|s| s.phase).collect())
    }

    /// A console take-over with the root email changed in the console: AWS
    /// has mailed its code (not read yet). Returns the new root address.
    async fn console_email_changed(&self) -> EmailAddress {
        let lifecycle = self.lifecycle();
        self.take_over(Mode::Console).await.expect("take-over");
        let target = Rotations::get(&lifecycle, &account())
            .await
            .unwrap()
            .unwrap()
            .target_email;
        let change = ConsoleStep::ChangeEmail { to: target.clone() };
        lifecycle.console(&account(), change, NOW).unwrap();
        target
    }

    /// A console take-over with the root email changed in the console and
    /// AWS's code read by the engineer: it waits for AWS's confirmation.
    /// Returns the new root address.
    async fn console_code_read(&self) -> EmailAddress {
        let lifecycle = self.lifecycle();
        let target = self.console_email_changed().await;
        self.deliver(NOW).await;
        let request = AccessRequest {
            account_id: account(),
            who: "alice".into(),
            reason: "take-over".into(),
            ticket: "CHG-9".into(),
        };
        console::read_code(&lifecycle, &request, NOW).await.unwrap();
        target
    }

    /// A release to the customer's owner@initech.example started by alice
    /// at `at`: the customer's address and the code AWS mailed to it.
    async fn release_started(&self, at: u64) -> (EmailAddress, SecretValue) {
        let lifecycle = self.lifecycle();
        let customer = EmailAddress::parse("owner@initech.example").unwrap();
        steps::start_release(&lifecycle, &releasing(&account(), "alice"), &customer, at)
            .await
            .unwrap();
        let code = SecretValue::new(code_mailed_to(&lifecycle, customer.as_str()));
        (customer, code)
    }

    /// The customer signs in ("Forgot password") and enables an MFA device,
    /// then the release's completion is run again with their code: it
    /// completes. What the root user has afterwards.
    async fn customer_signs_in_then_release_completes(
        &self,
        code: &SecretValue,
    ) -> rootmail_lifecycle::RootCredentialReport {
        let lifecycle = self.lifecycle();
        lifecycle
            .simulate_console_steps(&account(), NOW + 3_600)
            .unwrap();
        let released = complete(
            &lifecycle,
            &account(),
            "alice",
            (Some(code), None),
            NOW + 7_200,
        )
        .await
        .expect("the retry completes the release");
        assert_eq!(released[0].phase, Phase::Released);
        RootAccess::audit(&lifecycle, &account()).await.unwrap()
    }

    /// A vaulted take-over done: the engineer's console steps and completion.
    async fn active_vaulted() -> Self {
        let local = Self::new();
        local.take_over(Mode::Vaulted).await.unwrap();
        local.engineer_console_steps(NOW).await;
        complete(&local.lifecycle(), &account(), "alice", (None, None), NOW)
            .await
            .unwrap();
        local
    }

    /// A vaulted take-over whose wait timed out after the engineer set the
    /// password and MFA in the console; the seed AWS has.
    async fn failed_while_the_engineer_worked() -> (Self, SecretValue) {
        let local = Self::new();
        local.take_over(Mode::Vaulted).await.unwrap();
        let key = local.engineer_console_steps(NOW).await;
        let timed_out = ("the engineer's task timed out", None);
        steps::record_failure(&local.lifecycle(), &account(), timed_out, NOW + 60)
            .await
            .unwrap();
        (local, key)
    }

    async fn phase(&self) -> Option<Phase> {
        Rotations::get(&self.lifecycle(), &account())
            .await
            .unwrap()
            .map(|r| r.phase)
    }

    /// The audit rows of `action` lost, as when their write failed.
    fn lose_audit_rows(&self, action: &str) {
        let file = (self.store.root()).join(format!("lifecycle/audit/{}.jsonl", account()));
        let kept: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|line| !line.contains(action))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(&file, kept).unwrap();
    }

    /// The account's status in the directory, under the address the
    /// take-over gave it.
    async fn listed_status(&self) -> AccountStatus {
        let lifecycle = self.lifecycle();
        let record = Rotations::get(&lifecycle, &account())
            .await
            .unwrap()
            .unwrap();
        let listed = lifecycle.by_email(&record.target_email).await.unwrap();
        listed.expect("in the directory").status
    }

    async fn actions(&self) -> Vec<String> {
        AuditLog::entries(&self.lifecycle(), &account())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    }

    /// What the engineer does in the console during a vaulted take-over: the
    /// password set, MFA assigned with the seed AWS generates (enrolled in
    /// rootmail, which answers the two codes), and AWS's notice read.
    async fn engineer_console_steps(&self, now: u64) -> SecretValue {
        let lifecycle = self.lifecycle();
        lifecycle
            .console(&account(), ConsoleStep::SetPassword, now)
            .unwrap();
        let ConsoleShows::SecretKey(key) = lifecycle
            .console(&account(), ConsoleStep::AssignMfa, now)
            .unwrap()
        else {
            panic!("the console shows a secret key");
        };
        let codes = console::enroll_mfa(&lifecycle, &account(), "alice", key.expose(), now)
            .await
            .expect("enrolled");
        let activate = ConsoleStep::ActivateMfa {
            first: codes.first,
            second: codes.second,
        };
        lifecycle.console(&account(), activate, now).unwrap();
        self.deliver(now).await;
        key
    }

    /// `code` entered in the simulated console for `target` at `at`: AWS's
    /// notice of the change reaches our address, and the take-over resumes
    /// to the engineer's console steps.
    async fn code_entered_and_confirmed(&self, target: &EmailAddress, code: SecretValue, at: u64) {
        let lifecycle = self.lifecycle();
        let step = ConsoleStep::EnterCode {
            to: target.clone(),
            code,
        };
        (lifecycle.console(&account(), step, at)).expect("the console took the code");
        self.deliver(at).await;
        let resumed = resume(&lifecycle, &account(), at).await.unwrap();
        assert_eq!(
            resumed.iter().map(|s| s.phase).collect::<Vec<_>>(),
            [Phase::EmailConfirmed, Phase::AwaitingEngineer]
        );
    }

    /// Reads what the simulated AWS mailed through the pipeline.
    async fn deliver(&self, now: u64) -> usize {
        deliver_simulated_mail(&self.lifecycle(), &self.store, &[], &self.rules, now)
            .await
            .expect("delivered")
    }

    /// Every code AWS mailed, oldest first, read back from the archived originals.
    fn archived_codes(&self) -> Vec<String> {
        let mut mails: Vec<(u64, String)> = std::fs::read_dir(self.store.root().join("archive"))
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .filter_map(|m| {
                let code = m
                    .lines()
                    .find(|l| l.contains("Verification code:"))?
                    .rsplit(' ')
                    .next()?
                    .trim()
                    .to_string();
                let date = m.lines().find(|l| l.starts_with("Date: "))?;
                // Sent at NOW or a few minutes later (the tests' clock).
                let at =
                    (0..600).find(|d| date[6..] == rootmail_domain::dates::rfc2822(NOW + d))?;
                Some((at, code))
            })
            .collect();
        mails.sort();
        mails.into_iter().map(|(_, code)| code).collect()
    }

    /// The code AWS mailed, read back from the archived original.
    fn archived_code(&self) -> String {
        let archive = self.store.root().join("archive");
        let mail = std::fs::read_dir(&archive)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .find(|m| m.contains("Verification code:"))
            .expect("the code mail is archived");
        let line = mail
            .lines()
            .find(|l| l.contains("Verification code:"))
            .unwrap();
        line.rsplit(' ').next().unwrap().trim().to_string()
    }
}

/// The code the simulated AWS mailed to `address` (the customer's, on a
/// release).
fn code_mailed_to(lifecycle: &LocalLifecycle<'_>, address: &str) -> String {
    let mail = std::fs::read_dir(lifecycle.simulated_mail_dir())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains(&format!("To: {address}")))
        .unwrap_or_else(|| panic!("a code mail to {address}"));
    mail.lines()
        .find(|l| l.contains("Verification code:"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .trim()
        .to_string()
}

/// Files outside the archive (which keeps originals, as SES's bucket does).
fn text_outside_archive(local: &Local) -> String {
    let mut out = String::new();
    let root = local.store.root();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path == root.join("archive") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_rootless_take_over_ends_active_with_no_root_credentials() {
    let local = Local::new();
    let phases = local.take_over(Mode::Rootless).await.expect("take-over");
    assert_eq!(
        phases,
        [
            Phase::Registered,
            Phase::AwaitingOtp,
            Phase::EmailAccepted,
            Phase::EmailConfirmed,
            Phase::Secured,
            Phase::Active
        ]
    );
    let lifecycle = local.lifecycle();
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert!(
        rotation
            .target_email
            .as_str()
            .ends_with(&format!("@{DOMAIN}"))
    );
    let registered = lifecycle
        .by_email(&rotation.target_email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(registered.status, AccountStatus::Active);
    assert!(
        RootAccess::audit(&lifecycle, &account())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        local.actions().await,
        [
            "take-over started",
            "root email change started",
            "secret handed over",
            "root email change accepted",
            "root email changed",
            "root credentials deleted",
            "take-over finished"
        ]
    );
    // The code went mail -> pipeline -> vault -> AWS, and nowhere else.
    let code = local.archived_code();
    assert_eq!(code.len(), 6);
    assert!(
        !text_outside_archive(&local).contains(&code),
        "the code leaked into the state"
    );
    // The lifecycle ticket tells the story, one comment per change.
    let tickets = local.store.tickets().unwrap();
    let ticket = tickets
        .iter()
        .find(|t| t.thread_key == ThreadKey::lifecycle(&account()))
        .expect("a lifecycle ticket");
    assert_eq!(ticket.comments.len() + 1, 7);
}

/// What the previous owner left goes before the engineer's task, and the task
/// is done only with a password, no keys or certificates, and exactly one MFA
/// device enabled after it began (issue 13, point 8).
#[tokio::test]
async fn a_vaulted_take_over_clears_the_previous_owners_credentials() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.expect("take-over");
    let lifecycle = local.lifecycle();
    let opened = AuditLog::entries(&lifecycle, &account())
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "engineer task opened")
        .expect("the engineer's task");
    assert!(
        opened
            .detail
            .contains("credentials are deleted (password set, 1 access key(s)"),
        "{}",
        opened.detail
    );
    let report = RootAccess::audit(&lifecycle, &account()).await.unwrap();
    assert!(report.is_empty(), "{report:?}");

    // Without the seed AWS generated in the vault, nothing completes...
    let unenrolled = complete(&lifecycle, &account(), "alice", (None, None), NOW).await;
    assert!(
        matches!(&unenrolled, Err(LifecycleError::Refused(m)) if m.contains("mfa enroll")),
        "{unenrolled:?}"
    );
    console::enroll_mfa(&lifecycle, &account(), "alice", SEED, NOW)
        .await
        .unwrap();
    // ...and a device someone registered before the task began does not count...
    lifecycle
        .simulate_console_steps(&account(), NOW - 100)
        .unwrap();
    let stale = complete(&lifecycle, &account(), "alice", (None, None), NOW).await;
    assert!(
        matches!(&stale, Err(LifecycleError::Refused(m)) if m.contains("enabled before")),
        "{stale:?}"
    );
    // ...and with ours beside it there are two.
    lifecycle
        .simulate_console_steps(&account(), NOW + 10)
        .unwrap();
    let two = complete(&lifecycle, &account(), "alice", (None, None), NOW + 20).await;
    assert!(
        matches!(&two, Err(LifecycleError::Refused(m)) if m.contains("2 MFA devices, not exactly one")),
        "{two:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingEngineer));
}

#[tokio::test]
async fn a_vaulted_take_over_waits_for_the_engineer_then_serves_break_glass_access() {
    let local = Local::new();
    let phases = local.take_over(Mode::Vaulted).await.expect("take-over");
    assert_eq!(phases.last(), Some(&Phase::AwaitingEngineer));
    let lifecycle = local.lifecycle();

    // Not done in the console yet: refused, nothing changes.
    let early = complete(&lifecycle, &account(), "alice", (None, None), NOW).await;
    assert!(
        matches!(&early, Err(LifecycleError::Refused(m)) if m.contains("MFA")),
        "{early:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingEngineer));

    // The engineer reads the pending password (audited) and does the console steps.
    let pending = steps::access(&lifecycle, &access_request("set up the root user"), NOW)
        .await
        .expect("pending credentials");
    assert!(pending.pending);
    // The vault's handed-over item still holds the take-over's used email
    // code: it is not shown as a reset link (no reset mail came).
    assert!(pending.reset_link.is_none());
    local.engineer_console_steps(NOW).await;
    let done = complete(&lifecycle, &account(), "alice", (None, None), NOW)
        .await
        .expect("complete");
    assert_eq!(done.last().unwrap().phase, Phase::Active);

    let grant = steps::access(&lifecycle, &access_request("billing emergency"), NOW + 60)
        .await
        .expect("access");
    assert!(!grant.pending);
    assert!(
        grant.unsent_notices.is_empty(),
        "{:?}",
        grant.unsent_notices
    );
    assert_eq!(
        grant.password.expose(),
        pending.password.expose(),
        "promoted, not regenerated"
    );
    assert!(rootmail_lifecycle::credentials::meets_aws_rules(
        grant.password.expose()
    ));
    let code = grant.totp_code.as_ref().expect("a TOTP code");
    assert_eq!(code.expose().len(), 6);
    assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        format!("{grant:?}").matches("[redacted]").count(),
        2,
        "{grant:?}"
    );

    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let access = audit
        .iter()
        .rfind(|e| e.action == "break-glass access")
        .unwrap();
    assert_eq!(access.actor, "alice");
    assert_eq!(access.reason.as_deref(), Some("billing emergency"));
    assert_eq!(access.ticket.as_deref(), Some("INC-42"));
    // The password and the seed never appear outside the sealed vault.
    let state = text_outside_archive(&local);
    assert!(!state.contains(grant.password.expose()));
    let notices = std::fs::read_dir(local.store.root().join("lifecycle/notices"))
        .unwrap()
        .count();
    assert_eq!(notices, 2, "an email notice per access");
}

fn access_request(reason: &str) -> AccessRequest {
    AccessRequest {
        account_id: account(),
        who: "alice".into(),
        reason: reason.into(),
        ticket: "INC-42".into(),
    }
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.unwrap();
    let lifecycle = local.lifecycle();
    let before = local.actions().await;

    let again = local.take_over(Mode::Rootless).await;
    assert!(
        matches!(&again, Err(LifecycleError::Refused(m)) if m.contains("already running")),
        "{again:?}"
    );
    let no_reason = steps::access(&lifecycle, &access_request("  "), NOW).await;
    assert!(
        matches!(&no_reason, Err(LifecycleError::Refused(m)) if m.contains("reason")),
        "{no_reason:?}"
    );
    // A reason too long for the audit row, the note and the status answer
    // to carry (an unbounded one could drop the note that tells others).
    let long = steps::access(&lifecycle, &access_request(&"x".repeat(2001)), NOW).await;
    assert!(
        matches!(&long, Err(LifecycleError::Refused(m)) if m.contains("at most 2000")),
        "{long:?}"
    );
    let close = |reason: &str, attest: Option<&str>| OperatorRequest::Close {
        account_id: account(),
        reason: reason.to_string(),
        attest: attest.map(str::to_string),
    };
    for long in [
        close(&"y".repeat(2001), None),
        close("customer left", Some(&"y".repeat(2001))),
    ] {
        let long = rootmail_lifecycle::operator::perform(&lifecycle, "alice", &long, NOW).await;
        assert!(
            matches!(&long, Err(LifecycleError::Refused(m)) if m.contains("at most 2000")),
            "{long:?}"
        );
    }
    let unknown = AccountId::parse("999988887777").unwrap();
    let customer = EmailAddress::parse("owner@initech.example").unwrap();
    let release =
        steps::start_release(&lifecycle, &releasing(&unknown, "alice"), &customer, NOW).await;
    assert!(
        matches!(&release, Err(LifecycleError::Refused(m)) if m.contains("no lifecycle record")),
        "{release:?}"
    );
    let early_release =
        steps::start_release(&lifecycle, &releasing(&account(), "alice"), &customer, NOW).await;
    assert!(matches!(early_release, Err(LifecycleError::Refused(_))));

    assert_eq!(
        local.actions().await,
        before,
        "no audit record for a refused request"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingEngineer));
}

#[tokio::test]
async fn a_code_mail_that_fails_authentication_is_never_used() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    steps::register(&lifecycle, &request(Mode::Rootless), NOW)
        .await
        .unwrap();
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    // A forged code mail arrives while the rotation waits (start the wait without
    // AWS's own mail: remove it before the pipeline reads it).
    steps::start_email_update(&lifecycle, &account(), "local:token", NOW)
        .await
        .unwrap();
    for entry in std::fs::read_dir(lifecycle.simulated_mail_dir()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let forged = root_email_code_mail(&rotation.target_email, &account(), "EVIL42", NOW)
        .replace("dmarc=pass", "dmarc=fail")
        .replace(
            "dkim=pass header.i=@verify.signin.aws",
            "dkim=fail header.i=@verify.signin.aws",
        );
    std::fs::write(lifecycle.simulated_mail_dir().join("forged.eml"), forged).unwrap();
    deliver_simulated_mail(&lifecycle, &local.store, &[], &local.rules, NOW)
        .await
        .unwrap();

    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::AwaitingOtp, "still waiting");
    assert!(rotation.handed_over.is_none());
    let tickets = local.store.tickets().unwrap();
    assert!(
        tickets
            .iter()
            .any(|t| t.kind == rootmail_domain::Kind::PhishingSuspected),
        "the forgery is quarantined as phishing: {:?}",
        tickets.iter().map(|t| t.kind).collect::<Vec<_>>()
    );
    let accept = steps::accept_email_update(&lifecycle, &account(), NOW).await;
    assert!(matches!(accept, Err(LifecycleError::Refused(_))));
}

/// A release hands the root user to whoever reads a mailbox: like
/// break-glass access it needs a reason and a ticket, it never goes to our
/// own root domain, and security is mailed before AWS is asked.
#[tokio::test]
async fn a_release_is_justified_and_security_hears_of_it_first() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    let ours = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap()
        .target_email;
    let notices = || notices(&local);
    let before = (notices().len(), local.actions().await.len());
    let customer = EmailAddress::parse("owner@initech.example").unwrap();

    let mut unjustified = releasing(&account(), "alice");
    unjustified.ticket = " ".into();
    let refused = steps::start_release(&lifecycle, &unjustified, &customer, NOW + 10).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("needs a ticket reference")),
        "{refused:?}"
    );
    let ours_too = EmailAddress::parse(&format!("mallory@{}", ours.domain())).unwrap();
    let refused = steps::start_release(
        &lifecycle,
        &releasing(&account(), "alice"),
        &ours_too,
        NOW + 10,
    )
    .await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("our own root mail domain")),
        "{refused:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::Active), "nothing changed");
    assert_eq!(
        (notices().len(), local.actions().await.len()),
        before,
        "nobody was mailed, nothing was recorded"
    );

    steps::start_release(
        &lifecycle,
        &releasing(&account(), "alice"),
        &customer,
        NOW + 20,
    )
    .await
    .unwrap();
    let notice = notices()
        .into_iter()
        .find(|n| n.contains("release of AWS account"))
        .expect("security was mailed");
    for wanted in [
        "alice started the release",
        "owner@initech.example",
        "the customer ends the contract",
        "CHG-7",
        "before our take-over",
    ] {
        assert!(notice.contains(wanted), "{wanted}: {notice}");
    }
    let trail = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let started = trail
        .iter()
        .rfind(|e| e.action == "release started")
        .unwrap();
    assert_eq!(
        started.reason.as_deref(),
        Some("the customer ends the contract")
    );
    assert_eq!(started.ticket.as_deref(), Some("CHG-7"));
}

/// A release's completion that failed after deleting our root credentials,
/// run again once the customer has set their own (the root email is theirs
/// by then), deletes nothing more: it used to delete the customer's
/// password and MFA device as if they were ours.
#[tokio::test]
async fn a_release_completed_again_leaves_the_customers_own_credentials() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    let (_, code) = local.release_started(NOW).await;

    // The first try fails after the deletion (the vault is unreadable).
    let vault = local
        .store
        .root()
        .join(format!("lifecycle/vault/{}.json", account()));
    let kept = std::fs::read(&vault).unwrap();
    std::fs::write(&vault, b"not a vault").unwrap();
    let failed = complete(
        &lifecycle,
        &account(),
        "alice",
        (Some(&code), None),
        NOW + 10,
    )
    .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(local.phase().await, Some(Phase::AwaitingCustomerOtp));
    let left = RootAccess::audit(&lifecycle, &account()).await.unwrap();
    assert!(left.is_empty(), "ours are gone: {left:?}");

    std::fs::write(&vault, kept).unwrap();
    let theirs = local.customer_signs_in_then_release_completes(&code).await;
    assert!(
        theirs.password && theirs.mfa_devices == 1,
        "the customer's own are kept: {theirs:?}"
    );
}

#[tokio::test]
async fn release_needs_the_customers_code_and_closure_keeps_the_vault() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();

    let customer = EmailAddress::parse("owner@initech.example").unwrap();
    let started = steps::start_release(&lifecycle, &releasing(&account(), "alice"), &customer, NOW)
        .await
        .unwrap();
    assert_eq!(started.phase, Phase::AwaitingCustomerOtp);
    // The code went to the customer (here: the simulated AWS's mail folder).
    let code = code_mailed_to(&lifecycle, "owner@initech.example");

    let wrong = complete(
        &lifecycle,
        &account(),
        "alice",
        (Some(&SecretValue::new("WRONG1".into())), None),
        NOW,
    )
    .await;
    assert!(
        matches!(&wrong, Err(LifecycleError::Refused(m)) if m.contains("wrong or expired")),
        "{wrong:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingCustomerOtp));

    let released = complete(
        &lifecycle,
        &account(),
        "alice",
        (Some(&SecretValue::new(code)), None),
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(released[0].phase, Phase::Released);
    // Our password and MFA device do not outlive the release; the customer
    // is told to set their own (issue 13: release removes our credentials).
    let left = RootAccess::audit(&lifecycle, &account()).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let note = AuditLog::entries(&lifecycle, &account())
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "released")
        .unwrap()
        .detail;
    assert!(
        note.contains("our root credentials are deleted (password set, 0 access key(s), 0 signing certificate(s), 1 MFA device(s))")
            && note.contains("\"Forgot password\""),
        "{note}"
    );
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    let ours = rotation.previous_email.clone().unwrap();
    assert_eq!(
        lifecycle.by_email(&ours).await.unwrap().unwrap().status,
        AccountStatus::Released
    );
    let vault: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            local
                .store
                .root()
                .join(format!("lifecycle/vault/{}.json", account())),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(vault["deletion_scheduled_at"].is_u64(), "{vault}");

    // Released: its root user is the customer's, and rootmail does not
    // close it in AWS Organizations. Once the customer has, it is recorded.
    let theirs = close(&lifecycle, ("alice", "customer left", None), NOW).await;
    assert!(
        matches!(&theirs, Err(LifecycleError::Refused(m)) if m.contains("released to its customer")),
        "{theirs:?}"
    );
    assert_eq!(
        lifecycle.member_state(&account()).await.unwrap(),
        Some(MemberState::Active),
        "nothing asked of AWS"
    );
    lifecycle.close_member(&account()).await.unwrap(); // the customer, in the console
    let closed = close(
        &lifecycle,
        ("alice", "customer closed the account", None),
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(closed.phase, Phase::Closed);
    assert_eq!(
        lifecycle.by_email(&ours).await.unwrap().unwrap().status,
        AccountStatus::Closed
    );
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.action, "closed");
    assert!(
        last.detail
            .contains("AWS Organizations shows it PENDING_CLOSURE"),
        "{}",
        last.detail
    );
    assert!(
        !audit.iter().any(|e| e.action == "closure requested"),
        "rootmail asked AWS nothing"
    );
    let again = close(&lifecycle, ("alice", "again", None), NOW).await;
    assert!(matches!(again, Err(LifecycleError::Refused(_))));
    // Closed after its release: the credentials were the customer's to set.
    let access = AccessRequest {
        account_id: account(),
        who: "alice".into(),
        reason: "reopen".into(),
        ticket: "CHG-3".into(),
    };
    let refused = steps::access(&lifecycle, &access, NOW).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("no usable root credentials")),
        "{refused:?}"
    );
}

/// A take-over that failed while the engineer set the credentials in the
/// console (the wait timed out before `rotation complete`) leaves them the
/// only way in: AWS has our MFA device, whose seed only the vault holds.
/// Break-glass access reads them, audited and labelled; a take-over that
/// failed before the vault has none.
#[tokio::test]
async fn a_take_over_failed_while_the_engineer_worked_keeps_its_credentials_readable() {
    let (local, key) = Local::failed_while_the_engineer_worked().await;
    let lifecycle = local.lifecycle();
    assert_eq!(local.phase().await, Some(Phase::Failed));
    let said = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let told = &said.last().unwrap().detail;
    assert!(told.contains("root credentials stay readable"), "{told}");

    let grant = steps::access(&lifecycle, &releasing(&account(), "bob"), NOW + 90)
        .await
        .expect("the failed take-over's credentials");
    assert!(grant.pending);
    let aws_has = rootmail_lifecycle::credentials::totp_code(&key, NOW + 90).unwrap();
    let code = grant.totp_code.expect("the MFA device's code");
    assert_eq!(code.expose(), aws_has.expose(), "the seed AWS has");
    let row = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let row = row.last().unwrap();
    assert_eq!(
        (row.action.as_str(), row.actor.as_str()),
        ("break-glass access", "bob")
    );
    assert!(
        row.detail.contains("its take-over failed"),
        "{}",
        row.detail
    );

    // Failed before anything was vaulted: nothing to read.
    let early = Local::new();
    let lifecycle = early.lifecycle();
    steps::register(&lifecycle, &request(Mode::Vaulted), NOW)
        .await
        .unwrap();
    steps::record_failure(&lifecycle, &account(), ("gave up", None), NOW + 5)
        .await
        .unwrap();
    let refused = steps::access(&lifecycle, &releasing(&account(), "bob"), NOW + 9).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("no usable root credentials (failed)")),
        "{refused:?}"
    );
}

/// A rootless take-over vaults nothing, but one started over a take-over
/// that failed with credentials set passes them on to the next until its
/// deletion of the root user's credentials starts: one that failed before
/// passes them on; one whose deletion failed partway, or ran, passes on
/// none.
#[tokio::test]
async fn a_rootless_take_over_passes_on_credentials_until_its_deletion_starts() {
    let (local, key) = Local::failed_while_the_engineer_worked().await;
    let lifecycle = local.lifecycle();
    // A rootless take-over started over it, failed before it deleted
    // anything, then a vaulted one: that one still serves them.
    steps::register(&lifecycle, &request(Mode::Rootless), NOW + 100)
        .await
        .unwrap();
    fails_and_starts_again(&lifecycle, "gave up", Mode::Vaulted, NOW + 110).await;
    let grant = steps::access(&lifecycle, &releasing(&account(), "bob"), NOW + 130).await;
    let code = grant.expect("still readable").totp_code.expect("a code");
    let aws_has = rootmail_lifecycle::credentials::totp_code(&key, NOW + 130).unwrap();
    assert_eq!(code.expose(), aws_has.expose());
    // A rootless one that failed before its deletion started still passes
    // them on; one whose deletion failed partway, or ran, passes on none.
    for deletes in [None, Some(false), Some(true)] {
        fails_and_starts_again(&lifecycle, "gave up", Mode::Rootless, NOW + 140).await;
        let mut confirmed = Rotations::get(&lifecycle, &account())
            .await
            .unwrap()
            .unwrap();
        confirmed.phase = Phase::EmailConfirmed;
        let expected = Some(confirmed.version);
        confirmed.version += 1;
        Rotations::put(&lifecycle, &confirmed, expected)
            .await
            .unwrap();
        if let Some(completes) = deletes {
            let root = DeletionFails {
                inner: local.lifecycle(),
                fails: !completes,
            };
            let deleted = steps::delete_root_credentials(&root, &account(), NOW + 155).await;
            assert_eq!(deleted.is_ok(), completes, "{deleted:?}");
        }
        fails_and_starts_again(&lifecycle, "failed", Mode::Vaulted, NOW + 160).await;
        let grant = steps::access(&lifecycle, &releasing(&account(), "bob"), NOW + 180).await;
        assert_eq!(grant.is_ok(), deletes.is_none(), "{deletes:?}: {grant:?}");
    }
}

/// A payer's take-over started again over one that failed while the
/// engineer set the credentials: the console signs in with those (the new
/// take-over's first step is to change the root email there), so they stay
/// readable until the new one vaults its own.
#[tokio::test]
async fn a_payer_s_take_over_started_again_signs_in_with_the_failed_one_s_credentials() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let target = local.console_email_changed().await;
    local.deliver(NOW).await;
    let read = console::read_code(&lifecycle, &releasing(&account(), "alice"), NOW).await;
    let code = read.expect("the code").code;
    local
        .code_entered_and_confirmed(&target, code, NOW + 5)
        .await;
    let key = local.engineer_console_steps(NOW + 10).await;
    let timed_out = ("the engineer's task timed out", None);
    steps::record_failure(&lifecycle, &account(), timed_out, NOW + 60)
        .await
        .unwrap();

    let again = local.take_over(Mode::Console).await.unwrap();
    assert_eq!(again.last(), Some(&Phase::AwaitingOtp));
    let grant = steps::access(&lifecycle, &releasing(&account(), "bob"), NOW + 90)
        .await
        .expect("the credentials the console signs in with");
    assert!(grant.pending);
    let aws_has = rootmail_lifecycle::credentials::totp_code(&key, NOW + 90).unwrap();
    assert_eq!(grant.totp_code.unwrap().expose(), aws_has.expose());
    assert_eq!(
        grant.root_email, target,
        "the address AWS has until the change"
    );
    let said = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let started = said
        .iter()
        .rfind(|e| e.action == "take-over started")
        .unwrap();
    assert!(
        started.detail.contains("stay readable"),
        "{}",
        started.detail
    );
}

/// Where the vault has the credentials AWS holds, whatever happened to the
/// record: a promotion whose save was lost made them current; an account
/// closed after its take-over failed has that take-over's; a member's take-over
/// that deleted every MFA device shows no code from a seed it did not enroll.
#[tokio::test]
async fn break_glass_reads_the_credentials_aws_holds_after_a_lost_save_or_a_closure() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.unwrap();
    let key = local.engineer_console_steps(NOW).await;
    let lifecycle = local.lifecycle();
    for item in [VaultItem::Password, VaultItem::TotpSeed] {
        Vault::promote(&lifecycle, &account(), item).await.unwrap();
    }
    let timed_out = ("the engineer's task timed out", None);
    steps::record_failure(&lifecycle, &account(), timed_out, NOW + 60)
        .await
        .unwrap();
    close(&lifecycle, ("carol", "customer left", None), NOW + 70)
        .await
        .unwrap();
    assert_eq!(local.phase().await, Some(Phase::Closed));
    let grant = steps::access(&lifecycle, &releasing(&account(), "bob"), NOW + 90)
        .await
        .expect("the promoted credentials");
    let aws_has = rootmail_lifecycle::credentials::totp_code(&key, NOW + 90).unwrap();
    assert_eq!(grant.totp_code.unwrap().expose(), aws_has.expose());

    let (member, _) = Local::failed_while_the_engineer_worked().await;
    let lifecycle = member.lifecycle();
    let again = member.take_over(Mode::Vaulted).await.unwrap();
    assert_eq!(again.last(), Some(&Phase::AwaitingEngineer));
    let grant = steps::access(&lifecycle, &releasing(&account(), "bob"), NOW + 90)
        .await
        .expect("the new pending password");
    assert!(
        grant.pending && grant.totp_code.is_none(),
        "the device is gone"
    );
    // Failed in its turn and started again: still no device to show a code for.
    fails_and_starts_again(&lifecycle, "timed out", Mode::Vaulted, NOW + 100).await;
    let grant = steps::access(&lifecycle, &releasing(&account(), "bob"), NOW + 120)
        .await
        .expect("the failed take-over's pending password");
    assert!(grant.pending && grant.totp_code.is_none(), "still gone");
}

/// The local lifecycle whose deletion of the root user's credentials fails
/// partway (`fails`: after the password went, say, AssumeRoot's session
/// expired).
struct DeletionFails<'a> {
    inner: LocalLifecycle<'a>,
    fails: bool,
}

impl RootAccess for DeletionFails<'_> {
    async fn audit(&self, account: &AccountId) -> LifecycleResult<RootCredentialReport> {
        RootAccess::audit(&self.inner, account).await
    }

    async fn delete_all(&self, account: &AccountId) -> LifecycleResult<RootCredentialReport> {
        let deleted = RootAccess::delete_all(&self.inner, account).await?;
        match self.fails {
            true => Err(LifecycleError::Port(
                rootmail_pipeline::PortError::transient("root", "the root session expired"),
            )),
            false => Ok(deleted),
        }
    }

    async fn allow_password_recovery(&self, account: &AccountId) -> LifecycleResult<()> {
        RootAccess::allow_password_recovery(&self.inner, account).await
    }

    async fn summary(
        &self,
        account: &AccountId,
    ) -> LifecycleResult<Option<rootmail_lifecycle::RootSummary>> {
        RootAccess::summary(&self.inner, account).await
    }
}

lifecycle_ports!(
    DeletionFails<'a>,
    inner,
    Api api: local,
    Root root: own,
    Vault vault: local,
    Rotations rotations: local,
    Audit audit: local,
    Registry registry: local,
    Tokens tokens: local,
    Notices notices: local,
);

/// Once AWS confirmed the enrolled MFA device active, a second key (run by
/// mistake) would replace the seed of the device AWS has, and break-glass
/// codes would stop matching it: refused, unless the engineer says the
/// device was replaced (`--replace`), whose activation is awaited again.
#[tokio::test]
async fn a_confirmed_mfa_seed_is_replaced_only_on_purpose() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.unwrap();
    local.engineer_console_steps(NOW).await;
    let lifecycle = local.lifecycle();
    let confirmed = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert!(confirmed.mfa_confirmed_at.is_some(), "AWS's notice came");
    let other = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let again = console::enroll_mfa(&lifecycle, &account(), "alice", other, NOW + 10).await;
    assert!(
        matches!(&again, Err(LifecycleError::Refused(m)) if m.contains("--replace")),
        "{again:?}"
    );
    console::replace_mfa(&lifecycle, &account(), "alice", other, NOW + 10)
        .await
        .expect("replaced on purpose");
    let replaced = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.mfa_confirmed_at, None, "awaited again");
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    assert!(
        audit
            .last()
            .unwrap()
            .detail
            .contains("replacing the device")
    );
}

/// AWS lets a closed account's root user sign in for 90 days after closure
/// (to reopen it): break-glass access to an account closed while active
/// still gives its credentials, audited with the closure (before: refused,
/// so nobody could reopen it).
#[tokio::test]
async fn a_closed_account_s_credentials_stay_reachable_for_reopening() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    close(&lifecycle, ("alice", "customer closed it", None), NOW)
        .await
        .unwrap();
    let access = AccessRequest {
        account_id: account(),
        who: "bob".into(),
        reason: "reopen the account".into(),
        ticket: "CHG-4".into(),
    };
    let grant = steps::access(&lifecycle, &access, NOW + 60)
        .await
        .expect("the credentials it had");
    assert!(!grant.pending && grant.totp_code.is_some());
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.action, "break-glass access");
    assert!(last.detail.contains("account is closed"), "{}", last.detail);
}

/// A member account is closed through AWS Organizations (`CloseAccount`),
/// the request audited before AWS is asked; before, `close` only recorded a
/// closure someone had to make elsewhere, and the record could say `closed`
/// of an account AWS still ran and billed.
#[tokio::test]
async fn a_member_account_is_closed_through_aws_organizations() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    let attested = close(&lifecycle, ("alice", "left", Some("closed it")), NOW).await;
    assert!(
        matches!(&attested, Err(LifecycleError::Refused(m)) if m.contains("ACTIVE")),
        "an attestation does not replace AWS's own closure: {attested:?}"
    );
    let closed = close(&lifecycle, ("alice", "customer left", None), NOW + 10)
        .await
        .unwrap();
    assert_eq!(closed.phase, Phase::Closed);
    assert_eq!(
        lifecycle.member_state(&account()).await.unwrap(),
        Some(MemberState::PendingClosure)
    );
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let rows: Vec<(&str, &str, Option<&str>)> = audit
        .iter()
        .rev()
        .take(2)
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.reason.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            ("alice", "closed", Some("customer left")),
            ("alice", "closure requested", Some("customer left")),
        ]
    );
    let detail = &audit.last().unwrap().detail;
    assert!(
        detail.contains("CloseAccount") && detail.contains("PENDING_CLOSURE"),
        "{detail}"
    );
    assert_eq!(local.listed_status().await, AccountStatus::Closed);
}

/// A handover says whether it stored the mail's secret or kept the one held
/// (the same mail again, a late older one): the log line tells them apart,
/// where it said "secret handed over" for all three.
#[tokio::test]
async fn a_handover_says_whether_it_stored_the_mail_s_secret() {
    use steps::Handover;
    let local = Local::new();
    let address = local.console_email_changed().await;
    let lifecycle = local.lifecycle();
    let code = |id: &str, at: i64, secret: &str| rootmail_domain::Handoff {
        kind: rootmail_domain::Kind::RootEmailOtp,
        secret: SecretValue::new(secret.to_string()),
        recipient: address.clone(),
        delivered_at: Some(at),
        message_id: Some(id.to_string()),
    };
    let mut handovers = Vec::new();
    for handoff in [
        code("<a@aws>", 1_000, "482913"),
        code("<a@aws>", 1_000, "482913"),
        code("<c@aws>", 1_200, "771205"),
        code("<b@aws>", 1_100, "600417"),
    ] {
        let handover = steps::hand_over(&lifecycle, &account(), &handoff, NOW + 5).await;
        handovers.push(handover.unwrap());
    }
    let [first, again, later, older] = <[Handover; 4]>::try_from(handovers).unwrap();
    assert!(matches!(first, Handover::Stored(_)), "{first:?}");
    assert_eq!(again, Handover::Kept(first.reference().to_string()));
    assert!(matches!(later, Handover::Stored(_)), "{later:?}");
    assert_eq!(older, Handover::Kept(later.reference().to_string()));
    let record = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.handed_over.as_deref(), Some(later.reference()));
}

/// The local lifecycle where AWS Organizations' `CloseAccount` fails with
/// `error`; or where a release starts (`release_meanwhile`) while the
/// closure reads the account's state, before it claims the record.
struct ClosureInterrupted<'a> {
    inner: LocalLifecycle<'a>,
    error: Option<fn() -> LifecycleError>,
    release_meanwhile: bool,
    /// How many reads of the account's state answer `ACTIVE` whatever AWS
    /// did (its view lagging behind an accepted closure).
    active_reads: std::sync::atomic::AtomicUsize,
    /// Another write to the record while AWS is asked (a mail's evidence).
    write_meanwhile: bool,
    /// Another write to the record while the account's state is read.
    write_on_state_read: bool,
    /// While AWS is asked: bob starts a release, then a closure of his own;
    /// what each answered.
    bob_while_asked: Option<std::sync::Mutex<Vec<String>>>,
    /// AWS's answer to a root email change it took (`None`: its own).
    email_update_answer: Option<fn() -> LifecycleError>,
}

impl<'a> ClosureInterrupted<'a> {
    /// Nothing interrupted: the local lifecycle as it is.
    fn new(local: &'a Local) -> Self {
        Self {
            inner: local.lifecycle(),
            error: None,
            release_meanwhile: false,
            active_reads: Default::default(),
            write_meanwhile: false,
            write_on_state_read: false,
            bob_while_asked: None,
            email_update_answer: None,
        }
    }
}

impl AccountApi for ClosureInterrupted<'_> {
    async fn start_email_update(&self, a: &AccountId, e: &EmailAddress) -> LifecycleResult<()> {
        self.inner.start_email_update(a, e).await?;
        self.email_update_answer
            .map_or(Ok(()), |answer| Err(answer()))
    }

    async fn accept_email_update(
        &self,
        a: &AccountId,
        e: &EmailAddress,
        otp: &SecretValue,
    ) -> LifecycleResult<()> {
        self.inner.accept_email_update(a, e, otp).await
    }

    async fn primary_email(&self, a: &AccountId) -> LifecycleResult<EmailAddress> {
        self.inner.primary_email(a).await
    }

    /// With a lost answer the status read lags too (it shows no change):
    /// nothing tells the release that AWS took it, so its claim is what
    /// holds. (Where the status shows the change, the release goes on:
    /// `lifecycle_aws`.)
    async fn email_update_status(
        &self,
        a: &AccountId,
    ) -> LifecycleResult<Option<rootmail_lifecycle::EmailUpdateStatus>> {
        if self.email_update_answer.is_some() {
            return Ok(None);
        }
        self.inner.email_update_status(a).await
    }

    async fn member_state(&self, a: &AccountId) -> LifecycleResult<Option<MemberState>> {
        if self.release_meanwhile {
            let customer = EmailAddress::parse("cfo@initech.example").unwrap();
            steps::start_release(&self.inner, &releasing(a, "bob"), &customer, NOW + 5)
                .await
                .expect("bob's release starts");
        }
        if self.write_on_state_read {
            let record = Rotations::get(&self.inner, a).await?.expect("a record");
            write_again(&self.inner, record).await;
        }
        use std::sync::atomic::Ordering::SeqCst;
        let lagging = self
            .active_reads
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
        if lagging.is_ok() {
            return Ok(Some(MemberState::Active));
        }
        self.inner.member_state(a).await
    }

    async fn close_member(&self, a: &AccountId) -> LifecycleResult<()> {
        if let Some(answers) = &self.bob_while_asked {
            let customer = EmailAddress::parse("cfo@initech.example").unwrap();
            let bob = releasing(a, "bob");
            let release = steps::start_release(&self.inner, &bob, &customer, NOW + 15).await;
            let closure = close(&self.inner, ("bob", "duplicate", None), NOW + 15).await;
            let mut answers = answers.lock().unwrap();
            answers.push(format!("{:?}", release.map(|o| o.phase)));
            answers.push(format!("{:?}", closure.map(|o| o.phase)));
        }
        if self.write_meanwhile {
            let record = Rotations::get(&self.inner, a).await?.expect("a record");
            write_again(&self.inner, record).await;
        }
        match self.error {
            Some(error) => Err(error()),
            None => self.inner.close_member(a).await,
        }
    }
}

lifecycle_ports!(
    ClosureInterrupted<'a>,
    inner,
    Api api: own,
    Root root: local,
    Vault vault: local,
    Rotations rotations: local,
    Audit audit: local,
    Registry registry: local,
    Tokens tokens: local,
    Notices notices: local,
);

/// Writes `record` as the next version of the one read, as another writer
/// would.
async fn write_again(lifecycle: &LocalLifecycle<'_>, mut record: rootmail_lifecycle::Rotation) {
    let read = record.version;
    record.version += 1;
    Rotations::put(lifecycle, &record, Some(read))
        .await
        .expect("written");
}

fn quota_used() -> LifecycleError {
    LifecycleError::Refused(
        "AWS Organizations closes at most 10% of an organization's member accounts".into(),
    )
}

/// AWS asked to slow down (perhaps after an attempt it took, the SDK's
/// retries hiding it).
fn throttled() -> LifecycleError {
    LifecycleError::Port(rootmail_pipeline::PortError::new(
        rootmail_pipeline::ErrorKind::Throttled,
        "account",
        "the Account API is busy or failing for account 444455556666 (TooManyRequestsException)",
    ))
}

fn organizations_down() -> LifecycleError {
    LifecycleError::Port(rootmail_pipeline::PortError::transient(
        "organizations",
        "AWS Organizations could not close account 444455556666: HTTP 500",
    ))
}

/// A closure AWS refuses, or a call to AWS that fails, leaves the account as
/// it was, and the audit says who asked and what came of it; asked again
/// later, it closes.
#[tokio::test]
async fn a_closure_aws_refuses_or_fails_leaves_the_account_as_it_was() {
    for (error, said) in [
        (
            quota_used as fn() -> LifecycleError,
            "did not close it: AWS Organizations closes at most 10%",
        ),
        (
            organizations_down,
            "asking AWS Organizations failed, the account is as it was",
        ),
    ] {
        let local = Local::active_vaulted().await;
        let failing = ClosureInterrupted {
            error: Some(error),
            ..ClosureInterrupted::new(&local)
        };
        let failed = close(&failing, ("alice", "customer left", None), NOW + 10).await;
        assert_eq!(failed.unwrap_err().to_string(), error().to_string());
        assert_eq!(local.phase().await, Some(Phase::Active));
        let lifecycle = local.lifecycle();
        let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
        let rows: Vec<(&str, &str)> = audit
            .iter()
            .rev()
            .take(2)
            .map(|e| (e.actor.as_str(), e.action.as_str()))
            .collect();
        assert_eq!(
            rows,
            [("alice", "closure failed"), ("alice", "closure requested")]
        );
        let detail = &audit.last().unwrap().detail;
        assert!(detail.contains(said), "{detail}");
        assert_eq!(local.listed_status().await, AccountStatus::Active);
        let closed = close(&lifecycle, ("alice", "customer left", None), NOW + 20)
            .await
            .unwrap();
        assert_eq!(closed.phase, Phase::Closed);
    }
}

/// A release another operator starts while the closure reads AWS's view of
/// the account: the closure's claim on the record fails, AWS is not asked to
/// close an account being handed to its customer, and asked again the
/// closure is refused (before, nothing claimed the record before AWS was
/// asked).
#[tokio::test]
async fn a_release_started_during_a_closure_stops_it_before_aws_is_asked() {
    let local = Local::active_vaulted().await;
    let racing = ClosureInterrupted {
        release_meanwhile: true,
        ..ClosureInterrupted::new(&local)
    };
    let lost = close(&racing, ("alice", "customer left", None), NOW + 10).await;
    assert!(
        matches!(&lost, Err(e) if e.to_string().contains("changed meanwhile")),
        "{lost:?}"
    );
    let lifecycle = local.lifecycle();
    assert_eq!(
        lifecycle.member_state(&account()).await.unwrap(),
        Some(MemberState::Active),
        "AWS was not asked"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingCustomerOtp));
    let actions = local.actions().await;
    assert!(
        !actions.iter().any(|a| a.starts_with("closure")),
        "{actions:?}"
    );
    let again = close(&lifecycle, ("alice", "customer left", None), NOW + 20).await;
    assert!(
        matches!(&again, Err(LifecycleError::Refused(m)) if m.contains("being released")),
        "{again:?}"
    );
}

/// While AWS is asked to close the account, the record is claimed: a
/// release that reads it then is refused (before, it started, and the
/// customer was mailed a code for an account being closed), and a second
/// closure waits rather than ask AWS twice.
#[tokio::test]
async fn nothing_starts_while_aws_is_asked_to_close_the_account() {
    let local = Local::active_vaulted().await;
    let asked = ClosureInterrupted {
        bob_while_asked: Some(Default::default()),
        ..ClosureInterrupted::new(&local)
    };
    let closed = close(&asked, ("alice", "customer left", None), NOW + 10).await;
    assert_eq!(closed.map(|o| o.phase).ok(), Some(Phase::Closed));
    let answers = asked.bob_while_asked.unwrap().into_inner().unwrap();
    let [release, closure] = <[String; 2]>::try_from(answers).unwrap();
    assert!(
        release.contains("Refused") && release.contains("being asked to close"),
        "{release}"
    );
    assert!(
        closure.contains("NotYet") && closure.contains("has asked"),
        "{closure}"
    );
    let asks = local.actions().await;
    assert_eq!(asks.iter().filter(|a| *a == "closure requested").count(), 1);
    assert!(!asks.iter().any(|a| a == "release started"), "{asks:?}");
    let record = Rotations::get(&local.lifecycle(), &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.closure_claimed_at, None);
}

/// A claim whose run stopped before AWS answered lapses after 15 minutes
/// (a run of the close step is shorter): until then a release is refused
/// and another closure waits; then the closure asks. A claim whose audit
/// row could not be written goes at once: AWS was not asked.
#[tokio::test]
async fn a_closure_s_claim_lapses_or_goes_when_aws_was_not_asked() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    let mut record = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    record.closure_claimed_at = Some(NOW + 10);
    write_again(&lifecycle, record).await;
    let customer = EmailAddress::parse("cfo@initech.example").unwrap();
    let bob = releasing(&account(), "bob");
    let release = steps::start_release(&lifecycle, &bob, &customer, NOW + 20).await;
    assert!(
        matches!(&release, Err(LifecycleError::Refused(m)) if m.contains("being asked to close")),
        "{release:?}"
    );
    let waits = close(&lifecycle, ("alice", "customer left", None), NOW + 20).await;
    assert!(matches!(waits, Err(LifecycleError::NotYet(_))), "{waits:?}");
    let lapsed = close(&lifecycle, ("alice", "customer left", None), NOW + 10 + 901).await;
    assert_eq!(lapsed.map(|o| o.phase).ok(), Some(Phase::Closed));

    let local = Local::active_vaulted().await;
    let audit_down = AuditDownOnce::new(&local, "closure requested");
    let unasked = close(&audit_down, ("alice", "customer left", None), NOW + 10).await;
    assert!(unasked.is_err(), "{unasked:?}");
    let lifecycle = local.lifecycle();
    assert_eq!(
        lifecycle.member_state(&account()).await.unwrap(),
        Some(MemberState::Active),
        "AWS not asked"
    );
    let closed = close(&lifecycle, ("alice", "customer left", None), NOW + 20).await;
    assert_eq!(closed.map(|o| o.phase).ok(), Some(Phase::Closed));
}

/// The local lifecycle where carol closes the account while the release
/// mails `NoticeTo` (`close_during_notice`), or where a closure runs whole
/// right after the release reads the record (`close_after_read`).
struct ReleaseInterrupted<'a> {
    inner: LocalLifecycle<'a>,
    close_during_notice: bool,
    release_during_notice: bool,
    close_after_read: std::sync::atomic::AtomicBool,
    /// What carol's closure or release answered.
    carol_said: std::sync::Mutex<Option<String>>,
}

impl<'a> ReleaseInterrupted<'a> {
    fn new(local: &'a Local) -> Self {
        Self {
            inner: local.lifecycle(),
            close_during_notice: false,
            release_during_notice: false,
            close_after_read: false.into(),
            carol_said: Default::default(),
        }
    }

    /// Bob's release to the customer's owner@initech.example, interrupted
    /// as set, and what carol was answered meanwhile (`None`: not asked).
    async fn bob_releases(&self) -> (LifecycleResult<StepOutput>, Option<String>) {
        let customer = EmailAddress::parse("owner@initech.example").unwrap();
        let bob = releasing(&account(), "bob");
        let started = steps::start_release(self, &bob, &customer, NOW + 5).await;
        (started, self.carol_said.lock().unwrap().take())
    }

    async fn carol_closes(&self) {
        let closed = close(&self.inner, ("carol", "customer left", None), NOW + 5).await;
        *self.carol_said.lock().unwrap() = Some(format!("{:?}", closed.map(|o| o.phase)));
    }

    /// Carol releases the account to another of the customer's addresses.
    async fn carol_releases(&self) {
        let to = EmailAddress::parse("it@initech.example").unwrap();
        let carol = releasing(&account(), "carol");
        let started = steps::start_release(&self.inner, &carol, &to, NOW + 5).await;
        *self.carol_said.lock().unwrap() = Some(format!("{:?}", started.map(|o| o.phase)));
    }
}

impl rootmail_lifecycle::Notices for ReleaseInterrupted<'_> {
    async fn ticket_note(
        &self,
        account: &AccountId,
        customer: &str,
        text: &str,
    ) -> LifecycleResult<()> {
        rootmail_lifecycle::Notices::ticket_note(&self.inner, account, customer, text).await
    }

    async fn email(&self, subject: &str, text: &str) -> LifecycleResult<()> {
        if self.close_during_notice {
            self.carol_closes().await;
        }
        if self.release_during_notice && text.contains("bob started") {
            self.carol_releases().await;
        }
        rootmail_lifecycle::Notices::email(&self.inner, subject, text).await
    }
}

impl Rotations for ReleaseInterrupted<'_> {
    async fn get(
        &self,
        account: &AccountId,
    ) -> LifecycleResult<Option<rootmail_lifecycle::Rotation>> {
        let read = Rotations::get(&self.inner, account).await;
        if self
            .close_after_read
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            self.carol_closes().await;
        }
        read
    }

    async fn put(
        &self,
        rotation: &rootmail_lifecycle::Rotation,
        expected: Option<u64>,
    ) -> LifecycleResult<()> {
        Rotations::put(&self.inner, rotation, expected).await
    }
}

lifecycle_ports!(
    ReleaseInterrupted<'a>,
    inner,
    Api api: local,
    Root root: local,
    Vault vault: local,
    Rotations rotations: own,
    Audit audit: local,
    Registry registry: local,
    Tokens tokens: local,
    Notices notices: own,
);

/// A release claims the record before it mails `NoticeTo` or asks AWS: a
/// closure while it does waits (`NotYet`), and is refused once the release
/// has started. Before, both went ahead: the release mailed security and
/// AWS mailed the customer a code for an account being closed.
#[tokio::test]
async fn a_closure_while_a_release_starts_waits_for_it() {
    let local = Local::active_vaulted().await;
    let noticed = ReleaseInterrupted {
        close_during_notice: true,
        ..ReleaseInterrupted::new(&local)
    };
    let (started, closure) = noticed.bob_releases().await;
    assert_eq!(
        started.map(|o| o.phase).ok(),
        Some(Phase::AwaitingCustomerOtp)
    );
    let closure = closure.unwrap();
    assert!(
        closure.contains("NotYet") && closure.contains("release"),
        "{closure}"
    );
    let lifecycle = local.lifecycle();
    assert_eq!(
        lifecycle.member_state(&account()).await.unwrap(),
        Some(MemberState::Active),
        "AWS not asked to close it"
    );
    let later = close(&lifecycle, ("carol", "customer left", None), NOW + 10).await;
    assert!(
        matches!(&later, Err(LifecycleError::Refused(m)) if m.contains("released to its customer")),
        "{later:?}"
    );
    let mailed = notices(&local);
    assert!(mailed.iter().any(|n| n.contains("release of AWS account")));
    let record = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.release_starting_since, None,
        "the release's save ends its claim"
    );
}

/// Two releases at the same moment: the one that claimed the record goes
/// ahead, the other waits (`NotYet`) rather than have AWS mail two codes,
/// honour the later one and leave the record naming the other address. The
/// same request run again after a lost answer (the state machine's retry)
/// is its own claim's and goes on.
#[tokio::test]
async fn a_second_release_while_one_starts_waits_for_it() {
    let local = Local::active_vaulted().await;
    let customer = EmailAddress::parse("owner@initech.example").unwrap();
    let bob = releasing(&account(), "bob");
    let noticed = ReleaseInterrupted {
        release_during_notice: true,
        ..ReleaseInterrupted::new(&local)
    };
    let (started, carol) = noticed.bob_releases().await;
    assert_eq!(
        started.map(|o| o.phase).ok(),
        Some(Phase::AwaitingCustomerOtp)
    );
    let carol = carol.unwrap();
    assert!(carol.contains("NotYet") && carol.contains("bob"), "{carol}");
    let lifecycle = local.lifecycle();
    let record = Rotations::get(&lifecycle, &account()).await.unwrap();
    let record = record.unwrap();
    assert_eq!(record.target_email, customer);
    assert_eq!(record.release_starting_for, None, "the save ends the claim");
    let said = local.actions().await;
    let started = said.iter().filter(|a| *a == "release started").count();
    assert_eq!(started, 1, "{said:?}");
    assert_eq!(notices(&local).len(), 1, "one mail to NoticeTo");

    // A lost answer keeps bob's claim: carol waits, bob's retry goes on.
    let local = Local::active_vaulted().await;
    let lost = ClosureInterrupted {
        email_update_answer: Some(organizations_down),
        ..ClosureInterrupted::new(&local)
    };
    let failed = steps::start_release_step(&lost, &bob, &customer, NOW + 5).await;
    assert!(failed.is_err(), "{failed:?}");
    let lifecycle = local.lifecycle();
    let other = EmailAddress::parse("it@initech.example").unwrap();
    let carol = releasing(&account(), "carol");
    let waits = steps::start_release(&lifecycle, &carol, &other, NOW + 10).await;
    assert!(matches!(waits, Err(LifecycleError::NotYet(_))), "{waits:?}");
    // A person running the same release again asks AWS for a second code.
    let waits = steps::start_release(&lifecycle, &bob, &customer, NOW + 10).await;
    assert!(matches!(waits, Err(LifecycleError::NotYet(_))), "{waits:?}");
    let retried = steps::start_release_step(&lifecycle, &bob, &customer, NOW + 15).await;
    assert_eq!(
        retried.map(|o| o.phase).ok(),
        Some(Phase::AwaitingCustomerOtp)
    );
}

/// A release whose root email change AWS may have taken (its answer lost)
/// keeps its claim: the customer may hold a code, and a closure waits it
/// out (throttled too: the SDK's last retry may follow an attempt AWS
/// took). One AWS refused ends its claim at once.
#[tokio::test]
async fn a_release_aws_may_have_taken_keeps_its_claim() {
    let customer = EmailAddress::parse("owner@initech.example").unwrap();
    let bob = releasing(&account(), "bob");
    for (answer, kept) in [
        (organizations_down as fn() -> LifecycleError, true),
        (quota_used, false),
        (throttled, true),
    ] {
        let local = Local::active_vaulted().await;
        let lost = ClosureInterrupted {
            email_update_answer: Some(answer),
            ..ClosureInterrupted::new(&local)
        };
        let failed = steps::start_release(&lost, &bob, &customer, NOW + 5).await;
        assert!(failed.is_err(), "{failed:?}");
        let closed = close(
            &local.lifecycle(),
            ("carol", "customer left", None),
            NOW + 10,
        )
        .await;
        match kept {
            true => assert!(
                matches!(closed, Err(LifecycleError::NotYet(_))),
                "{closed:?}"
            ),
            false => assert_eq!(closed.map(|o| o.phase).ok(), Some(Phase::Closed)),
        }
    }
}

/// A closure that went through after a release read the record makes the
/// release's claim fail: nothing is mailed, AWS is not asked.
#[tokio::test]
async fn a_release_that_read_the_record_before_a_closure_mails_nothing() {
    let local = Local::active_vaulted().await;
    let read_first = ReleaseInterrupted {
        close_after_read: true.into(),
        ..ReleaseInterrupted::new(&local)
    };
    let (stale, closure) = read_first.bob_releases().await;
    assert!(stale.is_err(), "{stale:?}");
    assert_eq!(closure.as_deref(), Some("Ok(Closed)"));
    assert!(!local.actions().await.iter().any(|a| a == "release started"));
    let mailed = notices(&local);
    assert!(
        !mailed.iter().any(|n| n.contains("release of AWS account")),
        "{mailed:?}"
    );
    let asked = std::fs::read_dir(local.lifecycle().simulated_mail_dir())
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(asked, 0, "AWS mailed no code: it was not asked");
}

/// AWS accepted the closure but its view still shows the account ACTIVE:
/// nothing is recorded closed yet (`NotYet`, which the state machine
/// retries), and no release starts meanwhile; run again, the closure asks
/// AWS nothing more, and records what AWS shows once it shows it closing
/// (before, the record said closed whatever AWS showed, and each run asked
/// AWS again).
#[tokio::test]
async fn a_closure_aws_does_not_show_yet_is_recorded_once_it_does() {
    let local = Local::active_vaulted().await;
    let lagging = ClosureInterrupted {
        active_reads: 3.into(),
        ..ClosureInterrupted::new(&local)
    };
    for at in [NOW + 10, NOW + 40] {
        let early = close(&lagging, ("alice", "customer left", None), at).await;
        assert!(
            matches!(&early, Err(LifecycleError::NotYet(m)) if m.contains("shows it ACTIVE still")),
            "{early:?}"
        );
        assert_eq!(local.phase().await, Some(Phase::Active));
    }
    // `accounts list` and `rotation status` say what the account waits for.
    let record = Rotations::get(&lagging.inner, &account())
        .await
        .unwrap()
        .unwrap();
    let waits = rootmail_lifecycle::estate::waiting_for(&record).unwrap_or_default();
    assert!(waits.contains("show the closure it accepted"), "{waits}");
    assert_eq!(
        record.closure_claimed_at, None,
        "the acceptance replaces the claim"
    );
    let customer = EmailAddress::parse("cfo@initech.example").unwrap();
    let bob = releasing(&account(), "bob");
    let release = steps::start_release(&lagging, &bob, &customer, NOW + 50).await;
    assert!(
        matches!(&release, Err(LifecycleError::Refused(m)) if m.contains("is closing")),
        "no release of an account AWS is closing: {release:?}"
    );
    let closed = close(&lagging, ("alice", "customer left", None), NOW + 70)
        .await
        .unwrap();
    assert_eq!(closed.phase, Phase::Closed);
    let actions = local.actions().await;
    let closure: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("clos"))
        .collect();
    assert_eq!(closure, ["closure requested", "closed"], "asked once");
    let audit = AuditLog::entries(&local.lifecycle(), &account())
        .await
        .unwrap();
    let detail = &audit.last().unwrap().detail;
    assert!(detail.contains("it shows PENDING_CLOSURE"), "{detail}");
}

/// AWS accepted the closure, and a day later still shows the account
/// ACTIVE: it did not close it. The note goes (audited `closure lapsed`),
/// a release may start again, and close asks AWS anew; a new take-over is
/// refused while the note stands (before, nothing could ever clear it).
#[tokio::test]
async fn a_closure_aws_never_shows_lapses_after_a_day() {
    let local = Local::active_vaulted().await;
    let lagging = ClosureInterrupted {
        active_reads: 100.into(),
        ..ClosureInterrupted::new(&local)
    };
    let early = close(&lagging, ("alice", "customer left", None), NOW + 10).await;
    assert!(matches!(early, Err(LifecycleError::NotYet(_))), "{early:?}");
    // A take-over over a failed one would drop the note: refused.
    let mut record = Rotations::get(&lagging.inner, &account())
        .await
        .unwrap()
        .unwrap();
    record.phase = Phase::Failed;
    write_again(&lagging.inner, record).await;
    let again = local.take_over(Mode::Vaulted).await;
    assert!(
        matches!(&again, Err(LifecycleError::Refused(m)) if m.contains("is closing")),
        "{again:?}"
    );
    let a_day_later = NOW + 10 + 24 * 60 * 60;
    let lapsed = close(&lagging, ("alice", "customer left", None), a_day_later).await;
    assert!(
        matches!(&lapsed, Err(LifecycleError::Refused(m)) if m.contains("did not close it")),
        "{lapsed:?}"
    );
    let record = Rotations::get(&lagging.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.closure_requested_at, None);
    let actions = local.actions().await;
    assert_eq!(actions.last().map(String::as_str), Some("closure lapsed"));
    let asks = |actions: &[String]| actions.iter().filter(|a| *a == "closure requested").count();
    assert_eq!(asks(&actions), 1);
    // Asked anew.
    let anew = close(&lagging, ("alice", "customer left", None), a_day_later + 10).await;
    assert!(matches!(anew, Err(LifecycleError::NotYet(_))), "{anew:?}");
    assert_eq!(asks(&local.actions().await), 2);
}

/// Another write to the record while AWS is asked (a mail's evidence, a
/// release that read after the claim): the note that AWS accepted is
/// still saved, so the rerun asks nothing (before, the note's save failed
/// on the record's version, and the rerun asked AWS a second time).
#[tokio::test]
async fn a_write_while_aws_is_asked_does_not_make_the_closure_ask_twice() {
    let local = Local::active_vaulted().await;
    let busy = ClosureInterrupted {
        active_reads: 2.into(),
        write_meanwhile: true,
        ..ClosureInterrupted::new(&local)
    };
    let early = close(&busy, ("alice", "customer left", None), NOW + 10).await;
    assert!(matches!(early, Err(LifecycleError::NotYet(_))), "{early:?}");
    let record = Rotations::get(&busy.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.closure_requested_at, Some(NOW + 10));
    let closed = close(&busy, ("alice", "customer left", None), NOW + 40)
        .await
        .unwrap();
    assert_eq!(closed.phase, Phase::Closed);
    let asks = local.actions().await;
    let asks = asks.iter().filter(|a| *a == "closure requested").count();
    assert_eq!(asks, 1);
}

/// The closure saved, then its audit row failed: the step runs again (Step
/// Functions retries it) and writes the row once, where it was refused as
/// "already closed" and the execution failed with no "closed" row.
#[tokio::test]
async fn a_closure_whose_audit_row_failed_writes_it_when_run_again() {
    let local = Local::active_vaulted().await;
    let audit_down = AuditDownOnce::new(&local, "closed");
    let failed = close(&audit_down, ("alice", "customer left", None), NOW + 10).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(local.phase().await, Some(Phase::Closed));
    let again = close(&audit_down, ("alice", "customer left", None), NOW + 20)
        .await
        .expect("the lost row written");
    assert_eq!(again.phase, Phase::Closed);
    let count = |actions: &[String]| actions.iter().filter(|a| *a == "closed").count();
    assert_eq!(count(&local.actions().await), 1);
    // The same closure again (an answer lost after it all went through):
    // answered as before. Another one is refused.
    let third = close(&audit_down, ("alice", "customer left", None), NOW + 30).await;
    assert_eq!(third.map(|o| o.phase).ok(), Some(Phase::Closed));
    let other = close(&audit_down, ("bob", "customer left", None), NOW + 40).await;
    assert!(
        matches!(&other, Err(LifecycleError::Refused(m)) if m.contains("already closed")),
        "{other:?}"
    );
    assert_eq!(count(&local.actions().await), 1);
}

/// AWS Support reopens a closed account (within 90 days of its closure):
/// `reopen` records it once AWS Organizations shows it ACTIVE, and the
/// account is ours again as it was: its mail ticketed, its credentials
/// served, and a later `close` asks AWS anew. Before, nothing led back from
/// `closed`, and the account's mail stayed archived.
#[tokio::test]
async fn a_member_account_aws_support_reopened_is_ours_again() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    let not_closed = reopen(&lifecycle, ("alice", "support reopened it", None), NOW).await;
    assert!(
        matches!(&not_closed, Err(LifecycleError::Refused(m)) if m.contains("not closed (active)")),
        "{not_closed:?}"
    );
    close(&lifecycle, ("alice", "customer left", None), NOW + 10)
        .await
        .unwrap();
    for attest in [None, Some("support says it is open")] {
        let early = reopen(&lifecycle, ("alice", "reopened", attest), NOW + 20).await;
        assert!(
            matches!(&early, Err(LifecycleError::Refused(m)) if m.contains("PENDING_CLOSURE") && m.contains("AWS Support")),
            "AWS shows it closing: {early:?}"
        );
    }
    assert_eq!(local.listed_status().await, AccountStatus::Closed);

    lifecycle
        .console(&account(), ConsoleStep::SupportReopens, NOW + 30)
        .unwrap();
    let reopened = reopen(
        &lifecycle,
        ("alice", "the customer came back", None),
        NOW + 40,
    )
    .await
    .unwrap();
    assert_eq!(reopened.phase, Phase::Active);
    assert_eq!(local.listed_status().await, AccountStatus::Active);
    let record = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.closed_from, record.closure_requested_at),
        (None, None)
    );
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let row = audit.last().unwrap();
    assert_eq!(
        (
            row.actor.as_str(),
            row.action.as_str(),
            row.reason.as_deref()
        ),
        ("alice", "reopened", Some("the customer came back"))
    );
    assert!(
        row.detail.contains("shows it ACTIVE") && row.detail.contains("active again"),
        "{}",
        row.detail
    );
    let access = steps::access(&lifecycle, &access_request("check the bill"), NOW + 50).await;
    let access = access.expect("the credentials it had");
    assert!(!access.pending && access.totp_code.is_some());

    // Asked again (its answer lost): answered as before; by another, refused.
    let again = reopen(
        &lifecycle,
        ("alice", "the customer came back", None),
        NOW + 60,
    )
    .await;
    assert_eq!(again.map(|o| o.phase).ok(), Some(Phase::Active));
    let other = reopen(
        &lifecycle,
        ("bob", "the customer came back", None),
        NOW + 60,
    )
    .await;
    assert!(
        matches!(&other, Err(LifecycleError::Refused(m)) if m.contains("not closed")),
        "{other:?}"
    );
    let reopened_rows = |actions: &[String]| actions.iter().filter(|a| *a == "reopened").count();
    assert_eq!(reopened_rows(&local.actions().await), 1);

    // Closed again: AWS is asked again, as the first time.
    let closed = close(
        &lifecycle,
        ("alice", "customer left for good", None),
        NOW + 70,
    )
    .await
    .unwrap();
    assert_eq!(closed.phase, Phase::Closed);
    let asks = local.actions().await;
    assert_eq!(asks.iter().filter(|a| *a == "closure requested").count(), 2);
}

/// A released account closed by its customer and reopened is released
/// again (its mail archived, as before the closure), and one closed while
/// its release waited for the customer waits again, ours in the directory.
#[tokio::test]
async fn a_reopened_account_is_what_it_was_when_closed() {
    for released in [true, false] {
        let local = Local::active_vaulted().await;
        let lifecycle = local.lifecycle();
        let (_, code) = local.release_started(NOW).await;
        if released {
            let done = complete(&lifecycle, &account(), "alice", (Some(&code), None), NOW).await;
            assert_eq!(done.unwrap()[0].phase, Phase::Released);
        }
        lifecycle.close_member(&account()).await.unwrap(); // the customer
        close(
            &lifecycle,
            ("alice", "the customer closed it", None),
            NOW + 10,
        )
        .await
        .unwrap();
        lifecycle
            .console(&account(), ConsoleStep::SupportReopens, NOW + 20)
            .unwrap();
        let reopened = reopen(&lifecycle, ("alice", "support reopened it", None), NOW + 30)
            .await
            .unwrap();
        let record = Rotations::get(&lifecycle, &account())
            .await
            .unwrap()
            .unwrap();
        let ours = record.previous_email.unwrap();
        let listed = lifecycle.by_email(&ours).await.unwrap().unwrap().status;
        let wanted = match released {
            true => (Phase::Released, AccountStatus::Released),
            false => (Phase::AwaitingCustomerOtp, AccountStatus::Active),
        };
        assert_eq!((reopened.phase, listed), wanted);
        if !released {
            // Started again at once through the release state machine: a
            // release, not taken for a retry of the one before.
            let customer = EmailAddress::parse("owner@initech.example").unwrap();
            let again = releasing(&account(), "alice");
            steps::start_release_step(&lifecycle, &again, &customer, NOW + 40)
                .await
                .unwrap();
            let actions = local.actions().await;
            let starts = actions.iter().filter(|a| *a == "release started").count();
            assert_eq!(starts, 2, "{actions:?}");
        }
    }
}

/// A take-over a closure interrupted ended with it: reopened, the account
/// is `failed`, and a new take-over may start. Its address stays closed
/// where AWS never took it. The interrupted take-over's execution may still
/// be waiting (the closure dropped its task token): when its wait times
/// out, its failure step does not fail the new take-over.
#[tokio::test]
async fn a_take_over_a_closure_interrupted_is_failed_once_reopened() {
    let local = Local::new();
    local
        .take_over_as(Mode::Vaulted, "run-1", NOW)
        .await
        .unwrap();
    assert_eq!(local.phase().await, Some(Phase::AwaitingEngineer));
    let lifecycle = local.lifecycle();
    closed_then_reopened_by_support(&lifecycle, NOW + 10).await;
    let reopened = reopen(&lifecycle, ("alice", "support reopened it", None), NOW + 30)
        .await
        .unwrap();
    assert_eq!(reopened.phase, Phase::Failed);
    let record = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    let failure = record.failure.expect("why it failed");
    assert_eq!(failure.phase, Phase::AwaitingEngineer);
    assert_eq!(local.listed_status().await, AccountStatus::Onboarding);
    let detail = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let detail = &detail.last().unwrap().detail;
    assert!(detail.contains("awaiting_engineer"), "{detail}");

    let again = local.take_over_as(Mode::Vaulted, "run-2", NOW + 40).await;
    assert_eq!(again.unwrap().last(), Some(&Phase::AwaitingEngineer));
    let timed_out = ("the engineer's task timed out", Some("run-1"));
    let stale = steps::record_failure(&lifecycle, &account(), timed_out, NOW + 50).await;
    assert!(
        matches!(&stale, Err(LifecycleError::Refused(m)) if m.contains("another execution")),
        "{stale:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingEngineer));
    let own = ("the engineer's task timed out", Some("run-2"));
    let failed = steps::record_failure(&lifecycle, &account(), own, NOW + 60).await;
    assert_eq!(failed.unwrap().phase, Phase::Failed);

    // Closed before AWS took our address: it stays closed in the directory.
    let before = Local::new();
    before.take_over(Mode::Console).await.unwrap();
    assert_eq!(before.phase().await, Some(Phase::AwaitingOtp));
    let lifecycle = before.lifecycle();
    let attest = Some("closed in the console");
    close(&lifecycle, ("carol", "customer left", attest), NOW + 10)
        .await
        .unwrap();
    let said = Some("the console shows it open");
    let reopened = reopen(&lifecycle, ("carol", "customer is back", said), NOW + 20).await;
    assert_eq!(reopened.unwrap().phase, Phase::Failed);
    assert_eq!(before.listed_status().await, AccountStatus::Closed);
}

/// A vaulted take-over closed with only its activation left (the engineer's
/// task answered, the root credentials vaulted) is active once reopened,
/// its credentials served; failed, they would be unreachable.
#[tokio::test]
async fn an_account_closed_with_only_its_activation_left_is_active_once_reopened() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    let mut record = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    record.phase = Phase::Secured;
    write_again(&lifecycle, record).await;
    closed_then_reopened_by_support(&lifecycle, NOW + 10).await;
    let reopened = reopen(&lifecycle, ("alice", "customer is back", None), NOW + 30).await;
    assert_eq!(reopened.map(|o| o.phase).ok(), Some(Phase::Active));
    assert_eq!(local.listed_status().await, AccountStatus::Active);
    let access = steps::access(&lifecycle, &access_request("check the bill"), NOW + 40).await;
    assert!(access.is_ok_and(|grant| !grant.pending && grant.totp_code.is_some()));
}

/// Register saved, then its audit row failed: Step Functions runs it again
/// and it answers as before, the row written once, where it refused its own
/// registration ("already running") and the take-over stopped with a
/// record nothing would move on. Another execution is still refused.
#[tokio::test]
async fn a_registration_run_again_by_its_execution_answers_as_before() {
    let local = Local::new();
    let audit_down = AuditDownOnce::new(&local, "take-over started");
    let run = |execution: &str| TakeOver {
        execution: Some(execution.to_string()),
        ..request(Mode::Rootless)
    };
    let lost = steps::register(&audit_down, &run("run-1"), NOW).await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(local.phase().await, Some(Phase::Registered));
    let again = steps::register(&audit_down, &run("run-1"), NOW + 5).await;
    assert_eq!(again.map(|o| o.phase).ok(), Some(Phase::Registered));
    let actions = local.actions().await;
    let rows = actions.iter().filter(|a| *a == "take-over started").count();
    assert_eq!(rows, 1, "{actions:?}");
    let other = steps::register(&audit_down, &run("run-2"), NOW + 10).await;
    assert!(
        matches!(&other, Err(LifecycleError::Refused(m)) if m.contains("already running")),
        "{other:?}"
    );
}

/// AWS reopens an account only within 90 days of its closure.
#[tokio::test]
async fn an_account_closed_more_than_90_days_ago_is_not_reopened() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    closed_then_reopened_by_support(&lifecycle, NOW + 10).await;
    let day = 24 * 60 * 60;
    let late = reopen(
        &lifecycle,
        ("alice", "customer is back", None),
        NOW + 10 + 91 * day,
    )
    .await;
    assert!(
        matches!(&late, Err(LifecycleError::Refused(m)) if m.contains("more than 90 days")),
        "{late:?}"
    );
    let in_time = reopen(
        &lifecycle,
        ("alice", "customer is back", None),
        NOW + 10 + 89 * day,
    )
    .await;
    assert_eq!(in_time.map(|o| o.phase).ok(), Some(Phase::Active));
}

/// Another write to the record while the reopening asks AWS: its save
/// fails, and the directory still says closed with the record (it was
/// written first, and said active of a closed account).
#[tokio::test]
async fn a_reopening_whose_save_fails_leaves_the_directory_closed() {
    let local = Local::active_vaulted().await;
    close(
        &local.lifecycle(),
        ("alice", "customer left", None),
        NOW + 10,
    )
    .await
    .unwrap();
    let lifecycle = local.lifecycle();
    lifecycle
        .console(&account(), ConsoleStep::SupportReopens, NOW + 20)
        .unwrap();
    let busy = ClosureInterrupted {
        write_on_state_read: true,
        ..ClosureInterrupted::new(&local)
    };
    let lost = reopen(&busy, ("alice", "customer is back", None), NOW + 30).await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(local.phase().await, Some(Phase::Closed));
    assert_eq!(local.listed_status().await, AccountStatus::Closed);
    let reopened = reopen(&lifecycle, ("alice", "customer is back", None), NOW + 40).await;
    assert_eq!(reopened.map(|o| o.phase).ok(), Some(Phase::Active));
    assert_eq!(local.listed_status().await, AccountStatus::Active);
}

/// A console account (a payer or standalone one) shows it was reopened only
/// in its console: `reopen` needs the engineer's word, as `close` did.
#[tokio::test]
async fn a_console_account_is_recorded_reopened_on_the_engineer_s_word() {
    let local = Local::new();
    let address = local.console_code_read().await;
    let lifecycle = local.lifecycle();
    let attest = Some("closed in the console at the customer's request");
    close(&lifecycle, ("carol", "customer left", attest), NOW + 300)
        .await
        .unwrap();
    let unsaid = reopen(&lifecycle, ("carol", "customer is back", None), NOW + 310).await;
    assert!(
        matches!(&unsaid, Err(LifecycleError::Refused(m)) if m.contains("AWS Support") && m.contains("--attest")),
        "{unsaid:?}"
    );
    let said = Some("signed in as its root user: the console shows it open");
    let reopened = reopen(&lifecycle, ("carol", "customer is back", said), NOW + 320)
        .await
        .unwrap();
    assert_eq!(reopened.phase, Phase::Failed, "its take-over was under way");
    let row = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let row = row.last().unwrap();
    assert_eq!(
        (row.actor.as_str(), row.action.as_str()),
        ("carol", "reopened")
    );
    assert!(
        row.detail.contains("as attested: signed in"),
        "{}",
        row.detail
    );
    let listed = lifecycle.by_email(&address).await.unwrap().unwrap();
    assert_eq!(listed.status, AccountStatus::Onboarding);
}

/// The reopening saved, then its audit row failed: run again, the row is
/// written once, and the same request after that is answered as before.
#[tokio::test]
async fn a_reopening_whose_audit_row_failed_writes_it_when_run_again() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    closed_then_reopened_by_support(&lifecycle, NOW + 10).await;
    let audit_down = AuditDownOnce::new(&local, "reopened");
    let alice = ("alice", "support reopened it", None);
    let failed = reopen(&audit_down, alice, NOW + 30).await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(local.phase().await, Some(Phase::Active));
    assert_eq!(local.listed_status().await, AccountStatus::Closed);
    let rows = || async {
        let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
        let reopened = audit.into_iter().filter(|e| e.action == "reopened");
        let who = reopened.map(|e| (e.actor, e.reason.unwrap_or_default()));
        who.collect::<Vec<_>>()
    };
    assert_eq!(rows().await, []);
    // bob runs it again: refused, and the lost row is alice's, not his.
    let bob = reopen(&audit_down, ("bob", "tidying up", None), NOW + 40).await;
    assert!(
        matches!(&bob, Err(LifecycleError::Refused(m)) if m.contains("not closed")),
        "{bob:?}"
    );
    let alices = vec![("alice".to_string(), "support reopened it".to_string())];
    assert_eq!(rows().await, alices);
    assert_eq!(local.listed_status().await, AccountStatus::Active);
    let again = reopen(&audit_down, alice, NOW + 50).await;
    assert_eq!(again.map(|o| o.phase).ok(), Some(Phase::Active));
    assert_eq!(rows().await, alices);
    assert_eq!(local.listed_status().await, AccountStatus::Active);
}

/// The password-reset mail an engineer triggers during a vaulted take-over goes
/// to the waiting rotation (for `creds get`), never to a ticket.
#[tokio::test]
async fn the_reset_link_of_a_vaulted_take_over_goes_to_the_vault_not_a_ticket() {
    let local = Local::new();
    let reset = local.vaulted_take_over_and_its_reset_mail().await;
    let lifecycle = local.lifecycle();
    let link = reset
        .lines()
        .find(|l| l.starts_with("https://signin.aws.amazon.com/resetpassword"))
        .unwrap()
        .trim()
        .to_string();
    let tickets_before = local.store.tickets().unwrap();
    std::fs::write(lifecycle.simulated_mail_dir().join("reset.eml"), reset).unwrap();
    deliver_simulated_mail(&lifecycle, &local.store, &[], &local.rules, NOW)
        .await
        .unwrap();

    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::AwaitingEngineer);
    assert_eq!(
        rotation.waiting_for,
        Some(rootmail_domain::Kind::PasswordReset),
        "a later link may replace it while the engineer works"
    );
    let grant = steps::access(&lifecycle, &access_request("finish the reset"), NOW)
        .await
        .unwrap();
    assert_eq!(
        grant.reset_link.as_ref().map(|l| l.expose()),
        Some(link.as_str())
    );
    let tickets = local.store.tickets().unwrap();
    let new_comments: usize = tickets.iter().map(|t| t.comments.len() + 1).sum::<usize>()
        - tickets_before
            .iter()
            .map(|t| t.comments.len() + 1)
            .sum::<usize>();
    // Only the lifecycle ticket's notes (handover, access) were added: no reset ticket.
    assert!(
        tickets
            .iter()
            .all(|t| t.kind != rootmail_domain::Kind::PasswordReset)
    );
    assert_eq!(new_comments, 2, "the handover and the access notes");
    assert!(
        !text_outside_archive(&local).contains(&link),
        "the link leaked"
    );
}

/// AWS's reset link is time-sensitive, and the engineer's task waits a
/// week: a reset requested again days later (the first link expired) is
/// handed over too, replacing the first for `creds get`, and is no alert.
#[tokio::test]
async fn a_later_reset_link_replaces_the_first_while_the_engineer_works() {
    let local = Local::new();
    let first = local.vaulted_take_over_and_its_reset_mail().await;
    let lifecycle = local.lifecycle();
    let old_token = "n4cJHoMeM41tpqyL6xIqdN6M0n1SCm6WpMzApiPVhyxC9cX9xCpx7w0TZJAwWqmwSpwpgNrfUIFWq11N6gRQW4PGuJ1nV9Gd";
    let new_token =
        "Zq9Xk2Lm4Np6Rt8Vw0Yb1Cd3Ef5Gh7Jk9Mn2Pq4Rs6Tu8Vw0Xy2Za4Bc6De8Fg0Hi2Jk4Lm6No8Pq0Rs2Tu4Vw6";
    let second = first
        .replace(old_token, new_token)
        .replace("010018e325bf1255-9df7b530", "010018e325bf1255-1aa7b530");
    let two_days = NOW + 2 * 24 * 3600;
    for (name, mail, at) in [
        ("reset-1.eml", &first, NOW),
        ("reset-2.eml", &second, two_days),
    ] {
        std::fs::write(lifecycle.simulated_mail_dir().join(name), mail).unwrap();
        deliver_simulated_mail(&lifecycle, &local.store, &[], &local.rules, at)
            .await
            .unwrap();
    }
    let grant = steps::access(&lifecycle, &access_request("finish the reset"), two_days)
        .await
        .unwrap();
    let shown = grant.reset_link.as_ref().map(|l| l.expose().to_string());
    assert!(
        shown.is_some_and(|l| l.contains(new_token)),
        "the newer link"
    );
    assert!(
        local
            .store
            .tickets()
            .unwrap()
            .iter()
            .all(|t| t.kind != rootmail_domain::Kind::PasswordReset),
        "no alert for the engineer's own reset"
    );
}

/// A reset mail for a waiting take-over whose ingest fails after triage (the
/// thread map throttled): its redelivery hands the link over, and no
/// "someone is resetting the root password" ticket is made of it.
#[tokio::test]
async fn a_reset_mail_whose_ingest_failed_is_handed_over_on_redelivery_not_ticketed() {
    use rootmail_pipeline::{IngestPorts, Ingested, Knowledge, ingest};
    let local = Local::new();
    let reset = local.vaulted_take_over_and_its_reset_mail().await;
    let lifecycle = local.lifecycle();
    let directory = rootmail_local::workflow::directory(&lifecycle, &[]).unwrap();
    let handoffs = rootmail_lifecycle::handoff::MailHandoffs(&lifecycle);
    let knowledge = Knowledge::new(&local.rules, &handoffs);
    // Remembering the message fails once.
    let threads = FailsOnce::new(&local.store, ThreadCall::RememberMessage);
    let ports = IngestPorts {
        archive: &local.store,
        ledger: &local.store,
        threads: &threads,
        accounts: &directory,
    };
    let first = ingest(ports, &knowledge, reset.as_bytes(), "reset.eml", NOW).await;
    assert!(first.is_err(), "the thread map failed: {first:?}");
    let again = ingest(ports, &knowledge, reset.as_bytes(), "reset.eml", NOW + 1)
        .await
        .expect("redelivery");
    let Ingested::Triaged { triage, op, .. } = again else {
        panic!("triaged, not {again:?}");
    };
    assert!(op.is_none(), "no ticket: {:?}", triage.warnings);
    assert_eq!(triage.disposition, rootmail_domain::Disposition::Handoff);
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert!(rotation.handed_over.is_some(), "handed over");
}

/// A reset mail whose ingest failed comes back after the engineer asked AWS
/// again and the newer link was handed over: the late, older link (by the
/// receiving server's stamp) does not replace it, and is no alert either.
#[tokio::test]
async fn an_older_reset_link_arriving_late_does_not_replace_the_newer() {
    let local = Local::new();
    let older = local.vaulted_take_over_and_its_reset_mail().await;
    let lifecycle = local.lifecycle();
    let old_token = "n4cJHoMeM41tpqyL6xIqdN6M0n1SCm6WpMzApiPVhyxC9cX9xCpx7w0TZJAwWqmwSpwpgNrfUIFWq11N6gRQW4PGuJ1nV9Gd";
    let new_token =
        "Zq9Xk2Lm4Np6Rt8Vw0Yb1Cd3Ef5Gh7Jk9Mn2Pq4Rs6Tu8Vw0Xy2Za4Bc6De8Fg0Hi2Jk4Lm6No8Pq0Rs2Tu4Vw6";
    let newer = older
        .replace(old_token, new_token)
        .replace("010018e325bf1255-9df7b530", "010018e325bf1255-1aa7b530")
        .replace(
            "Wed, 11 Feb 2026 16:06:10 +0000 (UTC)",
            "Wed, 11 Feb 2026 16:21:40 +0000 (UTC)",
        );
    assert_ne!(newer, older.replace(old_token, new_token));
    for (name, mail, at) in [
        ("reset-newer.eml", &newer, NOW),
        ("reset-older.eml", &older, NOW + 900),
    ] {
        std::fs::write(lifecycle.simulated_mail_dir().join(name), mail).unwrap();
        deliver_simulated_mail(&lifecycle, &local.store, &[], &local.rules, at)
            .await
            .unwrap();
    }
    let grant = steps::access(&lifecycle, &access_request("finish the reset"), NOW + 900)
        .await
        .unwrap();
    let shown = grant.reset_link.as_ref().map(|l| l.expose().to_string());
    assert!(
        shown.is_some_and(|l| l.contains(new_token)),
        "the newer link kept"
    );
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let not_kept = entry(&audit, "older secret not kept");
    let older_mail = format!("mail {}", message_id_of(older.as_bytes()));
    assert!(not_kept.detail.contains(&older_mail), "{}", not_kept.detail);
    assert!(
        local
            .store
            .tickets()
            .unwrap()
            .iter()
            .all(|t| t.kind != rootmail_domain::Kind::PasswordReset),
        "no alert for the engineer's own reset"
    );
}

/// The local ports, except that answering the waiting task fails
/// `failures_left` times (a throttled or unreachable Step Functions), with
/// `next_step_at_once` an answer runs the take-over's next step (accept)
/// before it returns, as Step Functions may start it before the handover
/// saves its end, and with `write_before` set to a phase and a change,
/// another writer makes that change (AWS's "MFA activated" mail, say) just
/// before the record is first saved in that phase.
struct FlakyTokens<'a> {
    inner: LocalLifecycle<'a>,
    failures_left: std::sync::atomic::AtomicU32,
    next_step_at_once: bool,
    write_before: std::sync::Mutex<Option<(Phase, Meanwhile)>>,
    /// The tokens answered, in order.
    answered: std::sync::Mutex<Vec<String>>,
}

impl Rotations for FlakyTokens<'_> {
    async fn get(
        &self,
        account: &AccountId,
    ) -> rootmail_lifecycle::LifecycleResult<Option<rootmail_lifecycle::Rotation>> {
        Rotations::get(&self.inner, account).await
    }

    async fn put(
        &self,
        rotation: &rootmail_lifecycle::Rotation,
        expected: Option<u64>,
    ) -> rootmail_lifecycle::LifecycleResult<()> {
        let meanwhile = {
            let mut before = self.write_before.lock().unwrap();
            match *before {
                Some((phase, change)) if phase == rotation.phase => {
                    *before = None;
                    Some(change)
                }
                _ => None,
            }
        };
        if let Some(change) = meanwhile {
            let mut stored = Rotations::get(&self.inner, &rotation.account_id)
                .await?
                .unwrap();
            change(&mut stored);
            stored.version += 1;
            Rotations::put(&self.inner, &stored, Some(stored.version - 1)).await?;
        }
        Rotations::put(&self.inner, rotation, expected).await
    }
}

/// Another writer's change to a rotation record.
type Meanwhile = fn(&mut rootmail_lifecycle::Rotation);

/// AWS's "MFA activated" mail, recorded (a handover field).
fn mfa_mail(rotation: &mut rootmail_lifecycle::Rotation) {
    rotation.mfa_confirmed_at = Some(NOW + 3);
}

impl<'a> FlakyTokens<'a> {
    /// A rootless take-over through these ports, waiting for AWS's code
    /// with the task `token-1`.
    async fn waiting_for_the_code(
        inner: LocalLifecycle<'a>,
        failures: u32,
        next_step_at_once: bool,
    ) -> Self {
        let ports = Self {
            inner,
            failures_left: failures.into(),
            next_step_at_once,
            write_before: None.into(),
            answered: Default::default(),
        };
        steps::register(&ports, &request(Mode::Rootless), NOW)
            .await
            .unwrap();
        steps::start_email_update(&ports, &account(), "token-1", NOW)
            .await
            .unwrap();
        ports
    }

    /// The handover AWS's code mail makes: the code mailed to the address
    /// the take-over moves the root email to.
    async fn mailed_code(&self) -> rootmail_domain::Handoff {
        let target = Rotations::get(&self.inner, &account())
            .await
            .unwrap()
            .unwrap()
            .target_email;
        rootmail_domain::Handoff {
            kind: rootmail_domain::Kind::RootEmailOtp,
            secret: SecretValue::new(code_mailed_to(&self.inner, target.as_str())),
            recipient: target,
            delivered_at: Some(NOW as i64),
            message_id: None,
        }
    }
}

impl rootmail_lifecycle::TaskTokens for FlakyTokens<'_> {
    async fn succeed(
        &self,
        token: &str,
        output: &serde_json::Value,
    ) -> rootmail_lifecycle::LifecycleResult<()> {
        use std::sync::atomic::Ordering;
        if self.failures_left.load(Ordering::SeqCst) > 0 {
            self.failures_left.fetch_sub(1, Ordering::SeqCst);
            return Err(LifecycleError::Port(
                rootmail_pipeline::PortError::transient("stepfunctions", "throttled"),
            ));
        }
        rootmail_lifecycle::TaskTokens::succeed(&self.inner, token, output).await?;
        self.answered.lock().unwrap().push(token.to_string());
        if self.next_step_at_once {
            let accepted = steps::accept_email_update(&self.inner, &account(), NOW).await;
            assert_eq!(accepted.unwrap().phase, Phase::EmailAccepted);
        }
        Ok(())
    }
}

lifecycle_ports!(
    FlakyTokens<'a>,
    inner,
    Api api: local,
    Root root: local,
    Vault vault: local,
    Rotations rotations: own,
    Audit audit: local,
    Registry registry: local,
    Tokens tokens: own,
    Notices notices: local,
);

#[tokio::test]
async fn a_handover_whose_task_answer_failed_is_finished_by_the_redelivered_mail() {
    let local = Local::new();
    let flaky = FlakyTokens::waiting_for_the_code(local.lifecycle(), 1, false).await;
    let code = SecretValue::new("Q7K2M9".into());
    let kind = rootmail_domain::Kind::RootEmailOtp;
    let waiting = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    let handoff = |recipient: &rootmail_domain::EmailAddress| rootmail_domain::Handoff {
        kind,
        secret: code.clone(),
        recipient: recipient.clone(),
        delivered_at: Some(NOW as i64),
        message_id: None,
    };

    // Delivered to another of our addresses: refused, nothing changes.
    let elsewhere = rootmail_domain::EmailAddress::parse("other@root.example-msp.com").unwrap();
    let refused = steps::hand_over(&flaky, &account(), &handoff(&elsewhere), NOW).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(why)) if why.contains("not to the rotation's address")),
        "{refused:?}"
    );
    let unchanged = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged, waiting);

    let handoff = handoff(&waiting.target_email);
    let first = steps::hand_over(&flaky, &account(), &handoff, NOW).await;
    assert!(
        matches!(first, Err(LifecycleError::Port(ref e)) if e.is_transient()),
        "{first:?}"
    );
    let rotation = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert!(
        rotation.is_waiting_for(kind, NOW),
        "still waiting, so the retry is a handover too"
    );
    assert_eq!(rotation.task_token.as_deref(), Some("token-1"));

    let handover = steps::hand_over(&flaky, &account(), &handoff, NOW + 5)
        .await
        .unwrap();
    assert_eq!(
        Some(handover),
        rotation.handed_over.map(steps::Handover::Kept),
        "the stored code, not a second one"
    );
    let rotation = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::OtpReceived);
    assert_eq!(rotation.task_token, None);
    assert!(!rotation.is_waiting_for(kind, NOW + 5));
    let handed: Vec<String> = local
        .actions()
        .await
        .into_iter()
        .filter(|a| a == "secret handed over")
        .collect();
    assert_eq!(handed.len(), 1, "one audit record for one handover");
}

/// The code's task answered, Step Functions runs the accept step before the
/// handover saves its end: the handover, losing that race, is still done
/// (before, it was refused and its mail became an alert), and the record
/// waits for nothing.
#[tokio::test]
async fn a_handover_whose_next_step_saved_first_is_done() {
    let local = Local::new();
    let racing = FlakyTokens::waiting_for_the_code(local.lifecycle(), 0, true).await;
    let handoff = racing.mailed_code().await;

    let handed = steps::hand_over(&racing, &account(), &handoff, NOW).await;
    assert!(handed.is_ok(), "{handed:?}");
    let rotation = Rotations::get(&racing.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::EmailAccepted);
    assert_eq!(rotation.waiting_for, None);
    assert_eq!(rotation.task_token, None);
    let confirmed = steps::confirm_email_update(&racing, &account(), NOW + 1).await;
    assert!(confirmed.is_ok(), "{confirmed:?}");
}

/// `rotation complete` whose answer to the waiting workflow failed (Step
/// Functions throttled past its retries): the record is secured but keeps
/// the token, and running it again gives the answer. Before, the token was
/// dropped first, a second run was refused ("waits for nobody"), and the
/// workflow waited out its week to record a failure.
#[tokio::test]
async fn an_engineer_task_whose_answer_failed_is_answered_when_completed_again() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.unwrap();
    local.engineer_console_steps(NOW).await;
    let flaky = FlakyTokens {
        inner: local.lifecycle(),
        failures_left: 1.into(),
        next_step_at_once: false,
        write_before: None.into(),
        answered: Default::default(),
    };
    let id = account();
    let complete = || rootmail_lifecycle::operator::complete(&flaky, &id, "alice", None, None, NOW);
    let first = complete().await;
    assert!(
        matches!(first, Err(LifecycleError::Port(ref e)) if e.is_transient()),
        "{first:?}"
    );
    let rotation = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::Secured);
    assert!(rotation.task_token.is_some(), "kept, to answer again");

    let again = complete().await.expect("answered now");
    assert_eq!(again.phase, Phase::Secured);
    let rotation = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.task_token, None, "answered, dropped");
    let told = complete().await;
    assert!(matches!(told, Err(LifecycleError::Refused(_))), "{told:?}");
}

/// A handover field is written after AWS took the code and before the
/// accept step saves: the step saves again instead of failing, and never
/// sends AWS the spent code a second time (a re-run would, if AWS's read of
/// the root email lagged).
#[tokio::test]
async fn an_accept_step_whose_save_lost_a_race_saves_again() {
    // Another writer's change just before the save, and what the step does.
    fn second_run(rotation: &mut rootmail_lifecycle::Rotation) {
        rotation.phase = Phase::EmailAccepted;
    }
    fn other_field(rotation: &mut rootmail_lifecycle::Rotation) {
        rotation.mfa_enrolled_at = Some(NOW + 3);
    }
    let cases: [(&str, Meanwhile, bool); 3] = [
        ("the MFA mail", mfa_mail, true),
        ("a second run of the step", second_run, true),
        ("the MFA seed enrolled again", other_field, false),
    ];
    for (case, meanwhile, saved) in cases {
        let local = Local::new();
        let racing = FlakyTokens::waiting_for_the_code(local.lifecycle(), 0, false).await;
        let handoff = racing.mailed_code().await;
        steps::hand_over(&racing, &account(), &handoff, NOW)
            .await
            .unwrap();
        *racing.write_before.lock().unwrap() = Some((Phase::EmailAccepted, meanwhile));
        let accepted = steps::accept_email_update(&racing, &account(), NOW).await;
        let rotation = Rotations::get(&racing.inner, &account())
            .await
            .unwrap()
            .unwrap();
        let audited = local.actions().await;
        let accepted_rows = audited
            .iter()
            .filter(|a| *a == "root email change accepted")
            .count();
        if saved {
            assert!(
                matches!(&accepted, Ok(out) if out.phase == Phase::EmailAccepted),
                "{case}: {accepted:?}"
            );
            assert_eq!(rotation.phase, Phase::EmailAccepted, "{case}");
            assert!(accepted_rows <= 1, "{case}: one audit row: {audited:?}");
        } else {
            // Not only a handover's fields changed: a conflict, not saved over.
            assert!(
                matches!(&accepted, Err(e) if e.is_conflict()),
                "{accepted:?}"
            );
            assert_eq!(rotation.phase, Phase::OtpReceived);
            assert_eq!(accepted_rows, 0);
        }
        if case == "the MFA mail" {
            assert_eq!(
                rotation.mfa_confirmed_at,
                Some(NOW + 3),
                "the other write kept"
            );
            assert_eq!(accepted_rows, 1);
        }
    }
}

/// The accept step saved, then stopped before its audit row (the function's
/// deadline, a failed audit write): Step Functions runs it again, which
/// answers with the step's output and writes the missing row, once.
#[tokio::test]
async fn a_step_run_again_after_its_save_writes_its_missing_audit_row() {
    let local = Local::new();
    let lifecycle = FlakyTokens::waiting_for_the_code(local.lifecycle(), 0, false).await;
    let handoff = lifecycle.mailed_code().await;
    steps::hand_over(&lifecycle, &account(), &handoff, NOW)
        .await
        .unwrap();
    steps::accept_email_update(&lifecycle, &account(), NOW)
        .await
        .unwrap();
    let action = "root email change accepted";
    local.lose_audit_rows(action);

    for again in [NOW + 60, NOW + 120] {
        let out = steps::accept_email_update(&lifecycle, &account(), again)
            .await
            .unwrap();
        assert_eq!(out.phase, Phase::EmailAccepted);
        let rows = local.actions().await;
        assert_eq!(rows.iter().filter(|a| *a == action).count(), 1, "{rows:?}");
    }
}

/// `rotation complete` after the engineer's week is refused: the workflow
/// stopped waiting and records a failure, and AWS's "already closed" for
/// its token must not pass for an answer.
#[tokio::test]
async fn an_engineer_task_past_its_week_is_not_completed() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.unwrap();
    local.engineer_console_steps(NOW).await;
    let late = NOW + steps::ENGINEER_WAIT_SECS + 1;
    let lifecycle = local.lifecycle();
    let done =
        rootmail_lifecycle::operator::complete(&lifecycle, &account(), "alice", None, None, late)
            .await;
    assert!(
        matches!(&done, Err(LifecycleError::Refused(m)) if m.contains("timed out")),
        "{done:?}"
    );
    // Recorded as failed (a local run has no workflow to do it), so a new
    // take-over may start.
    assert_eq!(local.phase().await, Some(Phase::Failed));
}

/// `rotation attest` after the workflow's day-long wait for the console
/// change is refused and the take-over recorded as failed; reading the code
/// late does not move that deadline (the workflow's wait began when the
/// change was opened).
#[tokio::test]
async fn an_attestation_after_the_wait_ended_is_refused() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    local.console_email_changed().await;
    local.deliver(NOW).await;
    let request = AccessRequest {
        account_id: account(),
        who: "alice".into(),
        reason: "take-over".into(),
        ticket: "CHG-10".into(),
    };
    console::read_code(&lifecycle, &request, NOW + 3_600)
        .await
        .unwrap();
    let late = NOW + steps::OTP_WAIT_SECS + 1;
    let attested = console::attest_email_change(&lifecycle, &account(), "alice", "x", late).await;
    assert!(
        matches!(&attested, Err(LifecycleError::Refused(m)) if m.contains("ended")),
        "past the wait: {attested:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::Failed));
}

/// AWS's "MFA activated" mail is recorded while `rotation complete` runs:
/// its save loses the race after the vault was promoted, which cannot be
/// done twice, so it reads the record again and saves; the mail's record
/// stays. Before, it failed, and running it again found nothing pending.
#[tokio::test]
async fn an_engineer_task_whose_save_lost_to_the_mfa_mail_is_still_completed() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.unwrap();
    local.engineer_console_steps(NOW).await;
    let racing = FlakyTokens {
        inner: local.lifecycle(),
        failures_left: 0.into(),
        next_step_at_once: false,
        write_before: Some((Phase::Secured, mfa_mail as Meanwhile)).into(),
        answered: Default::default(),
    };
    let done =
        rootmail_lifecycle::operator::complete(&racing, &account(), "alice", None, None, NOW).await;
    assert!(
        matches!(&done, Ok(out) if out.phase == Phase::Secured),
        "{done:?}"
    );
    let rotation = Rotations::get(&racing.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::Secured);
    assert_eq!(
        rotation.mfa_confirmed_at,
        Some(NOW + 3),
        "the mail's record kept"
    );
    assert_eq!(rotation.task_token, None, "answered");
}

/// The tickets' text, every comment included.
fn ticket_text(local: &Local) -> String {
    let tickets = local.store.tickets().unwrap();
    serde_json::to_string(&tickets).unwrap()
}

fn entry<'a>(
    audit: &'a [rootmail_lifecycle::AuditEntry],
    action: &str,
) -> &'a rootmail_lifecycle::AuditEntry {
    audit
        .iter()
        .find(|e| e.action == action)
        .unwrap_or_else(|| panic!("no {action:?} in the audit: {audit:#?}"))
}

/// A payer account of another organization (issue 15): no Account API, no
/// AssumeRoot. The root email, password and MFA change in the (simulated)
/// console; AWS's code and notices come through the real pipeline; the
/// account is taken over, accessed, released and closed, and no secret
/// reaches a ticket or a file outside the vault and the mail archive.
#[tokio::test]
async fn a_payer_account_is_taken_over_accessed_released_and_closed_through_the_console() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let phases = local.take_over(Mode::Console).await.expect("take-over");
    assert_eq!(phases, [Phase::Registered, Phase::AwaitingOtp]);
    let target = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap()
        .target_email;
    let opened = ticket_text(&local);
    assert!(
        opened.contains("choose Edit on the email address") && opened.contains(target.as_str()),
        "the ticket gives the console steps: {opened}"
    );

    // Too early: no code has come, nothing to attest or enroll.
    let ask = |reason: &str| AccessRequest {
        account_id: account(),
        who: "alice".into(),
        reason: reason.into(),
        ticket: "CHG-7".into(),
    };
    let early = console::read_code(&lifecycle, &ask("console change"), NOW).await;
    assert!(
        matches!(&early, Err(LifecycleError::Refused(m)) if m.contains("has not arrived")),
        "{early:?}"
    );
    let attest =
        console::attest_email_change(&lifecycle, &account(), "alice", "I saw it", NOW).await;
    assert!(
        matches!(attest, Err(LifecycleError::Refused(_))),
        "{attest:?}"
    );
    let enroll = console::enroll_mfa(&lifecycle, &account(), "alice", SEED, NOW).await;
    assert!(
        matches!(enroll, Err(LifecycleError::Refused(_))),
        "{enroll:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingOtp));

    // The customer changes the root email in the console; AWS mails the code to us.
    let change = ConsoleStep::ChangeEmail { to: target.clone() };
    lifecycle.console(&account(), change, NOW).unwrap();
    assert_eq!(local.deliver(NOW).await, 1);
    assert_eq!(local.phase().await, Some(Phase::OtpReceived));
    // AWS sends a new code (the change asked for again before the first
    // was typed): it replaces the one held, which AWS no longer honours.
    let handed = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    let again = ConsoleStep::ChangeEmail { to: target.clone() };
    lifecycle.console(&account(), again, NOW + 5).unwrap();
    assert_eq!(local.deliver(NOW + 5).await, 1);
    let after = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.phase, Phase::OtpReceived);
    assert!(after.handed_over.is_some() && after.version > handed.version);

    // The engineer reads the latest code (audited) and types it into the console.
    let codes = local.archived_codes();
    assert_eq!(codes.len(), 2);
    assert_ne!(codes[0], codes[1]);
    let grant = console::read_code(&lifecycle, &ask("console change"), NOW + 10)
        .await
        .expect("the code");
    assert_eq!(
        grant.code.expose(),
        codes[1],
        "the code given is the latest"
    );
    assert_eq!(local.phase().await, Some(Phase::EmailAccepted));
    // The console takes AWS's latest code, and AWS's mail to the new address
    // is the evidence; the engineer's task opens.
    (local.code_entered_and_confirmed(&target, grant.code.clone(), NOW + 20)).await;
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let read = entry(&audit, "verification code read");
    assert_eq!(
        (
            read.actor.as_str(),
            read.reason.as_deref(),
            read.ticket.as_deref()
        ),
        ("alice", Some("console change"), Some("CHG-7"))
    );
    assert!(
        entry(&audit, "root email change confirmed by AWS mail")
            .detail
            .contains(target.as_str())
    );

    // Password and MFA in the console; rootmail vaults the seed AWS generated.
    let bad_key = console::enroll_mfa(&lifecycle, &account(), "alice", "0000-1111", NOW).await;
    assert!(
        matches!(&bad_key, Err(LifecycleError::Refused(m)) if m.contains("base32")),
        "{bad_key:?}"
    );
    let pending = steps::access(&lifecycle, &ask("set the root password"), NOW + 30)
        .await
        .expect("pending credentials");
    assert!(pending.pending);
    let seed = local.engineer_console_steps(NOW + 30).await;
    let no_word = complete(&lifecycle, &account(), "alice", (None, None), NOW + 40).await;
    assert!(
        matches!(&no_word, Err(LifecycleError::Refused(m)) if m.contains("--attest")),
        "{no_word:?}"
    );
    // The word is checked against IAM's account summary (read through the
    // provider's role in the payer): the customer's access key, still
    // there, refuses it.
    let key_left = complete(
        &lifecycle,
        &account(),
        "alice",
        (None, Some("password set, keys deleted")),
        NOW + 40,
    )
    .await;
    assert!(
        matches!(&key_left, Err(LifecycleError::Refused(m)) if m.contains("still has an access key")),
        "{key_left:?}"
    );
    lifecycle
        .console(&account(), ConsoleStep::DeleteAccessKeys, NOW + 40)
        .unwrap();
    let done = complete(
        &lifecycle,
        &account(),
        "alice",
        (
            None,
            Some("password set, keys deleted, our MFA device the only one"),
        ),
        NOW + 40,
    )
    .await
    .expect("completed");
    assert_eq!(done.last().unwrap().phase, Phase::Active);

    // Break-glass access gives the password set and codes of AWS's seed.
    let grant = steps::access(&lifecycle, &ask("billing emergency"), NOW + 100)
        .await
        .unwrap();
    assert_eq!(grant.password.expose(), pending.password.expose());
    let expected = rootmail_lifecycle::credentials::totp_code(&seed, NOW + 100).unwrap();
    assert_eq!(grant.totp_code.unwrap().expose(), expected.expose());

    // Release in the console, attested; then closure.
    let customer = EmailAddress::parse("cfo@initech.example").unwrap();
    let started = steps::start_release(
        &lifecycle,
        &releasing(&account(), "bob"),
        &customer,
        NOW + 200,
    )
    .await
    .unwrap();
    assert_eq!(started.phase, Phase::AwaitingCustomerOtp);
    // The release's console steps begin with signing in: the engineer's
    // break-glass access still works while the customer's code is awaited.
    let signing_in = steps::access(&lifecycle, &ask("release to the customer"), NOW + 205)
        .await
        .expect("access during a console release");
    assert_eq!(signing_in.password.expose(), pending.password.expose());
    assert!(!signing_in.pending);
    // The root email is still ours until the customer's change is taken:
    // the customer's address would not sign in (it once was shown).
    assert_eq!(signing_in.root_email, grant.root_email);
    assert_ne!(signing_in.root_email, customer);
    let with_code = complete(
        &lifecycle,
        &account(),
        "bob",
        (Some(&SecretValue::new("123456".into())), None),
        NOW + 210,
    )
    .await;
    assert!(
        matches!(with_code, Err(LifecycleError::Refused(_))),
        "{with_code:?}"
    );
    lifecycle
        .console(&account(), ConsoleStep::RemoveMfa, NOW + 220)
        .unwrap();
    let released = complete(
        &lifecycle,
        &account(),
        "bob",
        (
            None,
            Some("removed our MFA device; the console shows cfo@initech.example"),
        ),
        NOW + 230,
    )
    .await
    .unwrap();
    assert_eq!(released[0].phase, Phase::Released);
    let steps_first = close(&lifecycle, ("carol", "customer left", None), NOW + 300).await;
    assert!(
        matches!(&steps_first, Err(LifecycleError::Refused(m)) if m.contains("Close account") && m.contains("--attest")),
        "a console account closes only in its console: {steps_first:?}"
    );
    let attest = Some("closed in the console at the customer's request");
    let closed = close(&lifecycle, ("carol", "customer left", attest), NOW + 300)
        .await
        .unwrap();
    assert_eq!(closed.phase, Phase::Closed);

    // Who did each step, in order.
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let who: Vec<(&str, &str)> = audit
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    for step in [
        ("rootmail", "console email change opened"),
        ("alice", "verification code read"),
        ("rootmail", "root email change confirmed by AWS mail"),
        ("rootmail", "engineer task opened"),
        ("alice", "MFA device enrolled"),
        ("rootmail", "MFA activation confirmed by AWS mail"),
        ("alice", "root credentials vaulted (attested, checked)"),
        ("alice", "break-glass access"),
        ("bob", "release started"),
        ("bob", "released (attested)"),
        ("carol", "closed"),
    ] {
        assert!(who.contains(&step), "{step:?} missing from {who:#?}");
    }
    // No secret outside the vault and the archive: not the code, the password or the seed.
    let outside = text_outside_archive(&local) + &ticket_text(&local);
    for secret in codes
        .iter()
        .map(String::as_str)
        .chain([pending.password.expose(), seed.expose()])
    {
        assert!(
            !outside.contains(secret),
            "a secret leaked outside the vault"
        );
    }
}

/// No AWS mail reaches the new address: the engineer's attestation confirms
/// the change, audited as such; attesting in another phase is refused.
#[tokio::test]
async fn without_aws_mail_the_console_change_is_confirmed_by_attestation() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    local.console_email_changed().await;
    local.deliver(NOW).await;
    let early =
        console::attest_email_change(&lifecycle, &account(), "alice", "it shows", NOW).await;
    assert!(
        matches!(early, Err(LifecycleError::Refused(_))),
        "{early:?}"
    );
    let request = AccessRequest {
        account_id: account(),
        who: "alice".into(),
        reason: "take-over".into(),
        ticket: "CHG-8".into(),
    };
    console::read_code(&lifecycle, &request, NOW).await.unwrap();
    let empty = console::attest_email_change(&lifecycle, &account(), "alice", "  ", NOW).await;
    assert!(
        matches!(empty, Err(LifecycleError::Refused(_))),
        "{empty:?}"
    );
    let attested = console::attest_email_change(
        &lifecycle,
        &account(),
        "alice",
        "the Account page shows our address",
        NOW + 5,
    )
    .await
    .unwrap();
    assert_eq!(
        attested.phase,
        Phase::EmailAccepted,
        "the workflow confirms it"
    );
    let twice =
        console::attest_email_change(&lifecycle, &account(), "bob", "me too", NOW + 6).await;
    assert!(
        matches!(twice, Err(LifecycleError::Refused(_))),
        "{twice:?}"
    );
    let resumed = resume(&lifecycle, &account(), NOW + 7).await.unwrap();
    assert_eq!(
        resumed.iter().map(|s| s.phase).collect::<Vec<_>>(),
        [Phase::EmailConfirmed, Phase::AwaitingEngineer]
    );
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let e = entry(&audit, "root email change attested");
    assert_eq!(e.actor, "alice");
    assert!(e.detail.contains("the Account page shows our address"));
    // A member account's rotation has no console steps to attest.
    let member = Local::new();
    member.take_over(Mode::Rootless).await.unwrap();
    let wrong_mode =
        console::attest_email_change(&member.lifecycle(), &account(), "alice", "x", NOW).await;
    assert!(matches!(wrong_mode, Err(LifecycleError::Refused(_))));
}

/// AWS's mail confirms a console change, but the answer to the waiting
/// workflow fails: the rotation goes on waiting for that mail, so its
/// redelivery answers. Before, the wait ended with the evidence, the
/// redelivered mail reached nothing, and the workflow timed out a day
/// later on a confirmed change.
#[tokio::test]
async fn a_console_change_whose_answer_failed_is_answered_when_its_mail_comes_again() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let target = local.console_code_read().await;
    // As Step Functions' StartEmailUpdate leaves it (the local run has no
    // workflow to answer).
    let mut waiting = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    waiting.task_token = Some("token-1".into());
    waiting.version += 1;
    Rotations::put(&lifecycle, &waiting, Some(waiting.version - 1))
        .await
        .unwrap();
    let flaky = FlakyTokens {
        inner: local.lifecycle(),
        failures_left: 1.into(),
        next_step_at_once: false,
        write_before: None.into(),
        answered: Default::default(),
    };
    let evidence = rootmail_pipeline::Evidence {
        awaited: rootmail_domain::Kind::ContactChange,
        kind: rootmail_domain::Kind::ContactChange,
        recipient: target,
        message_id: Some("<notice-1@amazon.com>".into()),
    };
    let first = console::witness(&flaky, &account(), &evidence, NOW + 5).await;
    assert!(
        matches!(first, Err(LifecycleError::Port(ref e)) if e.is_transient()),
        "{first:?}"
    );
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert!(rotation.email_evidence.is_some(), "the evidence is kept");
    assert!(rotation.task_token.is_some());
    assert!(
        rotation.is_waiting_for(rootmail_domain::Kind::ContactChange, NOW + 5),
        "the redelivered mail still reaches it"
    );

    let again = console::witness(&flaky, &account(), &evidence, NOW + 6).await;
    assert!(matches!(again, Ok(true)), "{again:?}");
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rotation.task_token, rotation.waiting_for), (None, None));
}

/// Issue 17, point 2. A rootless account's vault holds only the handed-over
/// code: its release schedules the deletion of that alone (Secrets Manager
/// denies `DeleteSecret` on a secret that never existed, with
/// `AccessDeniedException`: the AWS vault describes each item first and
/// skips one never created, and the local vault does the same). A release
/// whose earlier try got AWS's acceptance and failed after it completes on
/// a retry instead of waiting for a code AWS no longer takes.
#[tokio::test]
async fn a_rootless_release_deletes_only_what_it_stored_and_recovers_after_aws_moved_the_email() {
    let local = Local::new();
    local.take_over(Mode::Rootless).await.expect("take-over");
    let lifecycle = local.lifecycle();
    let customer = EmailAddress::parse("it@initech.example").unwrap();
    steps::start_release(&lifecycle, &releasing(&account(), "alice"), &customer, NOW)
        .await
        .unwrap();
    let code = SecretValue::new(code_mailed_to(&lifecycle, "it@initech.example"));
    // An earlier try: AWS accepted the code, then the step failed.
    rootmail_lifecycle::AccountApi::accept_email_update(&lifecycle, &account(), &customer, &code)
        .await
        .unwrap();
    assert_eq!(local.phase().await, Some(Phase::AwaitingCustomerOtp));
    // Started again now, the release would move an email AWS already moved.
    let restarted = steps::start_release(
        &lifecycle,
        &releasing(&account(), "alice"),
        &EmailAddress::parse("cfo@initech.example").unwrap(),
        NOW + 3_600,
    )
    .await;
    assert!(
        matches!(&restarted, Err(LifecycleError::Refused(m)) if m.contains("already moved")),
        "{restarted:?}"
    );
    let released = complete(&lifecycle, &account(), "alice", (Some(&code), None), NOW)
        .await
        .expect("the retry completes the release");
    assert_eq!(released[0].phase, Phase::Released);
    // The vault entry that existed is scheduled for deletion; none was invented.
    let never = rootmail_lifecycle::Vault::get(
        &lifecycle,
        &account(),
        rootmail_lifecycle::VaultItem::Password,
        rootmail_lifecycle::Stage::Current,
    )
    .await;
    assert!(matches!(never, Ok(None)), "{never:?}");
}

/// AWS accepted the take-over's code but its answer was lost (a timeout, a
/// throttled retry): the step's retry finds the root email already ours and
/// goes on, instead of giving AWS a spent code, failing the take-over as
/// "the root email did not change" and forgetting our address while AWS
/// already mails it.
#[tokio::test]
async fn a_take_over_whose_accepted_code_lost_its_answer_goes_on() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    steps::register(&lifecycle, &request(Mode::Rootless), NOW)
        .await
        .unwrap();
    steps::start_email_update(&lifecycle, &account(), "local:otp", NOW)
        .await
        .unwrap();
    local.deliver(NOW).await;
    assert_eq!(local.phase().await, Some(Phase::OtpReceived));
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    let code = rootmail_lifecycle::Vault::get(
        &lifecycle,
        &account(),
        rootmail_lifecycle::VaultItem::Handover,
        rootmail_lifecycle::Stage::Current,
    )
    .await
    .unwrap()
    .expect("the code in the vault");
    // The first try: AWS accepted, the answer never came back.
    rootmail_lifecycle::AccountApi::accept_email_update(
        &lifecycle,
        &account(),
        &rotation.target_email,
        &code,
    )
    .await
    .unwrap();
    let retried = steps::accept_email_update(&lifecycle, &account(), NOW + 60).await;
    assert_eq!(
        retried.expect("the retry goes on").phase,
        Phase::EmailAccepted
    );
    let named = AccountRegistry::by_email(&lifecycle, &rotation.target_email)
        .await
        .unwrap()
        .map(|a| a.account_id);
    assert_eq!(
        named,
        Some(account()),
        "our address still names the account"
    );
}

/// The customer's code for a release expires after 24 hours (AWS's Account
/// Management guide), and an engineer may have typed the customer's address
/// wrong: a release started again while it waits for the code asks AWS for a
/// new one, to the address given now, and completes with that code. The
/// address the account leaves stays ours, whatever the first try named.
#[tokio::test]
async fn a_release_waiting_for_the_customer_can_be_started_again() {
    let local = Local::new();
    local.take_over(Mode::Rootless).await.expect("take-over");
    let lifecycle = local.lifecycle();
    let ours = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap()
        .target_email;
    let typo = EmailAddress::parse("it@intiech.example").unwrap();
    let customer = EmailAddress::parse("it@initech.example").unwrap();
    steps::start_release(&lifecycle, &releasing(&account(), "alice"), &typo, NOW)
        .await
        .unwrap();
    // The state machine's step repeated minutes later (its retry after a
    // lost answer) asks AWS for no second code: the first stands. A person
    // running `release` again is asking for one.
    let started = || async {
        local
            .actions()
            .await
            .iter()
            .filter(|a| a.as_str() == "release started")
            .count()
    };
    steps::start_release_step(&lifecycle, &releasing(&account(), "alice"), &typo, NOW + 60)
        .await
        .unwrap();
    assert_eq!(started().await, 1, "the step's retry changed nothing");
    steps::start_release(
        &lifecycle,
        &releasing(&account(), "alice"),
        &typo,
        NOW + 120,
    )
    .await
    .unwrap();
    assert_eq!(started().await, 2, "a person's resend");
    let again = steps::start_release(
        &lifecycle,
        &releasing(&account(), "bob"),
        &customer,
        NOW + 90_000,
    )
    .await
    .expect("started again");
    assert_eq!(again.phase, Phase::AwaitingCustomerOtp);
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.target_email, customer);
    assert_eq!(rotation.previous_email, Some(ours));
    // The code mail to the address given the second time.
    let code = code_mailed_to(&lifecycle, "it@initech.example");
    let released = complete(
        &lifecycle,
        &account(),
        "bob",
        (Some(&SecretValue::new(code)), None),
        NOW + 90_100,
    )
    .await
    .expect("released with the new code");
    assert_eq!(released[0].phase, Phase::Released);
    assert_eq!(started().await, 3);
}

/// Where a take-over fails decides what it says of the root email: a
/// console take-over whose code arrived but was never read (so never typed)
/// left the email as it was, and the address goes; an API take-over that
/// had the code may have had AWS take it, and the address stays.
#[tokio::test]
async fn a_failure_with_the_code_in_the_vault_says_what_is_known_of_the_email() {
    for (mode, changed) in [(Mode::Console, false), (Mode::Rootless, true)] {
        let local = Local::new();
        let lifecycle = local.lifecycle();
        steps::register(&lifecycle, &request(mode), NOW)
            .await
            .unwrap();
        let target = Rotations::get(&lifecycle, &account())
            .await
            .unwrap()
            .unwrap()
            .target_email;
        if mode == Mode::Console {
            console::open_email_change(&lifecycle, &account(), None, NOW)
                .await
                .unwrap();
            let change = ConsoleStep::ChangeEmail { to: target.clone() };
            lifecycle.console(&account(), change, NOW).unwrap();
        } else {
            steps::start_email_update(&lifecycle, &account(), "local:otp", NOW)
                .await
                .unwrap();
        }
        local.deliver(NOW).await;
        assert_eq!(local.phase().await, Some(Phase::OtpReceived), "{mode:?}");
        let failed = steps::record_failure(&lifecycle, &account(), ("gave up", None), NOW + 5)
            .await
            .unwrap();
        assert_eq!(failed.phase, Phase::Failed);
        let kept = AccountRegistry::by_email(&lifecycle, &target)
            .await
            .unwrap()
            .is_some();
        assert_eq!(kept, changed, "{mode:?}: our address kept");
        let said = local.actions().await;
        assert!(said.iter().any(|a| a == "take-over failed"), "{said:?}");
    }
}

/// The account's take-over fails (`why`), and one of `mode` starts over it
/// ten seconds later.
async fn fails_and_starts_again(lifecycle: &LocalLifecycle<'_>, why: &str, mode: Mode, at: u64) {
    steps::record_failure(lifecycle, &account(), (why, None), at)
        .await
        .unwrap();
    steps::register(lifecycle, &request(mode), at + 10)
        .await
        .unwrap();
}

/// How many code mails the simulated AWS has sent (one per request).
fn code_mails_sent(lifecycle: &LocalLifecycle<'_>) -> usize {
    std::fs::read_dir(lifecycle.simulated_mail_dir())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with("-root-email-code.eml")
        })
        .count()
}

/// Step Functions retries a `waitForTaskToken` step that failed after it
/// saved (stopped at its deadline, a failed audit write, a Lambda service
/// error) with a new token. The code step run again with `token-2` after AWS
/// took its request waits on with the new token and asks AWS nothing more,
/// and the code that comes answers `token-2`. Before, the run again was
/// refused (the record was no longer `registered`) and the take-over failed.
#[tokio::test]
async fn a_code_step_run_again_after_aws_took_its_request_waits_on_with_the_new_token() {
    let local = Local::new();
    let flaky = FlakyTokens::waiting_for_the_code(local.lifecycle(), 0, false).await;
    let first = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert!(
        first.email_change_requested_at.is_some(),
        "AWS's answer recorded"
    );
    assert_eq!(code_mails_sent(&flaky.inner), 1);

    let again = steps::start_email_update(&flaky, &account(), "token-2", NOW + 10)
        .await
        .expect("run again");
    assert_eq!(again.phase, Phase::AwaitingOtp);
    let rotation = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.task_token.as_deref(), Some("token-2"));
    assert_eq!(rotation.expires_at, first.expires_at, "the same wait");
    assert_eq!(code_mails_sent(&flaky.inner), 1, "AWS asked once");
    // The same attempt once more changes nothing.
    steps::start_email_update(&flaky, &account(), "token-2", NOW + 11)
        .await
        .unwrap();
    let same = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same, rotation);

    let code = flaky.mailed_code().await;
    steps::hand_over(&flaky, &account(), &code, NOW + 20)
        .await
        .expect("handed over");
    assert_eq!(*flaky.answered.lock().unwrap(), ["token-2"]);
    let accepted = steps::accept_email_update(&flaky.inner, &account(), NOW + 30).await;
    assert_eq!(accepted.unwrap().phase, Phase::EmailAccepted);
    let actions = local.actions().await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "task token renewed")
            .count(),
        1
    );
}

/// The first run saved and stopped before AWS took its request (no mark):
/// run again, the step asks AWS, so a code comes for the new task.
#[tokio::test]
async fn a_code_step_that_stopped_before_asking_aws_asks_when_run_again() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    steps::register(&lifecycle, &request(Mode::Rootless), NOW)
        .await
        .unwrap();
    let mut saved = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    saved.phase = Phase::AwaitingOtp;
    saved.waiting_for = Some(rootmail_domain::Kind::RootEmailOtp);
    saved.task_token = Some("token-1".into());
    saved.expires_at = Some(NOW + steps::OTP_WAIT_SECS);
    saved.version += 1;
    Rotations::put(&lifecycle, &saved, Some(saved.version - 1))
        .await
        .unwrap();
    std::fs::create_dir_all(lifecycle.simulated_mail_dir()).unwrap();
    assert_eq!(code_mails_sent(&lifecycle), 0);

    steps::start_email_update(&lifecycle, &account(), "token-2", NOW + 10)
        .await
        .expect("run again");
    assert_eq!(code_mails_sent(&lifecycle), 1, "AWS asked now");
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::AwaitingOtp);
    assert_eq!(rotation.task_token.as_deref(), Some("token-2"));
    assert_eq!(rotation.email_change_requested_at, Some(NOW + 10));
}

/// The code came between the failed attempt and its retry, and answered
/// the first attempt's token (closed: AWS says it timed out, which counts as
/// answered). The step run again answers the new task with the stored code
/// at once; otherwise the workflow would wait out its day.
#[tokio::test]
async fn a_code_step_run_again_after_the_code_came_answers_the_new_task() {
    let local = Local::new();
    let flaky = FlakyTokens::waiting_for_the_code(local.lifecycle(), 0, false).await;
    let code = flaky.mailed_code().await;
    let reference = steps::hand_over(&flaky, &account(), &code, NOW + 5)
        .await
        .unwrap();

    let again = steps::start_email_update(&flaky, &account(), "token-2", NOW + 10)
        .await
        .expect("run again");
    assert_eq!(again.phase, Phase::OtpReceived);
    assert_eq!(*flaky.answered.lock().unwrap(), ["token-1", "token-2"]);
    let rotation = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.task_token, None, "answered, dropped");
    assert!(
        matches!(reference, steps::Handover::Stored(_)),
        "{reference:?}"
    );
    assert_eq!(
        rotation.handed_over.as_deref(),
        Some(reference.reference()),
        "the same code"
    );
    assert_eq!(code_mails_sent(&flaky.inner), 1, "AWS asked once");
    let accepted = steps::accept_email_update(&flaky.inner, &account(), NOW + 30).await;
    assert_eq!(accepted.unwrap().phase, Phase::EmailAccepted);
}

/// The engineer's step run again once it saved keeps what its first run
/// did (the previous owner's credentials cleared, the pending password an
/// engineer may be using) and waits on with the new token, which
/// `rotation complete` then answers.
#[tokio::test]
async fn an_engineer_step_run_again_keeps_its_password_and_waits_with_the_new_token() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.unwrap();
    let flaky = FlakyTokens {
        inner: local.lifecycle(),
        failures_left: 0.into(),
        next_step_at_once: false,
        write_before: None.into(),
        answered: Default::default(),
    };
    let pending = || async {
        rootmail_lifecycle::Vault::get(
            &flaky.inner,
            &account(),
            rootmail_lifecycle::VaultItem::Password,
            rootmail_lifecycle::Stage::Pending,
        )
        .await
        .unwrap()
        .unwrap()
        .expose()
        .to_string()
    };
    let password = pending().await;

    let again = steps::prepare_vault(&flaky, &account(), "token-2", NOW + 10)
        .await
        .expect("run again");
    assert_eq!(again.phase, Phase::AwaitingEngineer);
    assert_eq!(pending().await, password, "the same pending password");
    let actions = local.actions().await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "engineer task opened")
            .count(),
        1
    );
    assert!(actions.iter().any(|a| a == "task token renewed"));

    local.engineer_console_steps(NOW + 20).await;
    let done =
        rootmail_lifecycle::operator::complete(&flaky, &account(), "alice", None, None, NOW + 30)
            .await;
    assert!(
        matches!(&done, Ok(out) if out.phase == Phase::Secured),
        "{done:?}"
    );
    assert_eq!(*flaky.answered.lock().unwrap(), ["token-2"]);
}

/// A console take-over's step run again waits on for the person's change
/// with the new token; before, it was refused and the take-over failed.
#[tokio::test]
async fn a_console_step_run_again_waits_on_with_the_new_token() {
    let local = Local::new();
    local.take_over(Mode::Console).await.unwrap();
    let lifecycle = local.lifecycle();
    let again = console::open_email_change(&lifecycle, &account(), Some("token-2"), NOW + 10)
        .await
        .expect("run again");
    assert_eq!(again.phase, Phase::AwaitingOtp);
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.task_token.as_deref(), Some("token-2"));
    // A person's repeat (no token) is still refused.
    let repeated = console::open_email_change(&lifecycle, &account(), None, NOW + 11).await;
    assert!(
        matches!(&repeated, Err(LifecycleError::Refused(_))),
        "{repeated:?}"
    );
}

/// Register run again after a first run that saved our onboarding row and
/// stopped before its record: the account then has two current-looking
/// rows, the customer's active one and our onboarding one. The customer's
/// address is the one recorded as previous (an index or a directory gives
/// rows of one id in no set order, so a retry could take our own address
/// for the customer's).
#[tokio::test]
async fn a_registration_run_again_keeps_the_customers_address_as_previous() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let row = |email: &str, status: AccountStatus| rootmail_domain::Account {
        root_email: EmailAddress::parse(email).unwrap(),
        account_id: account(),
        customer: "Initech".into(),
        status,
        payer: None,
    };
    for ours in [
        "root-aaaa@root.example-msp.com",
        "root-zzzz@root.example-msp.com",
    ] {
        AccountRegistry::save(
            &lifecycle,
            &row("owner@initech.example", AccountStatus::Active),
        )
        .await
        .unwrap();
        AccountRegistry::save(&lifecycle, &row(ours, AccountStatus::Onboarding))
            .await
            .unwrap();
        let found = AccountRegistry::by_id(&lifecycle, &account())
            .await
            .unwrap();
        assert_eq!(
            found.map(|a| a.root_email.to_string()).as_deref(),
            Some("owner@initech.example"),
            "{ours}"
        );
        AccountRegistry::forget(&lifecycle, &EmailAddress::parse(ours).unwrap())
            .await
            .unwrap();
    }
    // The first run's row is still there when the step runs again.
    let first_run = "root-aaaa@root.example-msp.com";
    AccountRegistry::save(&lifecycle, &row(first_run, AccountStatus::Onboarding))
        .await
        .unwrap();
    steps::register(&lifecycle, &request(Mode::Rootless), NOW)
        .await
        .unwrap();
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rotation.previous_email.map(|e| e.to_string()).as_deref(),
        Some("owner@initech.example")
    );
}

/// The local lifecycle with a mail service that is down: the notice to
/// NoticeTo cannot be sent.
struct MailDown<'a>(LocalLifecycle<'a>);

impl rootmail_lifecycle::Notices for MailDown<'_> {
    async fn ticket_note(
        &self,
        account: &AccountId,
        customer: &str,
        text: &str,
    ) -> rootmail_lifecycle::LifecycleResult<()> {
        rootmail_lifecycle::Notices::ticket_note(&self.0, account, customer, text).await
    }

    async fn email(&self, _subject: &str, _text: &str) -> rootmail_lifecycle::LifecycleResult<()> {
        Err(LifecycleError::Port(
            rootmail_pipeline::PortError::transient("notices", "SES throttled the send"),
        ))
    }
}

lifecycle_ports!(
    MailDown<'a>,
    0,
    Api api: local,
    Root root: local,
    Vault vault: local,
    Rotations rotations: local,
    Audit audit: local,
    Registry registry: local,
    Tokens tokens: local,
    Notices notices: own,
);

/// No unseen release: when security cannot be mailed, AWS is not asked to
/// move the root email and nothing changes; the failure is transient, so
/// the state machine's step retries it.
#[tokio::test]
async fn a_release_whose_notice_cannot_be_sent_does_not_start() {
    let local = Local::active_vaulted().await;
    let down = MailDown(local.lifecycle());
    let customer = EmailAddress::parse("owner@initech.example").unwrap();
    let before = local.actions().await;
    let refused =
        steps::start_release(&down, &releasing(&account(), "alice"), &customer, NOW + 10).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Port(e)) if e.is_transient()),
        "{refused:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::Active));
    assert_eq!(local.actions().await, before, "nothing recorded");
    let asked = std::fs::read_dir(local.lifecycle().simulated_mail_dir())
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(asked, 0, "AWS mailed no code: it was not asked");
    // Its claim went with it: a closure need not wait for it.
    let closed = close(
        &local.lifecycle(),
        ("carol", "customer left", None),
        NOW + 20,
    )
    .await;
    assert_eq!(closed.map(|o| o.phase).ok(), Some(Phase::Closed));
}

/// A completion whose earlier try got AWS's acceptance and deleted nothing
/// (it failed before its mark was saved), run again after the customer
/// signed in and enabled their own MFA device: the root user's credentials
/// are the customer's now, and are left as they are.
#[tokio::test]
async fn a_release_completed_after_the_customer_signed_in_deletes_nothing() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    let (customer, code) = local.release_started(NOW + 10).await;
    rootmail_lifecycle::AccountApi::accept_email_update(&lifecycle, &account(), &customer, &code)
        .await
        .unwrap();
    let theirs = local.customer_signs_in_then_release_completes(&code).await;
    assert!(
        theirs.mfa_devices >= 1,
        "the customer's device stays: {theirs:?}"
    );
    let trail = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let done = trail.iter().rfind(|e| e.action == "released").unwrap();
    assert!(done.detail.contains("not deleted"), "{}", done.detail);
}

/// Genuine AWS mail that carries someone else's words is no evidence of a
/// console email change: support case correspondence comes from AWS's own
/// notice sender and quotes whoever writes in the case (an attacker's own
/// case can copy any address), and a reply quotes what it answers.
#[tokio::test]
async fn quoted_words_in_aws_mail_are_no_evidence_of_an_email_change() {
    let local = Local::new();
    let target = local.console_code_read().await;
    assert_eq!(local.phase().await, Some(Phase::EmailAccepted));

    let text = format!(
        "Hello,\r\n\r\nThe email address of the root user of AWS account {} has been\r\n\
         updated. This is now the email address of the root user.\r\n",
        account()
    );
    let subject = "Your AWS account root user email address has been updated";
    let quoted = [
        (
            "reply",
            simulated_aws_mail(
                &target,
                ("signin.aws", "no-reply@signin.aws"),
                subject,
                &text,
                NOW + 20,
            )
            .replace(
                "MIME-Version: 1.0\r\n",
                "In-Reply-To: <earlier@amazon.com>\r\nMIME-Version: 1.0\r\n",
            ),
        ),
        (
            "case",
            simulated_aws_mail(
                &target,
                ("amazon.com", "no-reply-aws@amazon.com"),
                subject,
                &format!("{text}\r\nCase ID 17234567891\r\n"),
                NOW + 21,
            ),
        ),
    ];
    // A case text full of link-like strings has its text withheld, and
    // with it the facts (the case id) the checks read.
    let links: String = (0..65)
        .map(|i| format!("https://signin.aws.amazon.com/resetpassword?token=t{i:04}x\r\n"))
        .collect();
    let withheld = simulated_aws_mail(
        &target,
        ("amazon.com", "no-reply-aws@amazon.com"),
        subject,
        &format!("{text}\r\n{links}"),
        NOW + 22,
    );
    let quoted: Vec<(&str, String)> = quoted.into_iter().chain([("withheld", withheld)]).collect();
    let kinds = delivered_as_no_evidence(&local, &quoted).await;
    // The reply is the kind that is evidence, so only its quoting kept it out.
    assert!(
        kinds.contains(&rootmail_domain::Kind::ContactChange),
        "{kinds:?}"
    );
}

/// Genuine AWS mail about another account (a root email change of one's
/// own, to our address) is no evidence of a console email change: named by
/// its last digits, or by its full id in the HTML alternative alone (triage
/// reads ids from the plain text).
#[tokio::test]
async fn aws_mail_naming_another_account_is_no_evidence_of_an_email_change() {
    let local = Local::new();
    let target = local.console_code_read().await;
    let subject = "Your AWS account root user email address has been updated";
    let sender = ("signin.aws", "no-reply@signin.aws");
    let text = |whose: &str| {
        format!(
            "Hello,\r\n\r\nThe email address of the root user of {whose} has been\r\n\
             updated. This is now the email address of the root user.\r\n"
        )
    };
    let ending = simulated_aws_mail(
        &target,
        sender,
        subject,
        &text("the AWS account ending in 9999"),
        NOW + 20,
    );
    let alternative = format!(
        "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\n{}\r\n--b\r\nContent-Type: text/html\r\n\r\n\
         <p>{}</p>\r\n--b--\r\n",
        text(&format!("AWS account {}", account())),
        text("AWS account 999988887777")
    );
    let in_html = simulated_aws_mail(&target, sender, subject, "", NOW + 21).replace(
        "Content-Type: text/plain; charset=UTF-8\r\n\r\n",
        &alternative,
    );
    let kinds = delivered_as_no_evidence(&local, &[("ending", ending), ("html", in_html)]).await;
    // Both are the kind that is evidence: only the account they name kept
    // them out.
    let changes = kinds
        .iter()
        .filter(|k| **k == rootmail_domain::Kind::ContactChange)
        .count();
    assert_eq!(changes, 2, "{kinds:?}");
}

/// Delivers `mails` (file name, raw mail) while a console take-over waits
/// for its email change, checks that it still waits with no evidence taken,
/// and gives the kinds of the tickets made.
async fn delivered_as_no_evidence(
    local: &Local,
    mails: &[(&str, String)],
) -> Vec<rootmail_domain::Kind> {
    let lifecycle = local.lifecycle();
    for (name, mail) in mails {
        std::fs::write(
            lifecycle.simulated_mail_dir().join(format!("{name}.eml")),
            mail,
        )
        .unwrap();
    }
    local.deliver(NOW + 30).await;
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::EmailAccepted, "still waiting");
    assert_eq!(rotation.email_evidence, None);
    local
        .store
        .tickets()
        .unwrap()
        .iter()
        .map(|t| t.kind)
        .collect()
}

/// The security notices mailed so far (the local outbox).
fn notices(local: &Local) -> Vec<String> {
    std::fs::read_dir(local.store.root().join("lifecycle/notices"))
        .map(|dir| {
            dir.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// A customer who never gives the release's code (or an address typed
/// wrong) used to leave the account waiting for good, with no way back but
/// a release to somebody. A release waiting for the customer's code is
/// cancelled: the account is ours and active again, what it knew of its
/// former owner's address kept, the customer's code no longer taken, and
/// security told. Once AWS took the code there is nothing to cancel.
#[tokio::test]
async fn a_release_waiting_for_the_customer_is_cancelled_and_the_account_is_ours_again() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let former = rootmail_domain::Account {
        root_email: EmailAddress::parse("it@initech.example").unwrap(),
        account_id: account(),
        customer: "Initech".into(),
        status: AccountStatus::Active,
        payer: None,
    };
    AccountRegistry::save(&lifecycle, &former).await.unwrap();
    local.take_over(Mode::Vaulted).await.unwrap();
    local.engineer_console_steps(NOW).await;
    complete(&lifecycle, &account(), "alice", (None, None), NOW)
        .await
        .unwrap();
    let before = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    let (ours, original) = (before.target_email.clone(), before.previous_email.clone());
    assert_eq!(
        original.as_ref(),
        Some(&former.root_email),
        "the take-over kept the former address"
    );
    let (customer, code) = local.release_started(NOW + 10).await;

    let mut unjustified = releasing(&account(), "bob");
    unjustified.reason = String::new();
    let refused = steps::cancel_release(&lifecycle, &unjustified, None, NOW + 20).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("needs a reason")),
        "{refused:?}"
    );
    let cancelled =
        steps::cancel_release(&lifecycle, &releasing(&account(), "bob"), None, NOW + 30)
            .await
            .expect("cancelled");
    assert_eq!(cancelled.phase, Phase::Active);
    let after = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.target_email, ours);
    assert_eq!(after.previous_email, original);
    assert_eq!(after.before_release, None);
    let trail = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let entry = trail.last().unwrap();
    assert_eq!(entry.action, "release cancelled");
    assert_eq!(
        (entry.actor.as_str(), entry.ticket.as_deref()),
        ("bob", Some("CHG-7"))
    );
    assert!(entry.detail.contains(customer.as_str()) && entry.detail.contains("still ours"));
    let told = notices(&local);
    assert!(
        told.iter().any(|n| n.contains("bob cancelled the release")),
        "{told:?}"
    );

    // The customer's code completes nothing now, and the root user is ours.
    let late = complete(&lifecycle, &account(), "bob", (Some(&code), None), NOW + 40).await;
    assert!(matches!(late, Err(LifecycleError::Refused(_))), "{late:?}");
    let access = AccessRequest {
        reason: "billing emergency".into(),
        ..releasing(&account(), "carol")
    };
    let grant = steps::access(&lifecycle, &access, NOW + 50).await.unwrap();
    assert_eq!(grant.root_email, ours);
    let there = rootmail_lifecycle::AccountApi::primary_email(&lifecycle, &account())
        .await
        .unwrap();
    assert_eq!(there, ours);

    // A later release knows the former owner's address again.
    let owner = original.unwrap();
    steps::start_release(&lifecycle, &releasing(&account(), "bob"), &owner, NOW + 60)
        .await
        .unwrap();
    assert!(
        notices(&local).iter().any(|n| n
            .contains("it@initech.example is the root email the account had before our take-over")),
        "the address before the take-over was forgotten"
    );
    // AWS took the customer's code (a completion that failed after it):
    // the release is done at AWS, and cancelling it is refused.
    let code = SecretValue::new(code_mailed_to(&lifecycle, owner.as_str()));
    rootmail_lifecycle::AccountApi::accept_email_update(&lifecycle, &account(), &owner, &code)
        .await
        .unwrap();
    let refused =
        steps::cancel_release(&lifecycle, &releasing(&account(), "bob"), None, NOW + 70).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("already took") && m.contains("--otp-stdin")),
        "{refused:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingCustomerOtp));
}

/// A console account's release is cancelled on the engineer's word that
/// the console steps were not done, and refused where IAM's summary shows
/// our MFA device gone (the steps went past it: the release must finish).
#[tokio::test]
async fn a_console_release_is_cancelled_only_on_the_engineers_checked_word() {
    let local = Local::active_vaulted().await;
    let lifecycle = local.lifecycle();
    // A payer account: the same record in console mode.
    let mut rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    let version = rotation.version;
    rotation.mode = Mode::Console;
    rotation.version += 1;
    Rotations::put(&lifecycle, &rotation, Some(version))
        .await
        .unwrap();
    let customer = EmailAddress::parse("cfo@initech.example").unwrap();
    let bob = releasing(&account(), "bob");
    let start = |at| steps::start_release(&lifecycle, &bob, &customer, at);
    start(NOW + 10).await.unwrap();
    let cancel = |attest, at| steps::cancel_release(&lifecycle, &bob, attest, at);
    let unsaid = cancel(None, NOW + 20).await;
    assert!(
        matches!(&unsaid, Err(LifecycleError::Refused(m)) if m.contains("--attest")),
        "{unsaid:?}"
    );
    let said = "the customer never answered; I changed nothing in the console";
    let cancelled = cancel(Some(said), NOW + 30).await.expect("cancelled");
    assert_eq!(cancelled.phase, Phase::Active);
    let trail = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let detail = &trail.last().unwrap().detail;
    assert!(
        detail.contains(said) && detail.contains("MFA enabled yes"),
        "{detail}"
    );

    start(NOW + 40).await.unwrap();
    lifecycle
        .console(&account(), ConsoleStep::RemoveMfa, NOW + 50)
        .unwrap();
    let past_it = cancel(Some(said), NOW + 60).await;
    assert!(
        matches!(&past_it, Err(LifecycleError::Refused(m)) if m.contains("no MFA device") && m.contains("finish the release")),
        "{past_it:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingCustomerOtp));
}

/// The local lifecycle where one operator's request runs in the middle of
/// another's: a cancellation while a completion gives AWS the customer's
/// code (`during_accept`), or a completion while a cancellation mails
/// security (`during_notice`), after it read the record and asked AWS.
struct Interleaved<'a> {
    inner: LocalLifecycle<'a>,
    code: SecretValue,
    during_accept: bool,
    /// During the accept, a restart of the release (to another address)
    /// instead of a cancellation.
    restart: bool,
    during_notice: bool,
    other: std::sync::Mutex<Option<Result<(), LifecycleError>>>,
}

impl Interleaved<'_> {
    fn note(&self, outcome: Result<(), LifecycleError>) {
        *self.other.lock().unwrap() = Some(outcome);
    }
}

impl rootmail_lifecycle::AccountApi for Interleaved<'_> {
    async fn start_email_update(
        &self,
        account: &AccountId,
        email: &EmailAddress,
    ) -> rootmail_lifecycle::LifecycleResult<()> {
        self.inner.start_email_update(account, email).await
    }

    async fn accept_email_update(
        &self,
        account: &AccountId,
        email: &EmailAddress,
        otp: &SecretValue,
    ) -> rootmail_lifecycle::LifecycleResult<()> {
        if self.during_accept {
            let bob = releasing(account, "bob");
            let other = match self.restart {
                true => {
                    let elsewhere = EmailAddress::parse("cfo@initech.example").unwrap();
                    steps::start_release(&self.inner, &bob, &elsewhere, NOW + 25).await
                }
                false => steps::cancel_release(&self.inner, &bob, None, NOW + 25).await,
            };
            self.note(other.map(|_| ()));
        }
        self.inner.accept_email_update(account, email, otp).await
    }

    async fn primary_email(
        &self,
        account: &AccountId,
    ) -> rootmail_lifecycle::LifecycleResult<EmailAddress> {
        self.inner.primary_email(account).await
    }

    async fn email_update_status(
        &self,
        account: &AccountId,
    ) -> rootmail_lifecycle::LifecycleResult<Option<rootmail_lifecycle::EmailUpdateStatus>> {
        self.inner.email_update_status(account).await
    }

    async fn member_state(
        &self,
        account: &AccountId,
    ) -> rootmail_lifecycle::LifecycleResult<Option<rootmail_lifecycle::MemberState>> {
        self.inner.member_state(account).await
    }

    async fn close_member(&self, account: &AccountId) -> rootmail_lifecycle::LifecycleResult<()> {
        self.inner.close_member(account).await
    }
}

impl rootmail_lifecycle::Notices for Interleaved<'_> {
    async fn ticket_note(
        &self,
        account: &AccountId,
        customer: &str,
        text: &str,
    ) -> rootmail_lifecycle::LifecycleResult<()> {
        rootmail_lifecycle::Notices::ticket_note(&self.inner, account, customer, text).await
    }

    async fn email(&self, subject: &str, text: &str) -> rootmail_lifecycle::LifecycleResult<()> {
        if self.during_notice && subject.contains("cancelled") {
            let answer = (Some(&self.code), None);
            let done = complete(&self.inner, &account(), "alice", answer, NOW + 25).await;
            self.note(done.map(|_| ()));
        }
        rootmail_lifecycle::Notices::email(&self.inner, subject, text).await
    }
}

lifecycle_ports!(
    Interleaved<'a>,
    inner,
    Api api: own,
    Root root: local,
    Vault vault: local,
    Rotations rotations: local,
    Audit audit: local,
    Registry registry: local,
    Tokens tokens: local,
    Notices notices: own,
);

/// Two operators at once, one cancelling (or restarting) the release and
/// one completing it with the customer's code: one of them wins, and
/// rootmail never records the account as ours (or as waiting for another
/// address) while AWS moved its root email to the customer (before, a
/// cancellation that checked AWS just before the completion gave AWS the
/// code saved `active`, and the completion's save then failed).
#[tokio::test]
async fn a_cancellation_and_a_completion_at_once_never_both_win() {
    for (during_accept, restart, during_notice) in [
        (true, false, false),
        (true, true, false),
        (false, false, true),
    ] {
        let local = Local::active_vaulted().await;
        let (customer, code) = local.release_started(NOW + 10).await;
        let interleaved = Interleaved {
            inner: local.lifecycle(),
            code: code.clone(),
            during_accept,
            restart,
            during_notice,
            other: std::sync::Mutex::new(None),
        };
        let first = if during_accept {
            let answer = steps::ReleaseConfirmation::CustomerCode(&code);
            steps::complete_release(&interleaved, &account(), answer, "alice", NOW + 20)
                .await
                .map(|_| ())
        } else {
            let bob = releasing(&account(), "bob");
            steps::cancel_release(&interleaved, &bob, None, NOW + 20)
                .await
                .map(|_| ())
        };
        let other = interleaved
            .other
            .lock()
            .unwrap()
            .take()
            .expect("interleaved");
        let moved = rootmail_lifecycle::AccountApi::primary_email(&local.lifecycle(), &account())
            .await
            .unwrap()
            == customer;
        let phase = local.phase().await;
        assert!(moved, "the completion gave AWS the code");
        assert_eq!(
            phase,
            Some(Phase::Released),
            "first {first:?}, other {other:?}"
        );
        // The cancellation (or the restart) lost: refused, or its save
        // found the record changed.
        let loser = if during_accept { other } else { first };
        assert!(loser.is_err(), "the cancellation or restart did not win");
    }
}

/// A cancellation security cannot hear of does not happen, as a release
/// that security cannot hear of does not start (before, its notice was only
/// logged, and nobody learnt of the cancellation).
#[tokio::test]
async fn a_cancellation_whose_notice_cannot_be_sent_does_not_happen() {
    let local = Local::active_vaulted().await;
    local.release_started(NOW + 10).await;
    let down = MailDown(local.lifecycle());
    let before = local.actions().await;
    let refused = steps::cancel_release(&down, &releasing(&account(), "bob"), None, NOW + 20).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Port(e)) if e.is_transient()),
        "{refused:?}"
    );
    assert_eq!(local.phase().await, Some(Phase::AwaitingCustomerOtp));
    assert_eq!(local.actions().await, before, "nothing recorded");
}

/// A take-over started, AWS's code mail written but not read: as when the
/// mail came and no rule read its code. Returns the code AWS mailed.
async fn waiting_for_a_code_no_rule_read(local: &Local, mode: Mode) -> SecretValue {
    let lifecycle = local.lifecycle();
    steps::register(&lifecycle, &request(mode), NOW)
        .await
        .unwrap();
    steps::start_email_update(&lifecycle, &account(), "local:otp", NOW)
        .await
        .unwrap();
    assert_eq!(local.phase().await, Some(Phase::AwaitingOtp));
    let target = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap()
        .target_email;
    SecretValue::new(code_mailed_to(&lifecycle, target.as_str()))
}

/// Where no rule reads AWS's root email code (a layout the rules do not
/// know, a code shaped like a word), the engineer reads it in the original
/// and types it (`rotation complete --otp-stdin`): the take-over goes on as
/// with a code from mail, and the audit names who typed it. Before, the
/// take-over waited until the code expired.
#[tokio::test]
async fn a_take_over_goes_on_with_the_code_the_engineer_types_where_no_rule_read_it() {
    let local = Local::new();
    let code = waiting_for_a_code_no_rule_read(&local, Mode::Rootless).await;
    let lifecycle = local.lifecycle();
    let typed = |code: Option<SecretValue>| {
        let lifecycle = local.lifecycle();
        async move {
            complete(
                &lifecycle,
                &account(),
                "alice",
                (code.as_ref(), None),
                NOW + 60,
            )
            .await
        }
    };
    // Without a code, or with one AWS never sends: refused, and nothing moves.
    let Err(LifecycleError::Refused(why)) = typed(None).await else {
        panic!("completed without a code");
    };
    assert!(why.contains("--otp-stdin"), "{why}");
    for wrong in ["kq3-Vz", "kq3Vz", "kq3VzPx", "https:"] {
        let Err(LifecycleError::Refused(why)) =
            typed(Some(SecretValue::new(wrong.to_string()))).await
        else {
            panic!("{wrong} taken");
        };
        assert!(why.contains("six letters and digits"), "{why}");
        assert!(!why.contains(wrong), "the value is not repeated: {why}");
    }
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::AwaitingOtp);
    assert_eq!(rotation.handed_over, None);
    // The code AWS mailed: the take-over runs to its end.
    let trail = typed(Some(code.clone())).await.expect("completed");
    let phases: Vec<Phase> = trail.iter().map(|s| s.phase).collect();
    assert_eq!(
        phases,
        [
            Phase::OtpReceived,
            Phase::EmailAccepted,
            Phase::EmailConfirmed,
            Phase::Secured,
            Phase::Active
        ]
    );
    let entries = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    assert_eq!(entry(&entries, "root email code typed").actor, "alice");
    let typed_in = entries
        .iter()
        .find(|e| e.action == "secret handed over")
        .expect("the handover is audited");
    assert_eq!(typed_in.actor, "alice");
    assert!(
        typed_in.detail.contains("typed by the engineer"),
        "{}",
        typed_in.detail
    );
    // AWS's mail, read now, is an alert whose code is not shown, and the
    // code is nowhere but in the archived original.
    local.deliver(NOW + 120).await;
    assert!(
        !text_outside_archive(&local).contains(code.expose()),
        "the typed code leaked into the state"
    );
}

/// A console take-over takes no typed code: nothing checks it there (AWS's
/// console does, out of our sight), and its change is confirmed only once
/// AWS's code mail passed the trust checks. A code AWS refuses ends a member
/// take-over as a wrong code from mail does, without saying the code.
#[tokio::test]
async fn a_typed_code_is_refused_for_a_console_take_over_and_a_wrong_one_fails_a_member_take_over()
{
    let console = Local::new();
    let lifecycle = console.lifecycle();
    let target = console.console_email_changed().await;
    // AWS's mail stays unread: no rule read its code.
    let code = SecretValue::new(code_mailed_to(&lifecycle, target.as_str()));
    let before = Rotations::get(&lifecycle, &account()).await.unwrap();
    let typed = complete(&lifecycle, &account(), "alice", (Some(&code), None), NOW).await;
    let Err(LifecycleError::Refused(why)) = typed else {
        panic!("a console take-over took a typed code: {typed:?}");
    };
    assert!(why.contains("console"), "{why}");
    assert_eq!(
        Rotations::get(&lifecycle, &account()).await.unwrap(),
        before
    );
    let attest =
        console::attest_email_change(&lifecycle, &account(), "alice", "it shows", NOW).await;
    assert!(
        matches!(attest, Err(LifecycleError::Refused(_))),
        "{attest:?}"
    );

    let vaulted = Local::new();
    let code = waiting_for_a_code_no_rule_read(&vaulted, Mode::Vaulted).await;
    let mut wrong = code.expose().to_string();
    wrong.replace_range(0..1, if wrong.starts_with('A') { "B" } else { "A" });
    let wrong = SecretValue::new(wrong);
    let result = complete(
        &vaulted.lifecycle(),
        &account(),
        "alice",
        (Some(&wrong), None),
        NOW,
    )
    .await;
    let Err(LifecycleError::Refused(why)) = result else {
        panic!("AWS took a wrong code");
    };
    assert!(why.contains("refused the code"), "{why}");
    assert!(!why.contains(wrong.expose()), "{why}");
    assert_eq!(vaulted.phase().await, Some(Phase::Failed));
}

/// The typed code's handover stored it, then the answer to the waiting task
/// failed: typing it again answers with the code stored first (before, the
/// take-over then "waited for nobody" and timed out), and a different code
/// is refused. After the wait ended, a typed code fails the take-over (as
/// the state machine's timeout does), saying so.
#[tokio::test]
async fn a_typed_code_whose_task_answer_failed_is_answered_when_typed_again() {
    let local = Local::new();
    let flaky = FlakyTokens::waiting_for_the_code(local.lifecycle(), 1, false).await;
    let code = SecretValue::new("kq3VzP".into());
    let waiting = account();
    let typed = |at: u64| {
        rootmail_lifecycle::operator::complete(&flaky, &waiting, "alice", Some(&code), None, at)
    };
    let first = typed(NOW).await;
    assert!(
        matches!(first, Err(LifecycleError::Port(ref e)) if e.is_transient()),
        "{first:?}"
    );
    let stored = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.phase, Phase::OtpReceived);
    assert_eq!(stored.task_token.as_deref(), Some("token-1"));
    // Another code now is refused, not dropped for the stored one.
    let other = SecretValue::new("AbC123".into());
    let second = rootmail_lifecycle::operator::complete(
        &flaky,
        &waiting,
        "bob",
        Some(&other),
        None,
        NOW + 2,
    )
    .await;
    assert!(
        matches!(&second, Err(LifecycleError::Refused(why)) if why.contains("holds another code")),
        "{second:?}"
    );
    let again = typed(NOW + 5).await.expect("answered");
    assert_eq!(again.phase, Phase::OtpReceived);
    let answered = Rotations::get(&flaky.inner, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answered.task_token, None);
    assert_eq!(
        answered.handed_over, stored.handed_over,
        "the code stored first"
    );

    let late = Local::new();
    waiting_for_a_code_no_rule_read(&late, Mode::Rootless).await;
    let expired = complete(
        &late.lifecycle(),
        &account(),
        "alice",
        (Some(&code), None),
        NOW + steps::OTP_WAIT_SECS,
    )
    .await;
    assert!(
        matches!(&expired, Err(LifecycleError::Refused(why)) if why.contains("wait for AWS's code ended")),
        "{expired:?}"
    );
    assert_eq!(late.phase().await, Some(Phase::Failed));
}

/// AWS's code mail to `target`, written but not read yet, rewritten by `change`.
fn rewrite_code_mail(lifecycle: &LocalLifecycle<'_>, target: &EmailAddress, change: &MailChange) {
    let to = format!("To: {target}");
    for entry in std::fs::read_dir(lifecycle.simulated_mail_dir()).unwrap() {
        let path = entry.unwrap().path();
        let mail = std::fs::read_to_string(&path).unwrap();
        if mail.contains(&to) {
            std::fs::write(&path, change(mail)).unwrap();
        }
    }
}

/// A code in the Account API's shape that no rule reads where
/// [`code_line_no_rule_reads`] writes it (the domain's tests list it).
const UNREAD_CODE: &str = "kq3VzP";

/// AWS's code mail with its code line as no rule reads it: the code
/// ([`UNREAD_CODE`]) before its words.
fn code_line_no_rule_reads(mail: String) -> String {
    let line = mail
        .lines()
        .find(|l| l.contains("Verification code: "))
        .expect("AWS's code line")
        .to_string();
    mail.replace(
        &line,
        &format!("    {UNREAD_CODE} is your AWS verification code."),
    )
}

/// A console (payer) take-over whose AWS code mail no rule reads (a layout
/// the rules do not know) goes on: once that mail passed every check a
/// code's handoff makes, the rotation waits for the change the engineer
/// makes with the code read in the original, and AWS's notice of the change
/// confirms it, as after `rotation code`. Nothing of the code is vaulted,
/// ticketed or stored; `rotation code` refuses before it audits or reads
/// anything; the same mail delivered again changes nothing. Before, the
/// take-over waited until its day ran out: `attest` needs the code read,
/// `rotation code` needs it in the vault, and a typed code is refused
/// (nothing of ours checks it).
#[tokio::test]
async fn a_console_take_over_whose_code_no_rule_read_goes_on_once_aws_mail_came() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let (target, pending) = console_code_mail_came_unread(&local).await;
    local.deliver(NOW + 31).await;
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.phase, Phase::EmailAccepted, "{rotation:?}");
    assert_eq!(rotation.handed_over, None, "no code was vaulted");
    let vaulted = rootmail_lifecycle::Vault::get(
        &lifecycle,
        &account(),
        rootmail_lifecycle::VaultItem::Handover,
        rootmail_lifecycle::Stage::Current,
    )
    .await;
    assert!(
        matches!(vaulted, Ok(None)),
        "nothing in the vault: {vaulted:?}"
    );
    assert_eq!(
        rotation.email_evidence, None,
        "the change is not confirmed yet"
    );
    use std::collections::HashMap;
    let estate = rootmail_lifecycle::estate::estate(
        &[],
        std::slice::from_ref(&rotation),
        &HashMap::new(),
        &HashMap::new(),
        Default::default(),
    );
    let waits = estate[0].waiting_for.as_deref().unwrap_or_default();
    assert!(
        waits.contains("original mail"),
        "`rotation status` says where the code is: {waits}"
    );
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let came: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "code mail came unread")
        .collect();
    assert_eq!(came.len(), 1, "delivered twice, recorded once");
    assert!(
        came[0].detail.contains("original mail"),
        "{}",
        came[0].detail
    );
    let ticket = ticket_text(&local);
    assert!(
        ticket.contains("rotation attest"),
        "the ticket says how to go on: {ticket}"
    );
    assert!(
        !text_outside_archive(&local).contains(UNREAD_CODE),
        "the code leaked"
    );
    // `rotation code` finds no code of this change, reads and audits nothing.
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let request = access_request("take-over");
    let Err(LifecycleError::Refused(why)) =
        console::read_code(&lifecycle, &request, NOW + 40).await
    else {
        panic!("a code was read where none was handed over");
    };
    assert!(why.contains("original mail"), "{why}");
    assert_eq!(
        AuditLog::entries(&lifecycle, &account()).await.unwrap(),
        audit,
        "nothing audited"
    );
    // `rotation complete` points to what confirms the change.
    let early = complete(&lifecycle, &account(), "alice", (None, None), NOW + 45).await;
    let Err(LifecycleError::Refused(why)) = early else {
        panic!("completed before the change was confirmed: {early:?}");
    };
    assert!(why.contains("rotation attest"), "{why}");
    // Entered in the console from the original: AWS's notice confirms it.
    local
        .code_entered_and_confirmed(&target, pending, NOW + 50)
        .await;
}

/// A change made to a mail's text.
type MailChange = dyn Fn(String) -> String;

/// What moves a console take-over on without a code read is AWS's own mail
/// to it alone, while it waits: the same mail failing SPF (DKIM and DMARC
/// passing, as a genuine mail replayed through another server), delivered
/// to another address, naming another account (the attacker's own root
/// email change sends AWS's genuine code mail to any address), or arriving
/// after the wait ended moves nothing; nor does it move a member take-over
/// (which takes the code typed, and AWS's API checks it).
#[tokio::test]
async fn only_aws_s_own_code_mail_moves_a_console_take_over_on_without_its_code() {
    let spf_failing = |mail: String| {
        code_line_no_rule_reads(mail)
            .replace("spf=pass", "spf=fail")
            .replace("Received-SPF: pass", "Received-SPF: fail")
    };
    let elsewhere = |mail: String| {
        let ours = mail
            .lines()
            .find_map(|l| l.strip_prefix("To: "))
            .unwrap()
            .to_string();
        code_line_no_rule_reads(
            mail.replace(&format!("for {ours};"), "for ops@root.example-msp.com;"),
        )
    };
    let other_account =
        |mail: String| code_line_no_rule_reads(mail).replace(account().as_str(), "999988887777");
    let changes: [(&str, &MailChange, u64); 4] = [
        ("failing SPF", &spf_failing, NOW + 30),
        ("delivered to another address", &elsewhere, NOW + 30),
        ("naming another account", &other_account, NOW + 30),
        (
            "after the wait ended",
            &code_line_no_rule_reads,
            NOW + steps::OTP_WAIT_SECS + 1,
        ),
    ];
    for (what, change, at) in changes {
        let local = Local::new();
        let lifecycle = local.lifecycle();
        let target = local.console_email_changed().await;
        rewrite_code_mail(&lifecycle, &target, change);
        local.deliver(at).await;
        assert_eq!(local.phase().await, Some(Phase::AwaitingOtp), "{what}");
        let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
        assert!(
            !audit.iter().any(|e| e.action == "code mail came unread"),
            "{what}"
        );
        if at < NOW + steps::OTP_WAIT_SECS {
            let ticket = ticket_text(&local);
            assert!(
                ticket.contains("is not handed to it"),
                "{what}: the ticket says why: {ticket}"
            );
        }
        let attest =
            console::attest_email_change(&lifecycle, &account(), "alice", "it shows", at).await;
        assert!(
            matches!(attest, Err(LifecycleError::Refused(_))),
            "{what}: {attest:?}"
        );
    }
    let member = Local::new();
    waiting_for_a_code_no_rule_read(&member, Mode::Rootless).await;
    let lifecycle = member.lifecycle();
    let target = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap()
        .target_email;
    rewrite_code_mail(&lifecycle, &target, &code_line_no_rule_reads);
    member.deliver(NOW + 30).await;
    assert_eq!(
        member.phase().await,
        Some(Phase::AwaitingOtp),
        "a member take-over waits for the typed code"
    );
}

/// A console take-over whose code mail came unread puts nothing in the
/// vault's handover item, which may still hold an earlier take-over's reset
/// link (the item is not cleared when a take-over fails): break-glass access
/// to its pending credentials shows no reset link then. Before, it showed
/// that stale link as this take-over's.
#[tokio::test]
async fn pending_access_shows_no_reset_link_the_take_over_was_not_handed() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let stale =
        SecretValue::new("https://signin.aws.amazon.com/resetpassword?token=earlier".into());
    rootmail_lifecycle::Vault::put(
        &lifecycle,
        &account(),
        rootmail_lifecycle::VaultItem::Handover,
        rootmail_lifecycle::Stage::Current,
        &stale,
    )
    .await
    .unwrap();
    console_take_over_whose_code_came_unread(&local).await;
    let grant = steps::access(&lifecycle, &access_request("set the password"), NOW + 80)
        .await
        .expect("pending credentials");
    assert!(grant.pending);
    assert_eq!(grant.reset_link, None, "an earlier take-over's link");
}

/// A console take-over and AWS's code mail, delivered at `NOW + 30` with its
/// code written where no rule reads it ([`UNREAD_CODE`]). Returns the new
/// root address and the code the console waits for (not the one written).
async fn console_code_mail_came_unread(local: &Local) -> (EmailAddress, SecretValue) {
    let lifecycle = local.lifecycle();
    let target = local.console_email_changed().await;
    let pending = SecretValue::new(code_mailed_to(&lifecycle, target.as_str()));
    rewrite_code_mail(&lifecycle, &target, &code_line_no_rule_reads);
    local.deliver(NOW + 30).await;
    (target, pending)
}

/// A console take-over whose code mail came unread, the code entered in the
/// console and confirmed by AWS's notice: it waits for the engineer.
async fn console_take_over_whose_code_came_unread(local: &Local) {
    let (target, pending) = console_code_mail_came_unread(local).await;
    local
        .code_entered_and_confirmed(&target, pending, NOW + 50)
        .await;
    assert_eq!(local.phase().await, Some(Phase::AwaitingEngineer));
}

/// A release deletes what its take-over stored, and a console take-over
/// whose code mail came unread stored no handover: the release names only
/// the password and seed (AWS, like the local vault, denies deleting a
/// secret that was never created). Before, such a release failed.
#[tokio::test]
async fn a_console_take_over_whose_code_came_unread_is_released() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    console_take_over_whose_code_came_unread(&local).await;
    local.engineer_console_steps(NOW + 90).await;
    lifecycle
        .console(&account(), ConsoleStep::DeleteAccessKeys, NOW + 90)
        .unwrap();
    let attested = Some("password set, keys deleted, our MFA device the only one");
    let done = complete(&lifecycle, &account(), "alice", (None, attested), NOW + 100)
        .await
        .expect("completed");
    assert_eq!(done.last().unwrap().phase, Phase::Active);
    let customer = EmailAddress::parse("cfo@initech.example").unwrap();
    steps::start_release(
        &lifecycle,
        &releasing(&account(), "bob"),
        &customer,
        NOW + 200,
    )
    .await
    .unwrap();
    lifecycle
        .console(&account(), ConsoleStep::RemoveMfa, NOW + 220)
        .unwrap();
    let attested = Some("removed our MFA device; the console shows cfo@initech.example");
    let released = complete(&lifecycle, &account(), "bob", (None, attested), NOW + 230)
        .await
        .expect("released");
    assert_eq!(released[0].phase, Phase::Released);
}

/// A backfill (`rootmail run --since`) archives mail delivered before its
/// cutoff: AWS's code mail among it, though it passed every check, tells a
/// waiting console take-over nothing (an old mail is no sign of today's
/// change), as an old code is handed to none.
#[tokio::test]
async fn a_code_mail_a_backfill_archives_tells_no_take_over_it_came() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let target = local.console_email_changed().await;
    rewrite_code_mail(&lifecycle, &target, &code_line_no_rule_reads);
    let directory = rootmail_local::workflow::directory(&lifecycle, &[]).unwrap();
    let handoffs = rootmail_lifecycle::handoff::MailHandoffs(&lifecycle);
    let mut knowledge = rootmail_pipeline::Knowledge::new(&local.rules, &handoffs);
    knowledge.ticket_since = Some(i64::try_from(NOW).unwrap() + 3600);
    for entry in std::fs::read_dir(lifecycle.simulated_mail_dir()).unwrap() {
        let path = entry.unwrap().path();
        let raw = std::fs::read(&path).unwrap();
        let ports = rootmail_pipeline::IngestPorts {
            archive: &local.store,
            ledger: &local.store,
            threads: &local.store,
            accounts: &directory,
        };
        let source = path.display().to_string();
        let ingested = rootmail_pipeline::ingest(ports, &knowledge, &raw, &source, NOW + 30)
            .await
            .unwrap();
        let rootmail_pipeline::Ingested::Triaged { triage, .. } = ingested else {
            panic!("not triaged");
        };
        assert_eq!(triage.disposition, rootmail_domain::Disposition::Archive);
    }
    assert_eq!(local.phase().await, Some(Phase::AwaitingOtp));
}

/// The local lifecycle whose audit refuses the first row of `action`, as an
/// audit table that throttled one write.
struct AuditDownOnce<'a> {
    inner: LocalLifecycle<'a>,
    action: &'static str,
    failed: std::sync::atomic::AtomicBool,
}

impl<'a> AuditDownOnce<'a> {
    fn new(local: &'a Local, action: &'static str) -> Self {
        Self {
            inner: local.lifecycle(),
            action,
            failed: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl AuditLog for AuditDownOnce<'_> {
    async fn append(
        &self,
        entry: &rootmail_lifecycle::AuditEntry,
    ) -> rootmail_lifecycle::LifecycleResult<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if entry.action == self.action && !self.failed.swap(true, SeqCst) {
            let throttled = rootmail_pipeline::PortError::transient("audit", "throttled");
            return Err(LifecycleError::Port(throttled));
        }
        AuditLog::append(&self.inner, entry).await
    }

    async fn entries(
        &self,
        account: &AccountId,
    ) -> rootmail_lifecycle::LifecycleResult<Vec<rootmail_lifecycle::AuditEntry>> {
        AuditLog::entries(&self.inner, account).await
    }
}

lifecycle_ports!(
    AuditDownOnce<'a>,
    inner,
    Api api: local,
    Root root: local,
    Vault vault: local,
    Rotations rotations: local,
    Audit audit: own,
    Registry registry: local,
    Tokens tokens: local,
    Notices notices: local,
);

/// The unread code mail moved the take-over on (the record saved), then its
/// audit row could not be written: the ingest fails, SQS delivers the mail
/// again, and the redelivery writes the row, once. The rotation still
/// hears that mail, though it now waits for AWS's notice.
#[tokio::test]
async fn an_unread_code_mail_whose_audit_row_failed_writes_it_when_delivered_again() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let target = local.console_email_changed().await;
    rewrite_code_mail(&lifecycle, &target, &code_line_no_rule_reads);
    let raw = std::fs::read_dir(lifecycle.simulated_mail_dir())
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .find(|m| String::from_utf8_lossy(m).contains(&format!("To: {target}")))
        .expect("AWS's code mail");
    let flaky = AuditDownOnce::new(&local, "code mail came unread");
    let first = ingest_through(&local, &flaky, &raw, NOW + 30).await;
    assert!(first.is_err(), "the audit failed: {first:?}");
    assert_eq!(
        local.phase().await,
        Some(Phase::EmailAccepted),
        "saved first"
    );
    let unread = |rows: Vec<String>| {
        rows.iter()
            .filter(|a| *a == "code mail came unread")
            .count()
    };
    assert_eq!(unread(local.actions().await), 0);
    for again in [NOW + 31, NOW + 32] {
        ingest_through(&local, &flaky, &raw, again)
            .await
            .expect("redelivery");
        assert_eq!(unread(local.actions().await), 1);
    }
}

/// AWS's code mails to `target` not read yet, taken out of the simulated
/// mailbox (the test ingests them itself), oldest first: each code (None
/// where no rule reads it) and the raw mail.
fn take_code_mails(
    lifecycle: &LocalLifecycle<'_>,
    target: &EmailAddress,
) -> Vec<(Option<String>, Vec<u8>)> {
    let mut mails: Vec<(u64, Option<String>, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(lifecycle.simulated_mail_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains(&format!("To: {target}")) {
            continue;
        }
        let code = text
            .lines()
            .find(|l| l.contains("Verification code: "))
            .and_then(|l| l.rsplit(' ').next())
            .map(|c| c.trim().to_string());
        let date = text.lines().find(|l| l.starts_with("Date: ")).unwrap();
        let sent = (0..600)
            .find(|d| date[6..] == rootmail_domain::dates::rfc2822(NOW + d))
            .expect("sent within the tests' ten minutes");
        mails.push((sent, code, text.into_bytes()));
        std::fs::remove_file(&path).unwrap();
    }
    mails.sort();
    mails
        .into_iter()
        .map(|(_, code, raw)| (code, raw))
        .collect()
}

/// `raw` through the mail pipeline at `now`, as mail-ingest takes it from
/// SQS; an alert it makes is written as a ticket. Returns the disposition
/// (a copy of a mail already done: the ledger's).
async fn ingest_mail(local: &Local, raw: &[u8], now: u64) -> rootmail_domain::Disposition {
    use rootmail_pipeline::Ingested;
    match ingest_through(local, &local.lifecycle(), raw, now)
        .await
        .unwrap()
    {
        Ingested::Triaged { triage, op, .. } => {
            if let Some(op) = op {
                let writer = local.store.writer_ports(&local.store);
                rootmail_pipeline::write_ticket(writer, &op, now)
                    .await
                    .unwrap();
            }
            triage.disposition
        }
        Ingested::Duplicate(row) => row.disposition.expect("a done mail's disposition"),
        Ingested::Busy => panic!("another run holds the mail"),
    }
}

/// `raw` through the mail pipeline at `now`, as mail-ingest takes it from
/// SQS (a redelivery is the same call again), the lifecycle behind it being
/// `lifecycle`: the local one, or a test's wrapper that fails a write.
async fn ingest_through<L>(
    local: &Local,
    lifecycle: &L,
    raw: &[u8],
    now: u64,
) -> rootmail_pipeline::PortResult<rootmail_pipeline::Ingested>
where
    L: rootmail_lifecycle::LifecyclePorts + Sync,
{
    use rootmail_pipeline::{IngestPorts, Knowledge, ingest};
    let directory = rootmail_local::workflow::directory(&local.lifecycle(), &[]).unwrap();
    let handoffs = rootmail_lifecycle::handoff::MailHandoffs(lifecycle);
    let knowledge = Knowledge::new(&local.rules, &handoffs);
    let ports = IngestPorts {
        archive: &local.store,
        ledger: &local.store,
        threads: &local.store,
        accounts: &directory,
    };
    ingest(ports, &knowledge, raw, "code.eml", now).await
}

/// A raw mail's `Message-ID`, as the pipeline reads it (no angle brackets).
fn message_id_of(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("a Message-ID");
    line.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn count(actions: &[String], action: &str) -> usize {
    actions.iter().filter(|a| *a == action).count()
}

/// The code the engineer is given now (`rotation code`), or why not.
async fn code_given(local: &Local, now: u64) -> Result<String, String> {
    match console::read_code(&local.lifecycle(), &access_request("console change"), now).await {
        Ok(grant) => Ok(grant.code.expose().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The code the engineer read failed in the console (it expired, or was
/// mistyped), so they asked AWS for a new one: AWS honours only its latest
/// code, and the latest mail's code replaces the one held until the change
/// is confirmed; `rotation code` gives it. An older code mail arriving late
/// (its first ingest failed) is not kept and makes no alert.
/// Before, every code after the first was an alert with its code sealed,
/// and `rotation code` gave the stale first code.
#[tokio::test]
async fn a_new_code_asked_for_at_the_console_replaces_the_one_held() {
    use rootmail_domain::Disposition;
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let target = local.console_code_read().await;
    let first = code_given(&local, NOW + 1).await.expect("the first code");
    let tickets = local.store.tickets().unwrap().len();
    for at in [NOW + 100, NOW + 200] {
        let again = ConsoleStep::ChangeEmail { to: target.clone() };
        lifecycle.console(&account(), again, at).unwrap();
    }
    let mails = take_code_mails(&lifecycle, &target);
    let [(Some(second), older), (Some(latest), newer)] = &mails[..] else {
        panic!("two readable code mails: {}", mails.len());
    };
    assert!(first != *latest && second != latest);
    // The latest arrives first; the older one's first ingest had failed.
    assert_eq!(
        ingest_mail(&local, newer, NOW + 210).await,
        Disposition::Handoff
    );
    assert_eq!(code_given(&local, NOW + 215).await.as_ref(), Ok(latest));
    assert_eq!(
        ingest_mail(&local, older, NOW + 220).await,
        Disposition::Handoff
    );
    assert_eq!(code_given(&local, NOW + 240).await.as_ref(), Ok(latest));
    assert_eq!(local.phase().await, Some(Phase::EmailAccepted));
    let actions = local.actions().await;
    assert_eq!(count(&actions, "secret handed over"), 2, "{actions:?}");
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let named = |action: &str, raw: &[u8]| {
        let id = format!("mail {}", message_id_of(raw));
        audit
            .iter()
            .any(|e| e.action == action && e.detail.contains(&id))
    };
    assert!(named("secret handed over", newer), "{audit:?}");
    assert!(named("older secret not kept", older), "{audit:?}");
    assert_eq!(count(&actions, "older secret not kept"), 1, "{actions:?}");
    assert_eq!(local.store.tickets().unwrap().len(), tickets, "no alert");
    let leaked = text_outside_archive(&local);
    for code in [&first, second, latest] {
        assert!(!leaked.contains(code.as_str()), "a code leaked");
    }
    // The console takes the code given, and AWS's notice confirms it.
    let latest = SecretValue::new(latest.clone());
    local
        .code_entered_and_confirmed(&target, latest, NOW + 250)
        .await;
}

/// After the code held, AWS's next code mail came where no rule reads its
/// code: the code held is stale, so `rotation code` no longer gives it and
/// says to read the original; the take-over waits for AWS's notice. Then a
/// readable code mail after an unread one is given again, and an older
/// readable one arriving after it (its first ingest failed) changes
/// nothing. Once the change is confirmed, a code mail is an alert.
#[tokio::test]
async fn an_unread_code_after_the_one_held_makes_it_stale_and_a_readable_one_is_given_again() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let target = local.console_code_read().await;
    let again = ConsoleStep::ChangeEmail { to: target.clone() };
    lifecycle.console(&account(), again, NOW + 100).unwrap();
    rewrite_code_mail(&lifecycle, &target, &code_line_no_rule_reads);
    local.deliver(NOW + 110).await;
    let stale = code_given(&local, NOW + 120).await.unwrap_err();
    assert!(stale.contains("original mail"), "{stale}");
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let unread = entry(&audit, "code mail came unread");
    assert!(unread.detail.contains("stale"), "{}", unread.detail);
    assert_eq!(local.phase().await, Some(Phase::EmailAccepted));

    for at in [NOW + 200, NOW + 300] {
        let again = ConsoleStep::ChangeEmail { to: target.clone() };
        lifecycle.console(&account(), again, at).unwrap();
    }
    let mails = take_code_mails(&lifecycle, &target);
    let [(Some(older), older_raw), (Some(latest), latest_raw)] = &mails[..] else {
        panic!("two readable code mails: {}", mails.len());
    };
    let tickets = local.store.tickets().unwrap().len();
    ingest_mail(&local, latest_raw, NOW + 310).await;
    assert_eq!(code_given(&local, NOW + 320).await.as_ref(), Ok(latest));
    ingest_mail(&local, older_raw, NOW + 330).await;
    assert_eq!(code_given(&local, NOW + 340).await.as_ref(), Ok(latest));
    assert_eq!(count(&local.actions().await, "older secret not kept"), 1);
    assert_eq!(local.store.tickets().unwrap().len(), tickets, "no alert");
    assert_ne!(older, latest);
    // Once the change is confirmed, a code mail is an alert again: nothing
    // waits for it, and someone asked AWS for it.
    let step = ConsoleStep::EnterCode {
        to: target.clone(),
        code: SecretValue::new(latest.clone()),
    };
    lifecycle.console(&account(), step, NOW + 350).unwrap();
    local.deliver(NOW + 360).await;
    let confirmed = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert!(confirmed.email_evidence.is_some(), "{confirmed:?}");
    let unasked = root_email_code_mail(&target, &account(), "Z9Y8X7", NOW + 400);
    assert_eq!(
        ingest_mail(&local, unasked.as_bytes(), NOW + 410).await,
        rootmail_domain::Disposition::Ticket
    );
    let after = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.handed_over, confirmed.handed_over);
    assert!(!ticket_text(&local).contains("Z9Y8X7"), "the code leaked");
}

/// A console take-over's code was handed over (the record saved), then its
/// audit row could not be written: the redelivered mail writes the row,
/// once however often it comes, names the mail, and ends the wait for a
/// code. Before, the redelivery reused the stored code and wrote no row:
/// the handover went unaudited.
#[tokio::test]
async fn a_console_code_whose_audit_row_failed_writes_it_when_delivered_again() {
    use rootmail_pipeline::Ingested;
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let target = local.console_email_changed().await;
    let [(Some(code), raw)] = &take_code_mails(&lifecycle, &target)[..] else {
        panic!("one readable code mail");
    };
    let flaky = AuditDownOnce::new(&local, "secret handed over");
    let first = ingest_through(&local, &flaky, raw, NOW + 10).await;
    assert!(first.is_err(), "the audit failed: {first:?}");
    assert_eq!(local.phase().await, Some(Phase::OtpReceived), "saved first");
    assert_eq!(count(&local.actions().await, "secret handed over"), 0);
    let again = ingest_through(&local, &flaky, raw, NOW + 20).await;
    let Ok(Ingested::Triaged {
        triage, op: None, ..
    }) = again
    else {
        panic!("handed over, no ticket: {again:?}");
    };
    assert_eq!(triage.disposition, rootmail_domain::Disposition::Handoff);
    // The pipeline's ledger stops a third copy before the lifecycle; the
    // lifecycle, given it all the same, writes no second row.
    let handoff = triage.handoff.expect("the code handed over");
    steps::hand_over(&lifecycle, &account(), &handoff, NOW + 25)
        .await
        .unwrap();
    let audit = AuditLog::entries(&lifecycle, &account()).await.unwrap();
    let handed: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "secret handed over")
        .collect();
    assert_eq!(handed.len(), 1);
    let message_id = handoff.message_id.expect("AWS's mail has a Message-ID");
    assert!(
        handed[0].detail.contains(&message_id),
        "{}",
        handed[0].detail
    );
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotation.waiting_for, None, "the code came: the wait ended");
    assert_eq!(code_given(&local, NOW + 30).await.as_ref(), Ok(code));
}

/// The same code mail (its `Message-ID` and stamp) came unread, then is
/// read (a rule added between its deliveries): its code is given, as a
/// later mail's would be.
#[tokio::test]
async fn a_code_mail_read_on_redelivery_after_it_came_unread_gives_its_code() {
    let local = Local::new();
    let lifecycle = local.lifecycle();
    let target = local.console_email_changed().await;
    let [(Some(code), _)] = &take_code_mails(&lifecycle, &target)[..] else {
        panic!("one readable code mail");
    };
    let (message_id, delivered_at) = (Some("m1@email.amazonses.com".to_string()), Some(NOW as i64));
    let unread = rootmail_domain::UnreadSecret {
        waiting: rootmail_domain::WaitingRotation {
            account: account(),
            kind: rootmail_domain::Kind::RootEmailOtp,
            address: target.clone(),
        },
        message_id: message_id.clone(),
        delivered_at,
    };
    assert!(
        rootmail_lifecycle::code_mail::code_came_unread(&lifecycle, &unread, NOW + 10)
            .await
            .unwrap()
    );
    assert!(code_given(&local, NOW + 11).await.is_err());
    let read = rootmail_domain::Handoff {
        kind: rootmail_domain::Kind::RootEmailOtp,
        secret: SecretValue::new(code.clone()),
        recipient: target,
        delivered_at,
        message_id,
    };
    steps::hand_over(&lifecycle, &account(), &read, NOW + 20)
        .await
        .unwrap();
    assert_eq!(code_given(&local, NOW + 30).await.as_ref(), Ok(code));
}

//! The credential lifecycle in local mode: take-over (rootless and vaulted),
//! break-glass access, release and closure against the embedded store, the
//! encrypted local vault and the simulated AWS, with the code mail going through
//! the real mail pipeline.

use rootmail_domain::{AccountId, AccountStatus, EmailAddress, Rules, SecretValue, ThreadKey};
use rootmail_lifecycle::steps::{self, AccessRequest, TakeOver};
use rootmail_lifecycle::{
    AccountRegistry, AuditLog, LifecycleError, Mode, Phase, RootAccess, Rotations,
};
use rootmail_local::LocalStore;
use rootmail_local::lifecycle::{LocalLifecycle, VaultKey, root_email_code_mail};
use rootmail_local::workflow::{complete, deliver_simulated_mail, take_over};

const KEY: &str = "4f1c0e9a7b3d5f2e8c6a4b2d0f9e7c5a3b1d9f8e6c4a2b0d8f7e5c3a1b9d7f6e";
const DOMAIN: &str = "root.example-msp.com";
const NOW: u64 = 1_790_000_000;

fn account() -> AccountId {
    AccountId::parse("444455556666").unwrap()
}

fn request(mode: Mode) -> TakeOver {
    TakeOver {
        account_id: account(),
        customer: "Initech".into(),
        mode,
        root_domain: DOMAIN.into(),
    }
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

    fn lifecycle(&self) -> LocalLifecycle<'_> {
        LocalLifecycle::new(&self.store, VaultKey::from_hex(KEY).unwrap())
    }

    async fn take_over(&self, mode: Mode) -> Result<Vec<Phase>, LifecycleError> {
        let lifecycle = self.lifecycle();
        let trail = take_over(
            &lifecycle,
            &self.store,
            (&[], &self.rules),
            &request(mode),
            NOW,
        )
        .await?;
        Ok(trail.iter().map(|s| s.phase).collect())
    }

    async fn phase(&self) -> Option<Phase> {
        Rotations::get(&self.lifecycle(), &account())
            .await
            .unwrap()
            .map(|r| r.phase)
    }

    async fn actions(&self) -> Vec<String> {
        AuditLog::entries(&self.lifecycle(), &account())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
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

    // A device someone registered before the task began does not count...
    lifecycle
        .simulate_console_steps(&account(), NOW - 100)
        .unwrap();
    let stale = complete(&lifecycle, &account(), "alice", None, NOW).await;
    assert!(
        matches!(&stale, Err(LifecycleError::Refused(m)) if m.contains("enabled before")),
        "{stale:?}"
    );
    // ...and with ours beside it there are two.
    lifecycle
        .simulate_console_steps(&account(), NOW + 10)
        .unwrap();
    let two = complete(&lifecycle, &account(), "alice", None, NOW + 20).await;
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
    let early = complete(&lifecycle, &account(), "alice", None, NOW).await;
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
    lifecycle.simulate_console_steps(&account(), NOW).unwrap();
    let done = complete(&lifecycle, &account(), "alice", None, NOW)
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
    let unknown = AccountId::parse("999988887777").unwrap();
    let customer = EmailAddress::parse("owner@initech.example").unwrap();
    let release = steps::start_release(&lifecycle, &unknown, &customer, "alice", NOW).await;
    assert!(
        matches!(&release, Err(LifecycleError::Refused(m)) if m.contains("no lifecycle record")),
        "{release:?}"
    );
    let early_release = steps::start_release(&lifecycle, &account(), &customer, "alice", NOW).await;
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

#[tokio::test]
async fn release_needs_the_customers_code_and_closure_keeps_the_vault() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.unwrap();
    let lifecycle = local.lifecycle();
    lifecycle.simulate_console_steps(&account(), NOW).unwrap();
    complete(&lifecycle, &account(), "alice", None, NOW)
        .await
        .unwrap();

    let customer = EmailAddress::parse("owner@initech.example").unwrap();
    let started = steps::start_release(&lifecycle, &account(), &customer, "alice", NOW)
        .await
        .unwrap();
    assert_eq!(started.phase, Phase::AwaitingCustomerOtp);
    // The code went to the customer (here: the simulated AWS's mail folder).
    let mail_dir = lifecycle.simulated_mail_dir();
    let mail = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains("To: owner@initech.example"))
        .expect("a code mail to the customer");
    let code = mail
        .lines()
        .find(|l| l.contains("Verification code:"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .trim()
        .to_string();

    let wrong = complete(
        &lifecycle,
        &account(),
        "alice",
        Some(&SecretValue::new("WRONG1".into())),
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
        Some(&SecretValue::new(code)),
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

    let closed = steps::close(
        &lifecycle,
        &account(),
        "alice",
        "customer closed the account",
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(closed.phase, Phase::Closed);
    assert_eq!(
        lifecycle.by_email(&ours).await.unwrap().unwrap().status,
        AccountStatus::Closed
    );
    let again = steps::close(&lifecycle, &account(), "alice", "again", NOW).await;
    assert!(matches!(again, Err(LifecycleError::Refused(_))));
}

/// The password-reset mail an engineer triggers during a vaulted take-over goes
/// to the waiting rotation (for `creds get`), never to a ticket.
#[tokio::test]
async fn the_reset_link_of_a_vaulted_take_over_goes_to_the_vault_not_a_ticket() {
    let local = Local::new();
    local.take_over(Mode::Vaulted).await.unwrap();
    let lifecycle = local.lifecycle();
    let rotation = Rotations::get(&lifecycle, &account())
        .await
        .unwrap()
        .unwrap();
    let corpus = rootmail_tests::corpus_dir().join("security.password_reset/01-plain.eml");
    let reset = std::fs::read_to_string(corpus).unwrap().replace(
        "root+a7f3k9q2@root.example-msp.com",
        rotation.target_email.as_str(),
    );
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
    assert_eq!(rotation.waiting_for, None, "handed over");
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

/// The local ports, except that answering the waiting task fails once (a
/// throttled or unreachable Step Functions).
struct FlakyTokens<'a> {
    inner: LocalLifecycle<'a>,
    failures_left: std::sync::atomic::AtomicU32,
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
                rootmail_pipeline::PortError::Transient {
                    port: "stepfunctions",
                    message: "throttled".into(),
                },
            ));
        }
        rootmail_lifecycle::TaskTokens::succeed(&self.inner, token, output).await
    }
}

impl<'a> rootmail_lifecycle::LifecyclePorts for FlakyTokens<'a> {
    type Api = LocalLifecycle<'a>;
    type Root = LocalLifecycle<'a>;
    type Vault = LocalLifecycle<'a>;
    type Rotations = LocalLifecycle<'a>;
    type Audit = LocalLifecycle<'a>;
    type Registry = LocalLifecycle<'a>;
    type Tokens = Self;
    type Notices = LocalLifecycle<'a>;
    fn api(&self) -> &LocalLifecycle<'a> {
        &self.inner
    }
    fn root(&self) -> &LocalLifecycle<'a> {
        &self.inner
    }
    fn vault(&self) -> &LocalLifecycle<'a> {
        &self.inner
    }
    fn rotations(&self) -> &LocalLifecycle<'a> {
        &self.inner
    }
    fn audit(&self) -> &LocalLifecycle<'a> {
        &self.inner
    }
    fn registry(&self) -> &LocalLifecycle<'a> {
        &self.inner
    }
    fn tokens(&self) -> &Self {
        self
    }
    fn notices(&self) -> &LocalLifecycle<'a> {
        &self.inner
    }
}

#[tokio::test]
async fn a_handover_whose_task_answer_failed_is_finished_by_the_redelivered_mail() {
    let local = Local::new();
    let flaky = FlakyTokens {
        inner: local.lifecycle(),
        failures_left: 1.into(),
    };
    steps::register(&flaky, &request(Mode::Rootless), NOW)
        .await
        .unwrap();
    steps::start_email_update(&flaky, &account(), "token-1", NOW)
        .await
        .unwrap();
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

    let reference = steps::hand_over(&flaky, &account(), &handoff, NOW + 5)
        .await
        .unwrap();
    assert_eq!(
        Some(reference),
        rotation.handed_over,
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

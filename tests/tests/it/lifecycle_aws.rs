//! The credential lifecycle in AWS: every step through the `lifecycle`
//! function's handler, against moto (DynamoDB, Secrets Manager, KMS, SQS, SES,
//! Step Functions) and the Account/STS/IAM fake, with the code mail going from
//! the fake into the bucket and through the real `mail-ingest` handler.
//! Run under `scripts/with-moto`.

use lifecycle::Step;
use rootmail_aws::caller_proof::PROOF_HEADER;
use rootmail_aws::lifecycle_adapters::{AwsLifecycle, secret_name};
use rootmail_domain::{Account, AccountId, AccountStatus, Disposition, EmailAddress, Kind};
use rootmail_lifecycle::console;
use rootmail_lifecycle::steps::{self, AccessRequest, ReleaseConfirmation, StepOutput};
use rootmail_lifecycle::{
    AccountRegistry, AuditEntry, AuditLog, LifecycleError, Mode, Phase, RootAccess, Rotation,
    Rotations, Stage, Vault, VaultItem,
};
use rootmail_tests::account_fake::RootCredentials;
use rootmail_tests::aws::process_env;
use rootmail_tests::function_url::{Caller, FunctionUrl, url_event};
use rootmail_tests::lambda::drain;
use rootmail_tests::leaks::{Scan, Secrets};
use rootmail_tests::lifecycle::{
    LifecycleStack, NOTICE_FROM, NOTICE_TO, ROOT_DOMAIN, fresh_account_id, sent_email,
};
use rootmail_tests::runtime_api::RuntimeApi;
use rootmail_tests::{captured_logs, workspace_bin};
use serde_json::{Value, json};

const OLD_ROOT: &str = "aws-root@initech.example";
/// The seed the console would show (RFC 6238's test key, base32).
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn customer_credentials() -> RootCredentials {
    RootCredentials {
        password: true,
        access_keys: 2,
        signing_certificates: 1,
        mfa_devices: 1,
    }
}

/// One take-over in progress: the stack, the account, the execution and the
/// outputs every step returned (they must hold no secret either).
struct Run {
    ls: LifecycleStack,
    ports: AwsLifecycle,
    account: AccountId,
    execution: String,
    outputs: Vec<StepOutput>,
}

impl Run {
    /// A fresh stack with the account in the fake (root credentials as a
    /// customer leaves them) and in the directory under its old address.
    async fn new(credentials: RootCredentials) -> Self {
        let ls = LifecycleStack::create().await;
        // A member of moto's organization too (its id is moto's), as a
        // member take-over's account is in AWS Organizations.
        let org = aws_sdk_organizations::Client::new(&ls.stack.aws);
        let email = format!("{}@customer.example", rootmail_tests::aws::unique("member"));
        let id = rootmail_tests::lifecycle::create_member_account(&org, "member", &email).await;
        let account = AccountId::parse(&id).expect("moto's account id");
        ls.fake.add_account(account.as_str(), OLD_ROOT, credentials);
        let ports = ls.ports().await;
        ports
            .registry
            .save(&Account {
                root_email: EmailAddress::parse(OLD_ROOT).unwrap(),
                account_id: account.clone(),
                customer: "Initech".into(),
                status: AccountStatus::Active,
                payer: None,
            })
            .await
            .expect("directory entry");
        Self {
            ls,
            ports,
            account,
            execution: String::new(),
            outputs: Vec::new(),
        }
    }

    /// Runs `step` through the function's handler with `input` (plus the account).
    async fn step(
        &mut self,
        step: Step,
        mut input: Value,
    ) -> Result<StepOutput, lifecycle::StepFailure> {
        input["account_id"] = json!(self.account);
        let handler = self.ls.handler(step).await;
        // Boxed, as `deliver_mail`'s ingest: a step's future is large in a
        // debug build, and the test futures calling it hold it on the stack.
        let event = lambda_runtime::LambdaEvent::new(input, Default::default());
        let answer = Box::pin(handler.handle(event)).await;
        if let Ok(output) = &answer {
            self.outputs.push(output.clone());
        }
        answer
    }

    async fn ok(&mut self, step: Step, input: Value) -> Phase {
        match self.step(step, input).await {
            Ok(output) => output.phase,
            Err(failure) => panic!("{} failed: {failure:?}", step.name()),
        }
    }

    async fn refused(&mut self, step: Step, input: Value) -> String {
        match self.step(step, input).await {
            Err(failure) if failure.name == "Refused" => failure.message,
            other => panic!("{} was not refused: {other:?}", step.name()),
        }
    }

    /// No lifecycle record, and the directory still has the old address.
    async fn assert_nothing_registered(&self) {
        let rotation = self.ports.rotations.get(&self.account).await.unwrap();
        assert!(rotation.is_none(), "{rotation:?}");
        let known = self.ports.registry.by_id(&self.account).await.unwrap();
        assert_eq!(
            known.map(|a| a.root_email.to_string()).as_deref(),
            Some(OLD_ROOT)
        );
    }

    /// The account's `Status` in moto's AWS Organizations.
    async fn organizations_status(&self) -> String {
        let org = aws_sdk_organizations::Client::new(&self.ls.stack.aws);
        let described = org
            .describe_account()
            .account_id(self.account.as_str())
            .send()
            .await
            .expect("describe account");
        let account = described.account.expect("an account");
        account.status.expect("a status").as_str().to_string()
    }

    async fn rotation(&self) -> Rotation {
        self.ports
            .rotations
            .get(&self.account)
            .await
            .expect("read rotation")
            .expect("a rotation")
    }

    async fn audit(&self) -> Vec<AuditEntry> {
        self.ports
            .audit
            .entries(&self.account)
            .await
            .expect("audit")
    }

    async fn actions(&self) -> Vec<String> {
        self.audit().await.into_iter().map(|e| e.action).collect()
    }

    /// The rotation record and audit rows, to compare before and after a
    /// refused request.
    async fn state(&self) -> (Option<Rotation>, Vec<AuditEntry>) {
        (
            self.ports
                .rotations
                .get(&self.account)
                .await
                .expect("rotation"),
            self.audit().await,
        )
    }

    /// Register, start the execution, start the email change with the
    /// execution's first token: the code mail is in the bucket.
    async fn start(&mut self, mode: &str) -> String {
        let registered = self
            .ok(Step::Register, json!({"customer": "Initech", "mode": mode}))
            .await;
        assert_eq!(registered, Phase::Registered);
        self.execution = self.ls.start_execution(&self.account, mode).await;
        let wait = self.ls.next_wait().await;
        assert_eq!(wait["wait"], "code");
        assert_eq!(wait["account_id"], json!(self.account));
        let token = wait["task_token"].as_str().expect("token").to_string();
        let phase = self
            .ok(Step::StartEmailUpdate, json!({"task_token": token}))
            .await;
        assert_eq!(phase, Phase::AwaitingOtp);
        token
    }

    /// A whole vaulted take-over, the engineer's console steps included.
    async fn vaulted_to_active(&mut self) {
        self.start("vaulted").await;
        self.deliver_mail().await;
        for step in [Step::AcceptEmailUpdate, Step::ConfirmEmailUpdate] {
            self.ok(step, json!({})).await;
        }
        let wait = self.ls.next_wait().await;
        let token = wait["task_token"].as_str().unwrap().to_string();
        self.ok(Step::PrepareVault, json!({"task_token": token}))
            .await;
        let target = self.rotation().await.target_email;
        self.ls.fake.add_account(
            self.account.as_str(),
            target.as_str(),
            RootCredentials {
                password: true,
                mfa_devices: 1,
                ..RootCredentials::none()
            },
        );
        console::enroll_mfa(&self.ports, &self.account, "alice", SEED, now())
            .await
            .expect("the seed AWS generated is enrolled");
        let done = steps::complete_engineer_task(&self.ports, &self.account, "alice", None, now())
            .await
            .expect("engineer task completes");
        assert_eq!(done.phase, Phase::Secured);
        assert_eq!(self.ok(Step::Activate, json!({})).await, Phase::Active);
    }

    /// A rootless take-over whose code was handed over: `code` is in the
    /// vault, SendTaskSuccess resumed the execution (rootless, it has no
    /// other wait), and the steps after it run to `active`.
    async fn rootless_goes_on_with_the_code_in_the_vault(&mut self, code: &str) {
        let handover = secret_name(&self.account, VaultItem::Handover);
        assert_eq!(
            self.ls
                .secret_value(&handover, "AWSCURRENT")
                .await
                .as_deref(),
            Some(code),
            "the code is in the vault"
        );
        assert_eq!(
            self.ls.execution_status(&self.execution, "SUCCEEDED").await,
            "SUCCEEDED"
        );
        for (step, phase) in [
            (Step::AcceptEmailUpdate, Phase::EmailAccepted),
            (Step::ConfirmEmailUpdate, Phase::EmailConfirmed),
            (Step::DeleteRootCredentials, Phase::Secured),
            (Step::Activate, Phase::Active),
        ] {
            assert_eq!(self.ok(step, json!({})).await, phase, "{}", step.name());
        }
    }

    /// `rotation code` for this account by alice (audited), as an engineer at
    /// the console runs it.
    async fn console_code(&self) -> console::CodeGrant {
        let request = AccessRequest {
            account_id: self.account.clone(),
            who: "alice".into(),
            reason: "take-over of the payer".into(),
            ticket: "CHG-9".into(),
        };
        let grant = console::read_code(&self.ports, &request, now()).await;
        grant.expect("the code")
    }

    /// `code` typed into the fake console for the take-over's address: AWS's
    /// notice of the change reaches it, confirms the change, and the workflow
    /// waits for the engineer. Returns that wait.
    async fn console_code_confirmed(&self, code: &str) -> Value {
        let (account, target) = (self.account.to_string(), self.rotation().await.target_email);
        let fake = &self.ls.fake;
        let took = fake
            .console_enter_code(&account, target.as_str(), code)
            .await;
        assert!(took, "the console took the code");
        self.deliver_mail().await;
        let wait = self.ls.next_wait().await;
        assert_eq!(wait["wait"], "engineer");
        assert!(self.rotation().await.email_evidence.is_some());
        wait
    }

    /// Every message in the inbound queue through the real `mail-ingest`.
    async fn deliver_mail(&self) {
        let (ingest, _metrics) = self.ls.ingest_handler();
        // Boxed: the ingest future is large in a debug build, and every
        // test future that delivers mail would hold it on the test thread's
        // 2 MiB stack (release_and_close_run_through_their_handlers
        // overflowed it).
        let drained = Box::pin(drain(&self.ls.stack.sqs, &self.ls.stack.inbound_url, |e| {
            ingest.handle_sqs(e)
        }))
        .await;
        assert_eq!(drained.failures, 0, "no ingest record failed");
    }

    /// The release completed with the code AWS mailed the customer, and
    /// the root email moved to `customer`.
    async fn released_to(&self, customer: &str) {
        let code = rootmail_domain::SecretValue::new(self.otp());
        let confirmation = ReleaseConfirmation::CustomerCode(&code);
        let released =
            steps::complete_release(&self.ports, &self.account, confirmation, "alice", now())
                .await
                .expect("release completes");
        assert_eq!(released.phase, Phase::Released);
        assert_eq!(
            self.ls.fake.primary_email(self.account.as_str()).as_deref(),
            Some(customer)
        );
    }

    /// The code the fake mailed for this account.
    fn otp(&self) -> String {
        self.ls
            .fake
            .last_otp(self.account.as_str())
            .expect("a code was sent")
    }

    /// No `secret` in any log line, ticket operation, table, step output,
    /// Step Functions input or output, or notice email.
    async fn assert_nowhere(&self, secrets: &[(&str, String)], ops: &[(String, Value)]) {
        let logs: Vec<Value> = captured_logs().lines();
        assert!(!logs.is_empty(), "the handlers logged");
        let outputs: Vec<String> = self
            .outputs
            .iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect();
        let stack = &self.ls.stack;
        let mut places: Vec<(&str, Vec<String>)> = vec![
            (
                "a ticket operation",
                ops.iter().map(|(body, _)| body.clone()).collect(),
            ),
            ("a step output", outputs),
            (
                "the rotations table",
                self.ls.table_text(&self.ls.rotations_table).await,
            ),
            (
                "the audit table",
                self.ls.table_text(&self.ls.audit_table).await,
            ),
            ("the ledger", self.ls.table_text(&stack.ledger_table).await),
            (
                "the accounts table",
                self.ls.table_text(&stack.accounts_table).await,
            ),
            (
                "the thread map",
                self.ls.table_text(&stack.threads_table).await,
            ),
            (
                "a notice email",
                sent_email().await.iter().map(Value::to_string).collect(),
            ),
        ];
        if !self.execution.is_empty() {
            places.push((
                "the Step Functions execution",
                self.ls.execution_data(&self.execution).await,
            ));
        }
        // The leak scan's matcher: also a secret HTML- or percent-encoded.
        let mut wanted = Secrets::default();
        for (what, secret) in secrets {
            wanted.add(what, secret);
        }
        let mut scan = Scan::new(&wanted);
        for line in &logs {
            scan.record("a log line", line);
        }
        for (place, texts) in &places {
            for text in texts {
                scan.text(place, text);
            }
        }
        scan.assert_clean(&["a log line", "the rotations table"]);
    }
}

const ROOTLESS_ACTIONS: [&str; 7] = [
    "take-over started",
    "root email change started",
    "secret handed over",
    "root email change accepted",
    "root email changed",
    "root credentials deleted",
    "take-over finished",
];

#[tokio::test(flavor = "multi_thread")]
async fn a_rootless_take_over_runs_end_to_end_with_the_code_mail_through_mail_ingest() {
    let mut run = Run::new(customer_credentials()).await;
    let token = run.start("rootless").await;

    // The token waits sealed: the table holds KMS ciphertext, the port opens it.
    let item = run
        .ls
        .rotation_item(&run.account)
        .await
        .expect("rotation item");
    let sealed = item["task_token"].as_s().expect("sealed token");
    assert!(
        !sealed.contains(&token),
        "the task token is stored in the clear"
    );
    assert_eq!(
        run.rotation().await.task_token.as_deref(),
        Some(token.as_str())
    );
    let target = run.rotation().await.target_email;
    assert!(
        target.as_str().ends_with(&format!("@{ROOT_DOMAIN}")),
        "{target}"
    );
    let calls = run.ls.fake.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.operation == "StartPrimaryEmailUpdate" && c.status == 200),
        "{calls:?}"
    );

    // The fake mailed the code into the bucket; mail-ingest hands it over.
    run.deliver_mail().await;
    let rows = run.ls.stack.ledger_rows().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].kind, Some(Kind::RootEmailOtp));
    assert_eq!(rows[0].disposition, Some(Disposition::Handoff));
    let rotation = run.rotation().await;
    assert_eq!(rotation.phase, Phase::OtpReceived);
    assert_eq!(rotation.task_token, None, "the token was used");
    let reference = rotation.handed_over.clone().expect("a vault reference");
    let handover = secret_name(&run.account, VaultItem::Handover);
    let described = run.ls.describe_secret(&handover).await;
    assert!(
        reference.starts_with(described.arn().unwrap()),
        "{reference}"
    );
    assert_eq!(described.kms_key_id(), Some(run.ls.key_arn.as_str()));
    let otp = run.otp();
    run.rootless_goes_on_with_the_code_in_the_vault(&otp).await;

    assert_eq!(
        run.ls.fake.primary_email(run.account.as_str()).as_deref(),
        Some(target.as_str())
    );
    assert!(
        run.ls
            .fake
            .root_credentials(run.account.as_str())
            .unwrap()
            .is_none(),
        "no root credential is left"
    );
    let registry = &run.ports.registry;
    let active = registry
        .by_email(&target)
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(active.status, AccountStatus::Active);
    assert_eq!(
        registry
            .by_email(&EmailAddress::parse(OLD_ROOT).unwrap())
            .await
            .unwrap(),
        None,
        "the old address is forgotten"
    );
    let audit = run.audit().await;
    assert_eq!(
        audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ROOTLESS_ACTIONS
    );
    assert!(
        audit.windows(2).all(|w| w[0].at < w[1].at),
        "audit rows keep their order"
    );
    let deleted = audit
        .iter()
        .find(|e| e.action == "root credentials deleted")
        .unwrap();
    assert!(
        deleted.detail.contains("2 access key(s)"),
        "{}",
        deleted.detail
    );

    // One lifecycle note per audit row, all in the account's lifecycle thread;
    // the code mail itself became no ticket.
    let ops = run.ls.take_ticket_ops().await;
    assert_eq!(ops.len(), ROOTLESS_ACTIONS.len(), "{ops:#?}");
    let thread = format!("lifecycle:{}", run.account);
    assert!(
        ops.iter()
            .all(|(_, op)| op["thread_key"] == thread.as_str())
    );
    for (action, (_, op)) in ROOTLESS_ACTIONS.iter().zip(&ops) {
        assert!(
            op["internal_note"].as_str().unwrap().starts_with(action),
            "{action}: {}",
            op["internal_note"]
        );
        assert!(
            !op["body"].as_str().unwrap().contains(action),
            "the public text holds no detail: {}",
            op["body"]
        );
    }

    run.assert_nowhere(&[("code", otp)], &ops).await;
}

/// Where no rule read AWS's code in its mail, the engineer types it
/// (`rotation complete --otp-stdin`, the operator function's `complete`):
/// it goes to the vault, the waiting execution resumes, AWS takes it, and
/// the audit names who typed it. The code is in no table, output, log or
/// ticket operation.
#[tokio::test(flavor = "multi_thread")]
async fn a_code_the_engineer_types_resumes_the_waiting_take_over() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("rootless").await;
    // AWS's mail stays unread: no rule read its code.
    let code = rootmail_domain::SecretValue::new(run.otp());
    let typed = rootmail_lifecycle::operator::complete(
        &run.ports,
        &run.account,
        "alice",
        Some(&code),
        None,
        now(),
    )
    .await
    .expect("the typed code is handed over");
    assert_eq!(typed.phase, Phase::OtpReceived);
    let rotation = run.rotation().await;
    assert_eq!(rotation.task_token, None, "the token was used");
    run.rootless_goes_on_with_the_code_in_the_vault(code.expose())
        .await;
    let audit = run.audit().await;
    let mut actions = ROOTLESS_ACTIONS.to_vec();
    actions.insert(2, "root email code typed");
    assert_eq!(
        audit.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        actions
    );
    let typed_by = audit.iter().find(|e| e.action == "root email code typed");
    assert_eq!(typed_by.map(|e| e.actor.as_str()), Some("alice"));
    let handed = audit
        .iter()
        .find(|e| e.action == "secret handed over")
        .unwrap();
    assert_eq!(handed.actor, "alice");
    assert!(
        handed.detail.contains("typed by the engineer"),
        "{}",
        handed.detail
    );
    let ops = run.ls.take_ticket_ops().await;
    run.assert_nowhere(&[("code", code.expose().to_string())], &ops)
        .await;
}

/// AWS's root email code may hold lower case and no digit (the Account API
/// takes `[a-zA-Z0-9]{6}`): mail-ingest finds it in AWS's mail and hands it
/// over, and AWS accepts it. Before, only capitals with a digit were taken
/// and the take-over waited.
#[tokio::test(flavor = "multi_thread")]
async fn a_code_in_every_shape_the_account_api_takes_reaches_the_take_over() {
    for code in ["kqZmPd", "QKZMPD", "x7kq2m"] {
        let mut run = Run::new(customer_credentials()).await;
        run.ls.fake.send_next_code(code);
        run.start("rootless").await;
        run.deliver_mail().await;
        let rows = run.ls.stack.ledger_rows().await;
        assert_eq!(rows[0].disposition, Some(Disposition::Handoff), "{code}");
        assert_eq!(run.rotation().await.phase, Phase::OtpReceived, "{code}");
        let accepted = run.ok(Step::AcceptEmailUpdate, json!({})).await;
        assert_eq!(accepted, Phase::EmailAccepted, "{code}");
        run.assert_nowhere(&[("code", code.to_string())], &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vaulted_take_over_waits_for_the_engineer_and_then_serves_break_glass_access() {
    let mut run = Run::new(RootCredentials {
        password: true,
        access_keys: 1,
        signing_certificates: 0,
        mfa_devices: 0,
    })
    .await;
    run.start("vaulted").await;
    run.deliver_mail().await;
    let otp = run.otp();
    assert_eq!(run.rotation().await.phase, Phase::OtpReceived);
    assert_eq!(
        run.ok(Step::AcceptEmailUpdate, json!({})).await,
        Phase::EmailAccepted
    );
    assert_eq!(
        run.ok(Step::ConfirmEmailUpdate, json!({})).await,
        Phase::EmailConfirmed
    );
    // Rootless-only step: refused, nothing deleted.
    let message = run.refused(Step::DeleteRootCredentials, json!({})).await;
    assert!(message.contains("vaulted"), "{message}");
    assert_eq!(
        run.ls
            .fake
            .root_credentials(run.account.as_str())
            .unwrap()
            .access_keys,
        1
    );

    // The execution resumed after the code and now waits for the engineer.
    let wait = run.ls.next_wait().await;
    assert_eq!(wait["wait"], "engineer");
    let token = wait["task_token"].as_str().unwrap().to_string();
    assert_eq!(
        run.ok(Step::PrepareVault, json!({"task_token": token}))
            .await,
        Phase::AwaitingEngineer
    );
    let password_name = secret_name(&run.account, VaultItem::Password);
    let seed_name = secret_name(&run.account, VaultItem::TotpSeed);
    // Too early: the seed AWS generates in the console is not enrolled yet.
    let unenrolled =
        steps::complete_engineer_task(&run.ports, &run.account, "alice", None, now()).await;
    assert!(
        matches!(&unenrolled, Err(LifecycleError::Refused(m)) if m.contains("mfa enroll")),
        "{unenrolled:?}"
    );
    let codes = console::enroll_mfa(&run.ports, &run.account, "alice", SEED, now())
        .await
        .expect("the seed AWS generated is enrolled");
    assert_ne!(codes.first.expose(), codes.second.expose());
    let password = run
        .ls
        .secret_value(&password_name, "AWSPENDING")
        .await
        .expect("a pending password");
    let seed = run
        .ls
        .secret_value(&seed_name, "AWSPENDING")
        .await
        .expect("a pending seed");
    for name in [&password_name, &seed_name] {
        assert_eq!(
            run.ls.describe_secret(name).await.kms_key_id(),
            Some(run.ls.key_arn.as_str()),
            "{name} is under our key"
        );
    }

    // Too early: the root user has no MFA yet. Refused, nothing changes.
    let before = run.state().await;
    let early = steps::complete_engineer_task(&run.ports, &run.account, "alice", None, now()).await;
    assert!(
        matches!(&early, Err(LifecycleError::Refused(m)) if m.contains("MFA")),
        "{early:?}"
    );
    assert_eq!(run.state().await, before);
    assert_eq!(
        run.ls.execution_status(&run.execution, "RUNNING").await,
        "RUNNING"
    );

    // The engineer sets the password and registers the MFA device in the console.
    let target = run.rotation().await.target_email;
    run.ls.fake.add_account(
        run.account.as_str(),
        target.as_str(),
        RootCredentials {
            password: true,
            mfa_devices: 1,
            ..RootCredentials::none()
        },
    );
    let done = steps::complete_engineer_task(&run.ports, &run.account, "alice", None, now())
        .await
        .expect("engineer task completes");
    run.outputs.push(done.clone());
    assert_eq!(done.phase, Phase::Secured);
    assert_eq!(
        run.ls.execution_status(&run.execution, "SUCCEEDED").await,
        "SUCCEEDED",
        "SendTaskSuccess resumed the execution"
    );
    assert_eq!(run.ok(Step::Activate, json!({})).await, Phase::Active);
    assert_eq!(
        run.ls
            .secret_value(&password_name, "AWSCURRENT")
            .await
            .as_deref(),
        Some(password.as_str()),
        "the pending password became current"
    );
    assert_eq!(
        run.ls.secret_value(&password_name, "AWSPENDING").await,
        None
    );

    // Break-glass access: audited first, the current password, a TOTP code,
    // an email to security that holds no secret.
    assert!(notices_about(&run.account).await.is_empty());
    let grant = steps::access(
        &run.ports,
        &AccessRequest {
            account_id: run.account.clone(),
            who: "bob".into(),
            reason: "billing contact must be changed".into(),
            ticket: "INC-4711".into(),
        },
        now(),
    )
    .await
    .expect("break-glass access");
    assert_eq!(grant.password.expose(), password);
    assert!(!grant.pending);
    assert_eq!(grant.root_email, target);
    let code = grant.totp_code.as_ref().expect("a TOTP code");
    assert_eq!(code.expose().len(), 6);
    let last = run.audit().await.pop().unwrap();
    assert_eq!(last.action, "break-glass access");
    assert_eq!(last.actor, "bob");
    assert_eq!(last.ticket.as_deref(), Some("INC-4711"));
    let notices = notices_about(&run.account).await;
    assert_eq!(notices.len(), 1, "one notice email: {notices:#?}");
    let notice = &notices[0];
    assert_eq!(notice["source"], NOTICE_FROM);
    assert_eq!(notice["destinations"]["ToAddresses"][0], NOTICE_TO);
    assert!(notice["body"].as_str().unwrap().contains("INC-4711"));

    assert_eq!(
        run.actions().await,
        [
            "take-over started",
            "root email change started",
            "secret handed over",
            "root email change accepted",
            "root email changed",
            "engineer task opened",
            "MFA device enrolled",
            "root credentials vaulted",
            "take-over finished",
            "break-glass access",
        ]
    );
    let ops = run.ls.take_ticket_ops().await;
    assert_eq!(ops.len(), 10, "a note per change and one for the access");
    run.assert_nowhere(
        &[
            ("code", otp),
            ("root password", password.clone()),
            ("TOTP seed", seed),
        ],
        &ops,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn release_and_close_run_through_their_handlers() {
    let mut run = Run::new(customer_credentials()).await;
    run.vaulted_to_active().await;
    let ours = run.rotation().await.target_email;

    let customer = "cloud@initech.example";
    let phase = run
        .ok(
            Step::StartRelease,
            json!({"customer_email": customer, "who": "alice", "reason": "contract ended", "ticket": "CHG-1"}),
        )
        .await;
    assert_eq!(phase, Phase::AwaitingCustomerOtp);
    let sent = run.ls.fake.sent_mail();
    assert_eq!(
        sent.last().map(|m| m.to.as_str()),
        Some(customer),
        "AWS mails the customer"
    );

    // A wrong code from the customer changes nothing but the record's
    // version: the completion marks the record before it asks AWS (so a
    // cancellation racing it is refused), and clears the mark after.
    let (rotation, audit) = run.state().await;
    let wrong = rootmail_domain::SecretValue::new(other_code(&run.otp()));
    let refused = steps::complete_release(
        &run.ports,
        &run.account,
        ReleaseConfirmation::CustomerCode(&wrong),
        "alice",
        now(),
    )
    .await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("wrong")),
        "{refused:?}"
    );
    let (mut after, audit_after) = run.state().await;
    let claimed = after.as_mut().unwrap();
    assert_eq!(claimed.version, rotation.as_ref().unwrap().version + 2);
    claimed.version -= 2;
    assert_eq!((after, audit_after), (rotation, audit));

    let code = rootmail_domain::SecretValue::new(run.otp());
    let released = steps::complete_release(
        &run.ports,
        &run.account,
        ReleaseConfirmation::CustomerCode(&code),
        "alice",
        now(),
    )
    .await
    .expect("release completes");
    assert_eq!(released.phase, Phase::Released);
    assert_eq!(
        run.ls.fake.primary_email(run.account.as_str()).as_deref(),
        Some(customer)
    );
    let handover = run
        .ls
        .describe_secret(&secret_name(&run.account, VaultItem::Handover))
        .await;
    assert!(
        handover.deleted_date().is_some(),
        "the vault entry is scheduled for deletion"
    );
    let status = run
        .ports
        .registry
        .by_email(&ours)
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status, AccountStatus::Released);

    // Released, its root user is the customer's: rootmail does not close
    // it in AWS Organizations, and changes nothing.
    let before = run.state().await;
    let message = run
        .refused(
            Step::Close,
            json!({"who": "alice", "reason": "customer left"}),
        )
        .await;
    assert!(message.contains("released to its customer"), "{message}");
    assert_eq!(run.state().await, before);
    assert_eq!(run.organizations_status().await, "ACTIVE");
    let actions = run.actions().await;
    assert_eq!(
        actions[actions.len() - 2..],
        ["release started", "released"]
    );
}

/// Closing a member account asks AWS Organizations (moto's) to close it:
/// `CloseAccount` through rootmail's own signed call, audited first. AWS
/// then shows the account `PENDING_CLOSURE` (`State`), and the closure is
/// recorded; moto shows `SUSPENDED` instead, which AWS's `State` uses for an
/// account it suspended, not closed: so here the step answers `NotYet` (the
/// state machine's retry), asks nothing more when run again, and no release
/// starts meanwhile. The recording itself is `lifecycle_local`'s.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_account_is_closed_through_aws_organizations() {
    let mut run = Run::new(customer_credentials()).await;
    run.vaulted_to_active().await;
    let ours = run.rotation().await.target_email;
    assert_eq!(run.organizations_status().await, "ACTIVE");
    let close = json!({"who": "alice", "reason": "the customer ends the contract"});
    for _ in 0..2 {
        let answer = run.step(Step::Close, close.clone()).await;
        let failure = answer.expect_err("moto's SUSPENDED is not closing");
        assert_eq!(failure.name, "NotYet", "{}", failure.message);
        assert!(
            failure.message.contains("SUSPENDED still"),
            "{}",
            failure.message
        );
    }
    assert_eq!(
        run.organizations_status().await,
        "SUSPENDED",
        "moto closed it"
    );
    let rotation = run.rotation().await;
    assert_eq!(rotation.phase, Phase::Active);
    assert!(rotation.closure_requested_at.is_some());
    let status = run
        .ports
        .registry
        .by_email(&ours)
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status, AccountStatus::Active, "not recorded closed yet");
    let actions = run.actions().await;
    let asked = actions.iter().filter(|a| *a == "closure requested").count();
    assert_eq!(asked, 1, "asked once: {actions:?}");
    assert_eq!(
        actions.last().map(String::as_str),
        Some("closure requested")
    );
    let release = json!({"customer_email": "cloud@initech.example", "who": "bob",
        "reason": "contract ended", "ticket": "CHG-2"});
    let message = run.refused(Step::StartRelease, release).await;
    assert!(message.contains("is closing"), "{message}");
}

/// The notice emails SES sent about `account` (other tests send theirs).
async fn notices_about(account: &AccountId) -> Vec<Value> {
    sent_email()
        .await
        .into_iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains(account.as_str()))
        })
        .collect()
}

/// A six-digit code that is not `code`.
fn other_code(code: &str) -> String {
    let n: u32 = code.parse().unwrap_or(0);
    format!("{:06}", (n + 1) % 1_000_000)
}

fn now() -> u64 {
    rootmail_tests::now_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_code_is_refused_and_changes_nothing() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("rootless").await;
    run.deliver_mail().await;
    // A wrong code in the vault, named by the record (as if the wrong mail
    // had been handed over).
    let wrong = rootmail_domain::SecretValue::new(other_code(&run.otp()));
    let reference = run
        .ports
        .vault
        .put(&run.account, VaultItem::Handover, Stage::Current, &wrong)
        .await
        .unwrap();
    let mut rotation = run.rotation().await;
    rotation.handed_over = Some(reference);
    rotation.version += 1;
    let expected = rotation.version - 1;
    run.ports
        .rotations
        .put(&rotation, Some(expected))
        .await
        .unwrap();
    let before = run.state().await;
    let message = run.refused(Step::AcceptEmailUpdate, json!({})).await;
    assert!(message.contains("wrong"), "{message}");
    assert!(message.contains(run.account.as_str()), "{message}");
    assert!(
        !message.contains(wrong.expose()),
        "the code is not in the error"
    );
    assert_eq!(run.state().await, before);
    assert_eq!(run.rotation().await.phase, Phase::OtpReceived);
    assert_eq!(
        run.ls.fake.primary_email(run.account.as_str()).as_deref(),
        Some(OLD_ROOT)
    );
}

/// A member take-over gives AWS the code its record names: a handover
/// running beside the one that won (a second code mail, an attacker's own
/// account's, ingested at once) that wrote its code into the vault's stage
/// and then lost the record's write changes nothing. Reading the stage
/// gave AWS that code, which it refuses.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_take_over_gives_aws_the_code_its_record_names() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("rootless").await;
    run.deliver_mail().await;
    let racing = run
        .ls
        .secrets
        .put_secret_value()
        .secret_id(secret_name(&run.account, VaultItem::Handover))
        .secret_string(other_code(&run.otp()))
        .send()
        .await;
    assert!(racing.is_ok(), "{racing:?}");
    assert_eq!(
        run.ok(Step::AcceptEmailUpdate, json!({})).await,
        Phase::EmailAccepted
    );
}

/// AWS took the code, and the answer was lost: the step runs again while
/// GetPrimaryEmail still shows the old address (AWS: a change "can take up
/// to four hours to propagate everywhere"). Before, the step read the root
/// email, sent the spent code again, AWS refused it, and the take-over
/// failed although the email had moved. GetPrimaryEmailUpdateStatus says
/// ACCEPTED at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_code_aws_took_before_a_lost_answer_is_not_sent_again() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("rootless").await;
    run.deliver_mail().await;
    run.ls.fake.delay_propagation(true);
    run.ls.fake.accept_pending(run.account.as_str());
    assert_eq!(
        run.ok(Step::AcceptEmailUpdate, json!({})).await,
        Phase::EmailAccepted
    );
    let accepts = run
        .ls
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.operation == "AcceptPrimaryEmailUpdate")
        .count();
    assert_eq!(accepts, 0, "the spent code is not sent again");
    // The change is made; the root email shows it once it has propagated.
    match run.step(Step::ConfirmEmailUpdate, json!({})).await {
        Err(failure) if failure.name == "NotYet" => {}
        other => panic!("confirmed before the change propagated: {other:?}"),
    }
    assert_eq!(run.rotation().await.phase, Phase::EmailAccepted);
    run.ls.fake.delay_propagation(false);
    assert_eq!(
        run.ok(Step::ConfirmEmailUpdate, json!({})).await,
        Phase::EmailConfirmed
    );
}

/// The same within one try: AWS takes the code, its answer is lost, and the
/// SDK sends the request again, which AWS refuses (no change is pending any
/// more). Before, that refusal failed the take-over.
#[tokio::test(flavor = "multi_thread")]
async fn a_code_aws_took_on_a_request_the_sdk_sent_again_is_accepted() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("rootless").await;
    run.deliver_mail().await;
    run.ls.fake.delay_propagation(true);
    run.ls.fake.lose_next_answer("AcceptPrimaryEmailUpdate");
    assert_eq!(
        run.ok(Step::AcceptEmailUpdate, json!({})).await,
        Phase::EmailAccepted
    );
    let statuses: Vec<u16> = run
        .ls
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.operation == "AcceptPrimaryEmailUpdate")
        .map(|c| c.status)
        .collect();
    assert_eq!(
        statuses[..2],
        [500, 404],
        "taken, answer lost; the SDK's retry refused"
    );
}

/// The same for the change's start: AWS takes it, its answer is lost, and
/// the SDK's retry is refused because a change is pending (AWS documents no
/// answer to a second start; the fake is set to refuse it). The change AWS
/// holds is ours and its code on its way: the take-over waits for it, where
/// it failed on the refusal, and the first code is still the one accepted.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_aws_took_on_a_request_the_sdk_sent_again_waits_for_its_code() {
    let mut run = Run::new(customer_credentials()).await;
    run.ls.fake.refuse_second_start(true);
    run.ls.fake.lose_next_answer("StartPrimaryEmailUpdate");
    run.start("rootless").await;
    let statuses: Vec<u16> = run
        .ls
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.operation == "StartPrimaryEmailUpdate")
        .map(|c| c.status)
        .collect();
    assert_eq!(
        statuses[..2],
        [500, 409],
        "taken, answer lost; the SDK's retry refused"
    );
    let (_, audit) = run.state().await;
    assert!(
        audit.iter().any(|e| e.action == "root email change pending"
            && e.detail.contains("ConflictException")
            && e.detail.contains("someone else's")),
        "AWS's answer and the assumption are audited: {audit:?}"
    );
    run.deliver_mail().await;
    assert_eq!(
        run.ok(Step::AcceptEmailUpdate, json!({})).await,
        Phase::EmailAccepted
    );
}

/// A change someone else started before the take-over's request (AWS
/// shows a pending change, not where it goes) is not taken for the
/// take-over's: AWS's refusal fails the step, audited, as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_someone_else_started_earlier_is_not_taken_for_ours() {
    let mut run = Run::new(customer_credentials()).await;
    let registered = run
        .ok(
            Step::Register,
            json!({"customer": "Initech", "mode": "rootless"}),
        )
        .await;
    assert_eq!(registered, Phase::Registered);
    run.execution = run.ls.start_execution(&run.account, "rootless").await;
    let wait = run.ls.next_wait().await;
    let token = wait["task_token"].as_str().expect("token").to_string();
    run.ls
        .fake
        .start_change_elsewhere(run.account.as_str(), "intruder@elsewhere.example");
    run.ls.fake.refuse_second_start(true);
    // Our request an hour after theirs.
    let refused = steps::start_email_update(&run.ports, &run.account, &token, now() + 3600).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("ConflictException") || m.contains("already in progress")),
        "{refused:?}"
    );
    let (rotation, audit) = run.state().await;
    assert_eq!(rotation.unwrap().phase, Phase::Registered);
    assert!(
        audit.iter().any(|e| e.action == "root email change failed"),
        "{audit:?}"
    );
    assert!(
        !audit
            .iter()
            .any(|e| e.action == "root email change pending"),
        "{audit:?}"
    );
}

/// A payer (a management account) is taken over in the console: the
/// Account API refuses it. The take-over is refused before anything is
/// registered, and says so; before, it registered the account under a new
/// address and failed at its first change, with "not a valid request".
#[tokio::test(flavor = "multi_thread")]
async fn a_payer_is_refused_before_registration_naming_the_console_mode() {
    let mut run = Run::new(customer_credentials()).await;
    run.ls.fake.set_management_account(run.account.as_str());
    let message = run
        .refused(
            Step::Register,
            json!({"customer": "Initech", "mode": "rootless"}),
        )
        .await;
    assert!(message.contains("--mode console"), "{message}");
    run.assert_nothing_registered().await;
    // In the console mode the Account API is never asked.
    let registered = run
        .ok(
            Step::Register,
            json!({"customer": "Initech", "mode": "console"}),
        )
        .await;
    assert_eq!(registered, Phase::Registered);
}

/// An account outside this organization (a standalone account, or a member
/// of a customer's own organization) is refused the same way.
#[tokio::test(flavor = "multi_thread")]
async fn an_account_outside_the_organization_is_refused_before_registration() {
    let mut run = Run::new(customer_credentials()).await;
    run.ls.fake.remove_account(run.account.as_str());
    let message = run
        .refused(
            Step::Register,
            json!({"customer": "Initech", "mode": "vaulted"}),
        )
        .await;
    assert!(
        message.contains("not a member account") && message.contains("--mode console"),
        "{message}"
    );
    run.assert_nothing_registered().await;
}

/// A console account's root user is read through the provider's audit role
/// in it (`PAYER_AUDIT_ROLE_NAME`): IAM's account summary, through
/// `sts:AssumeRole`. Without the setting nothing is read; a role the account
/// lacks refuses, naming it.
#[tokio::test(flavor = "multi_thread")]
async fn a_console_account_s_root_user_is_read_through_the_audit_role() {
    let run = Run::new(customer_credentials()).await;
    assert_eq!(run.ports.root.summary(&run.account).await.unwrap(), None);
    let mut config = run.ls.config();
    config.payer_audit_role_name = Some("RootmailPayerAudit".into());
    let ports = run.ls.ports_as(&config).await;
    let missing = ports.root.summary(&run.account).await;
    assert!(
        matches!(&missing, Err(LifecycleError::Refused(m))
            if m.contains(&format!("arn:aws:iam::{}:role/RootmailPayerAudit", run.account))),
        "{missing:?}"
    );
    run.ls.fake.create_audit_role("RootmailPayerAudit");
    let summary = ports.root.summary(&run.account).await.unwrap().unwrap();
    let report = run.ls.fake.root_credentials(run.account.as_str()).unwrap();
    assert_eq!(
        (summary.access_keys_present, summary.mfa_enabled),
        (report.access_keys > 0, report.mfa_devices > 0),
        "{summary:?} against {report:?}"
    );
    assert!(
        summary.access_keys_present,
        "the customer left an access key"
    );
    assert_eq!(
        summary.problem(),
        Some("the root user still has an access key")
    );
}

/// A release started again after AWS took the customer's code (an earlier
/// completion that failed after it) is refused as done, even while
/// GetPrimaryEmail still shows our address: the change's status says
/// ACCEPTED. Before, it started another change of an account already moved.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_started_again_after_aws_took_the_code_is_refused() {
    let mut run = Run::new(customer_credentials()).await;
    run.vaulted_to_active().await;
    let release = |email: &str| json!({"customer_email": email, "who": "alice", "reason": "contract ended", "ticket": "CHG-1"});
    let phase = run
        .ok(Step::StartRelease, release("cloud@initech.example"))
        .await;
    assert_eq!(phase, Phase::AwaitingCustomerOtp);
    run.ls.fake.delay_propagation(true);
    run.ls.fake.accept_pending(run.account.as_str());
    let refused = run
        .refused(Step::StartRelease, release("it@initech.example"))
        .await;
    assert!(refused.contains("already moved"), "{refused}");
    // Nor is it cancelled: the root email is the customer's at AWS.
    let cancelling = AccessRequest {
        account_id: run.account.clone(),
        who: "alice".into(),
        reason: "the customer never answered".into(),
        ticket: "CHG-1".into(),
    };
    let cancelled = steps::cancel_release(&run.ports, &cancelling, None, now()).await;
    assert!(
        matches!(&cancelled, Err(LifecycleError::Refused(m)) if m.contains("already took")),
        "{cancelled:?}"
    );
}

/// A status read that lags just after a release's start shows the
/// take-over's change, ACCEPTED a day before: it says nothing of the
/// release's. The customer's code is given to AWS, and the root email moves
/// to the customer; before, the old status counted as the release's code
/// taken, the code was never given, and our credentials were deleted while
/// the root email stayed ours.
#[tokio::test(flavor = "multi_thread")]
async fn an_older_change_s_accepted_status_is_not_the_release_s() {
    let mut run = Run::new(customer_credentials()).await;
    run.vaulted_to_active().await;
    let customer = "cloud@initech.example";
    let release = json!({"customer_email": customer, "who": "alice", "reason": "contract ended", "ticket": "CHG-1"});
    let phase = run.ok(Step::StartRelease, release).await;
    assert_eq!(phase, Phase::AwaitingCustomerOtp);
    let a_day_ago = now() - 86_400;
    run.ls
        .fake
        .show_update_status(run.account.as_str(), "ACCEPTED", a_day_ago);
    run.released_to(customer).await;
    let accepts = (run.ls.fake.calls().into_iter())
        .filter(|c| c.operation == "AcceptPrimaryEmailUpdate")
        .count();
    assert_eq!(accepts, 2, "the take-over's code, then the customer's");
}

/// A release's start as the take-over's: AWS takes it, its answer is lost,
/// the SDK's retry is refused while the change is pending. The release
/// waits for the customer's code, which AWS took, where the refusal failed
/// the release while the customer held a code.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_start_aws_took_on_a_lost_answer_waits_for_the_customer() {
    let mut run = Run::new(customer_credentials()).await;
    run.vaulted_to_active().await;
    run.ls.fake.refuse_second_start(true);
    run.ls.fake.lose_next_answer("StartPrimaryEmailUpdate");
    let customer = "cloud@initech.example";
    let release = json!({"customer_email": customer, "who": "alice", "reason": "contract ended", "ticket": "CHG-1"});
    assert_eq!(
        run.ok(Step::StartRelease, release).await,
        Phase::AwaitingCustomerOtp
    );
    let (_, audit) = run.state().await;
    let started = audit
        .iter()
        .find(|e| e.action == "release started")
        .unwrap();
    assert!(started.detail.contains("ConflictException"), "{started:?}");
    run.released_to(customer).await;
}

/// A release started again to another address within minutes of the
/// first (a typo corrected): AWS refuses the second while the first's change
/// is pending, and that change is not this request's. The refusal is the
/// answer, and the release still waits for the first address's code.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_release_refused_while_the_first_is_pending_is_refused() {
    let mut run = Run::new(customer_credentials()).await;
    run.vaulted_to_active().await;
    run.ls.fake.refuse_second_start(true);
    let release = |email: &str| json!({"customer_email": email, "who": "alice", "reason": "contract ended", "ticket": "CHG-1"});
    let first = "cloud@initech.example";
    assert_eq!(
        run.ok(Step::StartRelease, release(first)).await,
        Phase::AwaitingCustomerOtp
    );
    let refused = run
        .refused(Step::StartRelease, release("it@initech.example"))
        .await;
    assert!(refused.contains("ConflictException"), "{refused}");
    assert_eq!(run.rotation().await.target_email.as_str(), first);
    run.released_to(first).await;
}

/// A release the customer never answered is cancelled against the Account
/// API: the root email is still ours there, so the account is active again,
/// and rootmail takes the customer's code no more (AWS keeps the change
/// pending until the code expires; only AcceptPrimaryEmailUpdate takes it).
#[tokio::test(flavor = "multi_thread")]
async fn a_release_the_customer_never_answered_is_cancelled() {
    let mut run = Run::new(customer_credentials()).await;
    run.vaulted_to_active().await;
    let ours = run.rotation().await.target_email;
    let release = json!({"customer_email": "cloud@initech.example", "who": "alice", "reason": "contract ended", "ticket": "CHG-1"});
    run.ok(Step::StartRelease, release).await;
    let cancelling = AccessRequest {
        account_id: run.account.clone(),
        who: "bob".into(),
        reason: "the customer never answered".into(),
        ticket: "CHG-2".into(),
    };
    let cancelled = steps::cancel_release(&run.ports, &cancelling, None, now())
        .await
        .expect("cancelled");
    assert_eq!(cancelled.phase, Phase::Active);
    assert_eq!(run.rotation().await.target_email, ours);
    assert_eq!(
        run.ls.fake.primary_email(run.account.as_str()).as_deref(),
        Some(ours.as_str())
    );
    let code = rootmail_domain::SecretValue::new(run.otp());
    let late = steps::complete_release(
        &run.ports,
        &run.account,
        ReleaseConfirmation::CustomerCode(&code),
        "bob",
        now(),
    )
    .await;
    assert!(matches!(late, Err(LifecycleError::Refused(_))), "{late:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_code_is_refused_and_changes_nothing() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("rootless").await;
    run.deliver_mail().await;
    run.ls.fake.expire_otps();
    let before = run.state().await;
    let message = run.refused(Step::AcceptEmailUpdate, json!({})).await;
    assert!(message.contains("expired"), "{message}");
    assert!(
        !message.contains(&run.otp()),
        "the code is not in the error"
    );
    assert_eq!(run.state().await, before);
    assert_eq!(
        run.ls.fake.primary_email(run.account.as_str()).as_deref(),
        Some(OLD_ROOT)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_code_mail_that_fails_authentication_is_not_handed_over() {
    let mut run = Run::new(customer_credentials()).await;
    run.ls.fake.fail_authentication(true);
    run.start("rootless").await;
    let before = run.state().await;
    run.deliver_mail().await;

    let rows = run.ls.stack.ledger_rows().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].kind, Some(Kind::PhishingSuspected));
    assert_eq!(rows[0].disposition, Some(Disposition::Quarantine));
    // The rotation keeps waiting, untouched; the vault has no code; the
    // execution still waits.
    assert_eq!(run.state().await, before);
    let rotation = run.rotation().await;
    assert_eq!(rotation.phase, Phase::AwaitingOtp);
    assert_eq!(rotation.waiting_for, Some(Kind::RootEmailOtp));
    assert!(rotation.task_token.is_some());
    assert_eq!(
        run.ports
            .vault
            .get(&run.account, VaultItem::Handover, Stage::Current)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        run.ls.execution_status(&run.execution, "RUNNING").await,
        "RUNNING"
    );
    let message = run.refused(Step::AcceptEmailUpdate, json!({})).await;
    assert!(message.contains("awaiting_otp"), "{message}");

    // A person sees it, flagged, without the code.
    let ops = run.ls.take_ticket_ops().await;
    let quarantined: Vec<&Value> = ops
        .iter()
        .map(|(_, op)| op)
        .filter(|op| op["quarantined"] == true)
        .collect();
    assert_eq!(quarantined.len(), 1, "{ops:#?}");
    assert_eq!(quarantined[0]["kind"], "phishing.suspected");
    run.assert_nowhere(&[("forged code", run.otp())], &ops)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_take_over_of_the_same_account_is_refused() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("rootless").await;
    let before = run.state().await;
    let starts = start_calls(&run);
    let message = run
        .refused(
            Step::Register,
            json!({"customer": "Initech", "mode": "vaulted"}),
        )
        .await;
    assert!(message.contains("already running"), "{message}");
    assert!(message.contains(run.account.as_str()), "{message}");
    assert_eq!(run.state().await, before);
    // The email change step run again (Step Functions retrying it with a
    // new token: only the execution that registered reaches it) takes the
    // new token, and AWS, which took the first request, is not asked again.
    let phase = run
        .ok(
            Step::StartEmailUpdate,
            json!({"task_token": "another-token"}),
        )
        .await;
    assert_eq!(phase, Phase::AwaitingOtp);
    let rotation = run.rotation().await;
    assert_eq!(rotation.task_token.as_deref(), Some("another-token"));
    assert!(rotation.email_change_requested_at.is_some());
    assert_eq!(start_calls(&run), starts, "AWS was not asked again");
}

fn start_calls(run: &Run) -> usize {
    run.ls
        .fake
        .calls()
        .iter()
        .filter(|c| c.operation == "StartPrimaryEmailUpdate")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn break_glass_access_without_a_reason_is_refused_and_changes_nothing() {
    let mut run = Run::new(customer_credentials()).await;
    run.ok(
        Step::Register,
        json!({"customer": "Initech", "mode": "vaulted"}),
    )
    .await;
    let before = run.state().await;
    for (reason, who, ticket, wanted) in [
        ("", "bob", "INC-1", "a reason"),
        ("  ", "bob", "INC-1", "a reason"),
        ("outage", "", "INC-1", "who is asking"),
        ("outage", "bob", "", "a ticket reference"),
    ] {
        let request = AccessRequest {
            account_id: run.account.clone(),
            who: who.into(),
            reason: reason.into(),
            ticket: ticket.into(),
        };
        let refused = steps::access(&run.ports, &request, now()).await;
        assert!(
            matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains(wanted)),
            "{refused:?}"
        );
    }
    // With a reason, but nothing vaulted yet: refused too.
    let request = AccessRequest {
        account_id: run.account.clone(),
        who: "bob".into(),
        reason: "outage".into(),
        ticket: "INC-1".into(),
    };
    let refused = steps::access(&run.ports, &request, now()).await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("no usable root credentials")),
        "{refused:?}"
    );
    assert_eq!(run.state().await, before, "no audit row, no change");
    assert!(
        notices_about(&run.account).await.is_empty(),
        "no notice email"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn releasing_an_unknown_account_is_refused_and_changes_nothing() {
    let mut run = Run::new(customer_credentials()).await;
    let message = run
        .refused(
            Step::StartRelease,
            json!({"customer_email": "cloud@initech.example", "who": "alice",
                "reason": "contract ended", "ticket": "CHG-1"}),
        )
        .await;
    assert!(message.contains("no lifecycle record"), "{message}");
    assert!(message.contains(run.account.as_str()), "{message}");
    assert_eq!(run.state().await, (None, Vec::new()));
    assert_eq!(start_calls(&run), 0, "AWS was not asked");
    // A step without its input is refused by name.
    let message = run
        .refused(Step::StartRelease, json!({"who": "alice"}))
        .await;
    assert!(message.contains("\"reason\""), "{message}");
    let message = run
        .refused(
            Step::StartRelease,
            json!({"who": "alice", "reason": "contract ended", "ticket": "CHG-1"}),
        )
        .await;
    assert!(message.contains("\"customer_email\""), "{message}");
    let message = run
        .refused(Step::Close, json!({"who": "alice", "reason": "gone"}))
        .await;
    assert!(message.contains("no lifecycle record"), "{message}");
    assert_eq!(run.state().await, (None, Vec::new()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_written_by_someone_else_meanwhile_is_a_conflict_to_retry() {
    let run = Run::new(customer_credentials()).await;
    let mut rotation = Rotation {
        account_id: run.account.clone(),
        customer: "Initech".into(),
        mode: Mode::Rootless,
        phase: Phase::Registered,
        target_email: EmailAddress::parse("root-x@root.example-msp.com").unwrap(),
        previous_email: None,
        waiting_for: None,
        task_token: Some("token-1".into()),
        handed_over: None,
        reset_link_delivered_at: None,
        code_delivered_at: None,
        code_message_id: None,
        expires_at: None,
        failure: None,
        engineer_since: None,
        mfa_enrolled_at: None,
        mfa_confirmed_at: None,
        email_change_requested_at: None,
        credentials_deleted_at: None,
        closed_from: None,
        earlier_credentials: None,
        earlier_seed_gone: false,
        closure_requested_at: None,
        reopened_at: None,
        closure_claimed_at: None,
        execution: None,
        asked_by: None,
        release_starting_since: None,
        release_starting_for: None,
        before_release: None,
        release_completing_since: None,
        email_evidence: None,
        started_at: 1,
        updated_at: 1,
        version: 1,
    };
    let rotations = &run.ports.rotations;
    rotations.put(&rotation, None).await.expect("first write");
    // Another writer's first record for the account.
    let mut other = rotation.clone();
    other.customer = "Initrode".into();
    let again = rotations.put(&other, None).await;
    assert!(
        matches!(&again, Err(e) if e.is_conflict() && e.error_name() == "Transient"),
        "a lost race, which the state machine retries: {again:?}"
    );
    // The same write again (the SDK retrying one whose answer was lost)
    // meets itself: done, not refused.
    rotations.put(&rotation, None).await.expect("its own write");
    rotation.version = 2;
    rotations
        .put(&rotation, Some(1))
        .await
        .expect("next version");
    other.version = 2;
    let stale = rotations.put(&other, Some(1)).await;
    assert!(matches!(&stale, Err(e) if e.is_conflict()), "{stale:?}");
    rotations
        .put(&rotation, Some(1))
        .await
        .expect("its own write, retried");
    assert_eq!(rotations.get(&run.account).await.unwrap(), Some(rotation));
}

/// The real `lifecycle` binary under the Runtime API stand-in: `main.rs`, the
/// configuration from the environment, the output, and a refusal posted as a
/// Lambda error whose type the state machine's `Catch` matches.
#[tokio::test(flavor = "multi_thread")]
async fn the_lifecycle_binary_answers_with_step_outputs_and_typed_errors() {
    let ls = LifecycleStack::create().await;
    let account = fresh_account_id();
    // A console take-over: registering it asks nothing of the Account API,
    // which the binary would find at moto's address (moto lacks it).
    let register = json!({"account_id": account, "customer": "Initech", "mode": "console"});
    let runtime = RuntimeApi::start(vec![register.clone(), register]);
    let mut child = runtime.spawn(
        &workspace_bin("lifecycle"),
        "lifecycle-register",
        &ls.function_env(Step::Register),
    );
    let answers = runtime.answers(2, std::time::Duration::from_secs(60));
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        answers.len(),
        2,
        "{answers:?}; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    assert_eq!(answers[0].kind, "response", "{answers:?}");
    assert_eq!(
        answers[0].body,
        json!({"account_id": account, "mode": "console", "phase": "registered"})
    );
    assert_eq!(answers[1].kind, "error", "{answers:?}");
    assert_eq!(answers[1].body["errorType"], "Refused");
    let message = answers[1].body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("already running"), "{message}");

    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "step done"
            && l["span"]["step"] == "register"
            && l["span"]["account_id"] == json!(account)),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "step failed" && l["fields"]["error"] == "Refused"),
        "{lines:#?}"
    );
    let rotation = ls.ports().await.rotations.get(&account).await.unwrap();
    assert_eq!(rotation.map(|r| r.phase), Some(Phase::Registered));
}

/// `rootmail ... --aws`: the person's steps of a vaulted take-over, run as the
/// real binary against the deployed lifecycle (moto, and the fake for the Account
/// API and root sessions), configured only by the environment.
#[tokio::test(flavor = "multi_thread")]
async fn the_persons_steps_run_from_the_cli_against_aws() {
    let mut run = Run::new(RootCredentials {
        password: true,
        access_keys: 1,
        signing_certificates: 0,
        mfa_devices: 0,
    })
    .await;
    run.start("vaulted").await;
    run.deliver_mail().await;
    run.ok(Step::AcceptEmailUpdate, json!({})).await;
    run.ok(Step::ConfirmEmailUpdate, json!({})).await;
    let wait = run.ls.next_wait().await;
    let token = wait["task_token"].as_str().unwrap().to_string();
    run.ok(Step::PrepareVault, json!({"task_token": token}))
        .await;

    // The person's requests go to the operator function's URL, which knows
    // the caller by the SigV4 signature of their credentials, as AWS does.
    let carol = "arn:aws:sts::123456789012:assumed-role/RootmailOperator/carol@example.com";
    let operator = FunctionUrl::start(
        run.ls.handler(Step::Operator).await,
        vec![
            Caller {
                access_key: "testing",
                secret: "testing",
                arn: carol,
            },
            Caller {
                access_key: "eve-key",
                secret: "eve-secret",
                arn: "arn:aws:sts::123456789012:assumed-role/Developer/eve",
            },
        ],
        "us-east-1",
    );
    let mut env = process_env();
    env.push(("OPERATOR_URL", operator.url.clone()));
    env.push(("OPERATOR_FUNCTION_ARN", operator.function_arn.clone()));
    env.push(("OPERATOR_STS_URL", operator.sts_url.clone()));
    let account = run.account.to_string();
    let cli_with_stdin = |args: &[&str], stdin: &str| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(workspace_bin("rootmail"))
            .args(args)
            .args(["--aws", "--account", &account])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("rootmail runs");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        let output = child.wait_with_output().expect("rootmail finishes");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            text,
        )
    };
    let cli = |args: &[&str]| cli_with_stdin(args, "");

    // Too early: refused with the reason, the execution still waits.
    let (code, _, text) = cli(&["rotation", "complete"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("MFA"), "{text}");

    let target = run.rotation().await.target_email;
    run.ls.fake.add_account(
        run.account.as_str(),
        target.as_str(),
        RootCredentials {
            password: true,
            mfa_devices: 1,
            ..RootCredentials::none()
        },
    );
    // The seed AWS showed in the console, enrolled through the operator function.
    let (code, out, text) = cli_with_stdin(&["mfa", "enroll"], SEED);
    assert_eq!(code, Some(0), "{text}");
    assert!(out.contains("MFA code 2:"), "{text}");
    let (code, _, text) = cli(&["rotation", "complete"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("secured"), "{text}");
    assert_eq!(
        run.ls.execution_status(&run.execution, "SUCCEEDED").await,
        "SUCCEEDED",
        "the CLI's completion resumed the execution"
    );
    run.ok(Step::Activate, json!({})).await;

    let (code, stdout, text) = cli(&[
        "creds",
        "get",
        "--reason",
        "card expired",
        "--ticket",
        "INC-9",
    ]);
    assert_eq!(code, Some(0), "{text}");
    let password = run
        .ls
        .secret_value(
            &secret_name(&run.account, VaultItem::Password),
            "AWSCURRENT",
        )
        .await
        .expect("a current password");
    assert!(
        stdout.contains(&format!("Password:   {password}")),
        "{stdout}"
    );
    let (code, stdout, text) = cli(&["rotation", "status"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(stdout.contains("Phase:    active"), "{stdout}");
    assert!(
        stdout.contains("break-glass access") && stdout.contains("carol@example.com"),
        "{stdout}"
    );
    assert!(!stdout.contains(&password), "status never shows a secret");
    // The trail names the caller AWS verified, not a name anyone can type.
    let trail = run.audit().await;
    let access = trail
        .iter()
        .find(|e| e.action == "break-glass access")
        .expect("the access is audited");
    assert_eq!(access.actor, carol);

    // A direct invoke (lambda:InvokeFunction, past the URL's IAM auth) writes
    // its own event: naming carol there opens nothing without her proof for
    // this very request.
    let ask = json!({"action": "access", "account_id": account, "reason": "x", "ticket": "T"})
        .to_string();
    let other = json!({"action": "status", "account_id": account}).to_string();
    for (proof, what) in [
        (None, "no proof"),
        (
            Some(operator.proof("eve-key", ask.as_bytes())),
            "eve's own proof",
        ),
        (
            Some(operator.proof("testing", other.as_bytes())),
            "carol's proof of another request",
        ),
        (
            Some(
                operator
                    .proof("testing", ask.as_bytes())
                    .replace(&operator.sts_url, "http://127.0.0.1:9"),
            ),
            "carol's proof, sent elsewhere",
        ),
        (
            Some(operator.proof_for(
                "testing",
                "arn:aws:lambda:us-east-1:123456789012:function:staging-operator",
                ask.as_bytes(),
            )),
            "carol's proof for another function",
        ),
    ] {
        let headers: Vec<(&str, &str)> = proof.iter().map(|p| (PROOF_HEADER, p.as_str())).collect();
        let answer = operator
            .invoke_directly(url_event(carol, &headers, &ask))
            .await;
        assert_eq!(answer["statusCode"], 403, "{what}: {answer}");
        assert!(!answer.to_string().contains(&password), "{what}");
    }
    assert_eq!(
        run.audit().await.len(),
        trail.len(),
        "a forged invoke is not an access"
    );

    // Someone else's signature (a wrong secret) is refused before the function.
    let forged = std::process::Command::new(workspace_bin("rootmail"))
        .args(["creds", "get", "--aws", "--account", &account])
        .args(["--reason", "x", "--ticket", "T"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&forged.stderr);
    assert_eq!(forged.status.code(), Some(2), "{said}");
    assert!(said.contains("AWS refused the call (403)"), "{said}");
    assert!(!String::from_utf8_lossy(&forged.stdout).contains(&password));
    assert_eq!(
        run.audit().await.len(),
        trail.len(),
        "a refused call is not an access"
    );
    // --who means nothing in AWS: refused rather than ignored.
    let (code, _, text) = cli(&["close", "--reason", "x", "--who", "mallory"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("names your IAM identity"), "{text}");

    // The closure reaches AWS Organizations (moto's), which shows the
    // account SUSPENDED where AWS shows PENDING_CLOSURE: not recorded yet,
    // and the person is told to run it again (exit code 75, EX_TEMPFAIL).
    let (code, _, text) = cli(&["close", "--reason", "customer left"]);
    assert_eq!(code, Some(75), "{text}");
    assert!(
        text.contains("not yet: AWS Organizations accepted the closure"),
        "{text}"
    );
    let rotation = run.rotation().await;
    assert!(rotation.closure_requested_at.is_some());
    assert_eq!(run.organizations_status().await, "SUSPENDED");
    let closure = run.audit().await.into_iter().last().unwrap();
    assert_eq!(closure.action, "closure requested");
    assert!(
        closure.actor.contains("carol@example.com"),
        "{}",
        closure.actor
    );
}

/// A vault secret someone else created (their key, or a resource policy that
/// lets them read it) is refused, never filled with a root password; our own
/// secret that a release scheduled for deletion is restored and used again
/// (issue 13 point 7; issue 17 point 1).
#[tokio::test]
async fn the_vault_refuses_secrets_that_are_not_its_own() {
    use rootmail_domain::SecretValue;
    let ls = LifecycleStack::create().await;
    let ports = ls.ports().await;
    let password = SecretValue::new("Corr3ct-Horse-Battery!".into());

    // Pre-created with the attacker's own key.
    let theirs = fresh_account_id();
    let their_key = ls
        .kms
        .create_key()
        .description("not the vault's")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap();
    let name = secret_name(&theirs, VaultItem::Password);
    ls.secrets
        .create_secret()
        .name(&name)
        .kms_key_id(&their_key)
        .send()
        .await
        .unwrap();
    let refused = ports
        .vault
        .put(&theirs, VaultItem::Password, Stage::Pending, &password)
        .await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("is not rootmail's") && m.contains("not the vault key")),
        "{refused:?}"
    );
    assert_eq!(ls.secret_value(&name, "AWSPENDING").await, None);

    // Pre-created with the vault key, but a policy lets someone else read it.
    let shared = fresh_account_id();
    let name = secret_name(&shared, VaultItem::Password);
    ls.secrets
        .create_secret()
        .name(&name)
        .kms_key_id(&ls.key_arn)
        .send()
        .await
        .unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    ls.secrets
        .put_resource_policy()
        .secret_id(&name)
        .resource_policy(policy.to_string())
        .send()
        .await
        .unwrap();
    let refused = ports
        .vault
        .put(&shared, VaultItem::Password, Stage::Pending, &password)
        .await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("resource policy")),
        "{refused:?}"
    );
    assert_eq!(ls.secret_value(&name, "AWSPENDING").await, None);

    // Ours, scheduled for deletion by a release: restored and used.
    let ours = fresh_account_id();
    let name = secret_name(&ours, VaultItem::Password);
    ports
        .vault
        .put(&ours, VaultItem::Password, Stage::Pending, &password)
        .await
        .unwrap();
    ports
        .vault
        .schedule_deletion(&ours, &[VaultItem::Password])
        .await
        .unwrap();
    assert!(ls.describe_secret(&name).await.deleted_date().is_some());
    let again = SecretValue::new("An0ther-Passw0rd!".into());
    ports
        .vault
        .put(&ours, VaultItem::Password, Stage::Pending, &again)
        .await
        .expect("a secret a release scheduled for deletion is restored");
    assert!(ls.describe_secret(&name).await.deleted_date().is_none());
    assert_eq!(
        ls.secret_value(&name, "AWSPENDING").await.as_deref(),
        Some(again.expose())
    );
}

/// A payer take-over whose code mail no rule reads (the code before its
/// words), against moto and the fake: mail-ingest tells the rotation that
/// AWS's mail came (through the handover's fields, as any mail's write),
/// nothing is vaulted, the workflow still waits; the code entered in the
/// console from the original brings AWS's notice, which resumes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_payer_take_over_whose_code_no_rule_read_goes_on_with_the_code_entered_in_the_console() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("console").await;
    let target = run.rotation().await.target_email;
    let account = run.account.to_string();
    run.ls.fake.send_next_code("kq3VzP");
    run.ls.fake.write_the_next_code_before_its_words();
    run.ls
        .fake
        .console_change_email(&account, target.as_str())
        .await;
    run.deliver_mail().await;
    let rotation = run.rotation().await;
    assert_eq!(rotation.phase, Phase::EmailAccepted);
    assert_eq!(rotation.handed_over, None, "nothing vaulted");
    let handover = secret_name(&run.account, VaultItem::Handover);
    let described = run
        .ls
        .secrets
        .describe_secret()
        .secret_id(&handover)
        .send()
        .await;
    assert!(
        described.is_err_and(|e| e
            .as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())),
        "Secrets Manager holds no handover secret"
    );
    assert!(rotation.task_token.is_some(), "the workflow waits on");
    assert!(run.ls.no_wait().await, "the code mail does not resume it");
    let audit = run.audit().await;
    let came = audit
        .iter()
        .find(|e| e.action == "code mail came unread")
        .expect("audited");
    assert!(!came.detail.contains("kq3VzP"), "{}", came.detail);
    // The engineer reads the original and enters the code in the console.
    run.console_code_confirmed("kq3VzP").await;
}

/// A payer take-over whose first code the console refused (expired): the
/// engineer asks AWS for a new one, and its mail, delivered in the same
/// second as likely as not, replaces the code held through the handover's
/// fields in DynamoDB (the stamp and `Message-ID` kept there order them);
/// `rotation code` gives it, and the console takes it. It gives the version
/// the record names: a handover running beside it that wrote its older
/// code into the vault, then lost the record's write, changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_payer_take_over_s_new_code_replaces_the_one_held() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("console").await;
    let target = run.rotation().await.target_email;
    let account = run.account.to_string();
    let fake = &run.ls.fake;
    fake.console_change_email(&account, target.as_str()).await;
    run.deliver_mail().await;
    let first = run.rotation().await;
    assert_eq!(first.phase, Phase::OtpReceived);
    assert!(first.code_delivered_at.is_some() && first.code_message_id.is_some());
    let stale = run.console_code().await;
    run.ls.fake.expire_otps();
    let refused = run
        .ls
        .fake
        .console_enter_code(&account, target.as_str(), stale.code.expose())
        .await;
    assert!(!refused, "the console refused the expired code");
    run.ls
        .fake
        .console_change_email(&account, target.as_str())
        .await;
    run.deliver_mail().await;
    let second = run.rotation().await;
    assert_ne!(second.code_message_id, first.code_message_id);
    assert_eq!(second.phase, Phase::EmailAccepted);
    let racing = run
        .ls
        .secrets
        .put_secret_value()
        .secret_id(secret_name(&run.account, VaultItem::Handover))
        .secret_string("R4C1NG")
        .send()
        .await;
    assert!(racing.is_ok(), "{racing:?}");
    let latest = run.console_code().await;
    assert_ne!(latest.code.expose(), stale.code.expose());
    assert_eq!(
        Some(latest.code.expose().to_string()),
        run.ls.fake.last_otp(&account)
    );
    run.console_code_confirmed(latest.code.expose()).await;
}

/// A payer account of another organization against moto and the fake
/// (issue 15): no Account API call and no AssumeRoot. The person in the
/// console changes the root email; mail-ingest hands AWS's code to the
/// rotation without resuming the workflow; the engineer reads it; AWS's mail
/// to the new address is the evidence that resumes it; the console steps
/// are attested; the release happens in the console too.
#[tokio::test(flavor = "multi_thread")]
async fn a_payer_account_is_taken_over_and_released_through_the_console() {
    let mut run = Run::new(customer_credentials()).await;
    run.start("console").await;
    let target = run.rotation().await.target_email;
    let api_calls = |run: &Run| {
        run.ls
            .fake
            .calls()
            .iter()
            .map(|c| format!("{} {}", c.service, c.operation))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        api_calls(&run),
        Vec::<String>::new(),
        "no API reaches a payer account"
    );

    // The customer changes the root email in the console; the code comes to us.
    let account = run.account.to_string();
    run.ls
        .fake
        .console_change_email(&account, target.as_str())
        .await;
    run.deliver_mail().await;
    let rotation = run.rotation().await;
    assert_eq!(rotation.phase, Phase::OtpReceived);
    assert!(rotation.task_token.is_some(), "the workflow waits on");
    assert!(run.ls.no_wait().await, "the code alone does not resume it");

    let code = run.console_code().await;
    assert_eq!(
        Some(code.code.expose().to_string()),
        run.ls.fake.last_otp(&account)
    );
    // AWS's mail to the new address is the evidence; the workflow resumes.
    let wait = run.console_code_confirmed(code.code.expose()).await;
    assert_eq!(
        run.ok(Step::ConfirmEmailUpdate, json!({})).await,
        Phase::EmailConfirmed
    );
    assert!(
        run.ports
            .registry
            .by_email(&EmailAddress::parse(OLD_ROOT).unwrap())
            .await
            .unwrap()
            .is_none(),
        "the old address is forgotten"
    );
    let token = wait["task_token"].as_str().unwrap().to_string();
    assert_eq!(
        run.ok(Step::PrepareVault, json!({"task_token": token}))
            .await,
        Phase::AwaitingEngineer
    );
    console::enroll_mfa(&run.ports, &run.account, "alice", SEED, now())
        .await
        .expect("enrolled");
    let unattested =
        steps::complete_engineer_task(&run.ports, &run.account, "alice", None, now()).await;
    assert!(
        matches!(&unattested, Err(LifecycleError::Refused(m)) if m.contains("--attest")),
        "{unattested:?}"
    );
    let done = steps::complete_engineer_task(
        &run.ports,
        &run.account,
        "alice",
        Some("password set, root keys deleted, our MFA device the only one"),
        now(),
    )
    .await
    .expect("completed");
    run.outputs.push(done);
    assert_eq!(
        run.ls.execution_status(&run.execution, "SUCCEEDED").await,
        "SUCCEEDED"
    );
    assert_eq!(run.ok(Step::Activate, json!({})).await, Phase::Active);
    let password = run
        .ls
        .secret_value(
            &secret_name(&run.account, VaultItem::Password),
            "AWSCURRENT",
        )
        .await
        .expect("the password is current");

    // Release in the console, attested.
    let phase = run
        .ok(
            Step::StartRelease,
            json!({"customer_email": "cfo@initech.example", "who": "bob", "reason": "contract ended", "ticket": "CHG-2"}),
        )
        .await;
    assert_eq!(phase, Phase::AwaitingCustomerOtp);
    let released = steps::complete_release(
        &run.ports,
        &run.account,
        ReleaseConfirmation::Attested(
            "our MFA device removed; the console shows cfo@initech.example",
        ),
        "bob",
        now(),
    )
    .await
    .expect("released");
    assert_eq!(released.phase, Phase::Released);
    assert_eq!(
        api_calls(&run),
        Vec::<String>::new(),
        "no API call and no AssumeRoot from take-over to release"
    );

    // The estate and the audit report, read from the deployed tables.
    let report = |args: &[&str]| {
        let output = std::process::Command::new(workspace_bin("rootmail"))
            .args(args)
            .args(["--aws"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(process_env())
            .env("ACCOUNTS_TABLE", &run.ls.stack.accounts_table)
            .env("ROTATIONS_TABLE", &run.ls.rotations_table)
            .env("AUDIT_TABLE", &run.ls.audit_table)
            .env("LEDGER_TABLE", &run.ls.stack.ledger_table)
            .output()
            .expect("rootmail runs");
        let shown = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "{args:?}: {shown}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        shown
    };
    let listed = report(&["accounts", "list", "--format", "json"]);
    let row: serde_json::Value = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["account_id"] == json!(run.account))
        .unwrap_or_else(|| panic!("the payer in the estate: {listed}"));
    assert_eq!(row["mode"], "console");
    assert_eq!(row["phase"], "released");
    assert!(row["last_aws_mail"].is_u64(), "{row}");
    assert_eq!(row["last_access"]["who"], "alice");
    let audit = report(&[
        "audit",
        "--account",
        run.account.as_str(),
        "--format",
        "csv",
    ]);
    assert!(
        audit.contains("alice,verification code read,take-over of the payer,CHG-9")
            && audit.contains("bob,released (attested)"),
        "{audit}"
    );
    let ops = run.ls.take_ticket_ops().await;
    run.assert_nowhere(
        &[
            ("the verification code", code.code.expose().to_string()),
            ("the root password", password),
        ],
        &ops,
    )
    .await;
}

/// Step Functions without the SDK's client (`rootmail_aws::aws_json`): a
/// token no workflow waits with is refused by AWS's code, which no retry
/// changes; the waiting case is the take-overs above, resumed through it.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_token_no_workflow_waits_with_is_refused_by_its_code() {
    use rootmail_lifecycle::TaskTokens;
    let ls = LifecycleStack::create().await;
    let ports = ls.ports().await;
    let answer = ports
        .tokens
        .succeed(
            "AQCEAAAAKgAAAAMAAAAAAAAAAQ-no-such-task",
            &json!({"ok": true}),
        )
        .await;
    match answer {
        Err(LifecycleError::Refused(message)) => {
            assert!(message.contains("(InvalidToken)"), "{message}");
            assert!(
                !message.contains("no-such-task"),
                "the token stays out: {message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

//! `lifecycle`: one step of the root-credential lifecycle per invocation. The
//! same binary backs one Lambda per step of the Step Functions state machines;
//! `LIFECYCLE_STEP` says which step a function runs.
//!
//! Input: the JSON object the state machine passes
//! (`{"account_id", "customer", "mode", "task_token", "customer_email", "who",
//! "reason"}`, each step reading what it needs). Output: the step's
//! [`StepOutput`], references only. A failure is a Lambda error whose type is
//! `Refused`, `NotYet`, `Transient` or `Permanent`, for the state machine's
//! `Retry` and `Catch` to match.

pub mod operator;

pub use operator::Operators;

use lambda_runtime::{Diagnostic, LambdaEvent};
use rootmail_aws::caller_proof::{CallerProofs, sts_endpoint};
use rootmail_aws::config::concat_names;
use rootmail_aws::lifecycle_adapters::{AwsLifecycle, LifecycleConfig};
use rootmail_aws::{ConfigError, Env};
use rootmail_domain::{AccountId, EmailAddress};
use rootmail_lifecycle::closure::{self, Closure};
use rootmail_lifecycle::steps::{self, AccessRequest, StepOutput, TakeOver};
use rootmail_lifecycle::{LifecycleError, LifecyclePorts, LifecycleResult, Mode};
use serde_json::Value;
use tracing::{Instrument, field::Empty};

/// The steps a Lambda runs. The others (break-glass access, the engineer's
/// completion, the customer's code on release) are a person's, through the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Register,
    /// A `waitForTaskToken` task: the input carries `task_token`.
    StartEmailUpdate,
    AcceptEmailUpdate,
    ConfirmEmailUpdate,
    /// A `waitForTaskToken` task: the input carries `task_token`.
    PrepareVault,
    DeleteRootCredentials,
    Activate,
    StartRelease,
    Close,
    /// Where a take-over's `Catch` goes: the input carries Step Functions'
    /// `error` (`{"Error", "Cause"}`).
    RecordFailure,
    /// A person's request (break-glass access, completion, release, close,
    /// status) through the function's URL, authenticated by IAM (see
    /// [`operator`]).
    Operator,
}

impl Step {
    pub const ALL: [Step; 11] = [
        Step::Register,
        Step::StartEmailUpdate,
        Step::AcceptEmailUpdate,
        Step::ConfirmEmailUpdate,
        Step::PrepareVault,
        Step::DeleteRootCredentials,
        Step::Activate,
        Step::StartRelease,
        Step::Close,
        Step::RecordFailure,
        Step::Operator,
    ];

    /// The name `LIFECYCLE_STEP` uses.
    pub fn name(self) -> &'static str {
        match self {
            Step::Register => "register",
            Step::StartEmailUpdate => "start_email_update",
            Step::AcceptEmailUpdate => "accept_email_update",
            Step::ConfirmEmailUpdate => "confirm_email_update",
            Step::PrepareVault => "prepare_vault",
            Step::DeleteRootCredentials => "delete_root_credentials",
            Step::Activate => "activate",
            Step::StartRelease => "start_release",
            Step::Close => "close",
            Step::RecordFailure => "record_failure",
            Step::Operator => "operator",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name.trim())
    }
}

/// Settings, read once at cold start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LIFECYCLE_STEP`.
    pub step: Step,
    pub lifecycle: LifecycleConfig,
    /// `OPERATOR_PRINCIPALS`: who may call the operator function (that step only).
    pub operators: Operators,
}

/// What [`Config::from_env`] reads itself (the lifecycle's settings are
/// [`LifecycleConfig::VARIABLES`]).
const OWN_VARIABLES: &[&str] = &["LIFECYCLE_STEP", "OPERATOR_PRINCIPALS"];

impl Config {
    /// Every variable [`Config::from_env`] reads, the lifecycle's included.
    /// `infra/template.yaml` sets each for every step's function
    /// (`tests/tests/it/infra_template.rs`).
    pub const VARIABLES: &[&str] = &concat_names::<
        { OWN_VARIABLES.len() + LifecycleConfig::VARIABLES.len() },
    >(&[OWN_VARIABLES, LifecycleConfig::VARIABLES]);

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let env = &env.declaring(Self::VARIABLES);
        let name = env.required("LIFECYCLE_STEP")?;
        let Some(step) = Step::parse(&name) else {
            let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
            return Err(ConfigError::Invalid {
                name: "LIFECYCLE_STEP",
                value: name,
                reason: format!("expected one of {}", names.join(", ")),
            });
        };
        let operators = match step {
            Step::Operator => {
                Operators::parse(&env.optional("OPERATOR_PRINCIPALS").unwrap_or_default())
            }
            _ => Operators::default(),
        };
        Ok(Self {
            step,
            lifecycle: LifecycleConfig::from_env(env)?,
            operators,
        })
    }
}

/// A failed step as the state machine sees it: the error's name is the Lambda
/// error type (`Refused`, `NotYet`, `Transient`, `Permanent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub name: &'static str,
    pub message: String,
}

impl From<&LifecycleError> for StepFailure {
    fn from(error: &LifecycleError) -> Self {
        Self {
            name: error.error_name(),
            message: error.to_string(),
        }
    }
}

/// A panicking step is a bug: `Permanent`, so the state machine does not
/// retry it, with nothing of the panic's message (it can quote mail).
impl From<rootmail_aws::logging::Panicked> for StepFailure {
    fn from(panicked: rootmail_aws::logging::Panicked) -> Self {
        Self {
            name: "Permanent",
            message: panicked.to_string(),
        }
    }
}

impl From<StepFailure> for Diagnostic {
    fn from(failure: StepFailure) -> Self {
        Diagnostic {
            error_type: failure.name.to_string(),
            error_message: failure.message,
        }
    }
}

/// The handler, generic over the lifecycle's ports so tests can drive it.
pub struct Lifecycle<P> {
    pub ports: P,
    pub step: Step,
    /// Our domain for root addresses (`ROOT_MAIL_DOMAIN`).
    pub root_domain: String,
    /// Who may call the operator function.
    pub operators: Operators,
    /// Where the operator function checks who is calling (that step only).
    pub caller_proofs: Option<CallerProofs>,
}

impl Lifecycle<AwsLifecycle> {
    /// Wires the AWS adapters over one SDK configuration (clients built once).
    /// The operator function checks callers at its region's STS.
    pub fn on_aws(config: &Config, aws: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let caller_proofs = match (config.step, aws.region()) {
            (Step::Operator, Some(region)) => Some(
                CallerProofs::new(&sts_endpoint(region.as_ref())).map_err(|reason| {
                    ConfigError::Invalid {
                        name: "AWS_REGION",
                        value: region.to_string(),
                        reason,
                    }
                })?,
            ),
            (Step::Operator, None) => return Err(ConfigError::Missing("AWS_REGION")),
            _ => None,
        };
        Ok(Self {
            ports: AwsLifecycle::on_aws(aws, &config.lifecycle),
            step: config.step,
            root_domain: config.lifecycle.root_mail_domain.clone(),
            operators: config.operators.clone(),
            caller_proofs,
        })
    }
}

impl<P: LifecyclePorts> Lifecycle<P> {
    /// The Lambda entry point. Logs the step, the account and the outcome; never
    /// the input (a task token is in it).
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<StepOutput, StepFailure> {
        let span = tracing::info_span!("step", step = self.step.name(), account_id = Empty);
        let payload = event.payload;
        let now_ms = rootmail_aws::metrics::now_millis();
        let until = rootmail_aws::finish_by(event.context.deadline, now_ms);
        async move {
            if let Some(account) = payload.get("account_id").and_then(Value::as_str) {
                tracing::Span::current().record("account_id", account);
            }
            let done = rootmail_aws::unless_late(until, self.run(&payload, now_ms / 1000)).await;
            match done.unwrap_or_else(|| Err(out_of_time())) {
                Ok(output) => {
                    tracing::info!(phase = output.phase.as_str(), "step done");
                    Ok(output)
                }
                Err(error) => {
                    let failure = StepFailure::from(&error);
                    if matches!(error, LifecycleError::Port(_)) {
                        tracing::error!(error = failure.name, reason = %failure.message, "step failed");
                    } else {
                        tracing::warn!(error = failure.name, reason = %failure.message, "step failed");
                    }
                    Err(failure)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Runs this function's step on `input` at `now` (seconds).
    pub async fn run(&self, input: &Value, now: u64) -> LifecycleResult<StepOutput> {
        let input = Input {
            value: input,
            step: self.step,
        };
        let p = &self.ports;
        let account = input.account()?;
        match self.step {
            Step::Register => {
                let request = TakeOver {
                    account_id: account,
                    customer: input.text("customer")?.to_string(),
                    mode: input.mode()?,
                    root_domain: self.root_domain.clone(),
                    execution: input.optional_text("execution")?.map(str::to_string),
                };
                steps::register(p, &request, now).await
            }
            Step::StartEmailUpdate => {
                steps::start_email_update(p, &account, input.text("task_token")?, now).await
            }
            Step::AcceptEmailUpdate => steps::accept_email_update(p, &account, now).await,
            Step::ConfirmEmailUpdate => steps::confirm_email_update(p, &account, now).await,
            Step::PrepareVault => {
                steps::prepare_vault(p, &account, input.text("task_token")?, now).await
            }
            Step::DeleteRootCredentials => steps::delete_root_credentials(p, &account, now).await,
            Step::Activate => steps::activate(p, &account, now).await,
            Step::StartRelease => {
                let request = AccessRequest {
                    account_id: account,
                    who: input.actor()?,
                    reason: input.text("reason")?.to_string(),
                    ticket: input.text("ticket")?.to_string(),
                };
                let email = input.email("customer_email")?;
                steps::start_release_step(p, &request, &email, now).await
            }
            Step::Close => {
                let request = Closure {
                    account: &account,
                    who: &input.actor()?,
                    reason: input.text("reason")?,
                    attest: input.optional_text("attest")?,
                };
                closure::close(p, &request, now).await
            }
            Step::RecordFailure => record_failure(p, &account, &input, now).await,
            Step::Operator => Err(LifecycleError::Refused(
                "the operator function answers requests to its URL, not step inputs".into(),
            )),
        }
    }
}

/// The failure an execution caught, recorded for the take-over it runs.
/// Only a state machine calls this step: one started before executions were
/// named sends none, and fails no take-over a named one runs.
async fn record_failure<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    input: &Input<'_>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let execution = input
        .optional_text("execution")?
        .unwrap_or(UNNAMED_EXECUTION);
    let reason = input.caught_error();
    steps::record_failure(p, account, (&reason, Some(execution)), now).await
}

/// What the failure step of an execution that does not name itself (one
/// started on the state machine's definition before it did) is taken for.
const UNNAMED_EXECUTION: &str = "an execution started before take-overs named theirs";

/// The state machine's input to a step. A missing or malformed field is
/// `Refused`: the same input fails the same way, so it is not retried.
struct Input<'a> {
    value: &'a Value,
    step: Step,
}

impl Input<'_> {
    fn refused(&self, message: String) -> LifecycleError {
        LifecycleError::Refused(format!("the {} step {message}", self.step.name()))
    }

    fn text(&self, name: &str) -> LifecycleResult<&str> {
        match self.value.get(name).and_then(Value::as_str) {
            Some(text) if !text.trim().is_empty() => Ok(text),
            _ => Err(self.refused(format!(
                "needs \"{name}\" (a non-empty string) in its input"
            ))),
        }
    }

    /// A field the input may leave out; given, a string (the step checks
    /// its words).
    fn optional_text(&self, name: &str) -> LifecycleResult<Option<&str>> {
        match self.value.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.refused(format!(
                "got \"{name}\" that is not a string (leave it out, or give a statement)"
            ))),
        }
    }

    fn account(&self) -> LifecycleResult<AccountId> {
        AccountId::parse(self.text("account_id")?)
            .map_err(|e| self.refused(format!("got an unusable \"account_id\": {e}")))
    }

    /// Who the input names, marked unverified: Step Functions passes no
    /// caller, so the audit row names the execution (`execution`, from
    /// `$$.Execution.Id`), whose `StartExecution` event in CloudTrail names
    /// who started it. People's verified requests come through the operator
    /// function, which records the caller AWS checked.
    fn actor(&self) -> LifecycleResult<String> {
        let who = self.text("who")?;
        let source = match self.value.get("execution").and_then(Value::as_str) {
            Some(execution) if !execution.trim().is_empty() => execution,
            _ => "a direct invocation",
        };
        Ok(format!("{who} (unverified: as typed into {source})"))
    }

    fn email(&self, name: &str) -> LifecycleResult<EmailAddress> {
        EmailAddress::parse(self.text(name)?)
            .map_err(|e| self.refused(format!("got an unusable \"{name}\": {e}")))
    }

    /// What Step Functions caught (`$.error`): its name (`States.Timeout`,
    /// `Refused`, ...) and the message of a Lambda error's cause.
    fn caught_error(&self) -> String {
        let error = self.value.get("error");
        let name = error
            .and_then(|e| e.get("Error"))
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        let cause = error
            .and_then(|e| e.get("Cause"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        // A Lambda error's cause is JSON holding `errorMessage`.
        let message = serde_json::from_str::<Value>(cause)
            .ok()
            .and_then(|c| {
                c.get("errorMessage")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| cause.to_string());
        match (name, message.trim()) {
            ("States.Timeout", _) => "the wait timed out (nothing arrived in time)".to_string(),
            (name, "") => name.to_string(),
            (name, message) => format!("{name}: {message}"),
        }
    }

    fn mode(&self) -> LifecycleResult<Mode> {
        Mode::parse(self.text("mode")?.trim())
            .ok_or_else(|| self.refused("needs \"mode\": \"vaulted\" or \"rootless\"".into()))
    }
}

/// A step still running 5 s before the function's timeout is stopped there
/// (every step may stop at an await, as at a crash) and reported
/// `Transient`, which the state machine retries: timed out by Lambda, it
/// would be `Lambda.Unknown`, which no Retry lists, and the take-over
/// would fail on one slow AWS call.
fn out_of_time() -> LifecycleError {
    LifecycleError::transient(
        "lifecycle",
        "the step did not finish before the function's timeout; it runs again",
    )
}

fn now_secs() -> u64 {
    rootmail_aws::metrics::now_millis() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootmail_aws::config::{name_set, names_read};
    use rootmail_domain::Rules;
    use rootmail_fake_http::{FakeHttp, Received, Reply};
    use rootmail_lifecycle::{AuditLog, Phase, Rotations};
    use rootmail_local::LocalStore;
    use rootmail_local::lifecycle_store::{LocalLifecycle, VaultKey};
    use serde_json::json;
    use std::sync::OnceLock;

    const KEY: &str = "4f1c0e9a7b3d5f2e8c6a4b2d0f9e7c5a3b1d9f8e6c4a2b0d8f7e5c3a1b9d7f6e";
    const ACCOUNT: &str = "444455556666";

    fn handler(store: &LocalStore, step: Step) -> Lifecycle<LocalLifecycle<'_>> {
        Lifecycle {
            ports: LocalLifecycle::new(store, VaultKey::from_hex(KEY).unwrap()),
            step,
            root_domain: "root.example-msp.com".into(),
            operators: Operators::parse("arn:aws:iam::123456789012:role/RootmailOperator"),
            caller_proofs: Some(CallerProofs::new(&sts().url()).unwrap()),
        }
    }

    const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:rootmail-operator";

    /// An STS for the operator's caller proofs that takes any signature and
    /// names the signer from the access key (`ROLE+SESSION`), or answers
    /// `down` with 503; it refuses a proof checked for another audience than
    /// [`FUNCTION_ARN`]. How STS checks a signature is the tests crate's
    /// stand-in (tests/src/function_url.rs); here the handler's use of it is.
    fn sts() -> &'static FakeHttp {
        static STS: OnceLock<FakeHttp> = OnceLock::new();
        STS.get_or_init(|| {
            FakeHttp::start(
                axum::Router::new().fallback(|request: Received| async move {
                    let credential = request.query_param("X-Amz-Credential").unwrap_or_default();
                    let key = credential.split('/').next().unwrap_or_default();
                    let for_us = request.header("x-rootmail-audience") == Some(FUNCTION_ARN);
                    match key.split_once('+') {
                        _ if key == "down" => Reply::status(503),
                        // STS's Query API throttles with a 400 and this code.
                        _ if key == "throttled" => Reply::text(
                            400,
                            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                         <Message>Rate exceeded</Message></Error></ErrorResponse>",
                        ),
                        Some((role, session)) if for_us => Reply::text(
                            200,
                            &format!(
                                "<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>\
                            arn:aws:sts::123456789012:assumed-role/{role}/{session}\
                            </Arn></GetCallerIdentityResult></GetCallerIdentityResponse>"
                            ),
                        ),
                        _ => Reply::status(403),
                    }
                }),
            )
        })
    }

    /// A proof, for [`sts`], signed by the assumed-role session `signer`.
    fn proof_by(signer: &str) -> String {
        let key = signer
            .split_once("assumed-role/")
            .map_or(signer.to_string(), |(_, rest)| rest.replace('/', "+"));
        let identity = aws_credential_types::Credentials::new(key, "secret", None, None, "test");
        let scope = rootmail_aws::sigv4::Scope {
            identity: &identity.into(),
            region: "eu-west-1",
            service: "sts",
        };
        rootmail_aws::caller_proof::proof(&sts().url(), &scope, FUNCTION_ARN, b"").unwrap()
    }

    /// The context Lambda gives the operator function.
    fn invoked(arn: &str) -> lambda_runtime::Context {
        let mut context = lambda_runtime::Context::default();
        context.invoked_function_arn = arn.into();
        context
    }

    async fn call(store: &LocalStore, step: Step, input: Value) -> Result<StepOutput, StepFailure> {
        handler(store, step)
            .handle(LambdaEvent::new(input, Default::default()))
            .await
    }

    async fn phase(store: &LocalStore) -> Option<Phase> {
        let ports = LocalLifecycle::new(store, VaultKey::from_hex(KEY).unwrap());
        Rotations::get(&ports, &AccountId::parse(ACCOUNT).unwrap())
            .await
            .unwrap()
            .map(|r| r.phase)
    }

    #[test]
    fn step_names_round_trip_and_a_wrong_one_lists_the_right_ones() {
        for step in Step::ALL {
            assert_eq!(Step::parse(step.name()), Some(step));
        }
        assert_eq!(Step::parse("access"), None);
        let env = Env::from_pairs([("LIFECYCLE_STEP", "take_over")]);
        let error = Config::from_env(&env).unwrap_err().to_string();
        assert!(error.contains("LIFECYCLE_STEP"), "{error}");
        assert!(error.contains("register, start_email_update"), "{error}");
        let error = Config::from_env(&Env::from_pairs([("X", "y")]))
            .unwrap_err()
            .to_string();
        assert_eq!(error, "environment variable LIFECYCLE_STEP is not set");
        let error = Config::from_env(&Env::from_pairs([("LIFECYCLE_STEP", "close")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("ROTATIONS_TABLE"), "{error}");
    }

    /// The operator step reads `OPERATOR_PRINCIPALS` too: with it, every name.
    #[test]
    fn variables_are_what_from_env_reads() {
        let everything = [
            ("LIFECYCLE_STEP", "operator"),
            (
                "OPERATOR_PRINCIPALS",
                "arn:aws:iam::123456789012:role/RootmailOperator",
            ),
            ("ROTATIONS_TABLE", "rotations"),
            ("AUDIT_TABLE", "audit"),
            ("ACCOUNTS_TABLE", "accounts"),
            (
                "TICKET_OPS_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/ticket-ops.fifo",
            ),
            ("VAULT_KMS_KEY_ID", "alias/vault"),
            ("TOKEN_KMS_KEY_ID", "alias/vault"),
            ("NOTICE_FROM", "rootmail@example-msp.com"),
            ("NOTICE_TO", "security@example-msp.com"),
            ("ROOT_MAIL_DOMAIN", "root.example-msp.com"),
        ];
        let read = names_read(&everything, |env| {
            Config::from_env(env).unwrap();
        });
        assert_eq!(read, name_set(Config::VARIABLES));
    }

    #[test]
    fn failures_carry_the_error_name_state_machines_match() {
        let refused = LifecycleError::Refused("account 1 is closed".into());
        let diagnostic = Diagnostic::from(StepFailure::from(&refused));
        assert_eq!(diagnostic.error_type, "Refused");
        assert_eq!(diagnostic.error_message, "account 1 is closed");
        let transient = LifecycleError::Port(rootmail_pipeline_error(true));
        assert_eq!(StepFailure::from(&transient).name, "Transient");
        let permanent = LifecycleError::Port(rootmail_pipeline_error(false));
        assert_eq!(StepFailure::from(&permanent).name, "Permanent");
        let not_yet = LifecycleError::NotYet("root email not changed yet".into());
        assert_eq!(StepFailure::from(&not_yet).name, "NotYet");
        // Not retried: a bug does not mend itself.
        let panicked = StepFailure::from(rootmail_aws::logging::Panicked);
        assert_eq!(panicked.name, "Permanent");
    }

    fn rootmail_pipeline_error(transient: bool) -> rootmail_pipeline::PortError {
        let (port, message) = ("test", "x".to_string());
        if transient {
            rootmail_pipeline::PortError::transient(port, message)
        } else {
            rootmail_pipeline::PortError::permanent(port, message)
        }
    }

    #[tokio::test]
    async fn a_bad_input_is_refused_by_name_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        for (step, input, wanted) in [
            (Step::Register, json!({}), "\"account_id\""),
            (
                Step::Register,
                json!({"account_id": "12"}),
                "unusable \"account_id\"",
            ),
            (
                Step::Register,
                json!({"account_id": ACCOUNT, "mode": "rootless"}),
                "\"customer\"",
            ),
            (
                Step::Register,
                json!({"account_id": ACCOUNT, "customer": "Initech", "mode": "sideways"}),
                "\"vaulted\" or \"rootless\"",
            ),
            (
                Step::StartEmailUpdate,
                json!({"account_id": ACCOUNT}),
                "\"task_token\"",
            ),
            (
                Step::PrepareVault,
                json!({"account_id": ACCOUNT, "task_token": " "}),
                "\"task_token\"",
            ),
            (
                Step::StartRelease,
                json!({"account_id": ACCOUNT, "who": "alice", "customer_email": "nope",
                    "reason": "contract ended", "ticket": "CHG-1"}),
                "unusable \"customer_email\"",
            ),
            (
                Step::StartRelease,
                json!({"account_id": ACCOUNT, "who": "alice", "customer_email": "a@b.example",
                    "reason": "contract ended"}),
                "\"ticket\"",
            ),
            (
                Step::Close,
                json!({"account_id": ACCOUNT, "who": "alice"}),
                "\"reason\"",
            ),
        ] {
            let failure = call(&store, step, input).await.unwrap_err();
            assert_eq!(failure.name, "Refused", "{failure:?}");
            assert!(
                failure
                    .message
                    .starts_with(&format!("the {} step", step.name())),
                "{failure:?}"
            );
            assert!(
                failure.message.contains(wanted),
                "{failure:?} lacks {wanted}"
            );
        }
        assert_eq!(phase(&store).await, None, "nothing was registered");
    }

    /// A function URL's event: the caller IAM verified, with a proof that
    /// STS names them for.
    fn url_event(caller: Option<&str>, body: Value) -> Value {
        proven_event(caller, caller.map(proof_by), body)
    }

    fn proven_event(caller: Option<&str>, proof: Option<String>, body: Value) -> Value {
        let mut event = json!({
            "requestContext": {"http": {"method": "POST"}},
            "headers": {"content-type": "application/json"},
            "body": body.to_string(),
            "isBase64Encoded": false,
        });
        if let Some(arn) = caller {
            event["requestContext"]["authorizer"] = json!({"iam": {"userArn": arn}});
        }
        if let Some(proof) = proof {
            event["headers"]["x-rootmail-caller-proof"] = json!(proof);
        }
        event
    }

    /// The operator function answers only a caller IAM verified, and the
    /// audit trail names that caller, whatever the request says (issue 13,
    /// point 9).
    #[tokio::test]
    async fn operator_requests_are_audited_as_the_verified_caller() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let register = json!({"account_id": ACCOUNT, "customer": "Initech", "mode": "rootless"});
        call(&store, Step::Register, register).await.unwrap();
        let operator = handler(&store, Step::Operator);
        let ask = |caller: Option<&'static str>, body: Value| {
            operator.handle_operator(LambdaEvent::new(
                url_event(caller, body),
                invoked(&format!("{FUNCTION_ARN}:live")),
            ))
        };
        let close =
            json!({"action": "close", "account_id": ACCOUNT, "reason": "left", "who": "mallory"});

        let anonymous = ask(None, close.clone()).await;
        assert_eq!(anonymous["statusCode"], 403, "{anonymous}");
        assert_eq!(
            phase(&store).await,
            Some(Phase::Registered),
            "nothing changed"
        );
        let garbled = ask(
            Some("arn:aws:sts::123456789012:assumed-role/RootmailOperator/bob"),
            json!({"action": "fly"}),
        )
        .await;
        assert_eq!(garbled["statusCode"], 400, "{garbled}");
        // Verified by IAM, but not one of the operators: refused.
        let stranger = ask(
            Some("arn:aws:sts::123456789012:assumed-role/Developer/eve"),
            close.clone(),
        )
        .await;
        assert_eq!(stranger["statusCode"], 403, "{stranger}");
        assert_eq!(
            phase(&store).await,
            Some(Phase::Registered),
            "nothing changed"
        );

        let alice = "arn:aws:sts::123456789012:assumed-role/RootmailOperator/alice@example.com";
        // An event naming alice, as a direct invoke can write one: without a
        // proof STS names her for, or with STS down, nothing happens.
        let mallory = "arn:aws:sts::123456789012:assumed-role/Developer/mallory";
        for (proof, function, status) in [
            (None, FUNCTION_ARN, 403),
            (Some(proof_by(mallory)), FUNCTION_ARN, 403),
            (Some(proof_by("forged")), FUNCTION_ARN, 403),
            (Some(proof_by("down")), FUNCTION_ARN, 503),
            (Some(proof_by("throttled")), FUNCTION_ARN, 503),
            (
                Some("https://sts.evil.example/?Action=GetCallerIdentity".into()),
                FUNCTION_ARN,
                403,
            ),
            // Alice's proof, but this is another function than hers.
            (
                Some(proof_by(alice)),
                "arn:aws:lambda:eu-west-1:123456789012:function:staging-operator",
                403,
            ),
            (Some(proof_by(alice)), "", 500),
        ] {
            let forged = operator
                .handle_operator(LambdaEvent::new(
                    proven_event(Some(alice), proof.clone(), close.clone()),
                    invoked(function),
                ))
                .await;
            assert_eq!(
                forged["statusCode"], status,
                "{proof:?} {function}: {forged}"
            );
        }
        assert_eq!(
            phase(&store).await,
            Some(Phase::Registered),
            "nothing changed"
        );
        let refused = ask(
            Some(alice),
            json!({"action": "access", "account_id": ACCOUNT, "reason": "r", "ticket": "T-1"}),
        )
        .await;
        assert_eq!(refused["statusCode"], 409, "{refused}");
        assert!(
            refused["body"]
                .as_str()
                .unwrap()
                .contains("is rootless: it has no root password")
        );

        let closed = ask(Some(alice), close).await;
        assert_eq!(closed["statusCode"], 200, "{closed}");
        assert_eq!(phase(&store).await, Some(Phase::Closed));
        let ports = LocalLifecycle::new(&store, VaultKey::from_hex(KEY).unwrap());
        let trail =
            rootmail_lifecycle::AuditLog::entries(&ports, &AccountId::parse(ACCOUNT).unwrap())
                .await
                .unwrap();
        let closing = trail.iter().find(|e| e.action == "closed").unwrap();
        assert_eq!(
            closing.actor, alice,
            "the verified caller, not the body's \"who\""
        );

        let status = ask(
            Some(alice),
            json!({"action": "status", "account_id": ACCOUNT}),
        )
        .await;
        assert_eq!(status["statusCode"], 200);
        let answer: Value = serde_json::from_str(status["body"].as_str().unwrap()).unwrap();
        assert_eq!(answer["rotation"]["phase"], "closed");
        assert!(answer["rotation"]["task_token"].is_null());
    }

    /// The execution that registered a take-over is kept on the record; a
    /// failure step of another execution (an older one, still waiting when
    /// the account was closed, reopened and taken over again) fails alone.
    #[tokio::test]
    async fn only_the_registering_execution_fails_its_take_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let register = json!({"account_id": ACCOUNT, "customer": "Initech", "mode": "rootless",
            "execution": "arn:aws:states:us-east-1:111122223333:execution:take-over:run-2"});
        call(&store, Step::Register, register).await.unwrap();
        let timed_out = |execution: &str| {
            json!({"account_id": ACCOUNT, "execution": execution,
                "error": {"Error": "States.Timeout", "Cause": ""}})
        };
        let old = "arn:aws:states:us-east-1:111122223333:execution:take-over:run-1";
        let refused = call(&store, Step::RecordFailure, timed_out(old)).await;
        assert!(refused.unwrap_err().message.contains("another execution"));
        // One started before executions named themselves sends none.
        let unnamed = json!({"account_id": ACCOUNT,
            "error": {"Error": "States.Timeout", "Cause": ""}});
        let refused = call(&store, Step::RecordFailure, unnamed).await;
        assert!(refused.unwrap_err().message.contains("another execution"));
        let own = "arn:aws:states:us-east-1:111122223333:execution:take-over:run-2";
        let out = call(&store, Step::RecordFailure, timed_out(own)).await;
        assert_eq!(out.unwrap().phase, Phase::Failed);
    }

    /// A wait that timed out, and a code AWS refused: each ends the take-over
    /// as `failed` with its reason, keeps nothing waiting, and a new take-over
    /// may start (issue 13, point 4).
    #[tokio::test]
    async fn a_caught_error_fails_the_take_over_and_a_new_one_may_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let register = json!({"account_id": ACCOUNT, "customer": "Initech", "mode": "rootless"});
        call(&store, Step::Register, register.clone())
            .await
            .unwrap();
        let started = json!({"account_id": ACCOUNT, "task_token": "local-token"});
        call(&store, Step::StartEmailUpdate, started).await.unwrap();
        // A second take-over is refused while the first waits.
        let busy = call(&store, Step::Register, register.clone()).await;
        assert!(busy.unwrap_err().message.contains("already running"));

        let timed_out =
            json!({"account_id": ACCOUNT, "error": {"Error": "States.Timeout", "Cause": ""}});
        let out = call(&store, Step::RecordFailure, timed_out.clone())
            .await
            .unwrap();
        assert_eq!(out.phase, Phase::Failed);
        let ports = LocalLifecycle::new(&store, VaultKey::from_hex(KEY).unwrap());
        let account = AccountId::parse(ACCOUNT).unwrap();
        let rotation = Rotations::get(&ports, &account).await.unwrap().unwrap();
        let failure = rotation.failure.clone().expect("the reason is kept");
        assert_eq!(failure.phase, Phase::AwaitingOtp);
        assert!(failure.reason.contains("timed out"), "{failure:?}");
        assert_eq!((rotation.waiting_for, rotation.task_token), (None, None));
        // Repeating the Catch changes nothing.
        call(&store, Step::RecordFailure, timed_out).await.unwrap();
        assert_eq!(
            Rotations::get(&ports, &account)
                .await
                .unwrap()
                .unwrap()
                .version,
            rotation.version
        );

        // Start again; this time AWS refuses the code at the accept step.
        let out = call(&store, Step::Register, register).await.unwrap();
        assert_eq!(out.phase, Phase::Registered);
        let wrong_code = json!({"account_id": ACCOUNT, "error": {
            "Error": "Refused",
            "Cause": "{\"errorType\":\"Refused\",\"errorMessage\":\"AWS refused the code: it is wrong or expired\"}"
        }});
        call(&store, Step::RecordFailure, wrong_code).await.unwrap();
        let rotation = Rotations::get(&ports, &account).await.unwrap().unwrap();
        assert_eq!(
            rotation.failure.unwrap().reason,
            "Refused: AWS refused the code: it is wrong or expired"
        );
        let trail = rootmail_lifecycle::AuditLog::entries(&ports, &account)
            .await
            .unwrap();
        assert_eq!(
            trail
                .iter()
                .filter(|e| e.action == "take-over failed")
                .count(),
            2
        );
    }

    /// Each step name reaches its own step: a rootless take-over, release and
    /// closure against the local ports, the code mail through the pipeline.
    #[tokio::test]
    async fn each_step_runs_its_own_core_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let account = json!({"account_id": ACCOUNT});
        let register = json!({"account_id": ACCOUNT, "customer": "Initech", "mode": "rootless"});
        let out = call(&store, Step::Register, register).await.unwrap();
        assert_eq!((out.phase, out.mode), (Phase::Registered, Mode::Rootless));
        assert_eq!(out.account_id.as_str(), ACCOUNT);

        // Not its phase: refused, with the step's words.
        let early = call(&store, Step::AcceptEmailUpdate, account.clone()).await;
        assert_eq!(early.unwrap_err().name, "Refused");
        assert_eq!(phase(&store).await, Some(Phase::Registered));

        let started = json!({"account_id": ACCOUNT, "task_token": "local-token"});
        let out = call(&store, Step::StartEmailUpdate, started).await.unwrap();
        assert_eq!(out.phase, Phase::AwaitingOtp);
        let ports = LocalLifecycle::new(&store, VaultKey::from_hex(KEY).unwrap());
        let delivered = rootmail_local::workflow::deliver_simulated_mail(
            &ports,
            &store,
            &[],
            &Rules::built_in(),
            now_secs(),
        )
        .await
        .unwrap();
        assert_eq!(delivered, 1);
        assert_eq!(phase(&store).await, Some(Phase::OtpReceived));

        for (step, wanted) in [
            (Step::AcceptEmailUpdate, Phase::EmailAccepted),
            (Step::ConfirmEmailUpdate, Phase::EmailConfirmed),
            (Step::DeleteRootCredentials, Phase::Secured),
            (Step::Activate, Phase::Active),
        ] {
            let out = call(&store, step, account.clone()).await.unwrap();
            assert_eq!(out.phase, wanted, "{}", step.name());
            // Run again, as Step Functions does when the answer was lost:
            // the same output, not a refusal that fails the take-over.
            let again = call(&store, step, account.clone()).await;
            assert_eq!(again.map(|o| o.phase), Ok(wanted), "{} again", step.name());
        }
        // Each step's audit row once, though each ran twice.
        let ports = LocalLifecycle::new(&store, VaultKey::from_hex(KEY).unwrap());
        let audit = AuditLog::entries(&ports, &AccountId::parse(ACCOUNT).unwrap())
            .await
            .unwrap();
        for action in [
            "root email change accepted",
            "root email changed",
            "take-over finished",
        ] {
            let rows = audit.iter().filter(|e| e.action == action).count();
            assert_eq!(rows, 1, "{action}");
        }
        // A rootless account has nothing to vault.
        let vault = json!({"account_id": ACCOUNT, "task_token": "t"});
        assert_eq!(
            call(&store, Step::PrepareVault, vault)
                .await
                .unwrap_err()
                .name,
            "Refused"
        );

        let release = json!({"account_id": ACCOUNT, "who": "alice", "customer_email": "root@initech.example",
            "reason": "contract ended", "ticket": "CHG-1"});
        let out = call(&store, Step::StartRelease, release).await.unwrap();
        assert_eq!(out.phase, Phase::AwaitingCustomerOtp);
        let mut close = json!({"account_id": ACCOUNT, "who": "alice", "reason": "customer left",
            "execution": "arn:aws:states:eu-west-1:111122223333:execution:Close:x1"});
        // The state machine passes an attestation on (CloseAsAttested): the
        // step checks it (here, its length).
        close["attest"] = json!("x".repeat(2001));
        let attested = call(&store, Step::Close, close.clone()).await.unwrap_err();
        assert!(
            attested.message.contains("at most 2000"),
            "{}",
            attested.message
        );
        close["attest"] = json!("the customer closed it");
        let mut not_words = close.clone();
        not_words["attest"] = Value::Null;
        let refused = call(&store, Step::Close, not_words).await.unwrap_err();
        assert!(
            refused.message.contains("not a string"),
            "{}",
            refused.message
        );
        // The customer closes it during the release (AWS's console).
        let ports = LocalLifecycle::new(&store, VaultKey::from_hex(KEY).unwrap());
        let id = AccountId::parse(ACCOUNT).unwrap();
        rootmail_lifecycle::AccountApi::close_member(&ports, &id)
            .await
            .unwrap();
        let out = call(&store, Step::Close, close).await.unwrap();
        assert_eq!(out.phase, Phase::Closed);
        // A state machine's input names a person nobody checked: the audit
        // says so and names the execution CloudTrail ties to its caller.
        let audit =
            rootmail_lifecycle::AuditLog::entries(&ports, &AccountId::parse(ACCOUNT).unwrap())
                .await
                .unwrap();
        let actors: Vec<&str> = audit
            .iter()
            .filter(|e| e.action.contains("clos") || e.action.contains("release"))
            .map(|e| e.actor.as_str())
            .collect();
        assert_eq!(
            actors,
            [
                "alice (unverified: as typed into a direct invocation)",
                "alice (unverified: as typed into arn:aws:states:eu-west-1:111122223333:execution:Close:x1)"
            ],
            "{audit:?}"
        );
    }

    /// The local ports, except that the rotations table never answers (a
    /// stalled AWS call).
    struct Stalled<'a>(LocalLifecycle<'a>);

    impl Rotations for Stalled<'_> {
        async fn get(
            &self,
            _: &AccountId,
        ) -> LifecycleResult<Option<rootmail_lifecycle::Rotation>> {
            std::future::pending().await
        }
        async fn put(
            &self,
            _: &rootmail_lifecycle::Rotation,
            _: Option<u64>,
        ) -> LifecycleResult<()> {
            std::future::pending().await
        }
    }

    impl<'a> LifecyclePorts for Stalled<'a> {
        type Api = LocalLifecycle<'a>;
        type Root = LocalLifecycle<'a>;
        type Vault = LocalLifecycle<'a>;
        type Rotations = Self;
        type Audit = LocalLifecycle<'a>;
        type Registry = LocalLifecycle<'a>;
        type Tokens = LocalLifecycle<'a>;
        type Notices = LocalLifecycle<'a>;
        fn api(&self) -> &LocalLifecycle<'a> {
            &self.0
        }
        fn root(&self) -> &LocalLifecycle<'a> {
            &self.0
        }
        fn vault(&self) -> &LocalLifecycle<'a> {
            &self.0
        }
        fn rotations(&self) -> &Self {
            self
        }
        fn audit(&self) -> &LocalLifecycle<'a> {
            &self.0
        }
        fn registry(&self) -> &LocalLifecycle<'a> {
            &self.0
        }
        fn tokens(&self) -> &LocalLifecycle<'a> {
            &self.0
        }
        fn notices(&self) -> &LocalLifecycle<'a> {
            &self.0
        }
    }

    /// A step stalled on AWS answers `Transient` (which the state machine
    /// retries) before the function's timeout, not Lambda's own timeout
    /// (`Lambda.Unknown`, which fails the take-over).
    #[tokio::test]
    async fn a_stalled_step_is_transient_before_the_functions_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let handler = Lifecycle {
            ports: Stalled(LocalLifecycle::new(
                &store,
                VaultKey::from_hex(KEY).unwrap(),
            )),
            step: Step::AcceptEmailUpdate,
            root_domain: "root.example-msp.com".into(),
            operators: Operators::default(),
            caller_proofs: None,
        };
        let mut context = lambda_runtime::Context::default();
        // 5.3 s left: the step is stopped 0.3 s from now.
        context.deadline = rootmail_aws::metrics::now_millis() + 5_300;
        let input = json!({"account_id": ACCOUNT});
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            handler.handle(LambdaEvent::new(input, context)),
        )
        .await
        .expect("answered before the deadline");
        let failure = answer.unwrap_err();
        assert_eq!(failure.name, "Transient", "{failure:?}");
    }
}

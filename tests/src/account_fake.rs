//! A stateful fake of the three AWS APIs the root-credential lifecycle needs and
//! moto lacks, on one loopback port:
//!
//! - the Account API's primary-email calls (REST-JSON: `POST /startPrimaryEmailUpdate`,
//!   `/acceptPrimaryEmailUpdate`, `/getPrimaryEmail`, `/getPrimaryEmailUpdateStatus`),
//!   which mails the one-time code the way AWS does: an SES-received `.eml` written
//!   into an S3 bucket (moto's), where rootmail's pipeline picks it up;
//! - `sts:AssumeRoot` (query protocol), which issues short-lived root sessions bound
//!   to one member account and one task policy;
//! - the IAM calls such a root session makes on its own root user (query protocol),
//!   allowed or refused by the session's task policy, checked against the SigV4
//!   signature made with the session's secret.
//!
//! Point the SDK clients at [`AccountFake::url`] (see [`AccountFake::sdk_config`]);
//! S3 and everything else stay on moto. The service is told apart by the SigV4
//! credential scope (`.../account/...`, `.../sts/...`, `.../iam/...`).

use crate::XorShift;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use axum::Router;
use axum::extract;
use hmac::Mac;
use rootmail_fake_http::{FakeHttp, Received};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The task policies `sts:AssumeRoot` accepts, by name (the ARN's last segment).
pub const TASK_POLICIES: &[&str] = &[
    "IAMAuditRootUserCredentials",
    "IAMCreateRootUserPassword",
    "IAMDeleteRootUserCredentials",
    "S3UnlockBucketPolicy",
    "SQSUnlockQueuePolicy",
];

/// The ARN of a root task policy, e.g. `task_policy_arn("IAMAuditRootUserCredentials")`.
pub fn task_policy_arn(name: &str) -> String {
    format!("arn:aws:iam::aws:policy/root-task/{name}")
}

const AUDIT_ACTIONS: &[&str] = &[
    "GetLoginProfile",
    "ListAccessKeys",
    "ListSigningCertificates",
    "ListMFADevices",
];
const DELETE_ACTIONS: &[&str] = &[
    "DeleteLoginProfile",
    "DeleteAccessKey",
    "DeleteSigningCertificate",
    "DeactivateMFADevice",
];
const CREATE_PASSWORD_ACTIONS: &[&str] = &["CreateLoginProfile", "GetLoginProfile"];

/// The session policy of the provider's audit role (not a root task policy).
const AUDIT_ROLE_POLICY: &str = "role:audit";

/// The IAM actions a task policy allows the root session.
fn allowed(policy: &str, action: &str) -> bool {
    match policy {
        AUDIT_ROLE_POLICY => action == "GetAccountSummary",
        "IAMAuditRootUserCredentials" => AUDIT_ACTIONS.contains(&action),
        "IAMDeleteRootUserCredentials" => {
            AUDIT_ACTIONS.contains(&action) || DELETE_ACTIONS.contains(&action)
        }
        "IAMCreateRootUserPassword" => CREATE_PASSWORD_ACTIONS.contains(&action),
        // S3UnlockBucketPolicy, SQSUnlockQueuePolicy: no IAM action at all.
        _ => false,
    }
}

/// The longest session `AssumeRoot` grants, and its default.
pub const MAX_ROOT_SESSION_SECS: u64 = 900;

const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const AWS_OTP_SENDER: &str = "no-reply@verify.signin.aws";

/// How many of each root credential a member account has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootCredentials {
    pub password: bool,
    pub access_keys: u32,
    pub signing_certificates: u32,
    pub mfa_devices: u32,
}

impl RootCredentials {
    /// No password, no keys, no certificates, no MFA: the "rootless" state.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn is_none(&self) -> bool {
        *self == Self::none()
    }
}

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCall {
    /// `account`, `sts` or `iam`.
    pub service: &'static str,
    /// The API's operation name, e.g. `StartPrimaryEmailUpdate`, `DeleteAccessKey`.
    pub operation: String,
    /// The member account the call was about (for IAM: the session's account).
    pub account: Option<String>,
    /// The HTTP status the fake answered with.
    pub status: u16,
}

/// One verification mail the fake sent (whether or not a bucket was configured).
#[derive(Debug, Clone)]
pub struct SentMail {
    pub account_id: String,
    pub to: String,
    /// False when `fail_authentication` was on: the mail fails DKIM and DMARC.
    pub authentic: bool,
    /// The S3 key it was written to, when delivery is configured and succeeded.
    pub key: Option<String>,
    pub delivery_error: Option<String>,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Pending {
    email: String,
    otp: String,
    expires: SystemTime,
}

#[derive(Debug, Clone)]
struct Member {
    root_email: String,
    /// Creation time (epoch seconds) of the root password, if any.
    password: Option<u64>,
    /// (id, created) of each root access key / signing certificate / MFA device.
    access_keys: Vec<(String, u64)>,
    certificates: Vec<(String, u64)>,
    mfa_devices: Vec<(String, u64)>,
    pending: Option<Pending>,
    last_otp: Option<String>,
    /// The last update's status and when it changed (epoch seconds).
    update_status: Option<(&'static str, u64)>,
    /// The root email before the last accepted change: what GetPrimaryEmail
    /// still answers while the change propagates (see `delay_propagation`).
    previous_email: Option<String>,
}

impl Member {
    fn credentials(&self) -> RootCredentials {
        let count = |v: &Vec<(String, u64)>| u32::try_from(v.len()).unwrap_or(u32::MAX);
        RootCredentials {
            password: self.password.is_some(),
            access_keys: count(&self.access_keys),
            signing_certificates: count(&self.certificates),
            mfa_devices: count(&self.mfa_devices),
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    account: String,
    policy: String,
    secret: String,
    token: String,
    expires: SystemTime,
}

#[derive(Clone)]
struct Delivery {
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

struct State {
    accounts: BTreeMap<String, Member>,
    sessions: HashMap<String, Session>,
    calls: Vec<FakeCall>,
    mails: Vec<SentMail>,
    delivery: Option<Delivery>,
    fail_authentication: bool,
    otp_lifetime: Duration,
    /// The code the next StartPrimaryEmailUpdate sends (else six digits).
    next_otp: Option<String>,
    /// The next code mail writes its code before its words, as no rule reads it.
    next_code_before_its_words: bool,
    /// GetPrimaryEmail answers the address before the last accepted change.
    lagging: bool,
    /// The next call of this operation is done, and answered with a 500.
    lose_answer_of: Option<String>,
    /// StartPrimaryEmailUpdate refuses a change while another is pending
    /// (ConflictException), where by default it replaces it: AWS documents
    /// neither, so the code must hold up under both.
    refuse_second_start: bool,
    /// The organization's management account: the Account API refuses it.
    management: Option<String>,
    /// The role name the provider keeps in every account for reading IAM's
    /// account summary (`sts:AssumeRole` is refused for any other).
    audit_role: Option<String>,
    rng: XorShift,
}

/// A mail to put into the bucket once the state lock is released.
struct Outgoing {
    account_id: String,
    to: String,
    authentic: bool,
    ses_id: String,
    raw: Vec<u8>,
}

type Shared = Arc<Mutex<State>>;

pub struct AccountFake {
    state: Shared,
    _server: FakeHttp,
    url: String,
}

impl AccountFake {
    /// Starts the fake on a free loopback port, with no accounts.
    pub fn start() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        let state = Arc::new(Mutex::new(State {
            accounts: BTreeMap::new(),
            sessions: HashMap::new(),
            calls: Vec::new(),
            mails: Vec::new(),
            delivery: None,
            fail_authentication: false,
            otp_lifetime: Duration::from_secs(24 * 3600),
            next_otp: None,
            next_code_before_its_words: false,
            lagging: false,
            lose_answer_of: None,
            refuse_second_start: false,
            management: None,
            audit_role: None,
            rng: XorShift::new(seed),
        }));
        // Deliveries run on the fake's own runtime, so they never depend on
        // (or block) the runtime of the test that called us.
        let server = FakeHttp::start(Router::new().fallback(handle).with_state(state.clone()));
        // Two fakes started in the same instant still draw different codes.
        let port = u64::from(server.address().port());
        state.lock().expect("account fake state").rng = XorShift::new(seed ^ port);
        Self {
            state,
            url: server.url(),
            _server: server,
        }
    }

    /// The endpoint to give the Account, STS and IAM clients.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// SDK settings aimed at the fake: region us-east-1, static management-account
    /// test credentials. Build `aws_sdk_account`/`aws_sdk_sts`/`aws_sdk_iam` clients
    /// from it; for a root session, override the credentials with the ones
    /// `AssumeRoot` returned.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(rootmail_aws::https_client())
            .endpoint_url(&self.url)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIAMANAGEMENTTESTKEY",
                "management-test-secret",
                None,
                None,
                "account-fake",
            ))
            .load()
            .await
    }

    /// Adds (or replaces) a member account with this root email and root credentials.
    pub fn add_account(&self, account_id: &str, root_email: &str, credentials: RootCredentials) {
        let mut s = self.lock();
        let now = crate::now_secs();
        let rng = &mut s.rng;
        let access_keys = (0..credentials.access_keys)
            .map(|_| (format!("AKIA{}", upper_alnum(rng, 16)), now))
            .collect();
        let certificates = (0..credentials.signing_certificates)
            .map(|_| (upper_alnum(rng, 32), now))
            .collect();
        let mfa_devices = (0..credentials.mfa_devices)
            .map(|n| {
                let name = if n == 0 {
                    "root-account-mfa-device".to_string()
                } else {
                    format!("root-mfa-{n}")
                };
                (format!("arn:aws:iam::{account_id}:mfa/{name}"), now)
            })
            .collect();
        s.accounts.insert(
            account_id.to_string(),
            Member {
                root_email: root_email.to_string(),
                password: credentials.password.then_some(now),
                access_keys,
                certificates,
                mfa_devices,
                pending: None,
                last_otp: None,
                update_status: None,
                previous_email: None,
            },
        );
    }

    /// Writes every verification mail from now on into `bucket` under
    /// `<prefix><SES message id>`, as an SES receipt rule would, before the
    /// `StartPrimaryEmailUpdate` call returns. Without it the mails are only kept
    /// in memory ([`sent_mail`](Self::sent_mail)).
    pub fn deliver_to(&self, s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) {
        // A client of our own (same settings, its own connection pool), so its
        // connections live on the fake's runtime rather than the caller's.
        let s3 = aws_sdk_s3::Client::from_conf(s3.config().clone());
        self.lock().delivery = Some(Delivery {
            s3,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        });
    }

    /// A person in the console of a payer or standalone account (no API call):
    /// asks to change the root email to `email`; AWS mails the code there.
    pub async fn console_change_email(&self, account_id: &str, email: &str) {
        let input = json!({"AccountId": account_id, "PrimaryEmail": email});
        let mail = {
            let mut s = self.lock();
            match start_update(&mut s, account_id, &input) {
                Ok((_, mail)) => mail,
                Err(reply) => panic!("the console refused the change: {}", reply.body),
            }
        };
        if let Some(mail) = mail {
            self.deliver_now(mail).await;
        }
    }

    /// The person types the code in: the root email changes, and AWS writes
    /// to the new address. `false`: the console refused the code.
    pub async fn console_enter_code(&self, account_id: &str, email: &str, code: &str) -> bool {
        let input = json!({"AccountId": account_id, "PrimaryEmail": email, "Otp": code});
        let mail = {
            let mut s = self.lock();
            if accept_update(&mut s, account_id, &input).is_err() {
                return false;
            }
            let (ses_id, raw) = email_updated_mail(&mut s.rng, account_id, email);
            Outgoing {
                account_id: account_id.to_string(),
                to: email.to_string(),
                authentic: true,
                ses_id,
                raw,
            }
        };
        self.deliver_now(mail).await;
        true
    }

    /// Puts `mail` into the delivery bucket from the caller's runtime.
    async fn deliver_now(&self, mail: Outgoing) {
        let delivery = self.lock().delivery.clone();
        let key = match delivery {
            Some(d) => {
                let s3 = aws_sdk_s3::Client::from_conf(d.s3.config().clone());
                let key = format!("{}{}", d.prefix, mail.ses_id);
                s3.put_object()
                    .bucket(&d.bucket)
                    .key(&key)
                    .content_type("message/rfc822")
                    .body(mail.raw.clone().into())
                    .send()
                    .await
                    .expect("the console's mail is delivered");
                Some(key)
            }
            None => None,
        };
        self.lock().mails.push(SentMail {
            account_id: mail.account_id,
            to: mail.to,
            authentic: mail.authentic,
            key,
            delivery_error: None,
            raw: mail.raw,
        });
    }

    /// While on, verification mails fail DKIM and DMARC for the AWS sender domain,
    /// as a forged one would.
    pub fn fail_authentication(&self, on: bool) {
        self.lock().fail_authentication = on;
    }

    /// While on, GetPrimaryEmail answers the root email an account had
    /// before its last accepted change: AWS says a change "can take up to
    /// four hours to propagate everywhere", and GetPrimaryEmailUpdateStatus
    /// already says ACCEPTED.
    pub fn delay_propagation(&self, on: bool) {
        self.lock().lagging = on;
    }

    /// Creates the role `name` in every account: `sts:AssumeRole` of it
    /// gives a session allowed `iam:GetAccountSummary` (the provider's
    /// audit role in a payer).
    pub fn create_audit_role(&self, name: &str) {
        self.lock().audit_role = Some(name.to_string());
    }

    /// Takes `account_id` out of the organization (it left, or was never in
    /// it): the Account API no longer finds it.
    pub fn remove_account(&self, account_id: &str) {
        self.lock().accounts.remove(account_id);
    }

    /// Makes `account_id` the organization's management account, which the
    /// Account API refuses to change (a customer's payer is one of its own
    /// organization, and no member of ours).
    pub fn set_management_account(&self, account_id: &str) {
        self.lock().management = Some(account_id.to_string());
    }

    /// The next call of `operation` is carried out and answered with a 500,
    /// as if its answer were lost: the SDK then tries it again.
    pub fn lose_next_answer(&self, operation: &str) {
        self.lock().lose_answer_of = Some(operation.to_string());
    }

    /// Whether StartPrimaryEmailUpdate refuses a change while another one is
    /// pending (ConflictException) instead of replacing it.
    pub fn refuse_second_start(&self, on: bool) {
        self.lock().refuse_second_start = on;
    }

    /// Someone else (an operator by hand, whoever holds the management
    /// account) starts a root email change of the account to `email`, now.
    pub fn start_change_elsewhere(&self, account_id: &str, email: &str) {
        let mut inner = self.lock();
        let member = inner.accounts.get_mut(account_id).expect("known account");
        member.pending = Some(Pending {
            email: email.to_string(),
            otp: "Z9Z9Z9".into(),
            expires: SystemTime::now() + Duration::from_secs(86_400),
        });
        member.update_status = Some(("PENDING", crate::now_secs()));
    }

    /// GetPrimaryEmailUpdateStatus answers `status` stamped `at` (epoch
    /// seconds) from now on, as a read that lags shows an older change's.
    pub fn show_update_status(&self, account_id: &str, status: &'static str, at: u64) {
        let mut inner = self.lock();
        let member = inner.accounts.get_mut(account_id).expect("known account");
        member.update_status = Some((status, at));
    }

    /// Accepts the account's pending change with its own code, as AWS does
    /// for a request whose answer was then lost on the way back.
    pub fn accept_pending(&self, account_id: &str) {
        let mut state = self.lock();
        let pending = state.accounts[account_id]
            .pending
            .clone()
            .expect("a pending change");
        let input =
            json!({"AccountId": account_id, "PrimaryEmail": pending.email, "Otp": pending.otp});
        let accepted = accept_update(&mut state, account_id, &input).is_ok();
        assert!(accepted, "the fake accepts its own code");
    }

    /// How long a code stays valid (default 24 hours); applies to codes sent later.
    pub fn otp_lifetime(&self, lifetime: Duration) {
        self.lock().otp_lifetime = lifetime;
    }

    /// The code the next StartPrimaryEmailUpdate sends: any the Account API
    /// documents (`Otp`: `[a-zA-Z0-9]{6}`), lower case and letters alone too.
    pub fn send_next_code(&self, code: &str) {
        assert!(
            is_documented_otp(code),
            "{code:?} is no code AcceptPrimaryEmailUpdate takes"
        );
        self.lock().next_otp = Some(code.to_string());
    }

    /// The next code mail writes its code before its words ("kq3VzP is your
    /// AWS verification code."), a layout no rule reads.
    pub fn write_the_next_code_before_its_words(&self) {
        self.lock().next_code_before_its_words = true;
    }

    /// Makes every pending code expired.
    pub fn expire_otps(&self) {
        let past = SystemTime::now() - Duration::from_secs(1);
        for member in self.lock().accounts.values_mut() {
            if let Some(pending) = member.pending.as_mut() {
                pending.expires = past;
            }
        }
    }

    /// Makes every root session issued so far expired.
    pub fn expire_sessions(&self) {
        let past = SystemTime::now() - Duration::from_secs(1);
        for session in self.lock().sessions.values_mut() {
            session.expires = past;
        }
    }

    /// The last code sent for this account (for negative tests; the positive path
    /// reads it from the mail).
    pub fn last_otp(&self, account_id: &str) -> Option<String> {
        self.lock().accounts.get(account_id)?.last_otp.clone()
    }

    pub fn sent_mail(&self) -> Vec<SentMail> {
        self.lock().mails.clone()
    }

    /// Every request answered, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    pub fn root_credentials(&self, account_id: &str) -> Option<RootCredentials> {
        Some(self.lock().accounts.get(account_id)?.credentials())
    }

    pub fn primary_email(&self, account_id: &str) -> Option<String> {
        Some(self.lock().accounts.get(account_id)?.root_email.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("account fake state")
    }
}

// ---------------------------------------------------------------------------
// Requests and replies

/// What the SigV4 `Authorization` header says.
struct Signed {
    access_key: String,
    /// `date/region/service/aws4_request`
    scope: String,
    service: String,
    signed_headers: String,
    signature: String,
}

fn signed(request: &Received) -> Option<Signed> {
    let value = request.header("authorization")?;
    let rest = value.strip_prefix("AWS4-HMAC-SHA256")?.trim();
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (access_key, scope) = credential?.split_once('/')?;
    let service = scope.split('/').nth(2)?.to_string();
    Some(Signed {
        access_key: access_key.to_string(),
        scope: scope.to_string(),
        service,
        signed_headers: signed_headers?.to_string(),
        signature: signature?.to_string(),
    })
}

struct Reply {
    status: u16,
    content_type: &'static str,
    /// `x-amzn-ErrorType` (REST-JSON errors).
    error_type: Option<String>,
    body: String,
}

impl Reply {
    fn json(body: &Value) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            error_type: None,
            body: body.to_string(),
        }
    }

    /// A REST-JSON error as the Account API sends it: the code in
    /// `x-amzn-ErrorType`, the text in `message`.
    fn json_error(status: u16, code: &str, message: &str) -> Self {
        Self::json_error_body(status, code, json!({ "message": message }))
    }

    fn json_error_body(status: u16, code: &str, body: Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            error_type: Some(code.to_string()),
            body: body.to_string(),
        }
    }

    /// A query-protocol answer: `<{Op}Response><{Op}Result>inner</..>` plus metadata.
    fn xml(operation: &str, namespace: &str, result: Option<&str>, request_id: &str) -> Self {
        let result = result.map_or(String::new(), |inner| {
            format!("<{operation}Result>{inner}</{operation}Result>")
        });
        Self {
            status: 200,
            content_type: "text/xml",
            error_type: None,
            body: format!(
                "<{operation}Response xmlns=\"{namespace}\">{result}<ResponseMetadata>\
                 <RequestId>{request_id}</RequestId></ResponseMetadata></{operation}Response>"
            ),
        }
    }

    /// A query-protocol error (`ErrorResponse/Error/{Type,Code,Message}`).
    fn xml_error(
        status: u16,
        namespace: &str,
        code: &str,
        message: &str,
        request_id: &str,
    ) -> Self {
        let kind = if status >= 500 { "Receiver" } else { "Sender" };
        Self {
            status,
            content_type: "text/xml",
            error_type: None,
            body: format!(
                "<ErrorResponse xmlns=\"{namespace}\"><Error><Type>{kind}</Type>\
                 <Code>{code}</Code><Message>{}</Message></Error>\
                 <RequestId>{request_id}</RequestId></ErrorResponse>",
                xml_escape(message)
            ),
        }
    }
}

struct Handled {
    service: &'static str,
    operation: String,
    account: Option<String>,
    reply: Reply,
    mail: Option<Outgoing>,
}

async fn handle(
    extract::State(state): extract::State<Shared>,
    request: Received,
) -> rootmail_fake_http::Reply {
    let (request_id, handled) = {
        let mut s = state.lock().expect("account fake state");
        let request_id = request_id(&mut s.rng);
        let mut handled = route(&request, &mut s, &request_id);
        // Done, and its answer lost on the way back (a 500 after the fact).
        if handled.reply.status == 200
            && s.lose_answer_of.as_deref() == Some(handled.operation.as_str())
        {
            s.lose_answer_of = None;
            handled.reply = Reply::json_error(
                500,
                "InternalServerException",
                "An internal error occurred.",
            );
        }
        (request_id, handled)
    };
    if let Some(mail) = handled.mail {
        let delivery = state.lock().expect("account fake state").delivery.clone();
        let (key, delivery_error) = match delivery {
            Some(d) => {
                let key = format!("{}{}", d.prefix, mail.ses_id);
                let put =
                    d.s3.put_object()
                        .bucket(&d.bucket)
                        .key(&key)
                        .content_type("message/rfc822")
                        .body(mail.raw.clone().into())
                        .send()
                        .await;
                match put {
                    Ok(_) => (Some(key), None),
                    Err(e) => {
                        let why = format!("put s3://{}/{key}: {e:?}", d.bucket);
                        eprintln!("account fake: OTP delivery failed: {why}");
                        (None, Some(why))
                    }
                }
            }
            None => (None, None),
        };
        state
            .lock()
            .expect("account fake state")
            .mails
            .push(SentMail {
                account_id: mail.account_id,
                to: mail.to,
                authentic: mail.authentic,
                key,
                delivery_error,
                raw: mail.raw,
            });
    }
    state
        .lock()
        .expect("account fake state")
        .calls
        .push(FakeCall {
            service: handled.service,
            operation: handled.operation,
            account: handled.account,
            status: handled.reply.status,
        });
    let reply = handled.reply;
    let mut response = rootmail_fake_http::Reply::new(reply.status, reply.content_type, reply.body)
        .header("x-amzn-RequestId", &request_id);
    if let Some(code) = reply.error_type {
        response = response.header("x-amzn-ErrorType", &code);
    }
    response
}

fn route(request: &Received, s: &mut State, request_id: &str) -> Handled {
    let path = request.path.trim_end_matches('/');
    let account_operation = match path {
        "/startPrimaryEmailUpdate" => Some("StartPrimaryEmailUpdate"),
        "/acceptPrimaryEmailUpdate" => Some("AcceptPrimaryEmailUpdate"),
        "/getPrimaryEmail" => Some("GetPrimaryEmail"),
        "/getPrimaryEmailUpdateStatus" => Some("GetPrimaryEmailUpdateStatus"),
        _ => None,
    };
    if request.method != "POST" {
        return unknown(request, "unsupported method");
    }
    let root_session = signed(request).filter(|sig| s.sessions.contains_key(&sig.access_key));
    if let Some(operation) = account_operation {
        if let Some(sig) = root_session {
            // A root session acts inside its member account; the Account API's
            // member-account calls belong to the management account.
            let message = format!(
                "User with access key {} (a root session) is not authorized to perform: \
                 account:{operation}",
                sig.access_key
            );
            return Handled {
                service: "account",
                operation: operation.to_string(),
                account: None,
                reply: Reply::json_error(403, "AccessDeniedException", &message),
                mail: None,
            };
        }
        let (account, reply, mail) = account_api(s, operation, &body_text(request));
        return Handled {
            service: "account",
            operation: operation.to_string(),
            account,
            reply,
            mail,
        };
    }
    if !path.is_empty() {
        return unknown(request, "no such path");
    }
    let form = parse_form(&body_text(request));
    let action = form.get("Action").cloned().unwrap_or_default();
    let service = signed(request).map(|s| s.service);
    match (service.as_deref(), action.as_str()) {
        (Some("sts"), _) | (None, "AssumeRoot") => {
            let (account, reply) = if root_session.is_some() {
                let message = "You cannot use root user credentials to call sts:AssumeRoot.";
                let reply = Reply::xml_error(403, STS_NS, "AccessDenied", message, request_id);
                (None, reply)
            } else {
                sts(s, &action, &form, request_id)
            };
            Handled {
                service: "sts",
                operation: action,
                account,
                reply,
                mail: None,
            }
        }
        (Some("iam"), _) => {
            let (account, reply) = iam(s, request, &action, &form, request_id);
            Handled {
                service: "iam",
                operation: action,
                account,
                reply,
                mail: None,
            }
        }
        _ => unknown(request, "not an STS or IAM request"),
    }
}

fn unknown(request: &Received, why: &str) -> Handled {
    Handled {
        service: "unknown",
        operation: format!("{} {}", request.method, request.path),
        account: None,
        reply: Reply::json_error(
            404,
            "UnknownOperationException",
            &format!("the account fake does not serve this request: {why}"),
        ),
        mail: None,
    }
}

// ---------------------------------------------------------------------------
// Account API (REST-JSON)

fn validation(field: &str, message: &str) -> Reply {
    Reply::json_error_body(
        400,
        "ValidationException",
        json!({
            "message": format!("Invalid {field}: {message}"),
            "reason": "fieldValidationFailed",
            "fieldList": [{ "name": field, "message": message }],
        }),
    )
}

fn account_id_field(v: &Value) -> Result<String, Reply> {
    match v.get("AccountId").and_then(Value::as_str) {
        Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => Ok(id.to_string()),
        Some(_) => Err(validation("AccountId", "must match the pattern ^\\d{12}$")),
        None => Err(validation("AccountId", "is required")),
    }
}

fn email_field(v: &Value) -> Result<String, Reply> {
    let Some(email) = v.get("PrimaryEmail").and_then(Value::as_str) else {
        return Err(validation("PrimaryEmail", "is required"));
    };
    if !(5..=64).contains(&email.len()) {
        return Err(validation(
            "PrimaryEmail",
            "must have length between 5 and 64",
        ));
    }
    let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if !well_formed {
        return Err(validation("PrimaryEmail", "is not a valid email address"));
    }
    Ok(email.to_string())
}

fn not_found(account_id: &str) -> Reply {
    Reply::json_error(
        404,
        "ResourceNotFoundException",
        &format!("Account {account_id} was not found in the organization."),
    )
}

fn account_api(
    s: &mut State,
    operation: &str,
    body: &str,
) -> (Option<String>, Reply, Option<Outgoing>) {
    let Ok(input) = serde_json::from_str::<Value>(body) else {
        return (
            None,
            Reply::json_error(400, "SerializationException", "the body is not JSON"),
            None,
        );
    };
    let account_id = match account_id_field(&input) {
        Ok(id) => id,
        Err(reply) => return (None, reply, None),
    };
    let account = Some(account_id.clone());
    // AWS: "The management account can't specify its own AccountId."
    if s.management.as_deref() == Some(account_id.as_str()) {
        let refused = validation(
            "AccountId",
            "the management account can't specify its own AccountId",
        );
        return (account, refused, None);
    }
    let result = match operation {
        "StartPrimaryEmailUpdate" => start_update(s, &account_id, &input),
        "AcceptPrimaryEmailUpdate" => accept_update(s, &account_id, &input).map(|r| (r, None)),
        "GetPrimaryEmail" => match s.accounts.get(&account_id) {
            Some(m) => {
                let shown = match (&m.previous_email, s.lagging) {
                    (Some(previous), true) => previous,
                    _ => &m.root_email,
                };
                Ok((Reply::json(&json!({ "PrimaryEmail": shown })), None))
            }
            None => Err(not_found(&account_id)),
        },
        _ => update_status(s, &account_id).map(|r| (r, None)),
    };
    match result {
        Ok((reply, mail)) => (account, reply, mail),
        Err(reply) => (account, reply, None),
    }
}

fn email_in_use(s: &State, email: &str) -> bool {
    s.accounts
        .values()
        .any(|m| m.root_email.eq_ignore_ascii_case(email))
}

fn start_update(
    s: &mut State,
    account_id: &str,
    input: &Value,
) -> Result<(Reply, Option<Outgoing>), Reply> {
    let email = email_field(input)?;
    if !s.accounts.contains_key(account_id) {
        return Err(not_found(account_id));
    }
    if email_in_use(s, &email) {
        return Err(Reply::json_error(
            409,
            "ConflictException",
            "The email address is already in use by another AWS account.",
        ));
    }
    let pending = s.accounts[account_id]
        .pending
        .as_ref()
        .is_some_and(|p| p.expires > SystemTime::now());
    if s.refuse_second_start && pending {
        return Err(Reply::json_error(
            409,
            "ConflictException",
            "An update of the primary email address is already in progress.",
        ));
    }
    let otp = match s.next_otp.take() {
        Some(code) => code,
        None => format!("{:06}", s.rng.next_u64() % 1_000_000),
    };
    let lifetime = s.otp_lifetime;
    let authentic = !s.fail_authentication;
    let now = crate::now_secs();
    let code_line = match std::mem::take(&mut s.next_code_before_its_words) {
        true => format!("    {otp} is your AWS verification code."),
        false => format!("    Verification code: {otp}"),
    };
    let (ses_id, raw) = otp_mail(
        &mut s.rng, account_id, &email, &code_line, lifetime, authentic,
    );
    let member = s.accounts.get_mut(account_id).expect("checked above");
    member.pending = Some(Pending {
        email: email.clone(),
        otp: otp.clone(),
        expires: SystemTime::now() + lifetime,
    });
    member.last_otp = Some(otp);
    member.update_status = Some(("PENDING", now));
    let mail = Outgoing {
        account_id: account_id.to_string(),
        to: email,
        authentic,
        ses_id,
        raw,
    };
    Ok((Reply::json(&json!({ "Status": "PENDING" })), Some(mail)))
}

/// Whether `otp` has the shape AcceptPrimaryEmailUpdate documents for its
/// `Otp`: `[a-zA-Z0-9]{6}`.
fn is_documented_otp(otp: &str) -> bool {
    otp.len() == 6 && otp.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn accept_update(s: &mut State, account_id: &str, input: &Value) -> Result<Reply, Reply> {
    let email = email_field(input)?;
    let otp = match input.get("Otp").and_then(Value::as_str) {
        Some(otp) if is_documented_otp(otp) => otp,
        Some(_) => {
            return Err(validation("Otp", "must match the pattern ^[a-zA-Z0-9]{6}$"));
        }
        None => return Err(validation("Otp", "is required")),
    };
    let Some(member) = s.accounts.get(account_id) else {
        return Err(not_found(account_id));
    };
    let Some(pending) = member.pending.clone() else {
        return Err(Reply::json_error(
            404,
            "ResourceNotFoundException",
            &format!("No pending primary email update for account {account_id}."),
        ));
    };
    if !pending.email.eq_ignore_ascii_case(&email) {
        return Err(validation(
            "PrimaryEmail",
            "does not match the email address of the pending update",
        ));
    }
    if SystemTime::now() >= pending.expires {
        return Err(validation(
            "Otp",
            "the one-time password (OTP) has expired; start a new update",
        ));
    }
    if pending.otp != otp {
        return Err(validation("Otp", "the one-time password (OTP) is invalid"));
    }
    if email_in_use(s, &email) {
        return Err(Reply::json_error(
            409,
            "ConflictException",
            "The email address is already in use by another AWS account.",
        ));
    }
    let member = s.accounts.get_mut(account_id).expect("checked above");
    member.previous_email = Some(std::mem::replace(&mut member.root_email, pending.email));
    member.pending = None;
    member.update_status = Some(("ACCEPTED", crate::now_secs()));
    Ok(Reply::json(&json!({ "Status": "ACCEPTED" })))
}

fn update_status(s: &State, account_id: &str) -> Result<Reply, Reply> {
    let Some(member) = s.accounts.get(account_id) else {
        return Err(not_found(account_id));
    };
    match member.update_status {
        Some((status, at)) => Ok(Reply::json(&json!({ "Status": status, "UpdatedAt": at }))),
        None => Err(Reply::json_error(
            404,
            "ResourceNotFoundException",
            &format!("No primary email update for account {account_id}."),
        )),
    }
}

// ---------------------------------------------------------------------------
// The verification mail, as SES stores what AWS sends to the new address

fn otp_mail(
    rng: &mut XorShift,
    account_id: &str,
    to: &str,
    code_line: &str,
    lifetime: Duration,
    authentic: bool,
) -> (String, Vec<u8>) {
    let lifetime = describe(lifetime);
    let body = [
        "Hello,".to_string(),
        String::new(),
        "We received a request to change the email address of the root user of AWS".to_string(),
        format!("account {account_id} to this email address."),
        String::new(),
        "To verify this email address, enter the following verification code on the".to_string(),
        "AWS Management Console or pass it to the AcceptPrimaryEmailUpdate API:".to_string(),
        String::new(),
        code_line.to_string(),
        String::new(),
        format!("This code expires {lifetime} after it was sent. If you did not request this"),
        "change, you can ignore this email; the email address of the root user will not"
            .to_string(),
        "change unless the code is entered.".to_string(),
    ];
    let subject = "Verify your new AWS account root user email address";
    aws_mail(rng, to, subject, &body, authentic)
}

/// The notice AWS sends to the root address once a console change took effect.
fn email_updated_mail(rng: &mut XorShift, account_id: &str, to: &str) -> (String, Vec<u8>) {
    let body = [
        "Hello,".to_string(),
        String::new(),
        format!("The email address of the root user of AWS account {account_id} has been"),
        "updated. This is now the email address of the root user.".to_string(),
        String::new(),
        "If you did not make this change, contact AWS Support.".to_string(),
    ];
    let subject = "Your AWS account root user email address has been updated";
    aws_mail(rng, to, subject, &body, true)
}

/// A mail from AWS's sign-in domain as SES stores it: its headers, DKIM
/// signatures and verdicts (failing DKIM and DMARC when not `authentic`).
fn aws_mail(
    rng: &mut XorShift,
    to: &str,
    subject: &str,
    body: &[String],
    authentic: bool,
) -> (String, Vec<u8>) {
    let now = crate::now_secs();
    let sent = now.saturating_sub(18);
    let ses_id = lower_alnum(rng, 40);
    let envelope_from = format!(
        "0100{}-{}-000000@amazonses.com",
        hex_chars(rng, 12),
        uuid(rng)
    );
    let message_id = format!(
        "<0100{}-{}-000000@email.amazonses.com>",
        hex_chars(rng, 12),
        uuid(rng)
    );
    let (aws_dkim, dmarc) = if authentic {
        ("pass", "pass")
    } else {
        ("fail", "fail")
    };
    let received_at = mail_date(now, true);
    let date = mail_date(sent, false);
    let receipt = base64_chars(rng, 360);
    let ses_dkim_b = base64_chars(rng, 342);
    let ses_dkim_bh = base64_chars(rng, 43);
    let aws_sig = base64_chars(rng, 342);
    let aws_bh = base64_chars(rng, 43);
    let ses_sig = base64_chars(rng, 342);
    let ses_bh = base64_chars(rng, 43);
    let (sel1, sel2, sel3) = (
        lower_alnum(rng, 32),
        lower_alnum(rng, 32),
        lower_alnum(rng, 32),
    );
    let headers = [
        format!("Return-Path: <{envelope_from}>"),
        "Received: from a8-31.smtp-out.amazonses.com (a8-31.smtp-out.amazonses.com [54.240.8.31])"
            .to_string(),
        format!(" by inbound-smtp.us-east-1.amazonaws.com with SMTP id {ses_id}"),
        format!(" for {to};"),
        format!(" {received_at}"),
        "X-SES-Spam-Verdict: PASS".to_string(),
        "X-SES-Virus-Verdict: PASS".to_string(),
        format!(
            "Received-SPF: pass (spf=pass) client-ip=54.240.8.31; envelope-from={envelope_from}; helo=a8-31.smtp-out.amazonses.com;"
        ),
        "Authentication-Results: amazonses.com;".to_string(),
        format!(
            " spf=pass (spf=pass) client-ip=54.240.8.31; envelope-from={envelope_from}; helo=a8-31.smtp-out.amazonses.com;"
        ),
        format!(" dkim={aws_dkim} header.i=@verify.signin.aws;"),
        " dkim=pass header.i=@amazonses.com;".to_string(),
        format!(" dmarc={dmarc} header.from=verify.signin.aws;"),
        format!("X-SES-RECEIPT: {receipt}"),
        format!(
            "X-SES-DKIM-SIGNATURE: a=rsa-sha256; q=dns/txt; b={ses_dkim_b}; c=relaxed/simple; s={sel1}; d=amazonses.com; t={now}; v=1; bh={ses_dkim_bh}; h=From:To:Cc:Bcc:Subject:Date:Message-ID:MIME-Version:Content-Type:X-SES-RECEIPT;"
        ),
        "DKIM-Signature: v=1; a=rsa-sha256; q=dns/txt; c=relaxed/simple;".to_string(),
        format!("\ts={sel2}; d=verify.signin.aws; t={sent};"),
        "\th=From:To:Subject:Date:Message-ID:MIME-Version:Content-Type;".to_string(),
        format!("\tbh={aws_bh};"),
        format!("\tb={aws_sig}"),
        "DKIM-Signature: v=1; a=rsa-sha256; q=dns/txt; c=relaxed/simple;".to_string(),
        format!("\ts={sel3}; d=amazonses.com; t={sent};"),
        "\th=From:To:Subject:Date:Message-ID:MIME-Version:Content-Type;".to_string(),
        format!("\tbh={ses_bh};"),
        format!("\tb={ses_sig}"),
        format!("Date: {date}"),
        format!("From: Amazon Web Services <{AWS_OTP_SENDER}>"),
        format!("To: {to}"),
        format!("Message-ID: {message_id}"),
        format!("Subject: {subject}"),
        "MIME-Version: 1.0".to_string(),
        "Content-Type: text/plain; charset=UTF-8".to_string(),
        "Content-Transfer-Encoding: 7bit".to_string(),
    ];
    let body = [
        body.join("\r\n"),
        String::new(),
        "Sincerely,".to_string(),
        "Amazon Web Services".to_string(),
        String::new(),
        "Amazon Web Services, Inc. is a subsidiary of Amazon.com, Inc. Amazon.com is a".to_string(),
        "registered trademark of Amazon.com, Inc. This message was produced and distributed"
            .to_string(),
        "by Amazon Web Services Inc., 410 Terry Ave. North, Seattle, WA 98109-5210.".to_string(),
    ];
    let raw = format!("{}\r\n\r\n{}\r\n", headers.join("\r\n"), body.join("\r\n"));
    (ses_id, raw.into_bytes())
}

fn describe(lifetime: Duration) -> String {
    let secs = lifetime.as_secs().max(60);
    let (n, unit) = if secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else {
        (secs / 60, "minute")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// An RFC 5322 date, `Mon, 12 Jan 2026 09:41:07 +0000` (with ` (UTC)` as SES's
/// `Received` header writes it).
fn mail_date(secs: u64, utc_comment: bool) -> String {
    let http = DateTime::from_secs(i64::try_from(secs).unwrap_or(0))
        .fmt(DateTimeFormat::HttpDate)
        .expect("formattable date");
    let date = http.trim_end_matches(" GMT").to_string() + " +0000";
    if utc_comment { date + " (UTC)" } else { date }
}

fn iso8601(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DateTime::from_secs(i64::try_from(secs).unwrap_or(0))
        .fmt(DateTimeFormat::DateTime)
        .expect("formattable date")
}

// ---------------------------------------------------------------------------
// STS AssumeRoot (query protocol)

fn sts(
    s: &mut State,
    action: &str,
    form: &HashMap<String, String>,
    request_id: &str,
) -> (Option<String>, Reply) {
    let error = |status, code: &str, message: &str| {
        Reply::xml_error(status, STS_NS, code, message, request_id)
    };
    if action == "AssumeRole" {
        return assume_role(s, form, request_id);
    }
    if action != "AssumeRoot" {
        let message = format!("Could not find operation {action} for version 2011-06-15");
        return (None, error(400, "InvalidAction", &message));
    }
    let target = form.get("TargetPrincipal").cloned().unwrap_or_default();
    let account = (!target.is_empty()).then(|| target.clone());
    let policy_arn = form.get("TaskPolicyArn.arn").cloned().unwrap_or_default();
    let duration = match form.get("DurationSeconds") {
        None => MAX_ROOT_SESSION_SECS,
        Some(d) => match d.parse::<u64>() {
            Ok(d) if d <= MAX_ROOT_SESSION_SECS => d,
            _ => {
                let message = format!(
                    "1 validation error detected: Value '{d}' at 'durationSeconds' failed to \
                     satisfy constraint: Member must have value less than or equal to {MAX_ROOT_SESSION_SECS}"
                );
                return (account, error(400, "ValidationError", &message));
            }
        },
    };
    let policy = policy_arn
        .strip_prefix("arn:aws:iam::aws:policy/root-task/")
        .filter(|name| TASK_POLICIES.contains(name));
    let Some(policy) = policy else {
        let message = format!("TaskPolicyArn {policy_arn} is not a root task policy.");
        return (account, error(400, "ValidationError", &message));
    };
    // AWS gives root sessions in member accounts only, never the management
    // account's own (API_AssumeRoot).
    if !s.accounts.contains_key(&target) || s.management.as_deref() == Some(target.as_str()) {
        let message = format!(
            "User is not authorized to perform: sts:AssumeRoot on resource: {target}: \
             it is not a member account of the organization."
        );
        return (account, error(403, "AccessDenied", &message));
    }
    let credentials = new_session(s, &target, policy, duration);
    (
        account,
        Reply::xml("AssumeRoot", STS_NS, Some(&credentials), request_id),
    )
}

/// A session in `account` under `policy`, as STS's `<Credentials>` element.
fn new_session(s: &mut State, account: &str, policy: &str, duration: u64) -> String {
    let access_key = format!("ASIA{}", upper_alnum(&mut s.rng, 16));
    let secret = base64_chars(&mut s.rng, 40);
    let token = base64_chars(&mut s.rng, 256);
    let expires = SystemTime::now() + Duration::from_secs(duration);
    s.sessions.insert(
        access_key.clone(),
        Session {
            account: account.to_string(),
            policy: policy.to_string(),
            secret: secret.clone(),
            token: token.clone(),
            expires,
        },
    );
    format!(
        "<Credentials><AccessKeyId>{access_key}</AccessKeyId>\
         <SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken>\
         <Expiration>{}</Expiration></Credentials>",
        xml_escape(&secret),
        xml_escape(&token),
        iso8601(expires)
    )
}

/// `sts:AssumeRole` of the provider's audit role (see `create_audit_role`):
/// a session that may read IAM's account summary; any other role is
/// refused, as STS refuses a role whose trust policy does not name the caller.
fn assume_role(
    s: &mut State,
    form: &HashMap<String, String>,
    request_id: &str,
) -> (Option<String>, Reply) {
    let arn = form.get("RoleArn").cloned().unwrap_or_default();
    let parsed = arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split_once(":role/"));
    let account = parsed.map(|(account, _)| account.to_string());
    let known = parsed.is_some_and(|(account, name)| {
        s.audit_role.as_deref() == Some(name) && s.accounts.contains_key(account)
    });
    if !known {
        let message = format!(
            "User: arn:aws:sts::123456789012:assumed-role/rootmail-lifecycle is not authorized \
             to perform: sts:AssumeRole on resource: {arn}"
        );
        let reply = Reply::xml_error(403, STS_NS, "AccessDenied", &message, request_id);
        return (account, reply);
    }
    let target = account.clone().unwrap_or_default();
    let credentials = new_session(s, &target, AUDIT_ROLE_POLICY, 3600);
    let user = "<AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:rootmail</AssumedRoleId>\
                <Arn>arn:aws:sts::0:assumed-role/audit/rootmail</Arn></AssumedRoleUser>";
    let result = format!("{credentials}{user}");
    (
        account,
        Reply::xml("AssumeRole", STS_NS, Some(&result), request_id),
    )
}

// ---------------------------------------------------------------------------
// IAM as the root session (query protocol)

fn iam(
    s: &mut State,
    request: &Received,
    action: &str,
    form: &HashMap<String, String>,
    request_id: &str,
) -> (Option<String>, Reply) {
    let error = |status, code: &str, message: &str| {
        Reply::xml_error(status, IAM_NS, code, message, request_id)
    };
    let Some(sig) = signed(request) else {
        return (
            None,
            error(
                403,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
        );
    };
    let Some(session) = s.sessions.get(&sig.access_key).cloned() else {
        let message = format!(
            "User with access key {} is not authorized to perform: iam:{action}: only a root \
             session from sts:AssumeRoot may act on a member account's root user",
            sig.access_key
        );
        return (None, error(403, "AccessDenied", &message));
    };
    let account = Some(session.account.clone());
    if SystemTime::now() >= session.expires {
        let message = "The security token included in the request is expired";
        return (account, error(403, "ExpiredToken", message));
    }
    if request.header("x-amz-security-token") != Some(session.token.as_str()) {
        let message = "The security token included in the request is invalid.";
        return (account, error(403, "InvalidClientTokenId", message));
    }
    if !signature_matches(request, &sig, &session.secret) {
        let message = "The request signature we calculated does not match the signature you \
                       provided. Check your AWS Secret Access Key and signing method.";
        return (account, error(403, "SignatureDoesNotMatch", message));
    }
    let root_arn = format!("arn:aws:iam::{}:root", session.account);
    let denied = |why: &str| {
        let message = format!(
            "User: arn:aws:sts::{}:root is not authorized to perform: iam:{action} on \
             resource: {root_arn} because {why}",
            session.account
        );
        error(403, "AccessDenied", &message)
    };
    if !allowed(&session.policy, action) {
        let why = format!(
            "no session policy allows the iam:{action} action ({} is in effect)",
            session.policy
        );
        return (account, denied(&why));
    }
    if form.contains_key("UserName") {
        // A root session acts on its own root user; naming a user is acting on
        // an IAM user, which no root task policy allows.
        return (
            account,
            denied("a root task policy allows no action on IAM users"),
        );
    }
    let member = s
        .accounts
        .get_mut(&session.account)
        .expect("sessions are only issued for known accounts");
    let reply = iam_action(member, &session.account, action, form, request_id);
    (account, reply)
}

fn iam_action(
    member: &mut Member,
    account_id: &str,
    action: &str,
    form: &HashMap<String, String>,
    request_id: &str,
) -> Reply {
    let ok = |result: Option<&str>| Reply::xml(action, IAM_NS, result, request_id);
    let no_such =
        |message: &str| Reply::xml_error(404, IAM_NS, "NoSuchEntity", message, request_id);
    let stamp = |secs: u64| iso8601(UNIX_EPOCH + Duration::from_secs(secs));
    let login_profile = |created: u64, reset: bool| {
        format!(
            "<LoginProfile><UserName>{account_id}</UserName><CreateDate>{}</CreateDate>\
             <PasswordResetRequired>{reset}</PasswordResetRequired></LoginProfile>",
            stamp(created)
        )
    };
    let param = |name: &str| form.get(name).cloned().unwrap_or_default();
    match action {
        "GetAccountSummary" => {
            let flag = |on: bool| u8::from(on);
            let entries: String = [
                ("AccountMFAEnabled", flag(!member.mfa_devices.is_empty())),
                (
                    "AccountAccessKeysPresent",
                    flag(!member.access_keys.is_empty()),
                ),
                (
                    "AccountSigningCertificatesPresent",
                    flag(!member.certificates.is_empty()),
                ),
            ]
            .iter()
            .map(|(key, value)| format!("<entry><key>{key}</key><value>{value}</value></entry>"))
            .collect();
            ok(Some(&format!("<SummaryMap>{entries}</SummaryMap>")))
        }
        "GetLoginProfile" => match member.password {
            Some(created) => ok(Some(&login_profile(created, false))),
            None => no_such("Login Profile for User root cannot be found."),
        },
        "CreateLoginProfile" => {
            if member.password.is_some() {
                return Reply::xml_error(
                    409,
                    IAM_NS,
                    "EntityAlreadyExists",
                    "Login Profile for user root already exists.",
                    request_id,
                );
            }
            let created = crate::now_secs();
            member.password = Some(created);
            let reset = param("PasswordResetRequired") == "true";
            ok(Some(&login_profile(created, reset)))
        }
        "DeleteLoginProfile" => match member.password.take() {
            Some(_) => ok(None),
            None => no_such("Login Profile for User root cannot be found."),
        },
        "ListAccessKeys" => {
            let members: String = member
                .access_keys
                .iter()
                .map(|(id, created)| {
                    format!(
                        "<member><AccessKeyId>{id}</AccessKeyId><Status>Active</Status>\
                         <CreateDate>{}</CreateDate></member>",
                        stamp(*created)
                    )
                })
                .collect();
            ok(Some(&format!(
                "<AccessKeyMetadata>{members}</AccessKeyMetadata><IsTruncated>false</IsTruncated>"
            )))
        }
        "DeleteAccessKey" => {
            let id = param("AccessKeyId");
            remove(&mut member.access_keys, &id).map_or_else(
                || no_such(&format!("The Access Key with id {id} cannot be found.")),
                |()| ok(None),
            )
        }
        "ListSigningCertificates" => {
            let members: String = member
                .certificates
                .iter()
                .map(|(id, created)| {
                    format!(
                        "<member><UserName>{account_id}</UserName><CertificateId>{id}</CertificateId>\
                         <CertificateBody>-----BEGIN CERTIFICATE-----\nMIIBfake{id}\n-----END CERTIFICATE-----</CertificateBody>\
                         <Status>Active</Status><UploadDate>{}</UploadDate></member>",
                        stamp(*created)
                    )
                })
                .collect();
            ok(Some(&format!(
                "<Certificates>{members}</Certificates><IsTruncated>false</IsTruncated>"
            )))
        }
        "DeleteSigningCertificate" => {
            let id = param("CertificateId");
            remove(&mut member.certificates, &id).map_or_else(
                || no_such(&format!("The Certificate with id {id} cannot be found.")),
                |()| ok(None),
            )
        }
        "ListMFADevices" => {
            let members: String = member
                .mfa_devices
                .iter()
                .map(|(serial, enabled)| {
                    format!(
                        "<member><UserName>{account_id}</UserName><SerialNumber>{serial}</SerialNumber>\
                         <EnableDate>{}</EnableDate></member>",
                        stamp(*enabled)
                    )
                })
                .collect();
            ok(Some(&format!(
                "<MFADevices>{members}</MFADevices><IsTruncated>false</IsTruncated>"
            )))
        }
        "DeactivateMFADevice" => {
            let serial = param("SerialNumber");
            remove(&mut member.mfa_devices, &serial).map_or_else(
                || {
                    no_such(&format!(
                        "MFA Device with serial number {serial} does not exist."
                    ))
                },
                |()| ok(None),
            )
        }
        _ => Reply::xml_error(
            400,
            IAM_NS,
            "InvalidAction",
            &format!("the account fake does not implement iam:{action}"),
            request_id,
        ),
    }
}

fn remove(items: &mut Vec<(String, u64)>, id: &str) -> Option<()> {
    let index = items.iter().position(|(item, _)| item == id)?;
    items.remove(index);
    Some(())
}

/// Recomputes the SigV4 signature with the session's secret (computed here
/// independently of the SDK's signer) and compares it with the one sent.
fn signature_matches(request: &Received, sig: &Signed, secret: &str) -> bool {
    let Some(amz_date) = request.header("x-amz-date") else {
        return false;
    };
    let (path, query) = (
        request.path.as_str(),
        request.query.as_deref().unwrap_or_default(),
    );
    let mut query_pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    query_pairs.sort_unstable();
    let canonical_headers: String = sig
        .signed_headers
        .split(';')
        .map(|name| {
            let values: Vec<String> = request
                .headers
                .get_all(name)
                .iter()
                .map(|v| {
                    let v = String::from_utf8_lossy(v.as_bytes());
                    v.split_whitespace().collect::<Vec<_>>().join(" ")
                })
                .collect();
            format!("{name}:{}\n", values.join(","))
        })
        .collect();
    let payload_hash = match request.header("x-amz-content-sha256") {
        Some(h) => h.to_string(),
        None => sha256_hex(&request.body),
    };
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        request.method,
        if path.is_empty() { "/" } else { path },
        query_pairs.join("&"),
        sig.signed_headers
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        sig.scope,
        sha256_hex(canonical_request.as_bytes())
    );
    let mut parts = sig.scope.split('/');
    let (Some(date), Some(region), Some(service)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let key = hmac_sha256(&key, region.as_bytes());
    let key = hmac_sha256(&key, service.as_bytes());
    let key = hmac_sha256(&key, b"aws4_request");
    hex::encode(hmac_sha256(&key, string_to_sign.as_bytes())) == sig.signature
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

// ---------------------------------------------------------------------------
// Small helpers

fn parse_form(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn body_text(request: &Received) -> String {
    String::from_utf8_lossy(&request.body).into_owned()
}

fn chars_from(rng: &mut XorShift, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| {
            let i = (rng.next_u64() % alphabet.len() as u64) as usize;
            char::from(alphabet[i])
        })
        .collect()
}

fn upper_alnum(rng: &mut XorShift, n: usize) -> String {
    chars_from(rng, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", n)
}

fn lower_alnum(rng: &mut XorShift, n: usize) -> String {
    chars_from(rng, b"abcdefghijklmnopqrstuvwxyz0123456789", n)
}

fn hex_chars(rng: &mut XorShift, n: usize) -> String {
    chars_from(rng, b"0123456789abcdef", n)
}

fn base64_chars(rng: &mut XorShift, n: usize) -> String {
    chars_from(
        rng,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        n,
    )
}

fn uuid(rng: &mut XorShift) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex_chars(rng, 8),
        hex_chars(rng, 4),
        hex_chars(rng, 4),
        hex_chars(rng, 4),
        hex_chars(rng, 12)
    )
}

fn request_id(rng: &mut XorShift) -> String {
    uuid(rng)
}

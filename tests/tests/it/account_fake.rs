//! The Account/STS/IAM fake, driven only through the real SDK clients, with the
//! verification mail delivered into moto's S3 and read back by rootmail's triage.
//! Run under `scripts/with-moto`.

use aws_config::SdkConfig;
use aws_sdk_account::operation::accept_primary_email_update::AcceptPrimaryEmailUpdateError;
use aws_sdk_account::operation::start_primary_email_update::StartPrimaryEmailUpdateError;
use aws_sdk_account::types::PrimaryEmailUpdateStatus;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::types::PolicyDescriptorType;
use rootmail_domain::{
    Account, AccountId, AccountStatus, EmailAddress, InMemoryDirectory, Kind, SecretKind,
};
use rootmail_tests::account_fake::{AccountFake, RootCredentials, task_policy_arn};
use rootmail_tests::aws::{sdk_config, unique};
use std::time::Duration;

const MEMBER: &str = "555566667777";
const OTHER: &str = "666677778888";
const OLD_ROOT: &str = "root+old1@root.example-msp.com";
const NEW_ROOT: &str = "root+n3w7k2q9@root.example-msp.com";

fn account_client(cfg: &SdkConfig) -> aws_sdk_account::Client {
    aws_sdk_account::Client::new(cfg)
}

fn sts_client(cfg: &SdkConfig) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(cfg)
}

/// An IAM client signing with a root session's temporary credentials.
fn root_iam(cfg: &SdkConfig, creds: &aws_sdk_sts::types::Credentials) -> aws_sdk_iam::Client {
    let credentials = aws_sdk_iam::config::Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        Some(creds.session_token().to_string()),
        None,
        "assume-root",
    );
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(cfg)
            .credentials_provider(credentials)
            .build(),
    )
}

async fn assume_root(
    cfg: &SdkConfig,
    account: &str,
    policy: &str,
) -> aws_sdk_sts::types::Credentials {
    sts_client(cfg)
        .assume_root()
        .target_principal(account)
        .task_policy_arn(
            PolicyDescriptorType::builder()
                .arn(task_policy_arn(policy))
                .build(),
        )
        .duration_seconds(900)
        .send()
        .await
        .unwrap_or_else(|e| panic!("AssumeRoot {policy}: {e:?}"))
        .credentials
        .expect("AssumeRoot returns credentials")
}

fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<String> {
    err.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .map(str::to_string)
}

/// A fresh bucket in moto that the fake delivers verification mail into.
async fn mail_bucket(fake: &AccountFake) -> (aws_sdk_s3::Client, String) {
    let s3 = rootmail_aws::s3_sdk_client(&sdk_config().await);
    let bucket = unique("otp-mail");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    fake.deliver_to(&s3, &bucket, "inbound/");
    (s3, bucket)
}

/// Every object under `inbound/`, as (key, bytes).
async fn delivered(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, Vec<u8>)> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("inbound/")
        .send()
        .await
        .expect("list objects");
    let mut out = Vec::new();
    for object in listed.contents() {
        let key = object.key().expect("key").to_string();
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .expect("get object")
            .body
            .collect()
            .await
            .expect("object body")
            .into_bytes()
            .to_vec();
        out.push((key, body));
    }
    out
}

/// rootmail's triage of a delivered mail, with a directory that knows the new
/// root address as the member account being onboarded.
fn triage(raw: &[u8], key: &str) -> rootmail_domain::Triage {
    let directory = InMemoryDirectory::new([Account {
        root_email: EmailAddress::parse(NEW_ROOT).expect("address"),
        account_id: AccountId::parse(MEMBER).expect("account id"),
        customer: "Stark Logistics".to_string(),
        status: AccountStatus::Onboarding,
        payer: None,
    }])
    .expect("directory");
    let rules = rootmail_domain::Rules::built_in();
    let ctx = rootmail_domain::Context {
        directory: &directory,
        rules: &rules,
        known_threads: &rootmail_domain::NoKnownThreads,
        rotations: &rootmail_domain::NoRotations,
    };
    rootmail_domain::triage(
        &rootmail_domain::MailInput {
            raw,
            origin: key,
            object_name: key.rsplit('/').next(),
        },
        &ctx,
    )
}

fn full_credentials() -> RootCredentials {
    RootCredentials {
        password: true,
        access_keys: 2,
        signing_certificates: 1,
        mfa_devices: 1,
    }
}

#[tokio::test]
async fn the_code_arrives_as_aws_mail_that_triage_trusts_and_it_changes_the_root_email() {
    let fake = AccountFake::start();
    fake.add_account(MEMBER, OLD_ROOT, RootCredentials::none());
    let (s3, bucket) = mail_bucket(&fake).await;
    let cfg = fake.sdk_config().await;
    let account = account_client(&cfg);

    let started = account
        .start_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT)
        .send()
        .await
        .expect("StartPrimaryEmailUpdate");
    assert_eq!(started.status(), Some(&PrimaryEmailUpdateStatus::Pending));

    let mails = delivered(&s3, &bucket).await;
    assert_eq!(mails.len(), 1, "one verification mail in the bucket");
    let (key, raw) = &mails[0];
    let parsed = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("the mail parses");
    let to = parsed
        .to()
        .and_then(|to| to.first())
        .and_then(|a| a.address())
        .expect("To address");
    assert_eq!(to, NEW_ROOT);
    let text = parsed.body_text(0).expect("text body");

    let triaged = triage(raw, key);
    assert_eq!(triaged.kind, Kind::RootEmailOtp);
    assert!(
        triaged.authentication.verified,
        "{:?}",
        triaged.authentication
    );
    assert!(triaged.authentication.aws_sender);
    assert_eq!(
        triaged.account_id.as_ref().map(AccountId::as_str),
        Some(MEMBER)
    );
    let code = triaged
        .secrets
        .iter()
        .find(|s| s.kind == SecretKind::VerificationCode)
        .map(|s| s.value.expose().to_string())
        .expect("triage finds the verification code");
    assert!(text.contains(&format!("Verification code: {code}")));
    assert_eq!(code.len(), 6);

    // Before the code is accepted nothing changes.
    let before = account
        .get_primary_email()
        .account_id(MEMBER)
        .send()
        .await
        .expect("GetPrimaryEmail");
    assert_eq!(before.primary_email(), Some(OLD_ROOT));

    let accepted = account
        .accept_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT)
        .otp(&code)
        .send()
        .await
        .expect("AcceptPrimaryEmailUpdate with the mailed code");
    assert_eq!(accepted.status(), Some(&PrimaryEmailUpdateStatus::Accepted));
    let after = account
        .get_primary_email()
        .account_id(MEMBER)
        .send()
        .await
        .expect("GetPrimaryEmail");
    assert_eq!(after.primary_email(), Some(NEW_ROOT));
    assert_eq!(fake.primary_email(MEMBER).as_deref(), Some(NEW_ROOT));
    let status = account
        .get_primary_email_update_status()
        .account_id(MEMBER)
        .send()
        .await
        .expect("GetPrimaryEmailUpdateStatus");
    assert_eq!(status.status(), &PrimaryEmailUpdateStatus::Accepted);

    // The same code cannot be used twice.
    let again = account
        .accept_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT)
        .otp(&code)
        .send()
        .await
        .expect_err("no pending update any more");
    assert!(
        again.into_service_error().is_resource_not_found_exception(),
        "a consumed code finds no pending update"
    );

    let calls = fake.calls();
    let operations: Vec<(&str, &str)> = calls
        .iter()
        .take(3)
        .map(|c| (c.service, c.operation.as_str()))
        .collect();
    assert_eq!(
        operations,
        [
            ("account", "StartPrimaryEmailUpdate"),
            ("account", "GetPrimaryEmail"),
            ("account", "AcceptPrimaryEmailUpdate"),
        ]
    );
    assert!(calls.iter().all(|c| c.account.as_deref() == Some(MEMBER)));
}

#[tokio::test]
async fn a_wrong_or_expired_code_is_refused_and_changes_nothing() {
    let fake = AccountFake::start();
    fake.add_account(MEMBER, OLD_ROOT, RootCredentials::none());
    fake.add_account(
        OTHER,
        "root+other@root.example-msp.com",
        RootCredentials::none(),
    );
    let cfg = fake.sdk_config().await;
    let account = account_client(&cfg);
    account
        .start_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT)
        .send()
        .await
        .expect("StartPrimaryEmailUpdate");
    let right = fake.last_otp(MEMBER).expect("a code was sent");
    // Kept in memory when no bucket is configured.
    assert_eq!(fake.sent_mail().len(), 1);
    assert_eq!(fake.sent_mail()[0].key, None);

    let wrong: String = right
        .chars()
        .map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10))
        .collect();
    let err = account
        .accept_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT)
        .otp(&wrong)
        .send()
        .await
        .expect_err("a wrong code is refused");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    match err.into_service_error() {
        AcceptPrimaryEmailUpdateError::ValidationException(e) => {
            assert!(e.message().contains("OTP"), "{e:?}");
            assert_eq!(e.field_list()[0].name(), "Otp");
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }
    assert_eq!(fake.primary_email(MEMBER).as_deref(), Some(OLD_ROOT));

    // The right code for a different address is refused too.
    let err = account
        .accept_primary_email_update()
        .account_id(MEMBER)
        .primary_email("root+someone-else@root.example-msp.com")
        .otp(&right)
        .send()
        .await
        .expect_err("the code belongs to another address");
    assert!(err.into_service_error().is_validation_exception());

    fake.expire_otps();
    let err = account
        .accept_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT)
        .otp(&right)
        .send()
        .await
        .expect_err("an expired code is refused");
    match err.into_service_error() {
        AcceptPrimaryEmailUpdateError::ValidationException(e) => {
            assert!(e.message().contains("expired"), "{e:?}");
        }
        other => panic!("expected ValidationException, got {other:?}"),
    }
    assert_eq!(fake.primary_email(MEMBER).as_deref(), Some(OLD_ROOT));

    // No update was started for the other account.
    let err = account
        .accept_primary_email_update()
        .account_id(OTHER)
        .primary_email(NEW_ROOT)
        .otp(&right)
        .send()
        .await
        .expect_err("nothing pending");
    assert!(err.into_service_error().is_resource_not_found_exception());
    assert_eq!(
        fake.primary_email(OTHER).as_deref(),
        Some("root+other@root.example-msp.com")
    );

    // A fresh start with a short lifetime sends a new code that works.
    fake.otp_lifetime(Duration::from_secs(1800));
    account
        .start_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT)
        .send()
        .await
        .expect("StartPrimaryEmailUpdate again");
    let fresh = fake.last_otp(MEMBER).expect("a new code");
    let mail = String::from_utf8(fake.sent_mail()[1].raw.clone()).expect("utf-8 mail");
    assert!(mail.contains("expires 30 minutes after"), "{mail}");
    account
        .accept_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT)
        .otp(&fresh)
        .send()
        .await
        .expect("the fresh code is accepted");
    assert_eq!(fake.primary_email(MEMBER).as_deref(), Some(NEW_ROOT));
}

#[tokio::test]
async fn an_address_in_use_an_unknown_account_and_a_bad_address_are_refused() {
    let fake = AccountFake::start();
    fake.add_account(MEMBER, OLD_ROOT, RootCredentials::none());
    fake.add_account(OTHER, NEW_ROOT, RootCredentials::none());
    let cfg = fake.sdk_config().await;
    let account = account_client(&cfg);

    let err = account
        .start_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT.to_uppercase())
        .send()
        .await
        .expect_err("the address is another account's root email");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(409));
    match err.into_service_error() {
        StartPrimaryEmailUpdateError::ConflictException(e) => {
            assert_eq!(e.error_type(), Some("ConflictException"));
            assert!(e.message().contains("in use"), "{e:?}");
        }
        other => panic!("expected ConflictException, got {other:?}"),
    }

    let err = account
        .start_primary_email_update()
        .account_id("999988887777")
        .primary_email("root+fresh@root.example-msp.com")
        .send()
        .await
        .expect_err("no such member account");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    assert!(err.into_service_error().is_resource_not_found_exception());

    for bad in ["not-an-email", "a@b", "root @root.example-msp.com"] {
        let err = account
            .start_primary_email_update()
            .account_id(MEMBER)
            .primary_email(bad)
            .send()
            .await
            .expect_err("a malformed address");
        assert!(
            err.into_service_error().is_validation_exception(),
            "{bad} is refused as invalid"
        );
    }

    assert!(
        fake.sent_mail().is_empty(),
        "no refused request sent a code"
    );
    assert_eq!(fake.last_otp(MEMBER), None);
    assert_eq!(fake.primary_email(MEMBER).as_deref(), Some(OLD_ROOT));
    assert_eq!(fake.primary_email(OTHER).as_deref(), Some(NEW_ROOT));
}

#[tokio::test]
async fn a_delete_session_removes_every_root_credential() {
    let fake = AccountFake::start();
    fake.add_account(MEMBER, OLD_ROOT, full_credentials());
    fake.add_account(OTHER, NEW_ROOT, full_credentials());
    let cfg = fake.sdk_config().await;

    let creds = assume_root(&cfg, MEMBER, "IAMDeleteRootUserCredentials").await;
    assert!(creds.access_key_id().starts_with("ASIA"));
    let expires = creds.expiration().secs();
    let now = i64::try_from(rootmail_tests::now_secs()).expect("time");
    assert!(
        (now + 850..=now + 910).contains(&expires),
        "a 900 s session"
    );
    let iam = root_iam(&cfg, &creds);

    let profile = iam
        .get_login_profile()
        .send()
        .await
        .expect("GetLoginProfile");
    assert!(profile.login_profile().is_some());
    iam.delete_login_profile()
        .send()
        .await
        .expect("DeleteLoginProfile");
    let keys = iam.list_access_keys().send().await.expect("ListAccessKeys");
    assert_eq!(keys.access_key_metadata().len(), 2);
    for key in keys.access_key_metadata() {
        iam.delete_access_key()
            .access_key_id(key.access_key_id().expect("key id"))
            .send()
            .await
            .expect("DeleteAccessKey");
    }
    let certificates = iam
        .list_signing_certificates()
        .send()
        .await
        .expect("ListSigningCertificates");
    assert_eq!(certificates.certificates().len(), 1);
    for certificate in certificates.certificates() {
        iam.delete_signing_certificate()
            .certificate_id(certificate.certificate_id())
            .send()
            .await
            .expect("DeleteSigningCertificate");
    }
    let devices = iam.list_mfa_devices().send().await.expect("ListMFADevices");
    assert_eq!(devices.mfa_devices().len(), 1);
    for device in devices.mfa_devices() {
        iam.deactivate_mfa_device()
            .serial_number(device.serial_number())
            .send()
            .await
            .expect("DeactivateMFADevice");
    }
    let err = iam
        .delete_access_key()
        .access_key_id("AKIAIOSFODNN7EXAMPLE")
        .send()
        .await
        .expect_err("no such key");
    assert_eq!(error_code(&err).as_deref(), Some("NoSuchEntity"));

    // A separate audit session sees nothing left.
    let audit = root_iam(
        &cfg,
        &assume_root(&cfg, MEMBER, "IAMAuditRootUserCredentials").await,
    );
    let err = audit
        .get_login_profile()
        .send()
        .await
        .expect_err("no password any more");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    assert!(err.into_service_error().is_no_such_entity_exception());
    let keys = audit
        .list_access_keys()
        .send()
        .await
        .expect("ListAccessKeys");
    assert!(keys.access_key_metadata().is_empty());
    let certificates = audit
        .list_signing_certificates()
        .send()
        .await
        .expect("ListSigningCertificates");
    assert!(certificates.certificates().is_empty());
    let devices = audit
        .list_mfa_devices()
        .send()
        .await
        .expect("ListMFADevices");
    assert!(devices.mfa_devices().is_empty());

    assert!(fake.root_credentials(MEMBER).expect("member").is_none());
    assert_eq!(
        fake.root_credentials(OTHER),
        Some(full_credentials()),
        "the session touched only its own account"
    );
    let calls = fake.calls();
    assert_eq!(calls[0].service, "sts");
    assert_eq!(calls[0].operation, "AssumeRoot");
    assert_eq!(calls[0].account.as_deref(), Some(MEMBER));
    let deletes = calls
        .iter()
        .filter(|c| c.service == "iam" && c.status == 200)
        .filter(|c| c.operation.starts_with("Delete") || c.operation.starts_with("Deactivate"))
        .count();
    assert_eq!(
        deletes, 5,
        "password, two keys, a certificate, an MFA device"
    );
}

#[tokio::test]
async fn an_audit_session_cannot_delete_and_other_keys_cannot_act_as_root() {
    let fake = AccountFake::start();
    fake.add_account(MEMBER, OLD_ROOT, full_credentials());
    let cfg = fake.sdk_config().await;

    let audit_creds = assume_root(&cfg, MEMBER, "IAMAuditRootUserCredentials").await;
    let audit = root_iam(&cfg, &audit_creds);
    let keys = audit
        .list_access_keys()
        .send()
        .await
        .expect("ListAccessKeys");
    assert_eq!(keys.access_key_metadata().len(), 2);
    let key = keys.access_key_metadata()[0]
        .access_key_id()
        .expect("key id")
        .to_string();
    let err = audit
        .delete_access_key()
        .access_key_id(&key)
        .send()
        .await
        .expect_err("the audit policy allows no delete");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let err = audit
        .delete_login_profile()
        .send()
        .await
        .expect_err("the audit policy allows no delete");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));
    let err = audit
        .create_login_profile()
        .send()
        .await
        .expect_err("nor a password");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));
    let err = audit
        .list_access_keys()
        .user_name("admin")
        .send()
        .await
        .expect_err("a root session acts on the root user only");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));

    // A root session cannot use the Account API or start another root session.
    let root_credentials = aws_sdk_iam::config::Credentials::new(
        audit_creds.access_key_id(),
        audit_creds.secret_access_key(),
        Some(audit_creds.session_token().to_string()),
        None,
        "assume-root",
    );
    let err = aws_sdk_account::Client::from_conf(
        aws_sdk_account::config::Builder::from(&cfg)
            .credentials_provider(root_credentials.clone())
            .build(),
    )
    .get_primary_email()
    .account_id(MEMBER)
    .send()
    .await
    .expect_err("a root session is not the management account");
    assert!(err.into_service_error().is_access_denied_exception());
    let err = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&cfg)
            .credentials_provider(root_credentials)
            .build(),
    )
    .assume_root()
    .target_principal(MEMBER)
    .task_policy_arn(
        PolicyDescriptorType::builder()
            .arn(task_policy_arn("IAMDeleteRootUserCredentials"))
            .build(),
    )
    .send()
    .await
    .expect_err("root credentials cannot call AssumeRoot");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));

    // The management account's own key is not a root session.
    let err = aws_sdk_iam::Client::new(&cfg)
        .list_access_keys()
        .send()
        .await
        .expect_err("not a root session");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));

    // The right key id with the wrong secret fails the signature check.
    let forged = aws_sdk_sts::types::Credentials::builder()
        .access_key_id(audit_creds.access_key_id())
        .secret_access_key("not-the-secret")
        .session_token(audit_creds.session_token())
        .expiration(*audit_creds.expiration())
        .build()
        .expect("credentials");
    let err = root_iam(&cfg, &forged)
        .list_access_keys()
        .send()
        .await
        .expect_err("wrong secret");
    assert_eq!(error_code(&err).as_deref(), Some("SignatureDoesNotMatch"));

    fake.expire_sessions();
    let err = audit
        .list_access_keys()
        .send()
        .await
        .expect_err("the session is over");
    assert_eq!(error_code(&err).as_deref(), Some("ExpiredToken"));

    assert_eq!(fake.root_credentials(MEMBER), Some(full_credentials()));
}

#[tokio::test]
async fn assume_root_refuses_long_sessions_unknown_policies_and_unknown_accounts() {
    let fake = AccountFake::start();
    fake.add_account(MEMBER, OLD_ROOT, full_credentials());
    let cfg = fake.sdk_config().await;
    let sts = sts_client(&cfg);
    let policy = |name: &str| {
        PolicyDescriptorType::builder()
            .arn(task_policy_arn(name))
            .build()
    };

    let err = sts
        .assume_root()
        .target_principal(MEMBER)
        .task_policy_arn(policy("IAMDeleteRootUserCredentials"))
        .duration_seconds(3600)
        .send()
        .await
        .expect_err("longer than 900 s");
    assert_eq!(error_code(&err).as_deref(), Some("ValidationError"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));

    let err = sts
        .assume_root()
        .target_principal(MEMBER)
        .task_policy_arn(
            PolicyDescriptorType::builder()
                .arn("arn:aws:iam::aws:policy/AdministratorAccess")
                .build(),
        )
        .send()
        .await
        .expect_err("not a root task policy");
    assert_eq!(error_code(&err).as_deref(), Some("ValidationError"));

    let err = sts
        .assume_root()
        .target_principal("999988887777")
        .task_policy_arn(policy("IAMAuditRootUserCredentials"))
        .send()
        .await
        .expect_err("not a member account");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));

    // The password task: create, then read; no delete.
    fake.add_account(OTHER, NEW_ROOT, RootCredentials::none());
    let create = root_iam(
        &cfg,
        &assume_root(&cfg, OTHER, "IAMCreateRootUserPassword").await,
    );
    let created = create
        .create_login_profile()
        .send()
        .await
        .expect("CreateLoginProfile");
    assert!(created.login_profile().is_some());
    create
        .get_login_profile()
        .send()
        .await
        .expect("GetLoginProfile");
    let err = create
        .create_login_profile()
        .send()
        .await
        .expect_err("already has one");
    assert!(
        err.into_service_error()
            .is_entity_already_exists_exception()
    );
    let err = create
        .delete_login_profile()
        .send()
        .await
        .expect_err("the password task cannot delete");
    assert_eq!(error_code(&err).as_deref(), Some("AccessDenied"));
    assert_eq!(
        fake.root_credentials(OTHER),
        Some(RootCredentials {
            password: true,
            ..RootCredentials::none()
        })
    );
}

#[tokio::test]
async fn a_code_mail_that_fails_authentication_is_not_trusted() {
    let fake = AccountFake::start();
    fake.add_account(MEMBER, OLD_ROOT, RootCredentials::none());
    let (s3, bucket) = mail_bucket(&fake).await;
    fake.fail_authentication(true);
    let cfg = fake.sdk_config().await;
    account_client(&cfg)
        .start_primary_email_update()
        .account_id(MEMBER)
        .primary_email(NEW_ROOT)
        .send()
        .await
        .expect("StartPrimaryEmailUpdate");

    let mails = delivered(&s3, &bucket).await;
    assert_eq!(mails.len(), 1);
    let (key, raw) = &mails[0];
    let sent = fake.sent_mail();
    assert!(!sent[0].authentic);
    assert_eq!(sent[0].key.as_deref(), Some(key.as_str()));

    let triaged = triage(raw, key);
    assert!(
        !triaged.authentication.verified,
        "{:?}",
        triaged.authentication
    );
    assert_eq!(triaged.authentication.dmarc.as_deref(), Some("fail"));
    assert_eq!(
        triaged.kind,
        Kind::PhishingSuspected,
        "{:?}",
        triaged.warnings
    );
}

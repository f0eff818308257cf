//! The Lambdas' S3 client (`rootmail_aws::s3`, no SDK) and the SDK clients'
//! HTTP client (reqwest, `rootmail_aws::https_client`) against a moto that
//! checks every request's SigV4 signature with botocore's signers and the
//! caller's IAM policy, as AWS does: its own moto, since turning
//! authentication on would refuse the other tests' dummy credentials.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use rootmail_aws::s3::{Got, S3Client};
use rootmail_tests::aws::unique;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A moto server of this test's own, stopped when dropped.
struct OwnMoto {
    child: Child,
    endpoint: String,
}

impl OwnMoto {
    async fn start() -> Self {
        rootmail_tickets::http::install_crypto_provider();
        let server = rootmail_tests::workspace_root().join(".venv/bin/moto_server");
        assert!(
            server.exists(),
            "{} is missing: run scripts/setup-test-env (make test does)",
            server.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Self { child, endpoint };
        for _ in 0..150 {
            if reqwest::get(format!("{}/moto-api/", moto.endpoint))
                .await
                .is_ok()
            {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("moto did not answer at {}", moto.endpoint);
    }

    fn config(&self, credentials: Credentials) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(rootmail_aws::https_client())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
            )
            .build()
    }

    /// Moto's default dummy credentials, for setting up before signatures
    /// are required.
    fn setup_config(&self) -> SdkConfig {
        self.config(Credentials::new("testing", "testing", None, None, "setup"))
    }

    /// From now on every request must be signed by a key moto's IAM knows,
    /// and allowed by its user's policy.
    async fn require_signatures(&self) {
        let answer = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            .body("0")
            .send()
            .await
            .expect("moto's reset-auth");
        assert!(answer.status().is_success(), "{answer:?}");
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An IAM user's access key.
struct Key {
    id: String,
    secret: String,
}

/// A new IAM user allowed what `policy` allows, and its access key.
async fn user_allowed(setup: &SdkConfig, policy: &str) -> Key {
    let iam = aws_sdk_iam::Client::new(setup);
    let user = unique("rootmail");
    iam.create_user().user_name(&user).send().await.unwrap();
    iam.put_user_policy()
        .user_name(&user)
        .policy_name("allowed")
        .policy_document(policy)
        .send()
        .await
        .unwrap();
    let created = iam
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    let key = created.access_key().unwrap();
    Key {
        id: key.access_key_id().to_string(),
        secret: key.secret_access_key().to_string(),
    }
}

/// A KMS key made with the set-up credentials (no signature checked yet).
async fn new_kms_key(setup: &SdkConfig) -> aws_sdk_kms::types::KeyMetadata {
    aws_sdk_kms::Client::new(setup)
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
}

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObjectTagging","s3:GetObjectTagging"],"Resource":"*"}]}"#;

#[tokio::test]
async fn the_lambdas_s3_requests_carry_signatures_s3_accepts() {
    let moto = OwnMoto::start().await;
    let setup = moto.setup_config();
    let s3 = rootmail_aws::s3_sdk_client(&setup);
    let key = user_allowed(&setup, POLICY).await;
    let bucket = unique("mail");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    // Bytes that need percent-encoding: the signature covers the encoded path.
    let object = "inbound/a message+id=1 é~(2)";
    let raw = b"From: no-reply@aws.amazon.com\r\nSubject: test\r\n\r\nbody\r\n".to_vec();
    s3.put_object()
        .bucket(&bucket)
        .key(object)
        .body(raw.clone().into())
        .send()
        .await
        .unwrap();

    moto.require_signatures().await;
    let signed_by = |secret: &str| {
        let credentials = Credentials::new(&key.id, secret, None, None, "test");
        S3Client::new(&moto.config(credentials)).unwrap()
    };
    let client = signed_by(&key.secret);

    match client.get_object(&bucket, object, 1 << 20).await.unwrap() {
        Got::Object(got) => assert_eq!(got, raw),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        client
            .get_object(&bucket, "inbound/none", 1 << 20)
            .await
            .unwrap(),
        Got::Missing
    ));
    assert!(matches!(
        client.get_object(&bucket, object, 10).await.unwrap(),
        Got::TooLarge(n) if n == raw.len() as u64
    ));
    client
        .put_object_tagging(&bucket, object, &[(rootmail_aws::SEALED_TAG, "true")])
        .await
        .unwrap();

    // The tag is there, read back by the SDK signing with the same key.
    let checked = moto.config(Credentials::new(&key.id, &key.secret, None, None, "check"));
    let tags = rootmail_aws::s3_sdk_client(&checked)
        .get_object_tagging()
        .bucket(&bucket)
        .key(object)
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(tags, [(rootmail_aws::SEALED_TAG, "true")]);

    // Moto really checks: a wrong secret is refused by its signature, and
    // the refusal is S3's code, not a retry.
    let forged = signed_by("not-the-secret");
    let refusals = [
        forged.get_object(&bucket, object, 1 << 20).await.map(drop),
        forged
            .put_object_tagging(&bucket, object, &[("x", "y")])
            .await,
    ];
    for refused in refusals {
        let refused = refused.unwrap_err();
        assert_eq!(
            refused.code.as_deref(),
            Some("SignatureDoesNotMatch"),
            "{refused}"
        );
        assert_eq!(refused.status, Some(403), "{refused}");
        assert!(!refused.is_transient(), "{refused}");
    }
}

const SDK_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["dynamodb:ListTables","sqs:ListQueues"],"Resource":"*"}]}"#;

/// The SDK clients send through reqwest: whatever reqwest adds on the way
/// (host, length, its own headers) must leave the SDK's signature valid, for
/// the JSON protocols the Lambdas' services speak (DynamoDB, SQS).
#[tokio::test]
async fn the_sdk_clients_requests_through_reqwest_carry_signatures_aws_accepts() {
    let moto = OwnMoto::start().await;
    let key = user_allowed(&moto.setup_config(), SDK_POLICY).await;
    moto.require_signatures().await;
    let signed_by =
        |secret: &str| moto.config(Credentials::new(&key.id, secret, None, None, "test"));

    let good = signed_by(&key.secret);
    aws_sdk_dynamodb::Client::new(&good)
        .list_tables()
        .send()
        .await
        .unwrap();
    aws_sdk_sqs::Client::new(&good)
        .list_queues()
        .send()
        .await
        .unwrap();

    // Moto really checks: the same call, allowed to the same key, is refused
    // with a wrong secret, for good. (Moto answers it in S3's XML, which the
    // JSON client cannot read a code from: the status says it.)
    let forged = aws_sdk_dynamodb::Client::new(&signed_by("not-the-secret"))
        .list_tables()
        .send()
        .await
        .unwrap_err();
    let refused = rootmail_aws::error::port_error("dynamodb", forged);
    assert!(!refused.is_transient(), "{refused}");
    assert_eq!(refused.status, Some(403), "{refused}");
}

const JSON_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["states:SendTaskSuccess","kms:Encrypt","kms:Decrypt","ses:SendEmail"],"Resource":"*"}]}"#;

/// The JSON-protocol client without an SDK (`rootmail_aws::aws_json`: Step
/// Functions' `SendTaskSuccess`, awsJson 1.0; KMS's `Encrypt` and `Decrypt`,
/// 1.1; SES's v2 `SendEmail`, restJson): moto checks the signature and the
/// policy first, so an answer about the token itself means both passed.
#[tokio::test]
async fn the_json_clients_requests_carry_signatures_aws_accepts() {
    use rootmail_aws::aws_json::{JsonClient, KMS, SES_V2, STEP_FUNCTIONS};
    let moto = OwnMoto::start().await;
    let key = user_allowed(&moto.setup_config(), JSON_POLICY).await;
    let kms_key = new_kms_key(&moto.setup_config()).await.key_id;
    aws_sdk_sesv2::Client::new(&moto.setup_config())
        .create_email_identity()
        .email_identity("notices@msp.example")
        .send()
        .await
        .unwrap();
    // Step Functions as the lifecycle tests run it: tokens are checked.
    let configured = reqwest::Client::new()
        .post(format!("{}/moto-api/config", moto.endpoint))
        .json(&serde_json::json!({"stepfunctions": {"execute_state_machine": true}}))
        .send()
        .await
        .expect("moto's config");
    assert!(configured.status().is_success(), "{configured:?}");
    moto.require_signatures().await;
    let signed_by = |secret: &str| {
        let config = moto.config(Credentials::new(&key.id, secret, None, None, "test"));
        JsonClient::new(&config, STEP_FUNCTIONS, "stepfunctions")
    };
    let input = serde_json::json!({"taskToken": "no-such-task", "output": "{}"});

    let refused = signed_by(&key.secret)
        .call("SendTaskSuccess", &input)
        .await
        .unwrap_err();
    assert_eq!(refused.code.as_deref(), Some("InvalidToken"), "{refused}");
    assert_eq!(refused.status, Some(400), "{refused}");

    let forged = signed_by("not-the-secret")
        .call("SendTaskSuccess", &input)
        .await
        .unwrap_err();
    assert_eq!(forged.status, Some(403), "{forged}");
    assert!(!forged.is_transient(), "{forged}");

    // KMS: a round trip under an encryption context, which Decrypt must repeat.
    let config = moto.config(Credentials::new(&key.id, &key.secret, None, None, "test"));
    let kms = JsonClient::new(&config, KMS, "kms");
    let context = serde_json::json!({"purpose": "test"});
    let sealed = kms
        .call(
            "Encrypt",
            &serde_json::json!({"KeyId": kms_key, "Plaintext": "c2VjcmV0", "EncryptionContext": context}),
        )
        .await
        .unwrap();
    let blob = sealed["CiphertextBlob"].as_str().unwrap();
    let opened = kms
        .call(
            "Decrypt",
            &serde_json::json!({"KeyId": kms_key, "CiphertextBlob": blob, "EncryptionContext": context}),
        )
        .await
        .unwrap();
    assert_eq!(opened["Plaintext"], "c2VjcmV0");
    let other_context = kms
        .call(
            "Decrypt",
            &serde_json::json!({"KeyId": kms_key, "CiphertextBlob": blob, "EncryptionContext": {"purpose": "other"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        other_context.code.as_deref(),
        Some("InvalidCiphertextException"),
        "{other_context}"
    );
    assert!(!other_context.is_transient(), "{other_context}");

    // SES: restJson, the operation in the path; an unverified sender is
    // refused, for good.
    let ses = JsonClient::new(&config, SES_V2, "ses");
    let email = |from: &str| {
        serde_json::json!({
            "FromEmailAddress": from,
            "Destination": {"ToAddresses": ["operators@msp.example"]},
            "Content": {"Simple": {"Subject": {"Data": "test"}, "Body": {"Text": {"Data": "body"}}}},
        })
    };
    let path = "v2/email/outbound-emails";
    let sent: serde_json::Value = ses
        .post_for("SendEmail", path, &email("notices@msp.example"))
        .await
        .unwrap();
    assert!(sent["MessageId"].is_string(), "{sent}");
    let unverified = ses
        .post_for::<serde_json::Value>("SendEmail", path, &email("someone@else.example"))
        .await
        .unwrap_err();
    assert_eq!(unverified.status, Some(400), "{unverified}");
    assert!(!unverified.is_transient(), "{unverified}");
}

const VAULT_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:DescribeSecret","secretsmanager:CreateSecret","secretsmanager:GetResourcePolicy","secretsmanager:PutSecretValue","secretsmanager:GetSecretValue","secretsmanager:UpdateSecretVersionStage"],"Resource":"*"}]}"#;

/// The vault over Secrets Manager without its SDK client (awsJson 1.1):
/// moto checks every request's signature and the user's policy, so a value
/// stored, read back and promoted means each operation's request was one
/// AWS accepts; the one the policy leaves out is refused for good.
#[tokio::test]
async fn the_vault_s_requests_carry_signatures_aws_accepts() {
    use rootmail_aws::lifecycle_adapters::SecretsVault;
    use rootmail_domain::{AccountId, SecretValue};
    use rootmail_lifecycle::{Stage, Vault, VaultItem};
    let moto = OwnMoto::start().await;
    let key = user_allowed(&moto.setup_config(), VAULT_POLICY).await;
    let kms_key = new_kms_key(&moto.setup_config()).await.arn.unwrap();
    moto.require_signatures().await;
    let config = moto.config(Credentials::new(&key.id, &key.secret, None, None, "test"));
    let vault = SecretsVault::new(SecretsVault::client(&config), &kms_key);
    let account = AccountId::parse("123456789012").unwrap();
    let password = SecretValue::new("correct horse battery staple".to_string());

    let reference = vault
        .put(&account, VaultItem::Password, Stage::Pending, &password)
        .await
        .expect("stored");
    assert!(reference.contains("#"), "ARN#version: {reference}");
    vault
        .promote(&account, VaultItem::Password)
        .await
        .expect("promoted");
    let read = vault
        .get(&account, VaultItem::Password, Stage::Current)
        .await
        .expect("read");
    assert_eq!(read, Some(password));
    let none = vault
        .get(&account, VaultItem::TotpSeed, Stage::Current)
        .await
        .expect("nothing stored is none");
    assert_eq!(none, None);

    let denied = vault
        .schedule_deletion(&account, &[VaultItem::Password])
        .await
        .unwrap_err();
    let rootmail_lifecycle::LifecycleError::Port(denied) = denied else {
        panic!("a port error: {denied}");
    };
    assert_eq!(denied.status, Some(403), "{denied}");
    assert!(!denied.is_transient(), "{denied}");
}

//! Real local AWS for the tests: moto on loopback, started by `make test`
//! (`scripts/with-moto`), reached through `ROOTMAIL_TEST_AWS_ENDPOINT`. Each test
//! creates its own bucket, queues and tables with a random suffix.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    QueueConfiguration, S3KeyFilter,
};
use aws_sdk_sqs::types::QueueAttributeName;
use rootmail_aws::accounts::ACCOUNT_ID_INDEX;
use std::sync::atomic::{AtomicU64, Ordering};

pub const ENDPOINT_VARIABLE: &str = "ROOTMAIL_TEST_AWS_ENDPOINT";

/// The moto endpoint; a clear failure when the tests were not started by `make test`.
pub fn endpoint() -> String {
    std::env::var(ENDPOINT_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{ENDPOINT_VARIABLE} is not set: these tests need moto. Run `make test`, \
             or `scripts/with-moto cargo test ...`, which start it."
        )
    })
}

/// The standard AWS settings a child process (the `rootmail` binary, a Lambda
/// binary) needs to reach moto, and nothing from the user's own AWS profile.
pub fn process_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_CONFIG_FILE", "/nonexistent".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_string()),
    ]
}

/// SDK configuration pointing at moto, with dummy credentials.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(rootmail_aws::https_client())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}{nanos:x}{n}", std::process::id())
}

/// Everything one pipeline needs, created fresh.
pub struct Stack {
    pub aws: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub bucket: String,
    pub inbound_url: String,
    pub inbound_dlq_url: String,
    pub ticket_ops_url: String,
    pub ticket_ops_dlq_url: String,
    pub accounts_table: String,
    pub ledger_table: String,
    pub threads_table: String,
    /// The ticket writer's credentials secret (webhook: the HMAC key below).
    pub credentials_secret_arn: String,
}

/// The HMAC key in every test stack's webhook secret; the fake receiver checks it.
pub const WEBHOOK_HMAC_KEY: &str = "test-webhook-hmac-key-of-32-bytes-at-least";

impl Stack {
    pub async fn create() -> Self {
        crate::captured_logs();
        let aws = sdk_config().await;
        let s3 = rootmail_aws::s3_sdk_client(&aws);
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let id = unique("t");
        let bucket = format!("mail-{id}");
        let inbound_dlq_url = create_queue(&sqs, &format!("inbound-dlq-{id}"), None).await;
        let inbound_url =
            create_queue(&sqs, &format!("inbound-{id}"), Some(&inbound_dlq_url)).await;
        let ticket_ops_dlq_url =
            create_queue(&sqs, &format!("ticket-ops-dlq-{id}.fifo"), None).await;
        let ticket_ops_url = create_queue(
            &sqs,
            &format!("ticket-ops-{id}.fifo"),
            Some(&ticket_ops_dlq_url),
        )
        .await;
        let credentials_secret_arn = aws_sdk_secretsmanager::Client::new(&aws)
            .create_secret()
            .name(format!("ticket-credentials-{id}"))
            .secret_string(serde_json::json!({"hmac_key": WEBHOOK_HMAC_KEY}).to_string())
            .send()
            .await
            .expect("create credentials secret")
            .arn
            .expect("secret ARN");
        let stack = Self {
            credentials_secret_arn,
            accounts_table: format!("accounts-{id}"),
            ledger_table: format!("ledger-{id}"),
            threads_table: format!("threads-{id}"),
            aws,
            s3,
            dynamodb,
            sqs,
            bucket,
            inbound_url,
            inbound_dlq_url,
            ticket_ops_url,
            ticket_ops_dlq_url,
        };
        stack.create_tables().await;
        stack.create_bucket().await;
        stack
    }

    async fn create_tables(&self) {
        create_table(&self.dynamodb, &self.ledger_table, "content_hash", None).await;
        create_table(&self.dynamodb, &self.threads_table, "pk", None).await;
        create_table(
            &self.dynamodb,
            &self.accounts_table,
            "root_email",
            Some((ACCOUNT_ID_INDEX, "account_id")),
        )
        .await;
    }

    /// The bucket, with ObjectCreated notifications under `inbound/` to the inbound queue.
    async fn create_bucket(&self) {
        self.s3
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("create bucket");
        let queue_arn = queue_arn(&self.sqs, &self.inbound_url).await;
        let filter = NotificationConfigurationFilter::builder()
            .key(
                S3KeyFilter::builder()
                    .filter_rules(
                        FilterRule::builder()
                            .name(FilterRuleName::Prefix)
                            .value("inbound/")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let queue = QueueConfiguration::builder()
            .queue_arn(queue_arn)
            .events(Event::from("s3:ObjectCreated:*"))
            .filter(filter)
            .build()
            .expect("queue configuration");
        self.s3
            .put_bucket_notification_configuration()
            .bucket(&self.bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(queue)
                    .build(),
            )
            .send()
            .await
            .expect("bucket notifications");
    }

    pub async fn put_mail(&self, key: &str, raw: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(raw.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    /// Loads the corpus' accounts into the accounts table.
    pub async fn load_corpus_accounts(&self) {
        let accounts = rootmail_local::accounts::read(&crate::corpus_accounts()).expect("accounts");
        let table = rootmail_aws::DynamoAccounts::new(self.dynamodb.clone(), &self.accounts_table);
        for account in accounts {
            table.upsert(&account).await.expect("upsert account");
        }
    }

    /// The process environment a deployed function would get.
    pub fn function_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ACCOUNTS_TABLE", self.accounts_table.clone()),
            ("LEDGER_TABLE", self.ledger_table.clone()),
            ("THREADS_TABLE", self.threads_table.clone()),
            ("TICKET_OPS_QUEUE_URL", self.ticket_ops_url.clone()),
            ("INBOUND_QUEUE_URL", self.inbound_url.clone()),
            ("DEAD_LETTER_QUEUE_URL", self.ticket_ops_dlq_url.clone()),
            ("MAIL_BUCKET", self.bucket.clone()),
            ("TICKET_BACKEND", "webhook".to_string()),
            (
                "TICKET_CREDENTIALS_SECRET_ARN",
                self.credentials_secret_arn.clone(),
            ),
        ]
    }
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str, dlq_url: Option<&str>) -> String {
    let mut create = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "30");
    if name.ends_with(".fifo") {
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    if let Some(dlq) = dlq_url {
        let policy = serde_json::json!({
            "deadLetterTargetArn": queue_arn(sqs, dlq).await,
            "maxReceiveCount": 5,
        });
        create = create.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    create
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("queue arn")
}

async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
    key: &str,
    index: Option<(&str, &str)>,
) {
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute")
    };
    let hash_key = |name: &str| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::Hash)
            .build()
            .expect("key")
    };
    let mut create = dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(key))
        .key_schema(hash_key(key));
    if let Some((index_name, index_key)) = index {
        create = create
            .attribute_definitions(string_attribute(index_key))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index_name)
                    .key_schema(hash_key(index_key))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .expect("index"),
            );
    }
    create.send().await.expect("create table");
}

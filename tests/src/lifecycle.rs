//! The credential lifecycle against local AWS: a pipeline [`Stack`] plus what the
//! lifecycle adds (the rotations and audit tables, a customer-managed KMS key,
//! a verified SES sender, a Step Functions state machine whose waits are SQS
//! `waitForTaskToken` tasks) and the [`AccountFake`] for the Account API,
//! `sts:AssumeRoot` and root sessions, delivering its code mail into the
//! stack's bucket like SES would.
//!
//! moto cannot invoke Lambda functions, so the state machine here only has the
//! two waits of a take-over: for the code mail, and (vaulted) for the engineer.
//! Tests run each step's handler themselves, in the order the deployed state
//! machine runs them, and use the tokens these waits hand out.

use crate::account_fake::AccountFake;
use crate::aws::{Stack, endpoint, unique};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use lifecycle::{Lifecycle, Step};
use mail_ingest::AwsIngest;
use rootmail_aws::Env;
use rootmail_aws::lifecycle_adapters::{AwsClients, AwsLifecycle, LifecycleConfig};
use rootmail_aws::metrics::CapturedLines;
use rootmail_domain::AccountId;
use serde_json::{Value, json};
use std::time::Duration;

pub const ROOT_DOMAIN: &str = "root.example-msp.com";
pub const NOTICE_FROM: &str = "rootmail@example-msp.com";
pub const NOTICE_TO: &str = "security@example-msp.com";

/// A new member account of moto's organization (one per process: created
/// once, "already exists" tolerated), named `name` with root email `email`;
/// its id, which moto draws at random, so no other test uses it.
pub async fn create_member_account(
    org: &aws_sdk_organizations::Client,
    name: &str,
    email: &str,
) -> String {
    let _ = org.create_organization().send().await;
    let created = org
        .create_account()
        .account_name(name)
        .email(email)
        .send()
        .await
        .expect("create account");
    let status_id = created
        .create_account_status
        .and_then(|s| s.id)
        .expect("status id");
    let status = org
        .describe_create_account_status()
        .create_account_request_id(status_id)
        .send()
        .await
        .expect("describe");
    status
        .create_account_status
        .and_then(|s| s.account_id)
        .expect("account id")
}

/// An account id no other test uses (vault secrets are named by account, and
/// moto's Secrets Manager is shared by every test).
pub fn fresh_account_id() -> AccountId {
    let seed = crate::XorShift::new(unique("a").bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }))
    .next_u64();
    AccountId::parse(&format!("{:012}", 100_000_000_000 + seed % 899_999_999_999))
        .expect("12 digits")
}

pub struct LifecycleStack {
    pub stack: Stack,
    pub fake: AccountFake,
    pub kms: aws_sdk_kms::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub rotations_table: String,
    pub audit_table: String,
    /// The customer-managed key (ARN) for the vault and the task tokens.
    pub key_arn: String,
    /// Where the state machine's waits put their task tokens.
    pub waits_url: String,
    pub state_machine_arn: String,
}

impl LifecycleStack {
    pub async fn create() -> Self {
        let stack = Stack::create().await;
        let fake = AccountFake::start();
        fake.deliver_to(&stack.s3, &stack.bucket, "inbound/");
        let kms = aws_sdk_kms::Client::new(&stack.aws);
        let secrets = aws_sdk_secretsmanager::Client::new(&stack.aws);
        let sfn = aws_sdk_sfn::Client::new(&stack.aws);
        let id = unique("lc");
        let rotations_table = format!("rotations-{id}");
        let audit_table = format!("audit-{id}");
        create_table(&stack.dynamodb, &rotations_table, None).await;
        create_table(&stack.dynamodb, &audit_table, Some("at")).await;
        let key_arn = kms
            .create_key()
            .description("rootmail vault (test)")
            .send()
            .await
            .expect("create key")
            .key_metadata
            .expect("key metadata")
            .arn
            .expect("key arn");
        aws_sdk_sesv2::Client::new(&stack.aws)
            .create_email_identity()
            .email_identity(NOTICE_FROM)
            .send()
            .await
            .expect("verify the notice sender");
        let waits_url = stack
            .sqs
            .create_queue()
            .queue_name(format!("waits-{id}"))
            .send()
            .await
            .expect("create waits queue")
            .queue_url
            .expect("queue url");
        moto_post(
            "/moto-api/config",
            &json!({"stepfunctions": {"execute_state_machine": true}}),
        )
        .await;
        let state_machine_arn = sfn
            .create_state_machine()
            .name(format!("take-over-{id}"))
            .definition(take_over_waits(&waits_url).to_string())
            .role_arn("arn:aws:iam::123456789012:role/rootmail-take-over")
            .send()
            .await
            .expect("create state machine")
            .state_machine_arn;
        Self {
            stack,
            fake,
            kms,
            secrets,
            sfn,
            rotations_table,
            audit_table,
            key_arn,
            waits_url,
            state_machine_arn,
        }
    }

    /// The lifecycle's settings, as the template sets them.
    pub fn lifecycle_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ROTATIONS_TABLE", self.rotations_table.clone()),
            ("AUDIT_TABLE", self.audit_table.clone()),
            ("VAULT_KMS_KEY_ID", self.key_arn.clone()),
            ("TOKEN_KMS_KEY_ID", self.key_arn.clone()),
            ("NOTICE_FROM", NOTICE_FROM.to_string()),
            ("NOTICE_TO", NOTICE_TO.to_string()),
            ("ROOT_MAIL_DOMAIN", ROOT_DOMAIN.to_string()),
        ]
    }

    /// The whole environment of a deployed `lifecycle` function for `step`.
    pub fn function_env(&self, step: Step) -> Vec<(&'static str, String)> {
        let mut env = self.stack.function_env();
        env.extend(self.lifecycle_env());
        env.push(("LIFECYCLE_STEP", step.name().to_string()));
        env.push((
            "OPERATOR_PRINCIPALS",
            "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_RootmailOperator_*,arn:aws:iam::123456789012:role/RootmailOperator".to_string(),
        ));
        env
    }

    pub fn config(&self) -> LifecycleConfig {
        LifecycleConfig::from_env(&Env::from_pairs(self.function_env(Step::Register)))
            .expect("lifecycle config")
    }

    /// The ports: moto for everything, the fake for the Account API and root
    /// sessions (which moto lacks).
    pub async fn ports(&self) -> AwsLifecycle {
        self.ports_as(&self.config()).await
    }

    /// The ports of a deployment configured as `config`.
    pub async fn ports_as(&self, config: &LifecycleConfig) -> AwsLifecycle {
        let mut clients = AwsClients::from_config(&self.stack.aws);
        let fake = self.fake.sdk_config().await;
        clients.account = aws_sdk_account::Client::new(&fake);
        clients.sts = aws_sdk_sts::Client::new(&fake);
        clients.iam = aws_sdk_iam::Client::new(&fake);
        AwsLifecycle::new(clients, config)
    }

    /// The `lifecycle` function's handler for `step`, configured from the
    /// environment a deployed function gets.
    pub async fn handler(&self, step: Step) -> Lifecycle<AwsLifecycle> {
        let config = lifecycle::Config::from_env(&Env::from_pairs(self.function_env(step)))
            .expect("function config");
        assert_eq!(config.step, step);
        Lifecycle {
            ports: self.ports().await,
            step: config.step,
            root_domain: config.lifecycle.root_mail_domain,
            operators: config.operators,
            // The operator function's STS is the function URL stand-in's.
            caller_proofs: None,
        }
    }

    /// `mail-ingest` as deployed with rotations on.
    pub fn ingest_handler(&self) -> (AwsIngest, CapturedLines) {
        self.stack.ingest_handler(&self.lifecycle_env())
    }

    /// Starts a take-over execution; its first wait hands out a token.
    pub async fn start_execution(&self, account: &AccountId, mode: &str) -> String {
        self.sfn
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(unique("take-over"))
            .input(json!({"account_id": account, "customer": "Initech", "mode": mode}).to_string())
            .send()
            .await
            .expect("start execution")
            .execution_arn
    }

    /// The next wait's message (`{"wait", "account_id", "task_token"}`).
    pub async fn next_wait(&self) -> Value {
        for _ in 0..100 {
            let received = self
                .stack
                .sqs
                .receive_message()
                .queue_url(&self.waits_url)
                .send()
                .await
                .expect("receive wait");
            if let Some(message) = received.messages.unwrap_or_default().into_iter().next() {
                self.stack
                    .sqs
                    .delete_message()
                    .queue_url(&self.waits_url)
                    .receipt_handle(message.receipt_handle.expect("receipt handle"))
                    .send()
                    .await
                    .expect("delete wait");
                return serde_json::from_str(&message.body.expect("body")).expect("wait JSON");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the state machine never reached a wait");
    }

    /// No wait message arrives within a second.
    pub async fn no_wait(&self) -> bool {
        for _ in 0..10 {
            let received = self
                .stack
                .sqs
                .receive_message()
                .queue_url(&self.waits_url)
                .send()
                .await
                .expect("receive wait");
            if !received.messages.unwrap_or_default().is_empty() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    /// The execution's status once it stops changing for the expected one
    /// (moto runs executions in the background).
    pub async fn execution_status(&self, arn: &str, expected: &str) -> String {
        let mut status = String::new();
        for _ in 0..50 {
            status = self
                .sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await
                .expect("describe execution")
                .status
                .as_str()
                .to_string();
            if status == expected {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        status
    }

    /// Every input, output and parameter the execution's history holds.
    pub async fn execution_data(&self, arn: &str) -> Vec<String> {
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .expect("describe execution");
        let mut texts: Vec<String> = [described.input(), described.output()]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect();
        let history = self
            .sfn
            .get_execution_history()
            .execution_arn(arn)
            .include_execution_data(true)
            .send()
            .await
            .expect("execution history");
        for event in history.events() {
            texts.extend(
                [
                    event
                        .execution_started_event_details()
                        .and_then(|d| d.input()),
                    event
                        .execution_succeeded_event_details()
                        .and_then(|d| d.output()),
                    event.state_entered_event_details().and_then(|d| d.input()),
                    event.state_exited_event_details().and_then(|d| d.output()),
                    event.task_scheduled_event_details().map(|d| d.parameters()),
                    event
                        .task_submitted_event_details()
                        .and_then(|d| d.output()),
                    event
                        .task_succeeded_event_details()
                        .and_then(|d| d.output()),
                ]
                .into_iter()
                .flatten()
                .map(str::to_string),
            );
        }
        texts
    }

    /// Every item of a table, as text (for "the secret is nowhere" checks).
    pub async fn table_text(&self, table: &str) -> Vec<String> {
        let mut pages = self
            .stack
            .dynamodb
            .scan()
            .table_name(table)
            .into_paginator()
            .send();
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            for item in page.expect("scan").items.unwrap_or_default() {
                items.push(format!("{item:?}"));
            }
        }
        items
    }

    /// The raw rotation item of `account`, as stored.
    pub async fn rotation_item(
        &self,
        account: &AccountId,
    ) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.stack
            .dynamodb
            .get_item()
            .table_name(&self.rotations_table)
            .key(
                "account_id",
                aws_sdk_dynamodb::types::AttributeValue::S(account.to_string()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("get rotation")
            .item
    }

    /// Takes every ticket operation off the queue (body and group), in order.
    pub async fn take_ticket_ops(&self) -> Vec<(String, Value)> {
        let url = &self.stack.ticket_ops_url;
        let mut ops = Vec::new();
        loop {
            let received = self
                .stack
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
                )
                .send()
                .await
                .expect("receive ticket ops");
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return ops;
            }
            for message in messages {
                let body = message.body.clone().unwrap_or_default();
                let op = serde_json::from_str(&body).expect("ticket op JSON");
                ops.push((body, op));
                self.stack
                    .sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle.unwrap_or_default())
                    .send()
                    .await
                    .expect("delete ticket op");
            }
        }
    }

    /// The secret's metadata: its KMS key and version stages.
    pub async fn describe_secret(
        &self,
        name: &str,
    ) -> aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput {
        self.secrets
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("describe {name}: {e:?}"))
    }

    /// A vault value at a stage, read straight from Secrets Manager.
    pub async fn secret_value(&self, name: &str, stage: &str) -> Option<String> {
        self.secrets
            .get_secret_value()
            .secret_id(name)
            .version_stage(stage)
            .send()
            .await
            .ok()
            .and_then(|v| v.secret_string)
    }
}

/// Mail SES sent, as moto recorded it (`{"source", "destinations", "subject", "body"}`).
/// moto builds `data.json` from all its state; a request that meets another
/// test's write can fail, so it is asked again.
pub async fn sent_email() -> Vec<Value> {
    let url = format!("{}/moto-api/data.json", endpoint());
    let mut last = String::new();
    for _ in 0..10 {
        let response = reqwest::get(&url).await.expect("moto data");
        let status = response.status();
        let text = response.text().await.expect("moto data body");
        match serde_json::from_str::<Value>(&text) {
            Ok(data) if status.is_success() => {
                return data["ses"]["Message"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
            _ => last = format!("{status}: {}", &text[..text.len().min(300)]),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("moto's data.json stayed unreadable: {last}");
}

async fn moto_post(path: &str, body: &Value) {
    rootmail_tickets::http::install_crypto_provider();
    reqwest::Client::new()
        .post(format!("{}{path}", endpoint()))
        .json(body)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
}

/// The take-over's waits: for the code mail (console: for the evidence of
/// the change), then (vaulted and console) for the engineer.
fn take_over_waits(waits_url: &str) -> Value {
    let wait = |name: &str| {
        json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": waits_url,
                "MessageBody": {
                    "wait": name,
                    "account_id.$": "$.account_id",
                    "task_token.$": "$$.Task.Token"
                }
            },
            "TimeoutSeconds": 86400,
        })
    };
    let mut code = wait("code");
    code["ResultPath"] = json!("$.resumed");
    code["Next"] = json!("ChooseMode");
    let mut engineer = wait("engineer");
    engineer["ResultPath"] = json!("$.vaulted");
    engineer["Next"] = json!("Done");
    json!({
        "StartAt": "WaitForCode",
        "States": {
            "WaitForCode": code,
            "ChooseMode": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.mode", "StringEquals": "vaulted", "Next": "WaitForEngineer"},
                    {"Variable": "$.mode", "StringEquals": "console", "Next": "WaitForEngineer"}
                ],
                "Default": "Done"
            },
            "WaitForEngineer": engineer,
            "Done": {"Type": "Succeed"}
        }
    })
}

async fn create_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str, sort_key: Option<&str>) {
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("attribute")
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    let mut create = dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("account_id", ScalarAttributeType::S))
        .key_schema(key("account_id", KeyType::Hash));
    if let Some(sort) = sort_key {
        create = create
            .attribute_definitions(attribute(sort, ScalarAttributeType::N))
            .key_schema(key(sort, KeyType::Range));
    }
    create.send().await.expect("create table");
}

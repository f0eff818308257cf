//! Answers a Step Functions task waiting with `.waitForTaskToken`
//! (`SendTaskSuccess`, without the SDK's client: [`crate::aws_json`]).

use crate::aws_json::{JsonClient, STEP_FUNCTIONS};
use rootmail_lifecycle::{LifecycleError, LifecycleResult, TaskTokens};

const PORT: &str = "stepfunctions";

#[derive(Clone)]
pub struct StepFunctionsTokens {
    client: JsonClient,
}

impl StepFunctionsTokens {
    pub fn new(client: JsonClient) -> Self {
        Self { client }
    }

    /// A client for the SDK configuration's Step Functions.
    pub fn client(aws: &aws_config::SdkConfig) -> JsonClient {
        JsonClient::new(aws, STEP_FUNCTIONS, PORT)
    }
}

impl TaskTokens for StepFunctionsTokens {
    /// `output` is what the workflow continues with: references only. A task
    /// that no longer waits (timed out, execution stopped) is `Refused`: no
    /// retry brings it back.
    async fn succeed(&self, token: &str, output: &serde_json::Value) -> LifecycleResult<()> {
        let input = Resume {
            task_token: token,
            output: output.to_string(),
        };
        match self.client.call("SendTaskSuccess", &input).await {
            Ok(_) => Ok(()),
            Err(e) => match e.code.as_deref() {
                Some(code @ ("TaskTimedOut" | "TaskDoesNotExist" | "InvalidToken")) => {
                    Err(LifecycleError::Refused(format!(
                        "the workflow task waiting for this no longer exists or has timed out ({code})"
                    )))
                }
                _ => Err(LifecycleError::Port(e)),
            },
        }
    }
}

/// `SendTaskSuccess`'s input, the token borrowed: the client zeroes the
/// request it serializes, a JSON value would keep a copy it does not.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Resume<'a> {
    task_token: &'a str,
    output: String,
}

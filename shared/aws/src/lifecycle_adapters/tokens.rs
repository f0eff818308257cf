//! Answers a Step Functions task waiting with `.waitForTaskToken`.

use crate::error::error_code;
use rootmail_lifecycle::{LifecycleError, LifecycleResult, TaskTokens};

const PORT: &str = "stepfunctions";

#[derive(Clone)]
pub struct StepFunctionsTokens {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsTokens {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Self { client }
    }
}

impl TaskTokens for StepFunctionsTokens {
    /// `output` is what the workflow continues with: references only. A task
    /// that no longer waits (timed out, execution stopped) is `Refused`: no
    /// retry brings it back.
    async fn succeed(&self, token: &str, output: &serde_json::Value) -> LifecycleResult<()> {
        let sent = self
            .client
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) => match error_code(&e) {
                Some(code @ ("TaskTimedOut" | "TaskDoesNotExist" | "InvalidToken")) => {
                    Err(LifecycleError::Refused(format!(
                        "the workflow task waiting for this no longer exists or has timed out ({code})"
                    )))
                }
                _ => Err(super::sdk(PORT, e)),
            },
        }
    }
}

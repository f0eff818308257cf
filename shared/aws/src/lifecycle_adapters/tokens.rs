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
    /// that no longer waits (execution stopped, a token no workflow issued)
    /// is `Refused`: no retry brings it back. `TaskTimedOut` is not: AWS
    /// answers it for a task "already closed" too, which is what a retried
    /// answer meets when the first one was taken and its reply lost (the
    /// client retries a 5xx or a timeout; the mail pipeline answers again on
    /// redelivery). Taken as answered: a workflow that really timed out has
    /// gone to its failure step, which records it.
    async fn succeed(&self, token: &str, output: &serde_json::Value) -> LifecycleResult<()> {
        let input = Resume {
            task_token: token,
            output: output.to_string(),
        };
        match self.client.call("SendTaskSuccess", &input).await {
            Ok(_) => Ok(()),
            Err(e) if e.code.as_deref() == Some("TaskTimedOut") => {
                tracing::warn!(
                    "the workflow task was already closed (TaskTimedOut): answered by an earlier try, or timed out"
                );
                Ok(())
            }
            Err(e) => match e.code.as_deref() {
                Some(code @ ("TaskDoesNotExist" | "InvalidToken")) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{config_for, patient_server};
    use std::time::Duration;

    const UNAVAILABLE: &str =
        "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
    const CLOSED: &str = "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 25\r\n\r\n{\"__type\":\"TaskTimedOut\"}";
    const GONE: &str = "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 29\r\n\r\n{\"__type\":\"TaskDoesNotExist\"}";

    async fn answered(answers: Vec<Option<&'static str>>) -> LifecycleResult<()> {
        let (url, served) = patient_server(answers, Duration::from_secs(2)).await;
        let tokens = StepFunctionsTokens::new(StepFunctionsTokens::client(&config_for(&url)));
        let answer = tokens.succeed("token-1", &serde_json::json!({})).await;
        served.abort();
        answer
    }

    /// The first answer taken but its reply lost (a 503 here), the retry
    /// meets a closed task: answered, not refused. Before, the handover
    /// failed and AWS's code mail became an alert ticket.
    #[tokio::test]
    async fn a_task_closed_by_an_earlier_try_is_answered() {
        let answer = answered(vec![Some(UNAVAILABLE), Some(CLOSED)]).await;
        assert!(answer.is_ok(), "{answer:?}");
        let gone = answered(vec![Some(GONE)]).await;
        assert!(matches!(gone, Err(LifecycleError::Refused(_))), "{gone:?}");
    }
}

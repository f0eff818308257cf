//! SDK errors as port errors: their kind from the service's error code and the
//! HTTP status, the SDK error kept as the source.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
pub use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use rootmail_pipeline::{ErrorKind, PortError};

/// Error codes AWS services use to ask callers to slow down.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "RequestThrottled",
    "TooManyRequestsException",
];

/// Error codes for server-side trouble that AWS answers with a 4xx status.
const SERVER_TROUBLE_CODES: &[&str] =
    &["InternalServerError", "InternalError", "ServiceUnavailable"];

/// Classifies an SDK error by its error code and HTTP status (a 5xx is the
/// service's trouble: retried); the message is the source chain (see
/// [`error_chain`]) and the SDK error stays the source.
pub fn port_error<E>(port: &'static str, error: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, status) = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            (ErrorKind::Transient, None)
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            (answer_kind(status, service.err().code()), Some(status))
        }
        _ => (ErrorKind::Permanent, None),
    };
    let message = error_chain(&error);
    let code = error_code(&error).map(str::to_string);
    let error = PortError::new(kind, port, message)
        .with_code(code)
        .with_source(error);
    match status {
        Some(status) => error.with_status(status),
        None => error,
    }
}

/// An error and its sources, each said once, joined by `: `. The SDK's
/// `DisplayErrorContext` adds the error's `Debug` at the end, the raw HTTP
/// response (headers and body) included, to every line that logs it.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// Whether a DynamoDB write failed only because its condition did not hold
/// (someone wrote first): the SDK's typed error, not its code's text.
pub fn condition_failed<E: ConditionalWrite, R>(error: &SdkError<E, R>) -> bool {
    error
        .as_service_error()
        .is_some_and(ConditionalWrite::condition_failed)
}

/// The DynamoDB write errors that can say a condition failed.
pub trait ConditionalWrite {
    fn condition_failed(&self) -> bool;
}

impl ConditionalWrite for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionalWrite for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn condition_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// What an AWS answer's status and error code say about retrying it.
pub fn answer_kind(status: u16, code: Option<&str>) -> ErrorKind {
    match code {
        Some(code) if THROTTLING_CODES.contains(&code) => ErrorKind::Throttled,
        Some("TransactionConflictException") => ErrorKind::Conflict,
        Some(code) if SERVER_TROUBLE_CODES.contains(&code) => ErrorKind::Transient,
        // AWS says by its code when a conflict is worth retrying.
        _ if status == 409 || status == 408 => ErrorKind::Permanent,
        _ => ErrorKind::of_status(status),
    }
}

/// The start of an error answer, read for its code (AWS's error documents
/// are a few hundred bytes; a longer answer is cut, not read on).
#[cfg(any(feature = "mail", feature = "handoffs"))]
pub(crate) async fn error_answer(mut response: reqwest::Response) -> String {
    const ERROR_ANSWER_BYTES: usize = 4096;
    let mut body = Vec::new();
    while body.len() < ERROR_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(ERROR_ANSWER_BYTES);
    String::from_utf8_lossy(&body).into_owned()
}

/// The service error code of an SDK error, if the service answered with one.
pub fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn answered(status: u16, code: &str) -> PortError {
        let meta = ErrorMetadata::builder().code(code).message("no").build();
        let body = SdkBody::from(r#"{"__type":"raw-body-text"}"#);
        let response = HttpResponse::new(StatusCode::try_from(status).unwrap(), body);
        port_error(
            "ledger",
            SdkError::service_error(GetItemError::generic(meta), response),
        )
    }

    #[test]
    fn a_server_error_or_a_throttle_is_retried_and_a_refusal_is_not() {
        assert!(answered(503, "SomethingNew").is_transient(), "any 5xx");
        assert!(answered(500, "InternalServerError").is_transient());
        assert!(
            answered(400, "ThrottlingException").is_transient(),
            "a throttling code"
        );
        assert!(!answered(400, "ValidationException").is_transient());
        assert!(!answered(403, "AccessDeniedException").is_transient());
        assert!(!answered(409, "ConflictException").is_transient());
    }

    #[test]
    fn the_kind_status_and_sdk_error_are_kept() {
        use std::error::Error as _;
        let throttled = answered(400, "ThrottlingException");
        assert_eq!(
            (throttled.kind, throttled.status),
            (ErrorKind::Throttled, Some(400))
        );
        let refused = answered(403, "AccessDeniedException");
        assert_eq!(
            (refused.kind, refused.status),
            (ErrorKind::Refused, Some(403))
        );
        assert_eq!(
            answered(404, "ResourceNotFoundException").kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            answered(400, "TransactionConflictException").kind,
            ErrorKind::Conflict
        );
        assert!(refused.source().is_some(), "the SDK error is the source");
    }

    #[test]
    fn the_message_is_the_error_chain_without_the_raw_response() {
        let refused = answered(403, "AccessDeniedException");
        let message = &refused.message;
        assert!(message.starts_with("service error: "), "{message}");
        assert!(
            message.contains("AccessDeniedException") && message.contains("\"no\""),
            "{message}"
        );
        assert!(!message.contains("raw-body-text"), "{message}");
    }
}

//! SDK errors as port errors: transient ones are retried, permanent ones are not.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
pub use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use rootmail_pipeline::PortError;

/// Error codes AWS services use for throttling and server-side trouble.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TransactionConflictException",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestThrottled",
    "TooManyRequestsException",
];

/// Classifies an SDK error by its error code and HTTP status (a 5xx is the
/// service's trouble: retried); the message keeps the whole source chain.
pub fn port_error<E>(port: &'static str, error: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let transient = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            service
                .err()
                .code()
                .is_some_and(|c| TRANSIENT_CODES.contains(&c))
                || service.raw().status().is_server_error()
        }
        _ => false,
    };
    let message = DisplayErrorContext(&error).to_string();
    if transient {
        PortError::Transient { port, message }
    } else {
        PortError::Permanent { port, message }
    }
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
        let response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
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
    }
}

//! SDK errors as port errors: transient ones are retried, permanent ones are not.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
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

/// Classifies an SDK error; the message keeps the whole source chain.
pub fn port_error<E, R>(port: &'static str, error: SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
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
                || format!("{:?}", service.raw()).contains("status: StatusCode(5")
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

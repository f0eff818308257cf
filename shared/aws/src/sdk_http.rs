//! The HTTP client the AWS SDK clients send through: reqwest, the client the
//! ticket APIs and the S3 client use already. The SDK's own client
//! (aws-smithy-http-client) would link a second HTTP stack beside it, with
//! HTTP/2 that no AWS API rootmail calls needs (issue 16: smaller bootstraps).
//!
//! The SDK keeps everything above one HTTP exchange: signing, retries and
//! their backoff, attempt and operation timeouts. This client sends a request
//! once and says how it failed, so the SDK's retry rules read a connection
//! failure or a timeout as transient, as they read its own client's.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The SDK's HTTP client, for `SdkConfig::builder().http_client(..)`.
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestForSdk::default())
}

/// The timeouts an SDK client asks its connections for: connect, read.
type Timeouts = (Option<Duration>, Option<Duration>);

/// One reqwest client per set of timeouts the SDK clients ask for (all of a
/// function's clients share one configuration, so in practice one), each
/// with its own connection pool, kept for the life of the process.
#[derive(Debug, Default)]
struct ReqwestForSdk {
    connectors: Mutex<HashMap<Timeouts, SharedHttpConnector>>,
}

impl HttpClient for ReqwestForSdk {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(timeouts)
            .or_insert_with(|| SharedHttpConnector::new(Connector::new(timeouts)))
            .clone()
    }
}

#[derive(Debug, Clone)]
struct Connector {
    /// Why there is no client, when reqwest could not build one (its TLS
    /// set-up): every request then fails with that reason.
    client: Result<reqwest::Client, Arc<str>>,
}

impl Connector {
    fn new((connect, read): Timeouts) -> Self {
        let mut builder = rootmail_tickets::http::client_builder()
            // The SDK follows no redirect: an AWS endpoint that answers 3xx
            // has an error to read, and a signed request is not re-sent.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(connect) = connect {
            builder = builder.connect_timeout(connect);
        }
        if let Some(read) = read {
            builder = builder.read_timeout(read);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the AWS HTTP client: {e}").into());
        Self { client }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client =
                client.map_err(|reason| ConnectorError::user(reason.to_string().into()))?;
            exchange(&client, request).await
        })
    }
}

/// Sends one request and reads its whole answer.
async fn exchange(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let request = to_reqwest(request).await?;
    let response = client.execute(request).await.map_err(connector_error)?;
    let mut answer = http::Response::builder().status(response.status());
    if let Some(headers) = answer.headers_mut() {
        headers.extend(response.headers().clone());
    }
    let body = response.bytes().await.map_err(connector_error)?;
    let answer = answer
        .body(SdkBody::from(body))
        .map_err(|e| ConnectorError::other(e.into(), None))?;
    HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
}

/// The SDK's request as reqwest sends it. Every call rootmail makes through
/// an SDK client sends its body whole (JSON or a query form), never a stream.
async fn to_reqwest(request: HttpRequest) -> Result<reqwest::Request, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    if body.bytes().is_none() {
        return Err(ConnectorError::user(
            "a streamed request body: rootmail's AWS client sends bodies whole".into(),
        ));
    }
    // Read through, not taken whole with `bytes()`: the SDK's stalled-stream
    // protection counts what is read of the body, and takes a body never read
    // for a stalled upload (every call answered after its 5 s grace period
    // then failed with `ThroughputBelowMinimum`).
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .map_err(ConnectorError::user)?
        .to_bytes();
    reqwest::Request::try_from(http::Request::from_parts(parts, bytes))
        .map_err(|e| ConnectorError::user(e.into()))
}

/// How a failed exchange reads to the SDK's retry rules: a timeout or a
/// connection that failed or broke is transient, as with the SDK's own client.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        return ConnectorError::timeout(error.into());
    }
    if error.is_connect() {
        return ConnectorError::io(error.into()).never_connected();
    }
    if has_source::<std::io::Error>(&error) {
        return ConnectorError::io(error.into());
    }
    if error.is_request() || error.is_body() {
        // A connection closed before the whole answer came (hyper's
        // "incomplete message"), which the SDK's client retries too.
        return ConnectorError::other(error.into(), Some(ErrorKind::TransientError));
    }
    ConnectorError::other(error.into(), None)
}

fn has_source<E: Error + 'static>(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<E>() {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::server;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn request(url: &str) -> HttpRequest {
        let request = http::Request::post(url)
            .header("content-type", "application/x-amz-json-1.0")
            .body(SdkBody::from("{}"))
            .expect("a request");
        HttpRequest::try_from(request).expect("an SDK request")
    }

    fn connector(read: Option<Duration>) -> Connector {
        Connector::new((Some(Duration::from_secs(2)), read))
    }

    /// An SDK client configured as the functions configure it (stalled-stream
    /// protection on, as the SDK sets it) gets an answer that comes after the
    /// protection's 5 s grace period: the connector reads the request body
    /// through, so the SDK sees it sent.
    #[tokio::test]
    async fn a_slow_answer_reaches_an_sdk_client() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            tokio::time::sleep(Duration::from_secs(7)).await;
            let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 17\r\n\r\n{\"TableNames\":[]}";
            socket.write_all(answer.as_bytes()).await.expect("answer");
        });
        let env = crate::Env::from_fn(move |name: &str| match name {
            "AWS_REGION" => Some("us-east-1".to_string()),
            "AWS_ENDPOINT_URL" => Some(url.clone()),
            _ => None,
        });
        let functions = crate::lambda_sdk_config(&env).expect("configuration");
        // One attempt, with test credentials (the functions read Lambda's).
        let config = aws_sdk_dynamodb::config::Builder::from(&functions)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        let listed = aws_sdk_dynamodb::Client::from_conf(config)
            .list_tables()
            .send()
            .await;
        assert!(listed.is_ok(), "{:?}", listed.err());
    }

    #[tokio::test]
    async fn an_answer_reaches_the_sdk_whole_with_its_status_and_headers() {
        let (url, _served) = server(vec![Some(
            "HTTP/1.1 400 Bad Request\r\nx-amzn-requestid: r-1\r\ncontent-length: 2\r\n\r\n{}",
        )])
        .await;
        let answer = connector(None)
            .call(request(&url))
            .await
            .expect("an answer");
        assert_eq!(answer.status().as_u16(), 400);
        assert_eq!(answer.headers().get("x-amzn-requestid"), Some("r-1"));
        assert_eq!(answer.body().bytes(), Some(&b"{}"[..]));
    }

    #[tokio::test]
    async fn a_redirect_is_the_answer_not_followed() {
        let (elsewhere, elsewhere_served) = server(vec![Some("HTTP/1.1 200 OK\r\n\r\n")]).await;
        let redirect: &'static str = Box::leak(
            format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}\r\ncontent-length: 0\r\n\r\n")
                .into_boxed_str(),
        );
        let (url, _served) = server(vec![Some(redirect)]).await;
        let answer = connector(None)
            .call(request(&url))
            .await
            .expect("an answer");
        assert_eq!(answer.status().as_u16(), 307);
        assert_eq!(
            elsewhere_served.await.expect("server"),
            0,
            "nothing was sent on"
        );
    }

    #[tokio::test]
    async fn failures_read_as_the_sdk_retries_them() {
        // Nothing listens: never connected, transient.
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", closed.local_addr().expect("addr"));
        drop(closed);
        let refused = connector(None)
            .call(request(&url))
            .await
            .expect_err("refused");
        assert!(refused.is_io(), "{refused:?}");

        // Connected, then no answer within the read timeout.
        let (url, _served) = server(vec![None]).await;
        let silent = connector(Some(Duration::from_millis(200)));
        let timed_out = silent.call(request(&url)).await.expect_err("timed out");
        assert!(timed_out.is_timeout(), "{timed_out:?}");

        // The connection closed before an answer.
        let (url, _served) = server(vec![Some("")]).await;
        let closed = connector(None)
            .call(request(&url))
            .await
            .expect_err("closed");
        assert!(
            closed.is_io() || closed.as_other() == Some(ErrorKind::TransientError),
            "{closed:?}"
        );
    }
}

//! A scripted HTTP server for the unit tests of the clients that send
//! without an SDK (the SDK's connector, the JSON-protocol client).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that answers each of its first `answers.len()` connections
/// with the next answer (none: holds the connection, silent), counting them:
/// the count of connections made when one more did not come within half a
/// second, `usize::MAX` when every answer was taken.
pub(crate) async fn server(
    answers: Vec<Option<&'static str>>,
) -> (String, tokio::task::JoinHandle<usize>) {
    patient_server(answers, Duration::from_millis(500)).await
}

/// [`server`], waiting `patience` for each connection.
pub(crate) async fn patient_server(
    answers: Vec<Option<&'static str>>,
    patience: Duration,
) -> (String, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let served = tokio::spawn(async move {
        let mut held = Vec::new();
        for (count, answer) in answers.into_iter().enumerate() {
            let accepted = tokio::time::timeout(patience, listener.accept());
            let Ok(Ok((mut socket, _))) = accepted.await else {
                return count;
            };
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            match answer {
                Some(answer) => socket.write_all(answer.as_bytes()).await.expect("answer"),
                None => held.push(socket),
            }
        }
        // Silent connections stay open until the test is over.
        if !held.is_empty() {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        usize::MAX
    });
    (url, served)
}

/// An SDK configuration that sends to `url` with fixed test credentials.
#[cfg(any(feature = "handoffs", feature = "ticket-secrets"))]
pub(crate) fn config_for(url: &str) -> aws_config::SdkConfig {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    aws_config::SdkConfig::builder()
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        )))
        .build()
}

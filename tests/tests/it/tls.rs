//! Both HTTP stacks speak TLS with ring (reqwest built without a provider of
//! its own, the SDK without its default aws-lc-rs client): each opens a TLS
//! handshake to an `https://` address, and fails as TLS fails, without a
//! panic for a missing crypto provider. The listener here is not a TLS
//! server: it records the client's first bytes and hangs up.

use rootmail_tickets::http::{HttpClient, RetryPolicy};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// An address that answers one connection: the client's first bytes.
async fn first_bytes_listener() -> (String, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let first = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("a connection");
        let mut bytes = vec![0u8; 5];
        socket
            .read_exact(&mut bytes)
            .await
            .expect("a TLS record header");
        bytes
    });
    (url, first)
}

/// A TLS record header that starts a handshake (content type 22, TLS 1.x).
fn is_client_hello(bytes: &[u8]) -> bool {
    bytes.len() == 5 && bytes[0] == 0x16 && bytes[1] == 0x03
}

#[tokio::test]
async fn the_ticket_api_client_starts_a_tls_handshake_with_ring() {
    let (url, first) = first_bytes_listener().await;
    let policy = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let client = HttpClient::new("zendesk", Duration::from_secs(5), policy).expect("a client");
    let error = client
        .send("probing", |c| c.get(&url))
        .await
        .expect_err("no TLS server there");
    assert!(
        is_client_hello(&first.await.expect("listener")),
        "a ClientHello was sent"
    );
    assert!(error.is_transient() && error.status.is_none(), "{error}");
}

#[tokio::test]
async fn the_aws_clients_start_a_tls_handshake_with_ring() {
    let (url, first) = first_bytes_listener().await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(rootmail_aws::https_client())
        .endpoint_url(&url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "k", "s", None, None, "tls",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::new(&config);
    let answer = s3.list_buckets().send().await;
    assert!(
        is_client_hello(&first.await.expect("listener")),
        "a ClientHello was sent"
    );
    let error = rootmail_aws::error::port_error("s3", answer.expect_err("no TLS server there"));
    assert!(error.is_transient(), "{error}");
}

//! The soak (issue 7): generated root mail through the AWS pipeline as deployed
//! (S3 -> SQS -> `mail-ingest` -> FIFO -> `ticket-writer`) against moto and the
//! stateful Zendesk fake, which fails a fraction of requests and keeps an
//! account-wide rate limit. Several ingest and writer instances take batches
//! from the real queues at once; a failed record goes back to its queue, as
//! SQS does, so the end state is reached only through at-least-once delivery.
//! Afterwards [`reconcile`] compares what the stores and the fake hold with
//! what the generator wrote, line by line.

pub mod generate;
mod reconcile;

pub use generate::{BadInput, Mail, Outcome, Plan, Thread};
pub use reconcile::{Line, Observed, Report, reconcile};

use crate::aws::Stack;
use crate::lambda::{queue_depth, receive};
use crate::zendesk_fake::{self, FakeZendesk};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use rootmail_aws::metrics::CapturedLines;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Objects written to the bucket (copies and bad input included).
    pub messages: usize,
    pub seed: u64,
    /// The ticketing account's rate limit, which the fake enforces.
    pub api_requests_per_minute: Option<usize>,
    /// The fraction of API requests the fake answers with a server error.
    pub failure_fraction: f64,
    pub ingest_instances: usize,
    pub writer_instances: usize,
    /// Each writer's own limit (`TICKET_API_REQUESTS_PER_MINUTE`).
    pub writer_requests_per_minute: Option<usize>,
    /// `HTTP_RETRY_BASE_MS` of the writers.
    pub retry_base_ms: u64,
    /// The run is abandoned (and reported) after this long.
    pub deadline: Duration,
    /// How long a failed record stays invisible before it is delivered again
    /// (SQS: the visibility timeout, 720 s inbound and 900 s for ticket
    /// operations in the template; shorter here, still long next to the time
    /// one record takes, so receive counts grow as they would in AWS).
    pub inbound_redelivery: Duration,
    pub ticket_ops_redelivery: Duration,
}

impl Settings {
    /// The soak: the API allows 700 requests a minute and fails 10% of
    /// them; two writers (the template's default MaximumConcurrency) each keep
    /// to 340 a minute, just under half the budget; production retry settings.
    pub fn full(messages: usize) -> Self {
        let writers = 2;
        let api = 700;
        Self {
            messages,
            seed: 0x5eed_0007,
            api_requests_per_minute: Some(api),
            failure_fraction: 0.10,
            ingest_instances: 3,
            writer_instances: writers,
            writer_requests_per_minute: Some(api * 97 / 100 / writers),
            retry_base_ms: 200,
            deadline: Duration::from_secs(3 * 3600),
            inbound_redelivery: Duration::from_secs(10),
            ticket_ops_redelivery: Duration::from_secs(5),
        }
    }

    /// A small soak without any rate limit, for `make test`.
    pub fn quick(messages: usize) -> Self {
        Self {
            messages,
            seed: 0x5eed_0060,
            api_requests_per_minute: None,
            failure_fraction: 0.10,
            ingest_instances: 2,
            writer_instances: 2,
            writer_requests_per_minute: None,
            retry_base_ms: 5,
            deadline: Duration::from_secs(300),
            inbound_redelivery: Duration::from_secs(1),
            ticket_ops_redelivery: Duration::from_secs(1),
        }
    }
}

/// Counters of one stage's deliveries.
#[derive(Debug, Default)]
pub struct StageCounters {
    pub batches: AtomicUsize,
    pub records: AtomicUsize,
    pub failures: AtomicUsize,
    /// The most times one message was received (the DLQ takes it after 5).
    pub most_receives: AtomicUsize,
    /// Receipt handles SQS no longer knew when the record was settled (another
    /// receiver of the same message deleted it, or it went to the DLQ).
    pub lost_handles: AtomicUsize,
}

impl StageCounters {
    fn count(&self, event: &aws_lambda_events::sqs::SqsEvent) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.records
            .fetch_add(event.records.len(), Ordering::Relaxed);
        for record in &event.records {
            let receives = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            self.most_receives.fetch_max(receives, Ordering::Relaxed);
        }
    }

    fn failed(&self, response: &aws_lambda_events::sqs::SqsBatchResponse) {
        self.failures
            .fetch_add(response.batch_item_failures.len(), Ordering::Relaxed);
    }

    fn snapshot(&self) -> (usize, usize, usize) {
        (
            self.batches.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// How long each part took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub setup: Duration,
    pub upload: Duration,
    /// From the start of the pipeline until the inbound queue was empty.
    pub ingest: Duration,
    /// From the start of the pipeline until the ticket-ops queue was empty.
    pub writer: Duration,
    pub total: Duration,
}

/// A finished soak: the plan, what was observed, and its reconciliation.
pub struct Soak {
    pub settings: Settings,
    pub plan: Plan,
    pub observed: Observed,
    pub report: Report,
    pub timings: Timings,
    /// (batches, records, failed records) of ingest and of the writers.
    pub ingest_deliveries: (usize, usize, usize),
    pub writer_deliveries: (usize, usize, usize),
    pub deadline_reached: bool,
}

impl Soak {
    /// The reconciliation table and the throughput, for a person.
    pub fn summary(&self) -> String {
        let mut out = self.report.table();
        let t = &self.timings;
        let ops = self.observed.tickets_created + self.observed.comments_added;
        let requests = self.observed.traffic.requests;
        let distinct = self.plan.originals().count();
        let per_second = |n: usize, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
        out.push_str("\nThroughput\n");
        out.push_str(&format!(
            "  setup (tables, queues, 500 accounts)   {:>9.1} s\n",
            t.setup.as_secs_f64()
        ));
        out.push_str(&format!(
            "  upload to S3                           {:>9.1} s   {:>8.1} objects/s\n",
            t.upload.as_secs_f64(),
            per_second(self.plan.objects.len(), t.upload)
        ));
        out.push_str(&format!(
            "  ingest (inbound queue empty)           {:>9.1} s   {:>8.1} messages/s   ({} deliveries of {} records in {} batches; {} failed and redelivered)\n",
            t.ingest.as_secs_f64(),
            per_second(distinct, t.ingest),
            self.ingest_deliveries.1,
            self.plan.objects.len(),
            self.ingest_deliveries.0,
            self.ingest_deliveries.2,
        ));
        out.push_str(&format!(
            "  writer (ticket-ops queue empty)        {:>9.1} s   {:>8.2} ops/s   {:>6.1} requests/s   ({} deliveries of {} operations in {} batches; {} failed and redelivered)\n",
            t.writer.as_secs_f64(),
            per_second(ops, t.writer),
            per_second(requests, t.writer),
            self.writer_deliveries.1,
            ops,
            self.writer_deliveries.0,
            self.writer_deliveries.2,
        ));
        out.push_str(&format!(
            "  API requests per ticket operation      {:>9.2}   ({} requests for {} tickets and {} comments)\n",
            requests as f64 / ops.max(1) as f64,
            requests,
            self.observed.tickets_created,
            self.observed.comments_added,
        ));
        // What the same operations cost with no error and no redelivery:
        // a ticket's lookup, create and note; a comment and its note.
        let floor = 3 * self.observed.tickets_created + 2 * self.observed.comments_added;
        out.push_str(&format!(
            "    the floor, no error (3 a ticket, 2 a comment) {:>5.2}\n",
            floor as f64 / ops.max(1) as f64,
        ));
        out.push_str(&format!(
            "  total wall time                        {:>9.1} s\n",
            t.total.as_secs_f64()
        ));
        if self.deadline_reached {
            out.push_str(&format!(
                "  ABANDONED after the deadline of {} s\n",
                self.settings.deadline.as_secs()
            ));
        }
        out
    }
}

/// Polls all of `futures` until each is done, in the calling task (the
/// handlers' futures are not `Send`, so they cannot be spawned).
async fn join_all<F: Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in &mut futures {
            if let Some(future) = slot {
                if future.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// Runs `work` on every item, `width` at a time.
async fn each<T, F, Fut>(items: Vec<T>, width: usize, work: F)
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for item in items {
        if set.len() >= width {
            set.join_next()
                .await
                .expect("a task")
                .expect("a soak task panicked");
        }
        set.spawn(work(item));
    }
    while let Some(done) = set.join_next().await {
        done.expect("a soak task panicked");
    }
}

async fn set_visibility(stack: &Stack, url: &str, seconds: u32) {
    stack
        .sqs
        .set_queue_attributes()
        .queue_url(url)
        .attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string())
        .send()
        .await
        .expect("set the visibility timeout");
}

/// What the Lambda event source does with a batch's answer: deletes the
/// records that succeeded, and leaves the failed ones invisible for `retry`
/// before SQS delivers them again. A receipt handle SQS no longer knows
/// (another receiver deleted the message, or it went to the DLQ) is counted.
async fn settle(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    event: &aws_lambda_events::sqs::SqsEvent,
    response: &aws_lambda_events::sqs::SqsBatchResponse,
    retry: Duration,
) -> usize {
    let failed: std::collections::HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let mut lost = 0;
    for record in &event.records {
        let id = record.message_id.as_deref().unwrap_or_default();
        let handle = record.receipt_handle.as_deref().expect("receipt handle");
        let code = if failed.contains(id) {
            sqs.change_message_visibility()
                .queue_url(url)
                .receipt_handle(handle)
                .visibility_timeout(retry.as_secs() as i32)
                .send()
                .await
                .err()
                .map(|e| (e.code().map(str::to_string), e.to_string()))
        } else {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(handle)
                .send()
                .await
                .err()
                .map(|e| (e.code().map(str::to_string), e.to_string()))
        };
        match code {
            None => {}
            Some((Some(code), _)) if code == "ReceiptHandleIsInvalid" => lost += 1,
            Some((_, e)) => panic!("settling a record on {url}: {e}"),
        }
    }
    lost
}

/// Counts the metric lines that carry `name`.
fn counted(lines: &[CapturedLines], name: &str) -> usize {
    lines
        .iter()
        .flat_map(CapturedLines::lines)
        .filter(|l: &Value| l.get(name).is_some())
        .count()
}

/// Generates the mail, runs the pipeline to its end and reconciles.
pub async fn run(settings: Settings) -> Soak {
    let started = Instant::now();
    let plan = Plan::generate(settings.messages, settings.seed);
    let stack = Arc::new(Stack::create().await);
    // The deployed visibility timeouts: a record that fails is released at
    // once below (Lambda waits for this timeout instead), one still in flight
    // is never handed to a second instance.
    set_visibility(&stack, &stack.inbound_url, 720).await;
    set_visibility(&stack, &stack.ticket_ops_url, 900).await;
    let table = rootmail_aws::DynamoAccounts::new(stack.dynamodb.clone(), &stack.accounts_table);
    each(plan.accounts.clone(), 16, |account| {
        let table = table.clone();
        async move {
            table.upsert(&account).await.expect("upsert an account");
        }
    })
    .await;
    let zendesk = FakeZendesk::start();
    zendesk.keep_request_bodies(false);
    if let Some(limit) = settings.api_requests_per_minute {
        zendesk.set_rate_limit(limit);
    }
    if settings.failure_fraction > 0.0 {
        zendesk.fail_randomly(settings.failure_fraction, settings.seed);
    }
    let credentials = aws_sdk_secretsmanager::Client::new(&stack.aws)
        .create_secret()
        .name(crate::aws::unique("zendesk-credentials"))
        .secret_string(
            // The marker key travels in the credentials secret here (the
            // documented fallback to MARKER_KEY_SECRET_ARN).
            serde_json::json!({
                "email": zendesk_fake::EMAIL,
                "token": zendesk_fake::TOKEN,
                "marker_key": "rootmail-soak-marker-key-0123456789abcdef",
            })
            .to_string(),
        )
        .send()
        .await
        .expect("create the Zendesk credentials secret")
        .arn
        .expect("secret ARN");
    let setup = started.elapsed();

    let ops_expected = plan.ticketed_mails();
    eprintln!(
        "soak: {} objects ({} distinct, {} copies, {} bad), {} accounts, {} threads; \
         about {} ticket operations",
        plan.objects.len(),
        plan.originals().count(),
        plan.copies(),
        plan.bad(BadInput::Garbage) + plan.bad(BadInput::Oversized) + plan.bad(BadInput::Deleted),
        plan.accounts.len(),
        plan.threads.len(),
        ops_expected,
    );
    if let Some(limit) = settings.writer_requests_per_minute {
        let budget = limit * settings.writer_instances;
        // A create is two lookups, the post and the note; a comment is the
        // listing, the ticket, the comment and the note: four requests each,
        // plus the retries of the injected failures.
        let minutes =
            ops_expected as f64 * 4.0 * (1.0 + settings.failure_fraction * 1.5) / budget as f64;
        eprintln!(
            "soak: the writers send at most {budget} requests a minute; at about 4 requests \
             per operation that is roughly {minutes:.0} minutes"
        );
    }

    let upload_started = Instant::now();
    let uploads: Vec<(String, Vec<u8>)> = plan
        .upload_order
        .iter()
        .map(|i| (plan.objects[*i].key.clone(), plan.objects[*i].raw.clone()))
        .collect();
    each(uploads, 16, |(key, raw)| {
        let stack = stack.clone();
        async move { stack.put_mail(&key, raw).await }
    })
    .await;
    for mail in plan
        .objects
        .iter()
        .filter(|m| m.bad == Some(BadInput::Deleted))
    {
        stack
            .s3
            .delete_object()
            .bucket(&stack.bucket)
            .key(&mail.key)
            .send()
            .await
            .expect("delete an object");
    }
    let upload = upload_started.elapsed();
    eprintln!(
        "soak: {} objects uploaded in {:.1} s",
        plan.objects.len(),
        upload.as_secs_f64()
    );

    let max_bytes = generate::MAX_MESSAGE_BYTES.to_string();
    let mut ingest_metrics = Vec::new();
    let mut ingesters = Vec::new();
    for _ in 0..settings.ingest_instances {
        let (handler, lines) = stack.ingest_handler(&[
            ("MAX_MESSAGE_BYTES", max_bytes.clone()),
            ("INGEST_CONCURRENCY", "4".to_string()),
        ]);
        ingesters.push(handler);
        ingest_metrics.push(lines);
    }
    let mut writer_env = vec![
        ("TICKET_BACKEND", "zendesk".to_string()),
        ("TICKET_CREDENTIALS_SECRET_ARN", credentials),
        ("HTTP_RETRY_BASE_MS", settings.retry_base_ms.to_string()),
        ("HTTP_MAX_ATTEMPTS", "4".to_string()),
        ("WRITER_CONCURRENCY", "4".to_string()),
    ];
    if let Some(limit) = settings.writer_requests_per_minute {
        writer_env.push(("TICKET_API_REQUESTS_PER_MINUTE", limit.to_string()));
    }
    let mut writer_metrics = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..settings.writer_instances {
        let (handler, lines) = stack.writer_handler(&zendesk.base_url, &writer_env).await;
        writers.push(handler);
        writer_metrics.push(lines);
    }

    let pipeline_started = Instant::now();
    let deadline = started + settings.deadline;
    let ingest_counters = Arc::new(StageCounters::default());
    let writer_counters = Arc::new(StageCounters::default());
    let ingest_done = Arc::new(AtomicBool::new(false));
    let abandoned = Arc::new(AtomicBool::new(false));
    let progress = {
        let writer_counters = writer_counters.clone();
        let ingest_counters = ingest_counters.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(60));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let (_, ingested, _) = ingest_counters.snapshot();
                let (_, written, failed) = writer_counters.snapshot();
                eprintln!(
                    "soak: {:>5.0} s: {ingested} inbound deliveries, {written} ticket-op deliveries ({failed} failed)",
                    pipeline_started.elapsed().as_secs_f64()
                );
            }
        })
    };

    let ingest_workers: Vec<_> = ingesters
        .iter()
        .map(|handler| {
            let (stack, counters, abandoned) = (&stack, &ingest_counters, &abandoned);
            let settings = &settings;
            async move {
                let url = &stack.inbound_url;
                loop {
                    if Instant::now() > deadline {
                        abandoned.store(true, Ordering::Relaxed);
                        break;
                    }
                    match receive(&stack.sqs, url, 10).await {
                        Some(event) => {
                            counters.count(&event);
                            let response = handler.handle_sqs(event.clone()).await;
                            counters.failed(&response);
                            let lost = settle(
                                &stack.sqs,
                                url,
                                &event,
                                &response,
                                settings.inbound_redelivery,
                            )
                            .await;
                            counters.lost_handles.fetch_add(lost, Ordering::Relaxed);
                        }
                        None if queue_depth(&stack.sqs, url).await == 0 => break,
                        None => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
        })
        .collect();
    // moto answers concurrent receives from a FIFO queue without a lock, so two
    // of them can hand out one message group twice; SQS never does. One receive
    // at a time restores that (the batches are still processed at once), and
    // `groups` checks it: a group in two writers at once is counted.
    let fifo_receive = tokio::sync::Mutex::new(());
    let in_flight: std::sync::Mutex<std::collections::HashSet<String>> = Default::default();
    let overlapping = AtomicUsize::new(0);
    let writer_workers: Vec<_> = writers
        .iter()
        .map(|handler| {
            let (stack, counters, abandoned, ingest_done) =
                (&stack, &writer_counters, &abandoned, &ingest_done);
            let (fifo_receive, in_flight, overlapping) = (&fifo_receive, &in_flight, &overlapping);
            let settings = &settings;
            async move {
                let url = &stack.ticket_ops_url;
                loop {
                    if Instant::now() > deadline {
                        abandoned.store(true, Ordering::Relaxed);
                        break;
                    }
                    let received = {
                        let _one_at_a_time = fifo_receive.lock().await;
                        receive(&stack.sqs, url, 10).await
                    };
                    match received {
                        Some(event) => {
                            counters.count(&event);
                            let groups: std::collections::HashSet<String> = event
                                .records
                                .iter()
                                .filter_map(|r| r.attributes.get("MessageGroupId").cloned())
                                .collect();
                            {
                                let mut busy = in_flight.lock().expect("groups in flight");
                                for group in &groups {
                                    if !busy.insert(group.clone()) {
                                        overlapping.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                            let response = handler.handle_sqs(event.clone()).await;
                            counters.failed(&response);
                            // Written: from here on SQS may hand the group out
                            // again as its messages are deleted or released.
                            {
                                let mut busy = in_flight.lock().expect("groups in flight");
                                for group in &groups {
                                    busy.remove(group);
                                }
                            }
                            let lost = settle(
                                &stack.sqs,
                                url,
                                &event,
                                &response,
                                settings.ticket_ops_redelivery,
                            )
                            .await;
                            counters.lost_handles.fetch_add(lost, Ordering::Relaxed);
                        }
                        // Ingest has enqueued everything, and nothing is
                        // waiting or in flight.
                        None if ingest_done.load(Ordering::Acquire)
                            && queue_depth(&stack.sqs, url).await == 0 =>
                        {
                            break;
                        }
                        None => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }
        })
        .collect();
    let (ingest, writer) = tokio::join!(
        async {
            join_all(ingest_workers).await;
            ingest_done.store(true, Ordering::Release);
            pipeline_started.elapsed()
        },
        async {
            join_all(writer_workers).await;
            pipeline_started.elapsed()
        }
    );
    progress.abort();

    let observed = Observed {
        objects_in_bucket: count_objects(&stack).await,
        ledger: stack.ledger_rows().await,
        tickets: zendesk.tickets(),
        traffic: zendesk.traffic(),
        inbound_left: queue_depth(&stack.sqs, &stack.inbound_url).await,
        ticket_ops_left: queue_depth(&stack.sqs, &stack.ticket_ops_url).await,
        inbound_dlq: queue_depth(&stack.sqs, &stack.inbound_dlq_url).await,
        ticket_ops_dlq: queue_depth(&stack.sqs, &stack.ticket_ops_dlq_url).await,
        tickets_created: counted(&writer_metrics, "TicketsCreated"),
        comments_added: counted(&writer_metrics, "CommentsAdded"),
        repeated_operations: counted(&writer_metrics, "RepeatedOperations"),
        duplicates_seen: counted(&ingest_metrics, "Duplicates"),
        most_receives: (
            ingest_counters.most_receives.load(Ordering::Relaxed),
            writer_counters.most_receives.load(Ordering::Relaxed),
        ),
        dead_letters: dead_letters(&stack).await,
        overlapping_groups: overlapping.load(Ordering::Relaxed),
        lost_handles: ingest_counters.lost_handles.load(Ordering::Relaxed)
            + writer_counters.lost_handles.load(Ordering::Relaxed),
        bucket: stack.bucket.clone(),
    };
    let report = reconcile(&plan, &observed, &settings);
    let timings = Timings {
        setup,
        upload,
        ingest,
        writer,
        total: started.elapsed(),
    };
    Soak {
        plan,
        observed,
        report,
        timings,
        ingest_deliveries: ingest_counters.snapshot(),
        writer_deliveries: writer_counters.snapshot(),
        deadline_reached: abandoned.load(Ordering::Relaxed),
        settings,
    }
}

async fn count_objects(stack: &Stack) -> usize {
    let mut count = 0;
    let mut token: Option<String> = None;
    loop {
        let page = stack
            .s3
            .list_objects_v2()
            .bucket(&stack.bucket)
            .prefix("inbound/")
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list the bucket");
        count += page.contents().len();
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return count;
        }
    }
}

/// What the dead-letter queues hold: the writer's reason, or for a message SQS
/// moved there, its queue and receive count.
async fn dead_letters(stack: &Stack) -> Vec<String> {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let mut found = Vec::new();
    for (name, url) in [
        ("inbound", &stack.inbound_dlq_url),
        ("ticket-ops", &stack.ticket_ops_dlq_url),
    ] {
        let messages = stack
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("read a dead-letter queue")
            .messages
            .unwrap_or_default();
        for message in messages {
            let reason = message
                .message_attributes()
                .and_then(|a| a.get("reason"))
                .and_then(|r| r.string_value())
                .map(str::to_string);
            let body: Value =
                serde_json::from_str(message.body().unwrap_or_default()).unwrap_or_default();
            let thread = body["thread_key"].as_str().unwrap_or("?").to_string();
            found.push(match reason {
                Some(reason) => format!("{name}: buried by the writer ({thread}): {reason}"),
                None => format!(
                    "{name}: moved by SQS after {} receives ({thread})",
                    message
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .map_or("?", String::as_str)
                ),
            });
        }
    }
    found
}

//! Generated root mail for the soak: what AWS writes to 500 root addresses, in
//! the shapes of the corpus (`tests/corpus/*/`), with the SES headers that make
//! it authentic (`Received: ... for <recipient>`, `X-SES-Spam-Verdict`,
//! `Authentication-Results`). Deterministic for a seed.
//!
//! Besides single mails there are threads: support-case correspondence
//! (`[CASE n]`, threaded on the case id), abuse reports with follow-ups
//! (`In-Reply-To`/`References`), and repeating budget and CloudWatch alerts (one
//! thread per account and budget or alarm). The upload order is shuffled, so a
//! thread's replies arrive out of order. Some objects are exact copies of
//! another under a second key (SES and S3 deliver at least once), some are bad
//! input: bytes that are not a message, objects larger than the ingest limit,
//! and objects deleted before they are read.

use crate::XorShift;
use rootmail_domain::dates::{rfc2822, utc};
use rootmail_domain::{Account, AccountId, AccountStatus, EmailAddress};
use std::collections::HashSet;

pub const ROOT_DOMAIN: &str = "root.example-msp.com";

/// The largest message the soak's ingest reads (SES allows 40 MB; a lower
/// limit keeps "oversized" objects cheap to write).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// 2026-03-01 00:00:00 UTC: the generated month starts here.
const MONTH_START: u64 = 1_772_323_200;

/// What the pipeline should do with a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Ticket,
    Archive,
    Quarantine,
}

impl Outcome {
    /// The ledger's name for it.
    pub fn disposition(self) -> &'static str {
        match self {
            Self::Ticket => "ticket",
            Self::Archive => "archive",
            Self::Quarantine => "quarantine",
        }
    }
}

/// Input that is not a readable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    /// Bytes that do not parse as a message.
    Garbage,
    /// Larger than [`MAX_MESSAGE_BYTES`]: quarantined unread.
    Oversized,
    /// Deleted from the bucket before it is read.
    Deleted,
}

/// One object written to the bucket.
#[derive(Debug, Clone)]
pub struct Mail {
    /// `inbound/<SES message id>`.
    pub key: String,
    pub raw: Vec<u8>,
    /// The kind triage should find (`mail.unparseable` for every bad input).
    pub kind: &'static str,
    pub outcome: Outcome,
    /// The thread (index into [`Plan::threads`]) of a mail that makes a ticket.
    pub thread: Option<usize>,
    /// The `Date:` header, seconds since the epoch.
    pub date: Option<u64>,
    /// An exact copy (same bytes, another key) of this object.
    pub copy_of: Option<usize>,
    pub bad: Option<BadInput>,
    /// A code that must never reach a ticket.
    pub secret: Option<String>,
}

impl Mail {
    /// Whether the pipeline can read it (not deleted, not oversized).
    pub fn readable(&self) -> bool {
        !matches!(self.bad, Some(BadInput::Oversized | BadInput::Deleted))
    }
}

/// Mails that belong on one ticket, in date order (originals only).
#[derive(Debug, Clone)]
pub struct Thread {
    pub label: &'static str,
    pub mails: Vec<usize>,
}

/// Everything the soak writes, and what it expects.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub accounts: Vec<Account>,
    /// In generation order; copies point at their original.
    pub objects: Vec<Mail>,
    /// Object indices in the order they are uploaded (shuffled).
    pub upload_order: Vec<usize>,
    pub threads: Vec<Thread>,
}

impl Plan {
    pub fn originals(&self) -> impl Iterator<Item = (usize, &Mail)> {
        self.objects
            .iter()
            .enumerate()
            .filter(|(_, m)| m.copy_of.is_none())
    }

    pub fn copies(&self) -> usize {
        self.objects.iter().filter(|m| m.copy_of.is_some()).count()
    }

    pub fn bad(&self, which: BadInput) -> usize {
        self.objects.iter().filter(|m| m.bad == Some(which)).count()
    }

    /// Mails that are later in their thread than its first: one comment each.
    pub fn later_mails(&self) -> usize {
        self.threads.iter().map(|t| t.mails.len() - 1).sum()
    }

    /// Mails that make a ticket or a comment: one internal note each.
    pub fn ticketed_mails(&self) -> usize {
        self.threads.iter().map(|t| t.mails.len()).sum()
    }

    /// Generates `objects` objects for 500 accounts: 5% exact copies, 2% bad
    /// input (at least one of each sort), the rest realistic root mail.
    pub fn generate(objects: usize, seed: u64) -> Self {
        let mut g = Generator {
            rng: XorShift::new(seed),
            plan: Plan {
                seed,
                accounts: Vec::new(),
                objects: Vec::new(),
                upload_order: Vec::new(),
                threads: Vec::new(),
            },
            used_ids: HashSet::new(),
            used_alerts: HashSet::new(),
        };
        g.accounts(500);
        let copies = ((objects as f64 * 0.05).round() as usize).max(1);
        let bad = ((objects as f64 * 0.02).round() as usize).max(3);
        let good = objects.saturating_sub(copies + bad);
        while g.plan.objects.len() < good {
            let room = good - g.plan.objects.len();
            g.scenario(room);
        }
        let deleted = (bad / 7).max(1);
        let oversized = (bad / 7).max(1);
        for n in 0..bad {
            let which = if n < deleted {
                BadInput::Deleted
            } else if n < deleted + oversized {
                BadInput::Oversized
            } else {
                BadInput::Garbage
            };
            g.bad_input(which);
        }
        let originals: Vec<usize> = (0..g.plan.objects.len())
            .filter(|i| g.plan.objects[*i].bad.is_none())
            .collect();
        let mut chosen = HashSet::new();
        while chosen.len() < copies.min(originals.len()) {
            chosen.insert(originals[g.below(originals.len())]);
        }
        let mut chosen: Vec<usize> = chosen.into_iter().collect();
        chosen.sort_unstable();
        for original in chosen {
            let mut copy = g.plan.objects[original].clone();
            copy.key = format!("inbound/{}", g.ses_id());
            copy.copy_of = Some(original);
            g.plan.objects.push(copy);
        }
        let mut order: Vec<usize> = (0..g.plan.objects.len()).collect();
        for i in (1..order.len()).rev() {
            let j = g.below(i + 1);
            order.swap(i, j);
        }
        g.plan.upload_order = order;
        g.plan
    }
}

struct Generator {
    rng: XorShift,
    plan: Plan,
    used_ids: HashSet<String>,
    /// (account, alert name) pairs that already have their thread.
    used_alerts: HashSet<(usize, &'static str)>,
}

/// The headers a mail differs in; the SES headers are derived from them.
struct Headers<'a> {
    from_name: &'a str,
    from: &'a str,
    subject: String,
    message_id: String,
    in_reply_to: Option<String>,
    references: Vec<String>,
    extra: Vec<String>,
    /// False: a forgery that fails SPF, DKIM and DMARC.
    authentic: bool,
}

impl Generator {
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n as u64) as usize
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.rng.next_u64() % (high - low + 1)
    }

    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }

    fn hex(&mut self, n: usize) -> String {
        self.chars(b"0123456789abcdef", n)
    }

    /// A fresh identifier: never handed out twice in one plan.
    fn unique(&mut self, make: impl Fn(&mut Self) -> String) -> String {
        loop {
            let id = make(self);
            if self.used_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    /// An SES message id (the object's name).
    fn ses_id(&mut self) -> String {
        self.unique(|g| g.chars(b"abcdefghijklmnopqrstuvwxyz0123456789", 40))
    }

    /// A Message-ID as SES-sent AWS mail carries them.
    fn ses_message_id(&mut self) -> String {
        self.unique(|g| {
            format!(
                "010018{}-{}-{}-{}-{}-{}-000000@email.amazonses.com",
                g.hex(10),
                g.hex(8),
                g.hex(4),
                g.hex(4),
                g.hex(4),
                g.hex(12)
            )
        })
    }

    fn accounts(&mut self, n: usize) {
        const NAMES: [&str; 10] = [
            "Acme",
            "Globex",
            "Initech",
            "Umbrella",
            "Hooli",
            "Stark",
            "Wayne",
            "Tyrell",
            "Soylent",
            "Cyberdyne",
        ];
        const SUFFIXES: [&str; 5] = ["Corp", "Ltd", "GmbH", "Health", "Labs"];
        for i in 0..n {
            let token = self.unique(|g| g.chars(b"abcdefghijklmnopqrstuvwxyz0123456789", 8));
            let id = self.unique(|g| format!("{}", g.between(100_000_000_000, 999_999_999_999)));
            let customer = format!(
                "{} {} {:03}",
                NAMES[i % NAMES.len()],
                SUFFIXES[(i / NAMES.len()) % SUFFIXES.len()],
                i
            );
            self.plan.accounts.push(Account {
                root_email: EmailAddress::parse(&format!("root+{token}@{ROOT_DOMAIN}"))
                    .expect("a valid root address"),
                account_id: AccountId::parse(&id).expect("12 digits"),
                customer,
                status: AccountStatus::Active,
                payer: None,
            });
        }
    }

    /// One scenario (a thread or a single mail) with at most `room` mails.
    fn scenario(&mut self, room: usize) {
        let account = self.below(self.plan.accounts.len());
        let start = MONTH_START + self.between(0, 27 * 86_400);
        match self.below(100) {
            0..=19 => {
                let n = self.between(2, 6) as usize;
                self.support_case(account, start, n.min(room));
            }
            20..=27 => {
                let n = self.between(1, 3) as usize;
                self.abuse_report(account, start, n.min(room));
            }
            28..=41 => {
                let n = self.between(1, 4) as usize;
                self.budget_alerts(account, start, n.min(room));
            }
            42..=51 => {
                let n = self.between(1, 4) as usize;
                self.alarms(account, start, n.min(room));
            }
            52..=69 => self.statement(account, start),
            70..=77 => self.newsletter(account, start),
            78..=83 => self.payment_failed(account, start),
            84..=87 => self.exposed_key(account, start),
            88..=92 => self.signin_code(account, start),
            93..=97 => self.vendor_mail(account, start),
            _ => self.phishing(account, start),
        }
    }

    fn thread(&mut self, label: &'static str) -> usize {
        self.plan.threads.push(Thread {
            label,
            mails: Vec::new(),
        });
        self.plan.threads.len() - 1
    }

    /// Writes one mail as SES stores it and adds it to the plan.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        account: usize,
        date: u64,
        headers: Headers<'_>,
        body: &str,
        kind: &'static str,
        outcome: Outcome,
        thread: Option<usize>,
        secret: Option<String>,
    ) {
        let ses_id = self.ses_id();
        let rcpt = self.plan.accounts[account].root_email.as_str().to_string();
        let domain = headers
            .from
            .rsplit_once('@')
            .map_or("amazon.com", |(_, d)| d);
        let bounce = format!("010018{}-{}-000000", self.hex(10), self.hex(8));
        let (relay, ip) = if headers.authentic {
            ("a8-12.smtp-out.amazonses.com", "54.240.8.12")
        } else {
            ("mail.account-alerts.example", "203.0.113.45")
        };
        let mut text = String::new();
        if headers.authentic {
            text.push_str(&format!("Return-Path: <{bounce}@amazonses.com>\r\n"));
        } else {
            text.push_str(&format!("Return-Path: <{}>\r\n", headers.from));
        }
        text.push_str(&format!(
            "Received: from {relay} ({relay} [{ip}])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id {ses_id}\r\n for {rcpt};\r\n {} (UTC)\r\n",
            rfc2822(date + 9)
        ));
        text.push_str("X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n");
        if headers.authentic {
            let envelope =
                format!("client-ip={ip}; envelope-from={bounce}@amazonses.com; helo={relay};");
            text.push_str(&format!("Received-SPF: pass (spf=pass) {envelope}\r\n"));
            text.push_str(&format!(
                "Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) {envelope}\r\n dkim=pass header.i=@{domain};\r\n dkim=pass header.i=@amazonses.com;\r\n dmarc=pass header.from={domain};\r\n"
            ));
        } else {
            let envelope = format!(
                "client-ip={ip}; envelope-from={}; helo={relay};",
                headers.from
            );
            text.push_str(&format!("Received-SPF: fail (spf=fail) {envelope}\r\n"));
            text.push_str(&format!(
                "Authentication-Results: amazonses.com;\r\n spf=fail (spf=fail) {envelope}\r\n dkim=none;\r\n dmarc=fail header.from={domain};\r\n"
            ));
        }
        text.push_str(&format!("Date: {}\r\n", rfc2822(date)));
        text.push_str(&format!(
            "From: {} <{}>\r\n",
            headers.from_name, headers.from
        ));
        text.push_str(&format!("To: {rcpt}\r\n"));
        text.push_str(&format!("Message-ID: <{}>\r\n", headers.message_id));
        text.push_str(&format!("Subject: {}\r\n", headers.subject));
        if let Some(parent) = &headers.in_reply_to {
            text.push_str(&format!("In-Reply-To: <{parent}>\r\n"));
        }
        if !headers.references.is_empty() {
            let list: Vec<String> = headers
                .references
                .iter()
                .map(|r| format!("<{r}>"))
                .collect();
            text.push_str(&format!("References: {}\r\n", list.join(" ")));
        }
        for line in &headers.extra {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n");
        text.push_str(&body.replace('\n', "\r\n"));
        text.push_str("\r\n");
        let index = self.plan.objects.len();
        if let Some(thread) = thread {
            self.plan.threads[thread].mails.push(index);
        }
        self.plan.objects.push(Mail {
            key: format!("inbound/{ses_id}"),
            raw: text.into_bytes(),
            kind,
            outcome,
            thread,
            date: Some(date),
            copy_of: None,
            bad: None,
            secret,
        });
    }

    fn account_id(&self, account: usize) -> String {
        self.plan.accounts[account].account_id.as_str().to_string()
    }

    fn support_case(&mut self, account: usize, start: u64, mails: usize) {
        const TOPICS: [&str; 6] = [
            "Unable to access S3 bucket after bucket policy change",
            "Request to increase EC2 vCPU limit in eu-west-1",
            "RDS instance stuck in modifying state",
            "Billing question about data transfer charges",
            "Route 53 hosted zone not resolving",
            "Lambda function timing out after runtime update",
        ];
        const REPLIES: [&str; 5] = [
            "We have reviewed the configuration and applied the requested change.",
            "Could you share the request ID and the time of the last failure?",
            "The engineering team has identified the cause and a fix is rolling out.",
            "Thank you for the details. We are still investigating and will update you.",
            "The issue is resolved on our side. Please confirm it works for you.",
        ];
        let case = self.unique(|g| format!("17{:011}", g.rng.next_u64() % 100_000_000_000));
        let topic = TOPICS[self.below(TOPICS.len())];
        let id = self.account_id(account);
        let thread = self.thread("support.case");
        let mut date = start;
        let mut ids: Vec<String> = Vec::new();
        for n in 0..mails {
            let message_id = self.unique(|g| {
                format!(
                    "{}-{}-{}-{}-{}@support.amazon.com",
                    g.hex(8),
                    g.hex(4),
                    g.hex(4),
                    g.hex(4),
                    g.hex(12)
                )
            });
            let (subject, body) = if n == 0 {
                (
                    format!("[CASE {case}] {topic}"),
                    format!(
                        "Hello,\n\nWe have received your request and opened case {case}. An AWS Support\nengineer will respond based on the severity you selected.\n\nCase ID: {case}\nSubject: {topic}\nSeverity: Normal\nAccount: {id}\n\nTo see the case and respond, please sign in to the AWS Support Center:\nhttps://console.aws.amazon.com/support/home#/case/?displayId={case}&language=en\n\nThank you for using Amazon Web Services.\n\nSincerely,\nAmazon Web Services"
                    ),
                )
            } else {
                let reply = REPLIES[self.below(REPLIES.len())];
                (
                    format!("RE: [Case {case}] New correspondence added"),
                    format!(
                        "Hello,\n\nYour case {case} has new correspondence (update {n}).\n\nCorrespondence: {reply}\n\nBest regards,\nAmazon Web Services\n\nTo see the case and respond, sign in to the AWS Support Center:\nhttps://console.aws.amazon.com/support/home#/case/?displayId={case}&language=en"
                    ),
                )
            };
            let headers = Headers {
                from_name: "Amazon Web Services",
                from: "no-reply-aws@amazon.com",
                subject,
                message_id: message_id.clone(),
                in_reply_to: ids.last().cloned(),
                references: ids.clone(),
                extra: Vec::new(),
                authentic: true,
            };
            self.push(
                account,
                date,
                headers,
                &body,
                "support.case",
                Outcome::Ticket,
                Some(thread),
                None,
            );
            ids.push(message_id);
            date += self.between(600, 2 * 86_400);
        }
    }

    fn abuse_report(&mut self, account: usize, start: u64, mails: usize) {
        let id = self.account_id(account);
        let thread = self.thread("security.abuse_report");
        let instance = format!("i-0{}", self.hex(16));
        let ip = format!(
            "18.{}.{}.{}",
            self.between(0, 255),
            self.between(0, 255),
            self.between(1, 254)
        );
        let subject = "AWS Abuse Report: port scanning from your EC2 instance";
        let mut date = start;
        let mut ids: Vec<String> = Vec::new();
        for n in 0..mails {
            let message_id = self.ses_message_id();
            let (subject, body) = if n == 0 {
                (
                    subject.to_string(),
                    format!(
                        "Hello,\n\nWe've received a report that your AWS resource\n\nAWS ID: {id}\nRegion: eu-central-1\nInstance Id: {instance}\nIP Address: {ip}\n\nhas been implicated in activity which resembles scanning remote hosts on the\ninternet for security vulnerabilities. Activity of this nature is forbidden\nin the AWS Acceptable Use Policy (https://aws.amazon.com/aup/).\n\nPlease take action to stop the reported activity and reply directly to this\nemail with details of the corrective actions you have taken.\n\nIf you do not respond within 24 hours, we may take action to mitigate the\nactivity, including blocking traffic to the instances or suspending the account.\n\nRegards,\nAWS Trust & Safety"
                    ),
                )
            } else {
                (
                    format!("RE: {subject}"),
                    format!(
                        "Hello,\n\nWe are following up on the abuse report below (reminder {n}).\n\nAWS ID: {id}\nInstance Id: {instance}\nIP Address: {ip}\n\nWe have received further reports of this activity. Please reply with the\ncorrective actions you have taken within 24 hours, or we may suspend the\ninstance.\n\nRegards,\nAWS Trust & Safety"
                    ),
                )
            };
            let headers = Headers {
                from_name: "Amazon EC2 Abuse",
                from: "ec2-abuse@amazon.com",
                subject,
                message_id: message_id.clone(),
                in_reply_to: ids.last().cloned(),
                references: ids.clone(),
                extra: vec!["Reply-To: ec2-abuse@amazon.com".to_string()],
                authentic: true,
            };
            self.push(
                account,
                date,
                headers,
                &body,
                "security.abuse_report",
                Outcome::Ticket,
                Some(thread),
                None,
            );
            ids.push(message_id);
            date += self.between(3600, 86_400);
        }
    }

    /// An alert name this account has no thread for yet, if any is left.
    fn alert_name(&mut self, account: usize, names: &[&'static str]) -> Option<&'static str> {
        let first = self.below(names.len());
        (0..names.len())
            .map(|i| names[(first + i) % names.len()])
            .find(|name| self.used_alerts.insert((account, *name)))
    }

    fn budget_alerts(&mut self, account: usize, start: u64, mails: usize) {
        // No digits: the thread key normalizes numbers away.
        const BUDGETS: [&str; 5] = [
            "Monthly-Prod",
            "Monthly-Dev",
            "Data-Platform",
            "Sandbox-Spend",
            "Marketing-Site",
        ];
        let Some(budget) = self.alert_name(account, &BUDGETS) else {
            return self.statement(account, start);
        };
        let id = self.account_id(account);
        let thread = self.thread("billing.budget_alert");
        let limit = self.between(5, 50) * 100;
        let mut date = start;
        for _ in 0..mails {
            let spent = limit * self.between(81, 140) / 100;
            let body = format!(
                "Dear AWS Customer,\n\nYou requested that we alert you when the ACTUAL Cost associated with your\n{budget} budget is greater than ${limit}.00 for the current month. The ACTUAL Cost\nassociated with this budget is ${spent}.{:02}. You can find additional details below\nand by accessing the AWS Budgets dashboard [1].\n\nBudget Name: {budget}\nBudget Type: Cost\nBudgeted Amount: ${limit}.00\nAlert Type: ACTUAL\nAlert Threshold: > 80.00%\nACTUAL Amount: ${spent}.{:02}\nAWS Account: {id}\n\n[1] https://console.aws.amazon.com/billing/home#/budgets",
                date % 100,
                date % 100
            );
            let headers = Headers {
                from_name: "AWS Budgets",
                from: "budgets@costalerts.amazonaws.com",
                subject: format!("AWS Budgets: {budget} has exceeded your alert threshold"),
                message_id: self.ses_message_id(),
                in_reply_to: None,
                references: Vec::new(),
                extra: Vec::new(),
                authentic: true,
            };
            self.push(
                account,
                date,
                headers,
                &body,
                "billing.budget_alert",
                Outcome::Ticket,
                Some(thread),
                None,
            );
            date += self.between(3600, 3 * 86_400);
        }
    }

    fn alarms(&mut self, account: usize, start: u64, mails: usize) {
        const ALARMS: [&str; 5] = [
            "api-errors-high",
            "cpu-high",
            "queue-backlog",
            "disk-space-low",
            "latency-high",
        ];
        let Some(alarm) = self.alert_name(account, &ALARMS) else {
            return self.newsletter(account, start);
        };
        let id = self.account_id(account);
        let thread = self.thread("notification.cloudwatch_alarm");
        let topic = format!("arn:aws:sns:us-east-1:{id}:prod-alarms");
        let mut date = start;
        for _ in 0..mails {
            let value = self.between(26, 99);
            let when = utc(date);
            let body = format!(
                "You are receiving this email because your Amazon CloudWatch Alarm \"{alarm}\" in the US East (N. Virginia) region has entered the ALARM state, because \"Threshold Crossed: 1 out of the last 1 datapoints [{value}.0] was greater than or equal to the threshold (25.0)\" at \"{when}\".\n\nView this alarm in the AWS Management Console:\nhttps://us-east-1.console.aws.amazon.com/cloudwatch/deeplink.js?region=us-east-1#alarmsV2:alarm/{alarm}\n\nAlarm Details:\n- Name:                       {alarm}\n- State Change:               OK -> ALARM\n- Timestamp:                  {when}\n- AWS Account:                {id}\n- Alarm Arn:                  arn:aws:cloudwatch:us-east-1:{id}:alarm:{alarm}\n\n--\nIf you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:\nhttps://sns.us-east-1.amazonaws.com/unsubscribe.html?SubscriptionArn={topic}"
            );
            let sns_id = format!(
                "{}-{}-{}-{}-{}",
                self.hex(8),
                self.hex(4),
                self.hex(4),
                self.hex(4),
                self.hex(12)
            );
            let headers = Headers {
                from_name: "AWS Notifications",
                from: "no-reply@sns.amazonaws.com",
                subject: format!("ALARM: \"{alarm}\" in US East (N. Virginia)"),
                message_id: self.ses_message_id(),
                in_reply_to: None,
                references: Vec::new(),
                extra: vec![
                    format!("x-amz-sns-message-id: {sns_id}"),
                    format!("x-amz-sns-subscription-arn: {topic}:{}", self.hex(8)),
                ],
                authentic: true,
            };
            self.push(
                account,
                date,
                headers,
                &body,
                "notification.cloudwatch_alarm",
                Outcome::Ticket,
                Some(thread),
                None,
            );
            date += self.between(600, 2 * 86_400);
        }
    }

    /// A mail that makes its own ticket.
    #[allow(clippy::too_many_arguments)]
    fn single(
        &mut self,
        account: usize,
        date: u64,
        headers: Headers<'_>,
        body: &str,
        kind: &'static str,
        outcome: Outcome,
        secret: Option<String>,
    ) {
        let thread = match outcome {
            Outcome::Archive => None,
            Outcome::Ticket | Outcome::Quarantine => Some(self.thread(kind)),
        };
        self.push(account, date, headers, body, kind, outcome, thread, secret);
    }

    fn simple_headers<'a>(
        &mut self,
        from_name: &'a str,
        from: &'a str,
        subject: String,
    ) -> Headers<'a> {
        Headers {
            from_name,
            from,
            subject,
            message_id: self.ses_message_id(),
            in_reply_to: None,
            references: Vec::new(),
            extra: Vec::new(),
            authentic: true,
        }
    }

    fn statement(&mut self, account: usize, date: u64) {
        let id = self.account_id(account);
        let total = format!("{}.{:02}", self.between(10, 20_000), self.between(0, 99));
        let body = format!(
            "Greetings from Amazon Web Services,\n\nThis e-mail confirms that your latest billing statement is available on the AWS\nweb site. Your account will be charged the following:\n\nTotal: ${total}\n\nPlease see the Billing console for the complete details of your charges:\nhttps://console.aws.amazon.com/billing/home#/bills?year=2026&month=2\n\nThank you for using Amazon Web Services.\n\nSincerely,\nAmazon Web Services"
        );
        let headers = self.simple_headers(
            "Amazon Web Services Billing",
            "invoicing@aws.com",
            format!("Billing Statement Available [Account: {id}]"),
        );
        self.single(
            account,
            date,
            headers,
            &body,
            "billing.statement",
            Outcome::Archive,
            None,
        );
    }

    fn newsletter(&mut self, account: usize, date: u64) {
        let issue = self.hex(6);
        let body = format!(
            "AWS Newsletter - March 2026\n\n* Amazon S3 adds conditional writes for copy operations\n* AWS Lambda supports a new managed runtime\n* Webinar: cost optimization for data workloads\n\nRead more: https://aws.amazon.com/new/?trk=em_newsletter_{issue}\n\nYou received this email because you are subscribed to the AWS Newsletter.\nManage preferences or unsubscribe: https://pages.awscloud.com/communication-preferences.html"
        );
        let mut headers = self.simple_headers(
            "AWS Newsletter",
            "aws-marketing-email-replies@amazon.com",
            "AWS Newsletter: What's new in March 2026".to_string(),
        );
        headers.extra = vec![
            format!(
                "List-Unsubscribe: <https://pages.awscloud.com/unsubscribe.html?mkt_tok={}>",
                self.hex(32)
            ),
            "Precedence: bulk".to_string(),
        ];
        self.single(
            account,
            date,
            headers,
            &body,
            "marketing",
            Outcome::Archive,
            None,
        );
    }

    fn payment_failed(&mut self, account: usize, date: u64) {
        let id = self.account_id(account);
        let last4 = &id[8..];
        let amount = format!("{}.{:02}", self.between(10, 20_000), self.between(0, 99));
        let invoice = self.between(1_000_000_000, 9_999_999_999);
        let body = format!(
            "Greetings from Amazon Web Services,\n\nWe were unable to charge your payment method for the AWS account ending in\n{last4}. The charge of USD {amount} for invoice {invoice} was declined by your\nbank.\n\nPlease update your payment method or pay the invoice in the Billing console:\nhttps://console.aws.amazon.com/billing/home#/paymentmethods\n\nIf payment is not received, your account may be suspended.\n\nSincerely,\nAWS Accounts Receivable"
        );
        let headers = self.simple_headers(
            "AWS Receivables",
            "aws-receivables-support@email.amazon.com",
            "AWS Billing: payment failed - unable to charge your payment method".to_string(),
        );
        self.single(
            account,
            date,
            headers,
            &body,
            "billing.payment_issue",
            Outcome::Ticket,
            None,
        );
    }

    fn exposed_key(&mut self, account: usize, date: u64) {
        let id = self.account_id(account);
        let key = format!(
            "AKIA{}",
            self.chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        );
        let case = self.unique(|g| format!("17{:09}", g.rng.next_u64() % 1_000_000_000));
        let body = format!(
            "Amazon Web Services has opened case {case} on your behalf.\n\nThe details of the case are as follows:\n\nCase ID: {case}\nSubject: Your AWS Access Key is Exposed for AWS Account {id}\nSeverity: Urgent\nCorrespondence: Dear AWS Customer,\n\nWe have become aware that the AWS Access Key {key}, belonging to\nIAM User \"ci-deployer\", along with the corresponding Secret Key is publicly\navailable online.\n\nStep 1: Delete the exposed AWS Access Key {key}.\nStep 2: Check your AWS CloudTrail logs for unwanted activity.\nStep 3: Review your AWS account for any unauthorized AWS usage.\n\nTo view this case, please sign in to the AWS Support Center."
        );
        let headers = self.simple_headers(
            "Amazon Web Services",
            "no-reply-aws@amazon.com",
            format!("Your AWS Access Key is Exposed for AWS Account {id}"),
        );
        self.single(
            account,
            date,
            headers,
            &body,
            "security.exposed_key",
            Outcome::Ticket,
            None,
        );
    }

    fn signin_code(&mut self, account: usize, date: u64) {
        let id = self.account_id(account);
        let code = format!("{:06}", self.between(100_000, 999_999));
        let body = format!(
            "Hello,\n\nSomeone is trying to sign in to AWS account {id} as the root user from\na new browser or device.\n\nBrowser: Firefox 135 on Linux\nApproximate location: Frankfurt am Main, Germany\n\nTo finish signing in, enter this verification code:\n\n{code}\n\nThe code expires in 10 minutes. If you did not try to sign in, change your\nroot user password and contact AWS Support.\n\nAmazon Web Services"
        );
        let headers = self.simple_headers(
            "AWS",
            "no-reply@signin.aws",
            "Verify your identity".to_string(),
        );
        self.single(
            account,
            date,
            headers,
            &body,
            "security.signin_otp",
            Outcome::Ticket,
            Some(code),
        );
    }

    /// Mail from outside AWS that reached a root address: a ticket to triage.
    fn vendor_mail(&mut self, account: usize, date: u64) {
        let invoice = self.between(10_000, 99_999);
        let body = format!(
            "Hello,\n\nYour invoice INV-{invoice} from Example Monitoring SaaS is ready.\nThe amount will be charged to the card on file.\n\nView it at https://billing.monitoring-saas.example/invoices/{invoice}\n\nThanks,\nThe Example Monitoring team"
        );
        let mut headers = self.simple_headers(
            "Example Monitoring",
            "billing@monitoring-saas.example",
            format!("Your invoice INV-{invoice} is ready"),
        );
        headers.message_id = self.unique(|g| format!("{}@monitoring-saas.example", g.hex(24)));
        self.single(
            account,
            date,
            headers,
            &body,
            "unknown",
            Outcome::Ticket,
            None,
        );
    }

    /// Claims to be AWS and fails SPF, DKIM and DMARC: quarantined.
    fn phishing(&mut self, account: usize, date: u64) {
        let id = self.account_id(account);
        let body = format!(
            "Hello,\n\nWe blocked a sign-in attempt to your AWS account {id} from an unknown\ndevice. To keep your account active you must confirm your identity within 12\nhours:\nhttps://signin-aws.account-verify.example/login?acct={id}\n\nIf you do not confirm, your account and all resources will be suspended.\n\nAmazon Web Services Security Team"
        );
        let mut headers = self.simple_headers(
            "Amazon Web Services",
            "no-reply@signin.aws",
            "Unusual sign-in activity on your AWS account".to_string(),
        );
        headers.authentic = false;
        headers.message_id = self.unique(|g| format!("{}@signin.aws", g.hex(24)));
        self.single(
            account,
            date,
            headers,
            &body,
            "phishing.suspected",
            Outcome::Quarantine,
            None,
        );
    }

    fn bad_input(&mut self, which: BadInput) {
        let ses_id = self.ses_id();
        let raw = match which {
            BadInput::Garbage => loop {
                let size = self.between(64, 4096) as usize;
                let bytes = self.rng.bytes(size);
                if rootmail_domain::mail::parse(&bytes).is_err() {
                    break bytes;
                }
            },
            BadInput::Oversized => {
                let size = MAX_MESSAGE_BYTES + self.between(1, 64 * 1024) as usize;
                let mut raw = format!(
                    "From: no-reply-aws@amazon.com\r\nTo: {}\r\nSubject: Your AWS usage report\r\n\r\n",
                    self.plan.accounts[0].root_email.as_str()
                )
                .into_bytes();
                while raw.len() < size {
                    raw.extend_from_slice(b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n");
                }
                raw.extend_from_slice(self.hex(16).as_bytes());
                raw
            }
            BadInput::Deleted => {
                let tag = self.hex(16);
                format!(
                    "From: no-reply-aws@amazon.com\r\nTo: {}\r\nSubject: deleted before it was read {tag}\r\n\r\nGone.\r\n",
                    self.plan.accounts[0].root_email.as_str(),
                )
                .into_bytes()
            }
        };
        let thread = self.thread("mail.unparseable");
        let index = self.plan.objects.len();
        self.plan.threads[thread].mails.push(index);
        self.plan.objects.push(Mail {
            key: format!("inbound/{ses_id}"),
            raw,
            kind: "mail.unparseable",
            outcome: Outcome::Quarantine,
            thread: Some(thread),
            date: None,
            copy_of: None,
            bad: Some(which),
            secret: None,
        });
    }
}

/// `2026-03-03T09:02:44Z`: a mail's date as the ticket body shows it.
pub fn rfc3339(secs: u64) -> String {
    let text = utc(secs);
    let mut parts = text.split(' ');
    let day = parts.next().unwrap_or_default();
    let time = parts.next().unwrap_or_default();
    format!("{day}T{time}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_deterministic_and_proportioned() {
        let a = Plan::generate(1000, 7);
        let b = Plan::generate(1000, 7);
        assert_eq!(a.objects.len(), 1000);
        assert_eq!(a.upload_order, b.upload_order);
        assert!(
            a.objects
                .iter()
                .zip(&b.objects)
                .all(|(x, y)| x.raw == y.raw)
        );
        assert_eq!(a.copies(), 50);
        assert_eq!(
            a.bad(BadInput::Garbage) + a.bad(BadInput::Oversized) + a.bad(BadInput::Deleted),
            20
        );
        let keys: HashSet<&str> = a.objects.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys.len(), 1000, "every object has its own key");
        assert!(a.threads.iter().any(|t| t.mails.len() > 2));
        assert_eq!(
            rfc3339(MONTH_START + 9 * 3600 + 2 * 60 + 44),
            "2026-03-01T09:02:44Z"
        );
    }
}

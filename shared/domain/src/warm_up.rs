//! The one-time cost of the first triage, paid before the first mail.
//!
//! A process's first triage compiles the regular expressions every later
//! one reuses (facts, secrets, threads: compiled on first use) and builds the
//! lazy automata's first states: measured, 12 ms for a trivial first mail and
//! 3 to 5 ms more for each of the next few kinds, where a warm triage takes
//! 0.1 ms. A Lambda function pays that in its first invocations, at the CPU
//! share its memory buys (256 MB: about a seventh of a vCPU, so seven times
//! as long), but during its init phase it runs on a full vCPU. [`warm_up`]
//! triages one made-up AWS mail that reaches those paths, so the function's
//! init pays it instead.

use crate::directory::InMemoryDirectory;
use crate::rules::Rules;
use crate::triage::{Context, MailInput, Triage, triage};

/// Triages [`SAMPLE`] with `rules` and no stores: nothing is written or kept
/// but what triage caches for the process. Returns the triage, for the test
/// that checks the sample still reaches classification, facts and the body's
/// HTML.
pub fn warm_up(rules: &Rules) -> Triage {
    triage_without_stores(SAMPLE.as_bytes(), "rootmail warm-up", rules)
}

/// One message triaged with an empty directory, no known threads and no
/// waiting rotation.
pub(crate) fn triage_without_stores(raw: &[u8], origin: &str, rules: &Rules) -> Triage {
    let directory = InMemoryDirectory::default();
    let ctx = Context::without_stores(&directory, rules);
    let input = MailInput {
        raw,
        origin,
        object_name: None,
    };
    triage(&input, &ctx)
}

/// An AWS billing notice as SES stores it (its verdicts and authentication
/// results above the message), written for this purpose: a text part and an
/// HTML part, quoted-printable, naming an account, a case, an amount, a
/// date, a time limit, an ARN and an address.
const SAMPLE: &str = "\
Return-Path: <0100019a-warm-up@amazonses.com>
Received: from a8-12.smtp-out.amazonses.com (a8-12.smtp-out.amazonses.com [54.240.8.12])
 by inbound-smtp.us-east-1.amazonaws.com with SMTP id warmup
 for root+warmup@root.example.com;
 Tue, 03 Mar 2026 01:22:20 +0000 (UTC)
X-SES-Spam-Verdict: PASS
X-SES-Virus-Verdict: PASS
Received-SPF: pass (spf=pass) client-ip=54.240.8.12; envelope-from=0100019a-warm-up@amazonses.com; helo=a8-12.smtp-out.amazonses.com;
Authentication-Results: amazonses.com;
 spf=pass (spf=pass) client-ip=54.240.8.12; envelope-from=0100019a-warm-up@amazonses.com; helo=a8-12.smtp-out.amazonses.com;
 dkim=pass header.i=@aws.com;
 dmarc=pass header.from=aws.com;
Date: Tue, 03 Mar 2026 01:22:18 +0000
From: Amazon Web Services Billing <invoicing@aws.com>
To: root+warmup@root.example.com
Message-ID: <0100019a-warm-up@email.amazonses.com>
Subject: Amazon Web Services Invoice Available [Account: 111122223333]
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=\"warm-up\"

--warm-up
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Greetings from Amazon Web Services,

Your invoice for AWS account 1111-2222-3333 is available in the Billing =
console. Total amount: USD 1,234.56, due on March 31, 2026. Please pay =
within 5 days. Case ID 1234567890 concerns arn:aws:s3:::example-bucket =
and 192.0.2.10.

Sincerely,
Amazon Web Services
--warm-up
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

<html><body><p>Greetings from Amazon Web Services,</p><p>Your invoice for =
AWS account 1111-2222-3333 is available in the <a href=3D\"https://console.=
aws.amazon.com/billing/\">Billing console</a>. Total amount: USD&nbsp;1,234.56.</p>=
</body></html>
--warm-up--
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Disposition, Kind};

    /// The sample must keep reaching what warming is for: authenticated AWS
    /// mail classified by the rules, its facts read, its HTML part read.
    #[test]
    fn the_warm_up_mail_reaches_classification_facts_and_html() {
        let triage = warm_up(&Rules::built_in());
        assert!(triage.authentication.aws_sender && triage.authentication.verified);
        assert!(
            triage.kind.as_str().starts_with("billing."),
            "{}",
            triage.kind
        );
        assert_ne!(triage.kind, Kind::AwsUnclassified);
        assert_ne!(triage.disposition, Disposition::Quarantine);
        let facts = &triage.facts;
        assert_eq!(facts.account_ids, ["111122223333"]);
        assert_eq!(facts.case_ids, ["1234567890"]);
        assert!(!facts.amounts.is_empty() && !facts.dates.is_empty());
        assert!(!facts.time_limits.is_empty() && !facts.arns.is_empty());
        assert_eq!(facts.ip_addresses, ["192.0.2.10"]);
        // Only the empty directory's word: nothing in the sample is odd.
        let odd = |w: &&String| !w.starts_with("no account in the directory");
        assert_eq!(
            triage.warnings.iter().filter(odd).count(),
            0,
            "{:?}",
            triage.warnings
        );
    }
}

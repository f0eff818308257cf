//! The deployment template against the code, on its parsed structure
//! ([`cfn`]: saphyr, CloudFormation's short-form tags kept): every function
//! crate in `functions/` is deployed by `infra/template.yaml` (and nothing
//! else is), each function's environment there sets every variable its
//! configuration declares beside its `from_env` (`Config::VARIABLES`, which
//! `from_env` reads through) and nothing else, and the IAM, KMS and bucket
//! policy statements grant what the code and AWS's references need.

mod cfn;

use cfn::{
    Node, Template, actions, condition, entries, get, get_att, has_action, integer, intrinsic,
    is_ref, items, keys, path, sid, statements, string, strings, walk,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Read by `tracing`'s filter, not by a `Config`: set for every function.
const RUNTIME_VARIABLES: &[&str] = &["RUST_LOG"];

/// What each function crate's configuration reads, as declared beside its
/// `from_env`. A new crate in `functions/` needs a line here (the check
/// reports one that has none).
fn declared_variables(crate_name: &str) -> Option<&'static [&'static str]> {
    match crate_name {
        "mail-ingest" => Some(mail_ingest::Config::VARIABLES),
        "ticket-writer" => Some(ticket_writer::Config::VARIABLES),
        "lifecycle" => Some(lifecycle::Config::VARIABLES),
        _ => None,
    }
}

fn template_text() -> String {
    fs::read_to_string(rootmail_tests::workspace_root().join("infra/template.yaml"))
        .expect("read the template")
}

fn template() -> Template {
    Template::parse(&template_text()).expect("infra/template.yaml parses")
}

#[test]
fn every_function_is_deployed_with_every_setting_it_reads() {
    let problems = check(&rootmail_tests::workspace_root(), &template());
    assert!(
        problems.is_empty(),
        "infra/template.yaml does not match the code:\n  {}",
        problems.join("\n  ")
    );
}

/// mail-ingest may update only the fields a handover writes: the template's
/// `dynamodb:Attributes` list is the code's `HANDOVER_FIELDS` and the key.
#[test]
fn mail_ingest_updates_only_the_handover_fields_of_a_rotation() {
    let template = template();
    let role = template.resource("MailIngestRole");
    let statement = statements(role)
        .into_iter()
        .find(|s| sid(s) == "RecordTheHandoverOnly")
        .expect("mail-ingest's rotation statement");
    assert_eq!(actions(statement), ["dynamodb:UpdateItem"]);
    assert_eq!(
        get(statement, "Resource").and_then(get_att).as_deref(),
        Some("RotationsTable.Arn")
    );
    let lists = condition(statement, "dynamodb:Attributes");
    assert_eq!(lists.len(), 1, "one attribute list");
    let (operator, list) = lists[0];
    assert_eq!(operator, "ForAllValues:StringEquals");
    let granted: BTreeSet<&str> = strings(Some(list)).into_iter().collect();
    let mut wanted: BTreeSet<&str> = rootmail_lifecycle::HANDOVER_FIELDS
        .iter()
        .copied()
        .collect();
    wanted.insert("account_id");
    assert_eq!(granted, wanted);
}

/// ticket-writer's one update is the sending mark (`DynamoLedger::start_sending`):
/// no other attribute of a ledger row, and no other table. The list is every
/// attribute the call names, its condition's included: `dynamodb:Attributes`
/// holds what a request reads, writes or evaluates (DynamoDB developer
/// guide, "Using IAM policy conditions for fine-grained access control").
/// It once left out `status`, which the condition checks, so in AWS every
/// mark was AccessDenied and every ticket operation dead-lettered; moto
/// does not check IAM.
#[test]
fn ticket_writer_updates_only_the_sending_mark_of_a_ledger_row() {
    let template = template();
    let role = template.resource("TicketWriterRole");
    let updates: Vec<_> = statements(role)
        .into_iter()
        .filter(|s| actions(s).contains(&"dynamodb:UpdateItem"))
        .collect();
    assert_eq!(updates.len(), 1, "one statement allows UpdateItem");
    let statement = updates[0];
    assert_eq!(actions(statement), ["dynamodb:UpdateItem"]);
    assert_eq!(
        get(statement, "Resource").and_then(get_att).as_deref(),
        Some("LedgerTable.Arn")
    );
    let lists = condition(statement, "dynamodb:Attributes");
    assert_eq!(lists.len(), 1, "one attribute list");
    assert_eq!(lists[0].0, "ForAllValues:StringEquals");
    let granted: BTreeSet<&str> = strings(Some(lists[0].1)).into_iter().collect();
    let named = names_in_start_sending();
    assert!(named.contains("status"), "{named:?}");
    assert_eq!(granted, named.iter().map(String::as_str).collect());
}

/// The key and the attribute names `DynamoLedger::start_sending` binds, read
/// from its source.
fn names_in_start_sending() -> BTreeSet<String> {
    let source =
        fs::read_to_string(rootmail_tests::workspace_root().join("shared/aws/src/ledger.rs"))
            .unwrap();
    let start = source
        .find("async fn start_sending")
        .expect("start_sending");
    let body = &source[start..];
    let body = &body[..body.find("\n    }\n").expect("its end")];
    // The quoted argument at `nth` of each call (`.key(NAME, value)`,
    // `.expression_attribute_names(#placeholder, NAME)`).
    let quoted = |call: &str, nth: usize| -> Vec<String> {
        body.match_indices(call)
            .filter_map(|(at, _)| {
                let rest = &body[at + call.len()..];
                let arg = rest[..rest.find(')')?].split(',').nth(nth)?;
                Some(arg.trim().trim_matches('"').to_string())
            })
            .collect()
    };
    let mut names: BTreeSet<String> = quoted(".expression_attribute_names(", 1)
        .into_iter()
        .collect();
    names.extend(quoted(".key(", 0));
    names
}

/// `DynamoRotations::put` seals the token a record holds, so the key's
/// policy must let every role that saves a record while its task waits
/// encrypt: the steps that wait, and the operator function, whose `mfa
/// enroll`, `rotation complete` and `rotation code` save while PrepareVault's
/// or the console's task waits. The operator was left out, so in AWS those
/// commands failed after their vault writes; moto does not check key
/// policies.
#[test]
fn whoever_saves_a_waiting_record_may_seal_its_token() {
    let template = template();
    let seal = statements(&template.root)
        .into_iter()
        .find(|s| sid(s) == "TaskTokensAreSealedByTheStepsThatWait")
        .expect("the token-sealing statement");
    assert_eq!(actions(seal), ["kms:Encrypt"]);
    let text = template.text_of(seal);
    for role in ["StartEmailUpdateRole", "PrepareVaultRole", "OperatorRole"] {
        assert!(text.contains(&format!("{role}.Arn")), "{role}: {text}");
    }
}

/// A function URL made since October 2025 needs `lambda:InvokeFunction`
/// beside `lambda:InvokeFunctionUrl` (Lambda developer guide, "Control
/// access to Lambda function URLs"); without it every `--aws` command was
/// 403. The grant holds only through the URL: a direct Invoke could hand
/// the operator function an event naming another caller.
#[test]
fn operators_may_invoke_their_function_through_its_url_only() {
    let template = template();
    let policy = template.resource("OperatorPolicy");
    let on_the_function = |action: &str| {
        statements(policy)
            .into_iter()
            .find(|s| {
                has_action(s, action)
                    && get(s, "Resource").and_then(get_att).as_deref()
                        == Some("OperatorFunction.Arn")
            })
            .unwrap_or_else(|| panic!("{action} on the operator function"))
    };
    on_the_function("lambda:InvokeFunctionUrl");
    let invoke = on_the_function("lambda:InvokeFunction");
    let via_url = condition(invoke, "lambda:InvokedViaFunctionUrl");
    assert_eq!(via_url.len(), 1);
    assert_eq!(via_url[0].0, "Bool");
    assert_eq!(strings(Some(via_url[0].1)), ["true"]);
}

/// A break-glass notice that failed is logged and shown only to the person
/// who asked; a metric filter on the operator function's log raises an
/// alarm. The messages it matches are the ones the code logs.
#[test]
fn an_unannounced_break_glass_access_raises_an_alarm() {
    let template = template();
    let filter = template.resource("BreakGlassNoticeUnsentFilter");
    let pattern = path(filter, &["Properties", "FilterPattern"])
        .and_then(string)
        .expect("a pattern");
    let steps =
        fs::read_to_string(rootmail_tests::workspace_root().join("shared/lifecycle/src/steps.rs"))
            .unwrap();
    let messages: Vec<&str> = pattern
        .split("$.fields.message = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(messages.len(), 2, "{pattern}");
    for message in messages {
        assert!(
            steps.contains(&format!("\"{message}\"")),
            "the code logs {message:?}"
        );
    }
    let alarm = template.resource("BreakGlassNoticeUnsentAlarm");
    assert_eq!(
        path(alarm, &["Properties", "MetricName"]).and_then(string),
        Some("BreakGlassNoticeUnsent")
    );
}

/// Mail is trusted by the headers SES writes, so nobody else may write it:
/// the bucket policy denies PutObject under inbound/ to every caller that is
/// not an AWS service, and to any receipt rule but this stack's.
/// The mail bucket policy's statement `wanted` (by its Sid).
fn bucket_statement<'a>(template: &'a Template, wanted: &str) -> &'a Node {
    statements(template.resource("MailBucketPolicy"))
        .into_iter()
        .find(|s| sid(s) == wanted)
        .unwrap_or_else(|| panic!("{wanted}"))
}

#[test]
fn only_ses_may_write_mail_into_the_bucket() {
    let template = template();
    let statement = |wanted: &str| bucket_statement(&template, wanted);
    for name in ["NobodyButSesWritesMail", "NoOtherReceiptRuleWritesMail"] {
        let denial = statement(name);
        assert_eq!(
            get(denial, "Effect").and_then(string),
            Some("Deny"),
            "{name}"
        );
        // Replication writes under its own action: a bucket of this account
        // set to replicate into this one would plant mail otherwise.
        assert_eq!(
            actions(denial),
            ["s3:PutObject", "s3:ReplicateObject"],
            "{name}"
        );
        let resource = get(denial, "Resource").expect("a Resource");
        assert!(
            matches!(intrinsic(resource), Some(("Sub", arn)) if string(arn) == Some("${MailBucket.Arn}/inbound/*")),
            "{name}: {}",
            template.text_of(resource)
        );
        assert!(
            get(denial, "Principal").and_then(string) == Some("*"),
            "{name} denies everyone"
        );
    }
    let not_a_service = condition(
        statement("NobodyButSesWritesMail"),
        "aws:PrincipalIsAWSService",
    );
    assert!(
        matches!(not_a_service.as_slice(), [("Bool", value)] if string(value) == Some("false")),
        "NobodyButSesWritesMail denies callers that are not AWS services"
    );
    let other_rule = condition(statement("NoOtherReceiptRuleWritesMail"), "aws:SourceArn");
    assert!(
        matches!(other_rule.as_slice(), [("ArnNotLikeIfExists", arn)] if intrinsic(arn).is_some_and(|(f, _)| f == "Sub")),
        "NoOtherReceiptRuleWritesMail denies other receipt rules"
    );
}

/// An original holding a code or a reset link (tagged `rootmail-sealed`)
/// is read by mail-ingest alone, whatever IAM grants elsewhere: the bucket
/// policy denies every other principal reading it (any version) and
/// changing any object's tags (which would unseal it). Before, any principal
/// with `s3:GetObject` and `kms:Decrypt` on "*" could take a reset link
/// meant for a take-over, unaudited.
#[test]
fn only_mail_ingest_reads_sealed_mail_or_changes_its_seal() {
    let template = template();
    let statement = |wanted: &str| bucket_statement(&template, wanted);
    let is_mail_ingest = |node: &Node| matches!(intrinsic(node), Some(("GetAtt", arn)) if string(arn) == Some("MailIngestRole.Arn"));
    let reads = statement("OnlyMailIngestReadsSealedMail");
    assert_eq!(get(reads, "Effect").and_then(string), Some("Deny"));
    assert_eq!(get(reads, "Principal").and_then(string), Some("*"));
    assert_eq!(actions(reads), ["s3:GetObject", "s3:GetObjectVersion"]);
    let sealed = condition(reads, "s3:ExistingObjectTag/rootmail-sealed");
    assert!(
        matches!(sealed.as_slice(), [("StringEquals", v)] if string(v) == Some("true")),
        "only sealed originals"
    );
    // Everyone but mail-ingest, and the investigators the deployment names.
    let others = condition(reads, "aws:PrincipalArn");
    let [("ArnNotLike", readers)] = others.as_slice() else {
        panic!("ArnNotLike aws:PrincipalArn: {others:?}");
    };
    let Some(("If", choice)) = intrinsic(readers) else {
        panic!("{}", template.text_of(readers));
    };
    let choice = items(choice);
    assert_eq!(
        choice.first().and_then(|c| string(c)),
        Some("HasSealedMailReaders")
    );
    assert!(
        matches!(choice.get(2).map(|c| items(c)).as_deref(), Some([only]) if is_mail_ingest(only)),
        "mail-ingest alone without SealedMailReaderArns: {}",
        template.text_of(readers)
    );
    assert!(template.text_of(readers).contains("SealedMailReaderArns"));
    let tags = statement("OnlyMailIngestSealsMail");
    assert_eq!(get(tags, "Effect").and_then(string), Some("Deny"));
    for action in ["s3:PutObjectTagging", "s3:DeleteObjectTagging"] {
        assert!(actions(tags).contains(&action), "{action}");
    }
    let others = condition(tags, "aws:PrincipalArn");
    assert!(matches!(others.as_slice(), [("ArnNotEquals", arn)] if is_mail_ingest(arn)));
    for denial in [reads, tags] {
        let resource = get(denial, "Resource").expect("a Resource");
        assert!(
            matches!(intrinsic(resource), Some(("Sub", arn)) if string(arn) == Some("${MailBucket.Arn}/*")),
            "the whole bucket: replay reads restored mail under other prefixes"
        );
    }
}

/// Issue 17, point 3. The Service Authorization Reference (Actions defined by
/// AWS Account Management) lists `iam:UpdateAccountEmailAddress` as a
/// dependent action of StartPrimaryEmailUpdate and AcceptPrimaryEmailUpdate,
/// with no resource type: every role making those calls must be granted it,
/// on "*" (a resource ARN would never match it).
#[test]
fn roles_changing_a_root_email_are_also_granted_iam_update_account_email_address() {
    let template = template();
    let mut checked = 0;
    for (name, resource) in template.resources() {
        let all = statements(resource);
        let changes_root_email = all.iter().any(|s| {
            has_action(s, "account:StartPrimaryEmailUpdate")
                || has_action(s, "account:AcceptPrimaryEmailUpdate")
        });
        if !changes_root_email {
            continue;
        }
        checked += 1;
        let grant = all
            .iter()
            .find(|s| has_action(s, "iam:UpdateAccountEmailAddress"))
            .unwrap_or_else(|| {
                panic!("{name} changes root emails without iam:UpdateAccountEmailAddress")
            });
        assert_eq!(
            get(grant, "Effect").and_then(string),
            Some("Allow"),
            "{name}"
        );
        assert_eq!(
            get(grant, "Resource").and_then(string),
            Some("*"),
            "{name}: {}",
            template.text_of(grant)
        );
    }
    assert_eq!(checked, 4, "take-over start and accept, release, operator");
}

/// A release mails security before the root email moves, from both of its
/// doors (the operator function and the release state machine's step): each
/// role may send that mail, from NoticeFrom to NoticeTo only.
#[test]
fn both_release_roles_may_tell_security() {
    let template = template();
    for role in ["OperatorRole", "StartReleaseRole"] {
        let all = statements(template.resource(role));
        let send = all
            .iter()
            .find(|s| has_action(s, "ses:SendEmail"))
            .unwrap_or_else(|| panic!("{role} cannot mail NoticeTo"));
        let from = condition(send, "ses:FromAddress");
        assert_eq!(from.len(), 1, "{role}");
        assert!(
            from[0].0 == "StringEquals" && is_ref(from[0].1, "NoticeFrom"),
            "{role}"
        );
        let to = condition(send, "ses:Recipients");
        assert!(
            to.iter()
                .any(|(op, value)| *op == "ForAllValues:StringEquals" && is_ref(value, "NoticeTo")),
            "{role}"
        );
    }
}

/// Both steps that give AWS a code (the take-over's accept, the release's
/// completion) first read the root email, since an earlier try may have had
/// the code taken and its answer lost, and so does a release started again:
/// every role granted AcceptPrimaryEmailUpdate, and the release's start, is
/// granted GetPrimaryEmail on the same accounts.
#[test]
fn roles_accepting_a_code_may_read_the_root_email_first() {
    let template = template();
    let mut checked = 0;
    for (name, resource) in template.resources() {
        let all = statements(resource);
        let wanted = match name {
            "StartReleaseRole" => "account:StartPrimaryEmailUpdate",
            _ => "account:AcceptPrimaryEmailUpdate",
        };
        let Some(accept) = all.iter().find(|s| has_action(s, wanted)) else {
            continue;
        };
        checked += 1;
        let read = all
            .iter()
            .find(|s| has_action(s, "account:GetPrimaryEmail"))
            .unwrap_or_else(|| panic!("{name} accepts a code but cannot read the root email"));
        assert_eq!(
            get(read, "Resource").map(|r| template.text_of(r)),
            get(accept, "Resource").map(|r| template.text_of(r)),
            "{name}"
        );
    }
    assert_eq!(
        checked, 3,
        "the take-over's accept step, the release's start, the operator"
    );
}

/// A rootless or vaulted take-over reads the root email before anything is
/// registered, so a payer is refused there: the register step's role may
/// read it on the accounts the take-over's start may change (without it,
/// AWS refused every take-over). The operator may assume the payer audit
/// role only when one is named.
#[test]
fn the_register_step_may_read_the_root_email_and_the_operator_the_payer_summary() {
    let template = template();
    let resource_of = |role: &str, action: &str| {
        let (_, resource) = template
            .resources()
            .into_iter()
            .find(|(name, _)| *name == role)
            .unwrap_or_else(|| panic!("no {role}"));
        statements(resource)
            .into_iter()
            .find(|s| has_action(s, action))
            .and_then(|s| get(s, "Resource").map(|r| template.text_of(r).trim().to_string()))
            .unwrap_or_else(|| panic!("{role} is not granted {action}"))
    };
    assert_eq!(
        resource_of("RegisterRole", "account:GetPrimaryEmail"),
        resource_of("StartEmailUpdateRole", "account:StartPrimaryEmailUpdate")
    );
    let operator = template.text_of(
        template
            .resources()
            .into_iter()
            .find(|(name, _)| *name == "OperatorRole")
            .map(|(_, r)| r)
            .expect("OperatorRole"),
    );
    let condition = operator
        .find("- HasPayerAuditRole")
        .expect("the payer audit grant is conditional");
    let grant = &operator[condition..];
    let sid = grant
        .find("Sid: ReadAPayersRootUserSummary")
        .expect("its grant");
    let assume = grant.find("Action: sts:AssumeRole").expect("AssumeRole");
    assert!(sid < assume && grant[assume..].contains("role/${PayerAuditRoleName}"));
}

/// Issue 17, point 6. `states:SendTaskSuccess` has no resource type in the
/// Service Authorization Reference (Actions defined by AWS Step Functions):
/// IAM matches such an action only against "*", so a statement that names a
/// state machine never allows it. The statement's comment says why "*" is
/// safe.
#[test]
fn send_task_success_is_granted_the_only_way_iam_matches_it() {
    let template = template();
    let grants: Vec<&Node> = statements(&template.root)
        .into_iter()
        .filter(|s| has_action(s, "states:SendTaskSuccess"))
        .collect();
    for grant in &grants {
        let text = template.text_of(grant);
        assert_eq!(get(grant, "Resource").and_then(string), Some("*"), "{text}");
        assert!(
            text.contains("no resource type"),
            "say why \"*\" is safe: {text}"
        );
    }
    assert_eq!(
        grants.len(),
        3,
        "mail-ingest, the operator function, start_email_update"
    );
}

/// Whoever answers a workflow's task then drops the token from the record
/// with `save_handover`, an UpdateItem (mail-ingest, and the operator
/// function for `rotation complete` and `rotation attest`); without it AWS
/// refuses the save, which moto does not check. The operator function
/// lacked it, so `rotation attest` could never be saved in AWS.
#[test]
fn roles_answering_a_task_may_update_the_rotation_record() {
    let template = template();
    let mut checked = 0;
    for (name, resource) in template.resources() {
        let all = statements(resource);
        if !all.iter().any(|s| has_action(s, "states:SendTaskSuccess")) {
            continue;
        }
        checked += 1;
        let update = all.iter().find(|s| {
            has_action(s, "dynamodb:UpdateItem")
                && get(s, "Resource")
                    .is_some_and(|r| template.text_of(r).contains("RotationsTable"))
        });
        assert!(
            update.is_some(),
            "{name} answers a task but cannot update its rotation"
        );
    }
    assert_eq!(
        checked, 3,
        "mail-ingest, the operator function, start_email_update"
    );
}

/// Issue 17, point 4. StartPrimaryEmailUpdate's `PrimaryEmail` is at most 64
/// characters (AWS Account Management API Reference); root addresses are
/// `root-<20>@<domain>`, so the domain parameter allows at most 38.
#[test]
fn the_root_mail_domain_parameter_fits_the_account_apis_limit() {
    let template = template();
    let max = get(template.parameter("RootMailDomain"), "MaxLength")
        .and_then(|n| n.data.as_integer())
        .expect("a MaxLength on RootMailDomain");
    let max = usize::try_from(max).unwrap();
    assert_eq!(max, rootmail_lifecycle::credentials::MAX_ROOT_DOMAIN_CHARS);
    assert_eq!(max + "root-".len() + 20 + "@".len(), 64);
}

/// The crash points (`rootmail-pipeline`'s `failpoints` feature) are for the
/// tests only: each function built from its own directory, as `sam build` and
/// `make build` build it, does not compile the fail-point crate in; the tests
/// crate, which turns the feature on, does.
#[test]
fn deployed_functions_are_built_without_crash_points() {
    let root = rootmail_tests::workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tree = |dir: &Path, package: Option<&str>| {
        let mut command = std::process::Command::new(&cargo);
        command.args(["tree", "--offline", "--edges", "normal", "--invert", "fail"]);
        if let Some(package) = package {
            command.args(["--package", package]);
        }
        command.current_dir(dir).output().expect("cargo tree runs")
    };
    let tests = tree(&root, Some("rootmail-tests"));
    assert!(
        tests.status.success() && String::from_utf8_lossy(&tests.stdout).contains("fail v0."),
        "the tests crate builds the crash points: {tests:?}"
    );
    let functions = function_crates(&root);
    assert!(functions.len() >= 3, "{functions:?}");
    for dir in functions {
        let output = tree(&dir, None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains("did not match any packages"),
            "{} compiles the crash points in: {}{stderr}",
            dir.display(),
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

/// The check can fail: take a variable, a function and the global `RUST_LOG`
/// out of the real template, point a function at a crate that does not
/// exist, and set a variable nothing reads, and each is reported.
#[test]
fn a_template_that_drifted_from_the_code_is_reported() {
    let root = rootmail_tests::workspace_root();
    let text = template_text();
    let check_text = |text: &str| check(&root, &Template::parse(text).expect("still YAML"));

    let without_variable = remove_lines(&text, |l| l.trim_start().starts_with("LEDGER_TABLE:"));
    let problems = check_text(&without_variable);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("mail-ingest") && p.contains("LEDGER_TABLE")),
        "{problems:?}"
    );

    let without_global = remove_lines(&text, |l| l.trim_start().starts_with("RUST_LOG:"));
    assert!(
        check_text(&without_global)
            .iter()
            .any(|p| p.contains("RUST_LOG")),
        "a missing RUST_LOG is reported"
    );

    let moved = text.replace(
        "CodeUri: ../functions/ticket-writer",
        "CodeUri: ../functions/gone",
    );
    let problems = check_text(&moved);
    assert!(
        problems.iter().any(|p| p.contains("functions/gone")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("ticket-writer") && p.contains("no AWS::Serverless::Function")),
        "{problems:?}"
    );

    let stale = text.replace(
        "MAIL_PREFIX: inbound/",
        "MAIL_PREFIX: inbound/\n          MAIL_SUFFIX: x",
    );
    assert!(
        check_text(&stale).iter().any(|p| p.contains("MAIL_SUFFIX")),
        "a variable no code reads is reported"
    );
}

/// The parser keeps what the checks rely on: CloudFormation's short-form
/// tags on scalars, lists and nested inside each other, and a statement's
/// comments in its source span.
#[test]
fn the_parser_keeps_cloudformation_tags_and_comments() {
    let snippet = Template::parse(
        "Resources:\n\
         \x20 Thing:\n\
         \x20   Type: AWS::X::Y\n\
         \x20   Properties:\n\
         \x20     A: !Ref Other\n\
         \x20     B: !GetAtt [Other, Arn]\n\
         \x20     C: !Join [\",\", !Ref List]\n\
         \x20     D: !If\n\
         \x20       - Cond\n\
         \x20       - !Sub \"${Other.Arn}/x\"\n\
         \x20       - !Ref AWS::NoValue\n\
         \x20     Statement:\n\
         \x20       - Sid: One\n\
         \x20         # why\n\
         \x20         Effect: Allow\n\
         \x20         Action: [a:B, a:C]\n\
         \x20       - Sid: Two\n\
         \x20         Effect: Deny\n\
         \x20         Action: a:D\n",
    )
    .unwrap();
    let properties = path(snippet.resource("Thing"), &["Properties"]).unwrap();
    assert!(is_ref(get(properties, "A").unwrap(), "Other"));
    assert_eq!(
        get(properties, "B").and_then(get_att).as_deref(),
        Some("Other.Arn")
    );
    let (join, arguments) = intrinsic(get(properties, "C").unwrap()).unwrap();
    assert_eq!(join, "Join");
    assert!(is_ref(items(arguments)[1], "List"));
    let (function, arguments) = intrinsic(get(properties, "D").unwrap()).unwrap();
    assert_eq!(function, "If");
    assert_eq!(string(items(arguments)[0]), Some("Cond"));
    assert!(matches!(intrinsic(items(arguments)[1]), Some(("Sub", _))));
    let found = statements(properties);
    assert_eq!(
        found.iter().map(|s| sid(s)).collect::<Vec<_>>(),
        ["One", "Two"]
    );
    assert_eq!(actions(found[0]), ["a:B", "a:C"]);
    assert_eq!(actions(found[1]), ["a:D"]);
    assert!(snippet.text_of(found[0]).contains("# why"));
    assert!(!snippet.text_of(found[1]).contains("# why"));
}

/// Every `!Ref`, `!GetAtt`, `!Sub` variable, `!Condition`, `!If`,
/// `Condition` and `DependsOn` names something the template defines (a
/// parameter, a resource, a pseudo parameter, a condition), in Resources
/// and Outputs alike.
#[test]
fn every_reference_names_something_the_template_defines() {
    let problems = unknown_references(&template());
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let text = template_text();
    for (from, to, reported) in [
        ("!Ref NoticeTo", "!Ref NoticeToo", "!Ref"),
        ("!GetAtt Key.Arn", "!GetAtt Kye.Arn", "!GetAtt"),
        (
            "${MailBucket.Arn}/inbound/*",
            "${MailBuckt.Arn}/inbound/*",
            "MailBuckt",
        ),
        ("Condition: ManageDns", "Condition: ManageDNS", "ManageDNS"),
        ("!Condition ManageDns", "!Condition ManageDNS", "!Condition"),
        (
            "DependsOn: MailBucketPolicy",
            "DependsOn: MailBucketPolicies",
            "MailBucketPolicies",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let drifted = Template::parse(&text.replacen(from, to, 1)).expect("still YAML");
        let problems = unknown_references(&drifted);
        assert!(
            problems.iter().any(|p| p.contains(reported)),
            "{to} is not reported: {problems:?}"
        );
    }
}

/// Issue D: the ticketing API's URL is https, so credentials never travel in
/// clear; issue C: ticket-writer gets a generated marker key of its own,
/// readable by it only, through the stack's key.
#[test]
fn the_ticketing_api_is_https_and_the_writer_has_a_marker_key() {
    let template = template();
    let pattern = get(template.parameter("TicketApiUrl"), "AllowedPattern")
        .and_then(string)
        .unwrap_or_default();
    assert!(
        pattern.starts_with("^https://"),
        "TicketApiUrl accepts plain http: {pattern}"
    );
    let secret = template.resource("MarkerKeySecret");
    assert_eq!(
        get(secret, "Type").and_then(string),
        Some("AWS::SecretsManager::Secret")
    );
    assert!(path(secret, &["Properties", "GenerateSecretString"]).is_some());
    assert_eq!(
        path(secret, &["Properties", "KmsKeyId"])
            .and_then(get_att)
            .as_deref(),
        Some("Key.Arn")
    );
    let writer = template.resource("TicketWriterFunction");
    let variables = path(writer, &["Properties", "Environment", "Variables"]);
    assert!(
        variables
            .and_then(|v| get(v, "MARKER_KEY_SECRET_ARN"))
            .is_some_and(|v| is_ref(v, "MarkerKeySecret")),
        "{}",
        template.text_of(writer)
    );
    let role = statements(template.resource("TicketWriterRole"));
    let reads = role
        .iter()
        .find(|s| has_action(s, "secretsmanager:GetSecretValue"))
        .expect("ticket-writer reads a secret");
    assert!(
        get(reads, "Resource").is_some_and(|r| is_ref(r, "MarkerKeySecret")),
        "{}",
        template.text_of(reads)
    );
    assert!(
        role.iter().any(|s| {
            has_action(s, "kms:Decrypt")
                && condition(s, "kms:EncryptionContext:SecretARN")
                    .iter()
                    .any(|(_, arn)| is_ref(arn, "MarkerKeySecret"))
        }),
        "ticket-writer decrypts the marker key only"
    );
}

/// Issue 17, point 7. AWS says a root email change can take up to four hours
/// to propagate (AWS Account Management reference guide, "Update the root
/// user email address"): the take-over's `ConfirmEmailUpdate` retries
/// `NotYet` for at least four hours, with a ceiling on the delay and on the
/// whole wait (Step Functions' `MaxDelaySeconds`).
#[test]
fn the_take_over_waits_long_enough_for_the_root_email_to_propagate() {
    let (hours, max_delay) = not_yet_wait("take-over", "ConfirmEmailUpdate");
    assert!((4.0..=6.0).contains(&hours), "waits {hours:.2} h");
    assert!(max_delay <= 1800.0, "polls at least every 30 minutes");
}

/// AWS documents that a closure takes "a few minutes" to show
/// (Organizations API reference, `CloseAccount`), and a release's claim can
/// hold the step back 15 minutes: both close steps retry `NotYet` for hours,
/// polling at least every 15 minutes, where they once gave up after half an
/// hour and failed an execution whose closure AWS then made. AWS's quota
/// refusals are `NotYet` too, so a bulk offboarding's executions retry at
/// random times (full jitter), not all at the same moments.
#[test]
fn the_close_waits_hours_for_aws_to_show_the_closure() {
    for step in ["Close", "CloseAsAttested"] {
        let (hours, max_delay) = not_yet_wait("close", step);
        assert!((3.0..=6.0).contains(&hours), "{step} waits {hours:.2} h");
        assert!(max_delay <= 900.0, "{step} polls at least every 15 minutes");
        let jitter = &not_yet_retry("close", step)["JitterStrategy"];
        assert_eq!(jitter, "FULL", "{step} retries at random times");
    }
}

/// How long a state machine's step retries `NotYet` in all, in hours (on
/// average, where full jitter makes each delay a random time up to its
/// backoff), and the longest delay between two tries, in seconds.
fn not_yet_wait(machine: &str, step: &str) -> (f64, f64) {
    let retry = not_yet_retry(machine, step);
    let number = |name: &str| {
        retry[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{machine}/{step}: {name}"))
    };
    let (interval, rate, max_delay, attempts) = (
        number("IntervalSeconds"),
        number("BackoffRate"),
        number("MaxDelaySeconds"),
        number("MaxAttempts") as i32,
    );
    let jitter = match retry["JitterStrategy"].as_str() {
        None | Some("NONE") => 1.0,
        Some("FULL") => 0.5,
        Some(other) => panic!("{machine}/{step}: JitterStrategy {other}"),
    };
    let waited: f64 = (0..attempts)
        .map(|n| (interval * rate.powi(n)).min(max_delay) * jitter)
        .sum();
    (waited / 3600.0, max_delay)
}

/// The retrier of `NotYet` of a state machine's step.
fn not_yet_retry(machine: &str, step: &str) -> serde_json::Value {
    let asl: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(
            rootmail_tests::workspace_root()
                .join(format!("infra/statemachines/{machine}.asl.json")),
        )
        .unwrap(),
    )
    .unwrap();
    asl["States"][step]["Retry"]
        .as_array()
        .unwrap_or_else(|| panic!("{machine}/{step} retries"))
        .iter()
        .find(|r| r["ErrorEquals"] == serde_json::json!(["NotYet"]))
        .unwrap_or_else(|| panic!("{machine}/{step}: a NotYet retry"))
        .clone()
}

/// The take-over's execution names itself to the step that registers it
/// and to the step that records its failure, which then fails only its own
/// take-over (`Rotation::execution`).
#[test]
fn the_take_over_s_failure_step_knows_which_execution_it_is() {
    let asl: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(
            rootmail_tests::workspace_root().join("infra/statemachines/take-over.asl.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for state in ["Register", "RecordFailure"] {
        let payload = &asl["States"][state]["Parameters"]["Payload"];
        assert_eq!(
            payload["execution.$"], "$$.Execution.Id",
            "{state}: {payload}"
        );
        assert_eq!(
            payload["account_id.$"], "$.account_id",
            "{state}: {payload}"
        );
    }
}

/// Every Lambda step of every state machine retries the errors Step
/// Functions' guide lists for a Lambda invocation that failed in the
/// service, not the function (`Lambda.ServiceException`,
/// `Lambda.AWSLambdaException`, `Lambda.SdkClientException`,
/// `Lambda.ClientExecutionTimeoutException`, which AWS's guide lists among
/// Lambda's transient errors, `Lambda.TooManyRequestsException`), and
/// `Transient`. The two steps that
/// wait for a task token once left two out, because running them again
/// after they saved was refused; they now take the new attempt's token.
#[test]
fn every_lambda_step_retries_lambdas_own_failures() {
    const LAMBDA_ERRORS: [&str; 6] = [
        "Transient",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.TooManyRequestsException",
    ];
    for machine in ["take-over", "release", "close"] {
        let path = format!("infra/statemachines/{machine}.asl.json");
        let asl: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(rootmail_tests::workspace_root().join(&path)).unwrap(),
        )
        .unwrap();
        let states = asl["States"].as_object().unwrap();
        let lambda_steps = states.iter().filter(|(_, state)| {
            state["Resource"]
                .as_str()
                .is_some_and(|r| r.starts_with("arn:aws:states:::lambda:invoke"))
        });
        let mut seen = 0;
        for (name, state) in lambda_steps {
            seen += 1;
            let retried: Vec<&str> = state["Retry"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["ErrorEquals"].as_array().into_iter().flatten())
                .filter_map(|e| e.as_str())
                .collect();
            for error in LAMBDA_ERRORS {
                assert!(retried.contains(&error), "{machine}/{name} retries {error}");
            }
        }
        assert!(seen > 0, "{machine} has Lambda steps");
    }
}

/// Issue 17, point 5. The key statements for AWS service principals (SES
/// writing mail into the bucket, S3 notifying the encrypted queue,
/// CloudWatch alarms publishing to the encrypted topic) take the form the
/// services' guides document: `aws:SourceAccount` and `aws:SourceArn`, never
/// `kms:ViaService`, which is not documented for a service principal's own
/// calls.
#[test]
fn service_principals_use_the_documented_key_policy_conditions() {
    let template = template();
    let policy = path(template.resource("Key"), &["Properties", "KeyPolicy"]).expect("a KeyPolicy");
    let mut checked = 0;
    for statement in statements(policy) {
        let services = strings(path(statement, &["Principal", "Service"]));
        let service = services.iter().any(|s| {
            [
                "ses.amazonaws.com",
                "s3.amazonaws.com",
                "cloudwatch.amazonaws.com",
            ]
            .contains(s)
        });
        if !service {
            continue;
        }
        checked += 1;
        let name = sid(statement);
        assert!(
            condition(statement, "kms:ViaService").is_empty(),
            "{name} uses kms:ViaService"
        );
        let account = condition(statement, "aws:SourceAccount");
        assert!(
            matches!(account.as_slice(), [(_, value)] if is_ref(value, "AWS::AccountId")),
            "{name} lacks aws:SourceAccount"
        );
        assert!(
            !condition(statement, "aws:SourceArn").is_empty(),
            "{name} lacks aws:SourceArn"
        );
    }
    assert_eq!(checked, 3, "SES, S3 and CloudWatch");
}

// ---------------------------------------------------------------- the check

/// What the template gets wrong about the code, one line each.
fn check(root: &Path, template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    let global = keys(path(
        &template.root,
        &["Globals", "Function", "Environment", "Variables"],
    ));

    // One crate may be deployed as several functions (the lifecycle: one per
    // step); every one of them is checked.
    let mut deployed: BTreeMap<PathBuf, Vec<(String, BTreeSet<String>)>> = BTreeMap::new();
    for (name, resource) in template.resources() {
        if get(resource, "Type").and_then(string) != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(code_uri) = path(resource, &["Properties", "CodeUri"]).and_then(string) else {
            problems.push(format!("{name} has no Properties.CodeUri"));
            continue;
        };
        let dir = normalize(&root.join("infra").join(code_uri));
        if !dir.join("Cargo.toml").is_file() {
            problems.push(format!(
                "{name}'s CodeUri {code_uri} is not a crate directory ({})",
                dir.display()
            ));
            continue;
        }
        let mut variables = global.clone();
        variables.extend(keys(path(
            resource,
            &["Properties", "Environment", "Variables"],
        )));
        deployed
            .entry(dir)
            .or_default()
            .push((name.to_string(), variables));
    }

    for dir in function_crates(root) {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let Some(functions) = deployed.get(&dir) else {
            problems.push(format!(
                "functions/{name} has no AWS::Serverless::Function whose CodeUri points at it"
            ));
            continue;
        };
        let Some(declared) = declared_variables(&name) else {
            problems.push(format!(
                "functions/{name} has no line in declared_variables (infra_template.rs)"
            ));
            continue;
        };
        let read: BTreeSet<String> = declared.iter().map(ToString::to_string).collect();
        for (resource, variables) in functions {
            problems.extend(environment_problems(&name, resource, variables, &read));
        }
    }
    problems
}

/// The crate directories under `functions/`, sorted.
fn function_crates(root: &Path) -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = fs::read_dir(root.join("functions"))
        .expect("read functions/")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    crates.sort();
    assert!(!crates.is_empty(), "no function crates found in functions/");
    crates
}

/// What is wrong with one function's environment, given what its crate reads.
fn environment_problems(
    name: &str,
    resource: &str,
    variables: &BTreeSet<String>,
    read: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for missing in read.iter().filter(|v| !variables.contains(*v)) {
        problems.push(format!(
            "functions/{name} reads {missing}, but {resource}'s Environment (with Globals) does not set it"
        ));
    }
    for unused in variables
        .iter()
        .filter(|v| !read.contains(*v) && !RUNTIME_VARIABLES.contains(&v.as_str()))
    {
        problems.push(format!(
            "{resource} sets {unused}, which functions/{name} never reads"
        ));
    }
    for runtime in RUNTIME_VARIABLES
        .iter()
        .filter(|v| !variables.contains(**v))
    {
        problems.push(format!("{resource} does not set {runtime}"));
    }
    problems
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn remove_lines(text: &str, drop: impl Fn(&str) -> bool) -> String {
    text.lines()
        .filter(|l| !drop(l))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------- references

/// The pseudo parameters CloudFormation defines.
const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// Each reference to something the template does not define, one line each.
fn unknown_references(template: &Template) -> Vec<String> {
    let parameters = keys(get(&template.root, "Parameters"));
    let mut resources = keys(get(&template.root, "Resources"));
    // What SAM's transform adds: a function's URL is `<Function>Url`.
    for (name, resource) in template.resources() {
        if path(resource, &["Properties", "FunctionUrlConfig"]).is_some() {
            resources.insert(format!("{name}Url"));
        }
    }
    let conditions = keys(get(&template.root, "Conditions"));
    let known = |name: &str| {
        parameters.contains(name) || resources.contains(name) || PSEUDO_PARAMETERS.contains(&name)
    };
    let mut problems = Vec::new();
    let mut unknown = |what: &str, name: &str, set: &str| {
        problems.push(format!("{what} {name}: no such {set}"));
    };
    for node in walk(&template.root) {
        let Some((function, argument)) = intrinsic(node) else {
            continue;
        };
        match function {
            "Ref" => match string(argument) {
                Some(name) if known(name) => {}
                _ => unknown("!Ref", &template.text_of(argument), "parameter or resource"),
            },
            "GetAtt" => match get_att(node) {
                Some(dotted) if resources.contains(dotted.split('.').next().unwrap_or("")) => {}
                _ => unknown("!GetAtt", &template.text_of(argument), "resource"),
            },
            "Sub" => {
                let parts = items(argument);
                let locals = keys(parts.get(1).copied());
                for name in parts
                    .first()
                    .and_then(|s| string(s))
                    .map(sub_names)
                    .unwrap_or_default()
                {
                    if !known(name) && !locals.contains(name) {
                        unknown("!Sub variable", name, "parameter, resource or Sub variable");
                    }
                }
            }
            "Condition" | "If" => {
                let name = items(argument).first().and_then(|n| string(n));
                if !name.is_some_and(|n| conditions.contains(n)) {
                    unknown(
                        &format!("!{function}"),
                        &template.text_of(argument),
                        "condition",
                    );
                }
            }
            _ => {}
        }
    }
    for section in ["Resources", "Outputs"] {
        for (name, entry) in entries(get(&template.root, section)) {
            if let Some(condition) = get(entry, "Condition").and_then(string)
                && !conditions.contains(condition)
            {
                unknown(&format!("{name}'s Condition"), condition, "condition");
            }
            for target in strings(get(entry, "DependsOn")) {
                if !resources.contains(target) {
                    unknown(&format!("{name}'s DependsOn"), target, "resource");
                }
            }
        }
    }
    problems
}

/// The names a `!Sub` string refers to: `${Name}` and `${Resource.Attribute}`
/// (the resource); `${!Literal}` is text.
fn sub_names(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('}') else { break };
        let inside = &rest[..end];
        rest = &rest[end + 1..];
        if !inside.starts_with('!') {
            names.push(inside.split('.').next().unwrap_or(inside).trim());
        }
    }
    names
}

/// Counters that only an attack or tampering moves: each has an alarm.
const SECURITY_COUNTERS: &[&str] = &["ForeignEvents", "VaultTampering"];

/// An alarm on rootmail's own metrics fires only when the code emits the
/// metric with exactly the alarm's dimensions (CloudWatch matches the whole
/// set: an alarm with none never sees a metric counted with one). Each such
/// alarm names a metric the code counts with the same dimension names, or
/// one a metric filter of the template makes; and every security counter
/// has an alarm.
#[test]
fn alarms_on_rootmail_metrics_watch_what_the_code_emits() {
    let emitted = emitted_metrics(&rootmail_tests::workspace_root());
    let template = template();
    let filtered: BTreeSet<&str> = template
        .resources()
        .into_iter()
        .filter(|(_, r)| get(r, "Type").and_then(string) == Some("AWS::Logs::MetricFilter"))
        .flat_map(|(_, r)| {
            let transforms = path(r, &["Properties", "MetricTransformations"]);
            transforms.map(items).unwrap_or_default()
        })
        .filter_map(|t| get(t, "MetricName").and_then(string))
        .collect();
    let mut alarmed = BTreeSet::new();
    let mut problems = Vec::new();
    for (name, alarm) in template.resources() {
        let properties = get(alarm, "Properties");
        let field = |key: &str| properties.and_then(|p| get(p, key)).and_then(string);
        if get(alarm, "Type").and_then(string) != Some("AWS::CloudWatch::Alarm")
            || field("Namespace") != Some("rootmail")
        {
            continue;
        }
        let metric = field("MetricName").unwrap_or_default();
        alarmed.insert(metric.to_string());
        let dimensions: BTreeSet<String> = properties
            .and_then(|p| get(p, "Dimensions"))
            .map(items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|d| get(d, "Name").and_then(string).map(str::to_string))
            .collect();
        match emitted.get(metric) {
            Some(sets) if sets.contains(&dimensions) => {}
            Some(sets) => problems.push(format!(
                "{name}: {metric} is counted with dimensions {sets:?}, the alarm asks {dimensions:?}"
            )),
            None if filtered.contains(metric) => {}
            None => problems.push(format!("{name}: nothing counts {metric}")),
        }
    }
    for counter in SECURITY_COUNTERS {
        assert!(emitted.contains_key(*counter), "{counter} is counted");
        if !alarmed.contains(*counter) {
            problems.push(format!("no alarm on {counter}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each metric rootmail's code counts (`count("Name", &[("Dim", ..), ..])`
/// in `shared/` and `functions/`), with the sets of dimension names it is
/// counted with.
fn emitted_metrics(root: &Path) -> BTreeMap<String, BTreeSet<BTreeSet<String>>> {
    let call = regex::Regex::new(r#"(?s)\.count\(\s*"(\w+)",\s*&\[(.*?)\]\s*,?\s*\)"#).unwrap();
    let dimension = regex::Regex::new(r#"\(\s*"(\w+)","#).unwrap();
    let mut emitted: BTreeMap<String, BTreeSet<BTreeSet<String>>> = BTreeMap::new();
    let mut dirs = vec![root.join("shared"), root.join("functions")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).unwrap();
                for c in call.captures_iter(&text) {
                    let names = dimension
                        .captures_iter(&c[2])
                        .map(|d| d[1].to_string())
                        .collect();
                    emitted.entry(c[1].to_string()).or_default().insert(names);
                }
            }
        }
    }
    emitted
}

/// The take-over's waits in the state machine are the ones the rotation
/// records: the code's (a rotation takes the code mail as long as its task
/// waits) and the engineer's (reset links are taken as long as the engineer
/// works).
#[test]
fn the_take_over_waits_as_long_as_its_rotation_takes_mail() {
    let asl: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(
            rootmail_tests::workspace_root().join("infra/statemachines/take-over.asl.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let timeout = |state: &str| asl["States"][state]["TimeoutSeconds"].as_u64();
    assert_eq!(
        timeout("StartEmailUpdate"),
        Some(rootmail_lifecycle::steps::OTP_WAIT_SECS)
    );
    assert_eq!(
        timeout("PrepareVault"),
        Some(rootmail_lifecycle::steps::ENGINEER_WAIT_SECS)
    );
}

/// mail-ingest cuts a ticket operation to `MAX_QUEUED_OP_BYTES`: the queue
/// must take that much (SQS refuses a larger message, and the mail would be
/// retried into the DLQ, never ticketed).
#[test]
fn the_ticket_queue_takes_the_largest_operation_ingest_sends() {
    let template = template();
    let size = path(
        template.resource("TicketOpsQueue"),
        &["Properties", "MaximumMessageSize"],
    )
    .and_then(integer)
    .expect("MaximumMessageSize is set");
    let size = usize::try_from(size).expect("positive");
    assert!(
        rootmail_pipeline::MAX_QUEUED_OP_BYTES + 16 * 1024 <= size,
        "{size} bytes"
    );
}

/// AWS's guidance for a Lambda function on an SQS queue: "set the source
/// queue's visibility timeout to at least six times the configuration
/// timeout on your function" (Lambda developer guide, configuring an SQS
/// event source), so that a throttled invocation is retried before its
/// messages return to the queue (and, on the FIFO queue, reach a second
/// writer while the first still writes). ticket-ops had 900 s against a
/// 180 s writer.
#[test]
fn each_queue_hides_its_messages_six_times_its_consumers_timeout() {
    let template = template();
    let mut checked = 0;
    for (name, resource) in template.resources() {
        let Some(events) = path(resource, &["Properties", "Events"]) else {
            continue;
        };
        let timeout = path(resource, &["Properties", "Timeout"])
            .and_then(integer)
            .unwrap_or_else(|| panic!("{name} sets its timeout"));
        for (_, event) in entries(Some(events)) {
            if path(event, &["Type"]).and_then(string) != Some("SQS") {
                continue;
            }
            let queue = path(event, &["Properties", "Queue"])
                .and_then(get_att)
                .and_then(|dotted| dotted.split('.').next().map(str::to_string))
                .unwrap_or_else(|| panic!("{name}'s queue is a GetAtt"));
            let visibility = path(
                template.resource(&queue),
                &["Properties", "VisibilityTimeout"],
            )
            .and_then(integer)
            .unwrap_or_else(|| panic!("{queue} sets VisibilityTimeout"));
            assert!(
                visibility >= 6 * timeout,
                "{queue}: {visibility} s, under 6 x {name}'s {timeout} s"
            );
            if queue == "TicketOpsQueue" {
                let writer_knows = ticket_writer::QUEUE_VISIBILITY.as_secs();
                assert_eq!(
                    visibility as u64, writer_knows,
                    "ticket_writer::QUEUE_VISIBILITY"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "mail-ingest's and ticket-writer's queues");
}

/// `rootmail ... --aws` reads its settings from the environment the
/// OperatorEnvironment output sets: every variable the operator client
/// requires (`pub const ..._VARIABLE`) is in it.
#[test]
fn the_operator_environment_sets_what_the_command_line_reads() {
    let template = template();
    let output = path(&template.root, &["Outputs", "OperatorEnvironment", "Value"])
        .and_then(|value| intrinsic(value).map(|(_, argument)| argument))
        .and_then(string)
        .expect("OperatorEnvironment is a !Sub of KEY=VALUE words");
    let set: BTreeSet<&str> = output
        .split_whitespace()
        .filter_map(|word| word.split_once('=').map(|(key, _)| key))
        .collect();
    let client =
        fs::read_to_string(rootmail_tests::workspace_root().join("cli/src/operator_client.rs"))
            .unwrap();
    let read: Vec<&str> = client
        .lines()
        .filter(|line| line.starts_with("pub const") && line.contains("_VARIABLE: &str"))
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    assert_eq!(read, ["OPERATOR_URL", "OPERATOR_FUNCTION_ARN"]);
    for name in read
        .into_iter()
        .chain(["AWS_REGION", "TAKE_OVER_STATE_MACHINE_ARN"])
    {
        assert!(
            set.contains(name),
            "OperatorEnvironment lacks {name}: {set:?}"
        );
    }
}

//! The deployment template against the code: every function crate in
//! `functions/` is deployed by `infra/template.yaml` (and nothing else is), and
//! each function's environment there sets every variable its configuration
//! reads, and nothing it does not.
//!
//! Both sides are read as text, with no YAML or Rust parser:
//! - the template by indentation (it is written in block style; block scalars
//!   such as the dashboard body are skipped);
//! - the code by looking for the name literals given to `env.<method>("NAME")`
//!   or to a helper as `helper(env, "NAME")`, in the function's own sources and
//!   in every helper it hands `env` to (`backend_settings` in `shared/aws`,
//!   say), followed through the shared crates. Test modules are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Read by `tracing`'s filter, not by a `Config`: set for every function.
const RUNTIME_VARIABLES: &[&str] = &["RUST_LOG"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

#[test]
fn every_function_is_deployed_with_every_setting_it_reads() {
    let root = workspace();
    let template = fs::read_to_string(root.join("infra/template.yaml")).expect("read the template");
    let problems = check(&root, &template);
    assert!(
        problems.is_empty(),
        "infra/template.yaml does not match the code:\n  {}",
        problems.join("\n  ")
    );
}

/// The crash points (`rootmail-pipeline`'s `failpoints` feature) are for the
/// tests only: each function built from its own directory, as `sam build` and
/// `make build` build it, does not compile the fail-point crate in; the tests
/// crate, which turns the feature on, does.
/// mail-ingest may update only the fields a handover writes: the template's
/// `dynamodb:Attributes` list is the code's `HANDOVER_FIELDS` and the key.
#[test]
fn mail_ingest_updates_only_the_handover_fields_of_a_rotation() {
    let template = fs::read_to_string(workspace().join("infra/template.yaml")).unwrap();
    let at = template
        .find("- Sid: RecordTheHandoverOnly")
        .expect("mail-ingest's rotation statement");
    let block = &template[at..];
    let list_start = block
        .find("dynamodb:Attributes:")
        .expect("an attribute list")
        + 20;
    let granted: BTreeSet<&str> = block[list_start..]
        .lines()
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("- "))
        .collect();
    let mut wanted: BTreeSet<&str> = rootmail_lifecycle::HANDOVER_FIELDS
        .iter()
        .copied()
        .collect();
    wanted.insert("account_id");
    assert_eq!(granted, wanted);
    let statement_end = block[1..].find("- Sid:").unwrap_or(block.len());
    assert!(block[..statement_end].contains("Action: dynamodb:UpdateItem"));
}

/// Mail is trusted by the headers SES writes, so nobody else may write it:
/// the bucket policy denies PutObject under inbound/ to every caller that is
/// not an AWS service, and to any receipt rule but this stack's.
#[test]
fn only_ses_may_write_mail_into_the_bucket() {
    let template = fs::read_to_string(workspace().join("infra/template.yaml")).unwrap();
    let policy = resource_block(&template, "MailBucketPolicy");
    for (sid, condition) in [
        (
            "NobodyButSesWritesMail",
            "aws:PrincipalIsAWSService: \"false\"",
        ),
        ("NoOtherReceiptRuleWritesMail", "ArnNotLikeIfExists:"),
    ] {
        let at = policy
            .find(&format!("- Sid: {sid}"))
            .unwrap_or_else(|| panic!("{sid}"));
        let statement = &policy[at..];
        let statement = &statement[..statement[1..].find("- Sid:").unwrap_or(statement.len())];
        for line in [
            "Effect: Deny",
            "Action: s3:PutObject",
            "${MailBucket.Arn}/inbound/*",
            condition,
        ] {
            assert!(
                statement.contains(line),
                "{sid} lacks {line:?}:\n{statement}"
            );
        }
    }
}

/// Every top-level resource of the template: its name and its lines.
fn resources(template: &str) -> Vec<(&str, &str)> {
    let body = &template[template
        .find("\nResources:\n")
        .expect("a Resources section")..];
    body.lines()
        .filter_map(|l| {
            let name = l.strip_prefix("  ")?.strip_suffix(':')?;
            (!name.starts_with([' ', '#'])).then_some(name)
        })
        .map(|name| (name, resource_block(template, name)))
        .collect()
}

/// Issue 17, point 3. The Service Authorization Reference (Actions defined by
/// AWS Account Management) lists `iam:UpdateAccountEmailAddress` as a
/// dependent action of StartPrimaryEmailUpdate and AcceptPrimaryEmailUpdate,
/// with no resource type: every role making those calls must be granted it,
/// on "*" (a resource ARN would never match it).
#[test]
fn roles_changing_a_root_email_are_also_granted_iam_update_account_email_address() {
    let template = fs::read_to_string(workspace().join("infra/template.yaml")).unwrap();
    let mut checked = 0;
    for (name, block) in resources(&template) {
        if !block.contains("account:StartPrimaryEmailUpdate")
            && !block.contains("account:AcceptPrimaryEmailUpdate")
        {
            continue;
        }
        checked += 1;
        let at = block
            .find("Action: iam:UpdateAccountEmailAddress")
            .unwrap_or_else(|| {
                panic!("{name} changes root emails without iam:UpdateAccountEmailAddress")
            });
        let resource = block[at..].lines().nth(1).unwrap_or_default().trim();
        assert_eq!(resource, "Resource: \"*\"", "{name}: {resource}");
    }
    assert_eq!(checked, 4, "take-over start and accept, release, operator");
}

/// Issue 17, point 6. `states:SendTaskSuccess` has no resource type in the
/// Service Authorization Reference (Actions defined by AWS Step Functions):
/// IAM matches such an action only against "*", so a statement that names a
/// state machine never allows it.
#[test]
fn send_task_success_is_granted_the_only_way_iam_matches_it() {
    let template = fs::read_to_string(workspace().join("infra/template.yaml")).unwrap();
    let mut grants = 0;
    for (at, _) in template.match_indices("Action: states:SendTaskSuccess") {
        grants += 1;
        let resource = template[at..].lines().nth(1).unwrap_or_default().trim();
        assert_eq!(resource, "Resource: \"*\"", "{resource}");
        let before = &template[..at];
        let statement = &before[before.rfind("- Sid:").unwrap()..];
        assert!(
            statement.contains("no resource type"),
            "say why \"*\" is safe: {statement}"
        );
    }
    assert_eq!(grants, 2, "mail-ingest and the operator function");
}

/// Issue 17, point 4. StartPrimaryEmailUpdate's `PrimaryEmail` is at most 64
/// characters (AWS Account Management API Reference); root addresses are
/// `root-<20>@<domain>`, so the domain parameter allows at most 38.
#[test]
fn the_root_mail_domain_parameter_fits_the_account_apis_limit() {
    let template = fs::read_to_string(workspace().join("infra/template.yaml")).unwrap();
    let parameter = resource_block(&template, "RootMailDomain");
    let max: usize = parameter
        .lines()
        .find_map(|l| l.trim().strip_prefix("MaxLength: "))
        .expect("a MaxLength on RootMailDomain")
        .parse()
        .unwrap();
    assert_eq!(max, rootmail_lifecycle::credentials::MAX_ROOT_DOMAIN_CHARS);
    assert_eq!(max + "root-".len() + 20 + "@".len(), 64);
}

/// The lines of a top-level resource of the template, up to the next one.
fn resource_block<'a>(template: &'a str, name: &str) -> &'a str {
    let start = template
        .find(&format!("\n  {name}:\n"))
        .unwrap_or_else(|| panic!("no resource {name}"))
        + 1;
    let mut end = start;
    for (n, line) in template[start..].split_inclusive('\n').enumerate() {
        let top_level =
            line.starts_with("  ") && !line.starts_with("   ") && !line.trim().starts_with('#');
        if n > 0 && top_level {
            break;
        }
        end += line.len();
    }
    &template[start..end]
}

#[test]
fn deployed_functions_are_built_without_crash_points() {
    let root = workspace();
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
    let functions: Vec<PathBuf> = fs::read_dir(root.join("functions"))
        .expect("functions/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
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
/// out of the real template, and point a function at a crate that does not
/// exist, and each is reported.
#[test]
fn a_template_that_drifted_from_the_code_is_reported() {
    let root = workspace();
    let template = fs::read_to_string(root.join("infra/template.yaml")).expect("read the template");

    let without_variable = remove_lines(&template, |l| l.trim_start().starts_with("LEDGER_TABLE:"));
    let problems = check(&root, &without_variable);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("mail-ingest") && p.contains("LEDGER_TABLE")),
        "{problems:?}"
    );

    let without_global = remove_lines(&template, |l| l.trim_start().starts_with("RUST_LOG:"));
    assert!(
        check(&root, &without_global)
            .iter()
            .any(|p| p.contains("RUST_LOG")),
        "a missing RUST_LOG is reported"
    );

    let moved = template.replace(
        "CodeUri: ../functions/ticket-writer",
        "CodeUri: ../functions/gone",
    );
    let problems = check(&root, &moved);
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

    let stale = template.replace(
        "MAIL_PREFIX: inbound/",
        "MAIL_PREFIX: inbound/\n          MAIL_SUFFIX: x",
    );
    assert!(
        check(&root, &stale)
            .iter()
            .any(|p| p.contains("MAIL_SUFFIX")),
        "a variable no code reads is reported"
    );
}

#[test]
fn the_code_scanner_follows_helpers_that_are_handed_env() {
    let root = workspace();
    let ingest = variables_read(&root, &root.join("functions/mail-ingest"));
    // Read through `at_least_one(env, "INGEST_CONCURRENCY", 4)`, and over a
    // line break (`env\n    .optional("MAIL_PREFIX")`).
    for name in [
        "ACCOUNTS_TABLE",
        "TICKET_OPS_QUEUE_URL",
        "INGEST_CONCURRENCY",
        "MAIL_PREFIX",
    ] {
        assert!(ingest.contains(name), "{name} in {ingest:?}");
    }
    let text = r#"
        fn from_env(env: &Env) -> Config {
            let a = env.required("DIRECT")?; // env.required("COMMENTED")
            let b = env
                .parsed_or("SPLIT", 4)?;
            let c = helper(env, "PASSED", 1)?;
            let d = settings(&env)?;
            let e = "env.required(\"QUOTED\")";
        }
        fn settings(env: &Env) -> X { env.optional("IN_HELPER") }
        #[cfg(test)]
        mod tests { fn t() { env.required("IN_TEST"); } }
    "#;
    let mut found = BTreeSet::new();
    let sources = vec![(PathBuf::from("x.rs"), text.to_string())];
    scan(
        &without_tests(text),
        &sources,
        &mut found,
        &mut BTreeSet::new(),
    );
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["DIRECT", "IN_HELPER", "PASSED", "SPLIT"]);
}

// ---------------------------------------------------------------- the check

/// What the template gets wrong about the code, one line each.
fn check(root: &Path, template: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let tree = parse_yaml(template);
    let global: BTreeSet<String> = tree
        .find(&["Globals", "Function", "Environment", "Variables"])
        .map(Node::keys)
        .unwrap_or_default();

    // One crate may be deployed as several functions (the lifecycle: one per
    // step); every one of them is checked.
    let mut deployed: BTreeMap<PathBuf, Vec<(String, BTreeSet<String>)>> = BTreeMap::new();
    let Some(resources) = tree.find(&["Resources"]) else {
        return vec!["no Resources section".to_string()];
    };
    for resource in &resources.children {
        if resource.child("Type").map(|t| t.value.as_str()) != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(code_uri) = resource.find(&["Properties", "CodeUri"]) else {
            problems.push(format!("{} has no Properties.CodeUri", resource.key));
            continue;
        };
        let dir = normalize(&root.join("infra").join(&code_uri.value));
        if !dir.join("Cargo.toml").is_file() {
            problems.push(format!(
                "{}'s CodeUri {} is not a crate directory ({})",
                resource.key,
                code_uri.value,
                dir.display()
            ));
            continue;
        }
        let mut variables = global.clone();
        if let Some(own) = resource.find(&["Properties", "Environment", "Variables"]) {
            variables.extend(own.keys());
        }
        deployed
            .entry(dir)
            .or_default()
            .push((resource.key.clone(), variables));
    }

    let mut crates: Vec<PathBuf> = fs::read_dir(root.join("functions"))
        .expect("read functions/")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    crates.sort();
    assert!(!crates.is_empty(), "no function crates found in functions/");

    for dir in &crates {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let Some(functions) = deployed.get(dir) else {
            problems.push(format!(
                "functions/{name} has no AWS::Serverless::Function whose CodeUri points at it"
            ));
            continue;
        };
        let read = variables_read(root, dir);
        assert!(
            !read.is_empty(),
            "found no variables read by functions/{name}"
        );
        for (resource, variables) in functions {
            problems.extend(environment_problems(&name, resource, variables, &read));
        }
    }
    problems
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

// ---------------------------------------------------------------- the template

/// A mapping key and what is nested under it. List items are nodes keyed `-`.
#[derive(Debug, Default)]
struct Node {
    key: String,
    value: String,
    indent: usize,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, key: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.key == key)
    }

    fn find(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.child(key))
    }

    fn keys(&self) -> BTreeSet<String> {
        self.children
            .iter()
            .filter(|c| c.key != "-")
            .map(|c| c.key.clone())
            .collect()
    }
}

/// Block-style YAML by indentation: enough for keys, scalar values and nesting.
fn parse_yaml(text: &str) -> Node {
    // The path from the root to the node the next line may nest under.
    let mut stack: Vec<Node> = vec![Node::default()];
    let mut block_scalar_of: Option<usize> = None;

    fn close_to(stack: &mut Vec<Node>, indent: usize) {
        while stack.len() > 1 && stack.last().unwrap().indent >= indent {
            let done = stack.pop().unwrap();
            stack.last_mut().unwrap().children.push(done);
        }
    }

    for line in text.lines() {
        let content = line.trim_start();
        let indent = line.len() - content.len();
        if let Some(owner) = block_scalar_of {
            if content.is_empty() || indent > owner {
                continue;
            }
            block_scalar_of = None;
        }
        if content.is_empty() || content.starts_with('#') || content.starts_with("---") {
            continue;
        }
        let (indent, content) = match content
            .strip_prefix("- ")
            .or(content.strip_prefix('-').filter(|r| r.is_empty()))
        {
            Some(rest) => {
                close_to(&mut stack, indent);
                stack.push(Node {
                    key: "-".to_string(),
                    indent,
                    ..Node::default()
                });
                let rest_trimmed = rest.trim_start();
                (indent + 2 + (rest.len() - rest_trimmed.len()), rest_trimmed)
            }
            None => (indent, content),
        };
        let Some((key, value)) = split_key(content) else {
            // A scalar list item, or a continuation line: no structure.
            if let Some(top) = stack
                .last_mut()
                .filter(|n| n.key == "-" && n.value.is_empty())
            {
                top.value = content.to_string();
            }
            continue;
        };
        close_to(&mut stack, indent);
        let value = value.split(" #").next().unwrap_or("").trim().to_string();
        if value.ends_with('|')
            || value.ends_with('>')
            || value.ends_with("|-")
            || value.ends_with(">-")
        {
            block_scalar_of = Some(indent);
        }
        stack.push(Node {
            key: key.to_string(),
            value,
            indent,
            children: Vec::new(),
        });
    }
    close_to(&mut stack, 0);
    stack.pop().unwrap()
}

/// `Key: value` or `Key:` -> the key and the value's text.
fn split_key(content: &str) -> Option<(&str, &str)> {
    let end = content
        .find(": ")
        .or_else(|| content.ends_with(':').then(|| content.len() - 1))?;
    let key = &content[..end];
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_:.-/".contains(c));
    plain.then(|| (key, content[end + 1..].trim()))
}

// ---------------------------------------------------------------- the code

/// Every variable name the crate at `dir` reads, through its helpers too.
fn variables_read(root: &Path, dir: &Path) -> BTreeSet<String> {
    let mut sources = rust_files(&dir.join("src"));
    let own = sources.len();
    for shared in fs::read_dir(root.join("shared")).expect("read shared/") {
        sources.extend(rust_files(
            &shared.expect("a directory entry").path().join("src"),
        ));
    }
    let mut found = BTreeSet::new();
    let mut followed = BTreeSet::new();
    for (_, text) in &sources[..own] {
        scan(&without_tests(text), &sources, &mut found, &mut followed);
    }
    found
}

fn rust_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).expect("read a source file");
            files.push((path, text));
        }
    }
    files
}

/// The source up to its `#[cfg(test)]` module (this workspace keeps tests last).
fn without_tests(text: &str) -> String {
    let code = masked(text);
    match code.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

/// Adds the names `code` reads to `found`, and follows the helpers it passes
/// `env` to into `sources` (each helper once).
fn scan(
    code: &str,
    sources: &[(PathBuf, String)],
    found: &mut BTreeSet<String>,
    followed: &mut BTreeSet<String>,
) {
    let mask = masked(code);
    let bytes = mask.as_bytes();
    let mut at = 0;
    while let Some(offset) = mask[at..].find("env") {
        let start = at + offset;
        at = start + 3;
        let word_start = start == 0 || !is_ident(bytes[start - 1]);
        if !word_start || bytes.get(at).is_some_and(|b| is_ident(*b)) {
            continue;
        }
        let after = skip_ws(bytes, at);
        let name_at = match bytes.get(after) {
            // env.method("NAME", ...)
            Some(b'.') => {
                let method = skip_ws(bytes, after + 1);
                let end = ident_end(bytes, method);
                let open = skip_ws(bytes, end);
                (end > method && bytes.get(open) == Some(&b'(')).then(|| skip_ws(bytes, open + 1))
            }
            // helper(env, "NAME", ...)
            Some(b',') => Some(skip_ws(bytes, after + 1)),
            _ => None,
        };
        if let Some(name) = name_at.and_then(|i| literal_at(code, &mask, i)) {
            found.insert(name);
        }
        // helper(env, ...) or helper(&env): what the helper reads counts too.
        if matches!(bytes.get(after), Some(b',' | b')'))
            && let Some((owner, helper)) = called_with_env(&mask, start)
            && followed.insert(format!("{owner:?}::{helper}"))
            && let Some(body) = function_body(sources, owner.as_deref(), &helper)
        {
            scan(&body, sources, found, followed);
        }
    }
}

/// The function whose call `env` (at `at`) is the first argument of, with the
/// type it is called on (`Type::name(env)`), if any.
fn called_with_env(mask: &str, at: usize) -> Option<(Option<String>, String)> {
    let before = mask[..at].trim_end();
    let before = before.strip_suffix('&').unwrap_or(before).trim_end();
    let before = before.strip_suffix('(')?.trim_end();
    let name_start = before
        .bytes()
        .rposition(|b| !is_ident(b))
        .map_or(0, |p| p + 1);
    let name = &before[name_start..];
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let owner = before[..name_start].strip_suffix("::").map(|path| {
        let start = path
            .bytes()
            .rposition(|b| !is_ident(b))
            .map_or(0, |p| p + 1);
        path[start..].to_string()
    });
    Some((
        owner.filter(|o| o != "Self" && o != "self"),
        name.to_string(),
    ))
}

/// The body of the first non-test `fn NAME` in the sources; for `Type::NAME`,
/// in a file that defines `Type` (a function's own `from_env` is not another
/// type's).
fn function_body(sources: &[(PathBuf, String)], owner: Option<&str>, name: &str) -> Option<String> {
    let pattern = format!("fn {name}");
    let defines = |text: &str| {
        owner.is_none_or(|o| {
            [
                format!("struct {o}"),
                format!("enum {o}"),
                format!("impl {o}"),
            ]
            .iter()
            .any(|d| text.contains(d.as_str()))
        })
    };
    for (_, text) in sources.iter().filter(|(_, t)| defines(t)) {
        let text = without_tests(text);
        let mask = masked(&text);
        let mut from = 0;
        while let Some(offset) = mask[from..].find(&pattern) {
            let start = from + offset;
            from = start + pattern.len();
            if mask.as_bytes().get(from).is_some_and(|b| is_ident(*b)) {
                continue;
            }
            let open = from + mask[from..].find('{')?;
            let mut depth = 0usize;
            for (i, b) in mask.bytes().enumerate().skip(open) {
                match b {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(text[open..=i].to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    None
}

/// A `"NAME"` literal starting at `at` whose text is a variable name.
fn literal_at(code: &str, mask: &str, at: usize) -> Option<String> {
    if mask.as_bytes().get(at) != Some(&b'"') {
        return None;
    }
    let end = at + 1 + mask[at + 1..].find('"')?;
    let name = &code[at + 1..end];
    let valid = name.as_bytes().first().is_some_and(u8::is_ascii_uppercase)
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    valid.then(|| name.to_string())
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

fn ident_end(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| is_ident(*b)) {
        at += 1;
    }
    at
}

/// `code` with comments blanked and the insides of string and char literals
/// replaced by `_` (same length, quotes kept), so searching it finds only code.
fn masked(code: &str) -> String {
    let bytes = code.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < bytes.len() {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        out[i] = b' ';
                        out[i + 1] = b' ';
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        out[i] = b' ';
                        out[i + 1] = b' ';
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if bytes[i] != b'\n' {
                            out[i] = b' ';
                        }
                        i += 1;
                    }
                }
            }
            b'r' if (bytes.get(i + 1) == Some(&b'"') || bytes.get(i + 1) == Some(&b'#'))
                && (i == 0 || !is_ident(bytes[i - 1])) =>
            {
                // r"..." or r#"..."#
                let mut j = i + 1;
                let mut hashes = 0;
                while bytes.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if bytes.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let body = j + 1;
                let end = bytes[body..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(bytes.len(), |p| body + p);
                for b in &mut out[body..end] {
                    *b = b'_';
                }
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    out[j] = b'_';
                    if bytes[j] == b'\\' && j + 1 < bytes.len() {
                        out[j + 1] = b'_';
                        j += 1;
                    }
                    j += 1;
                }
                i = j + 1;
            }
            // A char literal ('x', '\n', '"'), not a lifetime ('a).
            b'\'' => {
                let close = if bytes.get(i + 1) == Some(&b'\\') {
                    bytes[i + 2..]
                        .iter()
                        .position(|b| *b == b'\'')
                        .map(|p| i + 2 + p)
                } else {
                    let len = code[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (bytes.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
                };
                match close {
                    Some(end) => {
                        for b in &mut out[i + 1..end] {
                            *b = b'_';
                        }
                        i = end + 1;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The block of `key` at two spaces of indentation (a parameter or a
/// resource): its line and the more indented lines after it.
fn top_level_block<'a>(template: &'a str, key: &str) -> &'a str {
    let start = template
        .find(&format!("\n  {key}:\n"))
        .unwrap_or_else(|| panic!("{key} is in the template"))
        + 1;
    let rest = &template[start..];
    let mut end = rest.find('\n').map_or(rest.len(), |i| i + 1);
    for line in rest[end..].split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent <= 2 && !line.trim().is_empty() {
            break;
        }
        end += line.len();
    }
    &rest[..end]
}

/// Issue D: the ticketing API's URL is https, so credentials never travel in
/// clear; issue C: ticket-writer gets a generated marker key of its own,
/// readable by it only, through the stack's key.
#[test]
fn the_ticketing_api_is_https_and_the_writer_has_a_marker_key() {
    let template =
        fs::read_to_string(workspace().join("infra/template.yaml")).expect("read the template");
    let url = top_level_block(&template, "TicketApiUrl");
    assert!(
        url.contains(r#"AllowedPattern: "^https://"#),
        "TicketApiUrl accepts plain http:\n{url}"
    );
    let secret = top_level_block(&template, "MarkerKeySecret");
    assert!(
        secret.contains("Type: AWS::SecretsManager::Secret"),
        "{secret}"
    );
    assert!(secret.contains("GenerateSecretString:"), "{secret}");
    assert!(secret.contains("KmsKeyId: !GetAtt Key.Arn"), "{secret}");
    let writer = top_level_block(&template, "TicketWriterFunction");
    assert!(
        writer.contains("MARKER_KEY_SECRET_ARN: !Ref MarkerKeySecret"),
        "{writer}"
    );
    let role = top_level_block(&template, "TicketWriterRole");
    assert!(
        role.contains(
            "Action: secretsmanager:GetSecretValue\n                Resource: !Ref MarkerKeySecret"
        ),
        "{role}"
    );
    assert!(
        role.contains("kms:EncryptionContext:SecretARN: !Ref MarkerKeySecret"),
        "{role}"
    );
}

/// Issue 17, point 7. AWS says a root email change can take up to four hours
/// to propagate (AWS Account Management reference guide, "Update the root
/// user email address"): the take-over's `ConfirmEmailUpdate` retries
/// `NotYet` for at least four hours, with a ceiling on the delay and on the
/// whole wait (Step Functions' `MaxDelaySeconds`).
#[test]
fn the_take_over_waits_long_enough_for_the_root_email_to_propagate() {
    let asl: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(workspace().join("infra/statemachines/take-over.asl.json")).unwrap(),
    )
    .unwrap();
    let retry = asl["States"]["ConfirmEmailUpdate"]["Retry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ErrorEquals"] == serde_json::json!(["NotYet"]))
        .expect("a NotYet retry");
    let number = |name: &str| retry[name].as_f64().unwrap_or_else(|| panic!("{name}"));
    let (interval, rate, max_delay, attempts) = (
        number("IntervalSeconds"),
        number("BackoffRate"),
        number("MaxDelaySeconds"),
        number("MaxAttempts") as i32,
    );
    let waited: f64 = (0..attempts)
        .map(|n| (interval * rate.powi(n)).min(max_delay))
        .sum();
    let hours = waited / 3600.0;
    assert!((4.0..=6.0).contains(&hours), "waits {hours:.2} h");
    assert!(max_delay <= 1800.0, "polls at least every 30 minutes");
}

/// Issue 17, point 5. The key statements for AWS service principals (SES
/// writing mail into the bucket, S3 notifying the encrypted queue,
/// CloudWatch alarms publishing to the encrypted topic) take the form the
/// services' guides document: `aws:SourceAccount` and `aws:SourceArn`, never
/// `kms:ViaService`, which is not documented for a service principal's own
/// calls.
#[test]
fn service_principals_use_the_documented_key_policy_conditions() {
    let template = fs::read_to_string(workspace().join("infra/template.yaml")).unwrap();
    let key = resource_block(&template, "Key");
    let statements: Vec<&str> = key.split("- Sid: ").skip(1).collect();
    let mut checked = 0;
    for statement in statements {
        let sid = statement.lines().next().unwrap_or_default();
        let service = [
            "ses.amazonaws.com",
            "s3.amazonaws.com",
            "cloudwatch.amazonaws.com",
        ]
        .iter()
        .any(|s| statement.contains(&format!("Service: {s}")));
        if !service {
            continue;
        }
        checked += 1;
        assert!(
            !statement.contains("kms:ViaService:"),
            "{sid} uses kms:ViaService"
        );
        assert!(
            statement.contains("aws:SourceAccount: !Ref AWS::AccountId")
                && statement.contains("aws:SourceArn:"),
            "{sid} lacks aws:SourceAccount and aws:SourceArn"
        );
    }
    assert_eq!(checked, 3, "SES, S3 and CloudWatch");
}

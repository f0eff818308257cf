//! `rootmail`: triage AWS root-address mail, run the pipeline locally, read tickets.

mod estate;
mod inputs;
mod lifecycle_commands;
mod mailbox;
mod operator_client;
mod ops;
mod output;
mod run;
mod tickets;
mod triage;

use clap::{Parser, Subcommand, ValueEnum};
use mimalloc::MiMalloc;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "rootmail",
    version,
    about = "Turns the mail AWS sends to root-user addresses into tickets."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// JSON: for `triage`, one object per message, one per line; for
    /// `status`, one report.
    Json,
    /// A table for people.
    Table,
}

#[derive(Subcommand)]
enum Command {
    /// Decide what each message is and what would happen to it; changes nothing.
    Triage(TriageArgs),
    /// Run the whole pipeline locally: archive, ledger and threads under --state;
    /// tickets there too, or in a real ticketing system with --backend.
    Run(RunArgs),
    /// Operator commands for the account directory in AWS.
    Accounts(AccountsArgs),
    /// Re-drive stored mail (--bucket) or dead letters (--dlq) through the AWS pipeline.
    /// Safe to repeat: messages already finished are no-ops.
    Replay(ReplayArgs),
    /// Counts by status, disposition and kind over a time window, from the
    /// ledger in AWS (--table) or of a local run (--state).
    Status(StatusArgs),
    /// The root-credential lifecycle of an account: take-over and its status.
    Rotation(RotationArgs),
    /// Break-glass access to an account's root credentials (audited first).
    Creds(CredsArgs),
    /// Hand an account's root back to the customer (reverse of a take-over), or with --cancel withdraw a release still waiting for the customer's code.
    Release(ReleaseArgs),
    /// Close an account: a member through AWS Organizations (CloseAccount), a payer or standalone account in its console, then --attest. Archive and vault stay; only its security, account and payment mail is still ticketed.
    Close(CloseArgs),
    /// Record a closed account open again, once AWS Support has reopened it (within 90 days of its closure): a member when AWS Organizations shows it ACTIVE, a payer or standalone account with --attest. It goes back to what it was when closed, and its mail is ticketed again.
    Reopen(CloseArgs),
    /// The root user's virtual MFA device during a take-over.
    Mfa(MfaArgs),
    /// The audit report: every lifecycle action and access, oldest first, with
    /// who did it, why, and the ticket.
    Audit(AuditArgs),
    /// Local mode only: act as the AWS console on the simulated AWS.
    Simulate(SimulateArgs),
    /// Read the tickets the local pipeline created.
    Tickets(TicketsArgs),
}

#[derive(clap::Args)]
struct TriageArgs {
    /// Account directory: CSV with `root_email,account_id,customer,status`.
    #[arg(long)]
    accounts: Option<PathBuf>,
    /// Classification rules replacing the built-in ones (same TOML format).
    #[arg(long)]
    rules: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Say why: the rules that fired with their weights, the runner-up
    /// kind, how the account and the thread were chosen.
    #[arg(long)]
    explain: bool,
    /// `.eml` files, or directories searched recursively for `*.eml`.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

impl TriageArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            accounts,
            rules,
            format,
            explain,
            paths,
        } = self;
        triage::run(
            &triage::Options {
                accounts: accounts.as_deref(),
                rules: rules.as_deref(),
                format,
                explain,
            },
            &paths,
        )
    }
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, default_value = ".rootmail")]
    state: PathBuf,
    #[arg(long)]
    accounts: Option<PathBuf>,
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Where tickets go. Other than `local`, the backend's settings come from
    /// the environment (TICKET_API_URL, RT_QUEUE, JIRA_SERVICE_DESK_ID...).
    #[arg(long, value_enum, default_value = "local")]
    backend: run::BackendChoice,
    /// The backend's JSON credentials file (or TICKET_CREDENTIALS with the JSON itself).
    #[arg(long, env = "TICKET_CREDENTIALS_FILE")]
    credentials: Option<PathBuf>,
    /// A backfill: mail delivered before this day (YYYY-MM-DD, UTC; the date
    /// the receiving server stamped on its topmost Received header, else the
    /// sender's Date) is archived (ledger row, original kept), never ticketed
    /// nor handed over.
    #[arg(long, value_parser = run::parse_day)]
    since: Option<i64>,
    /// Messages per transaction (also committed every 2 seconds): one sync
    /// of the database and of the archive per batch.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
    /// `.eml` files, mbox files, Maildirs, or directories holding them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

impl RunArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            state,
            accounts,
            rules,
            backend,
            credentials,
            since,
            batch_size,
            paths,
        } = self;
        run::run(
            &state,
            run::Inputs {
                accounts: accounts.as_deref(),
                rules: rules.as_deref(),
                backend,
                credentials: credentials.as_deref(),
                batch_size: batch_size as usize,
                since,
            },
            &paths,
        )
    }
}

#[derive(clap::Args)]
struct AccountsArgs {
    #[command(subcommand)]
    action: AccountsAction,
}

impl AccountsArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self {
                action:
                    AccountsAction::List {
                        state,
                        accounts,
                        phase,
                        silent_for,
                        format,
                        aws,
                        tables,
                    },
            } => estate::list(&estate::ListArgs {
                state: &state,
                accounts: accounts.as_deref(),
                phase: phase.as_deref(),
                silent_for,
                format,
                aws: aws.then_some(&tables),
            }),
            Self {
                action:
                    AccountsAction::Import {
                        file,
                        organization,
                        email_pattern,
                        tag,
                        customer_tag,
                        role_arn,
                        role_arns,
                        table,
                    },
            } => {
                let source = ops::accounts::Source {
                    csv: file.as_deref(),
                    organization,
                    filter: rootmail_aws::accounts::OrgFilter {
                        email_pattern,
                        tag: tag.as_deref().map(ops::accounts::parse_tag),
                        customer_tag,
                        payer: None,
                    },
                    role_arns: match with_listed(role_arn, role_arns.as_deref()) {
                        Ok(all) => all,
                        Err(e) => {
                            eprintln!("rootmail: {e:#}");
                            return Ok(ExitCode::from(2));
                        }
                    },
                };
                ops::block_on(ops::accounts::import(&table, source)).map(|()| ExitCode::SUCCESS)
            }
        }
    }
}

/// `--role-arn`s followed by those the `--role-arns` file lists.
fn with_listed(mut given: Vec<String>, file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    if let Some(path) = file {
        given.extend(ops::accounts::read_role_arns(path)?);
    }
    Ok(given)
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Bucket holding the stored mail.
    #[arg(long, conflicts_with = "dlq", required_unless_present = "dlq")]
    bucket: Option<String>,
    /// Only objects under this prefix.
    #[arg(long, default_value = "inbound/", requires = "bucket")]
    prefix: String,
    /// A dead-letter queue to empty back into the pipeline.
    #[arg(long)]
    dlq: Option<String>,
    /// The queue `mail-ingest` reads (S3 events go there).
    #[arg(long, env = "INBOUND_QUEUE_URL")]
    inbound_queue: Option<String>,
    /// The FIFO queue `ticket-writer` reads (ticket operations go there).
    #[arg(long, env = "TICKET_OPS_QUEUE_URL")]
    ticket_ops_queue: Option<String>,
}

impl ReplayArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            bucket,
            prefix,
            dlq,
            inbound_queue,
            ticket_ops_queue,
        } = self;
        ops::block_on(async {
            match (bucket, dlq) {
                (Some(bucket), None) => {
                    let queue = inbound_queue.as_deref().ok_or_else(|| {
                        anyhow::anyhow!("give --inbound-queue (or INBOUND_QUEUE_URL)")
                    })?;
                    ops::replay::bucket(&bucket, &prefix, queue).await
                }
                (None, Some(dlq)) => {
                    let targets = ops::replay::Targets {
                        inbound_queue: inbound_queue.as_deref(),
                        ticket_ops_queue: ticket_ops_queue.as_deref(),
                    };
                    ops::replay::dead_letters(&dlq, targets).await
                }
                _ => anyhow::bail!("give either --bucket or --dlq"),
            }
        })
        .map(|()| ExitCode::SUCCESS)
    }
}

#[derive(clap::Args)]
struct StatusArgs {
    /// How far back: 30m, 24h, 7d...
    #[arg(long, default_value = "24h", value_parser = ops::status::parse_window)]
    since: u64,
    #[arg(long, env = "LEDGER_TABLE", required_unless_present = "state")]
    table: Option<String>,
    /// A local state directory (`rootmail run --state`) instead of AWS.
    #[arg(long, conflicts_with = "table")]
    state: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

impl StatusArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            since,
            table,
            state,
            format,
        } = self;
        ops::block_on(ops::status::run(
            // clap requires --table (or LEDGER_TABLE) when --state is absent.
            match &state {
                Some(state) => ops::status::Source::State(state),
                None => ops::status::Source::Table(table.as_deref().unwrap_or_default()),
            },
            since,
            matches!(format, Format::Json),
        ))
        .map(|()| ExitCode::SUCCESS)
    }
}

#[derive(clap::Args)]
struct RotationArgs {
    #[command(flatten)]
    local: LocalLifecycleArgs,
    #[command(subcommand)]
    action: RotationAction,
}

impl RotationArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self { local, action } = self;
        let local = local.as_local();
        match action {
            RotationAction::Start {
                account,
                customer,
                mode,
                root_domain,
                state_machine,
                accounts,
                rules,
            } => lifecycle_commands::start(
                &local,
                &lifecycle_commands::Start {
                    account: &account,
                    customer: &customer,
                    mode: &mode,
                    root_domain: root_domain.as_deref(),
                    state_machine: state_machine.as_deref(),
                    accounts: accounts.as_deref(),
                    rules: rules.as_deref(),
                },
            ),
            RotationAction::Status { account } => lifecycle_commands::status(&local, &account),
            RotationAction::Complete {
                account,
                otp_stdin,
                attest,
            } => lifecycle_commands::complete(&local, &account, otp_stdin, attest.as_deref()),
            RotationAction::Code {
                account,
                reason,
                ticket,
            } => lifecycle_commands::read_code(
                &local,
                &lifecycle_commands::Access {
                    account: &account,
                    reason: &reason,
                    ticket: &ticket,
                },
            ),
            RotationAction::Attest { account, statement } => {
                lifecycle_commands::attest(&local, &account, &statement)
            }
        }
    }
}

#[derive(clap::Args)]
struct CredsArgs {
    #[command(flatten)]
    local: LocalLifecycleArgs,
    #[command(subcommand)]
    action: CredsAction,
}

impl CredsArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            local,
            action:
                CredsAction::Get {
                    account,
                    reason,
                    ticket,
                },
        } = self;
        lifecycle_commands::creds_get(
            &local.as_local(),
            &lifecycle_commands::Access {
                account: &account,
                reason: &reason,
                ticket: &ticket,
            },
        )
    }
}

#[derive(clap::Args)]
struct ReleaseArgs {
    #[command(flatten)]
    local: LocalLifecycleArgs,
    #[arg(long)]
    account: String,
    /// The customer's address the root email moves to; AWS mails them a code.
    #[arg(long, required_unless_present = "cancel")]
    customer_email: Option<String>,
    /// Withdraw the release waiting for the customer's code: the account is
    /// ours again (refused once AWS moved the root email).
    #[arg(long, conflicts_with = "customer_email")]
    cancel: bool,
    /// With --cancel, a console account: that its root email is still ours
    /// and our MFA device in place, in your words.
    #[arg(long, requires = "cancel")]
    attest: Option<String>,
    /// Why the root user goes back, or stays (recorded, and mailed to security).
    #[arg(long)]
    reason: String,
    /// The ticket this release is for.
    #[arg(long)]
    ticket: String,
}

impl ReleaseArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            local,
            account,
            customer_email,
            cancel: _,
            attest,
            reason,
            ticket,
        } = self;
        let access = lifecycle_commands::Access {
            account: &account,
            reason: &reason,
            ticket: &ticket,
        };
        match customer_email {
            Some(email) => lifecycle_commands::release(&local.as_local(), &access, &email),
            None => {
                lifecycle_commands::cancel_release(&local.as_local(), &access, attest.as_deref())
            }
        }
    }
}

#[derive(clap::Args)]
struct CloseArgs {
    #[command(flatten)]
    local: LocalLifecycleArgs,
    #[arg(long)]
    account: String,
    #[arg(long)]
    reason: String,
    /// What you did or saw in the console: a payer or standalone account (mode console) closes only there, and only its console shows it reopened; so too a member that has left the organization.
    #[arg(long)]
    attest: Option<String>,
}

impl CloseArgs {
    fn run(self, reopen: bool) -> anyhow::Result<ExitCode> {
        let Self {
            local,
            account,
            reason,
            attest,
        } = self;
        let words = (account.as_str(), reason.as_str(), attest.as_deref());
        lifecycle_commands::close(&local.as_local(), words, reopen)
    }
}

#[derive(clap::Args)]
struct MfaArgs {
    #[command(flatten)]
    local: LocalLifecycleArgs,
    #[command(subcommand)]
    action: MfaAction,
}

impl MfaArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            local,
            action: MfaAction::Enroll { account, replace },
        } = self;
        lifecycle_commands::enroll_mfa(&local.as_local(), &account, replace)
    }
}

#[derive(clap::Args)]
struct AuditArgs {
    #[arg(long, default_value = ".rootmail")]
    state: PathBuf,
    /// One account only (refused if it has no audit trail).
    #[arg(long)]
    account: Option<String>,
    /// Only the last 30d, 12h...
    #[arg(long, value_parser = ops::status::parse_window)]
    since: Option<u64>,
    #[arg(long, value_enum, default_value = "table")]
    format: estate::ReportFormat,
    /// Read the deployed audit table instead of --state.
    #[arg(long)]
    aws: bool,
    #[command(flatten)]
    tables: estate::AwsTables,
}

impl AuditArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            state,
            account,
            since,
            format,
            aws,
            tables,
        } = self;
        estate::audit(&estate::AuditArgs {
            aws: aws.then_some(&tables),
            state: &state,
            account: account.as_deref(),
            since,
            format,
        })
    }
}

#[derive(clap::Args)]
struct SimulateArgs {
    #[command(flatten)]
    local: LocalLifecycleArgs,
    #[command(subcommand)]
    action: SimulateAction,
}

impl SimulateArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self {
            local,
            action:
                SimulateAction::Console {
                    account,
                    step,
                    to,
                    accounts,
                    rules,
                },
        } = self;
        lifecycle_commands::simulate_console(
            &local.as_local(),
            &lifecycle_commands::Simulated {
                account: &account,
                step: &step,
                to: to.as_deref(),
                accounts: accounts.as_deref(),
                rules: rules.as_deref(),
            },
        )
    }
}

#[derive(clap::Args)]
struct TicketsArgs {
    #[arg(long, default_value = ".rootmail", global = true)]
    state: PathBuf,
    #[command(subcommand)]
    action: TicketsAction,
}

impl TicketsArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let Self { state, action } = self;
        match action {
            TicketsAction::List => tickets::list(&state),
            TicketsAction::Show { id } => tickets::show(&state, &id),
        }
    }
}

#[derive(Subcommand)]
enum AccountsAction {
    /// The estate: every account with its customer, root address, lifecycle
    /// phase and mode, last verified AWS mail, last access and what it waits for.
    List {
        #[arg(long, default_value = ".rootmail")]
        state: PathBuf,
        /// Account directory CSV (as for `run`).
        #[arg(long)]
        accounts: Option<PathBuf>,
        /// Only accounts in this lifecycle phase (active, awaiting_engineer...).
        #[arg(long)]
        phase: Option<String>,
        /// Only accounts AWS has not written to for this long (30d, 12h...).
        #[arg(long, value_parser = ops::status::parse_window)]
        silent_for: Option<u64>,
        #[arg(long, value_enum, default_value = "table")]
        format: estate::ReportFormat,
        /// Read the deployed tables (a paginated Scan of each) instead of --state.
        #[arg(long)]
        aws: bool,
        #[command(flatten)]
        tables: estate::AwsTables,
    },
    /// Load accounts into the accounts table from a CSV file or from AWS
    /// Organizations. Idempotent: reports added, updated and unchanged.
    Import {
        /// CSV with `root_email,account_id,customer,status`.
        #[arg(
            required_unless_present = "organization",
            conflicts_with = "organization"
        )]
        file: Option<PathBuf>,
        /// Import the organization's member accounts (ListAccounts) instead.
        #[arg(long)]
        organization: bool,
        /// Only accounts whose email matches this regular expression.
        #[arg(long, requires = "organization")]
        email_pattern: Option<regex::Regex>,
        /// Only accounts with this tag: KEY or KEY=VALUE.
        #[arg(long, requires = "organization")]
        tag: Option<String>,
        /// The tag that names the customer (default: the account name).
        #[arg(long, requires = "organization")]
        customer_tag: Option<String>,
        /// A role to assume in a payer account (repeatable): that customer
        /// organization's accounts are imported, tagged with the payer.
        #[arg(long, requires = "organization")]
        role_arn: Vec<String>,
        /// A file of such role ARNs, one per line (# comments allowed).
        #[arg(long, requires = "organization")]
        role_arns: Option<PathBuf>,
        #[arg(long, env = "ACCOUNTS_TABLE")]
        table: String,
    },
}

/// Where the lifecycle runs (local state, or AWS with --aws), and who is acting.
#[derive(clap::Args)]
struct LocalLifecycleArgs {
    #[arg(long, default_value = ".rootmail", global = true)]
    state: PathBuf,
    /// Run against the deployed lifecycle with your AWS credentials: a take-over
    /// starts TAKE_OVER_STATE_MACHINE_ARN; everything else asks the operator
    /// function at OPERATOR_URL, which records your IAM identity.
    #[arg(long, global = true)]
    aws: bool,
    /// Who is acting, for the local audit trail (default: $USER). With --aws
    /// your IAM identity is recorded instead, and --who is refused.
    #[arg(long, global = true)]
    who: Option<String>,
}

impl LocalLifecycleArgs {
    /// The lifecycle these flags select (the state directory, or AWS), acting as `--who`.
    fn as_local(&self) -> lifecycle_commands::Local<'_> {
        lifecycle_commands::Local {
            state: &self.state,
            who: self.who.clone(),
            aws: self.aws,
        }
    }
}

#[derive(Subcommand)]
enum RotationAction {
    /// Take an account over: our root address, then a vaulted password and MFA
    /// (an engineer finishes in the console) or no root credentials at all.
    Start {
        #[arg(long)]
        account: String,
        #[arg(long)]
        customer: String,
        /// rootless or vaulted (member accounts of our organization: the
        /// Account API and AssumeRoot), or console (payer and standalone
        /// accounts: an engineer in the console, rootmail following by mail).
        #[arg(long, default_value = "rootless")]
        mode: String,
        /// Our domain for root addresses (local mode; in AWS the function's).
        #[arg(long, env = "ROOT_MAIL_DOMAIN")]
        root_domain: Option<String>,
        /// `--aws`: the take-over state machine's ARN.
        #[arg(long, env = "TAKE_OVER_STATE_MACHINE_ARN")]
        state_machine: Option<String>,
        /// Account directory CSV (as for `run`).
        #[arg(long)]
        accounts: Option<PathBuf>,
        #[arg(long)]
        rules: Option<PathBuf>,
    },
    /// Where the account's lifecycle is, and its audit trail.
    Status {
        #[arg(long)]
        account: String,
    },
    /// Finish what waits for a person: the engineer's console steps, a
    /// release waiting for the customer's code (--otp-stdin), or a member
    /// take-over waiting for AWS's code where no rule read it (--otp-stdin).
    Complete {
        #[arg(long)]
        account: String,
        /// Read a one-time code from standard input: the customer's (a
        /// release), or AWS's root email code read in the original mail (a
        /// member take-over still waiting for it; audited as typed by you;
        /// AWS refuses a wrong one and the take-over then fails).
        #[arg(long)]
        otp_stdin: bool,
        /// Console accounts: what you did in the console, recorded as your
        /// attestation (rootmail cannot check the root user there).
        #[arg(long)]
        attest: Option<String>,
    },
    /// Console take-over: print the verification code AWS mailed to our new
    /// root address, to type into the console (audited first). Where no rule
    /// read it in AWS's mail, it is in the original mail, not here. Asked AWS
    /// for a new code? Its mail replaces this one: run this again.
    Code {
        #[arg(long)]
        account: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        ticket: String,
    },
    /// Console take-over: the console shows our address as the root email and
    /// no AWS mail has confirmed it yet; recorded as your attestation.
    Attest {
        #[arg(long)]
        account: String,
        /// What you saw, in your words.
        #[arg(long)]
        statement: String,
    },
}

#[derive(Subcommand)]
enum MfaAction {
    /// Vault the secret key of the virtual MFA device the console generated
    /// (read from standard input) and print the two codes the console asks for.
    Enroll {
        #[arg(long)]
        account: String,
        /// The device AWS confirmed active was removed in the console: the
        /// new one's seed replaces it (refused without this flag).
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum CredsAction {
    /// Print the root password and current MFA code, after recording who and why.
    Get {
        #[arg(long)]
        account: String,
        #[arg(long)]
        reason: String,
        /// The ticket this access is for.
        #[arg(long)]
        ticket: String,
    },
}

#[derive(Subcommand)]
enum SimulateAction {
    /// One step a person does in the AWS console, on the simulated AWS; the
    /// mail AWS sends goes through the real pipeline.
    Console {
        #[arg(long)]
        account: String,
        /// change-email, enter-code (code on stdin), set-password,
        /// delete-access-keys, assign-mfa, activate-mfa (two codes on stdin),
        /// remove-mfa, close-account; and support-reopens (AWS Support
        /// reopens a closed account).
        #[arg(long)]
        step: String,
        /// change-email and enter-code: the new root address (default: the
        /// address the account's rotation moves to).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        accounts: Option<PathBuf>,
        #[arg(long)]
        rules: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TicketsAction {
    /// One line per ticket.
    List,
    /// A ticket with its comments.
    Show { id: String },
}

/// Triage allocates and frees many short strings for each message, on every
/// core at once. On mimalloc a backfill of 30,000 generated messages took
/// 3.2 s against glibc's allocator's 4.4 s, for 128 MB of peak memory
/// against 121 MB (`tests/README.md`). The Lambdas keep glibc's: a message
/// there waits on S3, not on triage.
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    rootmail_aws::logging::print_panics_by_place();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Triage(args) => args.run(),
        Command::Run(args) => args.run(),
        Command::Accounts(args) => args.run(),
        Command::Replay(args) => args.run(),
        Command::Status(args) => args.run(),
        Command::Rotation(args) => args.run(),
        Command::Creds(args) => args.run(),
        Command::Release(args) => args.run(),
        Command::Close(args) => args.run(false),
        Command::Reopen(args) => args.run(true),
        Command::Mfa(args) => args.run(),
        Command::Audit(args) => args.run(),
        Command::Simulate(args) => args.run(),
        Command::Tickets(args) => args.run(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rootmail: {error:#}");
            ExitCode::from(2)
        }
    }
}

//! `rootmail`: triage AWS root-address mail, run the pipeline locally, read tickets.

mod inputs;
mod output;
mod run;
mod tickets;
mod triage;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
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
    /// One JSON object per message, one per line.
    Json,
    /// A table for people.
    Table,
}

#[derive(Subcommand)]
enum Command {
    /// Decide what each message is and what would happen to it; changes nothing.
    Triage {
        /// Account directory: CSV with `root_email,account_id,customer,status`.
        #[arg(long)]
        accounts: Option<PathBuf>,
        /// Classification rules replacing the built-in ones (same TOML format).
        #[arg(long)]
        rules: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// `.eml` files, or directories searched recursively for `*.eml`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run the whole pipeline locally: archive, ledger, threads and tickets under --state.
    Run {
        #[arg(long, default_value = ".rootmail")]
        state: PathBuf,
        #[arg(long)]
        accounts: Option<PathBuf>,
        #[arg(long)]
        rules: Option<PathBuf>,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Read the tickets the local pipeline created.
    Tickets {
        #[arg(long, default_value = ".rootmail", global = true)]
        state: PathBuf,
        #[command(subcommand)]
        action: TicketsAction,
    },
}

#[derive(Subcommand)]
enum TicketsAction {
    /// One line per ticket.
    List,
    /// A ticket with its comments.
    Show { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Triage {
            accounts,
            rules,
            format,
            paths,
        } => triage::run(accounts.as_deref(), rules.as_deref(), format, &paths),
        Command::Run {
            state,
            accounts,
            rules,
            paths,
        } => run::run(&state, accounts.as_deref(), rules.as_deref(), &paths),
        Command::Tickets { state, action } => match action {
            TicketsAction::List => tickets::list(&state),
            TicketsAction::Show { id } => tickets::show(&state, &id),
        },
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rootmail: {error:#}");
            ExitCode::from(2)
        }
    }
}

//! `rootmail accounts import`: the account directory into the accounts table,
//! from a CSV file or from AWS Organizations. Idempotent: importing the same
//! data again changes nothing and says so.

use anyhow::Context as _;
use rootmail_aws::DynamoAccounts;
use rootmail_aws::accounts::{
    OrgFilter, Upsert, organization_accounts, organizations_as, role_account,
};
use rootmail_domain::Account;
use std::path::Path;

#[derive(Debug, Default)]
struct Counts {
    added: usize,
    updated: usize,
    unchanged: usize,
}

pub struct Source<'a> {
    pub csv: Option<&'a Path>,
    pub organization: bool,
    pub filter: OrgFilter,
    /// `--role-arn` / `--role-arns`: one role per payer account; each
    /// organization's accounts are tagged with the payer they belong to.
    pub role_arns: Vec<String>,
}

/// Role ARNs from `--role-arns FILE`: one per line; blank lines and `#`
/// comments skipped.
pub fn read_role_arns(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

pub async fn import(table: &str, source: Source<'_>) -> anyhow::Result<()> {
    let aws = rootmail_aws::sdk_config().await;
    let accounts: Vec<Account> = match (source.csv, source.organization) {
        (Some(file), false) => rootmail_local::accounts::read(file)?,
        (None, true) if source.role_arns.is_empty() => {
            let client = aws_sdk_organizations::Client::new(&aws);
            organization_accounts(&client, &source.filter)
                .await
                .context("listing the organization's accounts")?
        }
        (None, true) => {
            let mut all = Vec::new();
            for role in &source.role_arns {
                let payer = role_account(role).map_err(anyhow::Error::msg)?;
                let client = organizations_as(&aws, role)
                    .await
                    .with_context(|| format!("assuming {role}"))?;
                let filter = OrgFilter {
                    payer: Some(payer.clone()),
                    ..source.filter.clone()
                };
                let found = organization_accounts(&client, &filter)
                    .await
                    .with_context(|| format!("listing the accounts of payer {payer}"))?;
                println!("payer {payer}: {} accounts", found.len());
                all.extend(found);
            }
            all
        }
        _ => anyhow::bail!("give either a CSV file or --organization"),
    };
    let directory = DynamoAccounts::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let bar = super::progress(Some(accounts.len() as u64), "importing accounts");
    let mut counts = Counts::default();
    for account in &accounts {
        let done = directory
            .upsert(account)
            .await
            .with_context(|| format!("writing {} to table {table}", account.root_email))?;
        match done {
            Upsert::Added => counts.added += 1,
            Upsert::Updated => counts.updated += 1,
            Upsert::Unchanged => counts.unchanged += 1,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "{} accounts into {table}: {} added, {} updated, {} unchanged",
        accounts.len(),
        counts.added,
        counts.updated,
        counts.unchanged
    );
    Ok(())
}

/// `KEY` or `KEY=VALUE`.
pub fn parse_tag(text: &str) -> (String, Option<String>) {
    match text.split_once('=') {
        Some((key, value)) => (key.to_string(), Some(value.to_string())),
        None => (text.to_string(), None),
    }
}

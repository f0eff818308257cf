//! The account directory from a CSV file: `root_email,account_id,customer,status`.

use rootmail_domain::{Account, AccountId, AccountStatus, EmailAddress, InMemoryDirectory};
use std::path::Path;

pub const HEADER: [&str; 4] = ["root_email", "account_id", "customer", "status"];

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("cannot read accounts file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error("accounts file {path}: header must be `{}`, found `{found}`", HEADER.join(","))]
    Header { path: String, found: String },
    #[error("accounts file {path}, line {line}: {message}")]
    Row {
        path: String,
        line: u64,
        message: String,
    },
    #[error("accounts file {path}: {source}")]
    Directory {
        path: String,
        #[source]
        source: rootmail_domain::directory::DirectoryError,
    },
}

pub fn load(path: &Path) -> Result<InMemoryDirectory, AccountsError> {
    directory(read(path)?, &path.display().to_string())
}

pub fn parse_str(text: &str, name: &str) -> Result<InMemoryDirectory, AccountsError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    directory(parse(&mut reader, name)?, name)
}

/// The rows of an accounts file, checked (each field, and no address twice).
pub fn read(path: &Path) -> Result<Vec<Account>, AccountsError> {
    let shown = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|source| AccountsError::Read {
            path: shown.clone(),
            source,
        })?;
    let accounts = parse(&mut reader, &shown)?;
    directory(accounts.clone(), &shown)?;
    Ok(accounts)
}

fn directory(accounts: Vec<Account>, path: &str) -> Result<InMemoryDirectory, AccountsError> {
    InMemoryDirectory::new(accounts).map_err(|source| AccountsError::Directory {
        path: path.to_string(),
        source,
    })
}

fn parse<R: std::io::Read>(
    reader: &mut csv::Reader<R>,
    path: &str,
) -> Result<Vec<Account>, AccountsError> {
    let headers = reader
        .headers()
        .map_err(|source| AccountsError::Read {
            path: path.to_string(),
            source,
        })?
        .clone();
    if headers
        .iter()
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        != HEADER
    {
        return Err(AccountsError::Header {
            path: path.to_string(),
            found: headers.iter().collect::<Vec<_>>().join(","),
        });
    }
    let mut accounts = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|source| AccountsError::Read {
            path: path.to_string(),
            source,
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let row_error = |message: String| AccountsError::Row {
            path: path.to_string(),
            line,
            message,
        };
        let field = |i: usize| record.get(i).unwrap_or_default();
        if record.iter().all(str::is_empty) {
            continue;
        }
        accounts.push(Account {
            root_email: EmailAddress::parse(field(0)).map_err(|e| row_error(e.to_string()))?,
            account_id: AccountId::parse(field(1)).map_err(|e| row_error(e.to_string()))?,
            customer: field(2).to_string(),
            status: AccountStatus::parse(field(3)).map_err(|e| row_error(e.to_string()))?,
            payer: None,
        });
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootmail_domain::AccountDirectory;

    #[test]
    fn rows_load_and_lookups_are_case_insensitive() {
        let dir = parse_str(
            "root_email,account_id,customer,status\nRoot+A@Example.com, 111122223333 ,Acme Corp,active\n",
            "t.csv",
        )
        .unwrap();
        let account = dir
            .by_email(&EmailAddress::parse("root+a@example.com").unwrap())
            .unwrap();
        assert_eq!(account.customer, "Acme Corp");
        assert_eq!(account.status, AccountStatus::Active);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = parse_str(
            "root_email,account_id,customer,status\na@b.com,1234,C,active\n",
            "t.csv",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "accounts file t.csv, line 2: not a 12-digit AWS account id: \"1234\""
        );
        let err = parse_str(
            "root_email,account_id,customer,status\na@b.com,111122223333,C,gone\n",
            "t.csv",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("line 2: unknown account status"),
            "{err}"
        );
        let err = parse_str("email,id\n", "t.csv").unwrap_err();
        assert!(err.to_string().contains("header must be"), "{err}");
    }
}

//! `ztv inspect TOKEN`: the diagnosis of `POST /v1/diagnostics/token` at the command line,
//! against the secrets of the local configuration.

use std::io::Read;

use clap::Args;

use super::printable;
use crate::clock;
use crate::config::Settings;
use crate::diagnostics::{self, Diagnosis, Question, Secrets};

#[derive(Args)]
pub struct InspectArgs {
    /// The token; `-` or nothing reads it from standard input (kept out of the shell's history
    /// and the process list).
    token: Option<String>,
    /// The meeting the token should be for (9–12 digits).
    #[arg(long, value_parser = meeting_digits)]
    meeting_number: Option<String>,
    /// The findings as JSON, as `POST /v1/diagnostics/token` answers.
    #[arg(long)]
    json: bool,
}

fn meeting_digits(text: &str) -> Result<String, String> {
    let digits_only = text.bytes().all(|b| b.is_ascii_digit());
    match digits_only && crate::signing::MEETING_NUMBER_DIGITS.contains(&text.len()) {
        true => Ok(text.to_string()),
        false => Err("must be 9 to 12 digits".into()),
    }
}

/// Prints the diagnosis; fails (exit 1) when the token has a problem.
pub fn run(args: InspectArgs, settings: &Settings) -> anyhow::Result<()> {
    let token = match args.token.as_deref() {
        None | Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .take(diagnostics::MAX_TOKEN_BYTES as u64 + 1)
                .read_to_string(&mut text)?;
            text
        }
        Some(token) => token.to_string(),
    };
    let secrets = Secrets::from_settings(settings, None);
    let diagnosis = diagnostics::diagnose(
        &Question {
            token: &token,
            meeting_number: args.meeting_number.as_deref(),
            now: clock::now(),
        },
        &secrets,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    } else {
        print_table(&diagnosis);
    }
    match diagnosis.findings.iter().filter(|f| !f.ok).count() {
        0 => Ok(()),
        1 => anyhow::bail!("the token has 1 problem"),
        n => anyhow::bail!("the token has {n} problems"),
    }
}

fn print_table(diagnosis: &Diagnosis) {
    let width = diagnosis
        .findings
        .iter()
        .map(|f| f.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("{:<width$}  {:<4}  FINDING", "CHECK", "OK");
    for finding in &diagnosis.findings {
        println!(
            "{:<width$}  {:<4}  {}",
            finding.check,
            if finding.ok { "ok" } else { "FAIL" },
            printable(&finding.message)
        );
    }
    println!();
    println!("{}", printable(&diagnosis.verdict));
}

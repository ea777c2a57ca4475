//! The `ztv` command line: `serve` (the default), `dev`, `clients …`, `grants …`, `inspect` and
//! `config check`.
//!
//! May import anything: it is the top of the program.

pub mod dev;
mod grants;
mod inspect;
mod probe;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::app::{self, Application};
use crate::auth::api_clients::{self, NewClient};
use crate::auth::keys::NewKey;
use crate::clock;
use crate::config::{Settings, Sources};
use crate::scope::Scope;
use crate::store::{self, ClientRecord};
use crate::telemetry;

/// Exit code for configuration problems.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "ztv",
    version,
    about = "Zoom Token Vendor: vends short-lived Zoom tokens"
)]
struct Cli {
    /// Configuration file (TOML), layered over the defaults and under `ZTV_…` variables.
    #[arg(long, global = true, env = "ZTV_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Run the service with throw-away credentials and print a ready API key and curl lines.
    Dev(DevArgs),
    /// Manage API clients (keys).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Users' grants and account installs: list, show, revoke.
    #[command(subcommand)]
    Grants(grants::GrantsCommand),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Diagnose a Meeting SDK or Video SDK JWT, a ZAK or an OBF token against Zoom's rules
    /// and the configured secrets (it is never printed).
    Inspect(inspect::InspectArgs),
    /// Run only the built-in Zoom emulator (for benchmarks and multi-process tests).
    Emulator(EmulatorArgs),
    /// Read the audit log (newest first).
    Audit {
        /// How far back, e.g. `1h`, `7d` (default 24h).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        since: Duration,
        /// Only this caller (an API key's name or an end user's subject).
        #[arg(long)]
        caller: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when the service at `server.bind` answers `GET /healthz` with 200 (for
    /// container health checks; the image needs no curl).
    Healthcheck,
}

#[derive(Args)]
struct DevArgs {
    /// Address to listen on (default: server.bind).
    #[arg(long, value_name = "ADDR")]
    bind: Option<std::net::SocketAddr>,
}

#[derive(Args)]
struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    bind: std::net::SocketAddr,
    /// The emulated account's S2S app: account ID, client ID and client secret.
    #[arg(long, default_value = "emuAccount")]
    account_id: String,
    #[arg(long, default_value = "emuClient")]
    client_id: String,
    #[arg(long, default_value = "emu-client-secret")]
    client_secret: String,
    /// A further account's S2S app, as `ACCOUNT_ID:CLIENT_ID:SECRET`; repeat for several.
    // Parsed in `run_emulator`, not by clap, whose error would repeat the secret.
    #[arg(long = "account", value_name = "ACCOUNT_ID:CLIENT_ID:SECRET")]
    accounts: Vec<String>,
    /// A user, as `ID:EMAIL` (of the --account-id account) or `ACCOUNT_ID:ID:EMAIL` (of any
    /// account); repeat for several.
    #[arg(
        long = "user",
        value_name = "[ACCOUNT_ID:]ID:EMAIL",
        default_value = "emuUser0001:user@example.com"
    )]
    users: Vec<String>,
    /// `expires_in` of the access tokens it issues, in seconds.
    #[arg(long, default_value_t = 3599)]
    token_lifetime: u64,
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Create a client and print its key (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// A scope; repeat for several.
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<Scope>,
        /// Bind the client to this account (default: it may name any account).
        #[arg(long)]
        account: Option<String>,
        /// Life of the key, e.g. `90d`, `12h` (default: no expiry).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        expires_in: Option<Duration>,
        /// Own rate limit, `RPS/BURST` (default: [rate_limit] of the config).
        #[arg(long, value_parser = parse_rate_limit, value_name = "RPS/BURST")]
        rate_limit: Option<RateLimitArg>,
        /// Own budget of Zoom calls a minute (default: rate_limit.upstream_per_minute).
        #[arg(long, value_parser = parse_upstream_limit, value_name = "N")]
        upstream_per_minute: Option<UpstreamLimitArg>,
        #[arg(long)]
        json: bool,
    },
    /// Change a client's settings.
    Update {
        name: String,
        /// Own rate limit, `RPS/BURST`, or `default` for the config's.
        #[arg(long, value_parser = parse_rate_limit, value_name = "RPS/BURST|default")]
        rate_limit: Option<RateLimitArg>,
        /// Own budget of Zoom calls a minute, or `default` for the config's.
        #[arg(long, value_parser = parse_upstream_limit, value_name = "N|default")]
        upstream_per_minute: Option<UpstreamLimitArg>,
    },
    /// List clients (never their keys).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client's key; every replica refuses it within `auth.key_refresh_seconds`.
    Revoke { name: String },
    /// Replace a client's key with a new one (printed once); the old one stops working.
    Rotate {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

/// `--rate-limit`: a limit, or `default` (none of the client's own).
#[derive(Clone, Copy)]
struct RateLimitArg(Option<(u32, u32)>);

fn parse_rate_limit(text: &str) -> Result<RateLimitArg, String> {
    api_clients::parse_rate_limit(text).map(RateLimitArg)
}

/// `--upstream-per-minute`: a budget, or `default` (none of the client's own).
#[derive(Clone, Copy)]
struct UpstreamLimitArg(Option<u32>);

fn parse_upstream_limit(text: &str) -> Result<UpstreamLimitArg, String> {
    api_clients::parse_upstream_limit(text).map(UpstreamLimitArg)
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print a summary (no secrets).
    Check {
        /// Also fetch one S2S token per account and check each app's credentials, the user
        /// OAuth app's authorize URL, redirect URI and webhook secret.
        #[arg(long)]
        probe: bool,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&Sources::from_process(cli.config.clone())) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("ztv: config: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ztv: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(
        cli.command.unwrap_or(Command::Serve),
        settings,
        cli.config,
    ));
    // Queued spans and buffered log lines go out before the process ends.
    telemetry::traces::shutdown();
    telemetry::logs::flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ztv: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    command: Command,
    settings: Settings,
    config: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings, Sources::from_process(config)).await,
        Command::Dev(args) => dev::run(settings, args.bind).await,
        Command::Clients(command) => manage_clients(command, settings).await,
        Command::Grants(command) => grants::run(command, settings).await,
        Command::Healthcheck => healthcheck(settings.server.bind).await,
        Command::Audit {
            since,
            caller,
            limit,
            json,
        } => read_audit(&settings, since, caller.as_deref(), limit, json).await,
        Command::Emulator(args) => run_emulator(args).await,
        Command::Inspect(args) => inspect::run(args, &settings),
        Command::Config(ConfigCommand::Check { probe }) => {
            check_config(&settings);
            match probe {
                true => probe::run(&settings).await,
                false => Ok(()),
            }
        }
    }
}

/// `sources` are read again on SIGHUP or when a secret file changes (see [`crate::app::reload`]).
async fn serve(settings: Settings, sources: Sources) -> anyhow::Result<()> {
    telemetry::logs::init(settings.log_format, &settings.telemetry)?;
    let application = Application::build(settings).await?;
    crate::app::reload::spawn(application.state().clone(), sources);
    tracing::info!(addr = %application.local_addr(), "ztv is listening");
    application.run(app::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn run_emulator(args: EmulatorArgs) -> anyhow::Result<()> {
    use crate::emulator::{Emulator, EmulatorAccount, parse_user_spec};
    let default_account = EmulatorAccount {
        account_id: args.account_id.clone(),
        client_id: args.client_id,
        client_secret: args.client_secret,
    };
    let mut accounts = vec![default_account];
    for spec in &args.accounts {
        accounts.push(
            spec.parse::<EmulatorAccount>()
                .map_err(|error| anyhow::anyhow!("--account: {error}"))?,
        );
    }
    // Checked before the port is taken, so a typo fails without a half-started emulator.
    let mut users = Vec::new();
    for user in &args.users {
        let (account_id, id, email) = parse_user_spec(user).ok_or_else(|| {
            anyhow::anyhow!("--user must be ID:EMAIL or ACCOUNT_ID:ID:EMAIL, not {user:?}")
        })?;
        let account_id = account_id.unwrap_or(&args.account_id);
        if !accounts.iter().any(|a| a.account_id == account_id) {
            anyhow::bail!("--user {user:?}: no account {account_id:?} (add it with --account)");
        }
        users.push((account_id, id, email));
    }
    let zoom = Emulator::start_on(args.bind).await?;
    for account in accounts {
        zoom.add_account(account);
    }
    for (account_id, id, email) in users {
        zoom.add_user(account_id, id, email);
    }
    zoom.set_token_lifetime(args.token_lifetime);
    println!(
        "Zoom emulator listening: oauth_url = {}  api_url = {}",
        zoom.base_url(),
        zoom.api_url()
    );
    app::shutdown_signal().await;
    zoom.shutdown().await;
    Ok(())
}

async fn healthcheck(bind: std::net::SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A wildcard bind address is reached through loopback.
    let mut addr = bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        anyhow::Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => anyhow::bail!("{addr}/healthz did not answer 200"),
        Ok(Err(error)) => anyhow::bail!("{addr}/healthz: {error}"),
        Err(_) => anyhow::bail!("{addr}/healthz: no answer within 3 s"),
    }
}

fn check_config(settings: &Settings) {
    println!("configuration ok");
    println!("  listen: {}", settings.server.bind);
    match &settings.telemetry.otlp_endpoint {
        // The origin only: a URL's user and password are not for the terminal.
        Some(endpoint) => println!("  traces: to {}", endpoint.origin().ascii_serialization()),
        None => println!("  traces: off"),
    }
    println!("  accounts: {}", settings.accounts.len());
    for (name, account) in &settings.accounts {
        let mut parts = Vec::new();
        if account.s2s.is_some() {
            parts.push("s2s");
        }
        if account.meeting_sdk.is_some() {
            parts.push("meeting_sdk");
        }
        if account.video_sdk.is_some() {
            parts.push("video_sdk");
        }
        println!("    {name}: {}", parts.join(", "));
    }
    if let Some(path) = settings.database.sqlite_path() {
        for exposed in store::readable_by_others(&path) {
            println!(
                "warning: {} is readable by other users of this machine (it holds sealed \
                 tokens and key hashes): chmod 600 it",
                exposed.display()
            );
        }
    }
}

async fn read_audit(
    settings: &Settings,
    since: Duration,
    caller: Option<&str>,
    limit: i64,
    json: bool,
) -> anyhow::Result<()> {
    let store = store::connect(&settings.database.url).await?;
    let since_ms = crate::audit::now_ms() - since.as_millis() as i64;
    let events = store
        .list_audit(since_ms, caller, limit.clamp(1, 100_000))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    if events.is_empty() {
        println!("no audit events");
    }
    for e in &events {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(e.at_ms.max(0) as u64);
        println!(
            "{} {:<8} {:>3} {:<16} {:<40} account={} user={} target={} request={}",
            humantime::format_rfc3339_millis(at),
            printable(&e.outcome),
            e.status,
            printable(e.caller.as_deref().unwrap_or("-")),
            printable(&e.route),
            printable(e.account.as_deref().unwrap_or("-")),
            printable(e.target_user.as_deref().unwrap_or("-")),
            printable(e.target.as_deref().unwrap_or("-")),
            printable(e.request_id.as_deref().unwrap_or("-")),
        );
    }
    Ok(())
}

/// A stored field as one line can show it: control characters escaped (`\n`, `\u{1b}`), so
/// no field, however it was written, can start a forged line or move the terminal's cursor.
fn printable(field: &str) -> std::borrow::Cow<'_, str> {
    if !field.chars().any(char::is_control) {
        return field.into();
    }
    field
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect::<String>()
        .into()
}

/// Records an API-key change made with the CLI (the service is not involved).
async fn audit_key_change(store: &dyn crate::store::Store, action: &'static str, name: &str) {
    let event = crate::store::AuditEvent {
        at_ms: crate::audit::now_ms(),
        request_id: None,
        caller: Some("cli".into()),
        route: format!("cli clients {action}"),
        account: None,
        target_user: None,
        target: Some(name.to_string()),
        outcome: action.into(),
        status: 0,
    };
    if let Err(error) = store.append_audit(&[event]).await {
        eprintln!("ztv: warning: the audit event was not written: {error}");
    }
}

async fn manage_clients(command: ClientsCommand, settings: Settings) -> anyhow::Result<()> {
    let store = store::connect(&settings.database.url).await?;
    let refresh = settings.key_refresh.as_secs();
    match command {
        ClientsCommand::Create {
            name,
            scopes,
            account,
            expires_in,
            rate_limit,
            upstream_per_minute,
            json,
        } => {
            let new = NewClient {
                name: &name,
                scopes,
                account,
                expires_in,
                rate_limit: rate_limit.and_then(|r| r.0),
                upstream_per_minute: upstream_per_minute.and_then(|u| u.0),
            };
            let (record, key) = api_clients::create(store.as_ref(), &settings, new).await?;
            audit_key_change(store.as_ref(), "create", &record.name).await;
            print_key("Created", &record, &key, json, refresh);
        }
        ClientsCommand::Rotate { name, json } => {
            let (record, key) = api_clients::rotate(store.as_ref(), &name).await?;
            audit_key_change(store.as_ref(), "rotate", &name).await;
            print_key("Rotated", &record, &key, json, refresh);
        }
        ClientsCommand::Update {
            name,
            rate_limit,
            upstream_per_minute,
        } => {
            if rate_limit.is_none() && upstream_per_minute.is_none() {
                anyhow::bail!("nothing to update: give --rate-limit or --upstream-per-minute");
            }
            if let Some(RateLimitArg(limit)) = rate_limit {
                api_clients::set_rate_limit(store.as_ref(), &name, limit).await?;
                let shown = limit.map_or("the default".to_string(), |(r, b)| {
                    format!("{r}/s, burst {b}")
                });
                println!("Updated `{name}`: rate limit {shown}, in effect within {refresh} s.");
            }
            if let Some(UpstreamLimitArg(budget)) = upstream_per_minute {
                api_clients::set_upstream_limit(store.as_ref(), &name, budget).await?;
                let shown = budget.map_or("the default".to_string(), |n| format!("{n}/min"));
                println!(
                    "Updated `{name}`: Zoom call budget {shown}, in effect within {refresh} s."
                );
            }
            audit_key_change(store.as_ref(), "update", &name).await;
        }
        ClientsCommand::Revoke { name } => {
            api_clients::revoke(store.as_ref(), &name).await?;
            audit_key_change(store.as_ref(), "revoke", &name).await;
            println!("Revoked `{name}`. Running services refuse its key within {refresh} s.");
        }
        ClientsCommand::List { json } => {
            let clients = store.list_clients().await?;
            if json {
                let list: Vec<_> = clients.iter().map(client_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&clients);
            }
        }
    }
    Ok(())
}

fn client_json(c: &ClientRecord) -> serde_json::Value {
    json!({
        "name": c.name,
        "keyPrefix": c.key_lookup,
        "scopes": c.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "account": c.account,
        "createdAt": clock::rfc3339(c.created_at),
        "expiresAt": c.expires_at.map(clock::rfc3339),
        "revokedAt": c.revoked_at.map(clock::rfc3339),
        "rateLimit": c.rate_limit.map(|(r, b)| json!({"requestsPerSecond": r, "burst": b})),
        "upstreamPerMinute": c.upstream_per_minute,
        "status": status(c),
    })
}

fn status(c: &ClientRecord) -> &'static str {
    if c.revoked_at.is_some() {
        "revoked"
    } else if c.expires_at.is_some_and(|at| at <= clock::now()) {
        "expired"
    } else {
        "active"
    }
}

fn print_key(verb: &str, record: &ClientRecord, key: &NewKey, json: bool, refresh: u64) {
    if json {
        let mut value = client_json(record);
        value["key"] = json!(key.expose());
        println!("{value}");
        return;
    }
    println!(
        "{verb} client `{}` (scopes: {}; account: {}; expires: {}).",
        record.name,
        record
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        record.account.as_deref().unwrap_or("any"),
        record
            .expires_at
            .map(clock::rfc3339)
            .unwrap_or_else(|| "never".into()),
    );
    println!("Key (shown once; store it now, it cannot be shown again):");
    println!("{}", key.expose());
    println!("Running services accept it within {refresh} s.");
}

fn print_table(clients: &[ClientRecord]) {
    if clients.is_empty() {
        println!("no clients");
        return;
    }
    println!(
        "{:<24} {:<14} {:<8} {:<12} {:<21} SCOPES",
        "NAME", "KEY", "STATUS", "ACCOUNT", "EXPIRES"
    );
    for c in clients {
        println!(
            "{:<24} {:<14} {:<8} {:<12} {:<21} {}",
            c.name,
            format!("{}…", c.key_lookup),
            status(c),
            c.account.as_deref().unwrap_or("*"),
            c.expires_at
                .map(clock::rfc3339)
                .unwrap_or_else(|| "never".into()),
            c.scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn audit_fields_cannot_start_a_line_or_drive_the_terminal() {
        assert_eq!(printable("web"), "web");
        assert_eq!(
            printable("x\n2026-01-01T00:00:00Z issued 200 admin"),
            "x\\n2026-01-01T00:00:00Z issued 200 admin"
        );
        assert_eq!(printable("a\r\u{1b}[2Kb\u{85}"), "a\\r\\u{1b}[2Kb\\u{85}");
    }
}

//! `ztv grants list|show|revoke`: the stored grants without their tokens, and a disconnect
//! from the command line (revoked at Zoom, then deleted), for operators.

use std::sync::Arc;

use clap::Subcommand;

use super::printable;
use crate::audit::AuditLog;
use crate::config::Settings;
use crate::grants::{GrantInfo, UserGrants};
use crate::store::{self, GrantKind};
use crate::zoom::ZoomClient;
use crate::zoom_user::ZoomUser;

#[derive(Subcommand)]
pub enum GrantsCommand {
    /// List grants (never their tokens): kind, user, Zoom account, state, last refresh and use.
    List {
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one user's grant, or with `--zoom-account` one account install.
    Show {
        /// The ztv account.
        account: String,
        /// The user's Zoom ID or email (omit with `--zoom-account`).
        user: Option<String>,
        /// The Zoom account of an install.
        #[arg(long)]
        zoom_account: Option<String>,
    },
    /// Disconnect a user: revoke their grant at Zoom, then delete it (deleted even when Zoom
    /// cannot be reached).
    Revoke {
        /// The ztv account.
        account: String,
        /// The user's Zoom ID or email.
        user: String,
    },
}

pub async fn run(command: GrantsCommand, settings: Settings) -> anyhow::Result<()> {
    let store = store::connect(&settings.database.url).await?;
    match command {
        GrantsCommand::List { account, json } => {
            let mut all = Vec::new();
            let mut after: Option<(String, String)> = None;
            loop {
                let page = store
                    .list_grants(
                        account.as_deref(),
                        after.as_ref().map(|(a, k)| (a.as_str(), k.as_str())),
                        200,
                    )
                    .await?;
                let full = page.len() == 200;
                after = page
                    .last()
                    .map(|g| (g.account.clone(), g.zoom_user_id.clone()));
                all.extend(page.into_iter().map(GrantInfo::from));
                if !full {
                    break;
                }
            }
            print_list(&all, json)
        }
        GrantsCommand::Show {
            account,
            user,
            zoom_account,
        } => {
            let row = match (user, zoom_account) {
                (Some(user), None) => {
                    let user = ZoomUser::parse(&user)
                        .map_err(|_| anyhow::anyhow!("not a Zoom user ID or email"))?;
                    store.find_grant(&account, &user).await?
                }
                (None, Some(id)) => store.find_account_grant(&account, &id).await?,
                _ => anyhow::bail!("name a user, or an install with --zoom-account"),
            };
            let Some(row) = row else {
                anyhow::bail!("no such grant in account `{account}`");
            };
            print_one(&GrantInfo::from(row));
            Ok(())
        }
        GrantsCommand::Revoke { account, user } => {
            let user = ZoomUser::parse(&user)
                .map_err(|_| anyhow::anyhow!("not a Zoom user ID or email"))?;
            let zoom = Arc::new(ZoomClient::new(&settings.zoom, &settings.accounts)?);
            let audit = AuditLog::start(Arc::clone(&store), settings.audit_retention);
            let grants = UserGrants::new(&settings, store, zoom, Arc::clone(&audit))
                .ok_or_else(|| anyhow::anyhow!("no account has user OAuth configured"))?;
            let deleted = grants
                .delete(&account, &user, true, Some("cli".into()))
                .await?;
            audit.flush_and_stop().await;
            match deleted {
                Some(deleted) if deleted.revoked_at_zoom => {
                    println!("revoked at Zoom and deleted");
                    Ok(())
                }
                Some(_) => {
                    println!("deleted; Zoom did not confirm the revocation (see the log)");
                    Ok(())
                }
                None => anyhow::bail!("no grant for that user in account `{account}`"),
            }
        }
    }
}

fn when(at: Option<i64>) -> String {
    at.map(crate::clock::rfc3339)
        .unwrap_or_else(|| "-".to_string())
}

fn print_list(grants: &[GrantInfo], json: bool) -> anyhow::Result<()> {
    if json {
        let rows: Vec<_> = grants
            .iter()
            .map(|g| {
                serde_json::json!({
                    "account": g.account,
                    "kind": g.kind.as_str(),
                    "user": g.user,
                    "email": g.email,
                    "zoomAccount": g.zoom_account_id,
                    "state": g.state(),
                    "lastRefreshedAt": g.refreshed_at.map(crate::clock::rfc3339),
                    "lastUsedAt": g.last_used_at.map(crate::clock::rfc3339),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if grants.is_empty() {
        println!("no grants");
    }
    for g in grants {
        println!(
            "{:<12} {:<7} {:<24} {:<32} zoom_account={} {:<21} refreshed={} used={}",
            printable(&g.account),
            g.kind.as_str(),
            printable(&g.user),
            printable(&g.email),
            printable(g.zoom_account_id.as_deref().unwrap_or("-")),
            g.state(),
            when(g.refreshed_at),
            when(g.last_used_at),
        );
    }
    Ok(())
}

fn print_one(g: &GrantInfo) {
    let kind = match g.kind {
        GrantKind::User => "user (the user's own grant)",
        GrantKind::Account => "account (an admin's install for their Zoom account)",
    };
    println!("account:        {}", printable(&g.account));
    println!("kind:           {kind}");
    println!("user:           {}", printable(&g.user));
    println!("email:          {}", printable(&g.email));
    println!(
        "zoom account:   {}",
        printable(g.zoom_account_id.as_deref().unwrap_or("-"))
    );
    println!("state:          {}", g.state());
    println!("scopes:         {}", printable(&g.scopes));
    println!(
        "access expires: {}",
        crate::clock::rfc3339(g.access_expires_at)
    );
    println!("last refreshed: {}", when(g.refreshed_at));
    println!("last used:      {}", when(g.last_used_at));
}

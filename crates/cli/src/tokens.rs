//! `m365sync token`: the admin API's org admin and user tokens (E12).

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;

/// `m365sync token ...`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it once (it is not stored, only its hash). Without --user: the
    /// org's admin token; with --tenant and --user: that user's token (their review list and
    /// personal exclusion rules only).
    Create {
        /// The org (the firm) the token is for, as declared with `m365sync apply` or `tenant add`.
        #[arg(long, required_unless_present = "service", conflicts_with = "service")]
        org: Option<String>,
        /// Make the service's own admin token instead: the one `serve` requires and that
        /// reaches every org. Written to --out (mode 600), never printed.
        #[arg(long, requires = "out")]
        service: bool,
        /// With --service: the file to write (an existing file is never overwritten); point
        /// `admin_token_file` in m365sync.toml or `M365SYNC_ADMIN_TOKEN_FILE` at it.
        #[arg(long, requires = "service")]
        out: Option<std::path::PathBuf>,
        /// The user's tenant (its name within the org); needs --user.
        #[arg(long, requires = "user")]
        tenant: Option<String>,
        /// Make a token for this CRM user (their email) instead of the org's admin token; needs
        /// --tenant.
        #[arg(long, requires = "tenant")]
        user: Option<String>,
        /// A name to tell the token apart in `token list` (default: "user EMAIL" or "ORG admin").
        #[arg(long)]
        label: Option<String>,
    },
    /// The org's tokens (never the tokens themselves).
    List {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`.
        #[arg(long)]
        org: String,
    },
    /// Revoke a token by id; requests with it are refused from now on.
    Revoke {
        /// The org (the firm) the token belongs to.
        #[arg(long)]
        org: String,
        /// The token's id (`token list` shows them).
        id: i64,
    },
}

pub async fn run(config: Option<&Path>, cmd: TokenCommand) -> anyhow::Result<()> {
    if let TokenCommand::Create {
        service: true,
        out: Some(out),
        ..
    } = &cmd
    {
        return write_service_token(out);
    }
    let store = super::admin::open(config).await?;
    match cmd {
        TokenCommand::Create {
            org,
            tenant,
            user,
            label,
            ..
        } => {
            let org = org.context(
                "name the org with --org (or make the service's token with --service --out FILE)",
            )?;
            let org_id = store.org_id(&org).await?;
            let user_id = match (&tenant, &user) {
                (Some(tenant), Some(user)) => {
                    let t = store.tenant(&org, tenant).await?;
                    Some(store.user_id(t.id, user).await?.with_context(|| {
                        format!(
                            "no user {user} in tenant {tenant}; `m365sync user list` shows them"
                        )
                    })?)
                }
                _ => None,
            };
            let label = label.unwrap_or_else(|| match &user {
                Some(u) => format!("user {u}"),
                None => format!("{org} admin"),
            });
            let (id, token) = store.create_api_token(org_id, user_id, &label).await?;
            eprintln!("token {id} ({label}); shown once, keep it safe:");
            println!("{token}");
        }
        TokenCommand::List { org } => {
            let org_id = store.org_id(&org).await?;
            println!("{:<6} {:<10} {:<32} LABEL", "ID", "STATE", "USER");
            for t in store.api_tokens(org_id).await? {
                println!(
                    "{:<6} {:<10} {:<32} {}",
                    t.id,
                    if t.revoked_ms.is_some() {
                        "revoked"
                    } else {
                        "live"
                    },
                    t.user.as_deref().unwrap_or("(org admin)"),
                    t.label
                );
            }
        }
        TokenCommand::Revoke { org, id } => {
            let org_id = store.org_id(&org).await?;
            store.revoke_api_token(org_id, id).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

/// Writes a new service admin token to `out` (mode 600), refusing to replace a file: the token
/// a running service checks would otherwise change under its clients. Printed nowhere, so it
/// never lands in a terminal's scrollback or a CI log.
fn write_service_token(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!(
            "{} exists; refusing to overwrite the token a service may be using (remove it first to make a new one)",
            out.display()
        );
    }
    // 32 random bytes, URL-safe, from the same generator as the key that seals secrets.
    let random = m365sync_store::SecretKey::generate().to_base64();
    let token = format!(
        "m365s_admin_{}",
        random
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_")
    );
    std::fs::write(out, token + "\n").with_context(|| format!("cannot write {}", out.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", out.display()))?;
    }
    println!(
        "wrote a new service admin token to {} (mode 600); point admin_token_file in m365sync.toml (or M365SYNC_ADMIN_TOKEN_FILE) at it",
        out.display()
    );
    Ok(())
}

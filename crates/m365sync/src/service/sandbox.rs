//! `m365sync serve --sandbox`: everything a new user needs to see the product work, in one
//! directory. The simulator's tenant is declared in a SQLite store (org `sandbox`, tenant
//! `contoso`, every mailbox linked to its user, the default plugins) and activated, and a
//! `m365sync.toml` is written so every other command can be pointed at the same sandbox.

use std::path::{Path, PathBuf};

use m365sync_sim::model::MailboxKind as SimKind;
use m365sync_sim::Sim;
use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::tenants::{AuthMode, NewTenant, SecretKind, Tenant, TenantSettings};
use m365sync_store::{SecretKey, Store, StoreError};

/// The sandbox's org name.
pub const ORG: &str = "sandbox";
/// The sandbox's tenant name (the simulator's first tenant).
pub const TENANT: &str = "contoso";

/// Why the sandbox could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A sandbox file or the directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why it could not be written.
        source: std::io::Error,
    },
    /// A sandbox file (the admin token) could not be read back.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The key file of an earlier sandbox is damaged, so its sealed secrets are unreadable.
    #[error("{path} does not hold a key: {detail}; delete the sandbox directory to start afresh")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The simulator's world has no tenant with an app and a secret to declare.
    #[error("the simulator has no tenant with an app")]
    NoTenant,
}

/// The files of a sandbox directory.
#[derive(Debug, Clone)]
pub struct SandboxFiles {
    /// The sandbox directory itself.
    pub dir: PathBuf,
    /// The `m365sync.toml` written for other commands' `--config`.
    pub config: PathBuf,
    /// The SQLite store inside the directory, as a database URL.
    pub database_url: String,
    /// The key that seals the store's secrets; kept across restarts.
    pub key_file: PathBuf,
    /// The admin API's bearer token; kept across restarts.
    pub admin_token_file: PathBuf,
    /// The simulator's world, saved so a restart resumes the same mailboxes (ids, mail,
    /// delta tokens) instead of generating new ones.
    pub sim_world: PathBuf,
}

impl SandboxFiles {
    /// The paths under `dir`.
    pub fn under(dir: &Path) -> SandboxFiles {
        SandboxFiles {
            dir: dir.to_path_buf(),
            config: dir.join("m365sync.toml"),
            database_url: format!("sqlite://{}", dir.join("m365sync.db").display()),
            key_file: dir.join("secret.key"),
            admin_token_file: dir.join("admin.token"),
            sim_world: dir.join("sim-world.json"),
        }
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), SandboxError> {
    let err = |source| SandboxError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(path, text).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

/// Creates the directory, a key and an admin token (kept when they exist, so the store stays
/// readable across restarts), and the configuration file. Returns the key and the token.
pub fn prepare_files(
    files: &SandboxFiles,
    admin_listen: std::net::SocketAddr,
    ca_cert: Option<&Path>,
) -> Result<(SecretKey, String), SandboxError> {
    std::fs::create_dir_all(&files.dir).map_err(|source| SandboxError::Write {
        path: files.dir.clone(),
        source,
    })?;
    if !files.key_file.exists() {
        write_private(&files.key_file, &(SecretKey::generate().to_base64() + "\n"))?;
    }
    let key = SecretKey::from_file(&files.key_file).map_err(|e| SandboxError::Key {
        path: files.key_file.clone(),
        detail: e.to_string(),
    })?;
    if !files.admin_token_file.exists() {
        let token: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        write_private(&files.admin_token_file, &(token + "\n"))?;
    }
    let token = std::fs::read_to_string(&files.admin_token_file)
        .map_err(|source| SandboxError::Read {
            path: files.admin_token_file.clone(),
            source,
        })?
        .trim()
        .to_string();
    let mut config = format!(
        "# Written by `m365sync serve --sandbox`: point any command at it with --config.\n\
         database_url = {:?}\nadmin_listen = \"{admin_listen}\"\nkey_file = {:?}\nadmin_token_file = {:?}\n",
        files.database_url,
        files.key_file.display().to_string(),
        files.admin_token_file.display().to_string(),
    );
    if let Some(ca) = ca_cert {
        config.push_str(&format!("extra_ca_file = {:?}\n", ca.display().to_string()));
    }
    std::fs::write(&files.config, config).map_err(|source| SandboxError::Write {
        path: files.config.clone(),
        source,
    })?;
    Ok((key, token))
}

/// Declares the simulator's first tenant in `store` and activates it. Idempotent: a restart
/// against the same directory finds everything in place and resumes.
pub async fn declare(store: &Store, sim: &Sim) -> Result<Tenant, SandboxError> {
    let base = sim.public_base();
    let (ms_tenant, domain, client_id, secret, mailboxes) = {
        let world = sim.world.lock().expect("world lock");
        let t = world.tenants.first().ok_or(SandboxError::NoTenant)?;
        let app = t.apps.first().ok_or(SandboxError::NoTenant)?;
        let secret = app
            .secrets
            .first()
            .map(|s| s.value.clone())
            .ok_or(SandboxError::NoTenant)?;
        let mailboxes: Vec<(String, String, MailboxKind, String)> = t
            .users
            .iter()
            .map(|u| {
                let kind = match u.kind {
                    SimKind::Person => MailboxKind::Person,
                    SimKind::Shared => MailboxKind::Shared,
                };
                (u.id.clone(), u.upn.clone(), kind, u.display_name.clone())
            })
            .collect();
        (
            t.id.clone(),
            t.domain.clone(),
            app.client_id.clone(),
            secret,
            mailboxes,
        )
    };
    let tenant = store
        .upsert_tenant(&NewTenant {
            org: ORG.into(),
            name: TENANT.into(),
            ms_tenant,
            authority: base.clone(),
            graph_url: format!("{base}/v1.0"),
            client_id,
            auth_mode: AuthMode::App,
        })
        .await?;
    store
        .put_secret(tenant.id, SecretKind::ClientSecret, "sandbox", &secret)
        .await?;
    let mut settings = store.settings(tenant.id).await?;
    if settings.internal_domains.is_empty() {
        settings = TenantSettings {
            internal_domains: vec![domain],
            ..settings
        };
        store.set_settings(tenant.id, &settings).await?;
    }
    let first_person = mailboxes
        .iter()
        .find(|m| m.2 == MailboxKind::Person)
        .map(|m| (m.1.clone(), m.3.clone()));
    for (graph_id, upn, kind, name) in &mailboxes {
        let mailbox_id = store
            .upsert_mailbox(&NewMailbox {
                tenant_id: tenant.id,
                graph_id: graph_id.clone(),
                address: upn.clone(),
                display_name: name.clone(),
                kind: *kind,
            })
            .await?;
        // A shared mailbox is linked to a nominated user (E14): the first person.
        let owner = match kind {
            MailboxKind::Person => Some((upn.clone(), name.clone())),
            MailboxKind::Shared => first_person.clone(),
        };
        if let Some((owner, owner_name)) = owner {
            let user_id = store.upsert_user(tenant.id, &owner, &owner_name).await?;
            store.link_mailbox(mailbox_id, user_id).await?;
        }
    }
    // Contacts before the first run, so its matching has someone to link mail to.
    let seed = crm_seed(sim, &internal_domain_of(store, tenant.id).await?);
    seed_crm(store, tenant.org_id, &seed).await?;
    store.activate_tenant(tenant.id).await?;
    Ok(store.tenant_by_id(tenant.id).await?)
}

async fn internal_domain_of(store: &Store, tenant_id: i64) -> Result<Vec<String>, StoreError> {
    Ok(store.settings(tenant_id).await?.internal_domains)
}

/// Contacts seeded from the mail correspondents: the clients who wrote or were written to
/// most often, so the sandbox's first run links a visible share of its mail.
pub const SEEDED_MAIL_CONTACTS: usize = 16;
/// Contacts seeded from the meeting attendees outside the firm.
pub const SEEDED_EVENT_CONTACTS: usize = 6;
/// Domains of webmail providers: their people are contacts, never an entity of their own.
const PERSONAL_DOMAINS: [&str; 1] = ["mail.example"];

/// The sandbox's CRM: contacts (name, address) and the entities (name, domain) they belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrmSeed {
    /// (name, address), the address lowercase.
    pub contacts: Vec<(String, String)>,
    /// (name, domain): one company per client domain among the contacts.
    pub entities: Vec<(String, String)>,
}

/// Picks the sandbox's contacts from the simulator's own tenant, deterministically (the
/// world is generated from a fixed seed): the outside people its mail is most often from or
/// to (automated senders left out: no firm keeps a newsletter as a contact), and those most
/// often invited to its meetings; ties go to the smaller address.
pub fn crm_seed(sim: &Sim, internal_domains: &[String]) -> CrmSeed {
    use std::collections::{BTreeMap, BTreeSet};
    let world = sim.world.lock().expect("world lock");
    let Some(t) = world.tenants.first() else {
        return CrmSeed::default();
    };
    let outside = |address: &str| {
        let domain = address.rsplit('@').next().unwrap_or_default();
        address.contains('@')
            && !internal_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
            && !t.domain.eq_ignore_ascii_case(domain)
    };
    let mut mail: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for m in world.messages.values().filter(|m| m.tenant == 0) {
        let c = &m.content;
        if c.headers.iter().any(|(k, _)| k == "Auto-Submitted") {
            continue;
        }
        for r in c.from.iter().chain(&c.to).chain(&c.cc) {
            let address = r.address.to_ascii_lowercase();
            if outside(&address) {
                let e = mail.entry(address).or_insert((0, r.name.clone()));
                e.0 += 1;
            }
        }
    }
    let mut meetings: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for u in &t.users {
        for e in u.calendar.events.values() {
            for a in &e.details.attendees {
                let address = a.who.address.to_ascii_lowercase();
                if outside(&address) {
                    let entry = meetings.entry(address).or_insert((0, a.who.name.clone()));
                    entry.0 += 1;
                }
            }
        }
    }
    let top = |counts: BTreeMap<String, (usize, String)>, n: usize| {
        let mut v: Vec<(String, usize, String)> = counts
            .into_iter()
            .map(|(address, (count, name))| (address, count, name))
            .collect();
        // Most frequent first; the BTreeMap's order breaks ties by address.
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v.into_iter().take(n).collect::<Vec<_>>()
    };
    let mut seed = CrmSeed::default();
    let mut taken = BTreeSet::new();
    for (address, _, name) in top(mail, SEEDED_MAIL_CONTACTS)
        .into_iter()
        .chain(top(meetings, SEEDED_EVENT_CONTACTS))
    {
        if taken.insert(address.clone()) {
            let name = if name.trim().is_empty() {
                address.clone()
            } else {
                name
            };
            seed.contacts.push((name, address));
        }
    }
    let domains: BTreeSet<String> = seed
        .contacts
        .iter()
        .filter_map(|(_, a)| a.rsplit('@').next().map(str::to_string))
        .filter(|d| !PERSONAL_DOMAINS.contains(&d.as_str()))
        .collect();
    seed.entities = domains.into_iter().map(|d| (company_name(&d), d)).collect();
    seed
}

/// `acme-holdings.example` -> `Acme Holdings`.
fn company_name(domain: &str) -> String {
    domain
        .split('.')
        .next()
        .unwrap_or(domain)
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes the seed into the org's CRM, once: an org that already has contacts (the sandbox
/// restarted, or a user changed them) is left as it is. Each record carries a `sandbox-`
/// external id, so `m365sync contact export` shows where it came from.
pub async fn seed_crm(store: &Store, org_id: i64, seed: &CrmSeed) -> Result<usize, SandboxError> {
    use m365sync_store::crm::contacts::ContactInput;
    use m365sync_store::crm::entities::{EntityInput, EntityKind};
    if !store.all_contacts(org_id).await?.is_empty() {
        return Ok(0);
    }
    let mut entity_ids = std::collections::HashMap::new();
    for (name, domain) in &seed.entities {
        let (_, entity) = store
            .upsert_entity_by_external_id(
                org_id,
                &EntityInput {
                    external_id: Some(format!("sandbox-entity-{domain}")),
                    name: name.clone(),
                    kind: EntityKind::Company,
                    domains: vec![domain.clone()],
                },
            )
            .await?;
        entity_ids.insert(domain.clone(), entity.id);
    }
    for (name, address) in &seed.contacts {
        let domain = address.rsplit('@').next().unwrap_or_default();
        store
            .upsert_contact_by_external_id(
                org_id,
                &ContactInput {
                    external_id: Some(format!("sandbox-contact-{address}")),
                    name: name.clone(),
                    email: Some(address.clone()),
                    entity_id: entity_ids.get(domain).copied(),
                    ..ContactInput::default()
                },
            )
            .await?;
    }
    Ok(seed.contacts.len())
}

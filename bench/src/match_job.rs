//! `m365sync match bench`: the matching job measured on a generated store (issue 5's speed
//! goals): N stored emails against M contacts through the default matching plugin, then the
//! cost of the re-match that adding one contact causes.
//!
//! The data is written straight into the store (no simulator): the figure is the job's, not
//! the sync's. Addresses are drawn so that about half of the emails match a contact, a tenth
//! of contacts' mail arrives at an Alternate Email or contact-point address, threads hold three
//! emails, and one address (`newcomer@prospect.example`) is carried by a known number of
//! emails without belonging to any contact until the re-match step adds it.

use std::time::Instant;

use serde::Serialize;
use thiserror::Error;

use crate::sync_backfill::{cpu_seconds, peak_rss_mib};
use m365sync::matching::job::{run_org, MatchError};
use m365sync::sync::SyncEnv;
use m365sync_plugin::engine::{EngineConfig, PluginEngine};
use m365sync_store::secrets::SecretKey;
use m365sync_store::sync::{value_rows, ROWS_PER_STATEMENT};
use m365sync_store::tenants::{AuthMode, NewTenant};
use m365sync_store::{now_ms, Store, StoreError};

/// Emails carrying the newcomer's address.
const NEWCOMER_EMAILS: usize = 40;
const NEWCOMER: &str = "newcomer@prospect.example";
const MAILBOXES: usize = 20;

/// Why the matching benchmark could not run.
#[derive(Debug, Error)]
pub enum MatchBenchError {
    /// The store failed: opening it, or declaring the org, tenant and mailboxes.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The matching job failed.
    #[error(transparent)]
    Match(#[from] MatchError),
    /// Writing the generated contacts and emails (the benchmark's own SQL) failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The temporary directory, the plugin engine or the HTTP client could not be set up.
    #[error("setting the benchmark up: {0}")]
    Setup(String),
}

/// The figures of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct MatchBenchReport {
    /// The store's backend, lower-case (`sqlite`, `postgres`).
    pub backend: String,
    /// Stored emails generated.
    pub emails: usize,
    /// CRM contacts generated.
    pub contacts: usize,
    /// Time to generate and write the data, seconds.
    pub generate_secs: f64,
    /// Wall time of the full matching pass, seconds.
    pub match_secs: f64,
    /// Records the pass put through the plugin, per second.
    pub emails_per_sec: f64,
    /// CPU seconds of this process over the pass.
    pub cpu_secs: f64,
    /// Records of the pass linked to at least one contact.
    pub matched: u64,
    /// Records of the pass linked to nothing.
    pub unmatched: u64,
    /// Links the pass stored.
    pub links: u64,
    /// Adding one contact: the stored emails sent back for a pass.
    pub rematch_records: u64,
    /// Adding one contact: the job's wall time for that re-match, ms.
    pub rematch_ms: f64,
    /// This process's peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// The full pass's time reading records and contacts, seconds.
    pub read_secs: f64,
    /// The full pass's time in the matching plugin, seconds.
    pub plugin_secs: f64,
    /// The full pass's time storing the matches, seconds.
    pub write_secs: f64,
    /// The console's pages read on the matched store.
    pub pages: Vec<PageTiming>,
}

impl MatchBenchReport {
    /// The report as the Markdown table BENCHMARKS.md shows.
    pub fn markdown(&self) -> String {
        format!(
            "| store | emails | contacts | match s | emails/s | CPU s | read / plugin / write s | matched | unmatched | links | re-match: records | re-match: ms | peak RSS MiB |\n\
             |---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n\
             | {} | {} | {} | {:.1} | {:.0} | {:.1} | {:.1} / {:.1} / {:.1} | {} | {} | {} | {} | {:.1} | {:.0} |",
            self.backend,
            self.emails,
            self.contacts,
            self.match_secs,
            self.emails_per_sec,
            self.cpu_secs,
            self.read_secs,
            self.plugin_secs,
            self.write_secs,
            self.matched,
            self.unmatched,
            self.links,
            self.rematch_records,
            self.rematch_ms,
            self.peak_rss_mib
        ) + &self.pages_markdown()
    }

    /// The console pages' table.
    fn pages_markdown(&self) -> String {
        let mut out = format!(
            "\n\nConsole pages on this store ({} backend; the query behind each, {PAGE_REPEATS} reads):\n\n\
             | page | rows | best ms | median ms |\n|---|---:|---:|---:|\n",
            self.backend
        );
        for p in &self.pages {
            out.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} |\n",
                p.page, p.rows, p.best_ms, p.median_ms
            ));
        }
        out
    }
}

fn setup(e: impl std::fmt::Display) -> MatchBenchError {
    MatchBenchError::Setup(e.to_string())
}

/// A small deterministic generator (xorshift), so every run draws the same data.
struct Draw(u64);

impl Draw {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn contact_email(i: usize) -> String {
    format!("c{i}@client{}.example", i % 5000)
}
fn contact_alt(i: usize) -> String {
    format!("c{i}.home@mail.example")
}
fn contact_point(i: usize) -> String {
    format!("c{i}@work{}.example", i % 700)
}

/// Runs the benchmark; `database_url` defaults to a fresh SQLite file.
pub async fn run(
    emails: usize,
    contacts: usize,
    database_url: Option<String>,
) -> Result<MatchBenchReport, MatchBenchError> {
    let dir = std::env::temp_dir().join(format!("m365sync-match-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(setup)?;
    let url =
        database_url.unwrap_or_else(|| format!("sqlite://{}", dir.join("bench.db").display()));
    let store = Store::open(&url, SecretKey::generate()).await?;
    let started = Instant::now();
    let (org, tenant_id, users, first_user) = declare(&store).await?;
    let org_id = store.org_id(&org).await?;
    insert_contacts(&store, org_id, contacts).await?;
    insert_emails(&store, org_id, tenant_id, &users, emails, contacts).await?;
    if store.backend() == m365sync_store::Backend::Postgres {
        // What autovacuum does to a live database after its tables grow; straight after a
        // bulk load PostgreSQL plans with the empty tables' statistics (a hash join over every
        // contact of the org per batch) and the figure would be the fixture's, not the job's.
        sqlx::query("ANALYZE").execute(store.pool()).await?;
    }
    let generate_secs = started.elapsed().as_secs_f64();

    let env = SyncEnv::new(
        store.clone(),
        PluginEngine::new(EngineConfig::default()).map_err(setup)?,
        m365sync_graph::http_client(None).map_err(setup)?,
    );
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let full = run_org(&env, &org, "bench").await?;
    let match_secs = t0.elapsed().as_secs_f64();
    let cpu_secs = cpu_seconds() - cpu0;

    // One new contact carrying an address some stored mail already has.
    let now = now_ms();
    let mut tx = store.pool().begin().await?;
    sqlx::query("INSERT INTO contacts (org_id, name, email, created_ms, updated_ms) VALUES ($1, 'Newcomer', $2, $3, $3)")
        .bind(org_id)
        .bind(NEWCOMER)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO contact_changes (org_id, address, at_ms) VALUES ($1, $2, $3)")
        .bind(org_id)
        .bind(NEWCOMER)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let t1 = Instant::now();
    let re = run_org(&env, &org, "bench").await?;
    let rematch_ms = t1.elapsed().as_secs_f64() * 1000.0;
    let pages = console_pages(&store, org_id, first_user).await?;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(MatchBenchReport {
        backend: format!("{:?}", store.backend()).to_lowercase(),
        emails,
        contacts,
        generate_secs,
        match_secs,
        emails_per_sec: full.records as f64 / match_secs.max(1e-9),
        cpu_secs,
        matched: full.matched,
        unmatched: full.unmatched,
        links: full.links,
        rematch_records: re.rematched_records,
        rematch_ms,
        peak_rss_mib: peak_rss_mib(),
        read_secs: full.read_ms as f64 / 1000.0,
        plugin_secs: full.plugin_ms as f64 / 1000.0,
        write_secs: full.write_ms as f64 / 1000.0,
        pages,
    })
}

/// One console page's query timed on the benchmark's store.
#[derive(Debug, Clone, Serialize)]
pub struct PageTiming {
    /// Which page, in words (`contacts, first page`).
    pub page: String,
    /// Rows the page answered (at most 50).
    pub rows: usize,
    /// The fastest of [`PAGE_REPEATS`] reads, ms.
    pub best_ms: f64,
    /// The median of [`PAGE_REPEATS`] reads, ms.
    pub median_ms: f64,
}

/// Reads of each page timed; the median is reported beside the best.
const PAGE_REPEATS: usize = 7;

/// Times the store reads behind the console's pages (issue 16: pages of 50 that stay fast on
/// 1M emails x 100k contacts): the contacts list (first page, a deep page by the `after`
/// cursor, a search), a contact's timeline (first page and the next), and a user's review list
/// (first page, the next, by sender domain, by date). These are the queries the API's handlers
/// run for each page; the HTTP and JSON around them are not in the figure.
async fn console_pages(
    store: &Store,
    org_id: i64,
    user_id: i64,
) -> Result<Vec<PageTiming>, MatchBenchError> {
    use m365sync_store::crm::ListQuery;
    use m365sync_store::review::ReviewFilter;
    let page = |after_id: Option<i64>, filter: Option<&str>| ListQuery {
        limit: 50,
        after_id,
        filter: filter.map(str::to_string),
    };
    let first_contacts = page(None, None);
    let mut out = vec![
        timed("contacts, first page", || {
            store.list_contacts(org_id, &first_contacts)
        })
        .await?,
    ];
    let deep = store.list_contacts(org_id, &first_contacts).await?;
    let deep_page = page(Some(deep.last().map_or(0, |c| c.id) * 1000), None);
    out.push(
        timed("contacts, a page 1,000 pages in (after cursor)", || {
            store.list_contacts(org_id, &deep_page)
        })
        .await?,
    );
    let search = page(None, Some("client42.example"));
    out.push(
        timed("contacts, search 'client42.example'", || {
            store.list_contacts(org_id, &search)
        })
        .await?,
    );
    // The contact most mail is linked to is as long a timeline as the benchmark has.
    let busiest: i64 = sqlx::query_scalar(
        "SELECT contact_id FROM activity_matches GROUP BY contact_id ORDER BY COUNT(*) DESC LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?
    .unwrap_or(1);
    out.push(
        timed("timeline of the busiest contact, first page", || {
            store.timeline(org_id, busiest, None, 50)
        })
        .await?,
    );
    let first = store.timeline(org_id, busiest, None, 50).await?;
    let cursor = first.last().map(|i| (i.occurred_ms, i.record_id));
    out.push(
        timed("timeline of the busiest contact, next page", || {
            store.timeline(org_id, busiest, cursor, 50)
        })
        .await?,
    );
    let review =
        |before: Option<(i64, i64)>, domain: Option<&str>, since_ms: Option<i64>| ReviewFilter {
            since_ms,
            until_ms: None,
            sender_domain: domain.map(str::to_string),
            before,
            limit: 50,
        };
    let first_review = review(None, None, None);
    out.push(
        timed("a user's review list, first page", || {
            store.review_list(user_id, &first_review)
        })
        .await?,
    );
    let first = store.review_list(user_id, &first_review).await?;
    let next_review = review(first.last().map(|i| (i.sent_ms, i.email_id)), None, None);
    out.push(
        timed("a user's review list, next page", || {
            store.review_list(user_id, &next_review)
        })
        .await?,
    );
    let by_domain = review(None, Some("elsewhere7.example"), None);
    out.push(
        timed("a user's review list, by sender domain", || {
            store.review_list(user_id, &by_domain)
        })
        .await?,
    );
    let recent = review(None, None, Some(now_ms() - 30 * 86_400_000));
    out.push(
        timed("a user's review list, last 30 days", || {
            store.review_list(user_id, &recent)
        })
        .await?,
    );
    Ok(out)
}

/// Runs `read` [`PAGE_REPEATS`] times and keeps its best and median time.
async fn timed<T, F, Fut>(page: &str, read: F) -> Result<PageTiming, MatchBenchError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, StoreError>>,
{
    let mut times = Vec::with_capacity(PAGE_REPEATS);
    let mut rows = 0;
    for _ in 0..PAGE_REPEATS {
        let t = Instant::now();
        rows = read().await?.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(PageTiming {
        page: page.to_string(),
        rows,
        best_ms: times[0],
        median_ms: times[PAGE_REPEATS / 2],
    })
}

/// An org, a tenant and its linked mailboxes: (org name, tenant id, (mailbox id, user
/// address) of each, the first user's id).
async fn declare(store: &Store) -> Result<(String, i64, Vec<(i64, String)>, i64), MatchBenchError> {
    let org = format!("bench-{}", std::process::id());
    store.ensure_org(&org).await?;
    let tenant = store
        .upsert_tenant(&NewTenant {
            org: org.clone(),
            name: "main".into(),
            ms_tenant: "bench.example".into(),
            authority: "http://127.0.0.1:9".into(),
            graph_url: "http://127.0.0.1:9/v1.0".into(),
            client_id: "bench".into(),
            auth_mode: AuthMode::App,
        })
        .await?;
    let mut users = Vec::new();
    let mut first_user = 0;
    for i in 0..MAILBOXES {
        let address = format!("user{i}@firm.example");
        let user_id = store.upsert_user(tenant.id, &address, &address).await?;
        let mailbox_id = store
            .upsert_mailbox(&m365sync_store::mailboxes::NewMailbox {
                tenant_id: tenant.id,
                graph_id: format!("u{i}"),
                address: address.clone(),
                display_name: address.clone(),
                kind: m365sync_store::mailboxes::MailboxKind::Person,
            })
            .await?;
        store.link_mailbox(mailbox_id, user_id).await?;
        if i == 0 {
            first_user = user_id;
        }
        users.push((mailbox_id, address));
    }
    Ok((org, tenant.id, users, first_user))
}

async fn insert_contacts(store: &Store, org_id: i64, n: usize) -> Result<(), MatchBenchError> {
    let b = store.backend();
    let now = now_ms();
    let mut tx = store.pool().begin().await?;
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO contacts (id, org_id, name, email, alt_email, created_ms, updated_ms) VALUES {}",
            value_rows(b, chunk.len(), 7)
        );
        let mut q = sqlx::query(&sql);
        for &i in chunk {
            q = q
                .bind(i as i64 + 1)
                .bind(org_id)
                .bind(format!("Contact {i}"))
                .bind(contact_email(i))
                .bind(i.is_multiple_of(3).then(|| contact_alt(i)))
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *tx).await?;
        let points: Vec<usize> = chunk
            .iter()
            .copied()
            .filter(|i| i.is_multiple_of(5))
            .collect();
        if !points.is_empty() {
            let sql = format!(
                "INSERT INTO contact_emails (contact_id, address) VALUES {}",
                value_rows(b, points.len(), 2)
            );
            let mut q = sqlx::query(&sql);
            for i in points {
                q = q.bind(i as i64 + 1).bind(contact_point(i));
            }
            q.execute(&mut *tx).await?;
        }
    }
    if b == m365sync_store::Backend::Postgres {
        // Explicit ids leave the identity behind; later inserts must not collide.
        sqlx::query("SELECT setval(pg_get_serial_sequence('contacts', 'id'), (SELECT MAX(id) FROM contacts))")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A generated email: its index, sender, and addresses by role.
type DrawnEmail = (usize, String, Vec<(&'static str, String)>);

/// One generated email: its sender and recipients by role.
fn draw_email(
    d: &mut Draw,
    i: usize,
    user: &str,
    contacts: usize,
) -> (String, Vec<(&'static str, String)>) {
    let pick = |d: &mut Draw| -> String {
        let c = d.next(contacts.max(1));
        match d.next(10) {
            0 if c.is_multiple_of(3) => contact_alt(c),
            1 if c.is_multiple_of(5) => contact_point(c),
            _ => contact_email(c),
        }
    };
    let stranger = |d: &mut Draw| format!("s{}@elsewhere{}.example", d.next(1_000_000), d.next(97));
    let newcomer = i % (1_000_000 / NEWCOMER_EMAILS).max(1) == 7;
    let mut to = Vec::new();
    let sender = if d.next(2) == 0 {
        // Received: from a contact (often) or a stranger.
        let from = if newcomer {
            NEWCOMER.to_string()
        } else if d.next(10) < 6 {
            pick(d)
        } else {
            stranger(d)
        };
        to.push(("to", user.to_string()));
        from
    } else {
        // Sent by the user: to a contact or a stranger, sometimes with a colleague in copy.
        to.push((
            "to",
            if newcomer {
                NEWCOMER.to_string()
            } else if d.next(10) < 4 {
                pick(d)
            } else {
                stranger(d)
            },
        ));
        user.to_string()
    };
    if d.next(4) == 0 {
        to.push(("cc", format!("colleague{}@firm.example", d.next(50))));
    }
    let mut all = vec![("from", sender.clone())];
    all.extend(to);
    (sender, all)
}

async fn insert_emails(
    store: &Store,
    org_id: i64,
    tenant_id: i64,
    users: &[(i64, String)],
    n: usize,
    contacts: usize,
) -> Result<(), MatchBenchError> {
    let b = store.backend();
    let now = now_ms();
    let base = now - 180 * 86_400_000;
    let mut d = Draw(0x9E37_79B9_7F4A_7C15);
    let per_tx = 5_000;
    let mut next = 0usize;
    while next < n {
        let end = (next + per_tx).min(n);
        let mut tx = store.pool().begin().await?;
        let ids: Vec<usize> = (next..end).collect();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let drawn: Vec<DrawnEmail> = chunk
                .iter()
                .map(|&i| {
                    let user = &users[i % users.len()].1;
                    let (sender, addrs) = draw_email(&mut d, i, user, contacts);
                    (i, sender, addrs)
                })
                .collect();
            let sql = format!(
                "INSERT INTO emails (id, org_id, tenant_id, correlation_key, internet_message_id, conversation_id, subject, sender,
                     sent_ms, received_ms, record, decided_by, created_ms, updated_ms) VALUES {}",
                value_rows(b, chunk.len(), 14)
            );
            let mut q = sqlx::query(&sql);
            for (i, sender, _) in &drawn {
                let sent = base + (*i as i64) * 7_000;
                q = q
                    .bind(*i as i64 + 1)
                    .bind(org_id)
                    .bind(tenant_id)
                    .bind(format!("<m{i}@bench>|{sender}|{}", sent / 1000))
                    .bind(format!("<m{i}@bench>"))
                    .bind(format!("conv-{}", i / 3))
                    .bind(format!("Subject {i}"))
                    .bind(sender.as_str())
                    .bind(sent)
                    .bind(sent)
                    .bind("{}")
                    .bind("bench")
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
            let rows: Vec<(i64, &str, &str)> = drawn
                .iter()
                .flat_map(|(i, _, addrs)| {
                    let mut seen: Vec<(&str, &str)> = Vec::new();
                    for (r, a) in addrs {
                        if !seen.contains(&(*r, a.as_str())) {
                            seen.push((r, a.as_str()));
                        }
                    }
                    seen.into_iter().map(move |(r, a)| (*i as i64 + 1, r, a))
                })
                .collect();
            for part in rows.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO email_recipients (email_id, role, address, name) VALUES {}",
                    value_rows(b, part.len(), 4)
                );
                let mut q = sqlx::query(&sql);
                for (id, role, address) in part {
                    q = q.bind(*id).bind(*role).bind(*address).bind("");
                }
                q.execute(&mut *tx).await?;
            }
            let sql = format!(
                "INSERT INTO email_mailboxes (mailbox_id, graph_id, email_id, folder, removed, updated_ms, sent_ms) VALUES {}",
                value_rows(b, chunk.len(), 7)
            );
            let mut q = sqlx::query(&sql);
            for &i in chunk {
                q = q
                    .bind(users[i % users.len()].0)
                    .bind(format!("g{i}"))
                    .bind(i as i64 + 1)
                    .bind("inbox")
                    .bind(0i64)
                    .bind(now)
                    .bind(base + (i as i64) * 7_000);
            }
            q.execute(&mut *tx).await?;
            let sql = format!(
                "INSERT INTO match_queue (tenant_id, kind, record_id) VALUES {}",
                value_rows(b, chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for &i in chunk {
                q = q.bind(tenant_id).bind("email").bind(i as i64 + 1);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        next = end;
    }
    if b == m365sync_store::Backend::Postgres {
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('emails', 'id'), (SELECT MAX(id) FROM emails))",
        )
        .execute(store.pool())
        .await?;
    }
    Ok(())
}

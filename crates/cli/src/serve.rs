//! `m365sync serve`: the service, on the configured database, or with `--sandbox` on an
//! in-process simulator, a SQLite file and the default plugins (README's first command).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use m365sync::config::ServiceConfig;
use m365sync::service::sandbox::{self, SandboxFiles};
use m365sync::service::{NotificationUrl, Service, ServiceOptions};
use m365sync::sync::stop::{stop_pair, StopHandle};
use m365sync_sim::config::ProtocolConfig;
use m365sync_sim::generate::GenerateOptions;
use m365sync_sim::server::{serve as serve_sim, ServeOptions};
use m365sync_sim::Origin;
use m365sync_store::Store;

/// `m365sync serve` options.
#[derive(Args)]
pub struct ServeArgs {
    /// Start the built-in sandbox: the simulator in-process with a generated tenant, a SQLite
    /// store in --sandbox-dir and the default plugins. No configuration needed.
    #[arg(long)]
    sandbox: bool,
    /// Where the sandbox keeps its database, key, token, CA and configuration.
    #[arg(long, default_value = "sandbox")]
    sandbox_dir: PathBuf,
    /// Where the sandbox's simulator listens (https).
    #[arg(long, default_value = "127.0.0.1:8765")]
    sim_bind: SocketAddr,
    /// Tenants of the sandbox's simulated Microsoft: the first is declared and activated; the
    /// others wait to be declared, through the console's setup assistant or `m365sync tenant
    /// add` (their ids, apps and secrets are in sim-world.json). Read when the world is first
    /// generated.
    #[arg(long, default_value_t = 1)]
    sim_tenants: usize,
    /// People in the sandbox tenant.
    #[arg(long, default_value_t = 5)]
    users: usize,
    /// Messages each sandbox mailbox starts with.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Messages of the sandbox's busy advisor (the first person after the admin), filed
    /// over three years in nested folders; 0 for none.
    #[arg(long, default_value_t = 20_000)]
    busy_messages: usize,
    /// The admin API's address (default: admin_listen of m365sync.toml, or 127.0.0.1:8080).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Mailboxes synced at once by this process (default: workers of m365sync.toml).
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds a lease lasts without renewal (default: lease_secs of m365sync.toml).
    #[arg(long)]
    lease_secs: Option<u64>,
    /// Seconds between scheduler ticks and idle workers' polls.
    #[arg(long, default_value_t = 1.0)]
    poll_secs: f64,
    /// Where Graph posts change notifications (default: notification_url of m365sync.toml;
    /// the sandbox: `loopback`). `loopback` is this process's own admin listener over plain
    /// http, for a simulator on the same host; `off` makes no subscriptions.
    #[arg(long)]
    notification_url: Option<String>,
    /// Write {"admin_url", "holder"} as JSON here once the service is up (for scripts, tests).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn run(config: Option<&Path>, args: ServeArgs) -> anyhow::Result<()> {
    let (handle, stop) = stop_pair();
    let mut sim_running = None;
    let mut autosave = None;
    let (cfg, key, token) = if args.sandbox {
        // The simulator's world lives in the sandbox directory: a restart resumes it (same
        // ids, same mail, delta tokens still valid) instead of generating a new one.
        let files = SandboxFiles::under(&args.sandbox_dir);
        let (sim, loaded) = m365sync_sim::persist::open_or_build(
            &files.sim_world,
            Origin::Generated(GenerateOptions {
                tenants: args.sim_tenants.max(1),
                users: args.users,
                messages: args.messages,
                busy_users: usize::from(args.busy_messages > 0),
                busy_messages: args.busy_messages,
                ..GenerateOptions::sandbox()
            }),
            ProtocolConfig::default(),
        )?;
        autosave = Some(m365sync_sim::persist::Autosave::start(
            sim.clone(),
            files.sim_world.clone(),
            Duration::from_secs(5),
            loaded,
        ));
        let running = serve_sim(
            sim,
            ServeOptions {
                bind: args.sim_bind,
                tls_dir: Some(args.sandbox_dir.join("tls")),
                public_url: None,
            },
        )
        .await
        .context("the sandbox's simulator cannot start")?;
        let admin_listen = args
            .admin_listen
            .unwrap_or_else(|| ServiceConfig::default().admin_listen);
        let (key, token) =
            sandbox::prepare_files(&files, admin_listen, running.ca_cert.as_deref())?;
        let cfg = ServiceConfig::load(Some(&files.config))?;
        sim_running = Some(running);
        (cfg, key, token)
    } else {
        let cfg = ServiceConfig::load(config)?;
        // The token before the key: without a token nothing else is worth checking.
        let token = cfg.admin_token()?.context(
            "the admin API needs a token: `m365sync token create --service --out admin.token` \
             makes one; point admin_token_file in m365sync.toml (or M365SYNC_ADMIN_TOKEN_FILE) \
             at it, or set M365SYNC_ADMIN_TOKEN",
        )?;
        let key = cfg.secret_key()?;
        (cfg, key, token)
    };
    let store = Store::open(&cfg.database_url, key).await?;
    let mut earlier_runs = Vec::new();
    if let Some(running) = &sim_running {
        let tenant = sandbox::declare(&store, &running.sim).await?;
        // The simulator keeps its subscriptions in memory only: after a restart it has none,
        // so the ones recorded here are made again.
        store.forget_subscriptions(tenant.id).await?;
        // What ran before this start, read before the scheduler can start anything: a run
        // still `running` now was interrupted by the last stop, not started by this process.
        // Rounds notifications started are not runs a newcomer counts (they are printed as
        // they finish, when they read something).
        earlier_runs = store
            .runs(tenant.id, 100)
            .await?
            .into_iter()
            .filter(|r| r.trigger_kind != NOTIFICATION_TRIGGER)
            .take(2)
            .collect();
        tracing::info!(org = %tenant.org, tenant = %tenant.name, "sandbox tenant declared and activated");
    }
    let env = super::admin::sync_env(&cfg, store.clone())?;
    let mut opts = ServiceOptions::new(Some(args.admin_listen.unwrap_or(cfg.admin_listen)), token);
    opts.workers = args.workers.unwrap_or(cfg.workers.max(1));
    opts.lease_ttl = Duration::from_secs(args.lease_secs.unwrap_or(cfg.lease_secs).max(2));
    opts.poll = Duration::from_secs_f64(args.poll_secs.clamp(0.05, 60.0));
    opts.console_secure_cookie = cfg.console_secure_cookie;
    opts.public_url = cfg.public_url.clone();
    opts.notification_url = match args.notification_url.as_deref() {
        Some("loopback") => NotificationUrl::Loopback,
        Some("off") => NotificationUrl::Off,
        Some(url) => {
            let mut checked = cfg.clone();
            checked.notification_url = Some(url.to_string());
            checked
                .check_notification_url()
                .context("--notification-url")?;
            NotificationUrl::Public(url.to_string())
        }
        None if args.sandbox => NotificationUrl::Loopback,
        None => cfg
            .notification_url
            .clone()
            .map_or(NotificationUrl::Off, NotificationUrl::Public),
    };
    let holder = opts.holder.clone();
    let service = Service::start(env, opts, stop).await?;
    let admin_url = format!(
        "http://{}",
        service
            .admin_addr
            .expect("the API is always configured here")
    );
    if let Some(path) = &args.ready_file {
        let ready = serde_json::json!({ "admin_url": admin_url, "holder": holder });
        super::sim::write_atomically(path, &ready.to_string())?;
    }
    if let Some(running) = &sim_running {
        print_sandbox_guide(&args.sandbox_dir, &running.base_url, &admin_url);
        tokio::spawn(report_runs(
            store.clone(),
            args.sandbox_dir.clone(),
            admin_url.clone(),
            earlier_runs,
        ));
    } else {
        eprintln!("m365sync serving; admin API on {admin_url} (holder {holder})");
    }
    wait_for_signal(handle).await;
    eprintln!("stopping: finishing the pages in flight");
    service.wait().await;
    store.close().await;
    if let Some(running) = sim_running {
        running.stop();
    }
    if let Some(autosave) = autosave {
        autosave.finish().await?;
    }
    eprintln!("stopped cleanly");
    Ok(())
}

async fn wait_for_signal(handle: StopHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    handle.stop();
}

fn print_sandbox_guide(dir: &Path, sim_url: &str, admin_url: &str) {
    let d = dir.display();
    println!(
        "m365sync sandbox is running.\n\
         \n  simulated Microsoft 365 (Graph + identity): {sim_url}  (CA: {d}/tls/ca.pem)\n\
         \x20 admin API: {admin_url}  (token in {d}/admin.token)\n\
         \x20 console: {admin_url}/  (sign in with the token in {d}/admin.token)\n\
         \x20 database: {d}/m365sync.db (SQLite), default plugins, org '{org}', tenant '{tenant}'\n\
         \x20 simulated mailboxes: {d}/sim-world.json (kept across restarts)\n\
         \nWhere to look:\n\
         \x20 curl {admin_url}/health\n\
         \x20 curl -H \"Authorization: Bearer $(cat {d}/admin.token)\" {admin_url}/api/tenants/{org}/{tenant}/runs\n\
         \x20 curl -H \"Authorization: Bearer $(cat {d}/admin.token)\" {admin_url}/metrics\n\
         \x20 m365sync --config {d}/m365sync.toml runs --org {org} --tenant {tenant}\n\
         \x20 m365sync --config {d}/m365sync.toml logs --org {org} --tenant {tenant}\n\
         \nCtrl-C stops it cleanly; starting it again resumes where it stopped.",
        org = sandbox::ORG,
        tenant = sandbox::TENANT,
    );
}

/// Tells the sandbox's user about its runs as they finish (issue 19). On a first start, the
/// first run's result in words a newcomer reads: emails and events kept, excluded and failed,
/// how many were linked to the seeded contacts, and where to look next. After a restart, the
/// run found on disk is labelled as the previous one, with its time, and each new run (or the
/// interrupted one, resumed) is printed when it finishes.
/// The trigger of the runs change notifications start.
const NOTIFICATION_TRIGGER: &str = "notification";

async fn report_runs(
    store: Store,
    dir: PathBuf,
    admin_url: String,
    known: Vec<m365sync_store::sync::Run>,
) {
    let Ok(tenant) = store.tenant(sandbox::ORG, sandbox::TENANT).await else {
        return;
    };
    let latest = known.first().cloned();
    // A newcomer's first run: none yet, or the only one, interrupted and now resumed.
    let mut newcomer = match known.as_slice() {
        [] => true,
        [only] => only.finished_ms.is_none(),
        _ => false,
    };
    // The first run to print: the interrupted run this start resumes, or the next new one.
    let next_id = match &latest {
        None => 0,
        Some(run) if run.finished_ms.is_none() => {
            println!(
                "run {} was interrupted by the last stop (started {}); resuming it where its last committed page left off",
                run.id,
                when(run.started_ms)
            );
            run.id
        }
        Some(run) => {
            println!(
                "previous run {} (started {}, finished {}): {}: {}",
                run.id,
                when(run.started_ms),
                run.finished_ms.map(when).unwrap_or_default(),
                run.status_text(),
                run.figures_text()
            );
            println!(
                "  the next run starts on the tenant's schedule and is printed when it finishes; to start one now:\n  \
                 curl -X POST -H \"Authorization: Bearer $(cat {}/admin.token)\" {admin_url}/api/tenants/{}/{}/sync",
                dir.display(),
                sandbox::ORG,
                sandbox::TENANT
            );
            run.id + 1
        }
    };
    // Runs finish out of order (a notification's round beside a long backfill): each is
    // printed once, when it finishes.
    let mut printed = std::collections::HashSet::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(runs) = store.runs(tenant.id, 50).await else {
            continue;
        };
        let mut finished: Vec<_> = runs
            .into_iter()
            .filter(|r| r.id >= next_id && r.finished_ms.is_some() && !printed.contains(&r.id))
            .collect();
        finished.sort_by_key(|r| r.id);
        for run in finished {
            printed.insert(run.id);
            if run.trigger_kind == NOTIFICATION_TRIGGER {
                // A round a change notification asked for: worth a line when it read something.
                if run.emails.processed + run.events.processed > 0 || run.errors > 0 {
                    println!(
                        "change notification: run {} {}: {}",
                        run.id,
                        run.status_text(),
                        run.figures_text()
                    );
                }
                continue;
            }
            if newcomer {
                newcomer = false;
                print_first_run(&store, &tenant, &run, &dir).await;
            } else {
                println!(
                    "run {} {} (started {}): {}",
                    run.id,
                    run.status_text(),
                    when(run.started_ms),
                    run.figures_text()
                );
            }
        }
    }
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// The first run's result for someone who has just started the product.
async fn print_first_run(
    store: &Store,
    tenant: &m365sync_store::tenants::Tenant,
    run: &m365sync_store::sync::Run,
    dir: &Path,
) {
    use m365sync_store::sync::thousands as n;
    // Matching links the run's mail as it is stored; give it the moment it needs to finish.
    let mut queued = store.match_queue_len(tenant.id).await.unwrap_or(0);
    for _ in 0..120 {
        if queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        queued = store.match_queue_len(tenant.id).await.unwrap_or(0);
    }
    let linked = store.linked_counts(tenant.id).await.unwrap_or_default();
    let contacts = store
        .all_contacts(tenant.org_id)
        .await
        .map(|c| c.len())
        .unwrap_or(0);
    let (e, v) = (&run.emails, &run.events);
    let secs = run
        .finished_ms
        .map_or(0, |f| (f - run.started_ms).max(0) / 1000);
    let d = dir.display();
    let cfg = format!("m365sync --config {d}/m365sync.toml");
    let (org, t) = (sandbox::ORG, sandbox::TENANT);
    let matching_note = if queued > 0 {
        format!(" (matching still has {} records to go)", n(queued))
    } else {
        String::new()
    };
    let lines = [
        format!("first run {} {} in {secs} s:", run.id, run.status_text()),
        format!(
            "  emails: {} read: {} kept, {} excluded by the rules (newsletters, automated mail), {} failed",
            n(e.processed),
            n(e.kept),
            n(e.excluded),
            n(e.failed)
        ),
        format!(
            "  events: {} read (each occurrence of a recurring meeting counts as one): {} kept, {} excluded (drafts, private, internal-only), {} failed",
            n(v.processed),
            n(v.kept),
            n(v.excluded),
            n(v.failed)
        ),
        format!(
            "  linked to contacts: {} emails and {} events reach {} of the {} sandbox contacts (seeded from the simulated clients){matching_note}",
            n(linked.emails),
            n(linked.events),
            n(linked.contacts),
            n(contacts as i64)
        ),
        format!("  errors: {}", n(run.errors)),
        String::new(),
        "Where to look next:".to_string(),
        format!("  {cfg} runs --org {org} --tenant {t}"),
        "      every run, emails and events apart".to_string(),
        format!("  {cfg} logs --org {org} --tenant {t}"),
        "      what each mailbox did".to_string(),
        format!("  {cfg} contact list --org {org}"),
        "      the seeded contacts".to_string(),
        format!(
            "  {cfg} contact timeline --org {org} {}",
            linked.busiest_contact.unwrap_or(1)
        ),
        "      the mail and meetings linked to the busiest of them".to_string(),
        format!("  {cfg} failures list --org {org} --tenant {t}"),
        "      records that failed, and why".to_string(),
    ];
    println!("\n{}", lines.join("\n"));
}

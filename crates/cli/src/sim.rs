//! `m365sync sim serve|generate|ctl`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use m365sync_sim::config::ProtocolConfig;
use m365sync_sim::generate::{generate, ground_truth, GenerateOptions};
use m365sync_sim::scenario::Scenario;
use m365sync_sim::server::{serve, ServeOptions};
use m365sync_sim::{control, Origin, Sim};

#[derive(Subcommand)]
pub enum SimCommand {
    /// Serve a generated or scenario tenant over http or https until interrupted.
    Serve(Box<ServeArgs>),
    /// Generate a tenant and write its ground truth, reporting how long it took.
    Generate {
        #[command(flatten)]
        world: WorldArgs,
        /// Where to write the ground truth (JSON); stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure the simulator: generate one mailbox and serve every folder's delta round to one
    /// client over loopback; prints JSON.
    Bench {
        /// Messages in the mailbox.
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// Delta page size (Prefer: odata.maxpagesize).
        #[arg(long, default_value_t = 100)]
        page_size: usize,
        /// Parse every page as JSON in the client (otherwise only find the link and count).
        #[arg(long)]
        parse: bool,
    },
    /// Call a running simulator's control API, e.g. `ctl GET stats` or
    /// `ctl POST deliver '{"from":..,"to":[..],"subject":..}'`.
    Ctl {
        /// The simulator's ready file (gives the URL and CA).
        #[arg(long, conflicts_with = "url")]
        ready_file: Option<PathBuf>,
        /// The simulator's base URL, e.g. http://localhost:8765.
        #[arg(long)]
        url: Option<String>,
        /// HTTP method: GET, POST or PUT.
        method: String,
        /// Control path below /_sim, e.g. `stats`, `deliver`, `faults`.
        path: String,
        /// JSON body.
        body: Option<String>,
    },
}

/// What world to build.
#[derive(Args, Clone)]
pub struct WorldArgs {
    /// A TOML scenario describing the tenants by hand (instead of generating).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Seed of the generator: the same seed gives the same tenant.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tenants to generate.
    #[arg(long, default_value_t = 1)]
    tenants: usize,
    /// People per tenant.
    #[arg(long, default_value_t = 5)]
    users: usize,
    /// Shared mailboxes per tenant.
    #[arg(long, default_value_t = 1)]
    shared: usize,
    /// Messages per mailbox.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Calendar items per person.
    #[arg(long, default_value_t = 20)]
    events: usize,
    /// Years of mail history (0: the classic 200 days; busy mailboxes then span 3 years).
    #[arg(long, default_value_t = 0)]
    years: u32,
    /// People (counted after the admin) with a busy advisor's mailbox: --busy-messages more
    /// messages over the years, filed in nested folders (Inbox/Clients/<client>, ...).
    #[arg(long, default_value_t = 0)]
    busy_users: usize,
    /// Messages of each busy mailbox.
    #[arg(long, default_value_t = 20_000)]
    busy_messages: usize,
    /// The instant the generated history ends at (RFC 3339, e.g. 2027-06-01T12:00:00Z; default:
    /// now). Dates are relative to it, so the same seed and --now give byte-identical worlds.
    #[arg(long)]
    now: Option<chrono::DateTime<chrono::Utc>>,
}

impl WorldArgs {
    fn origin(&self) -> anyhow::Result<Origin> {
        Ok(match &self.scenario {
            Some(path) => Origin::Scenario(Scenario::load(path)?),
            None => Origin::Generated(GenerateOptions {
                seed: self.seed,
                tenants: self.tenants,
                users: self.users,
                shared: self.shared,
                messages: self.messages,
                events: self.events,
                years: self.years,
                busy_users: self.busy_users,
                busy_messages: self.busy_messages,
                now: self.now,
                ..GenerateOptions::default()
            }),
        })
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    world: WorldArgs,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8765")]
    bind: SocketAddr,
    /// Serve https with a local CA (real Microsoft clients insist on https).
    #[arg(long)]
    https: bool,
    /// Where the local CA is kept (made on first use).
    #[arg(long, default_value = "sandbox/tls")]
    tls_dir: PathBuf,
    /// Base URL of links; default {scheme}://localhost:{port}.
    #[arg(long)]
    public_url: Option<String>,
    /// Write the connection details (JSON) here once listening.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Write the ground truth (JSON) here once listening.
    #[arg(long)]
    ground_truth: Option<PathBuf>,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 3599)]
    access_token_secs: i64,
    /// Delta state lifetime in seconds (older tokens answer 410).
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    sync_state_secs: i64,
    /// The longest lifetime in seconds granted to a change-notification subscription (Outlook:
    /// 10,080 minutes); shorter shows renewals happen.
    #[arg(long, default_value_t = 10_080 * 60)]
    subscription_max_secs: i64,
    /// Faults to inject from the start, as JSON, e.g. '{"rate_503":0.05,"latency_ms":20}'
    /// (the same fields as PUT /_sim/faults).
    #[arg(long)]
    faults: Option<String>,
    /// Throttling limits, as JSON, e.g. '{"window_secs":60,"limit":600,"concurrency":4}'.
    #[arg(long)]
    throttle: Option<String>,
    /// Keep the world in this file: loaded at start when it exists (instead of generating),
    /// saved every few seconds when it changed and at Ctrl-C, so ids, mail and delta tokens
    /// survive a restart.
    #[arg(long)]
    state: Option<PathBuf>,
}

pub(crate) fn write_atomically(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {
        SimCommand::Serve(args) => serve_cmd(*args).await,
        SimCommand::Generate { world, out } => {
            let origin = world.origin()?;
            let started = Instant::now();
            let built = match &origin {
                Origin::Generated(opts) => generate(opts).world,
                Origin::Scenario(s) => s.build(),
            };
            let elapsed = started.elapsed();
            let messages = built.messages.len();
            let truth = serde_json::to_string_pretty(&ground_truth(&built))?;
            match out {
                Some(path) => write_atomically(&path, &truth)?,
                None => println!("{truth}"),
            }
            eprintln!(
                "generated {messages} messages in {:.2} s",
                elapsed.as_secs_f64()
            );
            Ok(())
        }
        SimCommand::Bench {
            messages,
            page_size,
            parse,
        } => {
            let report =
                m365sync_bench::sim_delta::delta_throughput(messages, page_size, parse).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        SimCommand::Ctl {
            ready_file,
            url,
            method,
            path,
            body,
        } => ctl(ready_file, url, &method, &path, body).await,
    }
}

async fn serve_cmd(args: ServeArgs) -> anyhow::Result<()> {
    let origin = args.world.origin()?;
    let protocol = ProtocolConfig {
        access_token_secs: args.access_token_secs,
        sync_state_secs: args.sync_state_secs,
        subscription_max_secs: args.subscription_max_secs,
        ..ProtocolConfig::default()
    };
    let started = Instant::now();
    let (sim, loaded) = match &args.state {
        Some(path) => m365sync_sim::persist::open_or_build(path, origin, protocol)?,
        None => (Sim::new(origin, protocol), false),
    };
    if loaded {
        tracing::info!(state = %args.state.as_deref().unwrap_or_else(|| std::path::Path::new("")).display(), "world loaded from the state file");
    }
    if let Some(json) = &args.faults {
        let faults: m365sync_sim::config::FaultConfig = serde_json::from_str(json)
            .context("--faults must be JSON with the fields of PUT /_sim/faults")?;
        faults
            .validate()
            .map_err(anyhow::Error::msg)
            .context("--faults")?;
        sim.set_faults(faults);
    }
    if let Some(json) = &args.throttle {
        let throttle: m365sync_sim::config::ThrottleConfig = serde_json::from_str(json).context(
            "--throttle must be JSON: {\"window_secs\":..,\"limit\":..,\"concurrency\":..}",
        )?;
        sim.throttle.set_config(throttle);
    }
    let messages = sim.world.lock().expect("world lock").messages.len();
    tracing::info!(
        messages,
        seconds = started.elapsed().as_secs_f64(),
        "world built"
    );
    let running = serve(
        sim.clone(),
        ServeOptions {
            bind: args.bind,
            tls_dir: args.https.then_some(args.tls_dir.clone()),
            public_url: args.public_url.clone(),
        },
    )
    .await?;
    let info = control::info(&sim);
    if let Some(path) = &args.ground_truth {
        let truth = ground_truth(&sim.world.lock().expect("world lock"));
        write_atomically(path, &serde_json::to_string(&truth)?)?;
    }
    if let Some(path) = &args.ready_file {
        write_atomically(path, &serde_json::to_string_pretty(&info)?)?;
    }
    println!("READY {}", serde_json::to_string(&info)?);
    eprintln!(
        "m365sync simulator listening on {} (Graph: {}/v1.0)",
        running.addr, running.base_url
    );
    if let Some(ca) = &running.ca_cert {
        eprintln!("trust this CA to talk https to it: {}", ca.display());
    }
    if let Some(t) = info["tenants"].get(0) {
        eprintln!(
            "tenant {} ({}): client id {}, secrets are in the ready file or GET {}/_sim/info",
            t["domain"].as_str().unwrap_or(""),
            t["id"].as_str().unwrap_or(""),
            t["apps"][0]["client_id"].as_str().unwrap_or(""),
            running.base_url
        );
    }
    let autosave = args.state.clone().map(|path| {
        m365sync_sim::persist::Autosave::start(
            sim.clone(),
            path,
            std::time::Duration::from_secs(5),
            loaded,
        )
    });
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.stop();
    if let Some(autosave) = autosave {
        autosave.finish().await?;
    }
    Ok(())
}

async fn ctl(
    ready_file: Option<PathBuf>,
    url: Option<String>,
    method: &str,
    path: &str,
    body: Option<String>,
) -> anyhow::Result<()> {
    let mut client = reqwest::Client::builder();
    let base = match (ready_file, url) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read ready file {}", file.display()))?;
            let info: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("ready file {} is not JSON", file.display()))?;
            if let Some(ca) = info["ca_cert"].as_str() {
                let pem = std::fs::read(ca).with_context(|| format!("cannot read CA {ca}"))?;
                client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
            }
            info["base_url"]
                .as_str()
                .context("ready file has no base_url")?
                .to_string()
        }
        (None, Some(url)) => url,
        (None, None) => bail!("say where the simulator is: --ready-file FILE or --url URL"),
    };
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .context("method must be GET, POST or PUT")?;
    let url = format!(
        "{}/_sim/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let mut req = client.build()?.request(method, &url);
    if let Some(body) = body {
        let json: serde_json::Value =
            serde_json::from_str(&body).context("the body must be JSON")?;
        req = req.json(&json);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach the simulator at {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    println!("{text}");
    if !status.is_success() {
        bail!("the simulator answered {status}");
    }
    Ok(())
}

//! `m365sync sim`: a stateful, local Microsoft Graph v1.0 and identity platform.
//!
//! It is the test bed of every other part of m365sync, the load of every benchmark and the
//! sandbox a new user starts on. It follows `shared/reference/graph-protocol.md`: per-folder
//! message delta with sealed tokens, ImmutableId, attachments, calendarView delta with recurring
//! series, event writes with an invitation log, sendMail, `$batch`, subscriptions, Outlook's
//! throttling, fault injection, and a control API that changes the world while a client syncs.
//!
//! Layout: [`model`] is the world; [`identity`] the token endpoints; [`graph`] routes Graph
//! requests to [`directory`], [`mail`], [`delta`] and [`calendar`]; [`server`] speaks HTTP(S);
//! [`control`] is the test harness's API; [`generate`] and [`scenario`] build worlds.

pub mod batch;
pub mod calendar;
pub mod config;
pub mod control;
pub mod delta;
pub mod directory;
pub mod drafts;
pub mod folders;
pub mod generate;
mod generate_busy;
pub mod graph;
pub mod identity;
pub mod ids;
pub mod mail;
pub mod model;
pub mod persist;
pub mod request;
pub mod scenario;
pub mod server;
pub mod stats;
pub mod subscriptions;
pub mod throttle;
pub mod tls;

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use config::{FaultConfig, ProtocolConfig};
use model::World;
use stats::Stats;
use throttle::Throttle;

/// Where a world comes from, kept so `POST /_sim/reset` can rebuild it.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A world generated from options.
    Generated(generate::GenerateOptions),
    /// A world described by a scenario file.
    Scenario(scenario::Scenario),
}

impl Origin {
    /// Builds the world this origin describes.
    pub fn build(&self) -> World {
        match self {
            Origin::Generated(opts) => generate::generate(opts).world,
            Origin::Scenario(s) => s.build(),
        }
    }
}

/// The whole simulator: the world and everything that shapes how it answers.
#[derive(Debug)]
pub struct Sim {
    /// The simulated world, behind one lock; prefer [`Sim::world`], which survives poisoning.
    pub world: Mutex<World>,
    protocol: RwLock<ProtocolConfig>,
    /// Outlook's per app-and-mailbox throttling.
    pub throttle: Arc<Throttle>,
    faults: RwLock<FaultConfig>,
    /// What the simulator counted, for `GET /_sim/stats`.
    pub stats: Stats,
    /// Seals delta tokens, codes and refresh tokens, and signs access tokens.
    pub sealer: ids::Sealer,
    public_base: RwLock<String>,
    /// The local CA certificate when serving https.
    pub ca_cert: RwLock<Option<std::path::PathBuf>>,
    /// Authorization codes already redeemed (a code works once).
    pub redeemed_codes: Mutex<HashSet<u64>>,
    /// Change-notification subscriptions and their delivery queue.
    pub subscriptions: subscriptions::Registry,
    /// Numbers requests, for deterministic fault injection.
    pub request_seq: AtomicU64,
    origin: Origin,
}

impl Sim {
    /// A simulator serving the world `origin` describes.
    pub fn new(origin: Origin, protocol: ProtocolConfig) -> Arc<Sim> {
        let world = origin.build();
        Sim::with_world(origin, protocol, world)
    }

    /// A simulator serving `world` (one loaded from disk, see [`persist`]); `origin` is what
    /// `POST /_sim/reset` rebuilds. Tokens are sealed with a key derived from the world's id
    /// salt, so tokens issued by the simulator that saved the world open here too.
    pub fn with_world(origin: Origin, protocol: ProtocolConfig, world: World) -> Arc<Sim> {
        let key = ids::mix64(world.salt as u64 ^ 0x5eed).to_le_bytes();
        Arc::new(Sim {
            world: Mutex::new(world),
            protocol: RwLock::new(protocol),
            throttle: Arc::new(Throttle::default()),
            faults: RwLock::new(FaultConfig::default()),
            stats: Stats::default(),
            sealer: ids::Sealer::new(&key),
            public_base: RwLock::new(String::from("http://localhost")),
            ca_cert: RwLock::new(None),
            redeemed_codes: Mutex::new(HashSet::new()),
            subscriptions: subscriptions::Registry::default(),
            request_seq: AtomicU64::new(0),
            origin,
        })
    }

    /// The world, locked. A handler that panicked while holding the lock poisons it; the
    /// simulator then carries on with the world as the panic left it (and clears the poison,
    /// so callers that `lock().unwrap()` keep working too) rather than refusing every later
    /// request, which is what one bad request used to do to a whole test run.
    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|poisoned| {
            self.world.clear_poison();
            poisoned.into_inner()
        })
    }

    /// What changes whenever the world does (its sequence and epoch): how the autosave
    /// knows there is something new to write.
    pub fn world_version(&self) -> (u64, u64) {
        let world = self.world();
        (world.seq, world.epoch)
    }

    /// The base URL links are built from (`https://localhost:PORT`).
    pub fn public_base(&self) -> String {
        self.public_base
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets the base URL links are built from.
    pub fn set_public_base(&self, base: &str) {
        *self
            .public_base
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            base.trim_end_matches('/').to_string();
    }

    /// The protocol settings in force.
    pub fn protocol(&self) -> ProtocolConfig {
        self.protocol
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the protocol settings.
    pub fn set_protocol(&self, p: ProtocolConfig) {
        *self
            .protocol
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = p;
    }

    /// The faults in force.
    pub fn faults(&self) -> FaultConfig {
        self.faults
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the faults.
    pub fn set_faults(&self, f: FaultConfig) {
        *self
            .faults
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = f;
    }

    /// Rebuilds the initial world and forgets throttling, faults, counters and subscriptions.
    /// Tokens sealed before stay verifiable, but they name state of the old world, which is
    /// why delta tokens carry the world's epoch.
    pub fn reset(&self) {
        let mut fresh = self.origin.build();
        let mut world = self.world();
        fresh.epoch = world.epoch + 1;
        *world = fresh;
        drop(world);
        self.throttle.clear();
        self.set_faults(FaultConfig::default());
        self.stats.reset();
        self.subscriptions.clear();
    }
}

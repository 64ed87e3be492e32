//! The sandbox: what a component may import, what it must export, and WASI with nothing granted.
//!
//! A component is checked before it is ever instantiated:
//! - every import must be on the allow-list below, or it is refused with the names of all the
//!   imports that are not ([`PluginError::ForbiddenImports`]);
//! - it must export the interface of the expected world at a version of the contract this host
//!   serves (`0.1.x` or `0.2.x`, [`Contract`])
//!   ([`PluginError::WrongWorld`], [`PluginError::IncompatibleVersion`]).
//!
//! The allow-list is the contract's `host` interface plus the WASI interfaces that Rust's
//! `std` (and other languages' runtimes) import even when the plugin never uses them:
//! `wasi:cli` (environment, exit, stdin/stdout/stderr, terminals), `wasi:io` (error, poll,
//! streams), `wasi:clocks` and `wasi:random`. They are provided with nothing to reach:
//! the environment and arguments are empty, stdin is empty, stdout and stderr go to a bounded
//! in-memory buffer that ends up in the tenant's log, and there is no terminal.
//!
//! `wasi:filesystem` is refused, not provided empty: the default Rust plugins do not import it
//! (std only pulls it in when a plugin touches files), so a component that imports it meant to
//! read files, and saying so at install is clearer than failing each call. `wasi:sockets`,
//! `wasi:http` and every interface not listed are refused the same way. The linker defines
//! only the allowed interfaces, so even a check bypassed could not link anything else.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime::component::{types::ComponentItem, Component, HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::WasiCliView;
use wasmtime_wasi::clocks::WasiClocksView;

use bytes::{Bytes, BytesMut};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::pipe::ClosedInputStream;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{OutputStream, StreamError};

use super::host::HostState;
use super::{Contract, Kind, PluginError, CONTRACT_PACKAGE};

/// WASI interfaces (package/interface) a plugin may import, at any 0.2.x version.
const WASI_ALLOWED: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// Contract interfaces a plugin may import.
const CONTRACT_IMPORTS: &[&str] = &["host", "types"];

/// A component-model name split into `ns:pkg/iface` and its version.
fn split(name: &str) -> (&str, Option<semver::Version>) {
    match name.split_once('@') {
        Some((path, v)) => (path, semver::Version::parse(v).ok()),
        None => (name, None),
    }
}

fn contract_of(v: &Option<semver::Version>) -> Option<Contract> {
    v.as_ref().and_then(Contract::of)
}

fn is_contract_version(v: &Option<semver::Version>) -> bool {
    contract_of(v).is_some()
}

/// The component's imports that are outside the allow-list; an empty list means allowed.
fn forbidden_imports(component: &Component) -> (Vec<String>, Vec<String>) {
    let engine = component.engine();
    let mut forbidden = Vec::new();
    let mut other_version = Vec::new();
    for (name, _) in component.component_type().imports(engine) {
        let (path, version) = split(name);
        if let Some(iface) = path
            .strip_prefix(CONTRACT_PACKAGE)
            .and_then(|r| r.strip_prefix('/'))
        {
            if CONTRACT_IMPORTS.contains(&iface) {
                if !is_contract_version(&version) {
                    other_version.push(name.to_string());
                }
                continue;
            }
        }
        let wasi_ok = WASI_ALLOWED.contains(&path)
            && version
                .as_ref()
                .is_some_and(|v| v.major == 0 && v.minor == 2);
        if !wasi_ok {
            forbidden.push(name.to_string());
        }
    }
    (forbidden, other_version)
}

/// Checks imports and exports of `component` for a plugin of `kind`; answers the contract
/// version its export speaks.
pub fn check(component: &Component, kind: Kind) -> Result<Contract, PluginError> {
    let (forbidden, other_version) = forbidden_imports(component);
    let engine = component.engine();
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name.to_string())
        .collect();
    let wanted = format!("{CONTRACT_PACKAGE}/{}", kind.interface());
    let ours = exports.iter().find(|e| split(e).0 == wanted);
    // Version first: a component of another contract version usually differs in both.
    if let Some(found) = ours.filter(|e| !is_contract_version(&split(e).1)) {
        return Err(PluginError::IncompatibleVersion {
            found: found.clone(),
        });
    }
    if let Some(found) = other_version.into_iter().next() {
        return Err(PluginError::IncompatibleVersion { found });
    }
    if !forbidden.is_empty() {
        return Err(PluginError::ForbiddenImports(forbidden));
    }
    match ours.and_then(|e| contract_of(&split(e).1)) {
        Some(contract) => Ok(contract),
        None => Err(PluginError::WrongWorld {
            expected: kind,
            found: exports,
        }),
    }
}

/// stdout or stderr of a plugin: keeps the first `capacity` bytes and silently drops the rest.
/// (wasmtime-wasi's `MemoryOutputPipe` traps the writer when full, and Rust's `println!`
/// panics on a failed write: a chatty plugin would fail its records for logging too much.)
#[derive(Clone)]
pub struct BoundedOutput {
    capacity: usize,
    inner: Arc<Mutex<(BytesMut, usize)>>,
}

impl BoundedOutput {
    /// An empty buffer that keeps the first `capacity` bytes written to it.
    pub fn new(capacity: usize) -> Self {
        BoundedOutput {
            capacity,
            inner: Arc::new(Mutex::new((BytesMut::new(), 0))),
        }
    }

    fn keep(&self, bytes: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.capacity.saturating_sub(inner.0.len());
        let kept = room.min(bytes.len());
        inner.0.extend_from_slice(&bytes[..kept]);
        inner.1 += bytes.len() - kept;
    }

    /// What was kept, and how many bytes were dropped.
    pub fn contents(&self) -> (Bytes, usize) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.0.clone().freeze(), inner.1)
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for BoundedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for BoundedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for BoundedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for BoundedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// The WASI side of a Store: a context granting nothing and the captured output.
pub struct WasiState {
    ctx: WasiCtx,
    table: ResourceTable,
    stdout: BoundedOutput,
    stderr: BoundedOutput,
}

impl WasiState {
    /// No preopens, no environment, no arguments, no network, empty stdin; stdout and stderr
    /// into buffers keeping `capacity` bytes each (more is dropped and counted).
    pub fn new(capacity: usize) -> Self {
        let stdout = BoundedOutput::new(capacity);
        let stderr = BoundedOutput::new(capacity);
        let ctx = WasiCtx::builder()
            .stdin(ClosedInputStream)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_blocking_current_thread(true)
            .build();
        WasiState {
            ctx,
            table: ResourceTable::new(),
            stdout,
            stderr,
        }
    }

    /// What the plugin wrote to stdout and stderr (kept, dropped bytes).
    pub fn output(&self) -> [(Bytes, usize); 2] {
        [self.stdout.contents(), self.stderr.contents()]
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}

struct HasTable;

impl HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Defines the allowed WASI interfaces (and only those) in `linker`.
pub fn add_wasi_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::clocks::WasiClocks;
    use wasmtime_wasi::p2::bindings::{cli, clocks, random, sync};
    use wasmtime_wasi::random::WasiRandom;

    type T = HostState;
    let l = linker;
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<T, HasTable>(l, |t| {
        &mut t.wasi.table
    })?;
    sync::io::poll::add_to_linker::<T, HasTable>(l, |t| &mut t.wasi.table)?;
    sync::io::streams::add_to_linker::<T, HasTable>(l, |t| &mut t.wasi.table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.ctx.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.ctx.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.wasi.ctx.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    Ok(())
}

/// The import names of a component (for tools and tests; compiles the bytes).
pub fn imports_of(engine: &wasmtime::Engine, bytes: &[u8]) -> Result<Vec<String>, PluginError> {
    let component =
        Component::new(engine, bytes).map_err(|e| PluginError::Compile(format!("{e:#}")))?;
    let names = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    Ok(names)
}

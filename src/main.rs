//! `proxmox-manager`: the command line. Thin on purpose: the flags, then a hand-over to
//! [`commands`], which builds the context and calls `server`, `ops` or `sim`. `anyhow` is
//! used here and in `commands` only (the binary), never in the library.

mod commands;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::{Args, Parser, Subcommand, ValueEnum};
use proxmox_manager::{config, ops, server};

#[derive(Parser)]
#[command(
    name = "proxmox-manager",
    version,
    about = "MCP server for managing a Proxmox VE cluster, with an embedded PVE simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the MCP server (stdio by default).
    Serve(ServeArgs),
    /// Run only the simulated cluster and print how to reach it.
    Sim(SimArgs),
    /// Doctor: configuration, credentials, connectivity, TLS, PVE version, privileges.
    Check(TargetArgs),
    /// Print the tool catalogue, or regenerate the checked-in one.
    Tools(ToolsArgs),
    /// Run one tool from the shell through the MCP protocol (same code path as a client).
    Call(CallArgs),
    /// Print the JSON Schema of cluster-config.yaml (for editors).
    ConfigSchema,
    /// Print the JSON Schema of a cluster profile (clusters/*.yaml), for editors.
    ProfileSchema,
    /// The least-privilege service account of the design.
    #[command(subcommand)]
    Rbac(RbacCommand),
}

#[derive(Subcommand)]
enum RbacCommand {
    /// Over SSH as root on one node: create the service account, the ClaudeCodeManager role,
    /// its ACL on / and an API token whose secret goes straight into `pass`.
    Bootstrap(BootstrapArgs),
}

#[derive(Args)]
struct BootstrapArgs {
    /// Node to run pveum on.
    #[arg(long)]
    node: String,
    /// Path of cluster-config.yaml (SSH settings and credentials.pass_path come from it).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Service account (default claude-code@pve).
    #[arg(long)]
    user: Option<String>,
    /// Token name (default automation).
    #[arg(long)]
    token_name: Option<String>,
    /// Role name (default ClaudeCodeManager).
    #[arg(long)]
    role: Option<String>,
    /// Replace an existing token (its old secret stops working).
    #[arg(long)]
    rotate: bool,
    /// Also grant Datastore.AllocateTemplate and Sys.AccessNetwork (image imports via the API).
    #[arg(long)]
    enable_api_import: bool,
    /// Only inspect and print the plan.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Clone)]
struct TargetArgs {
    /// Path of cluster-config.yaml (else $PROXMOX_MANAGER_CONFIG, else $XDG_CONFIG_HOME/proxmox-manager/cluster-config.yaml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Use the embedded simulated cluster instead of a real one; optionally a scenario file.
    #[arg(long, value_name = "SCENARIO", num_args = 0..=1, default_missing_value = "embedded")]
    sim: Option<String>,
    /// Simulator time scale (1.0 = real PVE task durations).
    #[arg(long, value_name = "FACTOR", default_value_t = 0.2)]
    sim_time_scale: f64,
    /// First interval between polls of a PVE task, in ms (default 500; with --sim, scaled
    /// with the simulator's clock).
    #[arg(long, value_name = "MS")]
    task_poll_ms: Option<u64>,
    /// How long to wait for a locked VM ("VM is locked", "can't lock file") before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    lock_wait_s: u64,
}

impl TargetArgs {
    fn timeouts(&self) -> ops::Timeouts {
        let ms = match (self.task_poll_ms, &self.sim) {
            (Some(ms), _) => ms,
            (None, Some(_)) => ((500.0 * self.sim_time_scale) as u64).max(10),
            (None, None) => 500,
        };
        let mut t = ops::Timeouts::default().with_poll(std::time::Duration::from_millis(ms.max(1)));
        t.lock = std::time::Duration::from_secs(self.lock_wait_s);
        t
    }
}

#[derive(Args, Clone)]
struct FilterArgs {
    /// Expose only tools that do not change anything. Wins over --toolsets.
    #[arg(long)]
    read_only: bool,
    /// Expose only these toolsets (comma-separated), e.g. cluster,vm.
    #[arg(long, value_delimiter = ',')]
    toolsets: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Transport {
    Stdio,
    Http,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    filter: FilterArgs,
    #[arg(long, value_enum, default_value = "stdio")]
    transport: Transport,
    /// Address for --transport http.
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// File holding the HTTP bearer token (else $PROXMOX_MANAGER_HTTP_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Serve HTTP without a bearer token (loopback only).
    #[arg(long)]
    no_auth: bool,
    /// Allow --listen on a non-loopback address (a token is still required; the endpoint is
    /// plain HTTP, so put TLS in front of it).
    #[arg(long)]
    allow_remote: bool,
    /// Browser origin allowed to call the HTTP endpoint (repeatable), besides the endpoint's own.
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Host name (or host:port) clients may send besides loopback and the listen address
    /// (repeatable): the machine's name when listening with --allow-remote on 0.0.0.0.
    #[arg(long, value_name = "HOST")]
    allow_host: Vec<String>,
    /// HTTP: seconds a client has to send a request's headers (also the longest pause between
    /// requests on a kept-alive connection).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    header_timeout_s: f64,
    /// HTTP: close a connection after this many seconds without a byte either way (open SSE
    /// streams send a keep-alive every 15 s).
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    idle_timeout_s: f64,
    /// HTTP: open connections at most; beyond, a new one gets 503 and is closed.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_connections: usize,
    /// HTTP: MCP sessions at most (per bearer token); beyond, the least recently used idle
    /// session is closed, or the new one refused (503) when all are busy.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_sessions: usize,
    /// HTTP: an MCP session without a request for this many seconds expires.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800.0)]
    session_idle_s: f64,
    /// Who approves destructive calls, overriding `confirmations:` in the config: auto (the
    /// person in the client's dialog when the client supports MCP elicitation, else
    /// confirm: true), elicit (refuse destructive calls from clients that cannot ask the
    /// person), argument (confirm: true alone, for scripted clients).
    #[arg(long, value_name = "MODE")]
    confirmations: Option<String>,
}

impl ServeArgs {
    fn http_limits(&self) -> Result<server::http::HttpLimits> {
        let (limits, warnings) = server::http::HttpLimits::from_flags(
            self.header_timeout_s,
            self.idle_timeout_s,
            self.max_connections,
            self.max_sessions,
            self.session_idle_s,
        )
        .map_err(|e| anyhow!(e))?;
        if matches!(self.transport, Transport::Http) {
            for w in warnings {
                eprintln!("proxmox-manager: warning: {w}");
            }
        }
        Ok(limits)
    }
}

#[derive(Args)]
struct SimArgs {
    /// Scenario file (default: the embedded config/sim.yaml).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    time_scale: f64,
    /// Write the simulator's CA certificate (PEM) to this file.
    #[arg(long, value_name = "FILE")]
    ca_out: Option<PathBuf>,
    /// Generate a large realistic cluster of NODES x GUESTS (e.g. 64x10000) instead of
    /// reading a scenario; with --scenario-out, write it and exit.
    #[arg(long, value_name = "NxM", conflicts_with = "scenario",
          value_parser = proxmox_manager::sim::generate::parse_size_spec)]
    generate: Option<(usize, usize)>,
    /// Seed of --generate (the same seed gives the same cluster).
    #[arg(long, default_value_t = 1, requires = "generate")]
    seed: u64,
    /// Write the generated scenario to this file and exit (run it later with
    /// `sim --scenario FILE` or `serve --sim FILE`).
    #[arg(long, value_name = "FILE", requires = "generate")]
    scenario_out: Option<PathBuf>,
}

#[derive(Args)]
struct ToolsArgs {
    /// Regenerate the catalogue (README.md + tools.json) in this directory.
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
    /// Print the JSON snapshot instead of the markdown.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CallArgs {
    /// Tool name, e.g. cluster_status.
    tool: String,
    /// Arguments as a JSON object (default {}).
    #[arg(default_value = "{}")]
    json: String,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // stdout belongs to the MCP protocol: logs go to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// Runtime worker threads: the server waits on the network almost all the time, so two workers
/// serve it as well as one per core would, and the process does not grow with the host.
const WORKER_THREADS: usize = 2;
/// Threads for blocking work (credential helpers, file reads): a few at a time is all we need.
const MAX_BLOCKING_THREADS: usize = 8;

fn main() -> ExitCode {
    server::memory::tune();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match &cli.command {
        Command::Serve(_) | Command::Call(_) | Command::Check(_) => "warn",
        _ => "info",
    };
    init_tracing(default_log);
    let outcome = match cli.command {
        Command::Serve(a) => commands::serve(a).await.map(|()| true),
        Command::Sim(a) => commands::run_sim(a).await.map(|()| true),
        Command::Check(a) => commands::check(a).await,
        Command::Tools(a) => commands::tools(a).map(|()| true),
        Command::Call(a) => commands::call(a).await,
        Command::Rbac(RbacCommand::Bootstrap(a)) => commands::bootstrap(a).await,
        Command::ConfigSchema => serde_json::to_string_pretty(&config::json_schema())
            .map(|s| println!("{s}"))
            .map(|()| true)
            .map_err(Into::into),
        Command::ProfileSchema => {
            serde_json::to_string_pretty(&config::profile::profile_json_schema())
                .map(|s| println!("{s}"))
                .map(|()| true)
                .map_err(Into::into)
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

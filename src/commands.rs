//! The commands `main.rs` hands over to, one function each: build the context or the
//! simulator session, call into `server`, `ops` or `sim`, print. Part of the binary, not the
//! library; with `main.rs` the only place `anyhow` is used.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use proxmox_manager::{config, ops, server, sim, sim_session};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::{
    BootstrapArgs, CallArgs, FilterArgs, ServeArgs, SimArgs, TargetArgs, ToolsArgs, Transport,
};

/// A running target: the operation context, and the simulator when it is in-process.
struct Target {
    ctx: ops::Context,
    sim: Option<sim::SimHandle>,
}

fn sim_options(args: &TargetArgs, scenario: &str) -> sim_session::SimSessionOptions {
    sim_session::SimSessionOptions {
        scenario: scenario.to_string(),
        time_scale: args.sim_time_scale,
        config: args.config.clone(),
        state_dir: None,
    }
}

async fn target(args: &TargetArgs) -> Result<Target> {
    if let Some(scenario) = &args.sim {
        let session = sim_session::start(&sim_options(args, scenario))
            .await
            .map_err(|e| anyhow!(e))?;
        let mut ctx = session.context().map_err(|e| anyhow!("{e}"))?;
        ctx.timeouts = args.timeouts();
        return Ok(Target {
            ctx,
            sim: Some(session.handle),
        });
    }
    let path = config::locate(args.config.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let cfg = config::load(&path).map_err(|e| anyhow!("{e}"))?;
    // `pass` may prompt gpg-agent and wait: keep it off the async workers.
    let mut ctx = tokio::task::spawn_blocking(move || ops::from_config(cfg))
        .await?
        .map_err(|e| anyhow!("{e}"))?;
    ctx.timeouts = args.timeouts();
    Ok(Target { ctx, sim: None })
}

fn filter(args: &FilterArgs) -> server::ToolFilter {
    server::ToolFilter {
        toolsets: args.toolsets.clone(),
        read_only: args.read_only,
    }
}

fn http_token(args: &ServeArgs) -> Result<Option<SecretString>> {
    if let Some(file) = &args.token_file {
        let t = std::fs::read_to_string(file)
            .with_context(|| format!("reading the HTTP token file {}", file.display()))?;
        if t.trim().is_empty() {
            bail!("the HTTP token file {} is empty", file.display());
        }
        let token = SecretString::from(t.trim().to_string());
        warn_token(&token, Some(file));
        return Ok(Some(token));
    }
    let token = std::env::var("PROXMOX_MANAGER_HTTP_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(SecretString::from);
    if let Some(t) = &token {
        warn_token(t, None);
    }
    Ok(token)
}

fn warn_token(token: &SecretString, file: Option<&Path>) {
    for w in server::transport::warnings::token_warnings(token, file) {
        eprintln!("proxmox-manager: warning: {w}");
    }
}

pub(crate) async fn serve(args: ServeArgs) -> Result<()> {
    let token = match args.transport {
        Transport::Http => {
            let token = http_token(&args)?;
            server::http::validate_exposure(
                &args.listen,
                token.is_some(),
                args.no_auth,
                args.allow_remote,
            )
            .map_err(|e| anyhow!(e))?;
            token
        }
        Transport::Stdio => None,
    };
    let limits = args.http_limits()?;
    let mut t = target(&args.target).await?;
    if let Some(word) = &args.confirmations {
        let mode = config::ConfirmMode::parse(word).map_err(|e| anyhow!("--confirmations: {e}"))?;
        std::sync::Arc::make_mut(&mut t.ctx.config)
            .confirmations
            .mode = mode;
    }
    let t_sim_url = t.sim.as_ref().map(|h| format!("{}/api2/json", h.url()));
    let srv = server::ProxmoxServer::new(t.ctx, &filter(&args.filter)).map_err(|e| anyhow!(e))?;
    tokio::task::spawn_blocking(proxmox_manager::pve::warm_up_tls);
    match args.transport {
        Transport::Stdio => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                // A person ran it by hand: say what it is waiting for (stderr; stdout is MCP's).
                let target = match &t_sim_url {
                    Some(url) => format!("the simulated cluster at {url}"),
                    None => "the configured cluster".into(),
                };
                eprintln!(
                    "proxmox-manager {}: MCP server on stdio, managing {target}.\n\
                     Connect an MCP client to this command, e.g. `claude mcp add pve -- proxmox-manager serve --sim`,\n\
                     or try one tool from the shell: `proxmox-manager call cluster_status --sim`. Ctrl-D to quit.",
                    env!("CARGO_PKG_VERSION")
                );
            }
            server::transport::stdio::serve(srv, Default::default())
                .await
                .map_err(|e| anyhow!(e))?;
        }
        Transport::Http => {
            let shutdown = CancellationToken::new();
            let s2 = shutdown.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                s2.cancel();
            });
            let opts = server::http::HttpOptions {
                listen: args.listen,
                token,
                allowed_origins: args.allow_origin,
                allowed_hosts: args.allow_host,
                limits,
            };
            server::http::serve(srv, opts, shutdown)
                .await
                .with_context(|| format!("serving HTTP on {}", args.listen))?;
        }
    }
    Ok(())
}

pub(crate) async fn run_sim(args: SimArgs) -> Result<()> {
    let handle = if let Some((nodes, guests)) = args.generate {
        let scenario = sim::Scenario::generate(&sim::GenerateSpec {
            nodes,
            guests,
            seed: args.seed,
            ..sim::GenerateSpec::default()
        });
        if let Some(path) = &args.scenario_out {
            let yaml = scenario.to_yaml().map_err(|e| anyhow!(e))?;
            std::fs::write(path, yaml).with_context(|| format!("writing {}", path.display()))?;
            println!(
                "wrote a {nodes}-node, {guests}-guest cluster (seed {}) to {}; run it with `proxmox-manager sim --scenario {}` or `proxmox-manager serve --sim {}`",
                args.seed,
                path.display(),
                path.display(),
                path.display()
            );
            return Ok(());
        }
        sim_session::start_scenario(scenario, args.time_scale, args.listen)
            .await
            .map_err(|e| anyhow!(e))?
    } else {
        let scenario = args
            .scenario
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "embedded".into());
        sim_session::start_sim(&scenario, args.time_scale, args.listen)
            .await
            .map_err(|e| anyhow!(e))?
    };
    println!("simulated Proxmox VE cluster listening");
    println!("  url:          {}/api2/json", handle.url());
    println!("  fingerprint:  {}", handle.fingerprint());
    for (node, addr) in handle.ssh_nodes() {
        println!(
            "  ssh {node}:    root@{} -p {}   (host key {})",
            addr.ip(),
            addr.port(),
            handle.ssh_host_fingerprint(&node).unwrap_or_default()
        );
    }
    if let Some(path) = &args.ca_out {
        std::fs::write(path, handle.ca_pem())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  ca file:      {}", path.display());
    }
    for t in handle.tokens() {
        // These are throwaway secrets of an in-memory simulator, printed so it can be used.
        println!("  token:        {}={}   ({})", t.id, t.secret, t.note);
    }
    println!("press Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}

pub(crate) async fn check(args: TargetArgs) -> Result<bool> {
    let report = if let Some(scenario) = &args.sim {
        let session = sim_session::start(&sim_options(&args, scenario))
            .await
            .map_err(|e| anyhow!(e))?;
        ops::check(
            session.config.clone(),
            Ok(session.credential.clone()),
            Ok(Some(session.shell.clone())),
            &server::tool_specs(),
        )
        .await
    } else {
        let mut report = ops::CheckReport {
            ok: true,
            items: vec![],
        };
        let loaded = match config::locate(args.config.as_deref()) {
            Ok(path) => config::load(&path),
            Err(e) => Err(e),
        };
        match loaded {
            Err(e) => {
                report.push("config", ops::CheckStatus::Fail, e.to_string(), None);
                report
            }
            Ok(cfg) => {
                let for_pass = cfg.clone();
                // `pass` may wait on gpg-agent: keep it off the async workers.
                let (cred, passphrase) = tokio::task::spawn_blocking(move || {
                    (
                        config::credentials::resolve(&for_pass).map_err(|e| e.to_string()),
                        config::credentials::ssh_passphrase(&for_pass, &config::process_env),
                    )
                })
                .await?;
                let shell = passphrase
                    .map(|p| ops::NodeShell::from_config(&cfg, p).map(std::sync::Arc::new))
                    .map_err(|e| e.to_string());
                ops::check(cfg, cred, shell, &server::tool_specs()).await
            }
        }
    };
    for item in &report.items {
        let mark = match item.status {
            ops::CheckStatus::Ok => "ok  ",
            ops::CheckStatus::Warn => "warn",
            ops::CheckStatus::Fail => "FAIL",
        };
        println!("[{mark}] {}: {}", item.name, item.detail);
        if let Some(fix) = &item.fix {
            println!("       fix: {fix}");
        }
    }
    Ok(report.ok)
}

pub(crate) fn tools(args: ToolsArgs) -> Result<()> {
    let cat = server::Catalogue::full();
    if let Some(dir) = args.write {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("README.md"), server::render_markdown(&cat))?;
        std::fs::write(dir.join("tools.json"), server::snapshot_json(&cat))?;
        eprintln!(
            "wrote {} and {}",
            dir.join("README.md").display(),
            dir.join("tools.json").display()
        );
    } else if args.json {
        print!("{}", server::snapshot_json(&cat));
    } else {
        print!("{}", server::render_markdown(&cat));
    }
    Ok(())
}

pub(crate) async fn call(args: CallArgs) -> Result<bool> {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    let arguments: serde_json::Value =
        serde_json::from_str(&args.json).context("the tool arguments are not valid JSON")?;
    let serde_json::Value::Object(arguments) = arguments else {
        bail!("the tool arguments must be a JSON object")
    };
    let t = target(&args.target).await?;
    let srv = server::ProxmoxServer::new(t.ctx, &filter(&args.filter)).map_err(|e| anyhow!(e))?;
    // The same path a client takes: an MCP session over an in-memory pipe.
    let (a, b) = tokio::io::duplex(1 << 20);
    let server_task = tokio::spawn(async move {
        if let Ok(running) = srv.serve(a).await {
            let _ = running.waiting().await;
        }
    });
    let client = ().serve(b).await.context("starting the in-process MCP session")?;
    let result = client
        .call_tool(CallToolRequestParams::new(args.tool.clone()).with_arguments(arguments))
        .await;
    let _ = client.cancel().await;
    server_task.abort();
    let result = result.map_err(|e| anyhow!("tool {}: {e}", args.tool))?;
    let failed = result.is_error == Some(true);
    if let (false, Some(v)) = (failed, &result.structured_content) {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        for c in &result.content {
            if let Some(text) = c.as_text() {
                if failed {
                    eprintln!("{}", text.text)
                } else {
                    println!("{}", text.text)
                }
            }
        }
    }
    Ok(!failed)
}

/// `rbac bootstrap`: needs the config (SSH, pass entry) but no API token — it makes one.
pub(crate) async fn bootstrap(a: BootstrapArgs) -> Result<bool> {
    let path = config::locate(a.config.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let cfg = config::load(&path).map_err(|e| anyhow!("{e}"))?;
    let for_pass = cfg.clone();
    let passphrase = tokio::task::spawn_blocking(move || {
        config::credentials::ssh_passphrase(&for_pass, &config::process_env)
    })
    .await?
    .map_err(|e| anyhow!("{e}"))?;
    let shell = ops::NodeShell::from_config(&cfg, passphrase);
    let args = ops::RbacBootstrapArgs {
        node: a.node,
        user: a.user,
        token_name: a.token_name,
        role: a.role,
        rotate: a.rotate,
        enable_api_import: a.enable_api_import,
        confirm: !a.dry_run,
    };
    let run = ops::Run::default();
    let result = ops::rbac_bootstrap(&cfg, shell.as_ref(), &run, &args).await;
    if !a.dry_run {
        // The same record the `rbac_bootstrap` tool writes (a dry run changes nothing).
        ops::audit::AuditLog::new(cfg.audit_log.as_deref()).record_result(
            "rbac_bootstrap",
            &serde_json::to_value(&args).unwrap_or_default(),
            &[],
            result.as_ref().map(|_| ()),
        );
    }
    let report = result.map_err(|e| anyhow!("{e}"))?;
    println!(
        "rbac bootstrap on {} (PVE {}):",
        report.node, report.pve_version
    );
    for s in &report.steps {
        println!("  {:<5} {:<7} {}", s.step, s.action, s.detail);
    }
    for n in &report.notes {
        println!("  note: {n}");
    }
    println!("{}", report.message);
    Ok(true)
}

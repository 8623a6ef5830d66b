//! The Talos and Flux phases of a spin-up, each resumable from the profile's state directory:
//! `talosctl gen secrets` (kept, so a rebuild can reuse them), `gen config` with the profile's
//! endpoint and CIDRs as a config patch, `apply-config` per guest and role, `bootstrap` on the
//! first control-plane node, `health`, `kubeconfig`; then `flux bootstrap git`.
//!
//! Every file holding secrets (secrets.yaml, controlplane.yaml, worker.yaml, talosconfig,
//! kubeconfig) is 0600 in a 0700 directory; the programs get their paths, never their contents.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::profile::{ClusterProfile, Role};
use crate::ops::batch::{BatchLimits, Outcome as StepOutcome, Policy, Step, run_batch};
use crate::ops::{Error, Run};

use super::external::{Exec, Program, Redactor, RunLog};
use super::plan::PlannedGuest;
use super::store::{private_dir, private_file, write_private};

/// What is done of the Talos/Flux phases (`state.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TalosState {
    /// Guests whose configuration was applied, by vmid.
    #[serde(default)]
    pub applied: BTreeSet<u32>,
    #[serde(default)]
    pub bootstrapped: bool,
    #[serde(default)]
    pub healthy: bool,
    #[serde(default)]
    pub flux: bool,
    /// The addresses found for each guest.
    #[serde(default)]
    pub addresses: BTreeMap<u32, String>,
}

/// The files of a profile's state directory.
#[derive(Debug, Clone)]
pub struct StateFiles {
    pub dir: PathBuf,
}

impl StateFiles {
    pub fn new(dir: PathBuf) -> StateFiles {
        StateFiles { dir }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn secrets(&self) -> PathBuf {
        self.dir.join("secrets.yaml")
    }
    pub fn patch(&self) -> PathBuf {
        self.dir.join("patch.yaml")
    }
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }
    pub fn machine_config(&self, role: Role) -> PathBuf {
        self.config_dir().join(match role {
            Role::Controlplane => "controlplane.yaml",
            Role::Worker => "worker.yaml",
        })
    }
    pub fn talosconfig(&self) -> PathBuf {
        self.config_dir().join("talosconfig")
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
    pub fn runs(&self) -> PathBuf {
        self.dir.join("runs")
    }
    fn configs_complete(&self) -> bool {
        [
            self.machine_config(Role::Controlplane),
            self.machine_config(Role::Worker),
            self.talosconfig(),
        ]
        .iter()
        .all(|p| p.is_file())
    }

    pub fn load(&self) -> TalosState {
        std::fs::read_to_string(self.state())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, s: &TalosState) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(s).unwrap_or_default();
        write_private(&self.state(), &text).map_err(|e| io_error(&self.state(), &e))
    }

    /// Teaches the redactor every secret file that exists.
    pub fn learn(&self, r: &Redactor) {
        for f in [
            self.secrets(),
            self.machine_config(Role::Controlplane),
            self.machine_config(Role::Worker),
            self.talosconfig(),
            self.kubeconfig(),
        ] {
            r.learn_file(&f);
        }
    }
}

pub(crate) fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Setup(format!(
        "{}: {e}; check the permissions of the state directory",
        path.display()
    ))
}

/// One phase's outcome, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseResult {
    pub name: String,
    /// `planned`, `done`, `already_done`, `skipped`, `failed`, `not_reached`.
    pub status: String,
    pub detail: String,
}

impl PhaseResult {
    pub fn new(name: &str, status: &str, detail: impl Into<String>) -> PhaseResult {
        PhaseResult {
            name: name.to_string(),
            status: status.to_string(),
            detail: detail.into(),
        }
    }
}

/// The Talos phase names, in order.
pub const TALOS_PHASES: [&str; 6] = [
    "talos_secrets",
    "talos_config",
    "talos_apply",
    "talos_bootstrap",
    "talos_health",
    "kubeconfig",
];

/// Everything the Talos phases share.
pub struct TalosRun<'a> {
    pub run: &'a Run,
    pub profile: &'a ClusterProfile,
    pub files: &'a StateFiles,
    pub log: &'a RunLog,
    pub redactor: &'a Redactor,
    pub talosctl: PathBuf,
    pub flux: Option<PathBuf>,
    pub limits: BatchLimits,
}

impl TalosRun<'_> {
    fn exec(&self, program: Program, path: &Path, timeout: Duration) -> Exec<'_> {
        Exec {
            run: self.run,
            log: self.log,
            redactor: self.redactor,
            program,
            path: path.to_path_buf(),
            env: vec![],
            timeout,
        }
    }

    /// Runs the Talos phases (and Flux) from the first unfinished one. `guests` carry their
    /// addresses.
    ///
    /// # Errors
    /// The first failing phase, naming the guest and the command to retry.
    pub async fn execute(
        &self,
        guests: &[(PlannedGuest, String)],
        phases: &mut Vec<PhaseResult>,
    ) -> Result<(), Error> {
        let f = self.files;
        private_dir(&f.dir).map_err(|e| io_error(&f.dir, &e))?;
        let mut state = f.load();
        for (g, ip) in guests {
            state.addresses.insert(g.vmid, ip.clone());
        }
        f.save(&state)?;
        let talosctl = self.talosctl.clone();
        let t = |timeout| self.exec(Program::Talosctl, &talosctl, timeout);
        let short = Duration::from_secs(120);

        // 1. secrets
        if f.secrets().is_file() {
            phases.push(PhaseResult::new(
                "talos_secrets",
                "already_done",
                "secrets.yaml kept from an earlier run",
            ));
        } else {
            self.run
                .note("phase talos_secrets: generating the cluster secrets");
            t(short)
                .run(&[os("gen"), os("secrets"), os("-o"), f.secrets().into()])
                .await
                .map_err(|e| phase_error("talos_secrets", None, e))?;
            private_file(&f.secrets()).map_err(|e| io_error(&f.secrets(), &e))?;
            phases.push(PhaseResult::new(
                "talos_secrets",
                "done",
                "secrets.yaml written (0600)",
            ));
        }
        f.learn(self.redactor);

        // 2. machine configurations
        let endpoint = format!(
            "https://{}",
            self.profile
                .network
                .api_endpoint
                .clone()
                .unwrap_or_default()
        );
        if f.configs_complete() {
            phases.push(PhaseResult::new(
                "talos_config",
                "already_done",
                "configurations kept from an earlier run",
            ));
        } else {
            self.run
                .note("phase talos_config: generating the machine configurations");
            let _ = std::fs::remove_dir_all(f.config_dir());
            private_dir(&f.config_dir()).map_err(|e| io_error(&f.config_dir(), &e))?;
            write_private(&f.patch(), &config_patch(self.profile))
                .map_err(|e| io_error(&f.patch(), &e))?;
            let mut patch = OsString::from("@");
            patch.push(f.patch());
            t(short)
                .run(&[
                    os("gen"),
                    os("config"),
                    os(&self.profile.name),
                    os(&endpoint),
                    os("--with-secrets"),
                    f.secrets().into(),
                    os("--config-patch"),
                    patch,
                    os("--output"),
                    f.config_dir().into(),
                ])
                .await
                .map_err(|e| phase_error("talos_config", None, e))?;
            for p in [
                f.machine_config(Role::Controlplane),
                f.machine_config(Role::Worker),
                f.talosconfig(),
            ] {
                private_file(&p).map_err(|e| io_error(&p, &e))?;
            }
            phases.push(PhaseResult::new(
                "talos_config",
                "done",
                format!("controlplane.yaml, worker.yaml and talosconfig for {endpoint}"),
            ));
        }
        f.learn(self.redactor);

        // 3. apply-config, per guest, in parallel within the limits
        let pending: Vec<&(PlannedGuest, String)> = guests
            .iter()
            .filter(|(g, _)| !state.applied.contains(&g.vmid))
            .collect();
        if pending.is_empty() {
            phases.push(PhaseResult::new(
                "talos_apply",
                "already_done",
                "every guest has its configuration",
            ));
        } else {
            self.run.note(format!(
                "phase talos_apply: applying the configuration to {} guest(s)",
                pending.len()
            ));
            let shared = Arc::new(Mutex::new(state.clone()));
            let steps: Vec<Step<()>> =
                pending
                    .iter()
                    .map(|(g, ip)| {
                        let args = vec![
                            os("apply-config"),
                            os("--insecure"),
                            os("--nodes"),
                            os(ip),
                            os("--file"),
                            f.machine_config(g.role).into(),
                        ];
                        let exec = Exec {
                            run: self.run,
                            log: self.log,
                            redactor: self.redactor,
                            program: Program::Talosctl,
                            path: talosctl.clone(),
                            env: vec![],
                            timeout: short,
                        };
                        let shown = exec.shown(&args);
                        let (vmid, name) = (g.vmid, g.name.clone());
                        let shared = Arc::clone(&shared);
                        let files = f.clone();
                        // The executor's steps are 'static: each gets its own copy of what it needs.
                        let owned = OwnedExec::from(&exec);
                        Step::new(
                            format!("{vmid} {name}"),
                            Some(&g.node),
                            async move |run: Run| {
                                owned.with_run(&run).run(&args).await.map_err(|e| {
                                    Error::refused(format!("{e} (retry: `{shown}`)"))
                                })?;
                                let mut s = shared
                                    .lock()
                                    .map_err(|_| Error::Setup("state lock".into()))?;
                                s.applied.insert(vmid);
                                files.save(&s)
                            },
                        )
                    })
                    .collect();
            let batch = run_batch(steps, self.limits, Policy::Continue, self.run).await;
            state = shared.lock().map(|s| s.clone()).unwrap_or(state);
            let failed: Vec<String> = batch
                .results
                .iter()
                .filter_map(|r| match &r.outcome {
                    StepOutcome::Failed { error } => Some(format!("{}: {error}", r.label)),
                    StepOutcome::NotStarted { reason } => {
                        Some(format!("{}: not started ({reason})", r.label))
                    }
                    StepOutcome::Done { .. } => None,
                })
                .collect();
            if !failed.is_empty() {
                phases.push(PhaseResult::new("talos_apply", "failed", failed.join("; ")));
                return Err(Error::refused(format!(
                    "phase talos_apply failed on {}; the other guests have their configuration. Fix the cause and call profile_up again with confirm: true: it continues with the guests still missing",
                    failed.join("; ")
                )));
            }
            phases.push(PhaseResult::new(
                "talos_apply",
                "done",
                format!("{} guest(s) configured", pending.len()),
            ));
        }

        // 4. bootstrap etcd on the first control-plane node
        let Some((cp, cp_ip)) = guests.iter().find(|(g, _)| g.role == Role::Controlplane) else {
            return Err(Error::refused("the profile has no control-plane guest"));
        };
        let talosconfig: OsString = f.talosconfig().into();
        let on_cp = |args: &mut Vec<OsString>| {
            args.extend([
                os("--nodes"),
                os(cp_ip),
                os("--endpoints"),
                os(cp_ip),
                os("--talosconfig"),
                talosconfig.clone(),
            ]);
        };
        if state.bootstrapped {
            phases.push(PhaseResult::new(
                "talos_bootstrap",
                "already_done",
                format!("etcd was bootstrapped on {}", cp.name),
            ));
        } else {
            self.run.note(format!(
                "phase talos_bootstrap: bootstrapping etcd on {} ({cp_ip})",
                cp.name
            ));
            let mut args = vec![os("bootstrap")];
            on_cp(&mut args);
            t(short)
                .run(&args)
                .await
                .map_err(|e| phase_error("talos_bootstrap", Some(&cp.name), e))?;
            state.bootstrapped = true;
            f.save(&state)?;
            phases.push(PhaseResult::new(
                "talos_bootstrap",
                "done",
                format!("etcd bootstrapped on {}", cp.name),
            ));
        }

        // 5. health
        if state.healthy {
            phases.push(PhaseResult::new(
                "talos_health",
                "already_done",
                "the cluster was healthy",
            ));
        } else {
            self.run
                .note("phase talos_health: waiting for the cluster to be healthy");
            let mut args = vec![os("health")];
            on_cp(&mut args);
            args.extend([os("--wait-timeout"), os("10m")]);
            t(Duration::from_secs(11 * 60))
                .run(&args)
                .await
                .map_err(|e| phase_error("talos_health", Some(&cp.name), e))?;
            state.healthy = true;
            f.save(&state)?;
            phases.push(PhaseResult::new(
                "talos_health",
                "done",
                "etcd, kubelet and the API server are healthy",
            ));
        }

        // 6. kubeconfig
        if f.kubeconfig().is_file() {
            phases.push(PhaseResult::new(
                "kubeconfig",
                "already_done",
                "kubeconfig kept",
            ));
        } else {
            self.run
                .note("phase kubeconfig: fetching the admin kubeconfig");
            let mut args = vec![os("kubeconfig"), f.kubeconfig().into()];
            on_cp(&mut args);
            args.push(os("--force"));
            t(short)
                .run(&args)
                .await
                .map_err(|e| phase_error("kubeconfig", Some(&cp.name), e))?;
            private_file(&f.kubeconfig()).map_err(|e| io_error(&f.kubeconfig(), &e))?;
            phases.push(PhaseResult::new(
                "kubeconfig",
                "done",
                "kubeconfig written (0600)",
            ));
        }
        f.learn(self.redactor);

        // 7. flux
        if let Some(flux) = &self.profile.flux {
            if state.flux {
                phases.push(PhaseResult::new(
                    "flux",
                    "already_done",
                    "Flux was bootstrapped",
                ));
            } else if let Some(path) = &self.flux {
                self.run.note(format!(
                    "phase flux: bootstrapping Flux from {} {}",
                    flux.repo, flux.path
                ));
                let args = vec![
                    os("bootstrap"),
                    os("git"),
                    os(&format!("--url={}", flux.url())),
                    os(&format!("--branch={}", flux.branch)),
                    os(&format!("--path={}", flux.path)),
                    os("--silent"),
                    os("--kubeconfig"),
                    f.kubeconfig().into(),
                ];
                self.exec(Program::Flux, path, Duration::from_secs(15 * 60))
                    .run(&args)
                    .await
                    .map_err(|e| phase_error("flux", None, e))?;
                state.flux = true;
                f.save(&state)?;
                phases.push(PhaseResult::new(
                    "flux",
                    "done",
                    format!("Flux reconciles {} from {}", flux.path, flux.repo),
                ));
            } else {
                phases.push(PhaseResult::new(
                    "flux",
                    "skipped",
                    Program::Flux.install_hint(),
                ));
            }
        }
        Ok(())
    }
}

/// An [`Exec`] whose borrowed parts are owned, for a `'static` batch step.
struct OwnedExec {
    log: RunLog,
    redactor: Redactor,
    program: Program,
    path: PathBuf,
    timeout: Duration,
}

impl OwnedExec {
    fn from(e: &Exec<'_>) -> OwnedExec {
        OwnedExec {
            log: e.log.clone(),
            redactor: e.redactor.clone(),
            program: e.program,
            path: e.path.clone(),
            timeout: e.timeout,
        }
    }
    fn with_run<'a>(&'a self, run: &'a Run) -> Exec<'a> {
        Exec {
            run,
            log: &self.log,
            redactor: &self.redactor,
            program: self.program,
            path: self.path.clone(),
            env: vec![],
            timeout: self.timeout,
        }
    }
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

/// A phase's failure, naming the phase and the guest.
fn phase_error(phase: &str, guest: Option<&str>, e: Error) -> Error {
    let on = guest.map(|g| format!(" on {g}")).unwrap_or_default();
    Error::refused(format!(
        "phase {phase}{on} failed: {e}. Fix the cause and call profile_up again with confirm: true: it continues at this phase"
    ))
}

/// The config patch: the profile's pod and service networks.
pub fn config_patch(p: &ClusterProfile) -> String {
    let mut s = String::from("cluster:\n  network:\n");
    if let Some(c) = p.network.pod_cidr {
        s.push_str(&format!("    podSubnets:\n      - {c}\n"));
    }
    if let Some(c) = p.network.service_cidr {
        s.push_str(&format!("    serviceSubnets:\n      - {c}\n"));
    }
    s
}

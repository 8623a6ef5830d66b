//! The isolation rules across profiles (pure): no pod, service or node CIDR of one profile
//! overlaps any of another's; no profile's tag set is contained in another's (a tear-down by
//! tags would then take the other cluster's guests too); Flux paths in the same repository are
//! distinct. And the rules against the cluster, on facts read beforehand: the template exists,
//! is a template and suits the type; the VMID range has room; the nodes have the capacity.

use crate::config::profile::{ClusterProfile, ProfileKind, ProfileProblem};

use super::plan::{ProfilePlan, TemplateFacts};

/// Problems of `p` against every profile of `others` (the profile itself is skipped by name).
pub fn isolation(p: &ClusterProfile, others: &[&ClusterProfile]) -> Vec<ProfileProblem> {
    let mut out = Vec::new();
    for o in others.iter().filter(|o| o.name != p.name) {
        for (key, mine) in p.cidrs() {
            for (okey, theirs) in o.cidrs() {
                if mine.overlaps(&theirs) {
                    out.push(p.problem(
                        key,
                        format!(
                            "{key} {mine} overlaps {okey} {theirs} of profile {} ({}); give each cluster its own networks",
                            o.name, o.origin
                        ),
                    ));
                }
            }
        }
        let contained = p.tags.iter().all(|t| o.tags.contains(t));
        if contained {
            out.push(p.problem(
                "tags",
                format!(
                    "the tags [{}] do not identify this cluster alone: every guest of profile {} (tags [{}]) carries them too, so a tear-down would take its guests; add a tag of this cluster's own",
                    p.tags.join(", "),
                    o.name,
                    o.tags.join(", ")
                ),
            ));
        }
        if let (Some(a), Some(b)) = (&p.flux, &o.flux)
            && a.url() == b.url()
            && a.path == b.path
        {
            out.push(p.problem(
                "flux.path",
                format!(
                    "flux path {} in {} is also profile {}'s; each cluster needs its own path in the repository",
                    a.path, a.repo, o.name
                ),
            ));
        }
    }
    out
}

/// Whether a template suits the profile's type: a Talos profile needs a Talos image (a
/// template tagged or named `talos`), a `vms` profile a cloud-init one (not Talos).
pub fn template_problem(p: &ClusterProfile, t: &TemplateFacts) -> Option<String> {
    if t.container {
        return Some(format!(
            "{} ({}) is a container template; a profile's guests are cloned from a VM template (cloud-init or Talos), containers are made one by one with ct_create",
            t.vmid, t.name
        ));
    }
    let talos = t.tags.iter().any(|x| x == "talos") || t.name.to_lowercase().contains("talos");
    match (p.kind, talos) {
        (ProfileKind::Talos, false) => Some(format!(
            "template {} ({}) is not a Talos image (neither tagged nor named talos); type: talos needs one — build it with the create-iso-template or import-qcow2-template runbook from a Talos nocloud image",
            t.vmid, t.name
        )),
        (ProfileKind::Vms, true) => Some(format!(
            "template {} ({}) is a Talos image; type: vms needs a cloud-init image such as ubuntu-noble",
            t.vmid, t.name
        )),
        _ => None,
    }
}

/// The plan's problems as problems of the profile (range, capacity).
pub fn plan_problems(p: &ClusterProfile, plan: &ProfilePlan) -> Vec<ProfileProblem> {
    let mut out: Vec<ProfileProblem> = plan
        .problems
        .iter()
        .map(|m| p.problem("nodes", m.clone()))
        .collect();
    for u in &plan.unplaceable {
        let why: Vec<String> = u
            .rejected
            .iter()
            .map(|r| format!("{}: {}", r.node, rejection_text(&r.rejection)))
            .collect();
        out.push(p.problem(
            "nodes",
            format!(
                "{} fits on no node with placement: spread ({}); lower cores/memory/count or free capacity",
                u.name,
                why.join("; ")
            ),
        ));
    }
    out
}

fn rejection_text(r: &crate::ops::plan::Rejection) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| {
            let o = v.as_object()?;
            let reason = o.get("reason")?.as_str()?.replace('_', " ");
            let rest: Vec<String> = o
                .iter()
                .filter(|(k, _)| *k != "reason")
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            Some(if rest.is_empty() {
                reason
            } else {
                format!("{reason} ({})", rest.join(", "))
            })
        })
        .unwrap_or_else(|| "no room".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::profile::parse_profile;

    fn p(name: &str, pod: &str, tags: &str, flux: &str) -> ClusterProfile {
        let text = format!(
            "name: {name}\ntype: talos\nnetwork:\n  api_endpoint: x.example:6443\n  pod_cidr: {pod}\n  service_cidr: 10.{}.0.0/16\nnodes:\n  controlplane:\n    count: 1\n    cores: 2\n    memory: 2048\n    disk: 10G\ntemplate: 101\ntags: {tags}\n{flux}",
            if name == "a" { 200 } else { 201 }
        );
        parse_profile(&text, &format!("{name}.yaml"), name).expect("valid")
    }

    #[test]
    fn each_isolation_rule_is_caught() {
        let flux = "flux:\n  repo: git@github.com:o/fleet.git\n  path: clusters/x\n";
        let a = p("a", "10.1.0.0/16", "[talos, a]", flux);
        let b = p("b", "10.1.128.0/17", "[talos, a, b]", flux);
        let found = isolation(&a, &[&a, &b]);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("a.yaml:5: ") && t.contains("overlaps")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("a.yaml:14: ") && t.contains("tear-down")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("flux path clusters/x")),
            "{text:?}"
        );
        // b's tags are a superset of a's: b itself is identified alone.
        let c = p("b", "10.9.0.0/16", "[talos, a, b]", "");
        assert!(isolation(&c, &[&a, &c]).is_empty());
    }
}

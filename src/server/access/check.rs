//! Toolset `access`: the token's privileges per toolset.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{tool, tool_router};

use crate::ops::{self, AccessCheckReport};

use crate::server::{NoArgs, ProxmoxServer, tool_error};

#[tool_router(router = access_router, vis = "pub(crate)")]
impl ProxmoxServer {
    /// What the configured API token may do, per toolset: each tool ready or not, the
    /// privileges it lacks and on which path, the `pveum role modify ClaudeCodeManager` command
    /// that grants them, and which operations fall back to SSH on a node (image downloads)
    /// and why. Read this before a write tool PVE might refuse.
    #[tool(
        name = "access_check",
        annotations(
            title = "Check the token's privileges",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn access_check(
        &self,
        Parameters(_): Parameters<NoArgs>,
    ) -> Result<Json<AccessCheckReport>, String> {
        ops::access_check(&self.ctx)
            .await
            .map(Json)
            .map_err(tool_error)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::TOOL_NEEDS;
    use crate::server::TOOLSETS;

    /// The privilege table covers exactly the tools of each toolset.
    #[test]
    fn the_privilege_table_matches_the_toolsets() {
        for set in TOOLSETS {
            let needs = TOOL_NEEDS
                .iter()
                .find(|n| n.toolset == set.name)
                .unwrap_or_else(|| panic!("no privilege entry for toolset {}", set.name));
            let mut listed: Vec<&str> = needs.tools.iter().map(|t| t.tool).collect();
            let mut want: Vec<&str> = set.tools.to_vec();
            listed.sort_unstable();
            want.sort_unstable();
            assert_eq!(listed, want, "toolset {}", set.name);
        }
        assert_eq!(TOOL_NEEDS.len(), TOOLSETS.len());
    }
}

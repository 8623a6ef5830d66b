//! An rmcp client that declares form elicitation and answers the server's
//! `elicitation/create` the way a test tells it (accept with content, decline, cancel, never),
//! recording every question (message and requested schema).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction,
    Implementation,
};
use rmcp::service::{RequestContext, RunningService};

use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::Value;

/// How the person answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// Accept with this form content.
    Accept(Value),
    Decline,
    Cancel,
    /// Never answers (the server's timeout ends it).
    Never,
}

/// One question the server asked.
#[derive(Clone, Debug)]
pub struct Asked {
    pub message: String,
    /// The requested schema as it came over the wire.
    pub schema: Value,
}

#[derive(Clone)]
pub struct Person {
    pub answer: Arc<Mutex<Answer>>,
    pub asked: Arc<Mutex<Vec<Asked>>>,
}

impl Person {
    pub fn new(answer: Answer) -> Person {
        Person {
            answer: Arc::new(Mutex::new(answer)),
            asked: Arc::default(),
        }
    }

    pub fn will(&self, answer: Answer) {
        *self.answer.lock().expect("lock") = answer;
    }

    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().expect("lock").clone()
    }
}

impl ClientHandler for Person {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("elicit-test", "1"),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let wire = serde_json::to_value(&request).unwrap_or_default();
        if let ElicitRequestParams::FormElicitationParams { message, .. } = &request {
            self.asked.lock().expect("lock").push(Asked {
                message: message.clone(),
                schema: wire["requestedSchema"].clone(),
            });
        }
        let answer = self.answer.lock().expect("lock").clone();
        match answer {
            Answer::Accept(content) => {
                Ok(ElicitResult::new(ElicitationAction::Accept).with_content(content))
            }
            Answer::Decline => Ok(ElicitResult::new(ElicitationAction::Decline)),
            Answer::Cancel => Ok(ElicitResult::new(ElicitationAction::Cancel)),
            Answer::Never => std::future::pending().await,
        }
    }
}

pub type Client = RunningService<RoleClient, Person>;

/// Spawns `serve --config CONFIG` (plus `extra`) like [`super::mcp::connect`], as a client
/// that can elicit.
pub async fn connect(
    config: &Path,
    token: &str,
    state_dir: &Path,
    extra: &[&str],
    person: Person,
) -> Client {
    let transport = super::mcp::spawn_server(config, token, state_dir, extra);
    person.serve(transport).await.expect("MCP handshake")
}

/// Calls a tool; returns (is_error, structured content, text).
pub async fn call(client: &Client, tool: &str, args: Value) -> (bool, Value, String) {
    let Value::Object(args) = args else {
        panic!("args must be an object")
    };
    let params = rmcp::model::CallToolRequestParams::new(tool.to_string()).with_arguments(args);
    let r = client.call_tool(params).await.expect("call_tool");
    let text = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    (
        r.is_error == Some(true),
        r.structured_content.unwrap_or(Value::Null),
        text,
    )
}

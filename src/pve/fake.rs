//! An in-memory stand-in for a PVE node, for unit tests of operations: scripted answers per
//! `METHOD path`, in PVE's envelope, with every request recorded. It is a [`Transport`], so
//! the real [`Client`] (decoding, errors, GET retries) runs above it, and tests can use
//! tokio's paused time because nothing waits on a socket.
//!
//! This is not the simulator (`crate::sim`, a faithful stateful cluster over HTTPS); it only
//! says what a test scripts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::client::{Client, Transport};
use super::token::ApiToken;

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub params: Vec<(String, String)>,
}

type Handler = Box<dyn Fn(&Request) -> (u16, Value) + Send + Sync>;

#[derive(Default)]
struct State {
    /// Answers used once each, in order, before the route's standing answer.
    queued: HashMap<String, VecDeque<(u16, Value)>>,
    routes: HashMap<String, Handler>,
    log: Vec<Request>,
}

/// The fake node. Clone it to keep a handle for assertions after giving one to a client.
#[derive(Clone, Default)]
pub struct FakePve {
    state: Arc<Mutex<State>>,
}

fn key(method: &str, path: &str) -> String {
    format!("{method} {path}")
}

impl FakePve {
    pub fn new() -> Self {
        Self::default()
    }

    /// `data` for every `METHOD path` request (HTTP 200, `{"data": data}`).
    pub fn on(&self, method: &str, path: &str, data: Value) -> &Self {
        self.on_with(method, path, move |_| (200, json!({ "data": data })))
    }

    /// A computed answer: status and whole body.
    pub fn on_with(
        &self,
        method: &str,
        path: &str,
        f: impl Fn(&Request) -> (u16, Value) + Send + Sync + 'static,
    ) -> &Self {
        if let Ok(mut s) = self.state.lock() {
            s.routes.insert(key(method, path), Box::new(f));
        }
        self
    }

    /// One answer for the next `METHOD path` request, before any standing one; PVE's error
    /// shape when `status` is not 2xx (`{"message": ..., "data": null}`).
    pub fn once(&self, method: &str, path: &str, status: u16, data_or_message: Value) -> &Self {
        let body = if (200..300).contains(&status) {
            json!({ "data": data_or_message })
        } else {
            json!({ "data": null, "message": data_or_message })
        };
        if let Ok(mut s) = self.state.lock() {
            s.queued
                .entry(key(method, path))
                .or_default()
                .push_back((status, body));
        }
        self
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }

    /// A client talking to this fake with a syntactically valid token.
    pub fn client(&self) -> Client {
        let token = ApiToken::new(
            "test@pve!fake".to_string(),
            secrecy::SecretString::from("00000000-0000-0000-0000-000000000000".to_string()),
        )
        .expect("a valid token id");
        Client::with_transport(token, Arc::new(self.clone()))
    }

    fn answer(&self, req: Request) -> (u16, Value) {
        let Ok(mut s) = self.state.lock() else {
            return (500, json!({ "data": null, "message": "fake poisoned" }));
        };
        let k = key(&req.method, &req.path);
        s.log.push(req.clone());
        if let Some(a) = s.queued.get_mut(&k).and_then(VecDeque::pop_front) {
            return a;
        }
        match s.routes.get(&k) {
            Some(f) => f(&req),
            None => (
                501,
                json!({ "data": null, "message": format!("Method '{k}' not implemented") }),
            ),
        }
    }
}

impl Transport for FakePve {
    fn send<'a>(
        &'a self,
        method: &'a str,
        path: &'a str,
        params: &'a [(&'a str, String)],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = (u16, Vec<u8>)> + Send + 'a>> {
        let req = Request {
            method: method.to_string(),
            path: path.to_string(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        let (status, body) = self.answer(req);
        Box::pin(async move { (status, serde_json::to_vec(&body).unwrap_or_default()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripted_answers_decode_through_the_real_client() {
        let fake = FakePve::new();
        fake.on(
            "GET",
            "/version",
            json!({"version": "9.1.1", "release": "9.1"}),
        );
        fake.once("GET", "/nodes/pve01/status", 595, json!("no route to host"));
        let c = fake.client();
        assert_eq!(c.get_version().await.expect("version").version, "9.1.1");
        let e = c
            .get::<Value>("/nodes/pve01/status", &[])
            .await
            .expect_err("595");
        assert!(e.to_string().contains("595"), "{e}");
        let e = c.get::<Value>("/nowhere", &[]).await.expect_err("501");
        assert!(e.to_string().contains("not implemented"), "{e}");
        assert_eq!(fake.requests().len(), 3);
    }
}

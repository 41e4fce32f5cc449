//! Shared fixtures: a real engine over a fresh vault in a temp folder, the real router in
//! front of it, one API key per built-in role, and a small request/reply vocabulary for
//! driving the router with `tower::ServiceExt::oneshot`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use discreet_engine::{Caller, Engine, EngineOptions};
use discreet_policy::Policy;
use discreet_server::AppState;
use discreet_vault::{Kek, KekRing, LedgerFilter, SqliteOptions, Vault, now_millis, rfc3339};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ROLES: [&str; 4] = ["admin", "storefront", "privacy", "analyst"];

/// The customer the tests personalise for.
pub const CUSTOMER: &str = "c-17850";

/// A server over its own engine and vault: the router, the engine behind it, and one key
/// per built-in role. Fields drop in order, so the temp folder goes last.
pub struct TestApp {
    pub app: Router,
    /// The state the router was built from (tests that serve it on a socket use it).
    pub state: AppState,
    pub engine: Engine,
    pub admin: String,
    pub storefront: String,
    pub privacy: String,
    pub analyst: String,
    /// Held for its drop, which deletes the folder.
    _dir: tempfile::TempDir,
}

/// Opens an engine over a fresh vault in `dir` (data in `data/`, the KEK beside it).
pub fn open_engine(dir: &std::path::Path, policy: Policy) -> Engine {
    let kek_file = dir.join("kek");
    let vault = Vault::open_sqlite(
        &SqliteOptions::new(dir.join("data"), Some(kek_file.clone())),
        KekRing::new(Kek::load_or_create_file(&kek_file).expect("KEK file")),
    )
    .expect("vault opens");
    Engine::new(policy, vault, EngineOptions::default()).expect("engine")
}

impl TestApp {
    /// The built-in retail policy, models rebuilt, default limits.
    pub fn new() -> TestApp {
        TestApp::build(Policy::builtin_retail(), true, |_| {})
    }

    /// A custom policy (it must declare an `admin` role for the operator to issue keys).
    pub fn with_policy(policy: Policy) -> TestApp {
        TestApp::build(policy, true, |_| {})
    }

    /// The built-in policy with the HTTP state adjusted (limits).
    pub fn with_state(adjust: impl FnOnce(&mut AppState)) -> TestApp {
        TestApp::build(Policy::builtin_retail(), true, adjust)
    }

    /// An engine whose start-up rebuild has not run yet.
    pub fn unready() -> TestApp {
        TestApp::build(Policy::builtin_retail(), false, |_| {})
    }

    fn build(policy: Policy, rebuild: bool, adjust: impl FnOnce(&mut AppState)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = open_engine(dir.path(), policy);
        if rebuild {
            engine.rebuild(&|_| {}).expect("rebuild");
        }
        let has_role = |role: &str| engine.policy().role(role).is_some();
        let issue = |role: &str| {
            if has_role(role) {
                engine
                    .create_api_key(&Caller::operator(), role, &format!("{role} key"))
                    .expect("key")
                    .secret
                    .to_string()
            } else {
                String::new()
            }
        };
        let admin = issue("admin");
        let storefront = issue("storefront");
        let privacy = issue("privacy");
        let analyst = issue("analyst");
        let mut state = AppState::new(engine.clone());
        adjust(&mut state);
        let app = discreet_server::router(state.clone());
        TestApp {
            app,
            state,
            engine,
            admin,
            storefront,
            privacy,
            analyst,
            _dir: dir,
        }
    }

    /// The secret of a built-in role's key.
    pub fn key(&self, role: &str) -> &str {
        match role {
            "admin" => &self.admin,
            "storefront" => &self.storefront,
            "privacy" => &self.privacy,
            "analyst" => &self.analyst,
            other => panic!("no key for role {other}"),
        }
    }

    /// Sends one request through the router.
    pub async fn send(&self, request: Req) -> Reply {
        send(&self.app, request).await
    }

    /// Ingests events through the engine as the operator (setup, not under test), and waits
    /// until the learner has taught them to the models.
    pub fn ingest(&self, events: Vec<Value>) {
        let events = discreet_server::wire::event_batch(
            &json!({ "events": events }),
            self.engine.max_batch_events(),
        )
        .expect("setup events are well formed");
        self.engine
            .ingest(&Caller::operator(), &events, None)
            .expect("setup ingest");
        self.engine.settle();
    }

    /// Records a consent decision through the engine as the operator (setup).
    pub fn consent(&self, subject: &str, purpose: &str, granted: bool) {
        self.engine
            .set_consent(&Caller::operator(), subject, purpose, granted, "test-setup")
            .expect("setup consent");
    }

    /// A small shop of consenting customers whose baskets overlap, and `CUSTOMER`, who
    /// consented and bought items A and B. Every item A..E is in the catalogue.
    pub fn seed_shop(&self) {
        let baskets: [(&str, &[&str]); 6] = [
            ("s-1", &["A", "B", "C"]),
            ("s-2", &["A", "B", "D"]),
            ("s-3", &["B", "C", "D"]),
            ("s-4", &["A", "C", "E"]),
            ("s-5", &["C", "D", "E"]),
            ("s-6", &["A", "B", "C", "D"]),
        ];
        let mut events = Vec::new();
        for (subject, items) in baskets {
            self.consent(subject, "personalization", true);
            for (hours, item) in items.iter().enumerate() {
                events.push(purchase(subject, item, 2 + hours as i64));
            }
        }
        self.consent(CUSTOMER, "personalization", true);
        events.push(purchase(CUSTOMER, "A", 5));
        events.push(view(CUSTOMER, "B", 4));
        self.ingest(events);
        self.engine.refresh_models();
    }

    /// Events stored and ledger entries written so far (buffered reads flushed first).
    pub fn stored(&self) -> (u64, usize) {
        self.engine.flush_access_log();
        (
            self.engine.vault().count_events().expect("count events"),
            self.ledger().len(),
        )
    }

    /// Every ledger entry, newest first (buffered reads flushed first).
    pub fn ledger(&self) -> Vec<discreet_vault::LedgerRecord> {
        self.engine.flush_access_log();
        self.engine
            .vault()
            .ledger(&LedgerFilter {
                subject_token: None,
                actor: None,
                since: None,
                until: None,
                before_seq: None,
                limit: 1_000_000,
            })
            .expect("ledger")
    }

    /// The ledger token of a known customer.
    pub fn token_of(&self, subject: &str) -> String {
        let vault = self.engine.vault();
        let id = vault
            .subject_id(subject)
            .expect("lookup")
            .expect("known subject");
        vault.subject_token(id)
    }
}

// ------------------------------------------------------------------------------ events

/// An RFC 3339 time `hours` before now.
pub fn hours_ago(hours: i64) -> String {
    rfc3339(now_millis() - hours * 3_600_000)
}

pub fn purchase(subject: &str, item: &str, hours: i64) -> Value {
    json!({"subject": subject, "type": "purchase", "item": item, "at": hours_ago(hours),
           "quantity": 1, "context": {"weather": "rain", "country": "United Kingdom"}})
}

pub fn view(subject: &str, item: &str, hours: i64) -> Value {
    json!({"subject": subject, "type": "view", "item": item, "at": hours_ago(hours)})
}

/// A client address for the credential-stuffing guard (each test may pick its own).
pub fn address(a: u8, b: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, a, b)), 40_000)
}

// ------------------------------------------------------------------------------ requests

/// A request under construction.
pub struct Req {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    from: Option<SocketAddr>,
}

impl Req {
    pub fn new(method: Method, uri: impl Into<String>) -> Req {
        Req {
            method,
            uri: uri.into(),
            headers: Vec::new(),
            body: Vec::new(),
            from: None,
        }
    }

    pub fn get(uri: impl Into<String>) -> Req {
        Req::new(Method::GET, uri)
    }

    pub fn post(uri: impl Into<String>) -> Req {
        Req::new(Method::POST, uri)
    }

    pub fn put(uri: impl Into<String>) -> Req {
        Req::new(Method::PUT, uri)
    }

    pub fn delete(uri: impl Into<String>) -> Req {
        Req::new(Method::DELETE, uri)
    }

    /// `Authorization: Bearer <secret>`.
    pub fn key(self, secret: &str) -> Req {
        self.header("authorization", &format!("Bearer {secret}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A JSON body.
    pub fn json(self, value: &Value) -> Req {
        self.raw(serde_json::to_vec(value).expect("json"))
    }

    /// A body of raw bytes, sent as JSON.
    pub fn raw(mut self, bytes: impl Into<Vec<u8>>) -> Req {
        self.body = bytes.into();
        self.header("content-type", "application/json")
    }

    /// A form body (`application/x-www-form-urlencoded`), as a browser posts it.
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Req {
        let encode = |text: &str| {
            text.bytes()
                .map(|byte| match byte {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (byte as char).to_string()
                    }
                    other => format!("%{other:02X}"),
                })
                .collect::<String>()
        };
        self.body = pairs
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes();
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    /// The client address the server sees (as `into_make_service_with_connect_info` sets it).
    pub fn from(mut self, address: SocketAddr) -> Req {
        self.from = Some(address);
        self
    }

    pub fn build(self) -> Request<Body> {
        let mut builder = Request::builder().method(self.method).uri(self.uri);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let mut request = builder.body(Body::from(self.body)).expect("request");
        if let Some(address) = self.from {
            request.extensions_mut().insert(ConnectInfo(address));
        }
        request
    }
}

/// A received answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub async fn send(app: &Router, request: Req) -> Reply {
    let response = app
        .clone()
        .oneshot(request.build())
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("UTF-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// A 200 JSON answer's body.
    #[track_caller]
    pub fn ok(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.text());
        assert!(
            self.content_type().starts_with("application/json"),
            "content-type {}",
            self.content_type()
        );
        self.json()
    }

    /// An RFC 9457 problem with this status and code; returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.text()
        );
        let body = self.json();
        assert_eq!(body["code"], code, "body: {body}");
        assert_eq!(body["status"], status, "body: {body}");
        assert_eq!(
            body["type"],
            format!("{}#{code}", discreet_server::PROBLEM_TYPE_BASE),
            "body: {body}"
        );
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        body
    }

    /// A 400 bad_input naming `field`; returns its body.
    #[track_caller]
    pub fn bad_input(&self, field: &str) -> Value {
        let body = self.problem(400, "bad_input");
        assert_eq!(body["field"], field, "body: {body}");
        body
    }
}

//! Every route for every built-in role: what the policy's roles allow answers, the rest is
//! 403 problem+json; without a live key every authenticated route is 401.

use axum::http::{Method, StatusCode, header};
use discreet_engine::Caller;
use serde_json::{Value, json};

use crate::support::{CUSTOMER, ROLES, Req, TestApp, address, purchase};

/// A route of the contract with a body that passes every check but the role's.
struct Route {
    method: Method,
    /// `{role}` is replaced by the caller's role (routes that consume what they name).
    path: &'static str,
    body: Option<Value>,
    /// Expected status for admin, storefront, privacy, analyst.
    expected: [u16; 4],
}

fn routes() -> Vec<Route> {
    let route =
        |method: Method, path: &'static str, body: Option<Value>, expected: [u16; 4]| Route {
            method,
            path,
            body,
            expected,
        };
    vec![
        route(
            Method::POST,
            "/v1/events",
            Some(json!({"events": [purchase("c-role", "A", 1)]})),
            [200, 200, 403, 403],
        ),
        route(
            Method::PUT,
            "/v1/subjects/c-17850/attributes",
            Some(json!({"email": "ann@example.com"})),
            [200, 200, 403, 403],
        ),
        route(
            Method::PUT,
            "/v1/subjects/c-17850/consents/marketing_email",
            Some(json!({"granted": true, "source": "test"})),
            [200, 200, 200, 403],
        ),
        route(
            Method::GET,
            "/v1/subjects/c-17850/consents",
            None,
            [200, 200, 200, 403],
        ),
        route(
            Method::GET,
            "/v1/subjects/c-17850/recommendations",
            None,
            [200, 200, 403, 403],
        ),
        route(
            Method::GET,
            "/v1/items/A/similar",
            None,
            [200, 200, 403, 200],
        ),
        route(
            Method::GET,
            "/v1/subjects/c-17850/export",
            None,
            [200, 403, 200, 403],
        ),
        route(
            Method::DELETE,
            "/v1/subjects/c-forget-{role}",
            None,
            [200, 403, 200, 403],
        ),
        route(
            Method::GET,
            "/v1/receipts/{receipt}",
            None,
            [200, 403, 200, 403],
        ),
        route(
            Method::GET,
            "/v1/receipts/public-key",
            None,
            [200, 200, 200, 200],
        ),
        route(Method::GET, "/v1/audit", None, [200, 403, 200, 403]),
        route(Method::GET, "/v1/audit/verify", None, [200, 403, 200, 403]),
        route(Method::GET, "/v1/policy", None, [200, 403, 200, 403]),
        route(
            Method::GET,
            "/v1/policy/records",
            None,
            [200, 403, 200, 403],
        ),
        route(
            Method::POST,
            "/v1/keys",
            Some(json!({"role": "analyst", "label": "issued in a test"})),
            [200, 403, 403, 403],
        ),
        route(Method::GET, "/v1/keys", None, [200, 403, 403, 403]),
        route(
            Method::DELETE,
            "/v1/keys/{victim-key}",
            None,
            [200, 403, 403, 403],
        ),
        route(Method::GET, "/healthz", None, [200, 200, 200, 200]),
        route(Method::GET, "/metrics", None, [200, 200, 200, 200]),
        route(Method::GET, "/openapi.json", None, [200, 200, 200, 200]),
    ]
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_policy_says() {
    let t = TestApp::new();
    t.seed_shop();
    for role in ROLES {
        t.ingest(vec![purchase(&format!("c-forget-{role}"), "A", 2)]);
    }
    t.ingest(vec![purchase("c-gone", "A", 2)]);
    let receipt = t
        .engine
        .forget(&Caller::operator(), "c-gone")
        .expect("forget")
        .id;

    let mut failures = Vec::new();
    for route in routes() {
        for (index, role) in ROLES.iter().enumerate() {
            let mut path = route
                .path
                .replace("{role}", role)
                .replace("{receipt}", &receipt);
            if path.contains("{victim-key}") {
                let victim = t
                    .engine
                    .create_api_key(&Caller::operator(), "analyst", "victim")
                    .unwrap()
                    .id;
                path = path.replace("{victim-key}", &victim);
            }
            let mut request = Req::new(route.method.clone(), &path).key(t.key(role));
            if let Some(body) = &route.body {
                request = request.json(body);
            }
            let reply = t.send(request).await;
            let expected = route.expected[index];
            if reply.status.as_u16() != expected {
                failures.push(format!(
                    "{} {path} as {role}: expected {expected}, got {} {}",
                    route.method,
                    reply.status,
                    reply.text()
                ));
                continue;
            }
            if expected == 403 {
                let problem = reply.problem(403, "forbidden");
                assert!(
                    problem["detail"].as_str().unwrap().contains(role),
                    "{problem}"
                );
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn a_forbidden_answer_is_a_problem() {
    let t = TestApp::new();
    let reply = t
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/export")).key(&t.storefront))
        .await;
    let problem = reply.problem(403, "forbidden");
    insta::assert_json_snapshot!("forbidden", problem);
    // An analyst may not read personal recommendations, whatever the purpose.
    t.send(
        Req::get(format!(
            "/v1/subjects/{CUSTOMER}/recommendations?purpose=analytics"
        ))
        .key(&t.analyst),
    )
    .await
    .problem(403, "forbidden");
    // A storefront may not use data for a purpose its role does not list.
    t.send(
        Req::get(format!(
            "/v1/subjects/{CUSTOMER}/recommendations?purpose=subject_rights"
        ))
        .key(&t.storefront),
    )
    .await
    .problem(403, "forbidden");
}

#[tokio::test]
async fn without_a_live_key_every_authenticated_route_is_401() {
    let t = TestApp::new();
    let revoked = t
        .engine
        .create_api_key(&Caller::operator(), "admin", "retired")
        .unwrap();
    t.engine
        .revoke_api_key(&Caller::operator(), &revoked.id)
        .unwrap();
    let (events_before, _) = t.stored();

    let mut client = 0u8;
    let mut failures = Vec::new();
    for route in routes() {
        let public = matches!(
            route.path,
            "/v1/receipts/public-key" | "/healthz" | "/metrics" | "/openapi.json"
        );
        let path = route
            .path
            .replace("{role}", "admin")
            .replace("{receipt}", "r-1")
            .replace("{victim-key}", "k-1");
        let credentials: [(&str, Option<String>); 5] = [
            ("no key", None),
            ("unknown key", Some("Bearer not-a-key".to_owned())),
            (
                "revoked key",
                Some(format!("Bearer {}", revoked.secret.as_str())),
            ),
            ("another scheme", Some(format!("Basic {}", t.admin))),
            ("empty bearer", Some("Bearer ".to_owned())),
        ];
        for (what, authorization) in credentials {
            // One address per attempt, so the credential-stuffing guard stays out of it.
            client += 1;
            let mut request = Req::new(route.method.clone(), &path).from(address(1, client));
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            if let Some(body) = &route.body {
                request = request.json(body);
            }
            let reply = t.send(request).await;
            if public {
                if reply.status != StatusCode::OK {
                    failures.push(format!("{path} ({what}) is public, got {}", reply.status));
                }
                continue;
            }
            if reply.status != StatusCode::UNAUTHORIZED {
                failures.push(format!(
                    "{} {path} with {what}: expected 401, got {} {}",
                    route.method,
                    reply.status,
                    reply.text()
                ));
                continue;
            }
            reply.problem(401, "unauthorized");
            assert_eq!(
                reply.headers.get(header::WWW_AUTHENTICATE).unwrap(),
                "Bearer",
                "{path}"
            );
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(t.stored().0, events_before, "nothing was stored");

    let reply = t.send(Req::get("/v1/policy").from(address(2, 1))).await;
    insta::assert_json_snapshot!("unauthorized", reply.problem(401, "unauthorized"));
}

/// Guards that a role is refused before its body is read: a privacy or analyst key sending a
/// malformed batch or attributes body is told 403, and learns nothing of the expected shape.
#[tokio::test]
async fn a_refused_role_gets_403_before_its_body_is_checked() {
    let t = TestApp::new();
    let before = t.stored();
    for role in ["privacy", "analyst"] {
        t.send(
            Req::post("/v1/events")
                .key(t.key(role))
                .json(&json!({"events": [{"subject": 42, "tyep": "purchase"}]})),
        )
        .await
        .problem(403, "forbidden");
        t.send(
            Req::put("/v1/subjects/c-17850/attributes")
                .key(t.key(role))
                .json(&json!({"email": ["not", "a", "value"]})),
        )
        .await
        .problem(403, "forbidden");
    }
    assert_eq!(t.stored(), before);
}

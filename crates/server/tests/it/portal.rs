//! The privacy center through the real router: minting sessions (roles, `return_url`,
//! unknown subjects), the single-use start URL, expiry on a paused clock, CSRF, the
//! security headers of every page, languages, and that a session reaches only its own
//! customer — while every action lands on the ledger as `portal:<session id>`.

use std::time::Duration;

use axum::http::{StatusCode, header};
use discreet_vault::ForgetReceipt;
use serde_json::{Value, json};

use crate::support::{CUSTOMER, Reply, Req, TestApp};

const RETURN_URL: &str = "https://shop.example/account";

fn session_request(subject: &str) -> Value {
    json!({"subject": subject, "return_url": RETURN_URL})
}

/// Mints a session for `subject` as the storefront; answers (id, start path).
async fn mint(app: &TestApp, body: &Value) -> (String, String) {
    let reply = app
        .send(
            Req::post("/v1/portal/sessions")
                .key(&app.storefront)
                .header("host", "localhost:7878")
                .json(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let answer = reply.json();
    let url = answer["url"].as_str().expect("url").to_owned();
    let path = url
        .strip_prefix("http://localhost:7878")
        .unwrap_or_else(|| panic!("a local URL: {url}"))
        .to_owned();
    assert!(answer["expires_at"].as_str().is_some());
    (answer["id"].as_str().expect("id").to_owned(), path)
}

/// Follows a start path; answers the cookie pair (`discreet_portal=…`).
async fn start(app: &TestApp, path: &str) -> String {
    let reply = app
        .send(Req::get(path).header("host", "localhost:7878"))
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(reply.headers[header::LOCATION], "/portal/");
    let cookie = reply.headers[header::SET_COOKIE].to_str().expect("cookie");
    cookie.split(';').next().expect("pair").to_owned()
}

async fn open(app: &TestApp, subject: &str) -> (String, String) {
    let (id, path) = mint(app, &session_request(subject)).await;
    (id, start(app, &path).await)
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> Reply {
    app.send(
        Req::get(path)
            .header("cookie", cookie)
            .header("host", "localhost:7878"),
    )
    .await
}

/// The CSRF token of a page's forms.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..start + 64].to_owned()
}

#[tokio::test]
async fn sessions_are_minted_by_roles_with_the_portal_action_for_known_customers() {
    let app = TestApp::new();
    app.seed_shop();
    for (role, status) in [
        ("storefront", 201),
        ("admin", 201),
        ("privacy", 403),
        ("analyst", 403),
    ] {
        let reply = app
            .send(
                Req::post("/v1/portal/sessions")
                    .key(app.key(role))
                    .header("host", "localhost")
                    .json(&session_request(CUSTOMER)),
            )
            .await;
        assert_eq!(reply.status.as_u16(), status, "{role}: {}", reply.text());
    }
    let reply = app
        .send(Req::post("/v1/portal/sessions").json(&session_request(CUSTOMER)))
        .await;
    reply.problem(401, "unauthorized");

    let unknown = app
        .send(
            Req::post("/v1/portal/sessions")
                .key(&app.storefront)
                .header("host", "localhost")
                .json(&session_request("c-never-seen")),
        )
        .await;
    let body = unknown.problem(404, "subject_not_found");
    assert!(!body.to_string().contains("c-never-seen"));

    for bad_url in [
        "http://shop.example/account",
        "javascript:alert(1)",
        "https://user:pw@shop.example/",
        "https://",
        "https://shop.example/a b",
        "ftp://shop.example/",
        "http://localhost.evil.example/",
    ] {
        let reply = app
            .send(
                Req::post("/v1/portal/sessions")
                    .key(&app.storefront)
                    .header("host", "localhost")
                    .json(&json!({"subject": CUSTOMER, "return_url": bad_url})),
            )
            .await;
        let body = reply.bad_input("return_url");
        assert!(
            !body["detail"].as_str().unwrap_or("").contains(bad_url),
            "{body}"
        );
    }
    let long = format!("https://shop.example/{}", "a".repeat(2_000));
    app.send(
        Req::post("/v1/portal/sessions")
            .key(&app.storefront)
            .header("host", "localhost")
            .json(&json!({"subject": CUSTOMER, "return_url": long})),
    )
    .await
    .bad_input("return_url");
    for local in [
        "http://localhost:3000/account",
        "http://127.0.0.1/",
        "http://[::1]:8080/x",
    ] {
        let reply = app
            .send(
                Req::post("/v1/portal/sessions")
                    .key(&app.storefront)
                    .header("host", "localhost")
                    .json(&json!({"subject": CUSTOMER, "return_url": local})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{local}: {}",
            reply.text()
        );
    }
    app.send(
        Req::post("/v1/portal/sessions")
            .key(&app.storefront)
            .header("host", "localhost")
            .json(&json!({"subject": CUSTOMER, "return_url": RETURN_URL, "locale": "xx"})),
    )
    .await
    .bad_input("locale");
    app.send(
        Req::post("/v1/portal/sessions")
            .key(&app.storefront)
            .header("host", "localhost")
            .json(&json!({"subject": CUSTOMER, "return_url": RETURN_URL, "extra": 1})),
    )
    .await
    .bad_input("body");

    // Off localhost the start URL is https and the cookie is Secure.
    let reply = app
        .send(
            Req::post("/v1/portal/sessions")
                .key(&app.storefront)
                .header("host", "privacy.shop.example")
                .json(&session_request(CUSTOMER)),
        )
        .await;
    let url = reply.json()["url"].as_str().expect("url").to_owned();
    let path = url
        .strip_prefix("https://privacy.shop.example")
        .expect("an https URL on the host asked");
    let started = app
        .send(Req::get(path).header("host", "privacy.shop.example"))
        .await;
    let cookie = started.headers[header::SET_COOKIE]
        .to_str()
        .expect("cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/portal",
        "Secure",
        "Max-Age=1800",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }

    // The opening is on the ledger under the storefront's key, naming the session.
    let token = app.token_of(CUSTOMER);
    assert!(app.ledger().iter().any(|entry| {
        entry.entry.action == "portal.session_opened"
            && entry.entry.subject_token.as_deref() == Some(&token)
    }));
}

#[tokio::test]
async fn a_start_url_works_once_and_the_cookie_on_localhost_is_not_secure() {
    let app = TestApp::new();
    app.seed_shop();
    let (_, path) = mint(&app, &session_request(CUSTOMER)).await;
    let reply = app
        .send(Req::get(&path).header("host", "localhost:7878"))
        .await;
    let cookie = reply.headers[header::SET_COOKIE].to_str().expect("cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(!cookie.contains("Secure"), "{cookie}");
    let again = app
        .send(Req::get(&path).header("host", "localhost:7878"))
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.content_type().starts_with("text/html"));
    assert!(again.headers.get(header::SET_COOKIE).is_none());
    let made_up = app
        .send(Req::get(format!("/portal/start/{}", "0".repeat(64))))
        .await;
    assert_eq!(made_up.status, StatusCode::UNAUTHORIZED);
    let no_cookie = app.send(Req::get("/portal/")).await;
    assert_eq!(no_cookie.status, StatusCode::UNAUTHORIZED);
    let forged = page(
        &app,
        &format!("discreet_portal={}", "a".repeat(64)),
        "/portal/",
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn start_urls_and_sessions_expire_on_the_clock() {
    let app = TestApp::new();
    app.seed_shop();
    let (_, unused) = mint(&app, &session_request(CUSTOMER)).await;
    let (_, cookie) = open(&app, CUSTOMER).await;
    // Pages that fail before any storage work, so the paused clock moves only by hand.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(10 * 60 + 1)).await;
    let late = app
        .send(Req::get(&unused).header("host", "localhost:7878"))
        .await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED);
    assert!(
        late.text().contains(RETURN_URL),
        "an ended start links back to the shop"
    );
    tokio::time::advance(Duration::from_secs(20 * 60)).await;
    let ended = page(&app, &cookie, "/portal/").await;
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED);
    assert!(ended.text().contains(RETURN_URL));
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_no_customer_id_in_a_url() {
    let app = TestApp::new();
    app.seed_shop();
    let (_, cookie) = open(&app, CUSTOMER).await;
    for path in [
        "/portal/",
        "/portal/data",
        "/portal/consents",
        "/portal/download",
        "/portal/activity",
        "/portal/forget",
        "/portal/receipt",
        "/portal/no-such-page",
        "/portal/start/nothing",
        "/assets/style.css",
    ] {
        let reply = page(&app, &cookie, path).await;
        let headers = &reply.headers;
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .split(';')
                .next(),
            Some("default-src 'self'"),
            "{path}"
        );
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{path}");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{path}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        if reply.content_type().starts_with("text/html") {
            let html = reply.text();
            assert!(!html.contains("<script"), "{path} has a script");
            assert!(!html.contains("style=\""), "{path} has an inline style");
            // Nothing is loaded from another origin.
            for source in html
                .split("src=\"")
                .skip(1)
                .chain(html.split("rel=\"stylesheet\" href=\"").skip(1))
            {
                assert!(source.starts_with('/'), "{path} loads {source:.40}");
            }
            for link in html.split("href=\"").skip(1) {
                let target = link.split('"').next().unwrap_or("");
                assert!(!target.contains(CUSTOMER), "{path} links to {target}");
            }
        }
    }
    let overview = page(&app, &cookie, "/portal/").await;
    assert_eq!(overview.status, StatusCode::OK);
    let html = overview.text();
    assert!(html.contains("<html lang=\"en\">"));
    // Real figures: the customer's one purchase and one view, two kinds of data.
    assert!(html.contains("<dd>2</dd>"), "{html}");
    assert!(html.contains("user.behavior.purchase_history"));
}

#[tokio::test]
async fn a_session_reaches_only_its_own_customer() {
    let app = TestApp::new();
    app.seed_shop();
    let (_, cookie) = open(&app, "s-1").await;
    let download = page(&app, &cookie, "/portal/download").await;
    assert_eq!(download.status, StatusCode::OK);
    assert!(
        download.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let export = download.json();
    assert_eq!(export["subject"], "s-1");
    assert_eq!(export["events"].as_array().map(Vec::len), Some(3));
    // Nothing in a page's address can name another customer.
    for path in [
        format!("/portal/data?subject={CUSTOMER}"),
        format!("/portal/activity?subject={CUSTOMER}"),
        format!("/portal/consents?subject={CUSTOMER}"),
        "/portal/data?page=zero".to_owned(),
    ] {
        let reply = page(&app, &cookie, &path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(!reply.text().contains(CUSTOMER));
    }
    let data = page(&app, &cookie, "/portal/data").await.text();
    assert!(data.contains("Showing 1–3 of 3"), "{data}");
    // Another customer's cookie shows that customer; neither sees the other.
    let (_, theirs) = open(&app, CUSTOMER).await;
    let their_export = page(&app, &theirs, "/portal/download").await.json();
    assert_eq!(their_export["subject"], CUSTOMER);
    // Withdrawing in one session changes only its own customer.
    let consents = page(&app, &cookie, "/portal/consents").await.text();
    let csrf = csrf_of(&consents);
    let saved = app
        .send(
            Req::post("/portal/consents")
                .header("cookie", &cookie)
                .form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text());
    let mine = app
        .send(Req::get("/v1/subjects/s-1/recommendations?n=3").key(&app.storefront))
        .await
        .ok();
    assert_eq!(mine["personalized"], false);
    let theirs_now = app
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/recommendations?n=3")).key(&app.storefront))
        .await
        .ok();
    assert_eq!(theirs_now["personalized"], true);
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_change_nothing() {
    let app = TestApp::new();
    app.seed_shop();
    let (_, cookie) = open(&app, CUSTOMER).await;
    let (_, other) = open(&app, "s-2").await;
    let other_csrf = csrf_of(&page(&app, &other, "/portal/consents").await.text());
    let before = app.ledger().len();
    for form in [
        vec![],
        vec![("csrf", "0".repeat(64))],
        vec![("csrf", other_csrf.clone())],
    ] {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(n, v)| (*n, v.as_str())).collect();
        for path in ["/portal/consents", "/portal/forget", "/portal/sign-out"] {
            let mut pairs = pairs.clone();
            if path == "/portal/forget" {
                pairs.push(("confirm", "yes"));
            }
            let reply = app
                .send(Req::post(path).header("cookie", &cookie).form(&pairs))
                .await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{path}: {}",
                reply.text()
            );
        }
    }
    // No form reached the engine: the ledger grew by nothing but page reads.
    let after = app.ledger();
    assert!(after[..after.len() - before].iter().all(|entry| {
        !entry.entry.action.contains("consent") && !entry.entry.action.contains("forget")
    }));
    let still = app
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/recommendations?n=3")).key(&app.storefront))
        .await
        .ok();
    assert_eq!(still["personalized"], true);
    assert_eq!(page(&app, &cookie, "/portal/").await.status, StatusCode::OK);
    // An unknown form field is refused too.
    let csrf = csrf_of(&page(&app, &cookie, "/portal/consents").await.text());
    let reply = app
        .send(
            Req::post("/portal/consents")
                .header("cookie", &cookie)
                .form(&[("csrf", &csrf), ("granted", "no_such_purpose")]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn forgetting_needs_the_confirmation_then_answers_with_a_verifiable_receipt() {
    let app = TestApp::new();
    app.seed_shop();
    let (session_id, cookie) = open(&app, CUSTOMER).await;
    let forget = page(&app, &cookie, "/portal/forget").await;
    assert_eq!(forget.status, StatusCode::OK);
    let csrf = csrf_of(&forget.text());
    let unconfirmed = app
        .send(
            Req::post("/portal/forget")
                .header("cookie", &cookie)
                .form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    assert!(unconfirmed.text().contains("role=\"alert\""));
    assert!(app.engine.vault().subject_id(CUSTOMER).unwrap().is_some());

    let done = app
        .send(
            Req::post("/portal/forget")
                .header("cookie", &cookie)
                .form(&[("csrf", &csrf), ("confirm", "yes")]),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
    assert_eq!(done.headers[header::LOCATION], "/portal/receipt");
    assert!(app.engine.vault().subject_id(CUSTOMER).unwrap().is_none());
    let shown = page(&app, &cookie, "/portal/receipt").await;
    assert_eq!(shown.status, StatusCode::OK);
    let file = page(&app, &cookie, "/portal/receipt.json").await.json();
    let receipt: ForgetReceipt =
        serde_json::from_value(file["receipt"].clone()).expect("a receipt");
    let key = discreet_vault::crypto::from_hex(file["public_key"]["public_key"].as_str().unwrap())
        .expect("hex key");
    assert!(receipt.verify(&key));
    assert!(shown.text().contains(&receipt.id));
    // The session is gone for everything but its receipt.
    for path in [
        "/portal/",
        "/portal/data",
        "/portal/download",
        "/portal/forget",
    ] {
        assert_eq!(
            page(&app, &cookie, path).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    // Every action of the session was on the ledger under portal:<id>.
    let actor = format!("portal:{session_id}");
    let actions: Vec<String> = app
        .ledger()
        .into_iter()
        .filter(|entry| entry.entry.actor == actor)
        .map(|entry| entry.entry.action)
        .collect();
    assert!(
        actions.iter().any(|action| action.starts_with("forget")),
        "{actions:?}"
    );
    assert!(actions.len() >= 3, "{actions:?}");
}

#[tokio::test]
async fn pages_speak_the_sessions_language_then_the_browsers() {
    let app = TestApp::new();
    app.seed_shop();
    let (_, path) = mint(
        &app,
        &json!({"subject": CUSTOMER, "return_url": RETURN_URL, "locale": "de"}),
    )
    .await;
    let german = start(&app, &path).await;
    let html = page(&app, &german, "/portal/").await.text();
    assert!(html.contains("<html lang=\"de\">") && html.contains("Ihre Daten"));
    let (_, english) = open(&app, "s-1").await;
    let browser_german = app
        .send(
            Req::get("/portal/")
                .header("cookie", &english)
                .header("accept-language", "de-DE,de;q=0.9,en;q=0.5"),
        )
        .await
        .text();
    assert!(browser_german.contains("<html lang=\"de\">"));
    assert!(
        page(&app, &english, "/portal/")
            .await
            .text()
            .contains("<html lang=\"en\">")
    );
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = TestApp::new();
    app.seed_shop();
    let (_, cookie) = open(&app, CUSTOMER).await;
    let csrf = csrf_of(&page(&app, &cookie, "/portal/").await.text());
    let out = app
        .send(
            Req::post("/portal/sign-out")
                .header("cookie", &cookie)
                .header("host", "localhost")
                .form(&[("csrf", &csrf)]),
        )
        .await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        page(&app, &cookie, "/portal/").await.status,
        StatusCode::UNAUTHORIZED
    );
}

//! The console through the real router: sign-in with a key of a role with the `console`
//! action (and refusals for others), the session cookie, CSRF, the security headers, the
//! dashboard's real figures, subject lookup and forget under the officer's key, the audit
//! trail and its CSV, keys, and an incident from creation to containment — after which the
//! compromised key gets 401, and a revoked officer's key ends its session.

use axum::http::{StatusCode, header};

use crate::support::{CUSTOMER, Reply, Req, TestApp};

const HOST: &str = "localhost:7878";

fn get(path: &str, cookie: &str) -> Req {
    Req::get(path).header("host", HOST).header("cookie", cookie)
}

fn post(path: &str, cookie: &str, pairs: &[(&str, &str)]) -> Req {
    Req::post(path)
        .header("host", HOST)
        .header("cookie", cookie)
        .form(pairs)
}

/// The `name=value` pair of a `Set-Cookie` for `name`, and the whole header.
fn set_cookie(reply: &Reply, name: &str) -> Option<(String, String)> {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|value| {
            (
                value.split(';').next().unwrap_or("").to_owned(),
                value.to_owned(),
            )
        })
}

/// The value of hidden field `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("a form field {name}: {html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_owned()
}

/// Signs in with `secret`; answers the reply of the sign-in post.
async fn try_sign_in(app: &TestApp, secret: &str) -> Reply {
    let form = app.send(Req::get("/console/").header("host", HOST)).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text());
    let (pair, _) = set_cookie(&form, "discreet_console_sign_in").expect("a sign-in cookie");
    let token = hidden(&form.text(), "sign_in");
    app.send(post(
        "/console/sign-in",
        &pair,
        &[("sign_in", &token), ("key", secret)],
    ))
    .await
}

/// Signs in with `secret`; answers the session cookie pair and the CSRF token.
async fn sign_in(app: &TestApp, secret: &str) -> (String, String) {
    let reply = try_sign_in(app, secret).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text());
    assert_eq!(reply.headers[header::LOCATION], "/console/");
    let (pair, whole) = set_cookie(&reply, "discreet_console").expect("a session cookie");
    assert!(whole.contains("HttpOnly"), "{whole}");
    assert!(whole.contains("SameSite=Strict"), "{whole}");
    assert!(whole.contains("Path=/console"), "{whole}");
    assert!(whole.contains("Max-Age=28800"), "{whole}");
    let dashboard = app.send(get("/console/", &pair)).await;
    assert_eq!(dashboard.status, StatusCode::OK, "{}", dashboard.text());
    let csrf = hidden(&dashboard.text(), "csrf");
    (pair, csrf)
}

fn key_id_of(app: &TestApp, secret: &str) -> String {
    app.engine.authenticate(secret).expect("a live key").key_id
}

#[tokio::test]
async fn only_live_keys_of_roles_with_the_console_action_sign_in() {
    let app = TestApp::new();
    app.seed_shop();
    for secret in [app.privacy.clone(), app.admin.clone()] {
        sign_in(&app, &secret).await;
    }
    let refused = try_sign_in(&app, &app.storefront).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&refused, "discreet_console").is_none());
    assert!(refused.text().contains("no console access"));

    let wrong = try_sign_in(&app, "not-a-key-at-all").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!wrong.text().contains("not-a-key-at-all"), "never echoed");
    assert!(set_cookie(&wrong, "discreet_console").is_none());

    // A post without the sign-in form's own token is refused.
    let forged = app
        .send(
            Req::post("/console/sign-in")
                .header("host", HOST)
                .form(&[("sign_in", "x"), ("key", &app.privacy)]),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&forged, "discreet_console").is_none());

    // Signed out, every page answers 401 with the way to sign in; never a figure.
    for path in ["/console/data-map", "/console/audit", "/console/incidents"] {
        let reply = app.send(get(path, "")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(reply.text().contains("href=\"/console/\""));
    }
    // The sign-ins are on the ledger under each officer's key.
    let signed_in: Vec<String> = app
        .ledger()
        .into_iter()
        .filter(|record| record.entry.action == "console.signed_in")
        .map(|record| record.entry.actor)
        .collect();
    assert_eq!(signed_in.len(), 2);
    assert!(signed_in.contains(&key_id_of(&app, &app.privacy)));
}

#[tokio::test]
async fn console_pages_carry_the_page_security_headers_and_forms_need_their_token() {
    let app = TestApp::new();
    app.seed_shop();
    let (cookie, csrf) = sign_in(&app, &app.privacy).await;
    for path in [
        "/console/",
        "/console/data-map",
        "/console/subjects",
        "/console/audit",
        "/console/incidents",
        "/console/nowhere",
    ] {
        let reply = app.send(get(path, &cookie)).await;
        let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp");
        assert!(csp.starts_with("default-src 'self'"), "{path}: {csp}");
        assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store", "{path}");
        assert_eq!(reply.headers[header::REFERRER_POLICY], "no-referrer");
        assert!(reply.content_type().starts_with("text/html"), "{path}");
    }
    let lookup = app
        .send(post(
            "/console/subjects",
            &cookie,
            &[("csrf", "0000"), ("customer", CUSTOMER)],
        ))
        .await;
    assert_eq!(lookup.status, StatusCode::FORBIDDEN);
    let extra = app
        .send(post(
            "/console/subjects",
            &cookie,
            &[("csrf", &csrf), ("customer", CUSTOMER), ("other", "1")],
        ))
        .await;
    assert_eq!(extra.status, StatusCode::BAD_REQUEST);
    assert!(
        !extra.text().contains("other"),
        "an unknown name is not echoed"
    );
    // The privacy role manages no keys: the page says so, and its link is not offered.
    let keys = app.send(get("/console/keys", &cookie)).await;
    assert_eq!(keys.status, StatusCode::FORBIDDEN);
    let dashboard = app.send(get("/console/", &cookie)).await.text();
    assert!(!dashboard.contains("href=\"/console/keys\""));
    assert!(dashboard.contains("href=\"/console/incidents\""));
}

#[tokio::test]
async fn the_dashboard_shows_the_shops_real_figures() {
    let app = TestApp::new();
    app.seed_shop();
    app.consent("s-6", "personalization", false);
    let (cookie, csrf) = sign_in(&app, &app.privacy).await;
    let html = app.send(get("/console/", &cookie)).await.text();
    // Seven customers held, six of them consenting after one withdrawal.
    assert!(html.contains("id=\"subjects-held\">7<"), "{html}");
    assert!(html.contains("id=\"consented\">6<"), "{html}");
    assert!(html.contains("<svg class=\"chart\""));
    assert!(html.contains("85.7 %"), "6 of 7 consent: {html}");
    assert!(html.contains("not verified since this process started"));
    let verified = app
        .send(post("/console/ledger/verify", &cookie, &[("csrf", &csrf)]))
        .await;
    assert_eq!(verified.status, StatusCode::OK);
    assert!(verified.text().contains("The ledger verifies"));
    assert!(
        verified
            .text()
            .contains("id=\"ledger-status\">Ledger: verified at"),
        "{}",
        verified.text()
    );
}

#[tokio::test]
async fn an_officer_looks_a_customer_up_and_forgets_them_with_confirmation() {
    let app = TestApp::new();
    app.seed_shop();
    let (cookie, csrf) = sign_in(&app, &app.privacy).await;
    let officer = key_id_of(&app, &app.privacy);
    let found = app
        .send(post(
            "/console/subjects",
            &cookie,
            &[("csrf", &csrf), ("customer", CUSTOMER)],
        ))
        .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text());
    assert!(found.text().contains("id=\"lookup-events\">2<"));
    let token = app.token_of(CUSTOMER);
    assert!(app.ledger().iter().any(|record| {
        record.entry.action == "events.read"
            && record.entry.actor == officer
            && record.entry.subject_token.as_deref() == Some(token.as_str())
    }));

    let unknown = app
        .send(post(
            "/console/subjects",
            &cookie,
            &[("csrf", &csrf), ("customer", "c-nobody-42")],
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(!unknown.text().contains("c-nobody-42"), "not echoed");

    let entries_before = app.ledger().len();
    let unconfirmed = app
        .send(post(
            "/console/subjects/forget",
            &cookie,
            &[("csrf", &csrf), ("customer", CUSTOMER)],
        ))
        .await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    assert!(unconfirmed.text().contains("confirm: tick the box"));
    assert!(
        !unconfirmed.text().contains("id=\"lookup-events\""),
        "nothing is read without the confirmation"
    );
    assert_eq!(app.ledger().len(), entries_before, "nothing written");
    assert!(
        app.engine
            .export(&discreet_engine::Caller::operator(), CUSTOMER)
            .is_ok()
    );

    let forgotten = app
        .send(post(
            "/console/subjects/forget",
            &cookie,
            &[("csrf", &csrf), ("customer", CUSTOMER), ("confirm", "yes")],
        ))
        .await;
    assert_eq!(forgotten.status, StatusCode::OK, "{}", forgotten.text());
    assert!(forgotten.text().contains("id=\"receipt\""));
    let gone = app
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/export")).key(&app.privacy))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(app.ledger().iter().any(|record| {
        record.entry.action == "forget.completed" && record.entry.actor == officer
    }));
}

#[tokio::test]
async fn the_audit_trail_filters_and_downloads_as_csv() {
    let app = TestApp::new();
    app.seed_shop();
    let (cookie, _) = sign_in(&app, &app.privacy).await;
    let officer = key_id_of(&app, &app.privacy);
    let page = app
        .send(get(&format!("/console/audit?actor={officer}"), &cookie))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("console.signed_in"));
    assert!(
        !page.text().contains("subject.created"),
        "other actors filtered out"
    );

    let csv = app
        .send(get("/console/audit.csv?action=consent&limit=50", &cookie))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.content_type().starts_with("text/csv"));
    let text = csv.text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("seq,at,actor,action,subject_token,purpose,categories,outcome,detail")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 7, "seven consents granted: {text}");
    assert!(rows.iter().all(|row| row.contains("\"consent.granted\"")));

    for bad in ["limit=0", "since=yesterday", "limit=abc", "nope=1"] {
        let reply = app
            .send(get(&format!("/console/audit?{bad}"), &cookie))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(!reply.text().contains("yesterday") && !reply.text().contains("nope"));
    }
}

#[tokio::test]
async fn an_incident_from_the_console_counts_the_reads_and_containment_revokes_the_key() {
    let app = TestApp::new();
    app.seed_shop();
    let storefront = key_id_of(&app, &app.storefront);
    for subject in ["s-1", "s-2", CUSTOMER] {
        let reply = app
            .send(
                Req::get(format!("/v1/subjects/{subject}/recommendations?n=3"))
                    .key(&app.storefront),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let (cookie, csrf) = sign_in(&app, &app.privacy).await;
    let list = app.send(get("/console/incidents", &cookie)).await.text();
    assert!(
        list.contains(&format!("value=\"{storefront}\"")),
        "the key is offered"
    );
    let bad = app
        .send(post(
            "/console/incidents",
            &cookie,
            &[
                ("csrf", &csrf),
                ("kind", "key_compromised"),
                ("since", "soon"),
            ],
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("since"));
    assert!(!bad.text().contains("soon"));

    let created = app
        .send(post(
            "/console/incidents",
            &cookie,
            &[
                ("csrf", &csrf),
                ("kind", "key_compromised"),
                ("key_id", &storefront),
                ("since", "2000-01-01T00:00"),
                (
                    "description",
                    "the storefront key was pasted in a public chat",
                ),
            ],
        ))
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text());
    let location = created.headers[header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(location.starts_with("/console/incidents/inc_"));
    let page = app.send(get(&location, &cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    assert!(html.contains("id=\"impact-subjects\">3<"), "{html}");
    assert!(html.contains("71 h 59 min left") || html.contains("72 h 00 min left"));

    let report = app
        .send(get(&format!("{location}/report.md"), &cookie))
        .await;
    assert_eq!(report.status, StatusCode::OK);
    assert!(report.content_type().starts_with("text/markdown"));
    assert!(
        report.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("disposition")
            .starts_with("attachment")
    );

    let customers = app
        .send(post(
            &format!("{location}/subjects.csv"),
            &cookie,
            &[("csrf", &csrf)],
        ))
        .await;
    assert_eq!(customers.status, StatusCode::OK);
    assert!(
        customers.text().contains(&format!("\"{CUSTOMER}\"")),
        "quoted cells"
    );

    let contained = app
        .send(post(
            &format!("{location}/contain"),
            &cookie,
            &[("csrf", &csrf), ("revoke_key", "yes")],
        ))
        .await;
    assert_eq!(contained.status, StatusCode::OK, "{}", contained.text());
    assert!(contained.text().contains("The containment is recorded"));
    let refused = app
        .send(Req::get(format!("/v1/subjects/{CUSTOMER}/recommendations")).key(&app.storefront))
        .await;
    refused.problem(401, "unauthorized");
}

#[tokio::test]
async fn a_revoked_officer_key_ends_its_console_session() {
    let app = TestApp::new();
    let (cookie, csrf) = sign_in(&app, &app.admin).await;
    let issued = app
        .send(post(
            "/console/keys",
            &cookie,
            &[
                ("csrf", &csrf),
                ("role", "privacy"),
                ("label", "new officer"),
            ],
        ))
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.text());
    let html = issued.text();
    let start = html.find("id=\"new-secret\">").expect("the secret, once") + 16;
    let secret = html[start..start + html[start..].find('<').expect("end")].to_owned();
    let (officer_cookie, _) = sign_in(&app, &secret).await;
    let officer_id = key_id_of(&app, &secret);
    // The listing never shows a secret again.
    let listed = app.send(get("/console/keys", &cookie)).await.text();
    assert!(listed.contains(&officer_id));
    assert!(!listed.contains(&secret));

    let revoked = app
        .send(post(
            "/console/keys/revoke",
            &cookie,
            &[("csrf", &csrf), ("id", &officer_id)],
        ))
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let after = app.send(get("/console/data-map", &officer_cookie)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    let (cleared, _) = set_cookie(&after, "discreet_console").expect("the cookie is cleared");
    assert_eq!(cleared, "discreet_console=");
    assert!(try_sign_in(&app, &secret).await.status == StatusCode::UNAUTHORIZED);

    // Signing in again from a browser that holds a session ends the old one.
    let (first, _) = sign_in(&app, &app.admin).await;
    let form = app.send(get("/console/", "")).await;
    let (pair, _) = set_cookie(&form, "discreet_console_sign_in").expect("a sign-in cookie");
    let token = hidden(&form.text(), "sign_in");
    let again = app
        .send(post(
            "/console/sign-in",
            &format!("{pair}; {first}"),
            &[("sign_in", &token), ("key", &app.admin)],
        ))
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    let old = app.send(get("/console/data-map", &first)).await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the old session ended"
    );

    // Revoking one's own key signs out at once and clears the cookie.
    let own_key = app
        .engine
        .create_api_key(&discreet_engine::Caller::operator(), "admin", "self")
        .expect("a key");
    let (own, own_csrf) = sign_in(&app, &own_key.secret).await;
    let revoked = app
        .send(post(
            "/console/keys/revoke",
            &own,
            &[("csrf", &own_csrf), ("id", &own_key.id)],
        ))
        .await;
    assert_eq!(
        revoked.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        revoked.text()
    );
    let (cleared, _) = set_cookie(&revoked, "discreet_console").expect("the cookie is cleared");
    assert_eq!(cleared, "discreet_console=");
}

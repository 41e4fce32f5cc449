//! Server-side render time of the privacy center's overview and data pages and of the
//! console's dashboard (which replays the whole ledger), beside the JSON export of the same
//! customer through the same router, in the same run: each timed
//! request goes through the real router (`tower::ServiceExt::oneshot`), so the figures hold
//! the engine's export, the page's rows and the template.

use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, header};
use discreet_engine::{Caller, Engine};
use discreet_eval::percentile;
use discreet_server::AppState;
use discreet_server::wire::PortalBody;
use http_body_util::BodyExt;
use serde::Serialize;
use tower::ServiceExt;

/// Requests of each kind timed, in alternating order.
const ROUNDS: usize = 30;

/// What `bench engine` reports of the pages.
#[derive(Serialize, Clone, Copy, Default)]
pub struct PageFigures {
    pub overview_ms_p50: f64,
    pub overview_ms_p99: f64,
    pub data_ms_p50: f64,
    pub data_ms_p99: f64,
    pub export_http_ms_p50: f64,
    pub export_http_ms_p99: f64,
    pub dashboard_ms_p50: f64,
    pub dashboard_ms_p99: f64,
    /// Ledger entries the dashboard replayed.
    pub dashboard_ledger_entries: u64,
}

/// Times the overview, the data page and the JSON export of `customer`.
pub fn time_pages(engine: &Engine, customer: &str) -> anyhow::Result<PageFigures> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let privacy = engine.create_api_key(&Caller::operator(), "privacy", "bench pages")?;
    let storefront = engine.create_api_key(&Caller::operator(), "storefront", "bench pages")?;
    let state = AppState::new(engine.clone());
    let session = discreet_server::pages::open_session(
        &state,
        &Caller::key(storefront.id.clone(), "storefront"),
        PortalBody {
            subject: customer.to_owned(),
            return_url: "http://localhost/".to_owned(),
            locale: None,
        },
        "localhost",
    )
    .map_err(|_| anyhow::anyhow!("the privacy-center session could not be opened"))?;
    let start = session["url"]
        .as_str()
        .and_then(|url| url.strip_prefix("http://localhost"))
        .unwrap_or_default()
        .to_owned();
    let dashboard_ledger_entries = engine
        .dashboard(&Caller::key(privacy.id.clone(), "privacy"))?
        .entries_replayed;
    let router = discreet_server::router(state);
    let secret = privacy.secret.as_str().to_owned();
    runtime.block_on(async move {
        let send = |request: Request<Body>| {
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await?;
                let status = response.status();
                // The last cookie set (a sign-in sets its session cookie last).
                let cookie = response
                    .headers()
                    .get_all(header::SET_COOKIE)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .map(|value| value.split(';').next().unwrap_or("").to_owned())
                    .next_back();
                let body = response.into_body().collect().await?.to_bytes();
                anyhow::Ok((status, cookie, body))
            }
        };
        let get = |path: &str| Request::get(path).header(header::HOST, "localhost");
        let (_, cookie, _) = send(get(&start).body(Body::empty())?).await?;
        let cookie = cookie.ok_or_else(|| anyhow::anyhow!("no session cookie"))?;
        // The console, signed in with the privacy key as an officer would.
        let (_, sign_in_cookie, form) = send(get("/console/").body(Body::empty())?).await?;
        let sign_in_cookie = sign_in_cookie.ok_or_else(|| anyhow::anyhow!("no sign-in cookie"))?;
        let form = String::from_utf8_lossy(&form);
        let marker = "name=\"sign_in\" value=\"";
        let token = form
            .find(marker)
            .map(|start| &form[start + marker.len()..start + marker.len() + 64])
            .ok_or_else(|| anyhow::anyhow!("no sign-in form"))?;
        let (status, console_cookie, _) = send(
            Request::post("/console/sign-in")
                .header(header::HOST, "localhost")
                .header(header::COOKIE, sign_in_cookie.as_str())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("sign_in={token}&key={secret}")))?,
        )
        .await?;
        anyhow::ensure!(
            status.is_redirection(),
            "the console sign-in answered {status}"
        );
        let console_cookie =
            console_cookie.ok_or_else(|| anyhow::anyhow!("no console session cookie"))?;
        let mut overview = Vec::new();
        let mut data = Vec::new();
        let mut export = Vec::new();
        let mut dashboard = Vec::new();
        for round in 0..ROUNDS + 2 {
            for (path, times, api) in [
                ("/portal/", &mut overview, false),
                ("/portal/data", &mut data, false),
                ("", &mut export, true),
                ("/console/", &mut dashboard, false),
            ] {
                let request = if api {
                    get(&format!("/v1/subjects/{customer}/export"))
                        .header(header::AUTHORIZATION, format!("Bearer {secret}"))
                        .body(Body::empty())?
                } else {
                    let cookie = if path.starts_with("/console") {
                        &console_cookie
                    } else {
                        &cookie
                    };
                    get(path)
                        .header(header::COOKIE, cookie.as_str())
                        .body(Body::empty())?
                };
                let started = Instant::now();
                let (status, _, bytes) = send(request).await?;
                let elapsed = started.elapsed().as_secs_f64() * 1e3;
                anyhow::ensure!(status.is_success(), "{path} answered {status}");
                std::hint::black_box(bytes.len());
                // The first two rounds warm the caches.
                if round >= 2 {
                    times.push(elapsed);
                }
            }
        }
        for times in [&mut overview, &mut data, &mut export, &mut dashboard] {
            times.sort_by(f64::total_cmp);
        }
        Ok(PageFigures {
            overview_ms_p50: percentile(&overview, 0.5),
            overview_ms_p99: percentile(&overview, 0.99),
            data_ms_p50: percentile(&data, 0.5),
            data_ms_p99: percentile(&data, 0.99),
            export_http_ms_p50: percentile(&export, 0.5),
            export_http_ms_p99: percentile(&export, 0.99),
            dashboard_ms_p50: percentile(&dashboard, 0.5),
            dashboard_ms_p99: percentile(&dashboard, 0.99),
            dashboard_ledger_entries,
        })
    })
}

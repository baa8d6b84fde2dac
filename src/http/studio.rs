//! The Studio: a web page over the control API, served at `/` on the
//! API's own port. Its files are built into the binary (`include_str!`),
//! hand-written (no framework, no build step) and static: they hold no
//! data, so they are served without the token. The page asks for the token
//! once, keeps it in the tab's `sessionStorage` and sends it as
//! `Authorization: Bearer …` on every `/v1` call, which go through the
//! guard like any client's (same origin, so `Origin` is the daemon's own).
//!
//! Live updates cost the daemon little by design: a view re-reads its few
//! routes every 2 s only while its tab is visible, and a job's page that
//! may still change follows the job's event stream (`/v1/jobs/{id}/events`)
//! instead, re-reading the job and its steps once per burst of events (not
//! per streamed token), polling only when no stream can be had
//! (`examples/bench_studio_live.rs` measures it at 1,000 tasks in flight).
//!
//! Every answer carries a strict Content-Security-Policy: scripts, styles,
//! images and connections from this origin only, no inline script or
//! style, no frames, no forms posting elsewhere; the page makes no request
//! beyond this daemon (no fonts, no CDN).
//!
//! | route | file |
//! |---|---|
//! | `GET /` | `studio/index.html` |
//! | `GET /studio/app.js` | the page's script (an ES module) |
//! | `GET /studio/app.css` | its styles |
//! | `GET /studio/icon.svg`, `GET /favicon.ico` | its icon |

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

/// The page's policy: this origin only, nothing inline, no frames.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const INDEX: &str = include_str!("studio/index.html");
const APP_JS: &str = include_str!("studio/app.js");
const APP_CSS: &str = include_str!("studio/app.css");
const ICON: &str = include_str!("studio/icon.svg");

/// Adds the Studio's routes to the app.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/",
        web::get().to(|| asset(INDEX, "text/html; charset=utf-8")),
    )
    .route(
        "/studio/app.js",
        web::get().to(|| asset(APP_JS, "text/javascript; charset=utf-8")),
    )
    .route(
        "/studio/app.css",
        web::get().to(|| asset(APP_CSS, "text/css; charset=utf-8")),
    )
    .route(
        "/studio/icon.svg",
        web::get().to(|| asset(ICON, "image/svg+xml")),
    )
    .route(
        "/favicon.ico",
        web::get().to(|| asset(ICON, "image/svg+xml")),
    );
}

/// One file with the page's headers. The files change only with the
/// binary, so the browser checks again on each load (`no-cache`) rather
/// than keep a stale page after an upgrade.
async fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(body)
}

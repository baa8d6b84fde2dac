//! Binding and running the control API on the actix System the daemon (or
//! an embedding service) already runs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};

use super::auth::{require_token, HttpToken};
use super::errors::error_response;
use super::handlers;
use crate::api::routes::{self, in_v1};
use crate::api::{Control, ControlError, LocalControl};
use crate::runtime::Troupe;

/// Default bound of a request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Default address: loopback only, so no token is needed.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7700";

/// How to serve the control API.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `host:port` to bind (`127.0.0.1:0` picks a free port).
    pub addr: String,
    /// Required as `Authorization: Bearer …` on `/v1` and `/metrics` when
    /// set; must be set to bind beyond loopback.
    pub token: Option<HttpToken>,
    /// Largest request body in bytes (larger: 413).
    pub body_limit: usize,
    /// HTTP worker threads (each runs its own event loop).
    pub workers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: DEFAULT_ADDR.into(),
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            workers: 2,
        }
    }
}

/// The control API could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address does not parse or resolve.
    #[error("invalid HTTP address `{addr}`: {reason}")]
    InvalidAddr {
        /// The address given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Bound beyond loopback without a token: anyone who can reach the port
    /// could run jobs and read memories.
    #[error("refusing to serve the control API on `{addr}` without a token: it is reachable beyond this machine; set `[http] token` (or TROUPE_HTTP_TOKEN), or bind to 127.0.0.1")]
    TokenRequired {
        /// The address given.
        addr: String,
    },
    /// The port could not be bound.
    #[error("cannot bind the control API to `{addr}`: {source}")]
    Bind {
        /// The address given.
        addr: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// What every handler reads: the control API it serves and its settings.
pub(crate) struct ApiState {
    pub(crate) control: Arc<dyn Control>,
    pub(crate) token: Option<HttpToken>,
    pub(crate) body_limit: usize,
}

/// A running control API. Dropping it leaves the server running until the
/// actix System stops; call [`stop`](Self::stop) to end it first.
#[derive(Debug)]
pub struct ControlServer {
    addrs: Vec<SocketAddr>,
    handle: ServerHandle,
}

impl ControlServer {
    /// Binds `config.addr` and serves the API of `troupe` on the current
    /// actix System. Refuses a non-loopback address without a token.
    pub fn start(troupe: Troupe, config: HttpConfig) -> Result<Self, HttpError> {
        Self::serve(Arc::new(LocalControl::new(troupe)), config)
    }

    /// Binds `config.addr` and serves `control` over HTTP on the current
    /// actix System: usually a [`LocalControl`], but any implementation
    /// answers the same routes. Refuses a non-loopback address without a
    /// token.
    pub fn serve(control: Arc<dyn Control>, config: HttpConfig) -> Result<Self, HttpError> {
        let resolved: Vec<SocketAddr> = config
            .addr
            .to_socket_addrs()
            .map_err(|e| HttpError::InvalidAddr {
                addr: config.addr.clone(),
                reason: e.to_string(),
            })?
            .collect();
        if resolved.is_empty() {
            return Err(HttpError::InvalidAddr {
                addr: config.addr.clone(),
                reason: "it resolves to no address".into(),
            });
        }
        if config.token.is_none() && resolved.iter().any(|a| !a.ip().is_loopback()) {
            return Err(HttpError::TokenRequired { addr: config.addr });
        }
        let state = web::Data::new(ApiState {
            control,
            token: config.token.clone(),
            body_limit: config.body_limit,
        });
        let server = HttpServer::new(move || app(state.clone()))
            .workers(config.workers.max(1))
            .disable_signals()
            .shutdown_timeout(5)
            .bind(&resolved[..])
            .map_err(|source| HttpError::Bind {
                addr: config.addr.clone(),
                source,
            })?;
        let addrs = server.addrs();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "control API stopped with an error");
            }
        });
        tracing::info!(addrs = ?addrs, auth = config.token.is_some(), "control API listening");
        Ok(ControlServer { addrs, handle })
    }

    /// The bound address (the real port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every bound address.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops taking connections and lets requests in flight finish (at most
    /// 5 s), then returns.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

fn app(
    state: web::Data<ApiState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .service(open(routes::HEALTHZ).route(web::get().to(handlers::healthz)))
        .service(open(routes::READYZ).route(web::get().to(handlers::readyz)))
        .service(
            open(routes::METRICS)
                .wrap(from_fn(require_token))
                .route(web::get().to(handlers::metrics)),
        )
        .service(
            web::scope(routes::V1)
                .wrap(from_fn(require_token))
                .service(
                    v1(routes::JOBS)
                        .route(web::post().to(handlers::enqueue))
                        .route(web::get().to(handlers::jobs)),
                )
                .service(v1(routes::JOB).route(web::get().to(handlers::job)))
                .service(v1(routes::CANCEL).route(web::post().to(handlers::cancel)))
                .service(v1(routes::WORKERS).route(web::get().to(handlers::workers)))
                .service(v1(routes::AGENTS).route(web::get().to(handlers::agents)))
                .service(v1(routes::TASKS).route(web::post().to(handlers::task)))
                .service(v1(routes::MEMORIES).route(web::get().to(handlers::memories)))
                .service(v1(routes::MESSAGES).route(web::get().to(handlers::messages)))
                .service(v1(routes::PAUSE).route(web::post().to(handlers::pause)))
                .service(v1(routes::RESUME).route(web::post().to(handlers::resume)))
                .service(v1(routes::STATUS).route(web::get().to(handlers::status)))
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found))
}

/// A route outside `/v1`; other methods than its own are 405.
fn open(route: &str) -> actix_web::Resource {
    web::resource(route).default_service(web::to(not_allowed))
}

/// A route inside the `/v1` scope; other methods than its own are 405.
fn v1(route: &str) -> actix_web::Resource {
    web::resource(in_v1(route)).default_service(web::to(not_allowed))
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    ControlError::NotFound(format!("no route for {} {}", req.method(), req.path())).error_response()
}

async fn not_allowed(req: HttpRequest) -> HttpResponse {
    let message = format!("method {} is not allowed on {}", req.method(), req.path());
    error_response(actix_web::http::StatusCode::METHOD_NOT_ALLOWED, message)
}

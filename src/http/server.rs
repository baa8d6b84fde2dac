//! Binding and running the control API on the actix System the daemon (or
//! an embedding service) already runs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::KeepAlive;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};

use super::body::bounded_body;
use super::errors::error_response;
use super::guard::{guard, Hosts};
use super::handlers;
use super::studio;
use super::token::HttpToken;
use crate::api::routes::{self, in_v1};
use crate::api::{Control, ControlError, LocalControl};
use crate::config::{parse_duration, HttpSection};
use crate::runtime::Troupe;

/// Default bound of a request body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Default address: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7700";

/// Default limit of connections open at once, over all workers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Default length of the queue of connections waiting to be taken.
pub const DEFAULT_BACKLOG: u32 = 256;

/// Default time a request's head, and then its body, may take to arrive.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How to serve the control API.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `host:port` to bind (`127.0.0.1:0` picks a free port).
    pub addr: String,
    /// Required as `Authorization: Bearer …` on `/v1` and `/metrics`. The
    /// default is a new random one: hand [`HttpToken::secret`] to clients.
    pub token: HttpToken,
    /// Names clients may give as `Host` besides `127.0.0.1`, `localhost`
    /// and `[::1]` with the bound port (and the bound address): `name`
    /// (any port), `name:port`, or `*` (any name; the token still needed).
    /// Required to bind beyond loopback.
    pub allowed_hosts: Vec<String>,
    /// Largest request body in bytes (larger: 413).
    pub body_limit: usize,
    /// HTTP worker threads (each runs its own event loop). Two by
    /// default, a trade measured on 2 cores: two take 8–10% more enqueues
    /// through `POST /v1/jobs` than one (`examples/bench_http.rs`, 32
    /// clients: 11.3–13.2k against 9.8–12.5k jobs/s), while one costs the
    /// engine less under many SSE followers (`examples/bench_events.rs`,
    /// 200 followers at 1,000 tasks in flight: a median 3.3% of steady
    /// throughput against 6.0% with two, over ten runs each).
    pub workers: usize,
    /// Connections open at once, over all workers; more wait in the
    /// kernel's queue, holding none of the daemon's descriptors.
    pub max_connections: usize,
    /// Connections the kernel queues until they are taken.
    pub backlog: u32,
    /// How long a request's head, and then its body, may take to arrive
    /// (408 after, and the connection closes); also how long an idle
    /// connection is kept.
    pub read_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: DEFAULT_ADDR.into(),
            token: HttpToken::generate(),
            allowed_hosts: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            workers: 2,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            backlog: DEFAULT_BACKLOG,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

impl From<&HttpSection> for HttpConfig {
    /// The config file's `[http]` settings (address, allowed hosts,
    /// limits); the token is chosen apart (it may come from the
    /// environment or the token file): here a new random one.
    fn from(section: &HttpSection) -> Self {
        let default = HttpConfig::default();
        HttpConfig {
            addr: section.addr.clone().unwrap_or(default.addr),
            allowed_hosts: section.allowed_hosts.clone(),
            max_connections: section.max_connections.unwrap_or(default.max_connections),
            read_timeout: section
                .read_timeout
                .as_deref()
                .and_then(|t| parse_duration(t).ok())
                .unwrap_or(default.read_timeout),
            ..default
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
    /// Bound beyond loopback with no names to answer to: clients elsewhere
    /// reach it under names it cannot tell from a rebinding page's.
    #[error("refusing to serve the control API on `{addr}` with no `[http] allowedHosts`: it is reachable beyond this machine; list the names its clients use (\"*\" for any; the token is required either way), or bind to 127.0.0.1")]
    HostsRequired {
        /// The address given.
        addr: String,
    },
    /// An entry of `allowed_hosts` is not a host name.
    #[error("invalid entry `{host}` in `[http] allowedHosts`: {reason}")]
    InvalidHost {
        /// The entry.
        host: String,
        /// Why.
        reason: String,
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
    pub(crate) token: HttpToken,
    /// The names requests may give as `Host`: set once the ports are bound.
    pub(crate) hosts: OnceLock<Hosts>,
    pub(crate) body_limit: usize,
    pub(crate) read_timeout: Duration,
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
    /// actix System. Refuses a non-loopback address with no allowed hosts.
    pub fn start(troupe: Troupe, config: HttpConfig) -> Result<Self, HttpError> {
        Self::serve(Arc::new(LocalControl::new(troupe)), config)
    }

    /// Binds `config.addr` and serves `control` over HTTP on the current
    /// actix System: usually a [`LocalControl`], but any implementation
    /// answers the same routes. Refuses a non-loopback address with no
    /// allowed hosts.
    pub fn serve(control: Arc<dyn Control>, config: HttpConfig) -> Result<Self, HttpError> {
        let resolved = resolve(&config)?;
        let state = web::Data::new(ApiState {
            control,
            token: config.token.clone(),
            hosts: OnceLock::new(),
            body_limit: config.body_limit,
            read_timeout: config.read_timeout,
        });
        let factory_state = state.clone();
        let workers = config.workers.max(1);
        let server = HttpServer::new(move || app(factory_state.clone()))
            .workers(workers)
            .max_connections(config.max_connections.max(1).div_ceil(workers))
            .backlog(config.backlog.max(1))
            .client_request_timeout(config.read_timeout)
            .client_disconnect_timeout(config.read_timeout.min(Duration::from_secs(1)))
            .keep_alive(KeepAlive::Timeout(config.read_timeout))
            .disable_signals()
            .shutdown_timeout(5)
            .bind(&resolved[..])
            .map_err(|source| HttpError::Bind {
                addr: config.addr.clone(),
                source,
            })?;
        let addrs = server.addrs();
        let hosts = Hosts::new(&addrs, &config.allowed_hosts)
            .map_err(|(host, reason)| HttpError::InvalidHost { host, reason })?;
        let _ = state.hosts.set(hosts);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "control API stopped with an error");
            }
        });
        tracing::info!(addrs = ?addrs, allowed_hosts = ?config.allowed_hosts, "control API listening");
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

/// The whole API: every request's body read within the deadline
/// (`bounded_body`); the probes open; `/metrics` and `/v1` behind the
/// guard (host, origin, token, content type).
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
        .wrap(from_fn(bounded_body))
        .service(open(routes::HEALTHZ).route(web::get().to(handlers::healthz)))
        .service(open(routes::READYZ).route(web::get().to(handlers::readyz)))
        .service(
            open(routes::METRICS)
                .wrap(from_fn(guard))
                .route(web::get().to(handlers::metrics)),
        )
        .service(v1_routes().wrap(from_fn(guard)))
        .configure(studio::routes)
        .default_service(web::to(not_found))
}

/// The `/v1` scope: one route per operation of [`Control`].
fn v1_routes() -> actix_web::Scope {
    web::scope(routes::V1)
        .service(
            v1(routes::JOBS)
                .route(web::post().to(handlers::enqueue))
                .route(web::get().to(handlers::jobs)),
        )
        .service(v1(routes::JOB).route(web::get().to(handlers::job)))
        .service(v1(routes::EVENTS).route(web::get().to(handlers::events)))
        .service(v1(routes::CANCEL).route(web::post().to(handlers::cancel)))
        .service(v1(routes::WORKERS).route(web::get().to(handlers::workers)))
        .service(v1(routes::NODES).route(web::get().to(handlers::nodes)))
        .service(v1(routes::AGENTS).route(web::get().to(handlers::agents)))
        .service(v1(routes::TASKS).route(web::post().to(handlers::task)))
        .service(v1(routes::MEMORIES).route(web::get().to(handlers::memories)))
        .service(v1(routes::MESSAGES).route(web::get().to(handlers::messages)))
        .service(v1(routes::PAUSE).route(web::post().to(handlers::pause)))
        .service(v1(routes::RESUME).route(web::post().to(handlers::resume)))
        .service(v1(routes::STATUS).route(web::get().to(handlers::status)))
        .service(v1(routes::APPROVALS).route(web::get().to(handlers::approvals)))
        .service(v1(routes::APPROVE).route(web::post().to(handlers::approve)))
        .service(v1(routes::DENY).route(web::post().to(handlers::deny)))
        .service(v1(routes::STEPS).route(web::get().to(handlers::steps)))
        .service(v1(routes::STATS).route(web::get().to(handlers::stats)))
        .service(v1(routes::AGENT).route(web::get().to(handlers::agent)))
        .service(v1(routes::RECALL).route(web::get().to(handlers::recall)))
        .default_service(web::to(not_found))
}

/// `config.addr` resolved; refused beyond loopback with no allowed hosts.
fn resolve(config: &HttpConfig) -> Result<Vec<SocketAddr>, HttpError> {
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
    if config.allowed_hosts.is_empty() && resolved.iter().any(|a| !a.ip().is_loopback()) {
        return Err(HttpError::HostsRequired {
            addr: config.addr.clone(),
        });
    }
    Ok(resolved)
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

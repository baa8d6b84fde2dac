//! What a request must show before a `/v1` route or `/metrics` looks at
//! it. Loopback is not trust: every web page open in a browser on this
//! machine can send requests to 127.0.0.1, and a page whose name is made to
//! resolve to 127.0.0.1 (DNS rebinding) can read the answers. So, in this
//! order:
//!
//! 1. `Host` names this daemon: `127.0.0.1`, `localhost` or `[::1]` with
//!    its port, its bound address, or a name in `[http] allowedHosts`
//!    (421 otherwise: a rebinding page's requests name its own host);
//! 2. no `Origin` but the daemon's own, and no `Sec-Fetch-Site` saying
//!    `cross-site` or `same-site` (403: a browser says where a request
//!    comes from; the CLI, curl and scripts send neither);
//! 3. the bearer token (401);
//! 4. a request with a body says `Content-Type: application/json` (415: a
//!    page can send a form or `text/plain` without asking the server first,
//!    but not JSON).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use super::server::ApiState;
use super::token::HttpToken;
use crate::api::ControlError;

/// The names a loopback-bound daemon answers to, with its port.
const LOOPBACK_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

/// The longest header value repeated in an error message.
const QUOTED: usize = 120;

/// The names a request may give in its `Host` header.
#[derive(Debug, Clone)]
pub(crate) struct Hosts {
    /// The bound ports: the loopback names are allowed with these.
    ports: Vec<u16>,
    /// Bound addresses beyond loopback, as a `Host` writes them.
    bound: Vec<String>,
    /// `[http] allowedHosts`: a name, and its port if one was given.
    named: Vec<(String, Option<u16>)>,
    /// `*` was given: any name.
    any: bool,
}

impl Hosts {
    /// The names allowed for a server bound to `bound`, with `allowed`
    /// (`name`, `name:port`, `[v6]:port`, or `*`); an entry that is none of
    /// those is refused, with why.
    pub(crate) fn new(bound: &[SocketAddr], allowed: &[String]) -> Result<Self, (String, String)> {
        let mut hosts = Hosts {
            ports: bound.iter().map(SocketAddr::port).collect(),
            bound: bound
                .iter()
                .filter(|a| !a.ip().is_loopback() && !a.ip().is_unspecified())
                .map(|a| host_of(a.ip()))
                .collect(),
            named: Vec::new(),
            any: false,
        };
        for entry in allowed {
            if entry.trim() == "*" {
                hosts.any = true;
                continue;
            }
            let named = split_host(entry).ok_or_else(|| {
                (
                    entry.clone(),
                    "expected a host name or address, with or without `:port`".to_string(),
                )
            })?;
            hosts.named.push(named);
        }
        Ok(hosts)
    }

    /// Whether a request naming `host` (a `Host` header's value) is for
    /// this daemon.
    pub(crate) fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        let own = LOOPBACK_NAMES.contains(&name.as_str()) || self.bound.contains(&name);
        if own && self.ports.contains(&port.unwrap_or(80)) {
            return true;
        }
        self.named
            .iter()
            .any(|(n, p)| *n == name && (p.is_none() || *p == Some(port.unwrap_or(80))))
    }

    /// The names allowed, for a message.
    fn describe(&self) -> String {
        let port = self.ports.first().copied().unwrap_or(0);
        let mut names: Vec<String> = LOOPBACK_NAMES
            .iter()
            .map(|n| n.to_string())
            .chain(self.bound.iter().cloned())
            .map(|n| format!("{n}:{port}"))
            .collect();
        names.extend(self.named.iter().map(|(n, p)| match p {
            Some(p) => format!("{n}:{p}"),
            None => n.clone(),
        }));
        names.join(", ")
    }
}

/// `ip` as a `Host` header writes it (`[…]` around IPv6).
fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// A `Host` value (or an origin's authority) as a lowercase name and the
/// port if one is written: `localhost:7700` → (`localhost`, 7700);
/// `[0::1]` → (`[::1]`, none). `None` when it is not one.
pub(crate) fn split_host(value: &str) -> Option<(String, Option<u16>)> {
    let value = value.trim().to_ascii_lowercase();
    let (name, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (format!("[{ip}]"), port)
    } else {
        match value.split_once(':') {
            Some((name, port)) => (name.to_string(), Some(port)),
            None => (value.clone(), None),
        }
    };
    let name_ok = name.starts_with('[')
        || (!name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'));
    let port = match port {
        None => None,
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|&p| p != 0)?)
        }
        Some(_) => return None,
    };
    name_ok.then_some((name, port))
}

/// `value` cut to a length fit for a message.
fn quoted(value: &str) -> String {
    if value.chars().count() <= QUOTED {
        value.to_string()
    } else {
        value.chars().take(QUOTED).collect::<String>() + "…"
    }
}

/// The one value of header `name`: `Ok(None)` when absent, `Err` when the
/// request repeats it.
fn single<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first.map(|v| v.to_str().unwrap_or("\u{fffd}")))
}

/// Check 1: the request names this daemon.
pub(crate) fn check_host(hosts: &Hosts, req: &ServiceRequest) -> Result<(), ControlError> {
    let misdirected = |what: String| {
        ControlError::MisdirectedRequest(format!(
            "{what}: this daemon answers to {} (a web page whose name was made to point here is refused; if this name is meant to reach it, add it to `[http] allowedHosts`)",
            hosts.describe()
        ))
    };
    let host = single(req.headers(), &header::HOST)
        .map_err(|()| misdirected("the request names two hosts".into()))?
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match host {
        Some(host) if hosts.allows(&host) => Ok(()),
        Some(host) => Err(misdirected(format!(
            "host `{}` is not this daemon",
            quoted(&host)
        ))),
        None if hosts.any => Ok(()),
        None => Err(misdirected("the request names no host".into())),
    }
}

/// Check 2: not from a web page of another origin.
pub(crate) fn check_origin(req: &ServiceRequest) -> Result<(), ControlError> {
    let forbidden = |why: String| {
        ControlError::Forbidden(format!(
            "requests from web pages are refused: {why}; the control API is for the CLI and programs, which send no Origin"
        ))
    };
    let headers = req.headers();
    let site = single(headers, &header::HeaderName::from_static("sec-fetch-site"))
        .map_err(|()| forbidden("two Sec-Fetch-Site headers".into()))?;
    if let Some(site @ ("cross-site" | "same-site")) = site.map(str::trim) {
        return Err(forbidden(format!("the browser says this one is {site}")));
    }
    let Some(origin) =
        single(headers, &header::ORIGIN).map_err(|()| forbidden("two Origin headers".into()))?
    else {
        return Ok(());
    };
    let own = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(split_host);
    let lower = origin.trim().to_ascii_lowercase();
    let from = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .and_then(split_host);
    match (from, own) {
        (Some(from), Some(own)) if from == own => Ok(()),
        _ => Err(forbidden(format!(
            "Origin `{}` is not this daemon's own",
            quoted(origin)
        ))),
    }
}

/// Check 3: the bearer token.
pub(crate) fn check_token(token: &HttpToken, req: &ServiceRequest) -> Result<(), ControlError> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(given) if token.matches(given) => Ok(()),
        _ => Err(ControlError::Unauthorized),
    }
}

/// Check 4: a body is JSON, and says so. Every `POST` is held to it (an
/// empty body stands for `{}`); another method only when it sends a body.
pub(crate) fn check_content_type(req: &ServiceRequest) -> Result<(), ControlError> {
    let headers = req.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|n| n.as_bytes() != b"0");
    if *req.method() != Method::POST && !has_body {
        return Ok(());
    }
    let refused = |got: String| {
        ControlError::UnsupportedMediaType(format!(
            "request bodies must be sent as `Content-Type: application/json`; got {got}"
        ))
    };
    let value = single(req.headers(), &header::CONTENT_TYPE)
        .map_err(|()| refused("two Content-Type headers".into()))?
        .ok_or_else(|| refused("none".into()))?;
    if is_json(value) {
        Ok(())
    } else {
        Err(refused(format!("`{}`", quoted(value))))
    }
}

/// Whether a `Content-Type` value is `application/json` (any case), with
/// no charset but UTF-8 (JSON is UTF-8, RFC 8259).
pub(crate) fn is_json(value: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|param| match param.split_once('=') {
            Some((name, v)) if name.trim().eq_ignore_ascii_case("charset") => {
                v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => true,
        })
}

/// Middleware on `/v1` and `/metrics`: the four checks, in order; a
/// refusal is answered here.
pub(crate) async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
        return Err(ControlError::Internal("the control API has no state".into()).into());
    };
    let checked = match state.hosts.get() {
        Some(hosts) => check_host(hosts, &req)
            .and_then(|()| check_origin(&req))
            .and_then(|()| check_token(&state.token, &req))
            .and_then(|()| check_content_type(&req)),
        None => Err(ControlError::Unavailable(
            "the control API is starting".into(),
        )),
    };
    match checked {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        // The body, unread, is kept until this answer is sent
        // (`body::bounded_body`): the connection then closes.
        Err(refused) => Ok(req
            .into_response(refused.error_response())
            .map_into_right_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(allowed: &[&str]) -> Hosts {
        let bound = ["127.0.0.1:7700".parse().unwrap()];
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        Hosts::new(&bound, &allowed).unwrap()
    }

    #[test]
    fn hosts_are_the_loopback_names_with_the_port_or_those_configured() {
        let h = hosts(&[]);
        for ok in [
            "127.0.0.1:7700",
            "localhost:7700",
            "LOCALHOST:7700",
            "[::1]:7700",
            "[0:0::1]:7700",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:7700",
            "localhost",
            "localhost:7701",
            "localhost:7700.",
            "localhost.:7700",
            "127.0.0.1:07700x",
            "127.0.0.2:7700",
            "[::1]",
            "::1:7700",
            "",
            "localhost:",
            "local host:7700",
            "localhost:7700/x",
            "user@localhost:7700",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
        let h = hosts(&["troupe.lan", "api.example:443"]);
        assert!(h.allows("troupe.lan") && h.allows("troupe.lan:8080"));
        assert!(h.allows("api.example:443") && !h.allows("api.example:444"));
        assert!(!h.allows("api.example"));
        assert!(hosts(&["*"]).allows("anything.example:1"));
        let bound = ["0.0.0.0:7700".parse().unwrap()];
        assert!(Hosts::new(&bound, &["no/path".into()]).is_err());
        let bound = ["192.168.1.5:7700".parse().unwrap()];
        let h = Hosts::new(&bound, &[]).unwrap();
        assert!(h.allows("192.168.1.5:7700") && !h.allows("192.168.1.6:7700"));
    }

    #[test]
    fn json_is_application_json_in_utf8_only() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/json-seq",
            "application/vnd.api+json",
            "application/json; charset=latin1",
            "",
            "text/json",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }
}

//! `pods/{name}/proxy` and `services/{name}/proxy`: HTTP to a Pod, through
//! the apiserver.
//!
//! ```text
//! kubectl proxy            GET /api/v1/namespaces/default/services/ngx-svc:80/proxy/index.html
//!   (127.0.0.1:8001)  ──▶  apiserver: the Service's port 80 is named "", its ready
//!                          endpoints are 10.244.1.5:80 and 10.244.2.3:80; pick one
//!                     ──▶  GET http://10.244.2.3:80/index.html, its answer passed back
//! ```
//!
//! The name may carry a port and a scheme, as upstream reads it:
//! `ngx-svc`, `ngx-svc:80`, `ngx-svc:http` (a port name), `https:ngx-svc:443`.
//! For a Pod, the port is a number (or the first container port when
//! left out); for a Service, a port number is first turned into the name
//! of the Service port that has it, and an endpoint is picked among the
//! ready ones of its EndpointSlices. The request's method, headers and
//! body go on (without the client's credentials); the answer comes back as
//! it is, streamed.
//!
//! Who may: `get` (or create, update... after the HTTP method) on
//! `pods/proxy` or `services/proxy` - upstream's edit and admin roles.
//! As upstream, addresses that are not global unicast (loopback,
//! link-local) are refused: a Pod cannot aim the apiserver at itself.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderName, Request};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::App;
use crate::status::{StatusError, Subject};
use crate::storage::ObjectKey;

/// How long connecting to a Pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What is proxied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Service,
}

/// A proxy request: `/api/v1/namespaces/{ns}/{pods|services}/{id}/proxy[/{path}]`.
#[derive(Debug, PartialEq, Eq)]
pub struct ProxyPath<'a> {
    pub kind: Kind,
    pub namespace: &'a str,
    /// `name`, `name:port` or `scheme:name:port`.
    pub id: &'a str,
    /// The rest of the path, for the Pod.
    pub rest: &'a str,
}

/// Recognizes a proxy path.
pub fn proxy_path(path: &str) -> Option<ProxyPath<'_>> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (namespace, rest) = rest.split_once('/')?;
    let (plural, rest) = rest.split_once('/')?;
    let kind = match plural {
        "pods" => Kind::Pod,
        "services" => Kind::Service,
        _ => return None,
    };
    let (id, rest) = rest.split_once('/')?;
    let rest = match rest.strip_prefix("proxy")? {
        "" => "",
        tail => tail.strip_prefix('/')?,
    };
    (!namespace.is_empty() && !id.is_empty()).then_some(ProxyPath {
        kind,
        namespace,
        id,
        rest,
    })
}

/// `scheme:name:port` in its parts (upstream's `SplitSchemeNamePort`).
fn split_id(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    let scheme_ok = matches!(scheme, "" | "http" | "https");
    (scheme_ok && !name.is_empty()).then_some((scheme, name, port))
}

fn key(plural: &str, namespace: &str, name: &str) -> Result<ObjectKey, StatusError> {
    let resource = api::resources::by_plural("", "v1", plural)
        .ok_or_else(|| StatusError::internal(format!("{plural} are not registered")))?;
    Ok(ObjectKey::new(resource, Some(namespace), name))
}

fn unavailable(message: String) -> StatusError {
    StatusError::new(503, "ServiceUnavailable", message)
}

/// Where a proxy request goes: scheme, address, port.
struct Location {
    scheme: &'static str,
    ip: IpAddr,
    port: u16,
}

/// Serves a proxy request, `body` already read.
pub async fn proxy(
    app: &Arc<App>,
    target: ProxyPath<'_>,
    parts: &Parts,
    body: bytes::Bytes,
) -> Result<Response, StatusError> {
    let location = match target.kind {
        Kind::Pod => pod_location(app, target.namespace, target.id)?,
        Kind::Service => service_location(app, target.namespace, target.id)?,
    };
    if location.scheme == "https" {
        return Err(StatusError::bad_request(
            "kube-lite proxies to Pods over http only",
        ));
    }
    forward(&location, target.rest, parts, body).await
}

fn pod_location(app: &App, namespace: &str, id: &str) -> Result<Location, StatusError> {
    let (scheme, name, port) = split_id(id)
        .ok_or_else(|| StatusError::bad_request(format!("invalid pod request {id:?}")))?;
    let pod = app
        .store
        .get(&key("pods", namespace, name)?)
        .ok_or_else(|| not_found("pods", "Pod", name))?;
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let port = if port.is_empty() {
        // The first declared container port, as upstream.
        containers
            .iter()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .find_map(|p| p["containerPort"].as_u64())
            .unwrap_or(80)
    } else if let Ok(number) = port.parse::<u64>() {
        number
    } else {
        containers
            .iter()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .find(|p| p["name"] == port)
            .and_then(|p| p["containerPort"].as_u64())
            .ok_or_else(|| {
                StatusError::bad_request(format!("no port named {port:?} in pod {name:?}"))
            })?
    };
    let ip = allowed_address(pod["status"]["podIP"].as_str())?;
    Ok(Location {
        scheme: if scheme == "https" { "https" } else { "http" },
        ip,
        port: u16::try_from(port).map_err(|_| StatusError::bad_request("invalid port"))?,
    })
}

fn service_location(app: &App, namespace: &str, id: &str) -> Result<Location, StatusError> {
    let (scheme, name, port) = split_id(id)
        .ok_or_else(|| StatusError::bad_request(format!("invalid service request {id:?}")))?;
    let service = app
        .store
        .get(&key("services", namespace, name)?)
        .ok_or_else(|| not_found("services", "Service", name))?;
    let ports = service["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // A port number names the Service port that has it.
    let port_name = match port.parse::<i64>() {
        Ok(number) => ports
            .iter()
            .find(|p| p["port"].as_i64() == Some(number))
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
            .ok_or_else(|| {
                unavailable(format!(
                    "no service port {number} found for service {name:?}"
                ))
            })?,
        Err(_) => port.to_string(),
    };
    // The ready endpoints of that port, from the Service's EndpointSlices.
    let slices = api::resources::by_plural("discovery.k8s.io", "v1", "endpointslices")
        .ok_or_else(|| StatusError::internal("endpointslices are not registered"))?;
    let snapshot = app.store.snapshot();
    let mut candidates: Vec<(IpAddr, u16)> = Vec::new();
    for (_, slice) in snapshot.list(slices, Some(namespace), None) {
        if slice["metadata"]["labels"][api::endpointslice::SERVICE_NAME_LABEL] != name {
            continue;
        }
        let Some(port) = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
        else {
            continue;
        };
        let Some(number) = port["port"].as_u64().and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            if endpoint["conditions"]["ready"] == false {
                continue;
            }
            let address = endpoint["addresses"][0].as_str();
            if let Some(ip) = address.and_then(|a| a.parse().ok()) {
                candidates.push((ip, number));
            }
        }
    }
    drop(snapshot);
    if candidates.is_empty() {
        return Err(unavailable(format!(
            "no endpoints available for service {id:?}"
        )));
    }
    let (ip, port) = candidates[rand::random_range(0..candidates.len())];
    let ip = allowed_address(Some(&ip.to_string()))?;
    Ok(Location {
        scheme: if scheme == "https" { "https" } else { "http" },
        ip,
        port,
    })
}

fn not_found(plural: &str, kind: &str, name: &str) -> StatusError {
    StatusError::not_found(Subject {
        plural,
        group: "",
        kind,
        name,
    })
}

/// A Pod address the apiserver will connect to (upstream refuses what is
/// not global unicast).
fn allowed_address(address: Option<&str>) -> Result<IpAddr, StatusError> {
    let ip: IpAddr = address
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| StatusError::bad_request("address not allowed"))?;
    let global_unicast = match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast())
        }
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified() || v6.is_multicast()),
    };
    if !global_unicast {
        return Err(StatusError::bad_request("address not allowed"));
    }
    Ok(ip)
}

/// Headers that belong to one connection, or to the apiserver.
fn passed_on(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "authorization"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
            | "impersonate-user"
            | "impersonate-group"
    )
}

async fn forward(
    location: &Location,
    rest: &str,
    parts: &Parts,
    body: bytes::Bytes,
) -> Result<Response, StatusError> {
    let address = format!("{}:{}", location.ip, location.port);
    let failed = |why: String| unavailable(format!("error trying to reach service: {why}"));
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&address))
        .await
        .map_err(|_| failed(format!("dial tcp {address}: i/o timeout")))?
        .map_err(|e| failed(format!("dial tcp {address}: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "proxied connection ended");
        }
    });
    let uri = match parts.uri.query() {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    };
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .header(header::HOST, &address);
    for (name, value) in &parts.headers {
        if passed_on(name) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(Body::from(body))
        .map_err(|e| StatusError::internal(format!("building the proxied request: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (mut head, body) = response.into_parts();
    let hop_by_hop: Vec<HeaderName> = head
        .headers
        .keys()
        .filter(|name| !passed_on(name))
        .cloned()
        .collect();
    for name in hop_by_hop {
        head.headers.remove(name);
    }
    Ok(Response::from_parts(head, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths_name_the_object_and_the_rest() {
        assert_eq!(
            proxy_path("/api/v1/namespaces/default/services/ngx-svc:80/proxy/a/b"),
            Some(ProxyPath {
                kind: Kind::Service,
                namespace: "default",
                id: "ngx-svc:80",
                rest: "a/b"
            })
        );
        assert_eq!(
            proxy_path("/api/v1/namespaces/default/pods/web-0/proxy"),
            Some(ProxyPath {
                kind: Kind::Pod,
                namespace: "default",
                id: "web-0",
                rest: ""
            })
        );
        assert_eq!(
            proxy_path("/api/v1/namespaces/default/pods/web-0/log"),
            None
        );
        assert_eq!(
            proxy_path("/api/v1/namespaces/default/pods/web-0/proxyx"),
            None
        );
        assert_eq!(
            proxy_path("/api/v1/namespaces/default/configmaps/x/proxy"),
            None
        );
    }

    #[test]
    fn ids_carry_scheme_name_and_port() {
        assert_eq!(split_id("web"), Some(("", "web", "")));
        assert_eq!(split_id("web:80"), Some(("", "web", "80")));
        assert_eq!(split_id("https:web:443"), Some(("https", "web", "443")));
        assert_eq!(split_id("ftp:web:21"), None);
        assert_eq!(split_id(":80"), None);
    }

    #[test]
    fn only_global_unicast_addresses_are_proxied_to() {
        assert!(allowed_address(Some("10.244.1.5")).is_ok());
        for refused in [
            None,
            Some("127.0.0.1"),
            Some("169.254.1.1"),
            Some("0.0.0.0"),
            Some("x"),
        ] {
            let err = allowed_address(refused).unwrap_err();
            assert_eq!(
                (err.code, err.message.as_str()),
                (400, "address not allowed")
            );
        }
    }
}

//! The proxy's metrics, on `/metrics` of the metrics port (kube-proxy's
//! `--metrics-bind-address`, port 10249 on the node IP).
//!
//! The names are kube-proxy's, so that dashboards and the lesson's
//! `curl <node>:10249/metrics | grep kubeproxy` look the same:
//!
//! - `kubeproxy_sync_proxy_rules_duration_seconds`: how long one sync
//!   (compute, diff, the kernel applying it) took; `..._full_...` and `..._partial_...`
//!   split it by kind.
//! - `kubeproxy_network_programming_duration_seconds`: from the moment a
//!   change happened in the cluster (the EndpointSlice's
//!   `endpoints.kubernetes.io/last-change-trigger-time`, set by the
//!   controller) to the rules being live on this node - the number a user
//!   feels.
//! - `kubeproxy_sync_proxy_rules_nftables_objects{kind}`: chains, rules and
//!   map elements in the table; `kubeproxy_services` and
//!   `kubeproxy_service_ports`: what is programmed.
//! - `kubeproxy_sync_proxy_rules_nftables_sync_failures_total`: failed
//!   transactions (each is retried as a full resync).

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::ProxyError;

/// kube-proxy's metrics port.
pub const DEFAULT_METRICS_PORT: u16 = 10249;

/// Every metric of the proxy, registered in one registry.
pub struct ProxyMetrics {
    registry: Registry,
    pub sync_duration: Histogram,
    pub full_sync_duration: Histogram,
    pub partial_sync_duration: Histogram,
    pub network_programming: Histogram,
    pub sync_failures: Counter,
    /// Lines of the last transaction sent (how small a change was).
    pub last_transaction_lines: Gauge,
    pub objects: Family<Vec<(String, String)>, Gauge>,
    pub services: Gauge,
    pub service_ports: Gauge,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyMetrics {
    pub fn new() -> ProxyMetrics {
        let mut registry = Registry::default();
        // 1 ms .. ~16 s, doubling.
        let sync_buckets = || exponential_buckets(0.001, 2.0, 15);
        let sync_duration = Histogram::new(sync_buckets());
        let full_sync_duration = Histogram::new(sync_buckets());
        let partial_sync_duration = Histogram::new(sync_buckets());
        // 1 ms .. ~65 s.
        let network_programming = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let sync_failures = Counter::default();
        let last_transaction_lines = Gauge::default();
        let objects = Family::<Vec<(String, String)>, Gauge>::default();
        let services = Gauge::default();
        let service_ports = Gauge::default();
        registry.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            sync_duration.clone(),
        );
        registry.register(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            full_sync_duration.clone(),
        );
        registry.register(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            partial_sync_duration.clone(),
        );
        registry.register(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            network_programming.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures",
            "nftables sync failures",
            sync_failures.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_last_transaction_lines",
            "Lines of the last nftables transaction",
            last_transaction_lines.clone(),
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_nftables_objects",
            "Objects in the kube-lite table, by kind",
            objects.clone(),
        );
        registry.register(
            "kubeproxy_services",
            "Services programmed",
            services.clone(),
        );
        registry.register(
            "kubeproxy_service_ports",
            "Service ports programmed",
            service_ports.clone(),
        );
        ProxyMetrics {
            registry,
            sync_duration,
            full_sync_duration,
            partial_sync_duration,
            network_programming,
            sync_failures,
            last_transaction_lines,
            objects,
            services,
            service_ports,
        }
    }

    /// Records the table's size after a sync.
    pub fn set_counts(&self, chains: usize, rules: usize, elements: usize) {
        for (kind, n) in [("chain", chains), ("rule", rules), ("element", elements)] {
            self.objects
                .get_or_create(&vec![("kind".to_string(), kind.to_string())])
                .set(n as i64);
        }
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Serves `/metrics` on `addr` until the agent stops.
pub async fn serve(addr: SocketAddr, metrics: Arc<ProxyMetrics>) -> Result<(), ProxyError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Metrics { addr, source })?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .await
        .map_err(|source| ProxyError::Metrics { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_kube_proxy_names() {
        let m = ProxyMetrics::new();
        m.sync_duration.observe(0.004);
        m.set_counts(3, 4, 5);
        m.services.set(1);
        let text = m.render();
        assert!(
            text.contains("kubeproxy_sync_proxy_rules_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("kubeproxy_sync_proxy_rules_nftables_objects{kind=\"rule\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("kubeproxy_network_programming_duration_seconds"),
            "{text}"
        );
        assert!(text.contains("kubeproxy_services 1"), "{text}");
    }
}

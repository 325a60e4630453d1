//! Facts about EndpointSlices that the controller writes and the node
//! agent (service proxy, cluster DNS) reads.

use k8s_openapi::api::discovery::v1::Endpoint;

/// The label naming the Service a slice belongs to
/// (`kubectl get endpointslice -l kubernetes.io/service-name=ngx-svc`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The annotation saying when the change a slice reflects happened: the
/// start of kube-proxy's network programming latency.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// An endpoint's conditions with the API's defaults filled in: `ready`
/// defaults to true, `serving` to `ready`, `terminating` to false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditions {
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

impl Conditions {
    pub fn of(endpoint: &Endpoint) -> Conditions {
        let c = endpoint.conditions.as_ref();
        let ready = c.and_then(|c| c.ready).unwrap_or(true);
        Conditions {
            ready,
            serving: c.and_then(|c| c.serving).unwrap_or(ready),
            terminating: c.and_then(|c| c.terminating).unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    #[test]
    fn defaults() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "default",
                         "labels": {SERVICE_NAME_LABEL: "ngx-svc"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.5"]},
                          {"addresses": ["10.244.1.6"], "conditions": {"ready": false, "terminating": true}}],
        }))
        .unwrap();
        let eps = slice.endpoints.as_ref().unwrap();
        assert_eq!(
            Conditions::of(&eps[0]),
            Conditions {
                ready: true,
                serving: true,
                terminating: false
            }
        );
        assert_eq!(
            Conditions::of(&eps[1]),
            Conditions {
                ready: false,
                serving: false,
                terminating: true
            }
        );
    }
}

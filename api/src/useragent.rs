//! The `User-Agent` each component sends, as Kubernetes' components send
//! theirs: `kubelet/v1.35.0 (linux/amd64) kubernetes/kube-lite`.
//!
//! The apiserver names a write's manager in `managedFields` after the
//! User-Agent's first word when the client gives no `fieldManager`, so the
//! node agent's status writes show as `kubelet` and the controllers' as
//! `kube-controller-manager`, as on a real cluster.

/// The Kubernetes release kube-lite follows.
pub const KUBERNETES_VERSION: &str = "v1.35.0";

/// The User-Agent of `component` (`kubelet`, `kube-controller-manager`).
pub fn user_agent(component: &str) -> String {
    format!(
        "{component}/{KUBERNETES_VERSION} ({}/{}) kubernetes/kube-lite",
        std::env::consts::OS,
        go_arch()
    )
}

/// The architecture as Go names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_word_is_the_component() {
        let ua = super::user_agent("kubelet");
        assert!(ua.starts_with("kubelet/v1.35.0 ("), "{ua}");
        assert!(ua.ends_with(") kubernetes/kube-lite"), "{ua}");
    }
}

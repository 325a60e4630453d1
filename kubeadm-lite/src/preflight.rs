//! The checks made before anything is written (kubeadm's preflight): a
//! mistake on the command line is reported naming the flag, and leaves
//! the machine as it was.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs as _, UdpSocket};
use std::path::Path;
use std::time::Duration;

use crate::{Error, Result};

/// VirtualBox's NAT address: the same on every VM, so never a node's.
pub const VIRTUALBOX_NAT_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

/// The IPv4 addresses of this machine's interfaces.
pub fn local_addresses() -> Vec<Ipv4Addr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return vec![];
    };
    interfaces
        .filter_map(|i| i.address)
        .filter_map(|a| a.as_sockaddr_in().map(|s| s.ip()))
        .collect()
}

/// `--node-ip` must be this machine's, and not the NAT address.
pub fn node_ip(ip: Ipv4Addr) -> Result<()> {
    if ip == VIRTUALBOX_NAT_ADDRESS {
        return Err(Error::flag(
            "--node-ip",
            "10.0.2.15 is VirtualBox's NAT address, the same on every VM: other nodes cannot \
             reach this one there. Use the host-only address (192.168.56.x, `ip -4 addr show`).",
        ));
    }
    let here = local_addresses();
    if here.contains(&ip) {
        return Ok(());
    }
    let list: Vec<String> = here.iter().map(Ipv4Addr::to_string).collect();
    Err(Error::flag(
        "--node-ip",
        format!(
            "{ip} is not an address of this machine (it has {})",
            list.join(", ")
        ),
    ))
}

/// `--token`: `abcdef.0123456789abcdef`.
pub fn token(token: &str) -> Result<()> {
    if api::bootstraptoken::is_token(token) {
        Ok(())
    } else {
        Err(Error::flag(
            "--token",
            format!(
                "{token:?} is not a bootstrap token: the form is [a-z0-9]{{6}}.[a-z0-9]{{16}}, \
                 like abcdef.0123456789abcdef"
            ),
        ))
    }
}

/// `--discovery-token-ca-cert-hash`: `sha256:` and 64 hex digits.
pub fn ca_hash(hash: &str) -> Result<()> {
    let ok = hash
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(Error::flag(
            "--discovery-token-ca-cert-hash",
            format!("{hash:?} is not a CA hash: the form is sha256: and 64 hex digits, as init printed it"),
        ))
    }
}

/// `API_SERVER_ENDPOINT`: `host:port`, resolved.
pub fn endpoint(text: &str) -> Result<SocketAddr> {
    let bad = |why: &str| {
        Error::flag(
            "API_SERVER_ENDPOINT",
            format!("{text:?} {why}: give the master's address and port, like 192.168.56.10:6443"),
        )
    };
    if text.contains("://") || !text.contains(':') {
        return Err(bad("is not host:port"));
    }
    text.to_socket_addrs()
        .map_err(|_| bad("does not resolve"))?
        .next()
        .ok_or_else(|| bad("does not resolve"))
}

/// The master answers TCP at `addr`.
pub fn reachable(addr: SocketAddr) -> Result<()> {
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map(drop)
        .map_err(|e| {
            Error::flag(
                "API_SERVER_ENDPOINT",
                format!(
                    "cannot reach the apiserver at {addr}: {e}. Is `kubeadm-lite init` done on \
                     the master, and is this VM on its host-only network?"
                ),
            )
        })
}

/// The address this machine sends from towards `master`: the interface
/// the kernel routes that way (no packet is sent). On a VirtualBox VM
/// that is the host-only NIC, never the NAT one, which is what a node
/// must register.
pub fn address_towards(master: SocketAddr) -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect(master).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// The kube-lite programs the units run are in `bin_dir`.
pub fn binaries(bin_dir: &Path, names: &[&str]) -> Result<()> {
    for name in names {
        if !bin_dir.join(name).is_file() {
            return Err(Error::flag(
                "--bin-dir",
                format!(
                    "{} has no `{name}`: copy the kube-lite binaries there (or name their directory)",
                    bin_dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// systemd must run this machine unless told not to use it.
pub fn systemd(no_systemd: bool) -> Result<()> {
    if no_systemd || crate::units::systemd_running() {
        Ok(())
    } else {
        Err(Error::flag(
            "--no-systemd",
            "systemd is not running here (no /run/systemd/system): pass --no-systemd and start \
             the printed commands yourself",
        ))
    }
}

/// A node name is a DNS subdomain (it names the Node object).
pub fn node_name(name: &str) -> Result<()> {
    let problems = api::names::is_dns1123_subdomain(name);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::flag(
            "--node-name",
            format!("{name:?}: {}", problems.join("; ")),
        ))
    }
}

/// This machine's host name, the default node name (lower-cased, as the
/// kubelet does).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nat_address_and_foreign_addresses_are_refused() {
        let nat = node_ip(VIRTUALBOX_NAT_ADDRESS).unwrap_err().to_string();
        assert!(
            nat.starts_with("--node-ip: 10.0.2.15 is VirtualBox's NAT address"),
            "{nat}"
        );
        let foreign = node_ip("203.0.113.7".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            foreign.starts_with(
                "--node-ip: 203.0.113.7 is not an address of this machine (it has 127.0.0.1"
            ),
            "{foreign}"
        );
        node_ip(Ipv4Addr::LOCALHOST).unwrap();
    }

    #[test]
    fn forms_are_checked_naming_the_flag() {
        token("abcdef.0123456789abcdef").unwrap();
        assert!(token("abc.def")
            .unwrap_err()
            .to_string()
            .starts_with("--token: \"abc.def\""));
        ca_hash(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert!(ca_hash("md5:1")
            .unwrap_err()
            .to_string()
            .starts_with("--discovery-token-ca-cert-hash:"));
        assert!(endpoint("https://192.168.56.10:6443")
            .unwrap_err()
            .to_string()
            .starts_with("API_SERVER_ENDPOINT: \"https://192.168.56.10:6443\" is not host:port"));
        assert_eq!(endpoint("127.0.0.1:6443").unwrap().port(), 6443);
        assert!(node_name("Bad_Name").is_err());
    }

    #[test]
    fn the_address_towards_loopback_is_loopback() {
        let addr: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        assert_eq!(address_towards(addr), Some(Ipv4Addr::LOCALHOST));
    }
}

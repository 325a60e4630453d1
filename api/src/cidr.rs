//! CIDR ranges (`10.96.0.0/12`): parsed once, with one set of words for
//! what is wrong, by every component that reads one from a flag or an
//! object (the apiserver's Service range, the controller's Pod range, the
//! node agent's). The arithmetic is `ipnet`'s.

use std::net::Ipv4Addr;

pub use ipnet::Ipv4Net;

/// Why a text is not an IPv4 CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("expected an IPv4 CIDR such as 10.96.0.0/12")]
    NotACidr,
    #[error("{0:?} is not an IPv4 address")]
    NotAnAddress(String),
    #[error("the prefix length must be a number from 0 to 32")]
    BadPrefix,
}

/// `10.96.0.0/12` as a network. Host bits are kept (`10.96.0.1/12`);
/// [`Ipv4Net::trunc`] drops them, as upstream's CIDR parsing does.
pub fn parse_ipv4(cidr: &str) -> Result<Ipv4Net, CidrError> {
    let (addr, prefix) = cidr.split_once('/').ok_or(CidrError::NotACidr)?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| CidrError::NotAnAddress(addr.to_string()))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or(CidrError::BadPrefix)?;
    Ipv4Net::new(addr, prefix).map_err(|_| CidrError::BadPrefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_cidrs() {
        let net = parse_ipv4("10.96.0.1/12").unwrap();
        assert_eq!(net.trunc().to_string(), "10.96.0.0/12");
        assert_eq!(parse_ipv4("10.96.0.0"), Err(CidrError::NotACidr));
        assert_eq!(
            parse_ipv4("10.96.0/12"),
            Err(CidrError::NotAnAddress("10.96.0".into()))
        );
        assert_eq!(parse_ipv4("10.96.0.0/33"), Err(CidrError::BadPrefix));
        assert_eq!(parse_ipv4("10.96.0.0/x"), Err(CidrError::BadPrefix));
    }
}

//! Pod IPAM: numbering the Pods of one node from the node's pod CIDR.
//!
//! The controller gives each node a block of the Pod network
//! (`spec.podCIDR`, e.g. `10.244.1.0/24`); the node alone hands out the
//! addresses inside it, so no one else has to be asked when a Pod starts.
//! This is what the CNI bridge plugin's **host-local** IPAM does on a real
//! node:
//!
//! - the block's first address (`10.244.1.0`, the network) and last
//!   (`10.244.1.255`, the broadcast) are never given out; the second
//!   (`10.244.1.1`) is the gateway, held by the `cni0` bridge, which every
//!   Pod uses as its default route;
//! - every other address goes to at most one Pod, recorded as **one small
//!   file per address**, named after the address and holding the Pod's uid
//!   (host-local: `/var/lib/cni/networks/<network>/10.244.1.2`). The
//!   directory *is* the allocation table: `ls` shows it, and a restarted
//!   agent reads it back instead of trusting memory;
//! - a new address is searched for after the last one handed out
//!   (`last_reserved_ip.0`, as host-local does), so an address a deleted
//!   Pod just gave back is not reused at once while Service endpoints and
//!   conntrack entries may still point at it.
//!
//! A file is written to a temporary name, flushed to disk (`fsync`), then
//! hard-linked to its final name, and the directory is flushed too. The
//! link fails if the name exists, so two Pods can never end up with the
//! same address, and a crash at any point leaves either no file or a whole
//! one: never a half-written uid. Freeing an address deletes its file.
//!
//! [`Ipam::reconcile`] frees the addresses of Pods that no longer exist
//! (deleted while the agent was down): restart safety without leaks.
//!
//! An [`Ipam`] reads the directory once, when opened. Where several
//! processes share a directory (every CNI ADD and DEL is a process of its
//! own, and containerd starts Pods in parallel), each takes the
//! directory's [`DirLock`] first and opens the [`Ipam`] under it, as
//! host-local does with its `lock` file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

/// The lock file of an allocation directory (host-local's name).
pub const LOCK_FILE: &str = "lock";

/// The record of the address handed out last, so the next search starts
/// after it (host-local's file name; `.0` is the range index).
pub const LAST_RESERVED_FILE: &str = "last_reserved_ip.0";

/// What can go wrong numbering Pods.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("pod CIDR {cidr:?}: {reason}")]
    InvalidCidr { cidr: String, reason: String },
    #[error("no free address left in pod CIDR {cidr} ({in_use} of {usable} in use)")]
    RangeFull {
        cidr: Ipv4Net,
        in_use: usize,
        usable: usize,
    },
    #[error("pod uid {0:?} cannot be recorded: it must be one non-empty line")]
    InvalidUid(String),
    #[error("IPAM directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IpamError + '_ {
    move |source| IpamError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A node's pod CIDR, with the addresses the bridge network reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCidr(Ipv4Net);

impl PodCidr {
    /// Parses `"10.244.1.0/24"`. The address is normalised to the network
    /// (`10.244.1.7/24` means the same block). A block must leave room for
    /// the network, gateway and broadcast addresses and one Pod: /30 at
    /// most.
    pub fn parse(cidr: &str) -> Result<PodCidr, IpamError> {
        let invalid = |reason: &str| IpamError::InvalidCidr {
            cidr: cidr.to_string(),
            reason: reason.to_string(),
        };
        let net: Ipv4Net = cidr
            .trim()
            .parse()
            .map_err(|_| invalid("not an IPv4 CIDR (like 10.244.1.0/24)"))?;
        if net.prefix_len() > 30 {
            return Err(invalid(
                "too small: a block needs a network, a gateway, a broadcast and a Pod address (/30 at most)",
            ));
        }
        Ok(PodCidr(net.trunc()))
    }

    pub fn net(&self) -> Ipv4Net {
        self.0
    }

    /// The bridge's address and every Pod's default gateway: the block's
    /// first usable address (`10.244.1.1`).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.0.network()) + 1)
    }

    /// The addresses Pods may get: from after the gateway to before the
    /// broadcast address.
    pub fn pod_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.0.network()) + 2;
        let last = u32::from(self.0.broadcast()) - 1;
        (first..=last).map(Ipv4Addr::from)
    }

    /// How many Pods the block can number.
    pub fn usable(&self) -> usize {
        (u32::from(self.0.broadcast()) - u32::from(self.0.network()) - 2) as usize
    }

    /// True when `ip` is one a Pod may hold.
    pub fn is_pod_address(&self, ip: Ipv4Addr) -> bool {
        self.0.contains(&ip)
            && ip != self.0.network()
            && ip != self.gateway()
            && ip != self.0.broadcast()
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The addresses of one node's Pods, kept in a directory.
///
/// Not shared between processes: one agent owns one directory. Wrap it in
/// a mutex to share it between tasks.
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    cidr: PodCidr,
    /// Address -> Pod uid, as on disk. An empty uid stands for a file that
    /// could not be read: its address stays taken until
    /// [`Ipam::reconcile`] frees it.
    allocations: BTreeMap<Ipv4Addr, String>,
    last_reserved: Option<Ipv4Addr>,
}

impl Ipam {
    /// Opens (creating if needed) the allocation directory `dir` for the
    /// block `cidr` and reads back what a previous run handed out.
    ///
    /// Leftovers are cleaned with a warning: temporary files of a write a
    /// crash interrupted, and addresses outside `cidr` (the node had
    /// another block before). A file whose uid cannot be read keeps its
    /// address taken: giving it out again could put two Pods on it.
    pub fn open(dir: &Path, cidr: PodCidr) -> Result<Ipam, IpamError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut allocations = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                tracing::warn!(file = %path.display(), "removing an unfinished IPAM write");
                fs::remove_file(&path).map_err(io_error(&path))?;
                continue;
            }
            let Ok(ip) = name.parse::<Ipv4Addr>() else {
                if name != LAST_RESERVED_FILE && name != LOCK_FILE {
                    tracing::warn!(file = %path.display(), "ignoring a file that names no address");
                }
                continue;
            };
            if !cidr.is_pod_address(ip) {
                tracing::warn!(%ip, %cidr, "removing an allocation outside the node's pod CIDR");
                fs::remove_file(&path).map_err(io_error(&path))?;
                continue;
            }
            let uid = match fs::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) if valid_uid(text.trim()) => text.trim().to_string(),
                    _ => {
                        tracing::warn!(file = %path.display(), "allocation file holds no pod uid; the address stays taken until reconcile frees it");
                        String::new()
                    }
                },
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "unreadable allocation file; the address stays taken until reconcile frees it");
                    String::new()
                }
            };
            allocations.insert(ip, uid);
        }
        let last_reserved = fs::read_to_string(dir.join(LAST_RESERVED_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|ip| cidr.is_pod_address(*ip));
        Ok(Ipam {
            dir: dir.to_path_buf(),
            cidr,
            allocations,
            last_reserved,
        })
    }

    pub fn cidr(&self) -> PodCidr {
        self.cidr
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The address of Pod `pod_uid`, if it has one.
    pub fn lookup(&self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.allocations
            .iter()
            .find(|(_, uid)| uid.as_str() == pod_uid)
            .map(|(ip, _)| *ip)
    }

    /// Every allocation, by address: (address, Pod uid; empty for an
    /// unreadable file).
    pub fn list(&self) -> Vec<(Ipv4Addr, String)> {
        self.allocations
            .iter()
            .map(|(ip, uid)| (*ip, uid.clone()))
            .collect()
    }

    /// Gives Pod `pod_uid` an address, on disk before it is returned.
    /// Asking again for the same Pod returns the same address: a Pod
    /// whose setup is retried (or a restarted agent) keeps its IP.
    pub fn allocate(&mut self, pod_uid: &str) -> Result<Ipv4Addr, IpamError> {
        if !valid_uid(pod_uid) {
            return Err(IpamError::InvalidUid(pod_uid.to_string()));
        }
        if let Some(ip) = self.lookup(pod_uid) {
            return Ok(ip);
        }
        // Search after the last address handed out, wrapping around.
        let all: Vec<Ipv4Addr> = self.cidr.pod_addresses().collect();
        let start = self
            .last_reserved
            .and_then(|last| all.iter().position(|ip| *ip == last))
            .map_or(0, |i| i + 1);
        for ip in all[start..].iter().chain(&all[..start]) {
            if self.allocations.contains_key(ip) {
                continue;
            }
            if self.record(*ip, pod_uid)? {
                self.allocations.insert(*ip, pod_uid.to_string());
                self.last_reserved = Some(*ip);
                self.write_last_reserved(*ip);
                return Ok(*ip);
            }
            // Someone else's file appeared under that name: it is taken.
            tracing::warn!(%ip, "allocation file appeared outside this IPAM; skipping the address");
            self.allocations.insert(*ip, String::new());
        }
        Err(IpamError::RangeFull {
            cidr: self.cidr.net(),
            in_use: self.allocations.len(),
            usable: self.cidr.usable(),
        })
    }

    /// Frees the address of Pod `pod_uid`; returns it, or None when the
    /// Pod had none (freeing twice is fine).
    pub fn release(&mut self, pod_uid: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        let Some(ip) = self.lookup(pod_uid) else {
            return Ok(None);
        };
        self.forget(ip)?;
        Ok(Some(ip))
    }

    /// Frees every address whose Pod is not in `live_pod_uids` (Pods
    /// deleted while the agent was down, unreadable files); returns what
    /// it freed.
    pub fn reconcile<'a>(
        &mut self,
        live_pod_uids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<(Ipv4Addr, String)>, IpamError> {
        let live: std::collections::HashSet<&str> = live_pod_uids.into_iter().collect();
        let stale: Vec<(Ipv4Addr, String)> = self
            .allocations
            .iter()
            .filter(|(_, uid)| !live.contains(uid.as_str()))
            .map(|(ip, uid)| (*ip, uid.clone()))
            .collect();
        for (ip, uid) in &stale {
            tracing::info!(%ip, pod_uid = %uid, "releasing the address of a Pod that no longer exists");
            self.forget(*ip)?;
        }
        Ok(stale)
    }

    /// Writes `<dir>/<ip>` holding `pod_uid`, atomically and only if the
    /// name is free. Returns false when it was not.
    fn record(&self, ip: Ipv4Addr, pod_uid: &str) -> Result<bool, IpamError> {
        let tmp = self.dir.join(format!(".{ip}.tmp"));
        let path = self.dir.join(ip.to_string());
        let mut file = fs::File::create(&tmp).map_err(io_error(&tmp))?;
        file.write_all(pod_uid.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_error(&tmp))?;
        drop(file);
        // A hard link, unlike a rename, refuses to replace an existing
        // name: the file system itself guarantees one owner per address.
        let linked = match fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(IpamError::Io {
                path: path.clone(),
                source: e,
            }),
        };
        fs::remove_file(&tmp).map_err(io_error(&tmp))?;
        let linked = linked?;
        sync_dir(&self.dir)?;
        Ok(linked)
    }

    fn forget(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IpamError::Io { path, source: e }),
        }
        sync_dir(&self.dir)?;
        self.allocations.remove(&ip);
        Ok(())
    }

    /// Best effort: losing this hint after a crash only means the search
    /// starts from the beginning of the block again.
    fn write_last_reserved(&self, ip: Ipv4Addr) {
        let tmp = self.dir.join(format!(".{LAST_RESERVED_FILE}.tmp"));
        let written = fs::write(&tmp, ip.to_string())
            .and_then(|()| fs::rename(&tmp, self.dir.join(LAST_RESERVED_FILE)));
        if let Err(e) = written {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not record the last reserved address");
        }
    }
}

/// An exclusive `flock(2)` on `<dir>/lock`, released when dropped (or when
/// the process dies, so a killed plugin never leaves the directory locked).
#[derive(Debug)]
pub struct DirLock {
    _lock: nix::fcntl::Flock<fs::File>,
}

impl DirLock {
    /// Creates `dir` if needed and waits until no other process holds its
    /// lock.
    pub fn acquire(dir: &Path) -> Result<DirLock, IpamError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, errno)| IpamError::Io {
                path: path.clone(),
                source: errno.into(),
            },
        )?;
        Ok(DirLock { _lock: lock })
    }
}

/// A uid is stored as the whole content of a file: one non-empty line.
fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && !uid.contains(['\n', '\r']) && uid.trim() == uid
}

/// Flushes a directory's entries (a new or removed name) to disk.
fn sync_dir(dir: &Path) -> Result<(), IpamError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> PodCidr {
        PodCidr::parse(s).unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_pod_cidr_reserves_network_gateway_and_broadcast() {
        let c = cidr("10.244.1.0/24");
        assert_eq!(c.gateway(), ip("10.244.1.1"));
        assert_eq!(c.usable(), 253);
        let all: Vec<_> = c.pod_addresses().collect();
        assert_eq!(all.first(), Some(&ip("10.244.1.2")));
        assert_eq!(all.last(), Some(&ip("10.244.1.254")));
        assert!(!c.is_pod_address(ip("10.244.1.0")));
        assert!(!c.is_pod_address(ip("10.244.1.1")));
        assert!(!c.is_pod_address(ip("10.244.1.255")));
        assert!(!c.is_pod_address(ip("10.244.2.3")));
        assert!(c.is_pod_address(ip("10.244.1.3")));
        // Any address in the block names the block.
        assert_eq!(cidr("10.244.1.77/24"), c);
        assert_eq!(c.to_string(), "10.244.1.0/24");
    }

    #[test]
    fn blocks_too_small_or_not_cidrs_are_refused() {
        for bad in [
            "10.244.1.0/31",
            "10.244.1.0/32",
            "10.244.1.0",
            "fd00::/64",
            "x/24",
        ] {
            let err = PodCidr::parse(bad).unwrap_err();
            assert!(matches!(err, IpamError::InvalidCidr { .. }), "{bad}: {err}");
        }
        assert_eq!(cidr("10.244.1.0/30").usable(), 1);
    }

    #[test]
    fn a_29_gives_out_five_addresses_then_reports_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.1.0/29")).unwrap();
        let given: Vec<_> = (0..5)
            .map(|i| ipam.allocate(&format!("pod-{i}")).unwrap())
            .collect();
        let expected: Vec<_> = (2..=6).map(|n| ip(&format!("10.244.1.{n}"))).collect();
        assert_eq!(given, expected);
        let err = ipam.allocate("pod-5").unwrap_err();
        assert!(
            matches!(
                err,
                IpamError::RangeFull {
                    in_use: 5,
                    usable: 5,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("10.244.1.0/29"), "{err}");
        // The Pods already numbered still get their own address back.
        assert_eq!(ipam.allocate("pod-3").unwrap(), ip("10.244.1.5"));
    }

    #[test]
    fn allocating_twice_for_one_pod_gives_the_same_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).unwrap();
        let a = ipam.allocate("uid-a").unwrap();
        assert_eq!(ipam.allocate("uid-a").unwrap(), a);
        assert_eq!(ipam.list(), vec![(a, "uid-a".to_string())]);
        let b = ipam.allocate("uid-b").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn each_allocation_is_a_file_named_after_the_address_holding_the_uid() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).unwrap();
        let a = ipam.allocate("3f1c-uid").unwrap();
        let content = fs::read_to_string(dir.path().join(a.to_string())).unwrap();
        assert_eq!(content, "3f1c-uid");
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn a_reopened_directory_remembers_every_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let c = cidr("10.244.1.0/29");
        let (a, b) = {
            let mut ipam = Ipam::open(dir.path(), c).unwrap();
            (ipam.allocate("a").unwrap(), ipam.allocate("b").unwrap())
        };
        // A restarted agent: same addresses for the same Pods, and the new
        // Pod gets an address nobody has.
        let mut ipam = Ipam::open(dir.path(), c).unwrap();
        assert_eq!(ipam.lookup("a"), Some(a));
        assert_eq!(ipam.allocate("b").unwrap(), b);
        let c3 = ipam.allocate("c").unwrap();
        assert!(![a, b].contains(&c3));
        for uid in ["d", "e"] {
            ipam.allocate(uid).unwrap();
        }
        let mut reopened = Ipam::open(dir.path(), c).unwrap();
        assert!(matches!(
            reopened.allocate("f"),
            Err(IpamError::RangeFull { .. })
        ));
    }

    #[test]
    fn released_addresses_are_reused_only_after_the_rest_of_the_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.1.0/29")).unwrap();
        let a = ipam.allocate("a").unwrap();
        assert_eq!(ipam.release("a").unwrap(), Some(a));
        assert!(!dir.path().join(a.to_string()).exists());
        assert_eq!(ipam.lookup("a"), None);
        // Releasing again is not an error.
        assert_eq!(ipam.release("a").unwrap(), None);
        // The next Pod gets the next address, not the one just freed...
        assert_eq!(ipam.allocate("b").unwrap(), ip("10.244.1.3"));
        // ...also after a restart.
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.1.0/29")).unwrap();
        assert_eq!(ipam.allocate("c").unwrap(), ip("10.244.1.4"));
        for uid in ["d", "e"] {
            ipam.allocate(uid).unwrap();
        }
        // The search wraps around to the freed address last.
        assert_eq!(ipam.allocate("f").unwrap(), a);
    }

    #[test]
    fn reconcile_frees_the_addresses_of_pods_that_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).unwrap();
        let a = ipam.allocate("alive").unwrap();
        let b = ipam.allocate("deleted-while-down").unwrap();
        let freed = ipam.reconcile(["alive", "never-allocated"]).unwrap();
        assert_eq!(freed, vec![(b, "deleted-while-down".to_string())]);
        assert_eq!(ipam.list(), vec![(a, "alive".to_string())]);
        assert!(!dir.path().join(b.to_string()).exists());
        // Nothing left to do the second time.
        assert!(ipam.reconcile(["alive"]).unwrap().is_empty());
    }

    #[test]
    fn a_corrupt_file_keeps_its_address_taken_until_reconcile() {
        let dir = tempfile::tempdir().unwrap();
        let c = cidr("10.244.1.0/29");
        fs::write(dir.path().join("10.244.1.2"), b"").unwrap();
        fs::write(dir.path().join("10.244.1.3"), [0xff, 0xfe, b'\n']).unwrap();
        fs::write(dir.path().join("10.244.1.4"), "pod-x\n").unwrap();
        let mut ipam = Ipam::open(dir.path(), c).unwrap();
        assert_eq!(ipam.lookup("pod-x"), Some(ip("10.244.1.4")));
        assert_eq!(ipam.allocate("new").unwrap(), ip("10.244.1.5"));
        let freed = ipam.reconcile(["pod-x", "new"]).unwrap();
        let freed: Vec<_> = freed.into_iter().map(|(ip, _)| ip).collect();
        assert_eq!(freed, vec![ip("10.244.1.2"), ip("10.244.1.3")]);
        assert!(!dir.path().join("10.244.1.2").exists());
    }

    #[test]
    fn leftovers_of_interrupted_writes_and_of_another_block_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".10.244.1.2.tmp"), "half").unwrap();
        fs::write(dir.path().join("10.244.9.2"), "old-block").unwrap();
        fs::write(dir.path().join("10.244.1.1"), "on-the-gateway").unwrap();
        fs::write(dir.path().join("README"), "not ours").unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).unwrap();
        assert!(ipam.list().is_empty());
        assert!(!dir.path().join(".10.244.1.2.tmp").exists());
        assert!(!dir.path().join("10.244.9.2").exists());
        assert!(!dir.path().join("10.244.1.1").exists());
        assert!(dir.path().join("README").exists());
        assert_eq!(ipam.allocate("p").unwrap(), ip("10.244.1.2"));
    }

    #[test]
    fn an_address_whose_file_appeared_meanwhile_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).unwrap();
        fs::write(dir.path().join("10.244.1.2"), "someone-else").unwrap();
        assert_eq!(ipam.allocate("p").unwrap(), ip("10.244.1.3"));
        assert_eq!(
            fs::read_to_string(dir.path().join("10.244.1.2")).unwrap(),
            "someone-else"
        );
    }

    #[test]
    fn uids_that_cannot_be_stored_as_one_line_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.244.1.0/24")).unwrap();
        for bad in ["", "a\nb", " padded"] {
            assert!(matches!(ipam.allocate(bad), Err(IpamError::InvalidUid(_))));
        }
        assert!(ipam.list().is_empty());
    }
}

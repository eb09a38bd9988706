//! The nf_tables ruleset generation of this network namespace: a counter the kernel
//! advances with every committed nftables transaction, in any table of any family
//! (`NFT_MSG_GETGEN` over netlink, `include/uapi/linux/netfilter/nf_tables.h`; the
//! number libnftables checks its cache against). iptables-nft commits a restore one table
//! at a time, at each `COMMIT` line: a restore of two tables advances it by two (measured,
//! iptables 1.8.9); reads and `--test` do not advance it.
//!
//! So when the generation is the one the last apply left, made with the same inputs,
//! nothing in nftables changed since, and `start` need not read tens of thousands of
//! rules back over netlink to know it.

use std::os::unix::fs::MetadataExt;

use rustix::net::{
    netlink, recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};

use crate::error::{Error, Result};

/// `NFNL_SUBSYS_NFTABLES` (`linux/netfilter/nfnetlink.h`).
const SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWGEN` (the reply) and `NFT_MSG_GETGEN` (the request).
const MSG_NEWGEN: u16 = 15;
const MSG_GETGEN: u16 = 16;
/// `NFTA_GEN_ID`: the generation, a big-endian u32.
const ATTR_GEN_ID: u16 = 1;
/// `struct nlmsghdr` and `struct nfgenmsg`.
const HEADER_LEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// One reading of the generation, tied to this boot and network namespace (a new one
/// starts again at 1). Recorded as `"BOOT NETNS ID"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// `/proc/sys/kernel/random/boot_id`.
    boot: String,
    /// The inode of `/proc/self/ns/net`.
    netns: u64,
    id: u32,
}

impl Generation {
    /// Asks the kernel. Errors: no nf_tables in this kernel, or the netlink socket or
    /// request refused.
    pub fn read() -> Result<Generation> {
        let boot = fs_err::read_to_string("/proc/sys/kernel/random/boot_id")?;
        let netns = fs_err::metadata("/proc/self/ns/net")?.ino();
        Ok(Generation {
            boot: boot.trim().to_string(),
            netns,
            id: ask()?,
        })
    }

    /// The generation `commits` transactions after this one.
    pub fn after(&self, commits: usize) -> Generation {
        Generation {
            id: self.id.wrapping_add(commits as u32),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.boot, self.netns, self.id)
    }
}

/// One `NFT_MSG_GETGEN` request and its reply.
fn ask() -> Result<u32> {
    let context = |e: rustix::io::Errno| {
        Error::from(std::io::Error::from(e))
            .context("asking the kernel for the nftables generation")
    };
    let socket = socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        Some(netlink::NETFILTER),
    )
    .map_err(context)?;
    send(&socket, &request(), SendFlags::empty()).map_err(context)?;
    let mut reply = [0u8; 512];
    let (got, _) = recv(&socket, &mut reply, RecvFlags::empty()).map_err(context)?;
    parse_reply(&reply[..got])
}

/// `struct nlmsghdr` (type `NFT_MSG_GETGEN` of nf_tables, `NLM_F_REQUEST`) and a
/// `struct nfgenmsg` of no family, in host byte order but the resource id.
fn request() -> Vec<u8> {
    let mut msg = Vec::with_capacity(HEADER_LEN + NFGENMSG_LEN);
    msg.extend_from_slice(&((HEADER_LEN + NFGENMSG_LEN) as u32).to_ne_bytes());
    msg.extend_from_slice(&(SUBSYS_NFTABLES << 8 | MSG_GETGEN).to_ne_bytes());
    msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg
}

/// The generation in the kernel's reply: an `NFT_MSG_NEWGEN` message holding
/// `NFTA_GEN_ID`, or an `NLMSG_ERROR` with the errno.
fn parse_reply(reply: &[u8]) -> Result<u32> {
    let malformed = || Error::failed("the kernel's nftables generation reply is malformed");
    let u16_at = |at: usize| Some(u16::from_ne_bytes(reply.get(at..at + 2)?.try_into().ok()?));
    let len = (reply.get(..4))
        .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")) as usize)
        .filter(|&len| len <= reply.len())
        .ok_or_else(malformed)?;
    match u16_at(4).ok_or_else(malformed)? {
        kind if kind == libc::NLMSG_ERROR as u16 => {
            let errno = (reply.get(HEADER_LEN..HEADER_LEN + 4))
                .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(malformed)?;
            Err(Error::from(std::io::Error::from_raw_os_error(-errno))
                .context("asking the kernel for the nftables generation"))
        }
        kind if kind == SUBSYS_NFTABLES << 8 | MSG_NEWGEN => {
            let mut at = HEADER_LEN + NFGENMSG_LEN;
            while at + 4 <= len {
                let (size, attr) = (u16_at(at).ok_or_else(malformed)?, u16_at(at + 2));
                let size = size as usize;
                if size < 4 || at + size > len {
                    return Err(malformed());
                }
                if attr == Some(ATTR_GEN_ID) && size >= 8 {
                    let id = reply[at + 4..at + 8].try_into().expect("4 bytes");
                    return Ok(u32::from_be_bytes(id));
                }
                at += (size + 3) & !3;
            }
            Err(malformed())
        }
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as the kernel sends it: header, nfgenmsg, then `attrs` (type, payload).
    fn reply(kind: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![0u8; NFGENMSG_LEN];
        for (attr, payload) in attrs {
            body.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&attr.to_ne_bytes());
            body.extend_from_slice(payload);
            body.resize((body.len() + 3) & !3, 0);
        }
        let mut msg = ((HEADER_LEN + body.len()) as u32).to_ne_bytes().to_vec();
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&[0u8; 10]);
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn reads_the_generation_after_other_attributes_and_reports_errors() {
        let newgen = SUBSYS_NFTABLES << 8 | MSG_NEWGEN;
        let name: &[u8] = b"iptables-nft\0";
        let ok = reply(newgen, &[(3, name), (1, &1234u32.to_be_bytes())]);
        assert_eq!(parse_reply(&ok).unwrap(), 1234);
        let without = reply(newgen, &[(3, name)]);
        assert!(parse_reply(&without).is_err());
        let mut refused = reply(libc::NLMSG_ERROR as u16, &[]);
        refused[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        let message = parse_reply(&refused).unwrap_err().to_string();
        assert!(message.contains("not permitted"), "{message}");
        assert!(parse_reply(&ok[..10]).is_err());
        assert_eq!(request().len(), 20);
    }

    #[test]
    fn a_generation_is_recorded_with_its_boot_and_namespace() {
        let generation = Generation {
            boot: "b".into(),
            netns: 7,
            id: u32::MAX,
        };
        assert_eq!(generation.to_string(), "b 7 4294967295");
        assert_eq!(generation.after(2).to_string(), "b 7 1");
    }
}

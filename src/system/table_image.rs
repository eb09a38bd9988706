//! The legacy (x_tables) tables of a family as the kernel hands them to
//! `iptables-legacy-save`: one binary image per table, copied out with the two
//! `getsockopt` calls libiptc makes (`IPT_SO_GET_INFO`, then `IPT_SO_GET_ENTRIES`; IPv6:
//! the `IP6T_` pair), and fingerprinted without its packet and byte counters.
//!
//! Equal images mean equal rulesets: `iptables-legacy-save` prints nothing but what is in
//! them. So when every table's image is the one the last apply left, `start` knows nothing
//! changed without a save: the copy is about a third of a save (~0.75 µs per rule, in the
//! kernel), formatting tens of thousands of rules as text the rest. A difference the text
//! would not show (a kernel that fills a field otherwise) only means the text is read and
//! compared as before. The layouts below are the kernel's ABI on 64-bit Linux
//! (`include/uapi/linux/netfilter_ipv4/ip_tables.h`, `…_ipv6/ip6_tables.h`; counters are
//! 8-byte aligned); on a 32-bit ABI the kernel refuses the request's size or the counters
//! are not where they are looked for, and again the text is read instead.

use std::os::fd::{AsRawFd, OwnedFd};

use rustix::net::{ipproto, socket_with, AddressFamily, SocketFlags, SocketType};

use crate::error::{Error, Result};
use crate::family::Family;
use crate::hash::stable_hash_wide;

/// `IPT_SO_GET_INFO` and `IP6T_SO_GET_INFO` (`IPT_BASE_CTL`); `…_GET_ENTRIES` is the next.
const SO_GET_INFO: libc::c_int = 64;
const SO_GET_ENTRIES: libc::c_int = 65;
/// `XT_TABLE_MAXNAMELEN`, the name field that starts both requests.
const NAME_LEN: usize = 32;
/// `struct ipt_getinfo`: name, valid_hooks, hook_entry[5], underflow[5], num_entries, size.
const INFO_LEN: usize = NAME_LEN + 4 + 20 + 20 + 4 + 4;
/// Where `size` (the bytes of entries) is in `struct ipt_getinfo`.
const INFO_SIZE_AT: usize = INFO_LEN - 4;
/// `struct ipt_get_entries` before its entries: name, size, padded to the entries' 8-byte
/// alignment.
const ENTRIES_AT: usize = 40;
/// How often the copy is tried again when the table changed between the two calls
/// (`EAGAIN`; only a writer that ignores the xtables lock can do that while it is held).
const TRIES: usize = 3;

/// Where one family's entry fields are: the socket to ask on, `offsetof(next_offset)`
/// and `offsetof(counters)` in `struct ipt_entry` (after `struct ipt_ip`, 84 bytes) or
/// `struct ip6t_entry` (after `struct ip6t_ip6`, 136 bytes).
struct Layout {
    domain: AddressFamily,
    level: libc::c_int,
    next_offset_at: usize,
    counters_at: usize,
}

fn layout(family: Family) -> Layout {
    match family {
        Family::V4 => Layout {
            domain: AddressFamily::INET,
            level: libc::IPPROTO_IP,
            next_offset_at: 90,
            counters_at: 96,
        },
        Family::V6 => Layout {
            domain: AddressFamily::INET6,
            level: libc::IPPROTO_IPV6,
            next_offset_at: 142,
            counters_at: 152,
        },
    }
}

/// The legacy tables the kernel has for `family` in this network namespace, in its order
/// (`/proc/net/ip_tables_names`, the list `iptables-legacy-save` walks); `None` when the
/// list cannot be read (the module not loaded, or no legacy support).
pub fn names(family: Family) -> Option<Vec<String>> {
    let list = match family {
        Family::V4 => "/proc/net/ip_tables_names",
        Family::V6 => "/proc/net/ip6_tables_names",
    };
    let text = std::fs::read_to_string(list).ok()?;
    Some(text.split_whitespace().map(str::to_string).collect())
}

/// The legacy tables of `family` whose name `wanted` takes, each with the fingerprint of
/// its image (16 hex digits, the counters left out), in the kernel's order:
/// `[("filter", "…"), ("nat", "…"), …]`. A copy costs about a microsecond per rule (~30 ms
/// for a nat table of 40,000 rules), most of it in the kernel.
/// Errors: the table list cannot be read, the raw socket cannot be opened (needs
/// `CAP_NET_RAW`), or the kernel refuses a copy (needs `CAP_NET_ADMIN`).
pub fn fingerprints(
    family: Family,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>> {
    let names = names(family).ok_or_else(|| {
        Error::failed(format!(
            "cannot read the {family} iptables-legacy table list"
        ))
    })?;
    let socket = raw_socket(family)?;
    (names.into_iter())
        .filter(|name| wanted(name))
        .map(|name| {
            let (image, size) = image(&socket, family, &name)?;
            let fingerprint = format!("{:016x}", fingerprint(family, image, size)?);
            Ok((name, fingerprint))
        })
        .collect()
}

fn raw_socket(family: Family) -> Result<OwnedFd> {
    let flags = SocketFlags::CLOEXEC;
    socket_with(
        layout(family).domain,
        SocketType::RAW,
        flags,
        Some(ipproto::RAW),
    )
    .map_err(|e| {
        Error::failed(format!(
            "cannot open a raw {family} socket to read the kernel's tables: {}",
            std::io::Error::from(e)
        ))
    })
}

/// Asks `option` of the kernel with `buf` as request and answer; returns the answer's
/// length.
fn get(
    socket: &OwnedFd,
    family: Family,
    option: libc::c_int,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    let level = layout(family).level;
    // SAFETY: buf is valid for len bytes; the kernel writes at most len bytes and the new
    // length into len.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            option,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(len as usize)
}

/// One table's `struct ipt_getinfo` and its entries (`struct ipt_get_entries` with the
/// header): what libiptc copies out for `iptables-legacy-save -t NAME`.
fn image(socket: &OwnedFd, family: Family, name: &str) -> Result<(Vec<u8>, usize)> {
    let context = |e: Error| {
        e.context(format!(
            "copying the {family} table {name} out of the kernel"
        ))
    };
    let io = |e: std::io::Error| context(Error::from(e));
    if name.len() >= NAME_LEN {
        return Err(context(Error::failed("the table name is too long")));
    }
    for _ in 0..TRIES {
        let mut info = vec![0u8; INFO_LEN];
        info[..name.len()].copy_from_slice(name.as_bytes());
        get(socket, family, SO_GET_INFO, &mut info).map_err(io)?;
        let size = u32::from_ne_bytes(info[INFO_SIZE_AT..].try_into().expect("4 bytes"));
        let size = size as usize;
        let mut image = info;
        image.resize(INFO_LEN + ENTRIES_AT + size, 0);
        let entries = &mut image[INFO_LEN..];
        entries[..name.len()].copy_from_slice(name.as_bytes());
        entries[NAME_LEN..NAME_LEN + 4].copy_from_slice(&(size as u32).to_ne_bytes());
        match get(socket, family, SO_GET_ENTRIES, entries) {
            Ok(_) => return Ok((image, size)),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => return Err(io(e)),
        }
    }
    Err(context(Error::failed(
        "the table kept changing while it was read",
    )))
}

/// The fingerprint of an image (`struct ipt_getinfo`, then `struct ipt_get_entries` with
/// `size` bytes of entries) without the counters: each entry's `counters` are zeroed, the
/// entries walked by their `next_offset`. Errors: an entry that does not fit.
fn fingerprint(family: Family, mut image: Vec<u8>, size: usize) -> Result<u64> {
    let at = layout(family);
    let entries = &mut image[INFO_LEN + ENTRIES_AT..];
    let mut off = 0;
    while off < size {
        let next_at = off + at.next_offset_at;
        let next = (entries.get(next_at..next_at + 2))
            .map(|b| u16::from_ne_bytes([b[0], b[1]]) as usize)
            .filter(|&next| next > at.counters_at && off + next <= size)
            .ok_or_else(|| Error::failed(format!("a malformed {family} table entry at {off}")))?;
        entries[off + at.counters_at..off + at.counters_at + 16].fill(0);
        off += next;
    }
    Ok(stable_hash_wide(&image[NAME_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image of `entries` IPv4 entries of `len` bytes each, every byte set from its
    /// position, with `next_offset` filled in.
    fn image(entries: usize, len: u16) -> (Vec<u8>, usize) {
        let size = entries * len as usize;
        let mut image: Vec<u8> = (0..INFO_LEN + ENTRIES_AT + size).map(|i| i as u8).collect();
        for e in 0..entries {
            let at = INFO_LEN + ENTRIES_AT + e * len as usize + 90;
            image[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        (image, size)
    }

    #[test]
    fn counters_are_left_out_and_every_other_byte_counts() {
        let (plain, size) = image(3, 152);
        let of = |image: &Vec<u8>| fingerprint(Family::V4, image.clone(), size).unwrap();
        let mut counted = plain.clone();
        // The second entry's packet and byte counters.
        let counters = INFO_LEN + ENTRIES_AT + 152 + 96;
        counted[counters..counters + 16].fill(0xff);
        assert_eq!(of(&plain), of(&counted));
        for changed in [NAME_LEN, INFO_LEN + ENTRIES_AT + 152 + 95, counters + 16] {
            let mut other = plain.clone();
            other[changed] ^= 1;
            assert_ne!(of(&plain), of(&other), "byte {changed} was left out");
        }
    }

    #[test]
    fn an_entry_that_does_not_fit_is_an_error() {
        let (mut broken, size) = image(2, 152);
        let at = INFO_LEN + ENTRIES_AT + 90;
        broken[at..at + 2].copy_from_slice(&0u16.to_ne_bytes());
        assert!(fingerprint(Family::V4, broken, size).is_err());
        let (short, size) = image(2, 152);
        assert!(fingerprint(Family::V4, short, size + 8).is_err());
    }
}

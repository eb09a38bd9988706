//! The one stable hash of iptables-docker: 64 bits, eight bytes at a step (an
//! FxHash-style multiply-rotate). Stable across Rust versions and builds, unlike std's
//! hasher, and cheap enough to run over a whole `iptables-save` on every start. It tells
//! "the same content as recorded" from "changed" (apply records, the installed-files
//! manifest); it is no defence against anyone.

#![forbid(unsafe_code)]

/// Feeds fields one by one; each field's length is fed too, so fields cannot run into
/// each other.
#[derive(Debug, Clone)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl StableHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    pub fn new() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }

    /// Feeds one field.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.mix(u64::from_le_bytes(tail));
        self.mix(bytes.len() as u64);
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The hash of `bytes` as one field.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = StableHasher::new();
    h.feed(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_stable_and_separates_fields() {
        // Pinned: apply records and installed-files manifests on disk depend on it.
        assert_eq!(format!("{:016x}", stable_hash(b"")), "c1e95949a5b080b5");
        assert_eq!(format!("{:016x}", stable_hash(b"a")), "99e3c9633cd535e1");
        let mut ab = StableHasher::new();
        ab.feed(b"ab");
        ab.feed(b"");
        let mut a_b = StableHasher::new();
        a_b.feed(b"a");
        a_b.feed(b"b");
        assert_ne!(ab.finish(), a_b.finish());
        assert_ne!(stable_hash(b"unit"), stable_hash(b"unit\n"));
    }
}

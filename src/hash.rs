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

/// The hash of a large `bytes` as one field: four lanes of the same mix, fed a word each
/// in turn (four independent multiply chains, several times the throughput of one on a
/// table image of megabytes), folded into one with the tail and the length.
pub fn stable_hash_wide(bytes: &[u8]) -> u64 {
    let mut lanes = [0, 1, 2, 3].map(|i| StableHasher(StableHasher::new().0 ^ i));
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            lane.mix(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
    }
    let mut h = StableHasher::new();
    for lane in &lanes {
        h.mix(lane.0);
    }
    h.feed(blocks.remainder());
    h.mix(bytes.len() as u64);
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

    #[test]
    fn the_wide_hash_is_stable_and_sees_every_word_in_its_place() {
        let bytes: Vec<u8> = (0..100u8).collect();
        assert_eq!(
            format!("{:016x}", stable_hash_wide(b"")),
            "4edc265f4ef645c5"
        );
        assert_eq!(stable_hash_wide(&bytes), stable_hash_wide(&bytes.clone()));
        let mut swapped = bytes.clone();
        swapped.copy_within(0..8, 32);
        swapped[..8].copy_from_slice(&bytes[32..40]);
        assert_ne!(
            stable_hash_wide(&bytes),
            stable_hash_wide(&swapped),
            "two lanes' words"
        );
        let mut lanes = bytes.clone();
        lanes.swap(0, 8);
        assert_ne!(
            stable_hash_wide(&bytes),
            stable_hash_wide(&lanes),
            "two lanes swapped"
        );
        assert_ne!(stable_hash_wide(&bytes[..99]), stable_hash_wide(&bytes));
        assert_ne!(stable_hash_wide(&[0; 33]), stable_hash_wide(&[0; 32]));
    }
}

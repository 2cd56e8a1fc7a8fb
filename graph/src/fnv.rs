//! FNV-1a, 64 bits: a hash that is the same in every process, on every platform and in every
//! version, as graph fingerprints, the retry jitter's draws and a store's lock file names must be (std's
//! hasher promises none of that). Hand-written: a dozen lines, not worth a dependency in a
//! module the proc-macro compiles.

/// An FNV-1a hash being fed.
pub struct Fnv1a(u64);

impl Fnv1a {
    /// The offset basis, mixed with `seed` (0: plain FNV-1a).
    pub fn with_seed(seed: u64) -> Self {
        Self(0xcbf2_9ce4_8422_2325 ^ seed)
    }

    /// Feeds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash of what was fed.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The plain FNV-1a hash of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut fnv = Fnv1a::with_seed(0);
    fnv.write(bytes);
    fnv.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_values() {
        assert_eq!(super::hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

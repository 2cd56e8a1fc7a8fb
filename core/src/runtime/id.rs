//! A run's id, on its own: the errors, the reports, the store and the context all name a
//! run, and none of them owns its id.

use std::fmt;
use std::sync::Arc;

/// A run's id. It is also the run's idempotency key: starting an id that exists returns the
/// existing run.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(Arc<str>);

impl RunId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Which of `mask + 1` shards (a power of two) the id falls in, for the tables split by
    /// run id (the engine's, the in-memory store's): its bytes eight at a time, each word
    /// multiplied in, then folded. Cheap and not keyed: ids chosen to fall in one shard only
    /// make their runs share its lock.
    pub(crate) fn shard(&self, mask: usize) -> usize {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes = self.0.as_bytes();
        let mut hash = bytes.len() as u64;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0_u8; 8];
            word.copy_from_slice(chunk);
            hash = (hash ^ u64::from_le_bytes(word))
                .wrapping_mul(K)
                .rotate_left(29);
        }
        let tail = chunks.remainder();
        let mut word = [0_u8; 8];
        if let Some(head) = word.get_mut(..tail.len()) {
            head.copy_from_slice(tail);
        }
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(K);
        // The high bits mix in every byte; fold them onto the low ones the mask keeps.
        (hash ^ (hash >> 32) ^ (hash >> 47)) as usize & mask
    }
}

/// A map keyed by run id, hashed with foldhash (seeded per process, like std's SipHash, and
/// much cheaper on short ids): the engine's table and the in-memory store hash an id on every
/// run's start and end.
pub(crate) type IdMap<V> = std::collections::HashMap<RunId, V, foldhash::quality::RandomState>;

impl From<&str> for RunId {
    fn from(s: &str) -> Self {
        RunId(s.into())
    }
}

impl From<String> for RunId {
    fn from(s: String) -> Self {
        RunId(s.into())
    }
}

impl From<&String> for RunId {
    fn from(s: &String) -> Self {
        RunId(s.as_str().into())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::RunId;

    #[test]
    fn ids_spread_over_the_shards() {
        let short = |i: usize| format!("run-{i}");
        let long = |i: usize| format!("order-2026-12-05-{i:08}");
        for id in [&short as &dyn Fn(usize) -> String, &long] {
            let mut counts = [0_usize; 32];
            for i in 0..32_000 {
                counts[RunId::from(id(i)).shard(31)] += 1;
            }
            // 1,000 each on average; none far off.
            assert!(
                counts.iter().all(|&n| (800..1_200).contains(&n)),
                "{counts:?}"
            );
        }
        assert_eq!(RunId::from("x").shard(0), 0);
    }
}

//! The leases a durable store holds: its owner id, its lease settings, and the fencing token
//! of each run it runs. Bookkeeping only, the same for every store with leases; the SQL that
//! takes, renews and gives them up lives with each store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::runtime::id::RunId;
use crate::runtime::store::Lease;

/// A lease a store holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    token: u64,
    /// Still renewed; `false` once a renewal or a write found it taken over.
    live: bool,
    /// Until when it surely holds by this process's clock: from before the request that took
    /// or renewed it, less a tenth of the lease.
    until: Instant,
    /// When the last request that took or renewed it outright (not a write, which renews it
    /// only once half spent) was sent.
    renewed: Instant,
}

/// The leases a store holds, with its owner id and lease settings: which runs it runs, under
/// which fencing token, and which of them it still renews. For store implementations
/// ([`LeaseStore`](super::LeaseStore)); the engine never sees it.
#[derive(Debug)]
pub struct HeldLeases {
    owner: String,
    lease: Duration,
    max_recoveries: u32,
    held: Mutex<HashMap<RunId, Held>>,
    paused: AtomicBool,
}

impl HeldLeases {
    /// No lease yet, held as `owner`, each lasting `lease` unless renewed; a run taken up more
    /// than `max_recoveries` times is parked.
    pub fn new(owner: String, lease: Duration, max_recoveries: u32) -> Self {
        Self {
            owner,
            lease,
            max_recoveries,
            held: Mutex::new(HashMap::new()),
            paused: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RunId, Held>> {
        // Every critical section is one insert, remove or field write.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id the leases are held under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// How many take-ups a run is allowed before it is parked.
    pub fn max_recoveries(&self) -> u32 {
        self.max_recoveries
    }

    /// The lease in milliseconds (at least 1).
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// How often the leases are renewed: a third of the lease.
    pub fn heartbeat_period(&self) -> Duration {
        (self.lease / 3).clamp(Duration::from_millis(1), Duration::from_secs(86_400))
    }

    /// The token held for `run_id`, if this store holds (or held and lost) its lease.
    pub fn token(&self, run_id: &RunId) -> Option<u64> {
        self.lock().get(run_id).map(|held| held.token)
    }

    /// What a take-up of `run_id` answers, given what the store's statement found: a lease
    /// taken is remembered (see [`hold`](Self::hold)) and returned; none (no such run, or an
    /// ended one) is the lease of token 0, held by no one, and `load_run` says which.
    pub fn acquired(&self, run_id: &RunId, found: Option<Lease>) -> Lease {
        match found {
            Some(lease) => {
                self.hold(run_id, lease.token);
                lease
            }
            None => Lease {
                token: 0,
                recoveries: 0,
            },
        }
    }

    /// Remembers a lease just taken, with its token.
    pub fn hold(&self, run_id: &RunId, token: u64) {
        self.hold_since(run_id, token, Instant::now());
    }

    /// Remembers a lease taken by a request sent at `sent` (a claim that took several runs'
    /// leases a moment ago, say), with its token: it surely holds for as long as one taken
    /// then.
    pub fn hold_since(&self, run_id: &RunId, token: u64, sent: Instant) {
        let until = self.until(sent);
        self.lock().insert(
            run_id.clone(),
            Held {
                token,
                live: true,
                until,
                renewed: sent,
            },
        );
    }

    /// When a lease taken or renewed by a request sent at `sent` surely still holds: the
    /// server counts it from when it got the request, later than `sent`; a tenth of the lease
    /// is kept for the clocks' difference and the answer's way back.
    fn until(&self, sent: Instant) -> Instant {
        let keep = self.lease.saturating_sub(self.lease / 10);
        sent.checked_add(keep).unwrap_or(sent)
    }

    /// The leases of `runs` were renewed by a request sent at `sent`.
    pub fn renewed<'a>(&self, runs: impl IntoIterator<Item = &'a RunId>, sent: Instant) {
        let until = self.until(sent);
        let mut held = self.lock();
        for run_id in runs {
            if let Some(lease) = held.get_mut(run_id)
                && lease.live
            {
                lease.until = lease.until.max(until);
                lease.renewed = lease.renewed.max(sent);
            }
        }
    }

    /// Whether `run_id`'s lease was taken or renewed outright less than half a lease ago (a
    /// tenth of the lease kept for the clocks' difference), so that a write of the run now
    /// would not renew it: the store's statement that renews a lease once half spent can
    /// leave that part out. Not for a run this store holds no live lease on.
    pub fn fresh(&self, run_id: &RunId) -> bool {
        self.for_write(run_id).1
    }

    /// What a write of `run_id` carries, in one look at the leases: its token (see
    /// [`token`](Self::token)), and whether the lease is [`fresh`](Self::fresh).
    pub fn for_write(&self, run_id: &RunId) -> (Option<u64>, bool) {
        let within = (self.lease / 2).saturating_sub(self.lease / 10);
        self.lock().get(run_id).map_or((None, false), |held| {
            (
                Some(held.token),
                held.live && held.renewed.elapsed() < within,
            )
        })
    }

    /// A write of `run_id` sent at `sent` was kept. A write renews its run's lease once it is
    /// more than half spent, so the lease holds, after it, at least half a lease from when the
    /// server took it.
    pub fn written(&self, run_id: &RunId, sent: Instant) {
        let keep = (self.lease / 2).saturating_sub(self.lease / 10);
        let until = sent.checked_add(keep).unwrap_or(sent);
        if let Some(lease) = self.lock().get_mut(run_id)
            && lease.live
        {
            lease.until = lease.until.max(until);
        }
    }

    /// Whether this store surely still holds `run_id`'s lease: not lost, and taken or renewed
    /// within the lease by this process's clock. A step is not started on a lease that may
    /// have run out (the database unreachable for as long, say): another process may be
    /// taking the run over. A run this store keeps no lease for is not this bookkeeping's to
    /// refuse.
    pub fn holds(&self, run_id: &RunId) -> bool {
        self.lock()
            .get(run_id)
            .is_none_or(|held| held.live && Instant::now() < held.until)
    }

    /// The runs this store keeps a lease for that it does not surely hold (see
    /// [`holds`](Self::holds)): run out by this process's clock (the database unreachable for
    /// as long, say) or lost. Their runs may still be running here, and go on if their next
    /// write finds the token unchanged; a store that takes free runs over in bulk leaves
    /// these out, so that it does not fence its own runs by taking them again.
    pub fn not_surely_held(&self) -> Vec<RunId> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, held)| !held.live || now >= held.until)
            .map(|(run_id, _)| run_id.clone())
            .collect()
    }

    /// Stops renewing `run_id`'s lease but keeps its token, so that every later write of the
    /// run is fenced too.
    pub fn lost(&self, run_id: &RunId) {
        if let Some(held) = self.lock().get_mut(run_id) {
            held.live = false;
        }
    }

    /// Forgets `run_id`'s lease: the run ended, or is no longer run here.
    pub fn forget(&self, run_id: &RunId) {
        self.lock().remove(run_id);
    }

    /// How many runs' leases are held (or were held and lost, for a run still here).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no lease is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Stops or restarts the renewals (a drill: the leases then expire).
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// The live leases with their tokens, for a renewal; none while paused.
    pub fn live(&self) -> Vec<(RunId, u64)> {
        if self.paused.load(Ordering::SeqCst) {
            return Vec::new();
        }
        self.lock()
            .iter()
            .filter(|(_, held)| held.live)
            .map(|(run_id, held)| (run_id.clone(), held.token))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_lease_keeps_its_token_and_is_no_longer_renewed() {
        let leases = HeldLeases::new("o".into(), Duration::from_secs(3), 5);
        let (a, b) = (RunId::from("a"), RunId::from("b"));
        leases.hold(&a, 7);
        leases.hold(&b, 9);
        leases.lost(&a);
        assert_eq!(leases.token(&a), Some(7), "a later write is fenced with it");
        assert_eq!(leases.live(), [(b.clone(), 9)]);
        leases.pause(true);
        assert!(leases.live().is_empty());
        leases.pause(false);
        leases.forget(&b);
        assert_eq!(leases.len(), 1);
        assert_eq!(leases.heartbeat_period(), Duration::from_secs(1));
        assert_eq!(leases.lease_ms(), 3000);
    }

    #[test]
    fn a_lease_surely_holds_until_nine_tenths_of_it_have_passed_unrenewed() {
        let leases = HeldLeases::new("o".into(), Duration::from_millis(200), 5);
        let (a, b, other) = (RunId::from("a"), RunId::from("b"), RunId::from("x"));
        leases.hold(&a, 1);
        leases.hold(&b, 2);
        assert!(leases.holds(&a) && leases.holds(&b));
        assert!(
            leases.holds(&other),
            "a run without a lease here is not refused"
        );
        std::thread::sleep(Duration::from_millis(120));
        leases.renewed([&a], Instant::now());
        std::thread::sleep(Duration::from_millis(100));
        // `b` was taken 220 ms ago and never renewed; `a` was renewed 100 ms ago.
        assert!(leases.holds(&a));
        assert!(!leases.holds(&b));
        // A write kept renews a half-spent lease on the server: half a lease from it holds.
        leases.written(&b, Instant::now());
        assert!(leases.holds(&b));
        leases.lost(&a);
        assert!(
            !leases.holds(&a),
            "a lease found taken over no longer holds"
        );
    }

    #[test]
    fn a_lease_is_fresh_for_less_than_half_a_lease_after_it_was_taken_or_renewed() {
        let leases = HeldLeases::new("o".into(), Duration::from_secs(10), 5);
        let (a, b, other) = (RunId::from("a"), RunId::from("b"), RunId::from("x"));
        let Some(ago) = Instant::now().checked_sub(Duration::from_secs(5)) else {
            return;
        };
        leases.hold(&a, 1);
        leases.hold_since(&b, 2, ago);
        assert!(leases.fresh(&a));
        assert!(!leases.fresh(&b), "taken half a lease ago");
        assert!(!leases.fresh(&other), "no lease here");
        // A write does not make it fresh (it renews only a half-spent lease); a renewal does.
        leases.written(&b, Instant::now());
        assert!(!leases.fresh(&b));
        leases.renewed([&b], Instant::now());
        assert!(leases.fresh(&b));
        leases.lost(&a);
        assert!(!leases.fresh(&a), "a lost lease is never fresh");
    }

    #[test]
    fn a_write_is_given_its_token_and_freshness_in_one_look() {
        let leases = HeldLeases::new("o".into(), Duration::from_secs(10), 5);
        let (a, b, other) = (RunId::from("a"), RunId::from("b"), RunId::from("x"));
        let Some(ago) = Instant::now().checked_sub(Duration::from_secs(5)) else {
            return;
        };
        leases.hold(&a, 3);
        leases.hold_since(&b, 4, ago);
        assert_eq!(leases.for_write(&a), (Some(3), true));
        assert_eq!(
            leases.for_write(&b),
            (Some(4), false),
            "taken half a lease ago"
        );
        assert_eq!(leases.for_write(&other), (None, false), "no lease here");
        leases.lost(&a);
        assert_eq!(
            leases.for_write(&a),
            (Some(3), false),
            "lost: fenced, never fresh"
        );
    }
}

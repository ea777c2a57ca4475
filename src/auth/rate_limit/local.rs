//! One replica's own limits, with `governor`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use governor::DefaultKeyedRateLimiter;
use governor::clock::Clock;

use super::{Decision, Limit};

/// How often the in-process limiter forgets idle callers, in ms.
const SWEEP_INTERVAL_MS: u64 = 30_000;

/// One replica's limits. `governor` holds one keyed limiter per distinct limit, so a caller
/// whose limit changes is counted against the new limit at once (its budget under the new
/// limit starts full), and a caller whose limit alternates cannot reset its count by it.
pub(super) struct LocalLimiter {
    pub(super) by_limit: RwLock<HashMap<Limit, Arc<DefaultKeyedRateLimiter<Arc<str>>>>>,
    epoch: Instant,
    /// When idle callers are next forgotten, in ms since `epoch`.
    pub(super) next_sweep_ms: AtomicU64,
}

impl LocalLimiter {
    pub(super) fn new() -> Self {
        Self {
            by_limit: RwLock::new(HashMap::new()),
            epoch: Instant::now(),
            next_sweep_ms: AtomicU64::new(SWEEP_INTERVAL_MS),
        }
    }

    pub(super) fn check(&self, caller: &Arc<str>, limit: Limit) -> Decision {
        self.sweep_if_due();
        let limiter = self.limiter_for(limit);
        match limiter.check_key(caller) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => Decision::Limited {
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            },
        }
    }

    fn limiter_for(&self, limit: Limit) -> Arc<DefaultKeyedRateLimiter<Arc<str>>> {
        if let Some(limiter) = self
            .by_limit
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&limit)
        {
            return Arc::clone(limiter);
        }
        let mut by_limit = self.by_limit.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            by_limit
                .entry(limit)
                .or_insert_with(|| Arc::new(DefaultKeyedRateLimiter::keyed(limit.quota()))),
        )
    }

    /// Forgets callers whose budget is full again (they are indistinguishable from new
    /// ones), and limits no caller uses any more, so memory follows the callers of the last
    /// `SWEEP_INTERVAL_MS`. One request in each interval does the sweep.
    fn sweep_if_due(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_sweep_ms.load(Ordering::Acquire);
        if now < due
            || self
                .next_sweep_ms
                .compare_exchange(
                    due,
                    now.saturating_add(SWEEP_INTERVAL_MS),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
        {
            return;
        }
        // Sweep without the map's lock, so other callers' checks go on meanwhile.
        let limiters: Vec<_> = self
            .by_limit
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for limiter in &limiters {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        drop(limiters);
        self.by_limit
            .write()
            .unwrap_or_else(|p| p.into_inner())
            // A limiter another request still holds may be about to count a caller: keep it.
            .retain(|_, limiter| !limiter.is_empty() || Arc::strong_count(limiter) > 1);
    }
}

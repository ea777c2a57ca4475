//! Reading a [`TestApp`]'s audit log, which its writer flushes every 200 ms.

use std::time::{Duration, Instant};

use ztv::store::AuditEvent;

use super::app::TestApp;

impl TestApp {
    /// Polls until `done` holds for the stored audit events; fails after 30 s.
    pub async fn audit_until(&self, done: impl Fn(&[AuditEvent]) -> bool) -> Vec<AuditEvent> {
        let started = Instant::now();
        loop {
            let events = self.store.list_audit(0, None, 100_000).await.unwrap();
            if done(&events) {
                return events;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the audit log never got there: {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The stored audit events once their number has not changed for five of the writer's
    /// flushes in a row.
    pub async fn settled_audit(&self) -> Vec<AuditEvent> {
        let started = Instant::now();
        let (mut last, mut unchanged) = (usize::MAX, 0);
        loop {
            let events = self.store.list_audit(0, None, 100_000).await.unwrap();
            if events.len() == last {
                unchanged += 1;
                if unchanged >= 10 {
                    return events;
                }
            } else {
                (last, unchanged) = (events.len(), 0);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the audit log never settled"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

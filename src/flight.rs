//! Single flight: however many callers ask for the same key at once, the work runs once, in
//! its own task (so it finishes even if every caller goes away), and every caller gets its
//! result or its error.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use tracing::{Instrument, Span};

use crate::telemetry::traces;

type Call<V, E> = Shared<BoxFuture<'static, Result<V, E>>>;

pub struct SingleFlight<K, V, E> {
    calls: Arc<Mutex<HashMap<K, Call<V, E>>>>,
}

impl<K, V, E> Default for SingleFlight<K, V, E> {
    fn default() -> Self {
        Self {
            calls: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl<K, V, E> SingleFlight<K, V, E>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + From<tokio::task::JoinError> + 'static,
{
    /// The call in flight for `key`, or `work` started as a new one. Awaiting the returned
    /// future is optional: the work runs to completion either way.
    pub fn join_or_start<F>(&self, key: &K, work: impl FnOnce() -> F) -> Call<V, E>
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        self.join_or_start_in(key, &Span::none(), work)
    }

    /// [`Self::join_or_start`], awaited inside a span for traces ([`span`]).
    pub async fn traced<F>(
        &self,
        key: &K,
        name: &'static str,
        work: impl FnOnce() -> F,
    ) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        let span = span(name);
        let call = self.join_or_start_in(key, &span, work);
        call.instrument(span).await
    }

    /// [`Self::join_or_start`], saying in `span` whether this caller led the work or joined
    /// it; work started here runs inside `span`, so what it does is traced as its children.
    pub fn join_or_start_in<F>(&self, key: &K, span: &Span, work: impl FnOnce() -> F) -> Call<V, E>
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(call) = calls.get(key) {
            span.record("ztv.flight.led", false);
            return call.clone();
        }
        span.record("ztv.flight.led", true);
        let registry = Arc::clone(&self.calls);
        let finished_key = key.clone();
        let work = work().instrument(span.clone());
        // The task can only remove its entry after this function has inserted it: both
        // happen under the same lock.
        let task = tokio::spawn(async move {
            let result = work.await;
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&finished_key);
            result
        });
        let call = async move { task.await.unwrap_or_else(|e| Err(E::from(e))) }
            .boxed()
            .shared();
        calls.insert(key.clone(), call.clone());
        call
    }

    pub fn in_flight(&self, key: &K) -> bool {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }
}

/// A span for traces of one caller's part in a flight of `name` (`zak`, `s2s`): the wait,
/// and whether it led the work (`ztv.flight.led`).
pub fn span(name: &'static str) -> Span {
    tracing::debug_span!(
        target: traces::TARGET,
        "single flight",
        otel.name = "single flight",
        ztv.flight = name,
        ztv.flight.led = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Failed(String);

    impl From<tokio::task::JoinError> for Failed {
        fn from(e: tokio::task::JoinError) -> Self {
            Failed(e.to_string())
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run_and_its_error() {
        let flights: Arc<SingleFlight<&'static str, u32, Failed>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut callers = Vec::new();
        for _ in 0..100 {
            let flights = Arc::clone(&flights);
            let runs = Arc::clone(&runs);
            callers.push(tokio::spawn(async move {
                flights
                    .join_or_start(&"k", || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<u32, _>(Failed("boom".into()))
                    })
                    .await
            }));
        }
        for caller in callers {
            assert_eq!(caller.await.unwrap(), Err(Failed("boom".into())));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!flights.in_flight(&"k"), "a finished call is forgotten");
    }
}

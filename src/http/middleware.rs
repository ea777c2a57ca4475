//! The whole middleware stack, in one place, outermost first:
//! the request's id, log fields and trace span, error bodies in our shape, metrics, audit
//! event and access log (one layer) → CORS (when origins are configured) → timeout and panic
//! guard (one layer) → routes. (Bodies are bounded by the extractors that read them; see
//! `extract`.)

use std::net::{IpAddr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, CatchUnwind};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{Instrument, Span};

use crate::app::AppState;
use crate::audit::AuditFacts;
use crate::config::Settings;
use crate::http::error::ApiError;
use crate::store::AuditEvent;
use crate::telemetry::request_id;
use crate::telemetry::traces;
use crate::telemetry::{logs, metrics};

pub fn apply(router: Router, state: &AppState) -> Router {
    let settings = state.settings();
    let settings = settings.as_ref();
    // One stack, applied once: axum boxes each `Router::layer` around every route and clones
    // every box per request; one `ServiceBuilder` is one box.
    let stack = ServiceBuilder::new()
        .layer(ObserveLayer(state.clone()))
        .option_layer(cors(settings))
        // The budget covers reading the body, which the handlers' extractors do inside it: a
        // body that trickles in is answered 408 too. (A slow head is cut off before this, by
        // the server's header read timeout; see `server`.)
        .layer(GuardLayer(settings.server.request_timeout));
    router.layer(stack)
}

/// Observes each request once, in one layer: gives it its id ([`request_id::of`]), serves it
/// with its method, route and id on every line logged meanwhile ([`logs::within`]), then
/// counts it in the metrics, makes a `/v1` request its audit event, writes one access-log
/// line, `served`, with those fields, the status, the caller and the latency, echoes the id on
/// the response and marks a `/v1` answer `Cache-Control: no-store`. A layer of its own, not
/// `middleware::from_fn`, which clones and boxes the rest of the stack for every request.
#[derive(Clone)]
struct ObserveLayer(AppState);

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            state: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
struct Observe<S> {
    state: AppState,
    inner: S,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let seen = Seen::of(&request);
        let served = self.inner.call(request);
        Box::pin(observe(self.state.clone(), seen, served))
    }
}

/// What [`observe`] reads of a request before it is served.
struct Seen {
    started: std::time::Instant,
    /// Bounded: a method nobody standardised is logged and counted as `OTHER`.
    method: &'static str,
    route: Option<MatchedPath>,
    request_id: Arc<str>,
    /// `Some` for a `/v1` request (audited), with the client's address when known.
    audited: Option<Option<IpAddr>>,
    /// Its own span for traces (disabled when they are off, and then not even entered at
    /// each poll); logs never see it.
    trace: Span,
}

impl Seen {
    fn of(request: &Request) -> Seen {
        let method = metrics::method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        let template = route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let trace = traces::request_span(method, template, request.headers());
        Seen {
            started: std::time::Instant::now(),
            method,
            request_id: request_id::of(request.headers()),
            audited: is_audited(request.uri().path()).then(|| {
                request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|info| info.0.ip())
            }),
            route,
            trace,
        }
    }
}

async fn observe<E>(
    state: AppState,
    seen: Seen,
    served: impl Future<Output = Result<Response, E>>,
) -> Result<Response, E> {
    let Seen {
        started,
        method,
        route,
        request_id,
        audited,
        trace,
    } = seen;
    let fields = logs::RequestFields {
        method,
        route: route.clone(),
        request_id: Some(request_id.clone()),
    };
    let served = logs::within(fields, served);
    let response = match trace.is_disabled() {
        true => served.await?,
        false => served.instrument(trace.clone()).await?,
    };
    let mut response = json_error_body(response, Some(&request_id));
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status();
    let took = started.elapsed();
    // The caller and what was done for it ride on the response: only the handler knows them.
    let facts = response.extensions_mut().remove::<AuditFacts>();
    let caller = facts.as_ref().and_then(|facts| facts.caller.clone());
    if !trace.is_disabled() {
        traces::finish_request_span(&trace, status.as_u16(), caller_label(facts.as_ref()));
    }
    metrics::count_request(route, method, status.as_u16(), took);
    if let Some(peer) = audited {
        audit(&state, method, route, peer, &request_id, status, facts);
    }
    logs::served(&logs::Served {
        method,
        route,
        request_id: &request_id,
        status: status.as_u16(),
        caller: caller.as_deref().unwrap_or(""),
        latency_ms: took.as_secs_f64() * 1000.0,
    });
    request_id::echo(&mut response, &request_id);
    if audited.is_some() {
        // A `/v1` answer is a token or says something about one: no cache may keep it.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// Answers `408` when a request, its body read included, is not answered within the limit, and
/// `500` in our error shape when its handler panics. The timer is set only when the request
/// waits for something: most are answered at their first poll, and a timer per request is a
/// measurable part of their cost. One layer with a named future, so the guard costs a request
/// no allocation of its own.
#[derive(Clone, Copy)]
struct GuardLayer(Duration);

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            limit: self.0,
        }
    }
}

#[derive(Clone)]
struct Guard<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Guarded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let served = panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request)))
            .ok()
            .map(|served| AssertUnwindSafe(served).catch_unwind());
        Guarded {
            served,
            deadline: None,
            limit: self.limit,
        }
    }
}

pin_project! {
    /// A request served under [`Guard`]: `served` is `None` when calling the handler panicked.
    struct Guarded<F> {
        #[pin]
        served: Option<CatchUnwind<AssertUnwindSafe<F>>>,
        #[pin]
        deadline: Option<Sleep>,
        limit: Duration,
    }
}

impl<F, E> Future for Guarded<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(served) = this.served.as_pin_mut() else {
            return Poll::Ready(Ok(panicked()));
        };
        match served.poll(cx) {
            Poll::Ready(Ok(answered)) => return Poll::Ready(answered),
            Poll::Ready(Err(_panic)) => return Poll::Ready(Ok(panicked())),
            Poll::Pending => {}
        }
        if this.deadline.is_none() {
            this.deadline.set(Some(tokio::time::sleep(*this.limit)));
        }
        match this.deadline.as_pin_mut().map(|deadline| deadline.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Ok(StatusCode::REQUEST_TIMEOUT.into_response())),
            _ => Poll::Pending,
        }
    }
}

/// The answer to a request whose handler panicked. The payload is not logged: it could hold
/// anything a handler had in hand.
fn panicked() -> Response {
    ApiError::internal("a handler panicked").into_response()
}

/// The caller as its trace may name it (see [`traces::CallerLabel`]).
fn caller_label(facts: Option<&AuditFacts>) -> Option<traces::CallerLabel<'_>> {
    let facts = facts?;
    let name = facts.caller.as_deref()?;
    Some(match facts.api_client {
        true => traces::CallerLabel::ApiClient(name),
        false => traces::CallerLabel::EndUser,
    })
}

/// Whether a request to `path` is audited: every `/v1` request is.
pub(crate) fn is_audited(path: &str) -> bool {
    path.starts_with("/v1/")
}

/// A `/v1` request's audit event, with the facts its handler put on the response
/// ([`AuditFacts`]). Only bounded values are written: the method as the metrics name it
/// (`OTHER` for any other), the route's template, never the path or method as sent. Refusals
/// without a caller, and a caller's 429s, are sampled (see [`AuditLog`](crate::audit::AuditLog)).
fn audit(
    state: &AppState,
    method: &'static str,
    template: &str,
    peer: Option<IpAddr>,
    request_id: &Arc<str>,
    status: StatusCode,
    facts: Option<AuditFacts>,
) {
    // A CORS preflight, answered by the CORS layer before any route: it issues nothing.
    if method == "OPTIONS" && status.is_success() && facts.is_none() {
        return;
    }
    let facts = facts.unwrap_or_default();
    let route = [method, " ", template].concat();
    let outcome = if status.is_success() || status.is_redirection() {
        "issued"
    } else if status.is_client_error() {
        "refused"
    } else {
        "failed"
    };
    let written = match &facts.caller {
        None if status.is_client_error() => {
            metrics::count_unauthenticated_refused(&route);
            state.audit.samples_unauthenticated(peer)
        }
        // A caller over its limit is refused without work; its refusals are sampled too, so
        // a key cannot write rows faster than its limit lets it work.
        Some(caller) if status == StatusCode::TOO_MANY_REQUESTS => {
            state.audit.samples_limited(caller)
        }
        _ => true,
    };
    if !written {
        return;
    }
    if outcome == "issued" {
        metrics::count_token_issued(&route, facts.account.as_deref().unwrap_or(""));
    }
    state.audit.record(AuditEvent {
        at_ms: crate::audit::now_ms(),
        request_id: Some(Arc::clone(request_id)),
        caller: facts.caller,
        route,
        account: facts.account,
        target_user: facts.target_user,
        target: facts.target,
        outcome: outcome.into(),
        status: status.as_u16(),
    });
}

/// CORS for the configured exact origins; with none, no CORS headers at all (a disallowed
/// origin never gets `Access-Control-Allow-Origin`).
fn cors(settings: &Settings) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = settings
        .cors
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                crate::http::extract::API_KEY,
                request_id::HEADER,
            ])
            .expose_headers([request_id::HEADER, header::RETRY_AFTER])
            .max_age(settings.cors.max_age),
    )
}

/// [`json_error_body`] as a middleware of its own, for routers without [`observe`].
pub(crate) async fn errors_as_json(request: Request, next: Next) -> Response {
    json_error_body(next.run(request).await, request_id::current().as_deref())
}

/// Any error response that is not already ours (the router's 405, the timeout's 408, a
/// rejected body) is answered in the error shape of docs/api.md, keeping headers such as `Allow`,
/// with the request's id.
fn json_error_body(response: Response, request_id: Option<&str>) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let ours = ApiError::for_status(status).into_response_with_id(request_id);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (_, body) = ours.into_parts();
    Response::from_parts(parts, body)
}

//! Log output: human-readable text or JSON lines on stdout, filtered by `RUST_LOG`.
//!
//! Lines go through one buffer, as nginx's `access_log … buffer= flush=` does, so a request's
//! `served` line costs no system call of its own: the buffer is written out every
//! `FLUSH_EVERY`, when it fills, at once for a warning or an error (with every line before
//! it, in order), and by [`flush`] before the process exits or when it panics.

use std::io::{self, BufWriter, IsTerminal, Stdout, Write};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::Duration;

use std::fmt;

use std::sync::Arc;

use axum::extract::MatchedPath;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use tracing_subscriber::Layer;

use crate::config::{LogFormat, TelemetrySettings};
use crate::telemetry::traces;

const DEFAULT_FILTER: &str = "info,sqlx=warn";
/// Longest a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Buffered bytes at most before they are written (a few hundred request lines).
const BUFFER_BYTES: usize = 64 * 1024;

/// The format of the installed subscriber (the first [`init`]'s).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// One request's access line: `served`, with these fields.
pub struct Served<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub request_id: &'a str,
    pub status: u16,
    pub caller: &'a str,
    pub latency_ms: f64,
}

/// Writes one request's access line, at `info` under the target `ztv::http::middleware` (as
/// `RUST_LOG` filters it). In JSON the line is written here, field for field as the JSON
/// formatter writes an event, without its per-field visiting and re-formatting; in text
/// through `tracing`.
pub fn served(line: &Served<'_>) {
    if !tracing::enabled!(target: "ztv::http::middleware", Level::INFO) {
        return;
    }
    match (FORMAT.get(), STDOUT.get()) {
        (Some(LogFormat::Json), Some(lines)) => {
            let mut text = Vec::with_capacity(256);
            write_served_json(&mut text, line, std::time::SystemTime::now());
            let _ = lines.line(false).write_all(&text);
        }
        _ => tracing::info!(
            target: "ztv::http::middleware",
            method = line.method,
            route = line.route,
            request_id = line.request_id,
            status = line.status,
            caller = line.caller,
            latency_ms = line.latency_ms,
            "served"
        ),
    }
}

/// What every line written while serving a request carries, as a `span` named `request` with
/// these fields: set around the request by the observing middleware ([`within`]). A
/// task-local, not a `tracing` span: a span costs every request, this costs only the lines.
#[derive(Clone)]
pub struct RequestFields {
    /// As the metrics name it (`OTHER` for a method nobody standardised).
    pub method: &'static str,
    /// The route's template; `None`: no route matched.
    pub route: Option<MatchedPath>,
    pub request_id: Option<Arc<str>>,
}

impl RequestFields {
    fn route(&self) -> &str {
        self.route.as_ref().map_or("unmatched", MatchedPath::as_str)
    }

    fn request_id(&self) -> &str {
        self.request_id.as_deref().unwrap_or("")
    }
}

tokio::task_local! {
    static REQUEST: RequestFields;
}

/// Serves a request with `fields` on every line written while it is served (in its task).
pub fn within<F: Future>(fields: RequestFields, serve: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(fields, serve)
}

/// The id of the request this task is serving, if any.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST
        .try_with(|request| request.request_id.clone())
        .ok()
        .flatten()
}

/// The request being served, for a line written outside any span of its own.
fn current_request<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<RequestFields>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    if ctx.lookup_current().is_some() {
        return None;
    }
    REQUEST.try_with(RequestFields::clone).ok()
}

/// The line formats, each writing the request being served as tracing's formats write a
/// current span: in JSON as the line's `span` (its fields, then its name); in text before the
/// message, `request{method="GET" route="/healthz" request_id="…"}: `.
enum LineFormat {
    Json(Format<Json>),
    Text(Format<Full>),
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match (self, current_request(ctx)) {
            (LineFormat::Json(format), None) => format.format_event(ctx, writer, event),
            (LineFormat::Text(format), None) => format.format_event(ctx, writer, event),
            (LineFormat::Json(format), Some(request)) => {
                let mut line = String::with_capacity(256);
                format.format_event(ctx, Writer::new(&mut line), event)?;
                json_with_request(line, &request, writer)
            }
            (LineFormat::Text(_), Some(request)) => text_with_request(ctx, writer, event, &request),
        }
    }
}

/// `line`, as the JSON format wrote it, with `request` as its `span`.
fn json_with_request(
    mut line: String,
    request: &RequestFields,
    mut writer: Writer<'_>,
) -> fmt::Result {
    // The format ends every line with `}` and a newline.
    let end = line.trim_end().len().checked_sub(1).ok_or(fmt::Error)?;
    let mut span = JsonObject::default();
    span.raw("{\"method\":");
    span.string(request.method);
    span.raw(",\"route\":");
    span.string(request.route());
    span.raw(",\"request_id\":");
    span.string(request.request_id());
    span.raw(",\"name\":\"request\"");
    line.insert_str(end, &format!(",\"span\":{}", span.finish()));
    writer.write_str(&line)
}

/// The text format's line for `event` inside `request`, written as it writes one inside a span.
fn text_with_request<S, N>(
    ctx: &FmtContext<'_, S, N>,
    mut writer: Writer<'_>,
    event: &Event<'_>,
    request: &RequestFields,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    let level = *event.metadata().level();
    let (dim, bold, italic, colour, reset) = match writer.has_ansi_escapes() {
        true => (
            "\x1b[2m",
            "\x1b[1m",
            "\x1b[3m",
            level_colour(level),
            "\x1b[0m",
        ),
        false => ("", "", "", "", ""),
    };
    write!(writer, "{dim}")?;
    SystemTime.format_time(&mut writer)?;
    write!(
        writer,
        "{reset} {colour}{level:>5}{reset} {bold}request{reset}{bold}{{{reset}"
    )?;
    let fields = [
        ("method", request.method),
        ("route", request.route()),
        ("request_id", request.request_id()),
    ];
    for (i, (name, value)) in fields.into_iter().enumerate() {
        let space = if i == 0 { "" } else { " " };
        write!(writer, "{space}{italic}{name}{reset}{dim}={reset}{value:?}")?;
    }
    write!(writer, "{bold}}}{reset}{dim}:{reset} ")?;
    ctx.format_fields(writer.by_ref(), event)?;
    writeln!(writer)
}

/// The colour the text format gives `level`.
fn level_colour(level: Level) -> &'static str {
    match level {
        Level::TRACE => "\x1b[35m",
        Level::DEBUG => "\x1b[34m",
        Level::INFO => "\x1b[32m",
        Level::WARN => "\x1b[33m",
        Level::ERROR => "\x1b[31m",
    }
}

/// The JSON line the subscriber's JSON format writes for the `served` event.
fn write_served_json(out: &mut Vec<u8>, line: &Served<'_>, now: std::time::SystemTime) {
    let string = |out: &mut Vec<u8>, text: &str| {
        // Writing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    };
    out.extend_from_slice(b"{\"timestamp\":\"");
    write_timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"served\",\"method\":");
    string(out, line.method);
    out.extend_from_slice(b",\"route\":");
    string(out, line.route);
    out.extend_from_slice(b",\"request_id\":");
    string(out, line.request_id);
    out.extend_from_slice(b",\"status\":");
    let _ = serde_json::to_writer(&mut *out, &line.status);
    out.extend_from_slice(b",\"caller\":");
    string(out, line.caller);
    out.extend_from_slice(b",\"latency_ms\":");
    let _ = serde_json::to_writer(&mut *out, &line.latency_ms);
    out.extend_from_slice(b",\"target\":\"ztv::http::middleware\"}\n");
}

/// `now` as the JSON format writes it, RFC 3339 with microseconds (`2026-12-04T17:54:16.234617Z`).
/// The part up to the second is formatted once a second per thread, not for every line.
fn write_timestamp(out: &mut Vec<u8>, now: std::time::SystemTime) {
    /// `2026-12-04T17:54:16.`
    type Prefix = [u8; 20];
    thread_local! {
        static SECOND: std::cell::Cell<Option<(u64, Prefix)>> = const { std::cell::Cell::new(None) };
    }
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = since.as_secs();
    let prefix = SECOND.with(|cached| match cached.get() {
        Some((at, prefix)) if at == second => prefix,
        _ => {
            let whole = std::time::UNIX_EPOCH + Duration::from_secs(second);
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            let mut prefix = [b'.'; 20];
            prefix[..19].copy_from_slice(&text.as_bytes()[..19]);
            cached.set(Some((second, prefix)));
            prefix
        }
    });
    out.extend_from_slice(&prefix);
    let micros = since.subsec_micros();
    for place in [100_000, 10_000, 1_000, 100, 10, 1] {
        out.push(b'0' + (micros / place % 10) as u8);
    }
    out.push(b'Z');
}

/// A span's fields as the JSON object the JSON format stores with the span and copies into
/// every event inside it, written directly: the same object `JsonFields` makes, without
/// building a map of values first.
struct SpanFieldsJson;

impl<'writer> FormatFields<'writer> for SpanFieldsJson {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut object = JsonObject::default();
        fields.record(&mut object);
        writer.write_str(&object.finish())
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> fmt::Result {
        // Fields recorded later: one object with both, the later value winning.
        let mut object = JsonObject::default();
        fields.record(&mut object);
        let added: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&object.finish()).map_err(|_| fmt::Error)?;
        let mut merged: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&current.fields).unwrap_or_default();
        merged.extend(added);
        current.fields = serde_json::to_string(&merged).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

/// Fields visited into a JSON object's text (UTF-8: only JSON is written into it).
#[derive(Default)]
struct JsonObject {
    text: Vec<u8>,
}

impl JsonObject {
    fn key(&mut self, field: &Field) {
        self.text
            .push(if self.text.is_empty() { b'{' } else { b',' });
        self.string(field.name());
        self.text.push(b':');
    }

    fn string(&mut self, value: &str) {
        // Serialising a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.text, value);
    }

    fn raw(&mut self, text: &str) {
        self.text.extend_from_slice(text.as_bytes());
    }

    fn finish(mut self) -> String {
        if self.text.is_empty() {
            self.text.push(b'{');
        }
        self.text.push(b'}');
        String::from_utf8(self.text).unwrap_or_default()
    }
}

impl Visit for JsonObject {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        self.string(value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        self.string(&format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.raw(&value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.raw(&value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.raw(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if serde_json::to_writer(&mut self.text, &value).is_err() {
            self.raw("null");
        }
    }
}

/// Installs the global subscriber once, with the traces layer when `telemetry` names a
/// collector; later calls (tests) are no-ops. Fails only when the trace exporter cannot be
/// built.
pub fn init(format: LogFormat, telemetry: &TelemetrySettings) -> anyhow::Result<()> {
    let _ = FORMAT.set(format);
    let filter = log_filter();
    if telemetry.otlp_endpoint.is_some() {
        return init_with_traces(format, filter, telemetry);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(StdoutLines(stdout_lines()));
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .event_format(text_format())
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(SpanFieldsJson)
            .event_format(json_format())
            .try_init(),
    };
    Ok(())
}

/// Human-readable lines: as tracing's, without the target.
fn text_format() -> LineFormat {
    LineFormat::Text(tracing_subscriber::fmt::format().with_target(false))
}

/// One JSON object per line, the event's fields at its top level.
fn json_format() -> LineFormat {
    LineFormat::Json(
        tracing_subscriber::fmt::format()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false),
    )
}

/// `RUST_LOG`, or the default; spans for traces are never log lines, whatever it says.
fn log_filter() -> EnvFilter {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    match format!("{}=off", traces::TARGET).parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// As [`init`] without traces, the log lines filtered by `filter` as a layer of their own
/// beside the traces layer, which has its own filter.
fn init_with_traces(
    format: LogFormat,
    filter: EnvFilter,
    telemetry: &TelemetrySettings,
) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let lines = tracing_subscriber::fmt::layer().with_writer(StdoutLines(stdout_lines()));
    let lines = match format {
        LogFormat::Text => lines
            .with_ansi(std::io::stdout().is_terminal())
            .event_format(text_format())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => lines
            .fmt_fields(SpanFieldsJson)
            .event_format(json_format())
            .with_filter(filter)
            .boxed(),
    };
    let traces = traces::layer(telemetry)?;
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(traces)
        .try_init();
    Ok(())
}

/// Writes out every buffered line; the CLI calls it before the process exits.
pub fn flush() {
    if let Some(lines) = STDOUT.get() {
        lines.flush();
    }
}

static STDOUT: OnceLock<BufferedLines<Stdout>> = OnceLock::new();

/// The process's one stdout buffer; the first call starts its flusher and hooks panics.
fn stdout_lines() -> &'static BufferedLines<Stdout> {
    let mut first = false;
    let lines = STDOUT.get_or_init(|| {
        first = true;
        BufferedLines::new(io::stdout())
    });
    if first {
        let started = crate::telemetry::metrics::spawn_every("ztv-log-flush", FLUSH_EVERY, || {
            lines.flush();
        });
        if let Err(error) = started {
            // Lines are still written when the buffer fills and at exit.
            eprintln!("ztv: cannot start the log flusher: {error}");
        }
        // What was logged just before a panic is what explains it.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |panic| {
            lines.flush_unless_busy();
            previous(panic);
        }));
    }
    lines
}

/// The subscriber's writer: each event's line into the process's stdout buffer.
struct StdoutLines(&'static BufferedLines<Stdout>);

impl<'a> MakeWriter<'a> for StdoutLines {
    type Writer = Line<'static, Stdout>;

    fn make_writer(&'a self) -> Self::Writer {
        self.0.line(false)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        self.0.line_for(meta)
    }
}

/// Lines for `W`, buffered; see the module's documentation for when they are written.
pub(crate) struct BufferedLines<W: Write> {
    out: Mutex<BufWriter<W>>,
}

impl<W: Write> BufferedLines<W> {
    pub(crate) fn new(out: W) -> Self {
        Self {
            out: Mutex::new(BufWriter::with_capacity(BUFFER_BYTES, out)),
        }
    }

    /// Writes out what is buffered. A failed write (stdout closed) is dropped: logging has
    /// nowhere else to report it.
    pub(crate) fn flush(&self) {
        let _ = self.lock().flush();
    }

    /// As [`Self::flush`], unless the buffer is in use: a panic while this thread holds it
    /// must not wait for itself.
    fn flush_unless_busy(&self) {
        let mut out = match self.out.try_lock() {
            Ok(out) => out,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let _ = out.flush();
    }

    /// A writer for one line, written out at once when `urgent`.
    fn line(&self, urgent: bool) -> Line<'_, W> {
        Line {
            lines: self,
            urgent,
        }
    }

    /// A writer for one event's line: warnings and errors are written out at once.
    fn line_for(&self, meta: &Metadata<'_>) -> Line<'_, W> {
        self.line(*meta.level() <= Level::WARN)
    }

    fn lock(&self) -> MutexGuard<'_, BufWriter<W>> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One event's line on its way into the buffer.
pub(crate) struct Line<'a, W: Write> {
    lines: &'a BufferedLines<W>,
    urgent: bool,
}

impl<W: Write> Write for Line<'_, W> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut out = self.lines.lock();
        out.write_all(line)?;
        if self.urgent {
            out.flush()?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.urgent {
            self.lines.lock().flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// An output that keeps what reached it and counts the writes.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Recorded {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut recorded = self.0.lock().unwrap();
            recorded.0.extend_from_slice(bytes);
            recorded.1 += 1;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Recorded {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().0.clone()).unwrap()
        }

        fn writes(&self) -> usize {
            self.0.lock().unwrap().1
        }
    }

    fn log(lines: &BufferedLines<Recorded>, level: Level, text: &str) {
        // A disabled span (no subscriber) still has its metadata, level included.
        let span = match level {
            Level::INFO => tracing::info_span!("line"),
            Level::WARN => tracing::warn_span!("line"),
            _ => tracing::error_span!("line"),
        };
        let mut writer = lines.line_for(span.metadata().expect("a span's metadata"));
        writer.write_all(text.as_bytes()).unwrap();
        writer.flush().unwrap();
    }

    /// The hand-written access line is the line the JSON formatter writes for the same event.
    #[test]
    fn the_json_access_line_is_the_json_formatters_line() {
        let line = Served {
            method: "POST",
            route: "/v1/meeting-sdk/signature",
            request_id: "5a53e7d3-759c-4406-88fe-ca667a9db9c8",
            status: 200,
            caller: "web \"quoted\" \\ name",
            latency_ms: 0.135825,
        };
        let now = std::time::UNIX_EPOCH + Duration::from_micros(1_796_406_856_234_617);
        let mut ours = Vec::new();
        write_served_json(&mut ours, &line, now);

        let out = Recorded::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: "ztv::http::middleware",
                method = line.method,
                route = line.route,
                request_id = line.request_id,
                status = line.status,
                caller = line.caller,
                latency_ms = line.latency_ms,
                "served"
            );
        });
        let theirs: serde_json::Value = serde_json::from_str(&out.text()).unwrap();
        let ours_json: serde_json::Value = serde_json::from_slice(&ours).unwrap();
        // Everything but the moment of writing is the same, in the same order.
        let keys =
            |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&ours_json), keys(&theirs));
        let without_time = |mut v: serde_json::Value| {
            v.as_object_mut().unwrap().remove("timestamp");
            v
        };
        assert_eq!(
            without_time(ours_json.clone()),
            without_time(theirs.clone())
        );
        assert_eq!(ours_json["timestamp"], "2026-12-04T17:54:16.234617Z");
        assert_eq!(
            theirs["timestamp"].as_str().unwrap().len(),
            27,
            "the same shape"
        );
        assert!(ours.ends_with(b"}\n"));
    }

    #[test]
    fn timestamps_are_humantimes_across_seconds_and_leading_zeros() {
        let at = |micros| std::time::UNIX_EPOCH + Duration::from_micros(micros);
        for micros in [
            1_796_406_856_000_042,
            1_796_406_856_999_999,
            1_796_406_857_000_000,
            1_796_406_856_500_000,
        ] {
            let mut out = Vec::new();
            write_timestamp(&mut out, at(micros));
            let expected = humantime::format_rfc3339_micros(at(micros)).to_string();
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    /// An event inside a span reads the same with the span's fields written by
    /// `SpanFieldsJson` as with tracing's own `JsonFields`.
    #[test]
    fn span_fields_are_the_json_formatters_fields() {
        fn line(ours: bool) -> serde_json::Value {
            let out = Recorded::default();
            let writer = out.clone();
            let builder = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(move || writer.clone());
            let log = || {
                let span = tracing::info_span!(
                    "request",
                    method = "GET",
                    route = "/v1/users/{userId}/zak",
                    request_id = "id \"quoted\" \\ \u{1}",
                    count = 5u64,
                    delta = -3i64,
                    flag = true,
                    ratio = 0.5,
                    shown = ?Some(1),
                );
                let _inside = span.enter();
                tracing::warn!(account = "prod", "cannot reach Zoom");
            };
            match ours {
                true => tracing::subscriber::with_default(
                    builder.fmt_fields(SpanFieldsJson).finish(),
                    log,
                ),
                false => tracing::subscriber::with_default(builder.finish(), log),
            }
            let mut value: serde_json::Value = serde_json::from_str(&out.text()).unwrap();
            value.as_object_mut().unwrap().remove("timestamp");
            value
        }
        let ours = line(true);
        assert_eq!(ours, line(false));
        assert_eq!(ours["span"]["request_id"], "id \"quoted\" \\ \u{1}");
        assert_eq!(ours["span"]["count"], 5);
    }

    /// The line an event inside a request makes, with `ours` (the request's fields set by
    /// [`within`]) or with tracing's own `request` span and format; without the timestamp.
    async fn line_in_request(json: bool, ours: bool) -> String {
        let out = Recorded::default();
        let writer = out.clone();
        let builder = tracing_subscriber::fmt().with_writer(move || writer.clone());
        let _default = match (json, ours) {
            (true, true) => tracing::subscriber::set_default(
                builder
                    .fmt_fields(SpanFieldsJson)
                    .event_format(json_format())
                    .finish(),
            ),
            (true, false) => tracing::subscriber::set_default(
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .finish(),
            ),
            (false, true) => {
                tracing::subscriber::set_default(builder.event_format(text_format()).finish())
            }
            (false, false) => tracing::subscriber::set_default(builder.with_target(false).finish()),
        };
        let (route, id) = ("/v1/users/{userId}/zak", "id \"quoted\" \\ \u{1}");
        let log = || tracing::warn!(account = "prod", "cannot reach Zoom");
        match ours {
            true => {
                let router =
                    axum::Router::<()>::new().route(route, axum::routing::get(|| async {}));
                let matched = matched_path(router, "/v1/users/u1/zak").await;
                let fields = RequestFields {
                    method: "GET",
                    route: Some(matched),
                    request_id: Some(Arc::from(id)),
                };
                within(fields, async { log() }).await;
            }
            false => {
                let span = tracing::info_span!("request", method = "GET", route, request_id = id);
                span.in_scope(log);
            }
        }
        let text = out.text();
        match json {
            true => {
                let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
                value.as_object_mut().unwrap().remove("timestamp");
                value.to_string()
            }
            false => text.split_once(' ').unwrap().1.to_string(),
        }
    }

    /// What axum's router makes of `path`'s route.
    async fn matched_path(router: axum::Router, path: &str) -> MatchedPath {
        use tower::ServiceExt;
        let seen = Arc::new(Mutex::new(None));
        let keep = seen.clone();
        let router = router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let keep = keep.clone();
                async move {
                    *keep.lock().unwrap() = request.extensions().get::<MatchedPath>().cloned();
                    next.run(request).await
                }
            },
        ));
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        router.oneshot(request).await.unwrap();
        seen.lock().unwrap().take().expect("a matched route")
    }

    #[tokio::test]
    async fn a_line_inside_a_request_reads_as_it_did_inside_a_request_span() {
        let (ours, theirs) = (
            line_in_request(true, true).await,
            line_in_request(true, false).await,
        );
        assert_eq!(ours, theirs);
        assert!(ours.contains(r#""span":{"method":"GET","#), "{ours}");
        let (ours, theirs) = (
            line_in_request(false, true).await,
            line_in_request(false, false).await,
        );
        assert_eq!(ours, theirs);
        assert!(ours.contains(r#""/v1/users/{userId}/zak""#), "{ours}");
    }

    #[test]
    fn info_lines_wait_for_a_flush_and_go_out_in_one_write() {
        let out = Recorded::default();
        let lines = BufferedLines::new(out.clone());

        for i in 0..100 {
            log(&lines, Level::INFO, &format!("served {i}\n"));
        }
        assert_eq!(out.writes(), 0, "nothing written before the flush");

        lines.flush();
        assert_eq!(out.writes(), 1);
        let text = out.text();
        assert_eq!(text.lines().count(), 100);
        assert!(text.starts_with("served 0\n") && text.ends_with("served 99\n"));
    }

    #[test]
    fn a_warning_goes_out_at_once_after_the_lines_before_it() {
        let out = Recorded::default();
        let lines = BufferedLines::new(out.clone());

        log(&lines, Level::INFO, "served\n");
        log(&lines, Level::WARN, "cannot reach Zoom\n");
        assert_eq!(out.text(), "served\ncannot reach Zoom\n");

        log(&lines, Level::INFO, "served again\n");
        log(&lines, Level::ERROR, "store down\n");
        assert_eq!(
            out.text(),
            "served\ncannot reach Zoom\nserved again\nstore down\n"
        );
    }

    #[test]
    fn the_panic_flush_skips_a_buffer_its_own_thread_holds() {
        let out = Recorded::default();
        let lines = BufferedLines::new(out.clone());
        log(&lines, Level::INFO, "served\n");

        let held = lines.lock();
        lines.flush_unless_busy();
        drop(held);
        assert_eq!(out.writes(), 0);

        lines.flush_unless_busy();
        assert_eq!(out.text(), "served\n");
    }

    #[test]
    fn a_full_buffer_is_written_without_waiting_for_a_flush() {
        let out = Recorded::default();
        let lines = BufferedLines::new(out.clone());
        let line = format!("{}\n", "x".repeat(999));

        for _ in 0..(BUFFER_BYTES / line.len() + 1) {
            log(&lines, Level::INFO, &line);
        }
        assert!(out.writes() >= 1);
        assert_eq!(out.text().len() % line.len(), 0, "only whole lines");
    }
}

//! The audit trail: one JSON line per decision of the token, revocation and introspection
//! endpoints and of a sign-in (the login form, the upstream callback), on the tracing target
//! [`TARGET`], so that a log pipeline can route it apart and `RUST_LOG` can switch it off
//! (`tokenwarden::audit=off`). docs/audit.md lists the fields.
//!
//! How a line comes about: [`Layer`] wraps every public endpoint. It gives the request its
//! id ([`RequestContext`]: an `X-Request-Id` from a trusted proxy, else a fresh one) and the
//! client's address as the trusted-proxy rules resolve it ([`super::client_address`]), returns
//! the id on the response, and when the handler attached a [`Decision`] to its response, writes
//! the line with the latency. A handler only describes what it decided, from what its grant
//! returned; a new grant at the token endpoint is audited without code of its own.
//!
//! The layer also opens the request's span (the root of its trace, or the child of a
//! trusted proxy's `traceparent`), under which the grant, the store and the upstream provider
//! open theirs.
//!
//! Owns: the request id, the request's span, the line's fields and its JSON form ([`layer`]). Must not decide
//! anything, and must never be handed a token, code, secret, password or assertion: a
//! [`Decision`] holds only identifiers (client id, subject, `jti`, family id) and the granted
//! scope and audience.

use super::client_address::TrustedProxies;
use crate::tokens::MintedToken;
use axum::extract::Request;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument as _;

/// The tracing target of the audit lines.
pub(crate) const TARGET: &str = "tokenwarden::audit";

/// The request id header, accepted from trusted proxies and returned on every response.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id accepted from a proxy; a longer one is replaced.
pub(crate) const MAX_REQUEST_ID: usize = 128;

/// What the issuer knows about a request before its handler runs, as a request extension.
#[derive(Clone, Debug)]
pub(crate) struct RequestContext {
    /// The request id: the trusted proxy's `X-Request-Id`, or a fresh one.
    pub id: Arc<str>,
    /// The client's address ([`super::client_address`]); `None` without connection info
    /// (in-process tests).
    pub client_address: Option<IpAddr>,
    /// Whether the TCP peer is a trusted proxy (`--trusted-proxies`).
    pub from_trusted_proxy: bool,
}

/// One decision, as a handler describes it: attached to its response
/// ([`Decision::attach`]), written by [`Layer`]. Identifiers only, never a credential.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// `token`, `revoke`, `introspect` or `sign_in`.
    pub endpoint: &'static str,
    /// What was decided: `issued`, `refused`, `revoked`, `active`, `inactive`, `signed_in`…
    pub outcome: &'static str,
    /// The RFC 6749 error code, when the request was refused with one.
    pub error: Option<&'static str>,
    /// Why a sign-in was refused, when no RFC code says it (`wrong_credentials`, `locked`…).
    pub reason: Option<&'static str>,
    /// The grant type (token endpoint), a bounded label.
    pub grant: Option<&'static str>,
    /// The authenticated client (the client of the authorization request, for a sign-in).
    pub client_id: Option<String>,
    pub audience: Option<String>,
    /// The scope granted (or asked for, for a sign-in).
    pub scope: Option<String>,
    /// The subject of the token or of the sign-in.
    pub subject: Option<String>,
    /// The `jti` of the access token issued, revoked or introspected.
    pub jti: Option<String>,
    /// The refresh-token family involved.
    pub family_id: Option<String>,
}

impl Decision {
    pub(crate) fn new(endpoint: &'static str, outcome: &'static str) -> Self {
        Self {
            endpoint,
            outcome,
            ..Self::default()
        }
    }

    /// A refusal with an RFC error code.
    pub(crate) fn refused(endpoint: &'static str, error: &super::error::OAuthError) -> Self {
        Self {
            error: Some(error.code.as_str()),
            ..Self::new(endpoint, "refused")
        }
    }

    /// The identifiers of an access token just minted: `jti`, subject and family.
    pub(crate) fn with_minted(mut self, token: &MintedToken) -> Self {
        self.jti = Some(token.jti.clone());
        self.subject = Some(token.subject.clone());
        self.family_id.clone_from(&token.session);
        self
    }

    /// Attach the decision to `response`, for [`Layer`] to write.
    pub(crate) fn attach(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }

    /// The audit line: written here as one flat JSON object (docs/audit.md lists its fields),
    /// carried by one event on [`TARGET`] so that the usual filter routes it, and written out
    /// by [`layer`].
    fn write(&self, context: &RequestContext, latency: Duration) {
        // The field's value is computed only when the target is enabled.
        tracing::info!(
            target: TARGET,
            line = self.line(context, latency, SystemTime::now()).as_str()
        );
    }

    /// The line's text. Written by hand rather than by serde: it is on every request's path, and
    /// a derive's field-by-field escaping and formatting cost more than the rest of the trail;
    /// its helpers are not inlined, so that the code a request runs stays small (misses of the
    /// instruction cache cost a request more than instructions: docs/benchmarks.md, "The audit
    /// trail's cost").
    fn line(&self, context: &RequestContext, latency: Duration, now: SystemTime) -> String {
        let mut line = JsonObject::with_capacity(512);
        line.raw("timestamp", |out| {
            out.push('"');
            push_timestamp(out, now);
            out.push('"');
        });
        for (name, value) in [
            ("level", Some("INFO")),
            ("target", Some(TARGET)),
            ("endpoint", Some(self.endpoint)),
            ("outcome", Some(self.outcome)),
            ("error", self.error),
            ("reason", self.reason),
            ("grant", self.grant),
            ("client_id", self.client_id.as_deref()),
            ("audience", self.audience.as_deref()),
            ("scope", self.scope.as_deref()),
            ("sub", self.subject.as_deref()),
            ("jti", self.jti.as_deref()),
            ("family_id", self.family_id.as_deref()),
        ] {
            if let Some(value) = value {
                line.string(name, value);
            }
        }
        if let Some(address) = context.client_address {
            line.raw("client_address", |out| {
                out.push('"');
                push_address(out, address);
                out.push('"');
            });
        }
        line.raw("latency_ms", |out| push_milliseconds(out, latency));
        line.string("request_id", &context.id);
        line.finish()
    }
}

/// A JSON object written field by field into one string.
struct JsonObject(String);

impl JsonObject {
    fn with_capacity(capacity: usize) -> Self {
        let mut text = String::with_capacity(capacity);
        text.push('{');
        Self(text)
    }

    /// A field whose value `value` writes as JSON.
    fn raw(&mut self, name: &'static str, value: impl FnOnce(&mut String)) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(name);
        self.0.push_str("\":");
        value(&mut self.0);
    }

    fn string(&mut self, name: &'static str, value: &str) {
        self.raw(name, |out| push_json_string(out, value));
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// `value` as a JSON string. Most values need no escaping (identifiers, URLs), and are
/// copied whole; the others go through serde_json.
#[inline(never)]
fn push_json_string(out: &mut String, value: &str) {
    let plain = value.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else if let Ok(escaped) = serde_json::to_string(value) {
        out.push_str(&escaped);
    }
}

/// `latency` in milliseconds with three decimals (microseconds), as a JSON number.
fn push_milliseconds(out: &mut String, latency: Duration) {
    let micros = latency.as_micros();
    push_number(out, u64::try_from(micros / 1000).unwrap_or(u64::MAX), 1);
    out.push('.');
    push_number(out, (micros % 1000) as u64, 3);
}

/// `value` in decimal, padded with zeros to `width` digits.
#[inline(never)]
fn push_number(out: &mut String, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut rest = value;
    let mut start = digits.len();
    while rest > 0 || digits.len() - start < width {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

/// An IP address as text (`Display`'s form; IPv4, the usual case, without its formatter).
fn push_address(out: &mut String, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_number(out, u64::from(octet), 1);
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// A time as RFC 3339 in UTC with microseconds (`2026-12-06T07:12:03.418123Z`).
#[inline(never)]
fn push_timestamp(out: &mut String, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    push_number(out, year, 4);
    out.push('-');
    push_number(out, month, 2);
    out.push('-');
    push_number(out, day, 2);
    out.push('T');
    push_number(out, second_of_day / 3600, 2);
    out.push(':');
    push_number(out, second_of_day % 3600 / 60, 2);
    out.push(':');
    push_number(out, second_of_day % 60, 2);
    out.push('.');
    push_number(out, u64::from(since.subsec_micros()), 6);
    out.push('Z');
}

/// The date of a day counted from 1970-01-01 (H. Hinnant's `civil_from_days`, for days on or
/// after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The layer of the public endpoints ([`Audited`]): the request's [`RequestContext`] and span,
/// its id on the response, and the audit line of the decision the handler attached.
///
/// Written out rather than with axum's `from_fn`, which boxes the rest of the stack and its
/// future for every request: this layer's future wraps the inner one, and the request runs
/// less code (docs/benchmarks.md, "The audit trail's cost").
#[derive(Clone)]
pub(crate) struct Layer {
    proxies: Arc<TrustedProxies>,
}

impl Layer {
    pub(crate) fn new(proxies: Arc<TrustedProxies>) -> Self {
        Self { proxies }
    }
}

impl<S> tower::Layer<S> for Layer {
    type Service = Audited<S>;

    fn layer(&self, inner: S) -> Audited<S> {
        Audited {
            inner,
            proxies: self.proxies.clone(),
        }
    }
}

/// A service with [`Layer`] around it.
#[derive(Clone)]
pub(crate) struct Audited<S> {
    inner: S,
    proxies: Arc<TrustedProxies>,
}

impl<S> tower::Service<Request> for Audited<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AuditedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let context = context(&self.proxies, &request);
        let span = request_span(&request, &context);
        request.extensions_mut().insert(context.clone());
        let inner = span.in_scope(|| self.inner.call(request));
        AuditedFuture {
            inner: inner.instrument(span.clone()),
            context,
            span,
            started,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of an [`Audited`] service, finished by [`finish`] when it is ready.
    pub(crate) struct AuditedFuture<F> {
        #[pin]
        inner: tracing::instrument::Instrumented<F>,
        context: RequestContext,
        span: tracing::Span,
        started: Instant,
    }
}

impl<F, E> Future for AuditedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        finish(&mut response, this.context, this.span, *this.started);
        Poll::Ready(Ok(response))
    }
}

/// The request's status on its span, its id on the response, and the line of the decision
/// the handler attached, if any.
fn finish(
    response: &mut Response,
    context: &RequestContext,
    span: &tracing::Span,
    started: Instant,
) {
    span.record("http.response.status_code", response.status().as_u16());
    if let Ok(value) = HeaderValue::from_str(&context.id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    if let Some(decision) = response.extensions_mut().remove::<Decision>() {
        decision.write(context, started.elapsed());
    }
}

/// The request's span (none without traces, [`crate::telemetry::traces_on`]): its method and path (never the query, which may hold a code or a
/// `state`) and its id. Its parent is the caller's W3C `traceparent` (with `tracestate`) only
/// when a trusted proxy sent it; any other caller's is ignored and the span starts a trace.
fn request_span(request: &Request, context: &RequestContext) -> tracing::Span {
    if !crate::telemetry::traces_on() {
        return tracing::Span::none();
    }
    let method = request.method().as_str();
    let path = request.uri().path();
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {path}"),
        otel.kind = "server",
        http.request.method = method,
        url.path = path,
        http.response.status_code = tracing::field::Empty,
        request_id = &*context.id,
    );
    if context.from_trusted_proxy && request.headers().contains_key("traceparent") {
        use opentelemetry::propagation::TextMapPropagator as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
            .extract(&HeaderExtractor(request.headers()));
        // Without the OpenTelemetry layer (traces off) there is nothing to link.
        let _ = span.set_parent(parent);
    }
    span
}

/// The headers as the propagator reads them.
struct HeaderExtractor<'h>(&'h HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

fn context(proxies: &TrustedProxies, request: &Request) -> RequestContext {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let from_trusted_proxy = peer.is_some_and(|peer| proxies.trusts(peer));
    let client_address = peer.map(|peer| proxies.client(peer, request.headers()));
    let id = from_trusted_proxy
        .then(|| forwarded_id(request.headers()))
        .flatten()
        .unwrap_or_else(fresh_id);
    RequestContext {
        id: id.into(),
        client_address,
        from_trusted_proxy,
    }
}

/// The proxy's `X-Request-Id`, when there is exactly one and it is sane: 1 to
/// [`MAX_REQUEST_ID`] printable ASCII characters, no spaces.
fn forwarded_id(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(X_REQUEST_ID).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let bytes = value.as_bytes();
    let sane = !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID
        && bytes.iter().all(u8::is_ascii_graphic);
    sane.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// A fresh request id, 32 hex digits: 64 random bits drawn once per process, then a counter.
/// Unique, not secret (it is in logs and responses), and cheap: no randomness per request.
fn fresh_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without randomness (which does not happen) the ids are still unique in the process.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        u64::from_le_bytes(bytes)
    });
    let count = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = String::with_capacity(32);
    for half in [prefix, count] {
        for shift in (0..16).rev() {
            let digit = (half >> (shift * 4)) & 0xf;
            id.push(char::from(b"0123456789abcdef"[digit as usize]));
        }
    }
    id
}

/// The layer that writes the audit lines to `writer`, whatever the format of the other logs:
/// each event on [`TARGET`] carries its line whole ([`Decision`] serialised as one flat JSON
/// object: `timestamp`, `level`, `target` and the decision's fields), written with a newline in
/// one write. It lets through only [`TARGET`]. Tests install it with a writer of their own.
pub fn layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer as _;
    AuditLayer { writer }.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        meta.target() == TARGET
    }))
}

struct AuditLayer<W> {
    writer: W,
}

impl<S, W> tracing_subscriber::Layer<S> for AuditLayer<W>
where
    S: tracing::Subscriber,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut line = LineField(None);
        event.record(&mut line);
        if let Some(text) = line.0 {
            // Nowhere to report a failed write: the line is dropped, as a log line would be.
            let _ = std::io::Write::write_all(&mut self.writer.make_writer(), text.as_bytes());
        }
    }
}

/// The `line` field of an audit event, with its newline: the text written out whole.
struct LineField(Option<String>);

impl tracing::field::Visit for LineField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "line" {
            let mut line = String::with_capacity(value.len() + 1);
            line.push_str(value);
            line.push('\n');
            self.0 = Some(line);
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                X_REQUEST_ID,
                HeaderValue::from_bytes(value).expect("header bytes"),
            );
        }
        headers
    }

    #[test]
    fn a_sane_request_id_is_taken_and_a_garbled_one_is_not() {
        assert_eq!(
            forwarded_id(&with_id(&[b"req-42_abc.DEF"])).as_deref(),
            Some("req-42_abc.DEF")
        );
        let longest = "a".repeat(MAX_REQUEST_ID);
        assert_eq!(
            forwarded_id(&with_id(&[longest.as_bytes()])).as_deref(),
            Some(longest.as_str())
        );
        let too_long = "a".repeat(MAX_REQUEST_ID + 1);
        for garbled in [
            &[too_long.as_bytes()][..],
            &[b""],
            &[b"two words"],
            &[b"tab\there"],
            &[b"caf\xc3\xa9"],
            &[b"one", b"two"],
        ] {
            assert_eq!(forwarded_id(&with_id(garbled)), None, "{garbled:?}");
        }
        assert_eq!(forwarded_id(&HeaderMap::new()), None);
    }

    #[test]
    fn timestamps_are_rfc_3339_in_utc() {
        let at = |seconds: u64, micros: u32| {
            let mut text = String::new();
            push_timestamp(
                &mut text,
                UNIX_EPOCH + Duration::new(seconds, micros * 1000),
            );
            text
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_800_000_000, 123_456), "2027-01-15T08:00:00.123456Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z");
    }

    #[test]
    fn a_line_is_one_flat_json_object_with_the_fields_present() {
        let decision = Decision {
            grant: Some("client_credentials"),
            client_id: Some("worker".to_owned()),
            audience: Some("https://api.example".to_owned()),
            scope: Some("read write".to_owned()),
            subject: Some("worker@clients".to_owned()),
            jti: Some("j1".to_owned()),
            ..Decision::new("token", "issued")
        };
        let context = RequestContext {
            id: "edge-42".into(),
            client_address: Some("2001:db8::7".parse().expect("address")),
            from_trusted_proxy: true,
        };
        let at = UNIX_EPOCH + Duration::new(1_800_000_000, 5_000);
        assert_eq!(
            decision.line(&context, Duration::from_micros(12_345_678), at),
            concat!(
                r#"{"timestamp":"2027-01-15T08:00:00.000005Z","level":"INFO","#,
                r#""target":"tokenwarden::audit","endpoint":"token","outcome":"issued","#,
                r#""grant":"client_credentials","client_id":"worker","#,
                r#""audience":"https://api.example","scope":"read write","#,
                r#""sub":"worker@clients","jti":"j1","client_address":"2001:db8::7","#,
                r#""latency_ms":12345.678,"request_id":"edge-42"}"#
            )
        );
        let refused = Decision::new("revoke", "refused");
        let context = RequestContext {
            client_address: None,
            ..context
        };
        let line = refused.line(&context, Duration::from_micros(7), at);
        assert!(
            line.ends_with(r#""outcome":"refused","latency_ms":0.007,"request_id":"edge-42"}"#),
            "{line}"
        );
    }

    #[test]
    fn a_line_escapes_what_json_must_and_parses_back() {
        let odd = "a\"b\\c\u{1}d\ne\u{7f}é\u{2028}";
        let decision = Decision {
            client_id: Some(odd.to_owned()),
            subject: Some("plain".to_owned()),
            ..Decision::new("token", "refused")
        };
        let context = RequestContext {
            id: "r".into(),
            client_address: None,
            from_trusted_proxy: false,
        };
        let line = decision.line(&context, Duration::ZERO, UNIX_EPOCH);
        let parsed: serde_json::Value = serde_json::from_str(&line).expect(&line);
        assert_eq!(parsed["client_id"], odd);
        assert_eq!(parsed["sub"], "plain");
        assert_eq!(parsed["latency_ms"], 0.0);
        assert_eq!(parsed["timestamp"], "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn fresh_request_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (fresh_id(), fresh_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        assert_eq!(a[..16], b[..16], "one prefix in the process");
        let count = |id: &str| u64::from_str_radix(&id[16..], 16).expect("hex");
        assert!(count(&b) > count(&a), "then a counter: {a} {b}");
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for address in [
            "0.0.0.0",
            "10.0.200.7",
            "255.255.255.255",
            "2001:db8::7",
            "::1",
            "::ffff:1.2.3.4",
        ] {
            let address: IpAddr = address.parse().expect("address");
            let mut text = String::new();
            push_address(&mut text, address);
            assert_eq!(text, address.to_string());
        }
    }
}

//! A chaos HTTP server and a small HTTP client, shared by `examples/http.rs`, `examples/crawl.rs`
//! and `tests/chaos.rs`.
//!
//! [`Server`] is a hand-written HTTP/1.1 server on tokio's `TcpListener`, on a thread of its own
//! (a current-thread runtime), listening on `127.0.0.1` at an ephemeral port. A request's path is
//! `/i/{item}/{attempt}`; a [`Plan`] decides what the server does with it: answer 200 after a
//! delay, answer 429 with `Retry-After`, 503 or 404, reset the connection, or stall until the client
//! hangs up. The server logs every request ([`Record`]): when it arrived, what it was answered, when
//! the answer was sent, and how many requests were in progress with it, so that a test can check
//! the client's rate, concurrency and retry delays against what the server saw, not what the client
//! believes.
//!
//! [`get`] is the client: one connection per request, with hyper's HTTP/1 connection driven inside
//! the request's own future (nothing is spawned), so that dropping the future (a lane's timeout)
//! closes the socket at once.
//!
//! Why the accounting is exact: the server runs on one thread, and a request stays in progress
//! from the moment its head is parsed until its answer is written, its connection reset, or (a
//! stall) the client's close is read. A client that drops a stalled request closes its socket
//! before it can open the next connection, and the server's one thread handles that close before
//! it reads the next request, which arrives later: so the server never counts a request that the
//! client already gave up (`tests/chaos.rs` checks the peak against the lane's limit on every
//! run).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What the server does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reply {
    /// 200 after this long.
    Ok(Duration),
    /// 429 Too Many Requests, with `Retry-After: {0}` (seconds).
    TooMany(u32),
    /// 503 Service Unavailable.
    Unavailable,
    /// 404 Not Found.
    NotFound,
    /// Reads the request, then resets the connection (`SO_LINGER` 0, then close: the client reads
    /// `ECONNRESET`).
    Reset,
    /// Reads the request and answers nothing until the client closes the connection (or 10 s).
    Stall,
}

impl Reply {
    /// A short name for a summary: `200`, `429`, `503`, `404`, `reset`, `stall`.
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::Ok(_) => "200",
            Reply::TooMany(_) => "429",
            Reply::Unavailable => "503",
            Reply::NotFound => "404",
            Reply::Reset => "reset",
            Reply::Stall => "stall",
        }
    }
}

/// Decides the [`Reply`] to the request for `item`'s attempt `attempt` (from 0).
pub type Plan = Arc<dyn Fn(u64, u32) -> Reply + Send + Sync>;

/// How long a stall lasts at most when the client does not hang up.
const STALL_MAX: Duration = Duration::from_secs(10);

/// The seeded plan of `examples/http.rs` and `tests/chaos.rs`: a deterministic function of the
/// seed, the item and the attempt.
///
/// - Attempt 0: 4 % 429 (`Retry-After: 1`), 6 % 503, 3 % reset, 2 % stall; attempt 1: 1 % each of
///   429, 503, reset and stall; attempt 2: 1 % 503; attempt 3 and later: 200. A client that retries
///   at least 3 times, retries every failure but a 404, and honours `Retry-After` gets every item
///   but the two kinds below.
/// - One item in 250 (by its hash) is a 503 at every attempt: it fails with 503 after its last
///   retry.
/// - One item in 400 (by its hash) is a 404 at every attempt, which a client should not retry.
/// - A 200 comes after `base` to `base + spread` (by the hash), so that requests overlap.
#[derive(Clone, Copy, Debug)]
pub struct Chaos {
    /// Makes another plan.
    pub seed: u64,
    /// The shortest delay before a 200.
    pub base: Duration,
    /// A 200's delay is `base` plus up to this much.
    pub spread: Duration,
}

impl Chaos {
    /// The reply to `item`'s attempt `attempt`.
    pub fn reply(&self, item: u64, attempt: u32) -> Reply {
        let per_item = mix(self.seed ^ item.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if per_item % 250 == 7 {
            return Reply::Unavailable;
        }
        if (per_item >> 20) % 400 == 11 {
            return Reply::NotFound;
        }
        // Per mille, from the item and the attempt.
        let roll = mix(per_item ^ u64::from(attempt).wrapping_mul(0xD1B5_4A32_D192_ED03)) % 1000;
        let fault = match attempt {
            0 => match roll {
                0..=39 => Some(Reply::TooMany(1)),
                40..=99 => Some(Reply::Unavailable),
                100..=129 => Some(Reply::Reset),
                130..=149 => Some(Reply::Stall),
                _ => None,
            },
            1 => match roll {
                0..=9 => Some(Reply::TooMany(1)),
                10..=19 => Some(Reply::Unavailable),
                20..=29 => Some(Reply::Reset),
                30..=39 => Some(Reply::Stall),
                _ => None,
            },
            2 => (roll < 10).then_some(Reply::Unavailable),
            _ => None,
        };
        fault.unwrap_or_else(|| {
            let spread = self.spread.as_micros() as u64;
            let extra = if spread == 0 {
                0
            } else {
                (per_item >> 32) % spread
            };
            Reply::Ok(self.base + Duration::from_micros(extra))
        })
    }

    /// The plan for a [`Server`].
    pub fn plan(self) -> Plan {
        Arc::new(move |item, attempt| self.reply(item, attempt))
    }

    /// What a client that makes at most `retries + 1` attempts and retries every failure but a 404
    /// must see for `item`: each attempt's reply, the last one being the outcome.
    pub fn expected(&self, item: u64, retries: u32) -> Vec<Reply> {
        let mut replies = Vec::new();
        for attempt in 0..=retries {
            let reply = self.reply(item, attempt);
            replies.push(reply);
            if matches!(reply, Reply::Ok(_) | Reply::NotFound) {
                break;
            }
        }
        replies
    }
}

/// splitmix64's finalizer: a well-mixed hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// One request as the server saw it.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// The item, from the path.
    pub item: u64,
    /// The attempt, from the path.
    pub attempt: u32,
    /// When its head was parsed.
    pub arrived: Instant,
    /// What it was answered.
    pub reply: Reply,
    /// Just before the answer was written (or the connection reset); `None` for a stall, or a
    /// request dropped when the server stopped.
    pub sent: Option<Instant>,
    /// Requests in progress when it arrived, itself included.
    pub in_flight: usize,
}

/// What the server's connections share.
#[derive(Debug, Default)]
struct State {
    log: Vec<Record>,
    in_flight: usize,
    peak: usize,
    /// Connections that closed or broke before a request head was read.
    no_request: usize,
}

/// Locks a mutex, ignoring poison (a test that failed must not hide the log).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A chaos HTTP server on `127.0.0.1`, on a thread of its own. Stops when dropped.
pub struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Starts a server that answers by `plan`, on an ephemeral port of `127.0.0.1`.
    ///
    /// # Panics
    ///
    /// If the runtime or the listener cannot be made.
    pub fn start(plan: Plan) -> Server {
        let state = Arc::new(Mutex::new(State::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("chaos-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the server");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
                    addr_tx
                        .send(listener.local_addr().expect("an address"))
                        .ok();
                    tokio::spawn(async move {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else {
                                // Out of descriptors, say: wait instead of spinning.
                                tokio::time::sleep(Duration::from_millis(1)).await;
                                continue;
                            };
                            stream.set_nodelay(true).ok();
                            let (plan, state) = (Arc::clone(&plan), Arc::clone(&shared));
                            tokio::spawn(serve_one(stream, plan, state));
                        }
                    });
                    stopped.await.ok();
                });
                // Dropping the runtime drops every connection still open.
            })
            .expect("a server thread");
        let addr = addr_rx.recv().expect("the server's address");
        Server {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in order of arrival.
    pub fn log(&self) -> Vec<Record> {
        lock(&self.state).log.clone()
    }

    /// The most requests in progress at once so far.
    pub fn peak(&self) -> usize {
        lock(&self.state).peak
    }

    /// Requests in progress now.
    pub fn in_flight(&self) -> usize {
        lock(&self.state).in_flight
    }

    /// Connections that closed before sending a request head.
    pub fn no_request(&self) -> usize {
        lock(&self.state).no_request
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

/// Leaves the in-progress count when dropped, so that a connection dropped anywhere (the server
/// stopping) leaves it too.
struct InProgress(Arc<Mutex<State>>);

impl Drop for InProgress {
    fn drop(&mut self) {
        lock(&self.0).in_flight -= 1;
    }
}

/// Serves one connection: one request, then close.
async fn serve_one(mut stream: TcpStream, plan: Plan, state: Arc<Mutex<State>>) {
    let Some((item, attempt)) = read_head(&mut stream).await else {
        lock(&state).no_request += 1;
        return;
    };
    let reply = plan(item, attempt);
    let index = {
        let mut s = lock(&state);
        s.in_flight += 1;
        s.peak = s.peak.max(s.in_flight);
        let in_flight = s.in_flight;
        s.log.push(Record {
            item,
            attempt,
            arrived: Instant::now(),
            reply,
            sent: None,
            in_flight,
        });
        s.log.len() - 1
    };
    let _in_progress = InProgress(Arc::clone(&state));
    let sent = |state: &Arc<Mutex<State>>| lock(state).log[index].sent = Some(Instant::now());
    let (status, extra) = match reply {
        Reply::Ok(delay) => {
            tokio::time::sleep(delay).await;
            ("200 OK", String::new())
        }
        Reply::TooMany(secs) => ("429 Too Many Requests", format!("retry-after: {secs}\r\n")),
        Reply::Unavailable => ("503 Service Unavailable", String::new()),
        Reply::NotFound => ("404 Not Found", String::new()),
        Reply::Reset => {
            stream.set_zero_linger().ok();
            sent(&state);
            drop(stream);
            return;
        }
        Reply::Stall => {
            // Until the client hangs up (a read of 0 bytes, or an error), or STALL_MAX.
            let mut buf = [0u8; 256];
            let wait = async {
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            tokio::time::timeout(STALL_MAX, wait).await.ok();
            return;
        }
    };
    let body = format!("item {item} attempt {attempt}\n");
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // Stamped before the write: the client cannot see the answer before `sent`.
    sent(&state);
    stream.write_all(response.as_bytes()).await.ok();
    stream.shutdown().await.ok();
}

/// Reads a request head (up to 8 KiB, to the blank line) and parses `/i/{item}/{attempt}` from it.
async fn read_head(stream: &mut TcpStream) -> Option<(u64, u32)> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 8192 {
            return None;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = std::str::from_utf8(&head).ok()?.lines().next()?;
    let path = line.split(' ').nth(1)?;
    let mut parts = path.strip_prefix("/i/")?.split('/');
    let item = parts.next()?.parse().ok()?;
    let attempt = parts.next()?.parse().ok()?;
    Some((item, attempt))
}

/// A failed request, as the client sees it.
#[derive(Debug)]
pub enum HttpError {
    /// An answer other than 200, with its `Retry-After` in seconds if it had one.
    Status {
        /// The status code.
        status: u16,
        /// The `Retry-After` header, in seconds (the delta form).
        retry_after: Option<Duration>,
    },
    /// The connection was reset, or closed before an answer.
    Reset,
    /// Anything else (connecting, a malformed answer).
    Other(String),
}

impl HttpError {
    /// The delay the server asked for (`Retry-After`), for `retry_after` of a lane.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The status code, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A short name for a summary: `429`, `503`, `404`, `reset`, `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::Status { status: 429, .. } => "429",
            HttpError::Status { status: 503, .. } => "503",
            HttpError::Status { status: 404, .. } => "404",
            HttpError::Status { .. } => "status",
            HttpError::Reset => "reset",
            HttpError::Other(_) => "other",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Status { status, .. } => write!(f, "HTTP status {status}"),
            HttpError::Reset => f.write_str("connection reset"),
            HttpError::Other(e) => write!(f, "request failed: {e}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<hyper::Error> for HttpError {
    fn from(e: hyper::Error) -> Self {
        if e.is_incomplete_message() {
            return HttpError::Reset;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::*;
                if matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) {
                    return HttpError::Reset;
                }
            }
            source = s.source();
        }
        HttpError::Other(e.to_string())
    }
}

/// Parses `Retry-After` in its delta-seconds form (`Retry-After: 120`); the HTTP-date form is not
/// used by the chaos server and reads as `None`.
pub fn parse_retry_after(value: &[u8]) -> Option<Duration> {
    let secs: u64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// `GET http://{addr}{path}` on a connection of its own, driven inside this future; gives the body
/// of a 200.
///
/// # Errors
///
/// [`HttpError::Status`] for any other status, [`HttpError::Reset`] if the connection was reset or
/// closed before the answer, [`HttpError::Other`] otherwise.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Bytes, HttpError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| HttpError::Other(format!("connect: {e}")))?;
    stream.set_nodelay(true).ok();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| HttpError::Other(e.to_string()))?;
    let send = async move {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(v.as_bytes()));
        let body = response.into_body().collect().await?.to_bytes();
        if status == 200 {
            Ok(body)
        } else {
            Err(HttpError::Status {
                status,
                retry_after,
            })
        }
    };
    // The connection is driven beside the request; once the request is done it is dropped (the
    // server closes after its one answer anyway).
    let send = std::pin::pin!(send);
    let conn = std::pin::pin!(conn);
    match race(conn, send).await {
        Either::Request(outcome) => outcome,
        Either::Conn(send) => send.await,
    }
}

/// Which of [`race`]'s futures finished first.
enum Either<A, B> {
    /// The connection ended first; the request, still to finish.
    Conn(B),
    /// The request's outcome.
    Request(A),
}

/// Polls the connection and the request together until the request is done, or the connection
/// ends (then the request has its outcome ready or nearly so). Written out to keep `futures` a
/// dev-dependency of the examples only.
async fn race<'a, C, S, T>(
    mut conn: std::pin::Pin<&mut C>,
    mut send: std::pin::Pin<&'a mut S>,
) -> Either<T, std::pin::Pin<&'a mut S>>
where
    C: std::future::Future,
    S: std::future::Future<Output = T>,
{
    let mut conn_done = false;
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = send.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        if !conn_done && conn.as_mut().poll(cx).is_ready() {
            conn_done = true;
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Pending
    })
    .await
    .map_or(Either::Conn(send), Either::Request)
}

/// Requests per second over a log: `(n - 1) / (last - first)`.
pub fn rate_over_run(log: &[Record]) -> f64 {
    match (log.first(), log.last()) {
        (Some(first), Some(last)) if log.len() > 1 => {
            (log.len() - 1) as f64 / (last.arrived - first.arrived).as_secs_f64()
        }
        _ => 0.0,
    }
}

/// The GCRA (virtual scheduling) check of a log of arrivals against `per_second` with `burst`:
/// the most that any arrival came ahead of the schedule that the rate allows, beyond the burst.
///
/// With the period `T = 1 / per_second`, the theoretical arrival time `tat` starts at the first
/// arrival; an arrival at `t` is `tat - (burst - 1) T - t` early (if positive), then
/// `tat = max(tat, t) + T`. A log whose worst earliness is at most `tolerance` never has more
/// than `burst + (w + tolerance) / T` arrivals in any window of length `w`.
pub fn gcra_worst_early(arrivals: &[Instant], per_second: f64, burst: u32) -> Duration {
    let period = Duration::from_secs_f64(1.0 / per_second);
    let allowance = period * burst.saturating_sub(1);
    let mut worst = Duration::ZERO;
    let Some(&first) = arrivals.first() else {
        return worst;
    };
    let mut tat = first;
    for &t in arrivals {
        let earliest = tat.checked_sub(allowance).unwrap_or(tat);
        worst = worst.max(earliest.saturating_duration_since(t));
        tat = tat.max(t) + period;
    }
    worst
}

/// For each 429 in the log, the time from its answer to the next attempt of the same item (if
/// there was one): how well a client honoured `Retry-After`.
pub fn retry_after_gaps(log: &[Record]) -> Vec<(u64, Duration, Duration)> {
    let mut next: HashMap<(u64, u32), Instant> = HashMap::new();
    for r in log {
        next.insert((r.item, r.attempt), r.arrived);
    }
    log.iter()
        .filter_map(|r| match (r.reply, r.sent) {
            (Reply::TooMany(secs), Some(sent)) => {
                let again = next.get(&(r.item, r.attempt + 1))?;
                Some((
                    r.item,
                    Duration::from_secs(u64::from(secs)),
                    again.saturating_duration_since(sent),
                ))
            }
            _ => None,
        })
        .collect()
}

/// Counts of a log's replies by [`Reply::kind`].
pub fn count_by_kind(log: &[Record]) -> std::collections::BTreeMap<&'static str, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for r in log {
        *counts.entry(r.reply.kind()).or_insert(0) += 1;
    }
    counts
}

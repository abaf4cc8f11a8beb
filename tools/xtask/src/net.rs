//! The host side of exo's network: a small HTTP/1.1 client (std
//! `TcpStream`, to 127.0.0.1 only, every call bounded in time), the
//! checks the `net-httpd` test runs against the `httpd` program while
//! QEMU runs (see `qemu::RunOptions::while_running`), and `bench net`.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Size of `/1mib`.
pub const MIB: usize = 1 << 20;

/// Byte `i` of `/1mib`: `(i mod 251) xor (i >> 16)`, as `httpd`
/// (`userland/demos/src/bin/httpd.rs`) computes it.
pub fn pattern(i: usize) -> u8 {
    ((i % 251) ^ (i >> 16)) as u8
}

/// A free TCP port on 127.0.0.1 for QEMU's forward (the kernel's pick;
/// free when this returns, so QEMU can bind it right after).
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// How long any one read or write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the forwarded port.
fn connect(port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    stream.set_nodelay(true).ok();
    Ok(stream)
}

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value (name compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A connection that keeps its read buffer between responses.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(port: u16) -> Result<Conn, String> {
        Conn::open_with(port, IO_TIMEOUT)
    }

    fn open_with(port: u16, timeout: Duration) -> Result<Conn, String> {
        Ok(Conn {
            reader: BufReader::with_capacity(64 * 1024, connect(port, timeout)?),
        })
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.reader
            .get_mut()
            .write_all(bytes)
            .map_err(|e| format!("write: {e}"))
    }

    /// Sends `METHOD PATH` (keep-alive unless `close`).
    pub fn request(&mut self, method: &str, path: &str, close: bool) -> Result<(), String> {
        let connection = if close { "close" } else { "keep-alive" };
        self.send(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n\r\n"
            )
            .as_bytes(),
        )
    }

    /// Reads one response (its body by Content-Length; none for HEAD).
    pub fn response(&mut self, head_only: bool) -> Result<Response, String> {
        let mut line = String::new();
        let read = |r: &mut BufReader<TcpStream>, line: &mut String| {
            line.clear();
            match r.read_line(line) {
                Ok(0) => Err("connection closed".to_string()),
                Ok(_) => Ok(()),
                Err(e) => Err(format!("read: {e}")),
            }
        };
        read(&mut self.reader, &mut line)?;
        let status = line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or(format!("not a status line: {:?}", line.trim_end()))?;
        let mut headers = Vec::new();
        loop {
            read(&mut self.reader, &mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').ok_or(format!("bad header {l:?}"))?;
            headers.push((n.to_string(), v.trim().to_string()));
            if headers.len() > 64 {
                return Err("too many headers".into());
            }
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or("no Content-Length")?;
        if !head_only {
            if length > 16 * MIB {
                return Err(format!("Content-Length {length}: too long"));
            }
            response.body = vec![0; length];
            self.reader
                .read_exact(&mut response.body)
                .map_err(|e| format!("body: {e}"))?;
        }
        Ok(response)
    }

    /// `GET path` on this connection.
    pub fn get(&mut self, path: &str) -> Result<Response, String> {
        self.request("GET", path, false)?;
        self.response(false)
    }

    /// Whether the server has closed the connection (EOF or reset within
    /// 50 ms).
    pub fn closed_by_server(&mut self) -> bool {
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(50)));
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    }
}

/// Waits until `httpd` answers (QEMU accepts the forwarded connection
/// before the guest listens, so a probe that gets nothing is retried).
pub fn wait_ready(port: u16, within: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        match Conn::open_with(port, Duration::from_secs(2)).and_then(|mut c| c.get("/hello")) {
            Ok(r) if r.status == 200 => return Ok(start.elapsed()),
            Ok(r) => last = format!("status {}", r.status),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "httpd did not answer within {} s ({last})",
        within.as_secs()
    ))
}

fn expect(what: &str, ok: bool) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: not as expected"))
    }
}

/// Checks `r` is `/1mib`, byte for byte.
fn check_mib(r: &Response) -> Result<(), String> {
    expect("/1mib status", r.status == 200)?;
    if r.body.len() != MIB {
        return Err(format!("/1mib: {} bytes, expected {MIB}", r.body.len()));
    }
    match (0..MIB).find(|&i| r.body[i] != pattern(i)) {
        None => Ok(()),
        Some(i) => Err(format!(
            "/1mib: byte {i} is {:#04x}, expected {:#04x}",
            r.body[i],
            pattern(i)
        )),
    }
}

/// Sends `bytes` on a fresh connection; the status of the answer, or
/// `None` if the server dropped the connection without one.
fn hostile(port: u16, bytes: &[u8]) -> Result<Option<u16>, String> {
    let mut conn = Conn::open(port)?;
    conn.send(bytes)?;
    Ok(conn.response(false).ok().map(|r| r.status))
}

/// What the `net-httpd` test checks while QEMU runs, then `GET /quit`
/// (tried even after a failure, so that the run ends).
pub fn check_httpd(port: u16) -> Result<String, String> {
    let result = wait_ready(port, Duration::from_secs(45)).and_then(|t| checks(port, t));
    let quit = Conn::open(port).and_then(|mut c| {
        c.request("GET", "/quit", true)?;
        c.response(false)
    });
    let report = result?;
    let quit = quit.map_err(|e| format!("/quit: {e}"))?;
    expect("/quit", quit.status == 200 && quit.body == b"httpd: bye\n")?;
    Ok(format!("{report}; /quit answered"))
}

fn checks(port: u16, ready: Duration) -> Result<String, String> {
    let mut notes = vec![format!("httpd answered after {:.1} s", ready.as_secs_f64())];
    // Keep-alive: the index, the 1 MiB file, a 404, HEAD, a pipelined
    // pair, all on one connection.
    let mut c = Conn::open(port)?;
    let index = c.get("/")?;
    let page = String::from_utf8_lossy(&index.body).into_owned();
    expect("/ status", index.status == 200)?;
    expect("/ type", index.header("content-type") == Some("text/html"))?;
    for want in [
        "<h1>exo: a library OS on the network</h1>",
        "<tr><td>frames total</td><td>",
        "<tr><td>free</td><td>",
        "<tr><td>held by httpd</td><td>",
        "<p>uptime: ",
        "</body></html>\n",
    ] {
        if !page.contains(want) {
            return Err(format!("/ lacks {want:?}:\n{page}"));
        }
    }
    let start = Instant::now();
    let mib = c.get("/1mib")?;
    let secs = start.elapsed().as_secs_f64();
    check_mib(&mib)?;
    notes.push(format!(
        "/ ({} bytes) and /1mib (pattern ok, {:.1} MB/s) on one connection",
        index.body.len(),
        MIB as f64 / secs / 1e6
    ));
    expect("/nothing is 404", c.get("/nothing")?.status == 404)?;
    c.request("HEAD", "/1mib", false)?;
    let head = c.response(true)?;
    expect(
        "HEAD /1mib",
        head.status == 200 && head.header("content-length") == Some("1048576"),
    )?;
    c.send(b"GET /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n")?;
    let (a, b) = (c.response(false)?, c.response(false)?);
    expect(
        "pipelined pair",
        a.status == 200 && b.body == a.body && a.body == b"hello, world\n",
    )?;
    drop(c);

    // Several clients at once, each fetching /1mib and / in turn.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || -> Result<(), String> {
                let mut c = Conn::open(port)?;
                for _ in 0..2 {
                    check_mib(&c.get("/1mib")?)?;
                    expect("/ at once", c.get("/")?.status == 200)?;
                }
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client
            .join()
            .unwrap_or_else(|_| Err("a client panicked".into()))?;
    }
    notes.push("4 clients at once: /1mib twice each, byte for byte".into());

    // Malformed requests: an error status, then the connection closes.
    let cases: &[(&[u8], u16)] = &[
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\n\r\n", 505),
        (b"BREW /pot HTTP/1.1\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"\xff\xfe\x00\x01 / HTTP/1.1\r\n\r\n", 400),
        (b"GET relative HTTP/1.1\r\n\r\n", 400),
    ];
    for (bytes, status) in cases {
        let got = hostile(port, bytes)?;
        if got != Some(*status) {
            return Err(format!(
                "{:?}: answered {got:?}, expected {status}",
                String::from_utf8_lossy(bytes)
            ));
        }
    }
    // Headers longer than the server reads: 431.
    let mut long = b"GET / HTTP/1.1\r\n".to_vec();
    while long.len() < 9000 {
        long.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    long.extend_from_slice(b"\r\n");
    expect("long headers get 431", hostile(port, &long)? == Some(431))?;
    notes.push(format!(
        "{} malformed requests answered 400/431/501/505",
        cases.len() + 1
    ));

    // A request line of 1 MiB, written by a second thread while this one
    // reads: 414 (or a dropped connection), and the server serves on.
    let mut conn = Conn::open(port)?;
    let mut writer = conn
        .reader
        .get_ref()
        .try_clone()
        .map_err(|e| e.to_string())?;
    let sender = std::thread::spawn(move || {
        let mut line = b"GET /".to_vec();
        line.resize(MIB, b'a');
        let _ = writer.write_all(&line);
    });
    let long_line = conn.response(false).ok().map(|r| r.status);
    drop(conn);
    let _ = sender.join();
    match long_line {
        Some(414) => notes.push("1 MiB request line: 414".into()),
        None => notes.push("1 MiB request line: connection dropped".into()),
        Some(s) => return Err(format!("1 MiB request line answered {s}")),
    }

    // More idle connections than the server has sockets (some with half a
    // request): the server drops the idle ones to serve a new client.
    let mut idle = Vec::new();
    for i in 0..24 {
        let mut c = Conn::open(port)?;
        if i % 2 == 1 {
            c.send(b"GET / HT")?;
        }
        idle.push(c);
        std::thread::sleep(Duration::from_millis(20));
    }
    let start = Instant::now();
    let r = Conn::open(port)?.get("/hello")?;
    expect("a client after 24 idle connections", r.status == 200)?;
    let dropped = idle
        .iter_mut()
        .map(Conn::closed_by_server)
        .filter(|&d| d)
        .count();
    drop(idle);
    notes.push(format!(
        "24 idle connections: a new client served in {:.2} s, {dropped} idle ones dropped",
        start.elapsed().as_secs_f64()
    ));

    // Clients that go away in the middle of the 1 MiB reply.
    for _ in 0..3 {
        let mut c = Conn::open(port)?;
        c.request("GET", "/1mib", false)?;
        let mut some = vec![0u8; 20_000];
        c.reader
            .read_exact(&mut some)
            .map_err(|e| format!("mid-response read: {e}"))?;
        drop(c); // unread data: the host resets the connection
    }
    let mut c = Conn::open(port)?;
    check_mib(&c.get("/1mib")?)?;
    let after = c.get("/")?;
    expect("/ after the hostile clients", after.status == 200)?;
    notes.push("3 clients gone mid-response; then /1mib again, byte for byte".into());
    Ok(notes.join("; "))
}

/// `cargo xtask bench net`'s figures for one server.
pub struct NetFigures {
    /// Small keep-alive requests per second, one per round.
    pub keepalive: Vec<f64>,
    /// Requests per second with a new connection each.
    pub connections: Vec<f64>,
    /// MB/s of `/1mib`.
    pub mbps: Vec<f64>,
}

/// Measures the server on `port`: `rounds` rounds of `keepalive`
/// requests on one connection, `connects` requests on a connection each,
/// and `mibs` fetches of `/1mib`.
pub fn measure(
    port: u16,
    rounds: usize,
    keepalive: usize,
    connects: usize,
    mibs: usize,
) -> Result<NetFigures, String> {
    let mut f = NetFigures {
        keepalive: Vec::new(),
        connections: Vec::new(),
        mbps: Vec::new(),
    };
    for _ in 0..rounds {
        let mut c = Conn::open(port)?;
        let start = Instant::now();
        for _ in 0..keepalive {
            expect("/hello", c.get("/hello")?.status == 200)?;
        }
        f.keepalive
            .push(keepalive as f64 / start.elapsed().as_secs_f64());
        drop(c);
        let start = Instant::now();
        for _ in 0..connects {
            let mut c = Conn::open(port)?;
            c.request("GET", "/hello", true)?;
            expect("/hello", c.response(false)?.status == 200)?;
        }
        f.connections
            .push(connects as f64 / start.elapsed().as_secs_f64());
        let mut c = Conn::open(port)?;
        let start = Instant::now();
        for _ in 0..mibs {
            let r = c.get("/1mib")?;
            expect("/1mib length", r.body.len() == MIB)?;
        }
        f.mbps
            .push((mibs * MIB) as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    Ok(f)
}

/// Median, minimum and maximum.
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Boots of each system in `bench net` (alternated), rounds per boot, and
/// the work of each round.
const PASSES: usize = 2;
const ROUNDS: usize = 4;
const KEEPALIVE_REQUESTS: usize = 200;
const CONNECT_REQUESTS: usize = 40;
const MIB_FETCHES: usize = 4;

/// What the host side of an exo boot measured (`qemu::boot` runs it as
/// a `fn`, which cannot hand back more than a report).
static EXO_FIGURES: std::sync::Mutex<Vec<NetFigures>> = std::sync::Mutex::new(Vec::new());

/// Measures the server on `port` once it answers, then ends it
/// (`/quit`).
fn measure_then_quit(port: u16) -> Result<NetFigures, String> {
    let result = wait_ready(port, Duration::from_secs(120)).and_then(|_| {
        measure(
            port,
            ROUNDS,
            KEEPALIVE_REQUESTS,
            CONNECT_REQUESTS,
            MIB_FETCHES,
        )
    });
    let _ = Conn::open(port).and_then(|mut c| {
        c.request("GET", "/quit", true)?;
        c.response(false)
    });
    result
}

/// `bench net`'s host side for exo: measures `httpd`, then ends it.
fn bench_exo(port: u16) -> Result<String, String> {
    let f = measure_then_quit(port)?;
    EXO_FIGURES.lock().unwrap().push(f);
    Ok("measured".into())
}

/// One exo boot of `bench net`.
fn run_exo(image: &std::path::Path) -> Result<NetFigures, String> {
    let opts = crate::qemu::RunOptions {
        timeout: Duration::from_secs(300),
        echo: false,
        net: Some(free_port()?),
        while_running: Some(bench_exo),
        ..Default::default()
    };
    let outcome = crate::qemu::boot(image, &opts)?;
    if let Some(Err(why)) = &outcome.host_check {
        return Err(format!("exo: {why}\n{}", outcome.serial));
    }
    if outcome.exit_code() != 0 {
        return Err(format!(
            "exo: the run did not end well (exit {})\n{}",
            outcome.exit_code(),
            outcome.serial
        ));
    }
    EXO_FIGURES
        .lock()
        .unwrap()
        .pop()
        .ok_or("exo: no figures".into())
}

/// One Linux boot of `bench net` (the guest powers off on `/quit`).
fn run_linux(guest: &crate::linux_guest::Guest) -> Result<NetFigures, String> {
    let port = free_port()?;
    let mut cmd = guest.command(false);
    crate::qemu::add_nic(&mut cmd, port, false);
    let serial = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = std::sync::Arc::clone(&serial);
    let host = std::thread::spawn(move || measure_then_quit(port));
    let finished = crate::qemu::run_child(cmd, Some(Duration::from_secs(300)), move |_, b| {
        sink.lock().unwrap().extend_from_slice(b)
    })?;
    let figures = host
        .join()
        .unwrap_or_else(|_| Err("the client panicked".into()));
    let log = String::from_utf8_lossy(&serial.lock().unwrap()).into_owned();
    match figures {
        Ok(f) if !finished.timed_out => Ok(f),
        Ok(_) => Err(format!("Linux did not power off\n{log}")),
        Err(why) => Err(format!("Linux: {why}\n{log}{}", finished.stderr)),
    }
}

/// Which figures of a [`NetFigures`] a row shows.
type Pick = fn(&NetFigures) -> &Vec<f64>;

/// `cargo xtask bench net`: the host client against exo's `httpd` and
/// against Linux 6.1 serving the same files (`tools/linux-bench/httpd.c`),
/// each booted [`PASSES`] times under the same QEMU and TCG settings,
/// alternated; medians with their spread over all rounds.
pub fn bench(args: &[String]) -> Result<u8, String> {
    if let Some(arg) = args.first() {
        return Err(format!("bench net: unknown option `{arg}`"));
    }
    let tool = crate::build::build_all()?;
    let spec = crate::build::ImageSpec {
        programs: Some("httpd".into()),
        ..Default::default()
    };
    let out = crate::build::target_dir().join("exo").join("bench-net");
    let image = crate::build::make_image(&tool, &spec, &out)?;
    let guest =
        crate::linux_guest::Guest::prepare_net(&crate::build::target_dir().join("linux-bench"))?;
    eprintln!(
        "xtask: bench net: exo httpd and Linux ({}), TCG, {PASSES} boots each, alternated, \
         {ROUNDS} rounds per boot",
        guest.kernel_name
    );
    let mut exo = Vec::new();
    let mut linux = Vec::new();
    for pass in 1..=PASSES {
        eprintln!("xtask: pass {pass}/{PASSES}: exo");
        exo.push(run_exo(&image)?);
        eprintln!("xtask: pass {pass}/{PASSES}: Linux");
        linux.push(run_linux(&guest)?);
    }
    let all = |runs: &[NetFigures], pick: Pick| -> Vec<f64> {
        runs.iter().flat_map(|f| pick(f).iter().copied()).collect()
    };
    println!(
        "bench net: median (min..max) of {} rounds each; host client over QEMU's user-mode network, TCG",
        PASSES * ROUNDS
    );
    println!(
        "{:<40} {:>24} {:>24} {:>8}",
        "workload", "exo httpd", "Linux 6.1", "exo/Linux"
    );
    let rows: [(String, &str, Pick); 3] = [
        (
            format!("small keep-alive requests ({KEEPALIVE_REQUESTS}/round)"),
            "req/s",
            |f| &f.keepalive,
        ),
        (
            format!("a new connection each ({CONNECT_REQUESTS}/round)"),
            "req/s",
            |f| &f.connections,
        ),
        (
            format!("/1mib, keep-alive ({MIB_FETCHES}/round)"),
            "MB/s",
            |f| &f.mbps,
        ),
    ];
    for (what, unit, pick) in rows {
        let (e, emin, emax) = spread(&all(&exo, pick));
        let (l, lmin, lmax) = spread(&all(&linux, pick));
        println!(
            "{what:<40} {:>24} {:>24} {:>7.2}x",
            format!("{e:.1} ({emin:.0}..{emax:.0}) {unit}"),
            format!("{l:.1} ({lmin:.0}..{lmax:.0}) {unit}"),
            e / l
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_is_not_periodic_in_a_segment_or_a_window() {
        // A reordered or repeated segment (1448 bytes) or window (64 KiB)
        // must show: no shift of either size gives the same bytes.
        for shift in [1448, 2896, 65536, 131072] {
            assert!(
                (0..4096).any(|i| pattern(i) != pattern(i + shift)),
                "{shift}"
            );
        }
        assert_eq!(pattern(0), 0);
        assert_eq!(pattern(251), 0);
        assert_eq!(pattern(65536), ((65536 % 251) ^ 1) as u8);
    }

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[]), (0.0, 0.0, 0.0));
    }
}

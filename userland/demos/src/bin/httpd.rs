//! httpd: a web server that is its own network stack, the library-OS way.
//!
//! One program drives the virtio-net NIC (`virtio-drivers` on exo's
//! capabilities, `exo_demos::virtio`), runs a TCP/IP stack linked into it
//! (`smoltcp`: ARP, IPv4, ICMP, TCP) and serves HTTP/1.1 with keep-alive
//! on port 80: `/` an index page with the kernel's frame counters and the
//! uptime, `/hello` 13 bytes (for small requests), `/1mib` 1 MiB of a
//! pattern the host can recompute ([`pattern`]), `/quit` ends the
//! program. No second process and no IPC:
//! the application owns the path from the NIC to the socket.
//!
//! Its address is static and matches QEMU's user-mode network (guest
//! 10.0.2.15/24, gateway 10.0.2.2); at start it pings the gateway (which
//! checks ARP and ICMP both ways). The guest makes no connection itself:
//! it only answers the ones QEMU forwards from the host.
//!
//! It waits by interrupt, not by polling: a vector bound to an endpoint of
//! its own (`irq_bind`), the NIC's MSI-X entry 0 pointed at it and both
//! virtqueues (receive and transmit) routed to that entry
//! (`exo_demos::virtio::route_queue_to`). The loop polls the stack and
//! the sockets, then calls [`Irq::wait`], the one place that waits: it
//! blocks in `recv` until the NIC's interrupt (a frame arrived, or the
//! device used a transmit buffer) or smoltcp's next timer
//! (`poll_delay`, rounded up to the 10 ms timer tick) is due. An interrupt
//! that comes between the check and the `recv` is a queued message, so
//! `recv` returns at once: none is lost.
//!
//! Hostile clients: a request is at most [`MAX_REQUEST`] bytes (a longer
//! request line gets 414, longer headers 431), a malformed one gets 400,
//! a method other than GET or HEAD 501, a body 400; after an error reply
//! the connection is closed and its input discarded. Idle connections end
//! after [`IDLE`], and when every socket is taken the one idle longest is
//! dropped so that a new client can connect. A client that goes away
//! mid-response only ends its own connection.
//!
//! Without a virtio-net NIC (a plain `cargo xtask run`) it says so and
//! exits 0: it has nothing to serve.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use exo_demos::pci;
use exo_demos::virtio::{self, ExoHal, VENDOR as VIRTIO_VENDOR};
use libos::ipc::Endpoint;
use libos::{println, sys, DeviceRegion, Error};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, Ipv4Address,
};
use virtio_drivers::device::net::VirtIONetRaw;

libos::entry!(main);

/// virtio-net, transitional device ID (what QEMU gives on q35's root bus).
const NET_TRANSITIONAL: u16 = 0x1000;
/// virtio-net, modern-only device ID.
const NET_MODERN: u16 = 0x1041;

/// Descriptors per virtqueue (receive buffers posted at once).
const QUEUE: usize = 64;
/// Bytes per receive or transmit buffer: an Ethernet frame and the
/// virtio header.
const RX_BUFFER: usize = 2048;
/// Frames being sent at once.
const TX_BUFFERS: usize = 32;
/// Ethernet MTU (frame without FCS).
const MTU: usize = 1514;

/// Our address and the gateway's, as QEMU's user-mode network has them.
const ADDRESS: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
/// The port QEMU forwards the host's connections to.
const PORT: u16 = 80;

/// TCP sockets: connections served at once (one more always listens).
const SOCKETS: usize = 16;
/// Each socket's receive and send buffers.
const SOCKET_RX: usize = 4096;
const SOCKET_TX: usize = 64 * 1024;
/// The longest request (request line and headers) we read.
pub const MAX_REQUEST: usize = 8192;
/// A connection without progress this long is closed.
const IDLE: Duration = Duration::from_secs(15);
/// After an error reply, how long we discard the client's input before
/// dropping the connection.
const LINGER: Duration = Duration::from_secs(3);
/// Size of `/1mib`.
const MIB: usize = 1 << 20;

/// Byte `i` of `/1mib`: `(i mod 251) xor (i >> 16)`, which the xtask's
/// client recomputes (`tools/xtask/src/net.rs`).
fn pattern(i: usize) -> u8 {
    ((i % 251) ^ (i >> 16)) as u8
}

fn main() -> Result<(), Error> {
    let wanted = |v, d| v == VIRTIO_VENDOR && matches!(d, NET_TRANSITIONAL | NET_MODERN);
    let Some((f, config)) = pci::find("httpd", wanted)? else {
        println!("httpd: no virtio-net NIC (boot with `cargo xtask run --net`): nothing to serve");
        return Ok(());
    };
    let (vendor, device) = config.id(f).unwrap_or_default();
    println!("httpd: found virtio-net {vendor:04x}:{device:04x} at {f}");
    let clock = Clock::calibrate()?;

    let command = config.command(f);
    let result = serve(f, &config, &clock);
    config.set_command(f, command);
    virtio::release();
    drop(config);
    result?;
    let stats = sys::frame_stats();
    println!(
        "httpd: NIC reset and released: DMA allocations left: {}; frames held: {}, device frames: {}",
        virtio::allocations_left(),
        stats.held_by_caller,
        stats.device_by_caller
    );
    println!("httpd: ok");
    Ok(())
}

/// Milliseconds from the TSC, its rate measured once against the HPET
/// (claimed for a few milliseconds, then given back).
struct Clock {
    /// TSC cycles per millisecond.
    per_ms: u64,
    /// The TSC when httpd started.
    start: u64,
}

impl Clock {
    /// HPET registers (q35): capabilities (period in fs in bits 63..32),
    /// configuration (bit 0 runs the counter), main counter.
    const HPET: u64 = 0xfed0_0000;
    const CAPABILITIES: usize = 0x00;
    const CONFIGURATION: usize = 0x10;
    const COUNTER: usize = 0xf0;
    /// How long the measurement takes.
    const SPAN_FS: u64 = 20_000_000_000_000; // 20 ms

    fn calibrate() -> Result<Clock, Error> {
        let hpet = exo_demos::claim("httpd", &"the HPET", Clock::HPET, 4096)?;
        let period = hpet.read64(Clock::CAPABILITIES) >> 32;
        if period == 0 || period > 100_000_000 {
            println!("httpd: FAILED: HPET period {period} fs");
            return Err(Error::InvalidArgument);
        }
        let config = hpet.read64(Clock::CONFIGURATION);
        hpet.write64(Clock::CONFIGURATION, config | 1);
        let ticks = Clock::SPAN_FS / period;
        let (t0, c0) = (exo_demos::rdtsc(), hpet.read64(Clock::COUNTER));
        let mut c1 = c0;
        while c1.wrapping_sub(c0) < ticks {
            c1 = hpet.read64(Clock::COUNTER);
        }
        let t1 = exo_demos::rdtsc();
        hpet.write64(Clock::CONFIGURATION, config);
        drop::<DeviceRegion>(hpet);
        let fs = u128::from(c1.wrapping_sub(c0)) * u128::from(period);
        let per_ms = (u128::from(t1 - t0) * 1_000_000_000_000 / fs.max(1)).max(1) as u64;
        println!(
            "httpd: TSC runs at {} MHz (measured against the HPET)",
            per_ms / 1000
        );
        Ok(Clock { per_ms, start: t0 })
    }

    /// Milliseconds since httpd started, for smoltcp.
    fn now(&self) -> Instant {
        Instant::from_millis(((exo_demos::rdtsc() - self.start) / self.per_ms) as i64)
    }

    /// Milliseconds since the CPU's reset (about the machine's uptime).
    fn uptime_ms(&self) -> u64 {
        exo_demos::rdtsc() / self.per_ms
    }
}

type Net = VirtIONetRaw<ExoHal, virtio::Transport, QUEUE>;

/// The NIC as smoltcp sees it: the driver, the receive buffers posted to
/// it and the transmit buffers it is sending (both by descriptor token),
/// and the free transmit buffers. Sending does not wait for the device:
/// a buffer comes back when the device has used it. The tokens share it
/// through the cell: a receive token posts its buffer again once smoltcp
/// has read it, and smoltcp may send a reply (with the transmit token)
/// while it reads.
struct Nic {
    inner: RefCell<NicInner>,
}

struct NicInner {
    net: Net,
    /// `posted[token]`: the buffer the device fills for that token.
    posted: Vec<Option<Vec<u8>>>,
    /// `sending[token]`: a frame (virtio header first) the device sends.
    sending: Vec<Option<Vec<u8>>>,
    /// Transmit buffers free to fill.
    free: Vec<Vec<u8>>,
    /// Frames that failed to go out (TCP resends them).
    send_errors: u64,
}

impl Nic {
    fn new(net: Net) -> Result<Nic, Error> {
        let mut inner = NicInner {
            net,
            posted: (0..QUEUE).map(|_| None).collect(),
            sending: (0..QUEUE).map(|_| None).collect(),
            free: (0..TX_BUFFERS).map(|_| vec![0; RX_BUFFER]).collect(),
            send_errors: 0,
        };
        for _ in 0..QUEUE {
            inner.post(vec![0; RX_BUFFER])?;
        }
        Ok(Nic {
            inner: RefCell::new(inner),
        })
    }
}

impl NicInner {
    /// Hands `buffer` to the device to receive into.
    fn post(&mut self, mut buffer: Vec<u8>) -> Result<(), Error> {
        // SAFETY: the buffer is kept in `posted` untouched (never read,
        // written or freed) until `receive` completes its token.
        let token = unsafe { self.net.receive_begin(&mut buffer) }
            .map_err(|e| virtio::error("httpd", e))?;
        match self.posted.get_mut(usize::from(token)) {
            Some(slot @ None) => {
                *slot = Some(buffer);
                Ok(())
            }
            _ => {
                println!("httpd: FAILED: receive token {token} already in use");
                Err(Error::InvalidArgument)
            }
        }
    }

    /// Takes back the transmit buffers the device is done with.
    fn reclaim(&mut self) {
        while let Some(token) = self.net.poll_transmit() {
            let Some(buffer) = self
                .sending
                .get_mut(usize::from(token))
                .and_then(Option::take)
            else {
                println!("httpd: FAILED: transmit token {token} was not ours");
                return;
            };
            // SAFETY: `buffer` is the one sent with `token`.
            if unsafe { self.net.transmit_complete(token, &buffer) }.is_err() {
                self.send_errors += 1;
            }
            self.free.push(buffer);
        }
    }

    /// Sends the frame `f` writes into a buffer of `len` bytes.
    fn send<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut buffer = self.free.pop().unwrap_or_else(|| vec![0; RX_BUFFER]);
        let header = self.net.fill_buffer_header(&mut buffer).unwrap_or(0);
        let end = (header + len).min(buffer.len());
        let result = f(&mut buffer[header..end]);
        // SAFETY: the buffer is kept in `sending` untouched until
        // `reclaim` completes its token.
        match unsafe { self.net.transmit_begin(&buffer[..end]) } {
            Ok(token) => match self.sending.get_mut(usize::from(token)) {
                Some(slot @ None) => *slot = Some(buffer),
                _ => {
                    println!("httpd: FAILED: transmit token {token} already in use");
                    self.send_errors += 1;
                }
            },
            Err(_) => {
                self.send_errors += 1;
                self.free.push(buffer);
            }
        }
        result
    }

    /// The next received frame: its buffer and where the frame lies in it.
    fn receive(&mut self) -> Option<(Vec<u8>, core::ops::Range<usize>)> {
        let token = self.net.poll_receive()?;
        let mut buffer = self.posted.get_mut(usize::from(token))?.take()?;
        // SAFETY: `buffer` is the one posted with `token`.
        match unsafe { self.net.receive_complete(token, &mut buffer) } {
            Ok((header, length)) if header + length <= buffer.len() => {
                Some((buffer, header..header + length))
            }
            _ => {
                let _ = self.post(buffer);
                None
            }
        }
    }
}

struct NicRx<'a> {
    nic: &'a Nic,
    buffer: Vec<u8>,
    frame: core::ops::Range<usize>,
}

struct NicTx<'a> {
    nic: &'a Nic,
}

impl phy::Device for Nic {
    type RxToken<'a> = NicRx<'a>;
    type TxToken<'a> = NicTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(NicRx<'_>, NicTx<'_>)> {
        let (buffer, frame) = self.inner.get_mut().receive()?;
        Some((
            NicRx {
                nic: self,
                buffer,
                frame,
            },
            NicTx { nic: self },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<NicTx<'_>> {
        let inner = self.inner.get_mut();
        inner.reclaim();
        let ready = !inner.free.is_empty() && inner.net.can_send();
        ready.then_some(NicTx { nic: self })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}

impl phy::RxToken for NicRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let result = f(&self.buffer[self.frame]);
        if self.nic.inner.borrow_mut().post(self.buffer).is_err() {
            println!("httpd: a receive buffer could not be posted again");
        }
        result
    }
}

impl phy::TxToken for NicTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.nic.inner.borrow_mut().send(len.min(MTU), f)
    }
}

/// Milliseconds per timer tick (the kernel's timer runs at 100 Hz): the
/// unit of a `recv` timeout.
const TICK_MS: u64 = 10;

/// The NIC's interrupts: the endpoint they arrive on, and how many came.
struct Irq {
    ep: Endpoint,
    interrupts: u64,
    /// Waits that ended by a timeout (smoltcp's timer), not an interrupt.
    timeouts: u64,
}

impl Irq {
    /// Waits for something to do: a frame from the NIC (or a transmit
    /// buffer back), or smoltcp's next timer (`delay`; `None`: no timer).
    /// Returns at once if a frame is waiting, or if the timer is due and
    /// the NIC has room to send; else blocks in `recv` until the NIC's
    /// interrupt or the timeout (with the timer due but every transmit
    /// buffer still with the device: until one comes back, at most a
    /// tick).
    fn wait(&mut self, nic: &mut Nic, delay: Option<Duration>) -> Result<(), Error> {
        let inner = nic.inner.get_mut();
        if inner.net.poll_receive().is_some() {
            return Ok(());
        }
        let ticks = match delay {
            Some(Duration::ZERO) => {
                inner.reclaim();
                if !inner.free.is_empty() && inner.net.can_send() {
                    return Ok(());
                }
                1
            }
            // Rounded up: at least one tick (0 would not wait).
            Some(d) => d.total_millis().div_ceil(TICK_MS).max(1),
            None => abi::FOREVER,
        };
        match self.ep.recv(ticks) {
            Ok(m) if m.irq => {
                self.interrupts += m.words[1];
                inner.net.ack_interrupt();
                Ok(())
            }
            Ok(m) => {
                println!("httpd: FAILED: a message on the NIC's interrupt endpoint: {m:?}");
                Err(Error::InvalidArgument)
            }
            Err(Error::WouldBlock) => {
                self.timeouts += 1;
                Ok(())
            }
            Err(e) => {
                println!("httpd: FAILED: waiting for the NIC: {e}");
                Err(e)
            }
        }
    }
}

/// Brings the NIC up with its interrupt routed to us, serves, and turns
/// the NIC's MSI-X off again before it goes.
fn serve(f: pci::Function, config: &pci::Ecam, clock: &Clock) -> Result<(), Error> {
    let transport = virtio::transport("httpd", f, config)?;
    let mut net = Net::new(transport).map_err(|e| virtio::error("httpd", e))?;
    let ep = Endpoint::create(false)?;
    let vector = virtio::bind_irq(&ep.mint(0x4e7)?)?;
    // Queue 0 receives, queue 1 transmits; both to MSI-X entry 0.
    let msix = virtio::route_queue_to(f, config, 0, vector)?;
    let result = virtio::route_queue_to(f, config, 1, vector).and_then(|_| {
        net.enable_interrupts();
        println!("httpd: NIC interrupts by MSI-X on vector {vector:#x}, delivered to our endpoint");
        let mut irq = Irq {
            ep,
            interrupts: 0,
            timeouts: 0,
        };
        let served = serve_with(net, &mut irq, clock);
        println!(
            "httpd: waited in recv: {} NIC interrupts, {} timer wake-ups",
            irq.interrupts, irq.timeouts
        );
        if served.is_ok() && irq.interrupts == 0 {
            // It served (at least the ping's reply came): the NIC must
            // have interrupted.
            println!("httpd: FAILED: served without a single NIC interrupt");
            return Err(Error::InvalidArgument);
        }
        served
    });
    msix.disable(config);
    result
}

/// Pings the gateway, serves until `/quit`.
fn serve_with(net: Net, irq: &mut Irq, clock: &Clock) -> Result<(), Error> {
    let mac = net.mac_address();
    let mut nic = Nic::new(net)?;
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = exo_demos::rdtsc();
    let mut iface = Interface::new(config, &mut nic, clock.now());
    iface.update_ip_addrs(|addresses| {
        addresses
            .push(IpCidr::new(IpAddress::Ipv4(ADDRESS), 24))
            .expect("room for one address");
    });
    iface
        .routes_mut()
        .add_default_ipv4_route(GATEWAY)
        .map_err(|_| Error::OutOfMemory)?;
    let m = mac;
    println!(
        "httpd: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, address {ADDRESS}/24, gateway {GATEWAY}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );

    let mut sockets = SocketSet::new(Vec::new());
    ping_gateway(&mut iface, &mut nic, &mut sockets, clock, irq)?;

    let mut server = Server {
        mib: (0..MIB).map(pattern).collect(),
        conns: Vec::new(),
        started: clock.now(),
        requests: 0,
        connections: 0,
        evicted: 0,
        quit: false,
    };
    for _ in 0..SOCKETS {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; SOCKET_RX]),
            tcp::SocketBuffer::new(vec![0; SOCKET_TX]),
        );
        socket.set_timeout(Some(Duration::from_secs(10)));
        socket.listen(PORT).map_err(|_| Error::InvalidArgument)?;
        server.conns.push(Conn::new(sockets.add(socket)));
    }
    println!("httpd: listening on {ADDRESS}:{PORT} with {SOCKETS} sockets (blocking on the NIC's interrupt)");

    loop {
        let now = clock.now();
        iface.poll(now, &mut nic, &mut sockets);
        server.step(&mut sockets, now, clock);
        if server.quit && server.conns.iter().all(|c| c.out.is_none()) {
            // Let the last reply (and the FINs) go out, briefly.
            let until = now + Duration::from_millis(200);
            loop {
                let now = clock.now();
                if now >= until {
                    break;
                }
                iface.poll(now, &mut nic, &mut sockets);
                let delay = iface.poll_delay(now, &sockets);
                irq.wait(
                    &mut nic,
                    Some(delay.map_or(until - now, |d| d.min(until - now))),
                )?;
            }
            break;
        }
        let delay = iface.poll_delay(clock.now(), &sockets);
        irq.wait(&mut nic, delay)?;
    }
    println!(
        "httpd: quit: {} requests on {} connections, {} idle connections dropped, {} frames failed to send",
        server.requests,
        server.connections,
        server.evicted,
        nic.inner.get_mut().send_errors
    );
    drop(sockets);
    // Dropping the driver resets the device, then frees its queues.
    drop(nic);
    Ok(())
}

/// Pings the gateway (QEMU answers): ARP first, then an echo, retried
/// for up to 3 s. Says what happened; no reply is not an error.
fn ping_gateway(
    iface: &mut Interface,
    nic: &mut Nic,
    sockets: &mut SocketSet,
    clock: &Clock,
    irq: &mut Irq,
) -> Result<(), Error> {
    let buffer = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
    let mut socket = icmp::Socket::new(buffer(), buffer());
    const IDENT: u16 = 0xe0e0;
    if socket.bind(icmp::Endpoint::Ident(IDENT)).is_err() {
        return Ok(());
    }
    let handle = sockets.add(socket);
    let caps = ChecksumCapabilities::default();
    let start = clock.now();
    let mut sent_at = None;
    let mut seq = 0u16;
    let reply = loop {
        let now = clock.now();
        if now - start > Duration::from_secs(3) {
            break None;
        }
        iface.poll(now, nic, sockets);
        let socket = sockets.get_mut::<icmp::Socket>(handle);
        if sent_at.is_none_or(|t| now - t > Duration::from_millis(300)) && socket.can_send() {
            seq += 1;
            let echo = Icmpv4Repr::EchoRequest {
                ident: IDENT,
                seq_no: seq,
                data: b"exo httpd",
            };
            if let Ok(payload) = socket.send(echo.buffer_len(), IpAddress::Ipv4(GATEWAY)) {
                echo.emit(&mut Icmpv4Packet::new_unchecked(payload), &caps);
                sent_at = Some(now);
            }
        }
        if let Ok((payload, _)) = socket.recv() {
            let echoed = Icmpv4Packet::new_checked(payload)
                .and_then(|p| Icmpv4Repr::parse(&p, &caps))
                .is_ok_and(|r| matches!(r, Icmpv4Repr::EchoReply { ident: IDENT, seq_no, .. } if seq_no == seq));
            if echoed {
                break sent_at.map(|t| now - t);
            }
        }
        // The next echo is due 300 ms after the last: smoltcp's timer
        // does not know it.
        let resend = sent_at.map_or(Duration::from_millis(TICK_MS), |t| {
            (t + Duration::from_millis(301)).max(now) - now
        });
        let delay = iface
            .poll_delay(now, sockets)
            .map_or(resend, |d| d.min(resend));
        irq.wait(nic, Some(delay))?;
    };
    sockets.remove(handle);
    match reply {
        Some(rtt) => println!(
            "httpd: ping {GATEWAY}: ARP resolved, echo reply (seq {seq}) after {} ms",
            rtt.total_millis()
        ),
        None => println!("httpd: ping {GATEWAY}: no reply within 3 s"),
    }
    Ok(())
}

/// What is being sent on a connection: the head (status line, headers
/// and any small body), then `pattern` bytes of [`pattern`].
struct Out {
    head: Vec<u8>,
    head_sent: usize,
    pattern_len: usize,
    pattern_sent: usize,
}

/// One socket and its connection's state.
struct Conn {
    handle: SocketHandle,
    /// Request bytes read and not handled yet (at most [`MAX_REQUEST`]).
    request: Vec<u8>,
    /// The reply being sent.
    out: Option<Out>,
    /// Close once `out` is sent.
    close_after: bool,
    /// Closed after an error: input is read and thrown away until then.
    linger_until: Option<Instant>,
    /// The last progress (bytes in or out).
    last: Instant,
    /// Whether the socket had a connection at the last step.
    connected: bool,
}

impl Conn {
    fn new(handle: SocketHandle) -> Conn {
        Conn {
            handle,
            request: Vec::new(),
            out: None,
            close_after: false,
            linger_until: None,
            last: Instant::ZERO,
            connected: false,
        }
    }

    fn reset(&mut self) {
        self.request.clear();
        self.out = None;
        self.close_after = false;
        self.linger_until = None;
        self.connected = false;
    }
}

struct Server {
    /// `/1mib`, made once.
    mib: Vec<u8>,
    conns: Vec<Conn>,
    started: Instant,
    requests: u64,
    connections: u64,
    evicted: u64,
    quit: bool,
}

impl Server {
    /// Moves every connection on as far as its socket allows.
    fn step(&mut self, sockets: &mut SocketSet, now: Instant, clock: &Clock) {
        for i in 0..self.conns.len() {
            self.step_one(i, sockets, now, clock);
        }
        // Every socket busy: drop the connection idle longest (no reply
        // under way), so that the next client is not refused.
        let listening = self
            .conns
            .iter()
            .any(|c| sockets.get::<tcp::Socket>(c.handle).is_listening());
        if !listening {
            let idle = self
                .conns
                .iter_mut()
                .filter(|c| c.out.is_none())
                .min_by_key(|c| c.last);
            if let Some(conn) = idle {
                sockets.get_mut::<tcp::Socket>(conn.handle).abort();
                self.evicted += 1;
            }
        }
    }

    /// The reply to `req` (a quit request also closes the connection).
    fn respond(&mut self, req: &Request, clock: &Clock, now: Instant) -> Out {
        let (status, kind, body, pattern_len) = match req.route {
            Route::Index => (200, "text/html", index(self, clock, now), 0),
            Route::Hello => (200, "text/plain", String::from("hello, world\n"), 0),
            Route::Mib => (200, "application/octet-stream", String::new(), MIB),
            Route::Quit => (200, "text/plain", String::from("httpd: bye\n"), 0),
            Route::NotFound => (404, "text/plain", String::from("404 Not Found\n"), 0),
        };
        let keep = req.keep_alive && !matches!(req.route, Route::Quit);
        if matches!(req.route, Route::Quit) {
            self.quit = true;
        }
        let mut bytes = head(status, kind, body.len() + pattern_len, keep).into_bytes();
        let pattern_len = if req.head_only {
            0
        } else {
            bytes.extend_from_slice(body.as_bytes());
            pattern_len
        };
        Out {
            head: bytes,
            head_sent: 0,
            pattern_len,
            pattern_sent: 0,
        }
    }

    fn step_one(&mut self, i: usize, sockets: &mut SocketSet, now: Instant, clock: &Clock) {
        let conn = &mut self.conns[i];
        let socket = sockets.get_mut::<tcp::Socket>(conn.handle);
        if !socket.is_open() {
            // Closed (by us, the peer, a reset or a timeout): listen again.
            conn.reset();
            let _ = socket.listen(PORT);
            return;
        }
        if socket.is_listening() {
            return;
        }
        if !conn.connected {
            conn.connected = true;
            conn.last = now;
            self.connections += 1;
        }
        if conn.linger_until.is_some() {
            // Closing after an error: throw the client's input away.
            while socket.can_recv() {
                if socket.recv(|b| (b.len(), ())).is_err() {
                    break;
                }
            }
        } else {
            // Read what fits; the rest waits in the socket (its window
            // closes).
            let room = MAX_REQUEST - conn.request.len();
            if room > 0 && socket.can_recv() {
                let request = &mut conn.request;
                if let Ok(n) = socket.recv(|b| {
                    let n = b.len().min(room);
                    request.extend_from_slice(&b[..n]);
                    (n, n)
                }) {
                    if n > 0 {
                        conn.last = now;
                    }
                }
            }
        }
        if conn.out.is_none() && !conn.close_after && !conn.request.is_empty() {
            match parse(&conn.request) {
                Parse::More if socket.may_recv() => {}
                Parse::More => {
                    // The client closed its side with half a request.
                    conn.close_after = true;
                    conn.request.clear();
                    socket.close();
                }
                Parse::Request(req) => {
                    conn.request.drain(..req.length);
                    conn.close_after = !req.keep_alive;
                    self.requests += 1;
                    let out = self.respond(&req, clock, now);
                    let conn = &mut self.conns[i];
                    conn.out = Some(out);
                    conn.close_after |= matches!(req.route, Route::Quit);
                }
                Parse::Error(status) => {
                    conn.out = Some(error_reply(status));
                    conn.close_after = true;
                    conn.request.clear();
                    conn.linger_until = Some(now + LINGER);
                }
            }
        }
        let conn = &mut self.conns[i];
        let socket = sockets.get_mut::<tcp::Socket>(conn.handle);
        if let Some(out) = &mut conn.out {
            if send(socket, out, &self.mib) {
                conn.last = now;
            }
            if out.head_sent == out.head.len() && out.pattern_sent == out.pattern_len {
                conn.out = None;
                if conn.close_after {
                    // FIN once the queue is sent; TIME-WAIT or the peer's
                    // reset ends it (or the linger time).
                    socket.close();
                    conn.linger_until.get_or_insert(now + LINGER);
                }
            }
        } else if socket.state() == tcp::State::CloseWait && conn.request.is_empty() {
            // The client is done and so are we.
            socket.close();
        }
        let lingered = conn.linger_until.is_some_and(|until| now > until);
        if lingered || now - conn.last > IDLE {
            socket.abort();
        }
    }
}

/// Queues as much of `out` as the socket takes; whether anything went.
fn send(socket: &mut tcp::Socket, out: &mut Out, mib: &[u8]) -> bool {
    let mut progress = false;
    if out.head_sent < out.head.len() {
        if let Ok(n) = socket.send_slice(&out.head[out.head_sent..]) {
            out.head_sent += n;
            progress |= n > 0;
        }
    }
    if out.head_sent == out.head.len() && out.pattern_sent < out.pattern_len {
        let (start, len) = (out.pattern_sent, out.pattern_len);
        if let Ok(n) = socket.send(|buffer| {
            let n = buffer.len().min(len - start);
            buffer[..n].copy_from_slice(&mib[start..start + n]);
            (n, n)
        }) {
            out.pattern_sent += n;
            progress |= n > 0;
        }
    }
    progress
}

/// A parsed request.
struct Request {
    head_only: bool,
    route: Route,
    keep_alive: bool,
    /// Bytes of the buffer it took.
    length: usize,
}

/// What a request asks for.
#[derive(Clone, Copy)]
enum Route {
    Index,
    Hello,
    Mib,
    Quit,
    NotFound,
}

enum Parse {
    /// Not complete yet.
    More,
    Request(Request),
    /// Answer with this status and close.
    Error(u16),
}

/// Parses the request at the start of `buffer` (HTTP/1.0 or 1.1, no
/// body).
fn parse(buffer: &[u8]) -> Parse {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buffer.len() < MAX_REQUEST {
            return Parse::More;
        }
        let line_ends = buffer.contains(&b'\n');
        return Parse::Error(if line_ends { 431 } else { 414 });
    };
    let Ok(head) = core::str::from_utf8(&buffer[..end]) else {
        return Parse::Error(400);
    };
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::Error(400);
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !token(method) || !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return Parse::Error(400);
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Parse::Error(505),
        _ => return Parse::Error(400),
    };
    for header in lines {
        let Some((name, value)) = header.split_once(':') else {
            return Parse::Error(400);
        };
        if !token(name) {
            return Parse::Error(400);
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parse::Error(501);
        } else if name.eq_ignore_ascii_case("content-length") && value != "0" {
            return Parse::Error(400);
        }
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Parse::Error(501),
    };
    let route = match path.split('?').next().unwrap_or("") {
        "/" | "/index.html" => Route::Index,
        "/hello" => Route::Hello,
        "/1mib" => Route::Mib,
        "/quit" => Route::Quit,
        _ => Route::NotFound,
    };
    Parse::Request(Request {
        head_only,
        route,
        keep_alive,
        length: end + 4,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn head(status: u16, kind: &str, length: usize, keep_alive: bool) -> String {
    format!(
        "HTTP/1.1 {status} {}\r\nServer: exo-httpd\r\nContent-Type: {kind}\r\n\
         Content-Length: {length}\r\nConnection: {}\r\n\r\n",
        reason(status),
        if keep_alive { "keep-alive" } else { "close" }
    )
}

fn error_reply(status: u16) -> Out {
    let body = format!("{status} {}\n", reason(status));
    let mut bytes = head(status, "text/plain", body.len(), false).into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    Out {
        head: bytes,
        head_sent: 0,
        pattern_len: 0,
        pattern_sent: 0,
    }
}

/// The index page: the kernel's frame counters and the uptime.
fn index(server: &Server, clock: &Clock, now: Instant) -> String {
    let s = sys::frame_stats();
    let up = clock.uptime_ms();
    let row = |name: &str, value: u64| {
        format!(
            "<tr><td>{name}</td><td>{value}</td><td>{} KiB</td></tr>\n",
            value * 4
        )
    };
    let mut page = String::from(
        "<!doctype html>\n<html><head><title>exo httpd</title></head><body>\n\
         <h1>exo: a library OS on the network</h1>\n\
         <p>This page comes from <code>httpd</code>, one exo program that drives the \
         virtio-net NIC itself and links its own TCP/IP stack (smoltcp), waiting on the NIC's interrupt.</p>\n\
         <h2>The kernel's frame counters</h2>\n<table>\n",
    );
    page += &row("frames total", s.total);
    page += &row("free", s.free);
    page += &row("reserved", s.reserved);
    page += &row("kernel", s.kernel);
    page += &row("held by all processes", s.held_by_all);
    page += &row("held by httpd", s.held_by_caller);
    page += &row("device frames held by httpd", s.device_by_caller);
    page += &format!(
        "</table>\n<p>uptime: {}.{:03} s (TSC since reset); httpd up {} s; \
         requests served: {}; connections: {}</p>\n</body></html>\n",
        up / 1000,
        up % 1000,
        (now - server.started).secs(),
        server.requests,
        server.connections
    );
    page
}

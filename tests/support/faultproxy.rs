//! Fault injection on the network path between conch and a real etcd: a
//! loopback TCP proxy that a test switches between faults while conch runs,
//! and two kinds of dead endpoint. It imitates no part of etcd: it moves or
//! withholds bytes; every byte that gets through is a real etcd's.
//!
//! - [`Proxy`]: forwards to an upstream member; [`Fault`] says what happens
//!   to the bytes right now (all connections, old and new, at once).
//! - [`hung_endpoint`]: accepts TCP connections and never answers (a member
//!   whose process is frozen, or a load balancer in front of nothing).
//! - [`syn_drop_endpoint`]: a port whose SYNs are dropped, so a connect to
//!   it hangs until the client's own timeout (a firewalled or vanished host).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to traffic, switchable while a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bytes flow both ways.
    Pass,
    /// Nothing moves either way, every socket stays open and new ones are
    /// accepted: a partition. Held bytes flow on when healed, as TCP would
    /// deliver them after retransmission.
    BlackHole,
    /// Requests reach etcd, its replies are thrown away: the write applies,
    /// the client never learns it did.
    DropReplies,
    /// Every open connection is reset (RST), and so is every new one.
    Reset,
    /// Every chunk is held this long before it is passed on.
    Delay(Duration),
    /// Connections are refused: nothing listens on the port.
    Refuse,
}

impl Fault {
    fn code(self) -> u64 {
        match self {
            Fault::Pass => 0,
            Fault::BlackHole => 1,
            Fault::DropReplies => 2,
            Fault::Reset => 3,
            Fault::Delay(d) => 4 | ((d.as_millis() as u64) << 8),
            Fault::Refuse => 5,
        }
    }

    fn from_code(c: u64) -> Fault {
        match c & 0xff {
            0 => Fault::Pass,
            1 => Fault::BlackHole,
            2 => Fault::DropReplies,
            3 => Fault::Reset,
            4 => Fault::Delay(Duration::from_millis(c >> 8)),
            _ => Fault::Refuse,
        }
    }
}

struct Shared {
    fault: AtomicU64,
    /// Whether the port is bound now (`Refuse` unbinds it).
    listening: std::sync::atomic::AtomicBool,
    accepted: AtomicUsize,
    /// Sockets of live connections (both sides), so a reset reaches them.
    open: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn fault(&self) -> Fault {
        Fault::from_code(self.fault.load(Ordering::SeqCst))
    }
}

/// A switchable proxy in front of one etcd member.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

/// Closes with RST instead of FIN (SO_LINGER with a zero timeout).
fn reset(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = s.shutdown(Shutdown::Both);
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared {
            fault: AtomicU64::new(0),
            listening: std::sync::atomic::AtomicBool::new(true),
            accepted: AtomicUsize::new(0),
            open: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        std::thread::spawn(move || accept_loop(listener, port, upstream, s));
        Proxy { port, shared }
    }

    /// Starts in front of an endpoint URL such as `http://127.0.0.1:2379`.
    pub fn to(endpoint: &str) -> Proxy {
        let addr = endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("a loopback http:// endpoint");
        Proxy::start(addr)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Switches the fault for every connection, open or new.
    pub fn set(&self, f: Fault) {
        self.shared.fault.store(f.code(), Ordering::SeqCst);
        if f == Fault::Reset || f == Fault::Refuse {
            let open = std::mem::take(&mut *self.shared.open.lock().expect("proxy lock"));
            for s in &open {
                reset(s);
            }
        }
        // A switch to or from Refuse returns once the port is (un)bound, so
        // the test's next connect meets the fault it just set.
        let want = f != Fault::Refuse;
        while self.shared.listening.load(Ordering::SeqCst) != want {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn fault(&self) -> Fault {
        self.shared.fault()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

fn accept_loop(mut listener: TcpListener, port: u16, upstream: SocketAddr, s: Arc<Shared>) {
    loop {
        if s.fault() == Fault::Refuse {
            // Nothing may listen while refusing; bind again once healed
            // (std sets SO_REUSEADDR, so the port is free at once).
            drop(listener);
            s.listening.store(false, Ordering::SeqCst);
            loop {
                std::thread::sleep(Duration::from_millis(2));
                if s.fault() != Fault::Refuse {
                    if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                        listener = l;
                        s.listening.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            }
        }
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let down = match listener.accept() {
            Ok((d, _)) => d,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => continue,
        };
        s.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = down.set_nonblocking(false);
        if matches!(s.fault(), Fault::Reset | Fault::Refuse) {
            reset(&down);
            continue;
        }
        let Ok(up) = TcpStream::connect(upstream) else {
            reset(&down);
            continue;
        };
        let _ = down.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let (Ok(down2), Ok(up2)) = (down.try_clone(), up.try_clone()) else {
            continue;
        };
        if let (Ok(a), Ok(b)) = (down.try_clone(), up.try_clone()) {
            let mut open = s.open.lock().expect("proxy lock");
            open.retain(|t| t.peer_addr().is_ok());
            open.push(a);
            open.push(b);
        }
        let (s1, s2) = (s.clone(), s.clone());
        std::thread::spawn(move || pump(down, up, &s1, false));
        std::thread::spawn(move || pump(up2, down2, &s2, true));
    }
}

/// Copies `from` to `to` under the current fault. `reply` is the
/// etcd-to-client direction.
fn pump(mut from: TcpStream, mut to: TcpStream, s: &Shared, reply: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let got = from.read(&mut buf);
        loop {
            match s.fault() {
                Fault::BlackHole => std::thread::sleep(Duration::from_millis(2)),
                Fault::Delay(d) => {
                    std::thread::sleep(d);
                    break;
                }
                _ => break,
            }
        }
        let n = match got {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        match s.fault() {
            Fault::Reset | Fault::Refuse => {
                reset(&from);
                reset(&to);
                return;
            }
            Fault::DropReplies if reply => continue,
            _ => {}
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// A port that accepts connections and never says a word. Returned with the
/// listener, which must stay alive for the test.
pub fn hung_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind hung endpoint");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut keep = Vec::new();
        for c in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            // Held open and never read: the peer sees an accepted
            // connection that never answers.
            keep.push(c);
        }
    });
    (format!("http://127.0.0.1:{port}"), accepted)
}

/// A port whose SYNs go unanswered: a listener with a zero backlog whose
/// accept queue is filled and never drained, so the kernel drops every
/// further SYN and a connect hangs. The returned guard owns the sockets.
pub struct SynDrop {
    pub url: String,
    _listener: OwnedFd,
    _fillers: Vec<TcpStream>,
}

pub fn syn_drop_endpoint() -> SynDrop {
    // SAFETY: plain socket calls on a descriptor created and owned here.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket");
    // SAFETY: fd was just created and is owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    addr.sin_port = 0;
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_in of length len.
    let rc = unsafe { libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len) };
    assert_eq!(rc, 0, "bind");
    // SAFETY: valid listening socket.
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0, "listen");
    let mut bound: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut blen = len;
    // SAFETY: bound is large enough for an IPv4 address.
    unsafe { libc::getsockname(fd, (&mut bound as *mut libc::sockaddr_in).cast(), &mut blen) };
    let port = u16::from_be(bound.sin_port);
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    // A zero backlog queues one connection (Linux allows backlog + 1); fill
    // it, then a probe connect that times out proves SYNs are dropped.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&target, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    assert!(
        TcpStream::connect_timeout(&target, Duration::from_millis(300)).is_err(),
        "the SYN-dropping port still accepts connections"
    );
    SynDrop {
        url: format!("http://127.0.0.1:{port}"),
        _listener: owned,
        _fillers: fillers,
    }
}

/// Monotonic counter for tests that need unique names.
pub fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

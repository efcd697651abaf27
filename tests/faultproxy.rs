//! The fault-injection tools themselves, against a real etcd: each fault
//! does to a real client what the fault tests rely on it doing.

mod common;
#[path = "support/faultproxy.rs"]
mod faultproxy;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use conch::etcd::{Client, ClientConfig, ErrorKind, Range};
use faultproxy::{Fault, Proxy};

fn client_via(url: &str, dial: Duration) -> Result<Client, conch::etcd::Error> {
    let mut cfg = ClientConfig::new(vec![url.to_string()]);
    cfg.dial_timeout = dial;
    cfg.request_timeout = Duration::from_millis(700);
    Client::connect(cfg)
}

#[test]
fn proxy_passes_drops_resets_and_refuses() {
    let proxy = Proxy::to(&common::etcd().endpoint);
    let c = client_via(&proxy.url(), Duration::from_secs(2)).expect("connect through the proxy");
    c.range(Range::key("/faultproxy/x")).expect("a read passes");
    assert!(proxy.connections() >= 1);

    proxy.set(Fault::DropReplies);
    let e = c
        .put("/faultproxy/x", "1", 0)
        .expect_err("the reply is dropped");
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    proxy.set(Fault::Pass);
    // The write applied although its reply never came.
    let direct = common::client();
    let r = direct
        .range(Range::key("/faultproxy/x"))
        .expect("direct read");
    assert_eq!(r.kvs.len(), 1, "the dropped-reply write reached etcd");

    proxy.set(Fault::BlackHole);
    let e = c
        .range(Range::key("/faultproxy/x"))
        .expect_err("nothing moves");
    assert!(e.is_unavailable(), "{e}");
    proxy.set(Fault::Reset);
    let before = proxy.connections();
    let raw = TcpStream::connect(("127.0.0.1", proxy.port())).expect("accepted, then reset");
    let mut buf = [0u8; 4];
    let _ = (&raw).read(&mut buf);
    common::wait_for(
        "the reset connection to be counted",
        Duration::from_secs(2),
        || proxy.connections() > before,
    );

    proxy.set(Fault::Refuse);
    let e = TcpStream::connect(("127.0.0.1", proxy.port())).expect_err("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    proxy.set(Fault::Pass);
    client_via(&proxy.url(), Duration::from_secs(2)).expect("healed");
}

#[test]
fn dead_endpoints_hang_the_way_real_ones_do() {
    let (hung, accepted) = faultproxy::hung_endpoint();
    let mut s = TcpStream::connect(hung.trim_start_matches("http://")).expect("TCP is accepted");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 16];
    let e = s.read(&mut buf).expect_err("no answer ever comes");
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
    wait_accepted(&accepted);

    let drop = faultproxy::syn_drop_endpoint();
    let addr = drop
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let t = Instant::now();
    let e = TcpStream::connect_timeout(&addr, Duration::from_millis(400)).expect_err("hangs");
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "the connect hung"
    );
}

fn wait_accepted(n: &AtomicUsize) {
    common::wait_for(
        "the hung endpoint to accept",
        Duration::from_secs(2),
        || n.load(Ordering::SeqCst) >= 1,
    );
}

//! A loopback TCP forwarder that a test can switch into a black hole: while
//! partitioned, it stops moving bytes in both directions but keeps every
//! socket open (and accepts new connections), the way a network partition
//! looks to both ends; when healed, the held bytes flow on as TCP would
//! deliver them after retransmission. A fault injector that imitates no part
//! of etcd: every byte that does get through is a real etcd's.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Forwarder {
    port: u16,
    partitioned: Arc<AtomicBool>,
}

impl Forwarder {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind forwarder");
        let port = listener.local_addr().expect("addr").port();
        let partitioned = Arc::new(AtomicBool::new(false));
        let hole = partitioned.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(down) = conn else { continue };
                let Ok(up) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let (Ok(down2), Ok(up2)) = (down.try_clone(), up.try_clone()) else {
                    continue;
                };
                let (h1, h2) = (hole.clone(), hole.clone());
                std::thread::spawn(move || pump(down, up, &h1));
                std::thread::spawn(move || pump(up2, down2, &h2));
            }
        });
        Forwarder { port, partitioned }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts (true) or heals (false) the partition.
    pub fn set_partitioned(&self, on: bool) {
        self.partitioned.store(on, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`. Whatever was read (bytes, end of stream, an
/// error) is held while the partition lasts, so not even a FIN crosses it.
fn pump(mut from: TcpStream, mut to: TcpStream, hole: &AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let got = from.read(&mut buf);
        while hole.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
        match got {
            Ok(n) if n > 0 => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

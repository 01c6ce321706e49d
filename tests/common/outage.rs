//! A TCP proxy on loopback in front of the test S3 server that can go down for a while: its
//! listener is closed (new connections are refused) and every open connection is cut, as when
//! a store restarts or the network drops, then it listens again on the same port.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct OutageProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    /// Bytes forwarded from the server to clients.
    pub bytes_down: Arc<AtomicU64>,
    /// Bytes forwarded from clients to the server.
    pub bytes_up: Arc<AtomicU64>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl OutageProxy {
    /// Starts forwarding 127.0.0.1:<free port> to 127.0.0.1:`target`.
    pub fn start(target: u16) -> OutageProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = OutageProxy {
            port,
            up: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            conns: Default::default(),
            bytes_down: Default::default(),
            bytes_up: Default::default(),
        };
        let (up, stop, conns) = (p.up.clone(), p.stop.clone(), p.conns.clone());
        let (down_count, up_count) = (p.bytes_down.clone(), p.bytes_up.clone());
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            while !stop.load(Ordering::Relaxed) {
                if !up.load(Ordering::Relaxed) {
                    listener = None;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let l = listener.get_or_insert_with(|| {
                    // std sets SO_REUSEADDR, so the port can be taken again at once.
                    TcpListener::bind(("127.0.0.1", port)).expect("rebinding the proxy port")
                });
                l.set_nonblocking(true).unwrap();
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        {
                            let mut c = conns.lock().unwrap();
                            c.push(client.try_clone().unwrap());
                            c.push(server.try_clone().unwrap());
                        }
                        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        let (d, u) = (down_count.clone(), up_count.clone());
                        std::thread::spawn(move || pipe(client, server, u));
                        std::thread::spawn(move || pipe(s2, c2, d));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        p
    }

    /// Refuses connections and cuts the open ones for `d`, then serves again.
    pub fn outage(&self, d: Duration) {
        self.up.store(false, Ordering::Relaxed);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        let start = Instant::now();
        while start.elapsed() < d {
            // Connections accepted just before the flag was seen are cut too.
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.up.store(true, Ordering::Relaxed);
    }

    /// Waits until `counter` passed `n` bytes (at most `limit`).
    pub fn wait_for(&self, counter: &AtomicU64, n: u64, limit: Duration) {
        let start = Instant::now();
        while counter.load(Ordering::Relaxed) < n {
            assert!(start.elapsed() < limit, "no traffic through the proxy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

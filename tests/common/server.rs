//! Starting a test server: a free loopback port, a shell that stops the server when this test
//! process exits (so no server outlives the run), and a wait until the port answers.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the shell command `server` (which listens on 127.0.0.1:`port`) under a watchdog and
/// waits up to 30 s for the port; `what` names it in the failure, with how to install it.
pub fn start_watched(server: &str, port: u16, what: &str) -> Child {
    let script = format!(
        "{server} & s=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $s 2>/dev/null; do sleep 1; done; \
         kill $s 2>/dev/null",
        parent = std::process::id()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sh not found");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not start within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

//! Free loopback TCP ports, never handed out twice in one test process.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port that was free on 127.0.0.1 a moment ago and that no other test of this process got.
pub fn free_port() -> u16 {
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if given.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn is_listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

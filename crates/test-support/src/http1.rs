//! A bare HTTP/1.1 client over one `TcpStream`: what tests need to control exactly which
//! bytes go out when (pipelining, kept-alive connections pinned to a CPU), which a client
//! library hides.

use std::io::{Read, Write};
use std::net::TcpStream;

/// Writes one request; `body` goes with a `content-length`.
pub fn write_request(conn: &mut impl Write, method: &str, path: &str, body: &[u8]) {
    conn.write_all(&request(method, path, body))
        .expect("write a request");
}

/// The bytes of one request.
pub fn request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nhost: wws\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads one response with a `content-length`: its status line and headers, and its body.
pub fn read_response(conn: &mut impl Read) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte).expect("read a response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("a UTF-8 response head");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().expect("a content-length number"))
        })
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0; length];
    conn.read_exact(&mut body).expect("read a response body");
    (head, body)
}

/// Connects to `url`'s host and port (`http://127.0.0.1:PORT/...`), with a read timeout so a
/// lost response fails the test instead of hanging it.
pub fn connect(url: &str) -> TcpStream {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("a host and port");
    let conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("set a read timeout");
    conn
}

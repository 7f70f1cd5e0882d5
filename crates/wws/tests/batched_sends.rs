//! Batched sends (`crates/server/src/outbox.rs`): a serving thread holds what its connections
//! write and sends it for all of them in one system call. Whatever the batching, every
//! connection gets exactly its own responses, whole and in order: several clients at once,
//! pipelined requests, responses larger than what is held, and a client that reads nothing
//! until the server's sends find its socket full.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::io::Write as _;
use std::time::Duration;

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;
use wws_test_support::http1;

/// A body unique to (`client`, `request`), of a size that crosses the 64 KiB held at most
/// for some requests.
fn body(client: usize, request: usize) -> Vec<u8> {
    let len = match request % 5 {
        0 => 20,
        1 => 3_000,
        2 => 40_000,
        3 => 70_000,
        _ => 200_000,
    };
    let tag = format!("client {client} request {request} ");
    tag.bytes().cycle().take(len).collect()
}

/// The server, with batched sends on or off (`WWS_BATCH_SENDS`), and whether it batches:
/// where io_uring is not allowed (a seccomp filter, an old kernel) it writes each response on
/// its own, and then only the responses are checked.
fn start(batch_sends: bool) -> (Project, Wws, bool) {
    let p = Project::new();
    p.wasm("echo.wasm", "echo");
    p.file("public/small.txt", "a static file\n");
    let wws = Wws::builder(p.path())
        .env("RUST_LOG", "wws_server=debug,wws_server::outbox=trace")
        .env("WWS_BATCH_SENDS", if batch_sends { "1" } else { "0" })
        .start();
    // Every serving thread says which, as it starts.
    wws.wait_for_output("responses are");
    let batching = wws.output().contains("responses are sent in batches");
    if batch_sends && !batching {
        eprintln!("io_uring is not available here: checking responses only");
    }
    (p, wws, batching)
}

#[test]
fn concurrent_clients_each_get_their_own_responses() {
    concurrent_clients(true);
}

#[test]
fn concurrent_clients_each_get_their_own_responses_without_batched_sends() {
    concurrent_clients(false);
}

fn concurrent_clients(batch_sends: bool) {
    let (_p, wws, batching) = start(batch_sends);
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let url = wws.url("");
            std::thread::spawn(move || {
                let mut conn = http1::connect(&url);
                for request in 0..25 {
                    let sent = body(client, request);
                    http1::write_request(&mut conn, "POST", "/echo?raw=1", &sent);
                    let received = read_ok(&mut conn);
                    assert!(
                        received == sent,
                        "client {client} request {request}: wrong body"
                    );
                    http1::write_request(&mut conn, "GET", "/small.txt", b"");
                    assert_eq!(read_ok(&mut conn), b"a static file\n");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    if batching {
        // The responses went out through the batched sends.
        wws.wait_for_output(SENT);
    } else {
        assert!(!wws.output().contains(SENT), "{}", wws.output());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_even_when_the_client_reads_late() {
    pipelined(true);
}

#[test]
fn pipelined_requests_are_answered_in_order_without_batched_sends() {
    pipelined(false);
}

fn pipelined(batch_sends: bool) {
    let (_p, wws, batching) = start(batch_sends);
    let mut conn = http1::connect(&wws.url(""));
    // 200 requests whose responses (up to 40 KB each) are held, 8 MB in all: more than the
    // socket buffers take while the client reads nothing. They go out in one write, from
    // another thread (the server stops reading requests while its answers wait).
    let requests: Vec<Vec<u8>> = (0..200).map(held_body).collect();
    let mut writer = conn.try_clone().unwrap();
    let bytes: Vec<u8> = requests
        .iter()
        .flat_map(|b| http1::request("POST", "/echo?raw=1", b))
        .collect();
    let sender = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    // Nothing is read until a batched send found the socket full: the connection then sends
    // the rest itself, waiting for the socket like any write.
    if batching {
        wws.wait_for_output("full=1");
    }
    for (request, sent) in requests.iter().enumerate() {
        assert!(read_ok(&mut conn) == *sent, "request {request}: wrong body");
    }
    sender.join().unwrap();
}

#[test]
fn a_response_the_socket_could_not_take_goes_out_once_the_client_reads() {
    // Reads time out well before the server's own 30 s header-read timeout, after which it
    // drops the connection (the next test).
    let Some((_p, wws, mut conn)) = batching_connection(Duration::from_secs(10)) else {
        return;
    };
    for (request, sent) in fill_until_full(&wws, &mut conn).iter().enumerate() {
        assert!(read_ok(&mut conn) == *sent, "request {request}: wrong body");
    }
}

#[test]
fn a_held_response_still_goes_out_after_the_server_dropped_its_connection() {
    // As above, but the client reads only once the server gave up waiting for its next
    // request (the 30 s header-read timeout) and dropped the connection: to hyper the last
    // response was sent, so its held rest must still reach the client.
    let Some((_p, wws, mut conn)) = batching_connection(Duration::from_secs(60)) else {
        return;
    };
    let requests = fill_until_full(&wws, &mut conn);
    wws.wait_for_output("connection closed");
    for (request, sent) in requests.iter().enumerate() {
        assert!(read_ok(&mut conn) == *sent, "request {request}: wrong body");
    }
}

/// A server that batches sends and a connection to it whose reads time out after
/// `read_timeout`; `None` where io_uring is not allowed.
fn batching_connection(read_timeout: Duration) -> Option<(Project, Wws, std::net::TcpStream)> {
    let (p, wws, batching) = start(true);
    if !batching {
        return None;
    }
    let conn = http1::connect(&wws.url(""));
    conn.set_read_timeout(Some(read_timeout)).unwrap();
    Some((p, wws, conn))
}

/// Sends requests one at a time, each answered and its batched send done before the next
/// goes, and reads nothing: the connection waits for its next request when a batched send
/// finds the socket full. Returns the request bodies, which the responses echo.
fn fill_until_full(wws: &Wws, conn: &mut std::net::TcpStream) -> Vec<Vec<u8>> {
    let mut requests = Vec::new();
    while !wws.output().contains("full=1") {
        assert!(requests.len() < 2000, "the socket never filled");
        let body = held_body(requests.len());
        http1::write_request(conn, "POST", "/echo?raw=1", &body);
        requests.push(body);
        wws.wait_for_count(SENT, requests.len());
    }
    requests
}

/// The body of the next response, which must be a 200.
fn read_ok(conn: &mut std::net::TcpStream) -> Vec<u8> {
    let (head, body) = http1::read_response(conn);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body
}

/// What the server logs for each batched send.
const SENT: &str = "sent what connections held in one system call";

/// A body unique to `request`, small enough for its response to be held.
fn held_body(request: usize) -> Vec<u8> {
    let tag = format!("request {request} ");
    tag.bytes().cycle().take(20_000 + request * 100).collect()
}

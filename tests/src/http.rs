//! A small HTTP/1.1 client over a raw TCP connection, for tests that must send what a well-behaved
//! client never would (two `Host` headers, a host with user information, no host at all), reuse one
//! keep-alive connection across hosts, and see every byte of the answer.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// No exchange may take longer than this: a hang fails the test instead of stalling it.
const TIMEOUT: Duration = Duration::from_secs(20);

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The `name=value` of the cookie set by the answer, if any.
    pub fn cookie(&self) -> Option<String> {
        self.header("set-cookie").and_then(|cookie| cookie.split(';').next()).map(str::to_owned)
    }
}

/// A keep-alive connection to a server.
pub struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `address`.
    ///
    /// # Panics
    /// When the server does not accept the connection within the timeout.
    pub async fn open(address: std::net::SocketAddr) -> Self {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(address)).await.expect("connect in time").expect("connect");
        Self { stream: BufReader::new(stream) }
    }

    /// `GET path` with `Host: host` and the extra header lines, on this connection.
    pub async fn get(&mut self, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.send(head.as_bytes()).await
    }

    /// Sends `request` (a whole request head, ending in an empty line) and reads one answer.
    ///
    /// # Panics
    /// When the answer does not come within the timeout or is not HTTP.
    pub async fn send(&mut self, request: &[u8]) -> Response {
        tokio::time::timeout(TIMEOUT, async {
            self.stream.get_mut().write_all(request).await.expect("send the request");
            self.read_response().await
        })
        .await
        .expect("an answer in time")
    }

    async fn read_response(&mut self) -> Response {
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("read the status line");
        let status =
            line.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("read a header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').expect("a header line");
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let find = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value): &(String, String)| value.clone());
        let body = if find("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked")) {
            self.read_chunked().await
        } else {
            let length: usize = find("content-length").and_then(|value| value.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            self.stream.read_exact(&mut body).await.expect("read the body");
            body
        };
        Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
    }

    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("read a chunk size");
            let size = usize::from_str_radix(line.trim(), 16).expect("a chunk size");
            let mut chunk = vec![0; size + 2];
            self.stream.read_exact(&mut chunk).await.expect("read a chunk");
            if size == 0 {
                return body;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

/// `GET path` on a new connection.
pub async fn get(address: std::net::SocketAddr, host: &str, path: &str) -> Response {
    Connection::open(address).await.get(host, path, &[]).await
}

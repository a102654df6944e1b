//! Shared by the panel's end-to-end tests: the `ledgerline` binary on a data directory, a
//! minimal HTTP/1.1 client (cookies, CSRF header, Basic credentials) and a websocket client.

#![allow(dead_code, reason = "each test binary uses part of the helpers")]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub(crate) use crate::common::free_port;

/// The binary's own base64 codec.
#[path = "../../src/panel/base64.rs"]
mod base64;

/// The binary, serving on a port, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    pub(crate) data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `ledgerline serve` on `data` (with the directory file `config`, or the demo) and
    /// waits for `/health`.
    pub(crate) async fn start(data: &Path, config: Option<&Path>, port: u16) -> Server {
        Self::start_with(data, config, port, &[]).await
    }

    /// [`Server::start`] with more arguments (`--store URL`).
    pub(crate) async fn start_with(
        data: &Path,
        config: Option<&Path>,
        port: u16,
        extra: &[&str],
    ) -> Server {
        Self::start_with_env(data, config, port, extra, &[]).await
    }

    /// [`Server::start_with`] with environment variables.
    pub(crate) async fn start_with_env(
        data: &Path,
        config: Option<&Path>,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut c = crate::common::binary();
        c.env("RUST_LOG", "error").arg("--data-dir").arg(data);
        c.envs(env.iter().copied());
        if let Some(config) = config {
            c.arg("--config").arg(config);
        }
        let child = c
            .args(["serve", "--http", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("LEDGERLINE_TEST_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("the binary starts");
        let server = Server {
            child,
            port,
            data: data.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(r) = Http::new(port).get("/health").await
                && r.status == 200
            {
                return server;
            }
            assert!(Instant::now() < deadline, "no /health within 300 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server and waits for it to exit.
    pub(crate) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) cookies: Vec<String>,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A browser-ish HTTP client: keeps the session cookie and the CSRF token it was given.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub(crate) port: u16,
    pub(crate) cookie: Option<String>,
    pub(crate) csrf: Option<String>,
    pub(crate) basic: Option<String>,
    pub(crate) origin: Option<String>,
    /// The loopback address requests come from (`127.0.0.1` unless set).
    pub(crate) source: Option<IpAddr>,
}

impl Http {
    pub(crate) fn new(port: u16) -> Self {
        Self {
            port,
            cookie: None,
            csrf: None,
            basic: None,
            origin: None,
            source: None,
        }
    }

    /// A client whose requests come from `source` (another loopback address, `127.0.0.2`…).
    pub(crate) fn from_address(port: u16, source: IpAddr) -> Self {
        let mut h = Self::new(port);
        h.source = Some(source);
        h
    }

    /// A client that authenticates every request with HTTP Basic.
    pub(crate) fn basic(port: u16, user: &str, password: &str) -> Self {
        let mut h = Self::new(port);
        h.basic = Some(base64::encode(format!("{user}:{password}").as_bytes()));
        h
    }

    pub(crate) fn own_origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> std::io::Result<Response> {
        let server = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut s = match self.source {
            Some(ip) => {
                let socket = TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(server).await?
            }
            None => TcpStream::connect(server).await?,
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        if let Some(c) = &self.cookie {
            head.push_str(&format!("Cookie: {c}\r\n"));
        }
        if let Some(b) = &self.basic {
            head.push_str(&format!("Authorization: Basic {b}\r\n"));
        }
        if let Some(o) = &self.origin {
            head.push_str(&format!("Origin: {o}\r\n"));
        }
        if method != "GET"
            && let Some(t) = &self.csrf
            && !extra
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("x-csrf-token"))
        {
            head.push_str(&format!("X-CSRF-Token: {t}\r\n"));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or("");
        if method != "GET" {
            if !extra
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                head.push_str("Content-Type: application/json\r\n");
            }
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut headers = BTreeMap::new();
        let mut cookies = Vec::new();
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "set-cookie" {
                    cookies.push(v.trim().to_owned());
                }
                headers.insert(k, v.trim().to_owned());
            }
        }
        let body = if headers
            .get("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            let mut out = String::new();
            let mut rest = rest;
            while let Some((size, after)) = rest.split_once("\r\n") {
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if n == 0 || after.len() < n {
                    break;
                }
                out.push_str(&after[..n]);
                rest = after[n..].trim_start_matches("\r\n");
            }
            out
        } else {
            rest.to_owned()
        };
        Ok(Response {
            status,
            headers,
            cookies,
            body,
        })
    }

    pub(crate) async fn get(&self, path: &str) -> std::io::Result<Response> {
        self.request("GET", path, None, &[]).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> Response {
        self.request("POST", path, Some(&body.to_string()), &[])
            .await
            .expect("the server answers")
    }

    pub(crate) async fn delete(&self, path: &str) -> Response {
        self.request("DELETE", path, None, &[])
            .await
            .expect("the server answers")
    }

    /// Signs in; on success keeps the session cookie and CSRF token.
    pub(crate) async fn login(&mut self, user: &str, password: &str) -> Response {
        let r = self
            .request(
                "POST",
                "/api/v1/login",
                Some(&serde_json::json!({"username": user, "password": password}).to_string()),
                &[],
            )
            .await
            .expect("the server answers");
        if r.status == 200 {
            let cookie = r
                .cookies
                .iter()
                .find(|c| c.starts_with("ledgerline_session="))
                .expect("a session cookie");
            self.cookie = Some(cookie.split(';').next().unwrap().to_owned());
            self.csrf = r.json()["csrf"].as_str().map(str::to_owned);
        }
        r
    }
}

/// A websocket connection to the panel.
pub(crate) struct Socket {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub(crate) seq: u64,
}

impl Socket {
    /// Opens `/api/v1/panel/ws` with the client's cookie and `origin`; the HTTP status of a
    /// refused handshake as the error.
    pub(crate) async fn open(
        http: &Http,
        query: &str,
        origin: Option<&str>,
    ) -> Result<Socket, u16> {
        let url = format!("ws://127.0.0.1:{}/api/v1/panel/ws?{query}", http.port);
        let mut req = url.into_client_request().expect("a request");
        if let Some(c) = &http.cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((stream, _)) => Ok(Socket { stream, seq: 0 }),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
    }

    /// The next text frame (checked for its sequence number), or `None` after `wait` of quiet
    /// or when the socket closed.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.stream.next())
                .await
                .ok()??;
            match msg.ok()? {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON frame");
                    let seq = v["seq"].as_u64().expect("seq");
                    assert_eq!(seq, self.seq + 1, "frames are numbered without gaps");
                    self.seq = seq;
                    return Some(v);
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Every frame until `wait` of quiet.
    pub(crate) async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(f) = self.next(wait).await {
            out.push(f);
        }
        out
    }

    /// The next frame of `kind`, skipping others (which are returned too).
    pub(crate) async fn until(
        &mut self,
        kind: &str,
        wait: Duration,
    ) -> (Option<Value>, Vec<Value>) {
        let mut skipped = Vec::new();
        while let Some(f) = self.next(wait).await {
            if f["type"] == kind {
                return (Some(f), skipped);
            }
            skipped.push(f);
        }
        (None, skipped)
    }

    pub(crate) async fn send(&mut self, frame: &Value) {
        self.stream
            .send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }

    pub(crate) async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

//! A recording SMTP sink: the relay's smarthost in tests. It answers the
//! end of DATA as scripted (accept, a 4xx/5xx reply, or never) and records
//! every message it accepted. Started with a certificate, it offers STARTTLS.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Clone)]
pub enum SinkReply {
    Accept,
    /// A full reply line such as "451 4.3.0 try later".
    Reply(String),
    /// Read the message, then never answer.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Received {
    /// Whether the message came over TLS.
    pub tls: bool,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The header section, up to the empty line.
    pub fn headers(&self) -> String {
        let t = self.text();
        t.split("\r\n\r\n").next().unwrap_or("").to_string()
    }

    pub fn body(&self) -> Vec<u8> {
        let pos = self.data.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        self.data[pos + 4..].to_vec()
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<SinkReply>,
    received: Vec<Received>,
    /// DATA phases seen, whatever the answer.
    attempts: usize,
    /// Wait this long before answering each message.
    delay: Duration,
    /// The SIZE it advertises (0: 100 MB).
    size: usize,
    /// Close the connection after answering each message, as a server
    /// that drops idle clients at once.
    close_after_message: bool,
    /// Connections accepted.
    connections: usize,
    /// Connections open now, and the most open at once.
    open: usize,
    most_open: usize,
}

pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::listen(addr, None).await
    }

    /// A sink that offers STARTTLS with this PEM certificate and key.
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> Self {
        Self::start_tls_on("127.0.0.1:0".parse().unwrap(), cert_pem, key_pem).await
    }

    /// The same, on `addr`.
    pub async fn start_tls_on(addr: SocketAddr, cert_pem: &str, key_pem: &str) -> Self {
        let config = super::pki::server_config(cert_pem, key_pem);
        Self::listen(addr, Some(TlsAcceptor::from(config))).await
    }

    async fn listen(addr: SocketAddr, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                {
                    let mut s = shared.lock().unwrap();
                    s.connections += 1;
                    s.open += 1;
                    s.most_open = s.most_open.max(s.open);
                }
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    session(stream, shared.clone(), tls).await;
                    shared.lock().unwrap().open -= 1;
                });
            }
        });
        Self { addr, state, task }
    }

    /// Answers for the next DATA phases, in order; then Accept.
    pub fn script(&self, replies: &[SinkReply]) {
        self.state
            .lock()
            .unwrap()
            .script
            .extend(replies.iter().cloned());
    }

    /// Forget the answers not yet given: every message is accepted again.
    pub fn clear_script(&self) {
        self.state.lock().unwrap().script.clear();
    }

    /// A slow next hop: every message waits `d` for its reply.
    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// Advertise `SIZE size`.
    pub fn set_size(&self, size: usize) {
        self.state.lock().unwrap().size = size;
    }

    /// Close each connection once its message is answered.
    pub fn close_after_each_message(&self) {
        self.state.lock().unwrap().close_after_message = true;
    }

    /// The most connections that were open at once.
    pub fn most_open(&self) -> usize {
        self.state.lock().unwrap().most_open
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn attempts(&self) -> usize {
        self.state.lock().unwrap().attempts
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(mut stream: TcpStream, state: Arc<Mutex<State>>, tls: Option<TlsAcceptor>) {
    if stream.write_all(b"220 sink.test ESMTP\r\n").await.is_err() {
        return;
    }
    let Some(plain) = converse(stream, &state, tls.is_some(), false).await else {
        return;
    };
    let Some(acceptor) = tls else { return };
    if let Ok(secure) = acceptor.accept(plain).await {
        converse(secure, &state, false, true).await;
    }
}

/// Speak SMTP on `stream`; hands the stream back after `220` to STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    state: &Arc<Mutex<State>>,
    offer_tls: bool,
    tls: bool,
) -> Option<S> {
    let mut r = BufReader::new(stream);
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let starttls = if offer_tls { "250-STARTTLS\r\n" } else { "" };
            let size = match state.lock().unwrap().size {
                0 => 100_000_000,
                n => n,
            };
            format!(
                "250-sink.test\r\n{starttls}250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {size}\r\n"
            )
        } else if upper.starts_with("STARTTLS") && offer_tls {
            r.get_mut()
                .write_all(b"220 2.0.0 go ahead\r\n")
                .await
                .ok()?;
            return Some(r.into_inner());
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = between_brackets(&line);
            rcpt_to.clear();
            "250 2.1.0 Ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            rcpt_to.push(between_brackets(&line));
            "250 2.1.5 Ok\r\n".into()
        } else if upper.starts_with("DATA") {
            r.get_mut().write_all(b"354 go ahead\r\n").await.ok()?;
            let data = read_data(&mut r).await?;
            let delay = state.lock().unwrap().delay;
            tokio::time::sleep(delay).await;
            let answer = {
                let mut s = state.lock().unwrap();
                s.attempts += 1;
                let answer = s.script.pop_front().unwrap_or(SinkReply::Accept);
                if matches!(answer, SinkReply::Accept) {
                    s.received.push(Received {
                        tls,
                        mail_from: mail_from.clone(),
                        rcpt_to: rcpt_to.clone(),
                        data,
                    });
                }
                answer
            };
            let text = match answer {
                SinkReply::Accept => "250 2.0.0 Ok: queued\r\n".into(),
                SinkReply::Reply(text) => format!("{text}\r\n"),
                SinkReply::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return None;
                }
            };
            if state.lock().unwrap().close_after_message {
                r.get_mut().write_all(text.as_bytes()).await.ok()?;
                return None;
            }
            text
        } else if upper.starts_with("QUIT") {
            let _ = r.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
            return None;
        } else {
            "250 2.0.0 Ok\r\n".into()
        };
        r.get_mut().write_all(reply.as_bytes()).await.ok()?;
    }
}

fn between_brackets(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end].to_string()
}

/// Read to CRLF.CRLF and undo dot-stuffing.
async fn read_data<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" {
            return Some(data);
        }
        let content = if line.starts_with(b".") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(content);
    }
}

//! One SMTP client connection to the next hop (RFC 5321): greeting, EHLO,
//! STARTTLS, then transactions, several per connection. When the server
//! offers PIPELINING (RFC 2920), a transaction's MAIL, RCPT and DATA go out
//! in one write and the message with its final dot in another: two round
//! trips instead of four, and a quarter of the writes. Replies are parsed
//! by smtp-proto; the sockets and the timeouts are the caller's.

use crate::smtp::Reply;

use rustls_pki_types::ServerName;
use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{
    EhloResponse, EXT_8BIT_MIME, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS,
};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A reply may not grow past this (smtp-proto holds each line to 4 KiB).
const MAX_REPLY: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by the next hop")]
    Closed,
    #[error("unreadable reply: {0}")]
    Protocol(String),
    /// The server refused (4xx or 5xx).
    #[error("{}", .0.one_line())]
    Refused(Reply),
    /// The message needs an extension the server does not offer.
    #[error("{0}")]
    Unsupported(&'static str),
    /// The message is larger than the server's SIZE (RFC 1870): the
    /// message's size, the server's limit.
    #[error("the message ({0} bytes) is larger than the next hop takes ({1} bytes)")]
    TooBig(usize, usize),
    /// The connection was gone before the transaction's first reply (a
    /// kept connection the server had closed): nothing was delivered and
    /// the transaction may go at once over a new connection.
    #[error("connection closed before the transaction began: {0}")]
    Stale(Box<ClientError>),
}

/// The connection's socket, plain or under TLS.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub struct Client {
    io: Io,
    /// Bytes read and not yet parsed start at `read_pos`.
    read: Vec<u8>,
    read_pos: usize,
    /// EHLO capabilities (smtp-proto's `EXT_*` bits); none after HELO.
    capabilities: u32,
    /// The largest message the server takes (SIZE); 0: not said.
    max_size: usize,
    /// Set when the connection's state is unknown (an error mid-way): it
    /// must not carry another transaction.
    broken: bool,
}

impl Client {
    /// Read the greeting and say EHLO (HELO if EHLO is refused).
    pub async fn start(stream: TcpStream, hello: &str) -> Result<Self, ClientError> {
        let mut client = Self {
            io: Io::Plain(stream),
            read: Vec::with_capacity(1024),
            read_pos: 0,
            capabilities: 0,
            max_size: 0,
            broken: false,
        };
        let greeting = client.reply().await?;
        if greeting.code != 220 {
            return Err(ClientError::Refused(greeting));
        }
        client.hello(hello).await?;
        Ok(client)
    }

    pub fn offers_starttls(&self) -> bool {
        matches!(self.io, Io::Plain(_)) && self.offers(EXT_START_TLS)
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn offers(&self, extension: u32) -> bool {
        self.capabilities & extension != 0
    }

    /// STARTTLS, the handshake, and EHLO again (RFC 3207). The connection
    /// is gone when this fails.
    pub async fn starttls(
        mut self,
        tls: &TlsConnector,
        server: ServerName<'static>,
        hello: &str,
    ) -> Result<Self, ClientError> {
        self.write(b"STARTTLS\r\n").await?;
        let ready = self.reply().await?;
        if ready.code != 220 {
            return Err(ClientError::Refused(ready));
        }
        let Io::Plain(tcp) = self.io else {
            return Err(ClientError::Protocol("STARTTLS under TLS".into()));
        };
        let stream = tls.connect(server, tcp).await?;
        let mut client = Self {
            io: Io::Tls(Box::new(stream)),
            // Anything the server sent before the handshake is not trusted.
            read: Vec::with_capacity(1024),
            read_pos: 0,
            capabilities: 0,
            max_size: 0,
            broken: false,
        };
        client.hello(hello).await?;
        Ok(client)
    }

    async fn hello(&mut self, hello: &str) -> Result<(), ClientError> {
        self.write(format!("EHLO {hello}\r\n").as_bytes()).await?;
        let raw = self.raw_reply().await?;
        match EhloResponse::parse(&mut raw.iter()) {
            Ok(ehlo) => {
                self.capabilities = ehlo.capabilities;
                self.max_size = if self.offers(EXT_SIZE) { ehlo.size } else { 0 };
                Ok(())
            }
            Err(smtp_proto::Error::InvalidResponse { .. }) => {
                // EHLO refused: an old server may still know HELO.
                self.write(format!("HELO {hello}\r\n").as_bytes()).await?;
                let reply = self.reply().await?;
                if reply.code != 250 {
                    return Err(ClientError::Refused(reply));
                }
                self.capabilities = 0;
                Ok(())
            }
            Err(e) => Err(ClientError::Protocol(format!("EHLO reply: {e:?}"))),
        }
    }

    /// One transaction: `message` (CRLF line endings, not dot-stuffed) from
    /// `from` (empty: the null sender) to `to`. Returns the final reply.
    /// A refused transaction is reset, so the connection can carry the
    /// next one. A connection that fails before the first reply gives
    /// `Stale`.
    pub async fn send(
        &mut self,
        from: &str,
        to: &str,
        message: &[u8],
    ) -> Result<Reply, ClientError> {
        let mut answered = false;
        self.transaction(from, to, message, &mut answered)
            .await
            .map_err(|e| match e {
                ClientError::Io(_) | ClientError::Closed if !answered => {
                    ClientError::Stale(Box::new(e))
                }
                e => e,
            })
    }

    async fn transaction(
        &mut self,
        from: &str,
        to: &str,
        message: &[u8],
        answered: &mut bool,
    ) -> Result<Reply, ClientError> {
        if self.max_size > 0 && message.len() > self.max_size {
            return Err(ClientError::TooBig(message.len(), self.max_size));
        }
        let mut mail = format!("MAIL FROM:<{from}>");
        if self.offers(EXT_SIZE) {
            mail.push_str(&format!(" SIZE={}", message.len()));
        }
        if !message.is_ascii() {
            if !self.offers(EXT_8BIT_MIME) {
                return Err(ClientError::Unsupported(
                    "554 5.6.0 the message has 8-bit content and the next hop does not take it (no 8BITMIME)",
                ));
            }
            mail.push_str(" BODY=8BITMIME");
        }
        if !from.is_ascii() || !to.is_ascii() {
            if !self.offers(EXT_SMTP_UTF8) {
                return Err(ClientError::Unsupported(
                    "553 5.6.7 the address is not ASCII and the next hop does not take it (no SMTPUTF8)",
                ));
            }
            mail.push_str(" SMTPUTF8");
        }
        let commands = [
            format!("{mail}\r\n"),
            format!("RCPT TO:<{to}>\r\n"),
            "DATA\r\n".into(),
        ];
        self.broken = true; // until the transaction ends cleanly
        let mut replies = Vec::with_capacity(3);
        if self.offers(EXT_PIPELINING) {
            self.write(commands.concat().as_bytes()).await?;
            for _ in &commands {
                replies.push(self.reply().await?);
                *answered = true;
            }
        } else {
            for command in &commands {
                self.write(command.as_bytes()).await?;
                let reply = self.reply().await?;
                *answered = true;
                let go_on = reply.is_positive();
                replies.push(reply);
                if !go_on {
                    break;
                }
            }
        }
        let refused = replies[..replies.len().min(2)]
            .iter()
            .find(|r| !r.is_positive())
            .cloned();
        let data = replies.get(2);
        match (refused, data) {
            (None, Some(d)) if d.code == 354 => {}
            (refused, data) => {
                if data.is_some_and(|d| d.code == 354) {
                    // DATA went ahead after a refused RCPT: end it empty.
                    self.write(b".\r\n").await?;
                    self.reply().await?;
                }
                let reason = refused.or_else(|| data.cloned()).expect("a reply");
                self.reset().await?;
                return Err(ClientError::Refused(reason));
            }
        }
        self.write(&dot_stuffed(message)).await?;
        let done = self.reply().await?;
        self.broken = false;
        if done.is_positive() {
            Ok(done)
        } else {
            Err(ClientError::Refused(done))
        }
    }

    /// RSET after a refused transaction; the connection is usable again
    /// only if the server agrees.
    async fn reset(&mut self) -> Result<(), ClientError> {
        self.write(b"RSET\r\n").await?;
        if self.reply().await?.code == 250 {
            self.broken = false;
        }
        Ok(())
    }

    /// NOOP: does the connection still answer?
    pub async fn noop(&mut self) -> bool {
        if self.write(b"NOOP\r\n").await.is_err() {
            return false;
        }
        matches!(self.reply().await, Ok(r) if r.code == 250)
    }

    /// QUIT and close, politely; errors do not matter any more.
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n").await.is_ok() {
            let _ = self.reply().await;
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let result = match &mut self.io {
            Io::Plain(s) => write_all(s, bytes).await,
            Io::Tls(s) => write_all(s.as_mut(), bytes).await,
        };
        result.inspect_err(|_| self.broken = true)
    }

    /// The next reply, parsed.
    async fn reply(&mut self) -> Result<Reply, ClientError> {
        let raw = self.raw_reply().await?;
        let parsed = ResponseReceiver::default()
            .parse(&mut raw.iter())
            .map_err(|e| ClientError::Protocol(format!("{e:?}")))?;
        let message = parsed
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let status = match parsed.esc {
            [0, 0, 0] => None,
            [c, s, d] => Some(format!("{c}.{s}.{d}")),
        };
        Ok(Reply::received(parsed.code, status, message))
    }

    /// The bytes of the next reply: lines up to one whose code is followed
    /// by a space (or nothing), RFC 5321 4.2.1.
    async fn raw_reply(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut scanned = self.read_pos;
        loop {
            while let Some(nl) = self.read[scanned..].iter().position(|&b| b == b'\n') {
                let line = &self.read[scanned..scanned + nl + 1];
                scanned += nl + 1;
                if line.get(3).is_none_or(|&sep| sep != b'-') {
                    let reply = self.read[self.read_pos..scanned].to_vec();
                    self.read_pos = scanned;
                    if self.read_pos == self.read.len() {
                        self.read.clear();
                        self.read_pos = 0;
                    }
                    return Ok(reply);
                }
            }
            if self.read.len() - self.read_pos > MAX_REPLY {
                self.broken = true;
                return Err(ClientError::Protocol("reply too long".into()));
            }
            let n = match &mut self.io {
                Io::Plain(s) => s.read_buf(&mut self.read).await,
                Io::Tls(s) => s.read_buf(&mut self.read).await,
            }
            .inspect_err(|_| self.broken = true)?;
            if n == 0 {
                self.broken = true;
                return Err(ClientError::Closed);
            }
        }
    }
}

async fn write_all<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) -> Result<(), ClientError> {
    s.write_all(bytes).await?;
    s.flush().await?;
    Ok(())
}

/// The message as DATA sends it: a dot doubled at the start of each line,
/// a CRLF added if the message lacks its last, then `.` CRLF.
pub fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 256 + 8);
    let mut line_start = 0;
    for nl in memchr::memchr_iter(b'\n', message).chain(std::iter::once(message.len())) {
        let line = &message[line_start..(nl + 1).min(message.len())];
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        line_start = nl + 1;
        if line_start >= message.len() {
            break;
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

//! A plain SMTP client over a real socket, so tests see the exact replies.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub struct SmtpClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// A reply: its code and the text of its last line (after the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    /// "550 5.1.1" style prefix, for asserting the reference's codes.
    pub fn status(&self) -> String {
        let enhanced = self.text.split(' ').next().unwrap_or("");
        format!("{} {enhanced}", self.code)
    }
}

impl SmtpClient {
    /// Connect and read the greeting.
    pub async fn connect(addr: SocketAddr) -> (Self, Reply) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (r, w) = stream.into_split();
        let mut c = Self {
            reader: BufReader::new(r),
            writer: w,
        };
        let greeting = c.reply().await.expect("greeting");
        (c, greeting)
    }

    /// Connect, greet, EHLO.
    pub async fn ready(addr: SocketAddr) -> Self {
        let (mut c, greeting) = Self::connect(addr).await;
        assert_eq!(greeting.code, 220);
        assert_eq!(c.cmd("EHLO client.test").await.code, 250);
        c
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// Read one (possibly multi-line) reply; None when the server closed.
    pub async fn reply(&mut self) -> Option<Reply> {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.reader.read_line(&mut line))
                .await
                .expect("reply within 30 s")
                .ok()?;
            if n == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.len() >= 4 && &line[3..4] == "-" {
                continue;
            }
            return Some(Reply {
                code: line[..3].parse().unwrap(),
                text: line.get(4..).unwrap_or("").to_string(),
            });
        }
    }

    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.reply().await.expect("server closed the connection")
    }

    /// MAIL, RCPT each, DATA and the message; returns the final reply.
    /// `message` must use CRLF; it is dot-stuffed here.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], message: &str) -> Reply {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert_eq!(r.code, 250, "MAIL: {r:?}");
        for rcpt in to {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert_eq!(r.code, 250, "RCPT {rcpt}: {r:?}");
        }
        let r = self.cmd("DATA").await;
        assert_eq!(r.code, 354);
        self.send_raw(&stuff(message)).await;
        self.send_raw(b".\r\n").await;
        self.reply().await.expect("reply to DATA")
    }
}

pub fn stuff(message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
    }
    out
}

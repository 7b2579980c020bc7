//! One SMTP client: owns the socket, moves bytes between it and the session
//! state machine, and carries out what the session asks (recipient checks,
//! reading DATA, acceptance). Replies are buffered and flushed whenever the
//! client's pipelined input is used up (RFC 2920).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::clients::ClientLimits;
use super::stream::Stream;
use super::tls::TlsFiles;
use crate::accept::{Acceptor, Peer, Recipient};
use crate::smtp::{DataReader, Event, InputBuffer, Limits, Line, Reply, Session};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// What every connection shares.
pub struct ConnectionContext {
    /// Decides on recipients and messages.
    pub acceptor: Acceptor,
    /// The relay's name in replies.
    pub hostname: String,
    /// The session's limits.
    pub limits: Limits,
    /// A session idle this long is closed.
    pub idle_timeout: Duration,
    /// A session is closed after this long, whatever it is doing.
    pub max_session_time: Duration,
    /// How long to listen before greeting; a client talking first is dropped.
    pub greeting_delay: Duration,
    /// Limits per client address.
    pub clients: Arc<ClientLimits>,
    /// STARTTLS, when a certificate is configured.
    pub tls: Option<Arc<TlsFiles>>,
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a read ended when it did not bring bytes.
enum Interrupt {
    Closed,
    Idle,
    TooLong,
    Shutdown,
}

struct Connection {
    /// Reads pass through; writes are buffered until the client's
    /// pipelined input is used up. `None` only during the TLS handshake.
    io: Option<BufWriter<Stream>>,
    input: InputBuffer,
    chunk: Vec<u8>,
    ctx: Arc<ConnectionContext>,
    shutdown: watch::Receiver<bool>,
    peer: Peer,
    /// When the session must end (`max_session_time`).
    deadline: Instant,
}

/// Serve one client until it quits, is closed for cause, or the relay stops.
pub async fn handle(
    stream: TcpStream,
    addr: SocketAddr,
    ctx: Arc<ConnectionContext>,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Some(_slot) = ctx.clients.open_session(addr.ip()) else {
        tracing::info!(peer = %addr, "too many sessions from this address; refused");
        refuse(stream, &Reply::too_many_connections(&ctx.hostname)).await;
        return;
    };
    if talks_first(&stream, ctx.greeting_delay).await {
        tracing::info!(peer = %addr, "client talked before the greeting; dropped");
        refuse(stream, &Reply::early_talker(&ctx.hostname)).await;
        return;
    }
    let mut conn = Connection {
        io: Some(BufWriter::new(Stream::Plain(stream))),
        input: InputBuffer::new(),
        chunk: vec![0; READ_CHUNK],
        deadline: Instant::now() + ctx.max_session_time,
        ctx,
        shutdown,
        peer: Peer {
            ip: addr.ip(),
            tls: false,
        },
    };
    crate::telemetry::session_opened();
    let mut session: Session<Recipient> = Session::new(&conn.ctx.hostname, conn.ctx.limits.clone());
    if conn.ctx.tls.is_some() {
        session.offer_tls();
    }
    match conn.run(&mut session).await {
        Ok(()) => tracing::debug!(peer = %addr, "session ended"),
        Err(e) => tracing::debug!(peer = %addr, error = %e, "session ended with an I/O error"),
    }
    crate::telemetry::session_closed();
}

/// Whether the client sends anything before the greeting, within `delay`
/// (at once when it is zero).
async fn talks_first(stream: &TcpStream, delay: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + delay;
    let mut probe = [0u8; 1];
    loop {
        match stream.try_read(&mut probe) {
            Ok(n) => return n > 0,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return false,
            Err(_) => {}
        }
        // Readiness can be reported before bytes are there: wait and look again.
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return false,
        }
    }
}

/// Answer with `reply` and close, for a session that never starts.
async fn refuse(mut stream: TcpStream, reply: &Reply) {
    if let (true, Some(status)) = (reply.code >= 400, reply.status.as_deref()) {
        crate::telemetry::refused(status);
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&reply.to_wire()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

impl Connection {
    async fn run(&mut self, session: &mut Session<Recipient>) -> std::io::Result<()> {
        self.send(&session.greeting()).await?;
        self.io().flush().await?;
        loop {
            while let Some(event) = self.next_event(session) {
                if !self.carry_out(session, event).await? {
                    return match self.io.as_mut() {
                        Some(io) => io.flush().await,
                        None => Ok(()), // a failed TLS handshake took the socket
                    };
                }
            }
            self.io().flush().await?;
            match self.read_more().await? {
                Ok(()) => {}
                Err(Interrupt::Closed) => return Ok(()),
                Err(Interrupt::Idle) => return self.close_with(&session.idle_timeout()).await,
                Err(Interrupt::TooLong) => {
                    return self
                        .close_with(&Reply::session_too_long(&self.ctx.hostname))
                        .await
                }
                Err(Interrupt::Shutdown) => return self.close_with(&session.shutting_down()).await,
            }
        }
    }

    fn next_event(&mut self, session: &mut Session<Recipient>) -> Option<Event> {
        match self.input.next_line()? {
            Line::Command(line)
                if is_mail(line) && !self.ctx.clients.allow_message(self.peer.ip) =>
            {
                tracing::info!(peer = %self.peer.ip, "message rate exceeded");
                Some(Event::Reply(Reply::message_rate_exceeded()))
            }
            Line::Command(line) => Some(session.command(line)),
            Line::TooLong => Some(session.line_too_long()),
        }
    }

    /// Do what the session asked. False when the connection must close.
    async fn carry_out(
        &mut self,
        session: &mut Session<Recipient>,
        event: Event,
    ) -> std::io::Result<bool> {
        let event = match event {
            Event::CheckRecipient(address) => {
                let (clients, ip) = (&self.ctx.clients, self.peer.ip);
                let verdict = self
                    .ctx
                    .acceptor
                    .check_recipient(&address, session.mail_from(), || clients.allow_refusal(ip))
                    .await;
                session.recipient_checked(verdict)
            }
            Event::ReadData(go_ahead) => {
                self.send(&go_ahead).await?;
                self.io().flush().await?;
                match self.read_data(session).await? {
                    Some(event) => event,
                    None => return Ok(false),
                }
            }
            other => other,
        };
        if let Event::Reply(r) | Event::Close(r) = &event {
            if r.code >= 400 {
                crate::message_log::smtp_refused(self.peer.ip, session.helo(), r);
            }
        }
        match event {
            Event::Reply(r) => {
                self.send(&r).await?;
                Ok(true)
            }
            Event::Close(r) => {
                self.send(&r).await?;
                Ok(false)
            }
            Event::StartTls(r) => {
                self.send(&r).await?;
                self.io().flush().await?;
                self.start_tls(session).await
            }
            Event::CheckRecipient(_) | Event::ReadData(_) => {
                unreachable!("session answers these with replies")
            }
        }
    }

    /// Read the message up to `<CRLF>.<CRLF>` and have it accepted. `None`
    /// when the client went away or the relay is stopping (nothing accepted).
    async fn read_data(
        &mut self,
        session: &mut Session<Recipient>,
    ) -> std::io::Result<Option<Event>> {
        let mut data = DataReader::new(session.max_message_size());
        loop {
            let used = data.feed(self.input.pending());
            self.input.consume(used);
            if data.is_done() {
                break;
            }
            match self.read_more().await? {
                Ok(()) => {}
                Err(Interrupt::Closed) => {
                    tracing::info!(peer = %self.peer.ip, "client left during DATA; nothing accepted");
                    return Ok(None);
                }
                Err(Interrupt::Idle) => {
                    self.close_with(&session.idle_timeout()).await?;
                    return Ok(None);
                }
                Err(Interrupt::TooLong) => {
                    self.close_with(&Reply::session_too_long(&self.ctx.hostname))
                        .await?;
                    return Ok(None);
                }
                Err(Interrupt::Shutdown) => {
                    self.close_with(&session.shutting_down()).await?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(match session.data_finished(data.finish()) {
            Ok(envelope) => {
                let outcome = self.ctx.acceptor.accept(envelope, &self.peer).await;
                session.accepted(outcome)
            }
            Err(event) => event,
        }))
    }

    /// Read once into the input buffer, unless idle too long or stopping.
    async fn read_more(&mut self) -> std::io::Result<Result<(), Interrupt>> {
        if *self.shutdown.borrow() {
            return Ok(Err(Interrupt::Shutdown));
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        let wait = self.ctx.idle_timeout.min(left);
        tokio::select! {
            read = tokio::time::timeout(wait, self.io.as_mut().expect("stream in place").read(&mut self.chunk)) => match read {
                Err(_) if wait == left => Ok(Err(Interrupt::TooLong)),
                Err(_) => Ok(Err(Interrupt::Idle)),
                Ok(Ok(0)) => Ok(Err(Interrupt::Closed)),
                Ok(Ok(n)) => {
                    self.input.extend(&self.chunk[..n]);
                    Ok(Ok(()))
                }
                Ok(Err(e)) => Err(e),
            },
            _ = self.shutdown.changed() => Ok(Err(Interrupt::Shutdown)),
        }
    }

    fn io(&mut self) -> &mut BufWriter<Stream> {
        self.io.as_mut().expect("stream in place")
    }

    /// The TLS handshake after `220 Ready to start TLS`. Anything the client
    /// sent after STARTTLS in the clear is dropped: it must not count as
    /// said under TLS (CVE-2011-0411). False when the session must end.
    async fn start_tls(&mut self, session: &mut Session<Recipient>) -> std::io::Result<bool> {
        let stale = self.input.pending().len();
        if stale > 0 {
            tracing::info!(peer = %self.peer.ip, bytes = stale, "dropped input sent in the clear after STARTTLS");
            self.input.consume(stale);
        }
        let Some(tls) = self.ctx.tls.clone() else {
            return Ok(false);
        };
        let Some(Stream::Plain(tcp)) = self.io.take().map(BufWriter::into_inner) else {
            return Ok(false);
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(tcp)).await {
            Ok(Ok(stream)) => {
                self.io = Some(BufWriter::new(Stream::Tls(Box::new(stream))));
                self.peer.tls = true;
                session.tls_started();
                Ok(true)
            }
            Ok(Err(e)) => {
                tracing::info!(peer = %self.peer.ip, error = %e, "TLS handshake failed");
                Ok(false)
            }
            Err(_) => {
                tracing::info!(peer = %self.peer.ip, "TLS handshake timed out");
                Ok(false)
            }
        }
    }

    async fn send(&mut self, reply: &Reply) -> std::io::Result<()> {
        if let (true, Some(status)) = (reply.code >= 400, reply.status.as_deref()) {
            crate::telemetry::refused(status);
        }
        self.io().write_all(&reply.to_wire()).await
    }

    async fn close_with(&mut self, reply: &Reply) -> std::io::Result<()> {
        self.send(reply).await?;
        self.io().flush().await?;
        self.io().shutdown().await
    }
}

/// A MAIL command (a new message), in any case.
fn is_mail(line: &[u8]) -> bool {
    line.len() >= 5 && line[..4].eq_ignore_ascii_case(b"MAIL") && matches!(line[4], b' ' | b':')
}

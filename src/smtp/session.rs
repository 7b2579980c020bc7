//! One SMTP session as a state machine with no I/O: it is given command lines,
//! recipient verdicts and DATA outcomes, and answers with events to carry out.
//! It knows nothing of sockets, storage or delivery.
//!
//! `R` is what the caller keeps for each accepted recipient (its alias row);
//! the session only stores and returns it.

use smtp_proto::{Error as ParseError, Request};

use super::data::DataError;
use super::reply::Reply;

/// A session's limits, from `[smtp]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message (advertised as SIZE).
    pub max_message_size: usize,
    /// Recipients per transaction.
    pub max_recipients: usize,
    /// 5xx replies before the session is closed.
    pub max_errors: u32,
    /// Commands since the session began or last had a message accepted;
    /// then 421 4.7.0 and close. A sender reusing one connection for many
    /// messages never reaches it; a client idling on NOOPs or probing RCPTs does.
    pub max_commands: u32,
}

/// What the connection must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Send this reply and read on.
    Reply(Reply),
    /// Send this reply, then close the connection.
    Close(Reply),
    /// Decide on this recipient and call `recipient_checked`.
    CheckRecipient(String),
    /// Send the 354 reply and read the message with a `DataReader`.
    ReadData(Reply),
    /// Send this reply, drop any input already read (it came before TLS),
    /// do the TLS handshake, then call `tls_started`.
    StartTls(Reply),
}

/// STARTTLS in this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// No certificate configured.
    Unavailable,
    Offered,
    Active,
}

/// The caller's decision on one RCPT address.
#[derive(Debug)]
pub enum Verdict<R> {
    /// Take it, as this recipient.
    Accept(R),
    /// Not under the alias domain.
    Relaying,
    /// Unknown, expired, disabled or bad tag: one answer for all.
    Unknown,
    /// The database could not be asked.
    TemporaryFailure,
    /// Refused like `Unknown`, but the client's address had too many such
    /// refusals this minute: try later (nothing is recorded).
    Throttled,
}

/// A complete transaction handed to the caller for acceptance.
#[derive(Debug)]
pub struct Envelope<R> {
    /// The client's HELO or EHLO argument.
    pub helo: String,
    /// Empty for the null sender.
    pub mail_from: String,
    /// The recipients taken.
    pub recipients: Vec<R>,
    /// The message, dot-stuffing undone.
    pub body: Vec<u8>,
}

/// Why an accepted-looking transaction was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The database is unavailable (`451 4.3.0`).
    StorageUnavailable,
    /// More than 50 Received fields (`554 5.4.6`).
    MailLoop,
    /// A header field or the header over its fixed limit.
    HeaderTooBig,
    /// The sender's domain publishes DMARC p=reject and the message fails it.
    DmarcReject,
    /// The policy stage's reply (4xx: later; 5xx: refused).
    Policy(Reply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Greeting sent, no HELO/EHLO yet.
    Connected,
    /// HELO/EHLO done, no transaction.
    Ready,
    /// MAIL accepted.
    Mail,
    /// Reading DATA or waiting for the acceptance result.
    Data,
}

/// The SMTP protocol of one session as a state machine that does no I/O:
/// the connection feeds it the bytes it reads and sends the replies it
/// gives; recipients and messages go to the caller for a decision (`Event`,
/// `Verdict`). `R` is what an accepted recipient stands for. Tested and
/// fuzzed without a socket.
pub struct Session<R> {
    hostname: String,
    limits: Limits,
    state: State,
    helo: String,
    mail_from: String,
    recipients: Vec<R>,
    errors: u32,
    commands: u32,
    tls: Tls,
}

impl<R> Session<R> {
    /// A session of `hostname` with `limits`, before the greeting.
    pub fn new(hostname: &str, limits: Limits) -> Self {
        Self {
            hostname: hostname.to_string(),
            limits,
            state: State::Connected,
            helo: String::new(),
            mail_from: String::new(),
            recipients: Vec::new(),
            errors: 0,
            commands: 0,
            tls: Tls::Unavailable,
        }
    }

    /// A certificate is configured: offer STARTTLS.
    pub fn offer_tls(&mut self) {
        if self.tls == Tls::Unavailable {
            self.tls = Tls::Offered;
        }
    }

    /// The handshake succeeded: the session starts over (RFC 3207 4.2), the
    /// client must greet again, and STARTTLS is no longer offered.
    pub fn tls_started(&mut self) {
        self.tls = Tls::Active;
        self.state = State::Connected;
        self.helo.clear();
        self.reset_transaction();
    }

    /// True once STARTTLS is done.
    pub fn tls_active(&self) -> bool {
        self.tls == Tls::Active
    }

    /// The greeting to send first.
    pub fn greeting(&self) -> Reply {
        Reply::greeting(&self.hostname)
    }

    /// The reply for a session idle too long.
    pub fn idle_timeout(&self) -> Reply {
        Reply::idle_timeout(&self.hostname)
    }

    /// The reply for a session the relay closes while stopping.
    pub fn shutting_down(&self) -> Reply {
        Reply::shutting_down(&self.hostname)
    }

    /// What the client called itself in HELO or EHLO (empty before).
    pub fn helo(&self) -> &str {
        &self.helo
    }

    /// The current transaction's envelope sender (empty: null sender or none yet).
    pub fn mail_from(&self) -> &str {
        &self.mail_from
    }

    /// The largest message taken.
    pub fn max_message_size(&self) -> usize {
        self.limits.max_message_size
    }

    /// Turn a reply into an event, closing the session on too many errors.
    fn answer(&mut self, reply: Reply) -> Event {
        if reply.is_permanent_error() {
            self.errors += 1;
            if self.errors >= self.limits.max_errors {
                return Event::Close(Reply::too_many_errors(&self.hostname));
            }
        }
        Event::Reply(reply)
    }

    fn reset_transaction(&mut self) {
        self.mail_from.clear();
        self.recipients.clear();
        if self.state != State::Connected {
            self.state = State::Ready;
        }
    }

    /// An overlong command line (already discarded by the input buffer).
    pub fn line_too_long(&mut self) -> Event {
        self.answer(Reply::line_too_long())
    }

    /// One command line, with its line ending.
    pub fn command(&mut self, line: &[u8]) -> Event {
        self.commands += 1;
        if self.commands > self.limits.max_commands {
            return Event::Close(Reply::too_many_commands(&self.hostname));
        }
        let parsed = if line.ends_with(b"\n") {
            Request::parse(&mut line.iter())
        } else {
            Err(ParseError::SyntaxError {
                syntax: "line ending",
            })
        };
        let request = match parsed {
            Ok(r) => r,
            Err(ParseError::UnknownCommand) => return self.answer(Reply::unknown_command()),
            Err(ParseError::InvalidSenderAddress) => {
                return self.answer(Reply::syntax_error("bad sender address"))
            }
            Err(ParseError::InvalidRecipientAddress) => {
                return self.answer(Reply::syntax_error("bad recipient address"))
            }
            Err(ParseError::SyntaxError { syntax }) => {
                return self.answer(Reply::syntax_error(syntax))
            }
            Err(ParseError::InvalidParameter { param }) => {
                return self.answer(Reply::syntax_error(&format!("invalid parameter {param}")))
            }
            Err(ParseError::UnsupportedParameter { .. }) => {
                return self.answer(Reply::new(555, "5.5.4", "Unsupported parameter"))
            }
            Err(_) => return self.answer(Reply::syntax_error("malformed command")),
        };
        match request {
            Request::Ehlo { host } => {
                self.helo = host.into_owned();
                self.state = State::Ready;
                self.reset_transaction();
                let starttls = self.tls == Tls::Offered;
                Event::Reply(Reply::ehlo(
                    &self.hostname,
                    self.limits.max_message_size,
                    starttls,
                ))
            }
            Request::Helo { host } => {
                self.helo = host.into_owned();
                self.state = State::Ready;
                self.reset_transaction();
                Event::Reply(Reply::helo(&self.hostname))
            }
            Request::Mail { from } => match unadvertised_mail_parameter(&from) {
                Some(name) => self.answer(Reply::unadvertised_parameter(name)),
                None => self.mail(from.address.into_owned(), from.size),
            },
            Request::Rcpt { to } => match unadvertised_rcpt_parameter(&to) {
                Some(name) => self.answer(Reply::unadvertised_parameter(name)),
                None => self.rcpt(to.address.into_owned()),
            },
            Request::Data => self.data(),
            Request::Rset => {
                self.reset_transaction();
                Event::Reply(Reply::ok())
            }
            Request::Noop { .. } => Event::Reply(Reply::ok()),
            Request::Quit => Event::Close(Reply::bye()),
            Request::Help { .. } => Event::Reply(Reply::help()),
            Request::Vrfy { .. } => Event::Reply(Reply::cannot_vrfy()),
            Request::StartTls => match (self.tls, self.state) {
                (Tls::Unavailable, _) => self.answer(Reply::not_implemented()),
                (Tls::Active, _) => self.answer(Reply::bad_sequence("TLS already active")),
                (_, State::Mail | State::Data) => {
                    self.answer(Reply::bad_sequence("finish the mail transaction first"))
                }
                (Tls::Offered, _) => Event::StartTls(Reply::ready_for_tls()),
            },
            _ => self.answer(Reply::not_implemented()),
        }
    }

    fn mail(&mut self, address: String, declared_size: usize) -> Event {
        match self.state {
            State::Connected => self.answer(Reply::bad_sequence("send EHLO or HELO first")),
            State::Mail | State::Data => self.answer(Reply::bad_sequence("sender already given")),
            State::Ready if declared_size > self.limits.max_message_size => {
                self.answer(Reply::too_big())
            }
            State::Ready => {
                self.mail_from = address;
                self.state = State::Mail;
                Event::Reply(Reply::sender_ok())
            }
        }
    }

    fn rcpt(&mut self, address: String) -> Event {
        if self.state != State::Mail {
            return self.answer(Reply::bad_sequence("send MAIL first"));
        }
        if self.recipients.len() >= self.limits.max_recipients {
            return Event::Reply(Reply::too_many_recipients());
        }
        if address.is_empty() {
            return self.answer(Reply::syntax_error("empty recipient"));
        }
        Event::CheckRecipient(address)
    }

    /// Go on with the caller's `verdict` on the recipient asked about.
    pub fn recipient_checked(&mut self, verdict: Verdict<R>) -> Event {
        match verdict {
            Verdict::Accept(r) if self.state == State::Mail => {
                self.recipients.push(r);
                Event::Reply(Reply::recipient_ok())
            }
            Verdict::Accept(_) => self.answer(Reply::bad_sequence("send MAIL first")),
            Verdict::Relaying => self.answer(Reply::relaying_denied()),
            Verdict::Unknown => self.answer(Reply::unknown_alias()),
            Verdict::TemporaryFailure => Event::Reply(Reply::storage_unavailable()),
            Verdict::Throttled => Event::Reply(Reply::refusals_throttled()),
        }
    }

    fn data(&mut self) -> Event {
        match self.state {
            State::Mail if !self.recipients.is_empty() => {
                self.state = State::Data;
                Event::ReadData(Reply::start_data())
            }
            State::Mail => self.answer(Reply::bad_sequence("no valid recipients")),
            _ => self.answer(Reply::bad_sequence("send MAIL and RCPT first")),
        }
    }

    /// DATA has ended. On success the envelope goes to the caller, who must
    /// then call `accepted` with the outcome; the session is ready either way.
    pub fn data_finished(
        &mut self,
        body: Result<Vec<u8>, DataError>,
    ) -> Result<Envelope<R>, Event> {
        debug_assert_eq!(self.state, State::Data);
        let recipients = std::mem::take(&mut self.recipients);
        let mail_from = std::mem::take(&mut self.mail_from);
        self.state = State::Ready;
        match body {
            // Nothing, or only empty lines: no header, no text (RFC 5322
            // wants at least From and Date).
            Ok(body) if body.iter().all(|&b| b == b'\r' || b == b'\n') => {
                Err(self.answer(Reply::empty_message()))
            }
            Ok(body) => Ok(Envelope {
                helo: self.helo.clone(),
                mail_from,
                recipients,
                body,
            }),
            Err(DataError::TooBig) => Err(self.answer(Reply::too_big())),
            Err(DataError::BareLineEnding) => Err(self.answer(Reply::bad_line_ending())),
            Err(DataError::LineTooLong) => Err(self.answer(Reply::data_line_too_long())),
            Err(DataError::Nul) => Err(self.answer(Reply::nul_in_data())),
        }
    }

    /// The reply for a transaction handed out by `data_finished`.
    pub fn accepted(&mut self, outcome: Result<String, Refusal>) -> Event {
        match outcome {
            Ok(queue_id) => {
                self.commands = 0;
                Event::Reply(Reply::queued(&queue_id))
            }
            Err(Refusal::StorageUnavailable) => Event::Reply(Reply::storage_unavailable()),
            Err(Refusal::MailLoop) => self.answer(Reply::mail_loop()),
            Err(Refusal::HeaderTooBig) => self.answer(Reply::header_too_big()),
            Err(Refusal::DmarcReject) => self.answer(Reply::dmarc_reject()),
            Err(Refusal::Policy(reply)) => self.answer(reply),
        }
    }
}

/// The first MAIL parameter EHLO did not offer: only SIZE, BODY=7BIT or
/// 8BITMIME and SMTPUTF8 are (RFC 5321 4.1.1.11: a parameter of an extension
/// not offered gets 555).
fn unadvertised_mail_parameter<T>(from: &smtp_proto::MailFrom<T>) -> Option<&'static str> {
    use smtp_proto::*;
    let offered = MAIL_BODY_7BIT | MAIL_BODY_8BITMIME | MAIL_SMTPUTF8;
    let flag = |bit: u64, name| (from.flags & bit != 0).then_some(name);
    flag(MAIL_BODY_BINARYMIME, "BODY=BINARYMIME")
        .or_else(|| flag(MAIL_RET_FULL | MAIL_RET_HDRS, "RET (DSN)"))
        .or_else(|| flag(MAIL_REQUIRETLS, "REQUIRETLS"))
        .or_else(|| flag(MAIL_CONPERM, "CONPERM"))
        .or_else(|| flag(MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE, "BY"))
        .or_else(|| flag(!offered, "an extension's parameter"))
        .or_else(|| from.env_id.is_some().then_some("ENVID (DSN)"))
        .or_else(|| from.auth.is_some().then_some("AUTH"))
        .or_else(|| from.trans_id.is_some().then_some("TRANSID"))
        .or_else(|| from.solicit.is_some().then_some("SOLICIT"))
        .or_else(|| from.mtrk.is_some().then_some("MTRK"))
        .or_else(|| (from.by != 0).then_some("BY"))
        .or_else(|| (from.hold_for != 0 || from.hold_until != 0).then_some("HOLDFOR"))
        .or_else(|| (from.mt_priority != 0).then_some("MT-PRIORITY"))
}

/// The first RCPT parameter EHLO did not offer: none is (no DSN, RRVS or
/// CONNEG).
fn unadvertised_rcpt_parameter<T>(to: &smtp_proto::RcptTo<T>) -> Option<&'static str> {
    use smtp_proto::*;
    let notify = RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY | RCPT_NOTIFY_NEVER;
    (to.flags & notify != 0)
        .then_some("NOTIFY (DSN)")
        .or_else(|| to.orcpt.is_some().then_some("ORCPT (DSN)"))
        .or_else(|| {
            (to.rrvs != 0 || to.flags & (RCPT_RRVS_REJECT | RCPT_RRVS_CONTINUE) != 0)
                .then_some("RRVS")
        })
        .or_else(|| (to.flags != 0).then_some("an extension's parameter"))
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

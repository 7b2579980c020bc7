//! A tiny authoritative DNS server over UDP for tests: TXT, A, AAAA, MX and
//! CNAME records from a table (a CNAME is followed within the answer, as a
//! recursive resolver does), SERVFAIL for names set to fail, NOERROR with
//! no data for names that have other records, NXDOMAIN for anything else.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use mail_auth::hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use mail_auth::hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
use mail_auth::hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

#[derive(Default)]
struct Zone {
    records: HashMap<(String, RecordType), Vec<RData>>,
    failing: HashSet<String>,
    /// Questions asked, as (name, type).
    asked: Vec<(String, RecordType)>,
    /// The answers' TTL, when not 60 s.
    ttl: Option<u32>,
}

impl Zone {
    fn has_name(&self, name: &str) -> bool {
        self.records.keys().any(|(n, _)| n == name)
    }

    /// The answer to one question: records (a CNAME chain first), or a
    /// response code.
    fn answer(&mut self, name: &Name, kind: RecordType) -> Result<Vec<Record>, ResponseCode> {
        self.asked.push((key(&name.to_string()), kind));
        let mut records = Vec::new();
        let mut name = name.clone();
        for _ in 0..8 {
            let k = key(&name.to_string());
            if self.failing.contains(&k) {
                return Err(ResponseCode::ServFail);
            }
            if let Some(found) = self.records.get(&(k.clone(), kind)) {
                records.extend(found.iter().map(|rdata| {
                    Record::from_rdata(name.clone(), self.ttl.unwrap_or(60), rdata.clone())
                }));
                return Ok(records);
            }
            match self.records.get(&(k.clone(), RecordType::CNAME)) {
                Some(alias) if kind != RecordType::CNAME => {
                    let rdata = alias[0].clone();
                    let RData::CNAME(CNAME(target)) = &rdata else {
                        unreachable!()
                    };
                    let target = target.clone();
                    records.push(Record::from_rdata(
                        name.clone(),
                        self.ttl.unwrap_or(60),
                        rdata,
                    ));
                    name = target;
                }
                _ if !records.is_empty() || self.has_name(&k) => return Ok(records),
                _ => return Err(ResponseCode::NXDomain),
            }
        }
        Err(ResponseCode::ServFail)
    }
}

pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let zone: Arc<Mutex<Zone>> = Arc::default();
        let shared = zone.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut reply = Message::new(query.id(), MessageType::Response, query.op_code());
                reply.set_recursion_desired(query.recursion_desired());
                reply.set_recursion_available(true);
                reply.set_authoritative(true);
                for q in query.queries() {
                    reply.add_query(q.clone());
                    let answer = shared.lock().unwrap().answer(q.name(), q.query_type());
                    match answer {
                        Ok(records) => {
                            for record in records {
                                reply.add_answer(record);
                            }
                        }
                        Err(code) => {
                            reply.set_response_code(code);
                        }
                    }
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        Self { addr, zone }
    }

    fn add(&self, name: &str, kind: RecordType, rdata: RData) {
        let _ = Name::from_str(name).expect("a DNS name");
        self.zone
            .lock()
            .unwrap()
            .records
            .entry((key(name), kind))
            .or_default()
            .push(rdata);
    }

    pub fn txt(&self, name: &str, text: &str) {
        self.add(
            name,
            RecordType::TXT,
            RData::TXT(TXT::new(vec![text.to_string()])),
        );
    }

    /// `name`'s TXT record is `text` now, the earlier ones gone.
    pub fn replace_txt(&self, name: &str, text: &str) {
        self.zone
            .lock()
            .unwrap()
            .records
            .remove(&(key(name), RecordType::TXT));
        self.txt(name, text);
    }

    /// Answers carry this TTL from now on (resolvers cache them that long).
    pub fn set_ttl(&self, seconds: u32) {
        self.zone.lock().unwrap().ttl = Some(seconds);
    }

    pub fn a(&self, name: &str, ip: Ipv4Addr) {
        self.add(name, RecordType::A, RData::A(A(ip)));
    }

    pub fn aaaa(&self, name: &str, ip: Ipv6Addr) {
        self.add(name, RecordType::AAAA, RData::AAAA(AAAA(ip)));
    }

    /// An MX record; `host` "." is a null MX (RFC 7505).
    pub fn mx(&self, name: &str, preference: u16, host: &str) {
        let exchange = Name::from_str(host).unwrap();
        self.add(
            name,
            RecordType::MX,
            RData::MX(MX::new(preference, exchange)),
        );
    }

    pub fn cname(&self, name: &str, target: &str) {
        let target = Name::from_str(target).unwrap();
        self.add(name, RecordType::CNAME, RData::CNAME(CNAME(target)));
    }

    /// Every question about `name` gets SERVFAIL.
    pub fn fail(&self, name: &str) {
        self.zone.lock().unwrap().failing.insert(key(name));
    }

    /// How many questions of `kind` about `name` were asked.
    pub fn asked(&self, name: &str, kind: RecordType) -> usize {
        let name = key(name);
        let zone = self.zone.lock().unwrap();
        zone.asked
            .iter()
            .filter(|(n, k)| *n == name && *k == kind)
            .count()
    }
}

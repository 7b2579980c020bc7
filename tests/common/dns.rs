//! A tiny authoritative DNS server over UDP for tests: TXT and A records
//! from a table, NXDOMAIN for anything else.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use mail_auth::hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use mail_auth::hickory_resolver::proto::rr::rdata::{A, TXT};
use mail_auth::hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

type Zone = HashMap<(String, RecordType), Vec<RData>>;

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
                let mut found = false;
                for q in query.queries() {
                    reply.add_query(q.clone());
                    let records = shared
                        .lock()
                        .unwrap()
                        .get(&(key(&q.name().to_string()), q.query_type()))
                        .cloned();
                    let name_exists = shared
                        .lock()
                        .unwrap()
                        .keys()
                        .any(|(n, _)| *n == key(&q.name().to_string()));
                    if let Some(records) = records {
                        found = true;
                        for rdata in records {
                            reply.add_answer(Record::from_rdata(q.name().clone(), 60, rdata));
                        }
                    } else if name_exists {
                        found = true; // NOERROR, no data
                    }
                }
                if !found {
                    reply.set_response_code(ResponseCode::NXDomain);
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        Self { addr, zone }
    }

    pub fn txt(&self, name: &str, text: &str) {
        let _ = Name::from_str(name).expect("a DNS name");
        self.zone
            .lock()
            .unwrap()
            .entry((key(name), RecordType::TXT))
            .or_default()
            .push(RData::TXT(TXT::new(vec![text.to_string()])));
    }

    pub fn a(&self, name: &str, ip: Ipv4Addr) {
        self.zone
            .lock()
            .unwrap()
            .entry((key(name), RecordType::A))
            .or_default()
            .push(RData::A(A(ip)));
    }
}

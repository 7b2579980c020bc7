//! A browser's side of the console over plain HTTP requests: cookies kept
//! from page to page, forms posted, the page's CSRF token read.

use std::net::SocketAddr;

use super::http::{request_with, HttpResponse};

/// A browser's cookies and the last page's CSRF token, over plain requests.
pub struct Visitor {
    pub api: SocketAddr,
    pub cookies: Vec<(String, String)>,
}

impl Visitor {
    pub fn new(api: SocketAddr) -> Self {
        Self {
            api,
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, r: &HttpResponse) {
        for (_, value) in r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        {
            let pair = value.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(old, _)| old != k);
            if !v.is_empty() {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> HttpResponse {
        let cookie = self.cookie_header();
        let r = request_with(self.api, "GET", path, &[("Cookie", &cookie)], b"").await;
        self.keep_cookies(&r);
        r
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> HttpResponse {
        let cookie = self.cookie_header();
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = request_with(
            self.api,
            "POST",
            path,
            &[
                ("Cookie", &cookie),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .await;
        self.keep_cookies(&r);
        r
    }

    /// Log in with `token`; the CSRF token of the session.
    pub async fn log_in(&mut self, token: &str) -> String {
        let form = self.get("/console/login").await;
        let csrf = csrf_of(&form);
        let r = self
            .post("/console/login", &[("token", token), ("csrf", &csrf)])
            .await;
        assert_eq!(r.status, 303, "{}", text(&r));
        assert_eq!(r.header("location"), Some("/console/orders"));
        csrf_of(&self.get("/console/orders").await)
    }
}

pub fn text(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The value of the page's first `name="csrf"` field.
pub fn csrf_of(r: &HttpResponse) -> String {
    let page = text(r);
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

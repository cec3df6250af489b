//! A browser for the web pages without a browser: a cookie jar, no automatic redirects, and
//! sign-in the way a person does it. The console's black-box tests share it.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use super::{PASSWORD, Server};

/// A browser: a cookie jar and no automatic redirects.
pub struct Browser {
    pub base: String,
    pub mcp: String,
    pub http: reqwest::Client,
    pub jar: BTreeMap<String, String>,
}

/// One answer, as the browser got it.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Page {
    pub fn location(&self) -> String {
        self.headers[LOCATION].to_str().unwrap().to_string()
    }
}

/// `s` with the escapes minijinja writes turned back.
pub fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
}

/// The value of the first hidden field `name` in `html` (after `after`, if given).
pub fn field(html: &str, name: &str, after: Option<&str>) -> Option<String> {
    let html = match after {
        Some(a) => &html[html.find(a)?..],
        None => html,
    };
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        Browser {
            base: server.url.trim_end_matches("/mcp").to_string(),
            mcp: server.url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
        }
    }

    pub fn cookies(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn absorb(&mut self, res: reqwest::Response) -> Page {
        for c in res.headers().get_all(SET_COOKIE) {
            let kv = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            self.jar.insert(k.to_string(), v.to_string());
        }
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap().to_vec();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookies())
            .send()
            .await
            .unwrap();
        self.absorb(res).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookies())
            .form(form)
            .send()
            .await
            .unwrap();
        self.absorb(res).await
    }

    /// Signs in as `email` the way a person does: `/console` sends them to the sign-in page,
    /// which sends them back.
    pub async fn sign_in(server: &Server, email: &str) -> Browser {
        let mut b = Browser::new(server);
        let r = b.get("/console").await;
        assert_eq!(r.status, 303);
        let login = r.location();
        assert_eq!(login, "/login?continue=%2Fconsole");
        let page = b.get(&login).await;
        assert_eq!(page.status, 200);
        let csrf = field(&page.body, "csrf_token", None).unwrap();
        let cont = field(&page.body, "continue", None).unwrap();
        assert_eq!(cont, "/console");
        let r = b
            .post(
                "/login",
                &[
                    ("csrf_token", &csrf),
                    ("continue", &cont),
                    ("email", email),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "sign-in of {email}: {}", r.body);
        assert_eq!(r.location(), "/console");
        b
    }
}

//! The registry's HTTP API (the distribution spec), read directly: `/v2/`
//! (is it there, do the credentials work), the tags list of a repository,
//! and manifests (HEAD for the digest, GET for the image's config digest).
//! Nothing is pulled.
//!
//! Authentication: Basic with the credentials when there are any; when the
//! registry answers 401 with a `Bearer` challenge, a token is fetched from
//! its realm (with the credentials) and the request is sent again. Every
//! request has a time limit, so an unreachable registry costs seconds.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};

use crate::error::{Error, Result};
use crate::registry::{Credentials, Registry};

/// Media types of the manifests we accept (single-platform and lists).
const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.index.v1+json";

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request (with its body) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest body we read (tag lists and manifests are small).
const MAX_BODY: usize = 8 * 1024 * 1024;

type Plain = Client<HttpConnector, Empty<Bytes>>;
type Tls = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// What the registry holds under one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteManifest {
    /// The manifest's digest (`Docker-Content-Digest`).
    pub digest: String,
    pub media_type: String,
    /// The image config's digest: the engine's image id for the same image.
    pub config_digest: Option<String>,
}

/// A client of one registry's HTTP API.
pub struct RegistryClient {
    registry: Registry,
    base: String,
    credentials: Option<Credentials>,
    plain: Plain,
    tls: OnceCell<Tls>,
    /// Bearer tokens by scope.
    tokens: Mutex<HashMap<String, String>>,
    timeout: Duration,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("registry", &self.registry.to_string())
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish()
    }
}

struct Response {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ManifestBody {
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

fn connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.enforce_http(false);
    http
}

impl RegistryClient {
    pub fn new(registry: &Registry, credentials: Option<Credentials>) -> RegistryClient {
        RegistryClient {
            registry: registry.clone(),
            base: registry.api_base(),
            credentials,
            plain: Client::builder(TokioExecutor::new()).build(connector()),
            tls: OnceCell::new(),
            tokens: Mutex::new(HashMap::new()),
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// Where the API is, e.g. `http://127.0.0.1:5000`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Checks that the registry answers and takes our credentials (`GET /v2/`).
    pub async fn check(&self) -> Result<()> {
        let response = self.get("/v2/", "", None).await?;
        match response.status {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => Err(self.unauthorized("/v2/")),
            StatusCode::NOT_FOUND => Err(self.failed(
                "/v2/",
                "answers 404: it does not speak the registry API (distribution spec v2)",
                "check the host and port",
            )),
            s => Err(self.unexpected("/v2/", s, &response.body)),
        }
    }

    /// The tags of `repository`; empty when the repository does not exist yet.
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>> {
        let path = format!("/v2/{repository}/tags/list");
        let response = self.get(&path, "", Some(repository)).await?;
        match response.status {
            s if s.is_success() => {
                let list: TagList = serde_json::from_slice(&response.body).map_err(|e| {
                    self.failed(
                        &path,
                        &format!("sent a tag list that is not JSON ({e})"),
                        "",
                    )
                })?;
                Ok(list.tags.unwrap_or_default())
            }
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            StatusCode::UNAUTHORIZED => Err(self.unauthorized(&path)),
            s => Err(self.unexpected(&path, s, &response.body)),
        }
    }

    /// The digest of the manifest under `reference` (a tag or digest), from
    /// a HEAD request; `None` when the registry has none.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self
            .request(Method::HEAD, &path, MANIFEST_TYPES, Some(repository))
            .await?;
        match response.status {
            s if s.is_success() => Ok(Some(self.digest_header(&path, &response)?)),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED => Err(self.unauthorized(&path)),
            s => Err(self.unexpected(&path, s, &response.body)),
        }
    }

    /// The manifest under `reference`: its digest, media type and the
    /// digest of the image config it points at. `None` when there is none.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<RemoteManifest>> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self.get(&path, MANIFEST_TYPES, Some(repository)).await?;
        match response.status {
            s if s.is_success() => {
                let digest = self.digest_header(&path, &response)?;
                let body: ManifestBody = serde_json::from_slice(&response.body).map_err(|e| {
                    self.failed(
                        &path,
                        &format!("sent a manifest that is not JSON ({e})"),
                        "",
                    )
                })?;
                let media_type = body
                    .media_type
                    .or_else(|| {
                        response
                            .headers
                            .get(header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                Ok(Some(RemoteManifest {
                    digest,
                    media_type,
                    config_digest: body.config.map(|c| c.digest),
                }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED => Err(self.unauthorized(&path)),
            s => Err(self.unexpected(&path, s, &response.body)),
        }
    }

    fn digest_header(&self, path: &str, response: &Response) -> Result<String> {
        response
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                self.failed(
                    path,
                    "answered without a Docker-Content-Digest header",
                    "use a registry that implements the distribution spec",
                )
            })
    }

    async fn get(&self, path: &str, accept: &str, repository: Option<&str>) -> Result<Response> {
        self.request(Method::GET, path, accept, repository).await
    }

    /// Sends a request with the credentials; answers a Bearer challenge once.
    async fn request(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        repository: Option<&str>,
    ) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        let scope = repository.map(|r| format!("repository:{r}:pull"));
        let cached = match &scope {
            Some(scope) => self.tokens.lock().await.get(scope).cloned(),
            None => None,
        };
        let authorization = match (&cached, &self.credentials) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, Some(credentials)) => Some(credentials.basic_header()),
            (None, None) => None,
        };
        let response = self
            .send(method.clone(), &url, accept, authorization.as_deref())
            .await?;
        if response.status != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_bearer_challenge);
        let Some(mut challenge) = challenge else {
            return Ok(response);
        };
        if let Some(scope) = &scope {
            challenge.entry("scope".into()).or_insert(scope.clone());
        }
        let token = self.fetch_token(&challenge).await?;
        if let Some(scope) = &scope {
            self.tokens
                .lock()
                .await
                .insert(scope.clone(), token.clone());
        }
        self.send(method, &url, accept, Some(&format!("Bearer {token}")))
            .await
    }

    /// A token from the challenge's realm (with the credentials, if any).
    async fn fetch_token(&self, challenge: &HashMap<String, String>) -> Result<String> {
        let realm = challenge.get("realm").cloned().unwrap_or_default();
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(self.failed(
                "/v2/",
                &format!("asks for a token from {realm:?}, which is not a URL"),
                "",
            ));
        }
        let mut query = Vec::new();
        for key in ["service", "scope"] {
            if let Some(value) = challenge.get(key) {
                query.push(format!("{key}={}", percent_encode(value)));
            }
        }
        let separator = if realm.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            realm.clone()
        } else {
            format!("{realm}{separator}{}", query.join("&"))
        };
        let basic = self.credentials.as_ref().map(Credentials::basic_header);
        let response = self.send(Method::GET, &url, "", basic.as_deref()).await?;
        if response.status == StatusCode::UNAUTHORIZED || response.status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized("/v2/ (token)"));
        }
        if !response.status.is_success() {
            return Err(self.unexpected("/v2/ (token)", response.status, &response.body));
        }
        let answer: TokenAnswer = serde_json::from_slice(&response.body)
            .map_err(|_| self.failed("/v2/ (token)", "sent a token answer that is not JSON", ""))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.failed("/v2/ (token)", "sent no token", ""))
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        accept: &str,
        authorization: Option<&str>,
    ) -> Result<Response> {
        let mut builder = Request::builder()
            .method(method)
            .uri(url)
            .header(header::USER_AGENT, "pachbuild-publish");
        if !accept.is_empty() {
            builder = builder.header(header::ACCEPT, accept);
        }
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let request = builder.body(Empty::<Bytes>::new()).map_err(|_| {
            // The error would repeat the URL only; never the header.
            self.failed(
                url,
                "cannot be asked: the URL is not valid",
                "check --registry",
            )
        })?;
        let exchange = async {
            let response = if url.starts_with("https://") {
                self.tls_client()?.request(request).await
            } else {
                self.plain.request(request).await
            }
            .map_err(|e| self.unreachable(url, &e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| self.failed(url, &format!("answer was cut ({e})"), "try again"))?
                .to_bytes();
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::Failed(format!(
                "the registry {} did not answer {url} within {} s\n  fix: check that it is running and reachable from here",
                self.registry,
                self.timeout.as_secs()
            ))),
        }
    }

    fn tls_client(&self) -> Result<&Tls> {
        if let Some(client) = self.tls.get() {
            return Ok(client);
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot reach the registry {} over HTTPS: no CA certificates could be loaded ({e})\n  fix: install the CA certificates (Debian: ca-certificates), or point SSL_CERT_FILE at a bundle",
                    self.registry
                ))
            })?
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector());
        let client = Client::builder(TokioExecutor::new()).build(https);
        let _ = self.tls.set(client);
        self.tls
            .get()
            .ok_or_else(|| Error::Failed("the HTTPS client could not be kept".into()))
    }

    fn unreachable(&self, url: &str, e: &hyper_util::client::legacy::Error) -> Error {
        // The innermost cause says the most (refused, unknown host, TLS).
        let mut cause = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            cause = inner.to_string();
            source = inner.source();
        }
        let cause = if cause.contains("Connection refused") {
            "connection refused (nothing listens there)".to_string()
        } else {
            cause
        };
        Error::Failed(format!(
            "cannot reach the registry {} at {url}: {cause}\n  fix: check that the registry runs and that --registry names it (host and port)",
            self.registry
        ))
    }

    fn unauthorized(&self, path: &str) -> Error {
        let (problem, fix) = match &self.credentials {
            Some(credentials) => (
                format!("refused the credentials ({credentials})"),
                "check the user name and password or token (and that it may push there)"
                    .to_string(),
            ),
            None => (
                "requires credentials and none were found".to_string(),
                format!(
                    "set REGISTRY_USERNAME and REGISTRY_PASSWORD, or `docker login {}`",
                    self.registry.host
                ),
            ),
        };
        Error::Failed(format!(
            "the registry {} {problem} (401 on {path})\n  fix: {fix}",
            self.registry
        ))
    }

    fn unexpected(&self, path: &str, status: StatusCode, body: &[u8]) -> Error {
        let said = String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_string();
        self.failed(
            path,
            &format!(
                "answered {status}{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            ),
            "",
        )
    }

    fn failed(&self, path: &str, problem: &str, fix: &str) -> Error {
        let mut message = format!("the registry {} ({path}) {problem}", self.registry);
        if !fix.is_empty() {
            message.push_str("\n  fix: ");
            message.push_str(fix);
        }
        Error::Failed(message)
    }
}

/// The parameters of a `Bearer` challenge (`realm`, `service`, `scope`), or
/// `None` for any other scheme.
pub fn parse_bearer_challenge(header: &str) -> Option<HashMap<String, String>> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(' ').unwrap_or((rest, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut found = HashMap::new();
    let mut chars = params.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        found.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some(found)
}

/// Percent-encodes a query value (unreserved characters pass).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges() {
        let c = parse_bearer_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/p:pull""#,
        )
        .unwrap();
        assert_eq!(c["realm"], "https://ghcr.io/token");
        assert_eq!(c["service"], "ghcr.io");
        assert_eq!(c["scope"], "repository:o/p:pull");
        let c = parse_bearer_challenge(r#"bearer realm="a\"b", service=x"#).unwrap();
        assert_eq!(c["realm"], "a\"b");
        assert_eq!(c["service"], "x");
        assert!(parse_bearer_challenge(r#"Basic realm="basic-realm""#).is_none());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            percent_encode("repository:o/p:pull,push"),
            "repository%3Ao%2Fp%3Apull%2Cpush"
        );
    }

    #[tokio::test]
    async fn an_unreachable_registry_fails_in_seconds_naming_it() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let registry = Registry::parse(&format!("127.0.0.1:{port}")).unwrap();
        let client = RegistryClient::new(&registry, None);
        let started = std::time::Instant::now();
        let e = client.check().await.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "{e}");
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(e.contains("connection refused"), "{e}");
    }

    #[tokio::test]
    async fn refused_credentials_are_named_not_shown() {
        // A one-shot server that answers 401 to everything.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"r\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            }
        });
        let registry = Registry::parse(&format!("127.0.0.1:{port}")).unwrap();
        let credentials = Credentials::new(
            "someone",
            "not-this-one",
            crate::registry::CredentialsSource::Environment,
        );
        let e = RegistryClient::new(&registry, Some(credentials))
            .check()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("refused the credentials"), "{e}");
        assert!(e.contains("someone"), "{e}");
        assert!(!e.contains("not-this-one"), "{e}");
        let e = RegistryClient::new(&registry, None)
            .check()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("requires credentials"), "{e}");
    }
}

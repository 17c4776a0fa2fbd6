//! Credentials for a registry: `REGISTRY_USERNAME` / `REGISTRY_PASSWORD`,
//! else the user's Docker config (`credHelpers`, `credsStore`, `auths`).
//!
//! A secret never appears in a message: [`Credentials`] prints as its user
//! name and where it came from, and errors name the source, not the value.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::registry::Registry;

/// The environment variables read first.
pub const ENV_USERNAME: &str = "REGISTRY_USERNAME";
pub const ENV_PASSWORD: &str = "REGISTRY_PASSWORD";

/// Where credentials were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsSource {
    Environment,
    /// `auths` of this Docker config file.
    DockerConfig(PathBuf),
    /// `docker-credential-<name>`.
    Helper(String),
}

impl fmt::Display for CredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialsSource::Environment => write!(f, "{ENV_USERNAME}/{ENV_PASSWORD}"),
            CredentialsSource::DockerConfig(path) => write!(f, "`auths` in {}", path.display()),
            CredentialsSource::Helper(name) => {
                write!(f, "the credential helper docker-credential-{name}")
            }
        }
    }
}

/// A user name and secret for one registry.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    secret: String,
    pub source: CredentialsSource,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user {:?} from {}", self.username, self.source)
    }
}

impl Credentials {
    pub fn new(username: &str, secret: &str, source: CredentialsSource) -> Credentials {
        Credentials {
            username: username.to_string(),
            secret: secret.to_string(),
            source,
        }
    }

    /// The secret, for the two places that send it: the engine's auth header
    /// and the registry's `Authorization` header.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `Basic base64(user:secret)`.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

/// What the lookup may read; the process's own by default, replaced in tests.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub env: HashMap<String, String>,
    /// The Docker config file (`$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`).
    pub config_file: Option<PathBuf>,
    /// Run credential helpers (off for `--dry-run`: nothing is contacted).
    pub run_helpers: bool,
    /// A folder searched for `docker-credential-*` before PATH (tests).
    pub helper_dir: Option<PathBuf>,
}

impl Lookup {
    /// This process's environment and Docker config.
    pub fn from_process() -> Lookup {
        let env: HashMap<String, String> = std::env::vars().collect();
        let config_file = env
            .get("DOCKER_CONFIG")
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join("config.json"))
            .or_else(|| {
                env.get("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| Path::new(h).join(".docker").join("config.json"))
            });
        Lookup {
            env,
            config_file,
            run_helpers: true,
            helper_dir: None,
        }
    }
}

/// The parts of a Docker config file we read (no `Debug`: it holds secrets).
#[derive(Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// A credential helper's answer to `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The credentials for `registry`, or `None` when there are none (the
/// registry may not need any).
pub fn resolve(registry: &Registry, lookup: &Lookup) -> Result<Option<Credentials>> {
    let user = lookup.env.get(ENV_USERNAME).filter(|v| !v.is_empty());
    let pass = lookup.env.get(ENV_PASSWORD).filter(|v| !v.is_empty());
    match (user, pass) {
        (Some(u), Some(p)) => {
            return Ok(Some(Credentials::new(u, p, CredentialsSource::Environment)))
        }
        (Some(_), None) | (None, Some(_)) => {
            let (set, unset) = if user.is_some() {
                (ENV_USERNAME, ENV_PASSWORD)
            } else {
                (ENV_PASSWORD, ENV_USERNAME)
            };
            return Err(Error::Usage(format!(
                "{set} is set but {unset} is not\n  fix: set both (or neither, to use your Docker config)"
            )));
        }
        (None, None) => {}
    }
    let Some(path) = &lookup.config_file else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read the Docker config", path, e)),
    };
    // The file's text may hold secrets: a parse error names the place, not the text.
    let config: DockerConfig = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{}: not a Docker config file (line {}, column {})\n  fix: repair it, or set {ENV_USERNAME}/{ENV_PASSWORD}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    from_config(registry, &config, path, lookup)
}

fn from_config(
    registry: &Registry,
    config: &DockerConfig,
    path: &Path,
    lookup: &Lookup,
) -> Result<Option<Credentials>> {
    let wanted = normalize_key(&registry.server_address());
    let helper = config
        .cred_helpers
        .iter()
        .find(|(key, _)| normalize_key(key) == wanted)
        .map(|(_, helper)| helper.clone())
        .or_else(|| config.creds_store.clone().filter(|s| !s.is_empty()));
    if let Some(helper) = helper {
        if lookup.run_helpers {
            let found = ask_helper(&helper, &registry.server_address(), lookup)?;
            if let Some(found) = found {
                return Ok(Some(found));
            }
        } else {
            // Not run (dry run): say where they would come from.
            return Ok(Some(Credentials::new(
                "",
                "",
                CredentialsSource::Helper(helper),
            )));
        }
    }
    let entry = config
        .auths
        .iter()
        .find(|(key, _)| normalize_key(key) == wanted)
        .map(|(_, entry)| entry);
    let Some(entry) = entry else {
        return Ok(None);
    };
    let source = CredentialsSource::DockerConfig(path.to_path_buf());
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        if !u.is_empty() {
            return Ok(Some(Credentials::new(u, p, source)));
        }
    }
    let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.as_deref().and_then(|pair| pair.split_once(':')) {
        Some((u, p)) => Ok(Some(Credentials::new(u, p, source))),
        None => Err(Error::Usage(format!(
            "{}: the `auth` of {} is not base64 of `user:password`\n  fix: log in again (`docker login {}`), or set {ENV_USERNAME}/{ENV_PASSWORD}",
            path.display(),
            registry.host,
            registry.host
        ))),
    }
}

/// Runs `docker-credential-<helper> get`. `None` when it has nothing for
/// this server.
fn ask_helper(helper: &str, server: &str, lookup: &Lookup) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let path = lookup
        .helper_dir
        .as_ref()
        .map(|dir| dir.join(&program))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(&program));
    let child = Command::new(&path)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Usage(format!(
                "the Docker config names the credential helper {program}, which is not installed\n  fix: install it, remove it from the Docker config, or set {ENV_USERNAME}/{ENV_PASSWORD}"
            )))
        }
        Err(e) => {
            return Err(Error::Failed(format!(
                "cannot run the credential helper {program}: {e}"
            )))
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| Error::Failed(format!("the credential helper {program} failed: {e}")))?;
    if !output.status.success() {
        // Helpers say "credentials not found" on stdout when they have none.
        let said = String::from_utf8_lossy(&output.stdout).to_lowercase();
        if said.contains("not found") {
            return Ok(None);
        }
        return Err(Error::Failed(format!(
            "the credential helper {program} failed for {server} ({})\n  fix: run `echo {server} | {program} get` to see why, or set {ENV_USERNAME}/{ENV_PASSWORD}",
            output.status
        )));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout).map_err(|_| {
        Error::Failed(format!(
            "the credential helper {program} gave an answer that is not its JSON for {server}"
        ))
    })?;
    Ok(Some(Credentials::new(
        &answer.username,
        &answer.secret,
        CredentialsSource::Helper(helper.to_string()),
    )))
}

/// A Docker config key reduced to `host[:port]` (lowercase): keys may be
/// written with a scheme and a path (`https://index.docker.io/v1/`).
fn normalize_key(key: &str) -> String {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = without_scheme.split('/').next().unwrap_or("");
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "registry-1.docker.io" => "index.docker.io".to_string(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(text: &str) -> Registry {
        Registry::parse(text).unwrap()
    }

    fn lookup(env: &[(&str, &str)], config: Option<&str>) -> (Lookup, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        if let Some(text) = config {
            std::fs::write(&path, text).unwrap();
        }
        let lookup = Lookup {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            config_file: Some(path),
            run_helpers: true,
            helper_dir: None,
        };
        (lookup, dir)
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn environment_comes_first() {
        let config = format!(
            r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{}"}}}}}}"#,
            b64("cfg:cfgpass")
        );
        let (lookup, _dir) = lookup(
            &[(ENV_USERNAME, "ci"), (ENV_PASSWORD, "s3cret")],
            Some(&config),
        );
        let found = resolve(&registry("127.0.0.1:5000"), &lookup)
            .unwrap()
            .unwrap();
        assert_eq!(found.username, "ci");
        assert_eq!(found.secret(), "s3cret");
        assert_eq!(found.source, CredentialsSource::Environment);
        assert_eq!(found.basic_header(), format!("Basic {}", b64("ci:s3cret")));
    }

    #[test]
    fn half_the_environment_is_an_error() {
        let (lookup, _dir) = lookup(&[(ENV_PASSWORD, "s3cret")], None);
        let e = resolve(&registry("127.0.0.1:5000"), &lookup).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(ENV_USERNAME), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT);
    }

    #[test]
    fn docker_config_auths_match_by_host() {
        let config = format!(
            r#"{{"auths": {{
                "https://ghcr.io/v2/": {{"auth": "{}"}},
                "127.0.0.1:5000": {{"username": "u", "password": "p:with:colons"}},
                "https://index.docker.io/v1/": {{"auth": "{}"}}
            }}}}"#,
            b64("gh:ghpass:x"),
            b64("hub:hubpass")
        );
        let (lookup, _dir) = lookup(&[], Some(&config));
        let gh = resolve(&registry("ghcr.io/org"), &lookup).unwrap().unwrap();
        assert_eq!((gh.username.as_str(), gh.secret()), ("gh", "ghpass:x"));
        assert!(matches!(gh.source, CredentialsSource::DockerConfig(_)));
        let local = resolve(&registry("127.0.0.1:5000/ns"), &lookup)
            .unwrap()
            .unwrap();
        assert_eq!(local.secret(), "p:with:colons");
        let hub = resolve(&registry("docker.io/me"), &lookup)
            .unwrap()
            .unwrap();
        assert_eq!(hub.username, "hub");
        assert!(resolve(&registry("quay.io"), &lookup).unwrap().is_none());
        assert!(resolve(&registry("127.0.0.1:5001"), &lookup)
            .unwrap()
            .is_none());
    }

    #[test]
    fn no_config_means_no_credentials() {
        let (lookup, _dir) = lookup(&[], None);
        assert!(resolve(&registry("ghcr.io"), &lookup).unwrap().is_none());
    }

    #[test]
    fn a_broken_config_names_the_file_and_not_its_text() {
        let (lookup, _dir) = lookup(&[], Some(r#"{"auths": {"x": "topsecret"#));
        let text = resolve(&registry("ghcr.io"), &lookup)
            .unwrap_err()
            .to_string();
        assert!(text.contains("config.json"), "{text}");
        assert!(!text.contains("topsecret"), "{text}");
    }

    #[test]
    fn a_missing_helper_says_which() {
        let config = r#"{"credHelpers": {"ghcr.io": "pachbuild-none-such"}}"#;
        let (lookup, _dir) = lookup(&[], Some(config));
        let text = resolve(&registry("ghcr.io"), &lookup)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("docker-credential-pachbuild-none-such"),
            "{text}"
        );
        // A helper for another registry is not asked.
        assert!(resolve(&registry("quay.io"), &lookup).unwrap().is_none());
    }

    #[test]
    fn a_helper_is_asked_with_the_server_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-pbtest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 3\n[ \"$server\" = ghcr.io ] || { echo 'credentials not found in native keychain'; exit 1; }\necho '{\"ServerURL\":\"ghcr.io\",\"Username\":\"hu\",\"Secret\":\"hs\"}'\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let config = DockerConfig {
            creds_store: Some("pbtest".into()),
            ..DockerConfig::default()
        };
        let mut lookup = Lookup {
            run_helpers: true,
            helper_dir: Some(dir.path().to_path_buf()),
            ..Lookup::default()
        };
        let gh = from_config(&registry("ghcr.io"), &config, dir.path(), &lookup)
            .unwrap()
            .unwrap();
        assert_eq!((gh.username.as_str(), gh.secret()), ("hu", "hs"));
        assert_eq!(gh.source, CredentialsSource::Helper("pbtest".into()));
        let quay = from_config(&registry("quay.io"), &config, dir.path(), &lookup);
        assert!(quay.unwrap().is_none());
        // A dry run names the helper and runs nothing.
        lookup.run_helpers = false;
        let dry = from_config(&registry("ghcr.io"), &config, dir.path(), &lookup)
            .unwrap()
            .unwrap();
        assert_eq!(dry.source, CredentialsSource::Helper("pbtest".into()));
    }

    #[test]
    fn debug_and_display_hide_the_secret() {
        let c = Credentials::new("me", "hunter2", CredentialsSource::Environment);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.to_string().contains("hunter2"));
        assert!(c.to_string().contains("REGISTRY_USERNAME"));
    }
}

//! Container registries: where builder images are published.
//!
//! - this file: the `--registry HOST[:PORT][/NAMESPACE]` argument, image
//!   references and tags, checked before anything runs;
//! - `credentials.rs`: who we are at a registry (environment, the user's
//!   Docker config and its credential helpers), never printed;
//! - `client.rs`: the registry's HTTP API (distribution spec: `/v2/`, tags
//!   list, manifests), read directly, with basic or token auth.
//!
//! Pushing itself goes through the engine (`engine/registry.rs`).

pub mod client;
pub mod credentials;

use std::fmt;

use crate::error::{Error, Result};

pub use client::{RegistryClient, RemoteManifest};
pub use credentials::{Credentials, CredentialsSource};

/// A registry and the namespace images are published under, as given to
/// `--registry`: `HOST[:PORT][/NAMESPACE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `host` or `host:port`, as written in image references.
    pub host: String,
    /// Path components between the host and the image name (may be empty).
    pub namespace: String,
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.host)
        } else {
            write!(f, "{}/{}", self.host, self.namespace)
        }
    }
}

impl Registry {
    /// Parses and checks `HOST[:PORT][/NAMESPACE]`.
    pub fn parse(text: &str) -> Result<Registry> {
        let bad = |problem: String, fix: &str| {
            Error::Usage(format!(
                "--registry {text:?}: {problem}\n  fix: {fix} (the form is HOST[:PORT][/NAMESPACE], e.g. `ghcr.io/my-org` or `127.0.0.1:5000`)"
            ))
        };
        if text.contains("://") {
            return Err(bad(
                "a registry is named without a scheme".into(),
                "drop the `http://` or `https://`",
            ));
        }
        let text_trimmed = text.trim_end_matches('/');
        let (host, namespace) = match text_trimmed.split_once('/') {
            Some((host, rest)) => (host, rest),
            None => (text_trimmed, ""),
        };
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        if name.is_empty() || !name.split('.').all(is_domain_component) {
            return Err(bad(
                format!("{host:?} is not a host name"),
                "use a host name or an IPv4 address",
            ));
        }
        if let Some(port) = port {
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad(
                    format!("{port:?} is not a port"),
                    "use a port number from 1 to 65535",
                ));
            }
        }
        // The engine reads a first component without `.` or `:` (other than
        // `localhost`) as a Docker Hub account, not as a registry.
        if port.is_none() && !name.contains('.') && name != "localhost" {
            return Err(bad(
                format!("{host:?} would be read as a Docker Hub account, not a registry"),
                "give the registry's full host name, or its port",
            ));
        }
        if !namespace.is_empty()
            && !namespace
                .split('/')
                .all(crate::builder::meta::is_image_name_component)
        {
            return Err(bad(
                format!("{namespace:?} is not a valid namespace"),
                "use lowercase letters, digits, `-`, `_`, `.`, with `/` between parts",
            ));
        }
        Ok(Registry {
            host: host.to_string(),
            namespace: namespace.to_string(),
        })
    }

    /// The repository (path on the registry) of an image name.
    pub fn repository(&self, image_name: &str) -> String {
        if self.namespace.is_empty() {
            image_name.to_string()
        } else {
            format!("{}/{image_name}", self.namespace)
        }
    }

    /// `host/namespace/name` (no tag).
    pub fn image(&self, image_name: &str) -> String {
        format!("{}/{}", self.host, self.repository(image_name))
    }

    /// The host and port without the port, for loopback checks.
    fn host_name(&self) -> &str {
        self.host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |(name, _)| name)
    }

    /// Whether the registry is on this machine's loopback, where the engine
    /// (and so this tool) speaks plain HTTP to it.
    pub fn is_loopback(&self) -> bool {
        let name = self.host_name();
        name == "localhost"
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Where the HTTP API is: `http://` on loopback, `https://` elsewhere;
    /// Docker Hub's API lives on its own host.
    pub fn api_base(&self) -> String {
        if self.is_docker_hub() {
            return "https://registry-1.docker.io".to_string();
        }
        let scheme = if self.is_loopback() { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }

    pub fn is_docker_hub(&self) -> bool {
        matches!(
            self.host.as_str(),
            "docker.io" | "index.docker.io" | "registry-1.docker.io"
        )
    }

    /// The server address credentials are stored under (Docker config keys,
    /// credential helpers, the engine's auth header).
    pub fn server_address(&self) -> String {
        if self.is_docker_hub() {
            "https://index.docker.io/v1/".to_string()
        } else {
            self.host.clone()
        }
    }
}

fn is_domain_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A valid image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b))
}

/// Checks a version to publish as a tag: a valid tag, and not `latest`
/// (which only `--latest` moves).
pub fn check_version(version: &str, whence: &str) -> Result<()> {
    if version == "latest" {
        return Err(Error::Usage(format!(
            "version {version:?} ({whence}) is not a version: `latest` moves with each release\n  fix: publish a version such as `0.1.0`; `--latest` moves `latest` to it"
        )));
    }
    if !is_valid_tag(version) {
        return Err(Error::Usage(format!(
            "version {version:?} ({whence}) is not a valid image tag\n  fix: use letters, digits, `_`, `.`, `-` (not first), at most 128 characters, e.g. `0.1.0`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_and_namespace() {
        let r = Registry::parse("127.0.0.1:5000").unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.namespace, "");
        assert_eq!(r.image("python-build"), "127.0.0.1:5000/python-build");
        assert!(r.is_loopback());
        assert_eq!(r.api_base(), "http://127.0.0.1:5000");

        let r = Registry::parse("ghcr.io/my-org/builders/").unwrap();
        assert_eq!(r.host, "ghcr.io");
        assert_eq!(r.namespace, "my-org/builders");
        assert_eq!(r.repository("go-build"), "my-org/builders/go-build");
        assert_eq!(r.to_string(), "ghcr.io/my-org/builders");
        assert!(!r.is_loopback());
        assert_eq!(r.api_base(), "https://ghcr.io");
        assert_eq!(r.server_address(), "ghcr.io");

        let r = Registry::parse("localhost:5000/ns").unwrap();
        assert!(r.is_loopback());

        let hub = Registry::parse("docker.io/someone").unwrap();
        assert_eq!(hub.api_base(), "https://registry-1.docker.io");
        assert_eq!(hub.server_address(), "https://index.docker.io/v1/");
    }

    #[test]
    fn refuses_what_the_engine_would_misread() {
        for bad in [
            "",
            "http://127.0.0.1:5000",
            "myregistry",
            "myregistry/ns",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "host.example:port",
            "-bad.example",
            "reg.example/Upper",
            "reg.example/a//b",
            "reg_x.example",
        ] {
            let e = Registry::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT, "{bad}");
            assert!(e.to_string().contains("fix:"), "{e}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["0.1.0", "v1", "1.2.3-rc.1", "_x", "A_b"] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in ["", ".1", "-1", "1+build", "a/b", "a:b", long.as_str()] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
        assert!(check_version("0.1.0", "builder.yaml").is_ok());
        let e = check_version("latest", "--version").unwrap_err();
        assert!(e.to_string().contains("--latest"), "{e}");
        let e = check_version("1.0+x", "--version").unwrap_err();
        assert!(e.to_string().contains("not a valid image tag"), "{e}");
        assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT);
    }
}

//! The CA bundle and proxy settings that containers receive, so that pip,
//! cargo, apt and curl work behind a TLS-intercepting proxy (ours, and
//! corporate ones). On by default when the host has a bundle.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Where the bundle is placed inside containers.
pub const CONTAINER_BUNDLE_DIR: &str = "/etc/pachbuild";
pub const CONTAINER_BUNDLE: &str = "/etc/pachbuild/ca-certificates.crt";

/// The host bundle looked for when none is named (Debian and Ubuntu's path;
/// `SSL_CERT_FILE` wins when set).
pub const HOST_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Variables that point tools at the bundle.
pub const BUNDLE_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "CARGO_HTTP_CAINFO",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
];

/// Proxy variables forwarded when set on the host.
pub const PROXY_VARIABLES: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
];

/// How the user asked for the bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BundleChoice {
    /// The host's bundle, when there is one.
    #[default]
    Auto,
    /// This file.
    Path(PathBuf),
    /// None (`--no-ca-bundle`).
    Off,
}

/// What containers that download receive.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The bundle's path on the host and its contents.
    pub bundle: Option<(PathBuf, Vec<u8>)>,
    /// Proxy variables (`KEY`, value) set on the host.
    pub proxy: Vec<(String, String)>,
}

impl Trust {
    /// Reads the bundle the user chose and the host's proxy variables.
    pub fn from_host(choice: &BundleChoice) -> Result<Trust> {
        let bundle = match choice {
            BundleChoice::Off => None,
            BundleChoice::Path(path) => {
                let bytes = std::fs::read(path).with_path("cannot read the CA bundle", path)?;
                check_pem(path, &bytes)?;
                Some((path.clone(), bytes))
            }
            BundleChoice::Auto => host_bundle_path()
                .and_then(|p| std::fs::read(&p).ok().map(|b| (p, b)))
                .filter(|(_, b)| b.windows(11).any(|w| w == b"BEGIN CERTI")),
        };
        let proxy = PROXY_VARIABLES
            .iter()
            .filter_map(|k| {
                std::env::var(k)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .map(|v| (k.to_string(), v))
            })
            .collect();
        Ok(Trust { bundle, proxy })
    }

    /// Environment for a container (`KEY=value`): the bundle variables when a
    /// bundle is forwarded, and the proxy variables.
    pub fn env(&self) -> Vec<String> {
        let mut env = Vec::new();
        if self.bundle.is_some() {
            env.extend(
                BUNDLE_VARIABLES
                    .iter()
                    .map(|k| format!("{k}={CONTAINER_BUNDLE}")),
            );
        }
        env.extend(self.proxy.iter().map(|(k, v)| format!("{k}={v}")));
        env
    }
}

/// The host bundle `Auto` picks: `SSL_CERT_FILE` when set and present, else
/// the first of [`HOST_BUNDLES`] that exists.
pub fn host_bundle_path() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| HOST_BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file()))
}

fn check_pem(path: &Path, bytes: &[u8]) -> Result<()> {
    if bytes
        .windows(27)
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{}: not a PEM CA bundle (no `-----BEGIN CERTIFICATE-----` line)\n  fix: pass a PEM file to --ca-bundle, or --no-ca-bundle",
            path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_gives_no_bundle_variables() {
        let trust = Trust::from_host(&BundleChoice::Off).unwrap();
        assert!(trust.bundle.is_none());
        assert!(!trust.env().iter().any(|e| e.starts_with("SSL_CERT_FILE=")));
    }

    #[test]
    fn a_named_bundle_is_read_and_pointed_at() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let trust = Trust::from_host(&BundleChoice::Path(path.clone())).unwrap();
        assert_eq!(trust.bundle.as_ref().unwrap().0, path);
        let env = trust.env();
        for var in BUNDLE_VARIABLES {
            assert!(
                env.contains(&format!("{var}={CONTAINER_BUNDLE}")),
                "{var} missing in {env:?}"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_pem_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "hello").unwrap();
        let err = Trust::from_host(&BundleChoice::Path(path)).unwrap_err();
        assert!(err.to_string().contains("not a PEM CA bundle"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_missing_bundle_names_the_path() {
        let err = Trust::from_host(&BundleChoice::Path("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}

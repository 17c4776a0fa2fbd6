//! How each datum of a job runs, from the spec and the command line: tries,
//! accepted exit codes, the time limit, the working directory, the error
//! command, empty-file inputs, secrets and the platform's environment
//! variables. The worker process reads these from the job volume (see
//! `worker::WORKER_SCRIPT`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::datum::Datum;
use crate::error::{Error, IoContext, Result};
use crate::spec::duration::parse_go_duration;
use crate::spec::model::Input;
use crate::spec::validate::non_empty;

use super::{Prepared, RunOptions};

/// The platform's default `datum_tries`.
pub const DEFAULT_DATUM_TRIES: u32 = 3;

/// How each datum runs.
#[derive(Debug, Clone, PartialEq)]
pub struct DatumSettings {
    pub tries: u32,
    pub accept: Vec<i64>,
    pub datum_timeout: Option<Duration>,
    pub job_timeout: Option<Duration>,
    pub working_dir: Option<String>,
    /// The user the worker (and so the command) runs as.
    pub user: Option<String>,
    /// Inputs whose files appear empty (`empty_files`).
    pub empty_inputs: Vec<String>,
    pub err_cmd: Vec<String>,
    pub err_stdin: Vec<String>,
    /// Variables from secrets (`env_var` + `key`).
    pub secret_env: Vec<(String, String)>,
    /// Files of secrets (`mount_path`): container path → content.
    pub secret_files: Vec<(String, Vec<u8>)>,
    /// The spec's hash: `PPS_SPEC_COMMIT`.
    pub spec_commit: String,
    /// `resource_limits`: memory (bytes) and CPUs of each worker.
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
}

impl DatumSettings {
    /// The settings of `prepared` run with `options`. Fails (bad input) when
    /// a secret has no local value or a time limit does not parse.
    pub fn new(prepared: &Prepared, options: &RunOptions) -> Result<DatumSettings> {
        let spec = &prepared.loaded.spec;
        let file = &prepared.loaded.path;
        let duration = |field: &str, value: &Option<String>| -> Result<Option<Duration>> {
            match non_empty(value) {
                None => Ok(None),
                Some(text) => match parse_go_duration(text) {
                    Ok(d) if d.is_zero() => Ok(None),
                    Ok(d) => Ok(Some(d)),
                    Err(why) => Err(Error::invalid(
                        file,
                        field,
                        format!("`{text}` is not a duration: {why}"),
                        "write it as the platform does, e.g. `\"30s\"` or `\"1h30m\"`",
                    )),
                },
            }
        };
        let tries = match (options.datums.tries, spec.datum_tries) {
            (Some(n), _) => n.max(1),
            (None, Some(n)) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => DEFAULT_DATUM_TRIES,
        };
        let mut empty_inputs = Vec::new();
        if let Some(input) = &spec.input {
            collect_empty_inputs(input, &mut empty_inputs);
        }
        let (secret_env, secret_files) = load_secrets(prepared, &options.datums.secrets)?;
        let spec_json = serde_json::to_vec(spec).unwrap_or_default();
        let (memory, cpus) = crate::spec::fields::resource_limits(spec);
        Ok(DatumSettings {
            tries,
            accept: spec.transform.accept_return_code.clone(),
            datum_timeout: match options.datums.datum_timeout {
                Some(limit) => Some(limit),
                None => duration("datum_timeout", &spec.datum_timeout)?,
            },
            job_timeout: duration("job_timeout", &spec.job_timeout)?,
            working_dir: non_empty(&spec.transform.working_dir).map(String::from),
            user: options
                .datums
                .user
                .clone()
                .or_else(|| non_empty(&spec.transform.user).map(String::from)),
            empty_inputs,
            err_cmd: spec.transform.err_cmd.clone(),
            err_stdin: spec.transform.err_stdin.clone(),
            secret_env,
            secret_files,
            spec_commit: hex32(&spec_json),
            memory,
            cpus,
        })
    }

    /// The worker's `settings` file: shell assignments it sources.
    pub fn settings_file(&self) -> Vec<u8> {
        let quote = crate::text::shell_quote;
        let accept: Vec<String> = self.accept.iter().map(i64::to_string).collect();
        let mut text = format!(
            "tries={}\naccept={}\nempty={}\n",
            self.tries,
            quote(&accept.join(" ")),
            quote(&self.empty_inputs.join(" ")),
        );
        if let Some(timeout) = self.datum_timeout {
            text.push_str(&format!("timeout={:.3}\n", timeout.as_secs_f64()));
        }
        if let Some(dir) = &self.working_dir {
            text.push_str(&format!("workdir={}\n", quote(dir)));
        }
        text.into_bytes()
    }

    /// The datum's time limit, for messages.
    pub fn timeout_text(&self) -> String {
        self.datum_timeout
            .map_or_else(|| "none".to_string(), duration_text)
    }

    /// The platform's environment of one datum, before `transform.env`.
    pub fn datum_env(
        &self,
        prepared: &Prepared,
        options: &RunOptions,
        datum: &Datum,
    ) -> Vec<String> {
        let job = options.run.as_str();
        let mut env = vec![
            format!("PPS_PIPELINE_NAME={}", prepared.pipeline_name),
            format!("PPS_SPEC_COMMIT={}", self.spec_commit),
            "PPS_NAMESPACE=default".to_string(),
            format!("PACH_JOB_ID={job}"),
            format!(
                "PACH_OUTPUT_COMMIT_ID={}",
                hex32(format!("output {job}").as_bytes())
            ),
            format!("PACH_DATUM_ID={}", datum.id()),
            "HOME=/root".to_string(),
        ];
        for part in &datum.parts {
            env.push(format!("{}={}", part.input_name, part.pfs_path()));
            env.push(format!(
                "{}_COMMIT={}",
                part.input_name,
                hex32(format!("input {job} {}", part.repo).as_bytes())
            ));
        }
        env.extend(self.secret_env.iter().map(|(k, v)| format!("{k}={v}")));
        env
    }
}

/// Checks that every secret of the spec has a local value (`--secret`),
/// before anything needs the engine: a missing one is bad input.
pub fn check_secrets(prepared: &Prepared, secrets: &BTreeMap<String, PathBuf>) -> Result<()> {
    load_secrets(prepared, secrets).map(|_| ())
}

/// A commit-like id: 32 hex digits of a hash.
fn hex32(bytes: &[u8]) -> String {
    crate::text::hex(&Sha256::digest(bytes)[..16])
}

fn collect_empty_inputs(input: &Input, out: &mut Vec<String>) {
    for pfs in input.pfs_inputs() {
        if pfs.empty_files {
            out.push(pfs.input_name().to_string());
        }
    }
}

/// The keys of a local secret: a folder of one file per key, or a file of
/// `KEY=VALUE` lines.
fn secret_keys(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut keys = BTreeMap::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).with_path("read folder", path)? {
            let entry = entry.with_path("read folder", path)?;
            if entry.file_type().with_path("read", entry.path())?.is_file() {
                let content = std::fs::read(entry.path()).with_path("read", entry.path())?;
                keys.insert(entry.file_name().to_string_lossy().into_owned(), content);
            }
        }
    } else {
        let text = std::fs::read_to_string(path).with_path("read", path)?;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once('=') {
                keys.insert(k.trim().to_string(), v.as_bytes().to_vec());
            }
        }
    }
    Ok(keys)
}

type SecretParts = (Vec<(String, String)>, Vec<(String, Vec<u8>)>);

fn load_secrets(prepared: &Prepared, given: &BTreeMap<String, PathBuf>) -> Result<SecretParts> {
    let file = &prepared.loaded.path;
    let (mut env, mut files) = (Vec::new(), Vec::new());
    for (i, secret) in prepared.loaded.spec.transform.secrets.iter().enumerate() {
        let field = format!("transform.secrets[{i}]");
        let Some(path) = given.get(&secret.name) else {
            return Err(Error::invalid(
                file,
                field,
                format!("secret `{}` has no local value", secret.name),
                format!(
                    "pass `--secret {}=PATH`: a folder of one file per key, or a file of KEY=VALUE lines",
                    secret.name
                ),
            ));
        };
        let keys = secret_keys(path).map_err(|e| {
            Error::invalid(
                file,
                field.clone(),
                format!("secret `{}`: {e}", secret.name),
                format!(
                    "point `--secret {}=PATH` at a folder or a file that exists",
                    secret.name
                ),
            )
        })?;
        if let (Some(var), Some(key)) = (non_empty(&secret.env_var), non_empty(&secret.key)) {
            let value = keys.get(key).ok_or_else(|| {
                Error::invalid(
                    file,
                    format!("{field}.key"),
                    format!(
                        "secret `{}` has no key `{key}` in {}",
                        secret.name,
                        path.display()
                    ),
                    format!(
                        "add `{key}` to the secret's folder (a file) or file (a line `{key}=...`)"
                    ),
                )
            })?;
            env.push((
                var.to_string(),
                String::from_utf8_lossy(value).trim_end().to_string(),
            ));
        }
        if let Some(mount) = non_empty(&secret.mount_path) {
            for (key, content) in &keys {
                files.push((
                    format!("{}/{key}", mount.trim_end_matches('/')),
                    content.clone(),
                ));
            }
        }
    }
    Ok((env, files))
}

/// `1.5s`, `30m`, `2h`: a limit as people write it.
pub fn duration_text(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 3600.0 && secs % 3600.0 == 0.0 {
        format!("{}h", secs / 3600.0)
    } else if secs >= 60.0 && secs % 60.0 == 0.0 {
        format!("{}m", secs / 60.0)
    } else {
        format!("{secs}s")
    }
}

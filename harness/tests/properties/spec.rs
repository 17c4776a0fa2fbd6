//! Spec parsing (`spec::parse_spec`, `load_spec`, `load_spec_from_reader`)
//! and the client's rules (`spec::problems`) on any input: no panic; every
//! error is bad input (exit code 2) and names the spec file.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use harness::error::exit;
use harness::spec::{self, LoadedSpec, PipelineSpec};
use harness::Error;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::{config, CASES};

/// The names a spec file may go by: JSON or YAML by extension.
fn file_name() -> impl Strategy<Value = PathBuf> {
    prop_oneof![
        Just(PathBuf::from("pipeline.json")),
        Just(PathBuf::from("dir/P.JSON")),
        Just(PathBuf::from("pipeline.yaml")),
        Just(PathBuf::from("a b/pipeline.yml")),
        Just(PathBuf::from("pipeline")),
    ]
}

/// Field names of the model, so that random objects often hit real fields.
const FIELDS: &[&str] = &[
    "pipeline",
    "name",
    "description",
    "transform",
    "image",
    "cmd",
    "stdin",
    "env",
    "build",
    "path",
    "language",
    "err_cmd",
    "err_stdin",
    "accept_return_code",
    "working_dir",
    "user",
    "secrets",
    "mount_path",
    "env_var",
    "key",
    "input",
    "pfs",
    "cross",
    "union",
    "cron",
    "join",
    "group",
    "repo",
    "glob",
    "branch",
    "empty_files",
    "lazy",
    "spec",
    "spout",
    "parallelism_spec",
    "constant",
    "coefficient",
    "datum_tries",
    "datum_timeout",
    "job_timeout",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(FIELDS).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// Strings that stress names, paths and messages: unicode, NUL, control
/// characters, near-valid names, durations.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_-]{1,8}",
        2 => any::<String>(),
        1 => Just(String::new()),
        1 => Just("build".to_string()),
        1 => Just("source".to_string()),
        1 => Just("a\0b".to_string()),
        1 => Just("ünï cødé ✓ \u{202e}".to_string()),
        1 => "[0-9.]{0,4}(h|m|s|ms|us|µs|ns|x|)[0-9.]{0,3}(s|)",
        1 => Just("1e400".to_string()),
        1 => (1usize..5000).prop_map(|n| "x".repeat(n)),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        (-3i64..300).prop_map(Value::from),
    ]
}

/// Any JSON value, keys often the model's.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value of the field's type most of the time, anything otherwise.
fn or_junk(typed: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![5 => typed, 1 => value()].boxed()
}

fn strings() -> impl Strategy<Value = Value> {
    proptest::collection::vec(text(), 0..4).prop_map(|v| json!(v))
}

/// An input tree: mostly well-formed nodes, sometimes several kinds in one
/// node, unknown kinds, empty lists, wrong types.
fn input() -> impl Strategy<Value = Value> {
    let pfs = (
        or_junk(text().prop_map(Value::String)),
        proptest::option::of(or_junk(text().prop_map(Value::String))),
        or_junk(
            prop_oneof![Just("/*".to_string()), Just("/".to_string()), text(),]
                .prop_map(Value::String),
        ),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(repo, name, glob, lazy)| {
            let mut pfs = json!({"repo": repo, "glob": glob});
            if let Some(name) = name {
                pfs["name"] = name;
            }
            if let Some(lazy) = lazy {
                pfs["lazy"] = json!(lazy);
            }
            json!({ "pfs": pfs })
        });
    let cron =
        (text(), text()).prop_map(|(name, spec)| json!({"cron": {"name": name, "spec": spec}}));
    let leaf = prop_oneof![
        6 => pfs,
        1 => cron,
        1 => Just(json!({})),
        1 => Just(json!({"pfs": {"repo": "a", "glob": "/*"}, "cron": {"name": "t", "spec": "@every 1s"}})),
        1 => value(),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        (
            proptest::sample::select(&["cross", "union", "join", "group", "outer"][..]),
            proptest::collection::vec(inner, 0..4),
        )
            .prop_map(|(kind, children)| json!({ kind: children }))
    })
}

/// A spec close to a valid one: each field usually of its type.
fn near_valid_spec() -> impl Strategy<Value = Value> {
    let build = proptest::option::of(or_junk(
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(prop_oneof![Just(".".to_string()), text()]),
        )
            .prop_map(|(language, image, path)| json!({"language": language, "image": image, "path": path})),
    ));
    let secret = (text(), proptest::option::of(text()), proptest::option::of(text()), proptest::option::of(text()))
        .prop_map(|(name, mount_path, env_var, key)| {
            json!({"name": name, "mount_path": mount_path, "env_var": env_var, "key": key})
        });
    let transform = (
        build,
        or_junk(strings()),
        or_junk(strings()),
        or_junk(
            proptest::collection::btree_map("[A-Z_]{1,6}", text(), 0..3).prop_map(|m| json!(m)),
        ),
        or_junk(proptest::collection::vec(-300i64..300, 0..3).prop_map(|v| json!(v))),
        or_junk(proptest::collection::vec(secret, 0..3).prop_map(Value::Array)),
        or_junk(strings()),
    )
        .prop_map(|(build, cmd, stdin, env, codes, secrets, err_stdin)| {
            let mut t = json!({"cmd": cmd, "stdin": stdin, "env": env,
                "accept_return_code": codes, "secrets": secrets, "err_stdin": err_stdin});
            if let Some(build) = build {
                t["build"] = build;
            }
            t
        });
    (
        or_junk(text().prop_map(|name| json!({ "name": name }))),
        or_junk(transform),
        proptest::option::of(input()),
        proptest::option::of(value()),
        proptest::option::of(or_junk((0u64..5).prop_map(|c| json!({"constant": c})))),
        proptest::option::of(or_junk(number())),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::collection::vec((key(), value()), 0..3),
    )
        .prop_map(
            |(
                pipeline,
                transform,
                input,
                spout,
                parallelism,
                tries,
                datum_timeout,
                job_timeout,
                extra,
            )| {
                let mut spec = Map::new();
                for (k, v) in extra {
                    spec.insert(k, v);
                }
                spec.insert("pipeline".into(), pipeline);
                spec.insert("transform".into(), transform);
                let optional = [
                    ("input", input),
                    ("spout", spout),
                    ("parallelism_spec", parallelism),
                    ("datum_tries", tries),
                    ("datum_timeout", datum_timeout.map(Value::String)),
                    ("job_timeout", job_timeout.map(Value::String)),
                ];
                for (k, v) in optional {
                    if let Some(v) = v {
                        spec.insert(k.into(), v);
                    }
                }
                Value::Object(spec)
            },
        )
}

/// Text that looks like YAML: lines of keys, lists, flow collections,
/// anchors, tags, block scalars and document markers.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        proptest::sample::select(FIELDS).prop_map(|f| format!("{f}:")),
        Just("- ".to_string()),
        Just("  ".to_string()),
        Just("\n".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(", ".to_string()),
        Just("&a ".to_string()),
        Just("*a ".to_string()),
        Just("!!str ".to_string()),
        Just("!!binary ".to_string()),
        Just("<<: ".to_string()),
        Just("? ".to_string()),
        Just("|\n".to_string()),
        Just(">-\n".to_string()),
        Just("---\n".to_string()),
        Just("...\n".to_string()),
        Just("# c\n".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("'x'".to_string()),
        Just("\t".to_string()),
        Just("~".to_string()),
        Just(".nan".to_string()),
        Just("0x1F".to_string()),
        Just("1e999".to_string()),
        text(),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

/// Checks what the brief of the parser promises about `result` for `file`.
fn check_parsed(result: &Result<PipelineSpec, Error>, file: &Path) -> Result<(), TestCaseError> {
    match result {
        Ok(spec) => check_problems(spec.clone(), file)?,
        Err(e) => check_bad_input(e, file)?,
    }
    Ok(())
}

/// A parse error is a syntax or field error of the file, exit code 2.
fn check_bad_input(e: &Error, file: &Path) -> Result<(), TestCaseError> {
    match e {
        Error::Syntax {
            file: f,
            line,
            column,
            ..
        } => {
            prop_assert_eq!(f, file);
            prop_assert!(*line >= 1 && *column >= 1, "{e}");
        }
        Error::Invalid { file: f, .. } => prop_assert_eq!(f, file),
        other => prop_assert!(false, "not a bad-input error: {other:?}"),
    }
    prop_assert_eq!(e.exit_code(), exit::BAD_INPUT);
    let text = e.to_string();
    prop_assert!(
        text.starts_with(&file.display().to_string()),
        "{text:?} does not start with {}",
        file.display()
    );
    Ok(())
}

/// The client's rules on any parsed spec: each problem is a field error of
/// the file, exit code 2; `validate` reports the first.
fn check_problems(spec: PipelineSpec, file: &Path) -> Result<(), TestCaseError> {
    let loaded = LoadedSpec {
        path: file.to_path_buf(),
        dir: std::env::temp_dir().join("pachbuild-properties-no-such-dir"),
        spec,
    };
    let problems = spec::problems(&loaded);
    for p in &problems {
        prop_assert!(
            matches!(p, Error::Invalid { file: f, .. } if f == file),
            "{p:?}"
        );
        prop_assert_eq!(p.exit_code(), exit::BAD_INPUT);
        let text = p.to_string();
        prop_assert!(text.starts_with(&file.display().to_string()), "{text}");
        prop_assert!(text.contains("fix: "), "{text}");
    }
    match (spec::validate(&loaded), problems.first()) {
        (Ok(()), None) => {}
        (Err(e), Some(first)) => prop_assert_eq!(e.to_string(), first.to_string()),
        (got, first) => prop_assert!(false, "validate {got:?} but first problem {first:?}"),
    }
    // Neither the list of unknown fields nor resolution may panic, and
    // what resolution refuses is bad input too.
    let _ = spec::validate::unknown_fields(&loaded.spec);
    let official = |lang: &str| (lang == "go").then(|| "1".to_string());
    if let Err(e) = spec::resolve(&loaded, "prefix", official) {
        prop_assert!(
            matches!(&e, Error::Invalid { file: f, .. } if f == file),
            "{e:?}"
        );
        prop_assert_eq!(e.exit_code(), exit::BAD_INPUT);
    }
    Ok(())
}

/// Equal JSON, floats up to the last digits (serde_json's float parsing is
/// not exact to the last bit).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn arbitrary_text_parses_or_is_bad_input(text in any::<String>(), file in file_name()) {
        check_parsed(&spec::parse_spec(&text, &file), &file)?;
    }

    #[test]
    fn arbitrary_bytes_parse_or_are_bad_input(bytes in proptest::collection::vec(any::<u8>(), 0..512), file in file_name()) {
        let text = String::from_utf8_lossy(&bytes);
        check_parsed(&spec::parse_spec(&text, &file), &file)?;
    }

    /// Stdin: any bytes, UTF-8 or not, JSON tried before YAML.
    #[test]
    fn stdin_bytes_parse_or_are_bad_input(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        value().prop_map(|v| v.to_string().into_bytes()),
        yamlish().prop_map(String::into_bytes),
    ]) {
        let result = spec::load_spec_from_reader(Cursor::new(bytes), PathBuf::from("."));
        check_parsed(&result.map(|l| l.spec), Path::new(spec::parse::STDIN_NAME))?;
    }

    /// A spec file on disk: any bytes, UTF-8 or not.
    #[test]
    fn spec_files_load_or_are_bad_input(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            near_valid_spec().prop_map(|v| v.to_string().into_bytes()),
        ],
        json in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(if json { "pipeline.json" } else { "pipeline.yaml" });
        std::fs::write(&file, &bytes).unwrap();
        check_parsed(&spec::load_spec(&file).map(|l| l.spec), &file)?;
    }

    #[test]
    fn any_json_value_parses_or_is_bad_input(v in value(), file in file_name(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
        check_parsed(&spec::parse_spec(&text, &file), &file)?;
    }

    /// Near-valid specs, as JSON and as YAML, go through the client's
    /// rules; a spec that loads from JSON loads the same from its own JSON.
    #[test]
    fn near_valid_specs_parse_validate_and_round_trip(v in near_valid_spec()) {
        let json_file = Path::new("p/pipeline.json");
        let parsed = spec::parse_spec(&v.to_string(), json_file);
        check_parsed(&parsed, json_file)?;
        if let Ok(spec) = &parsed {
            let again = spec::parse_spec(&serde_json::to_string(spec).unwrap(), json_file).unwrap();
            let (a, b) = (serde_json::to_value(&again).unwrap(), serde_json::to_value(spec).unwrap());
            prop_assert!(same(&a, &b), "{a:?}\n{b:?}");
        }
        let yaml_file = Path::new("p/pipeline.yaml");
        let yaml = harness::yaml::to_yaml_string(&v);
        check_parsed(&spec::parse_spec(&yaml, yaml_file), yaml_file)?;
    }

    #[test]
    fn yaml_looking_text_parses_or_is_bad_input(text in yamlish(), file in file_name()) {
        check_parsed(&spec::parse_spec(&text, &file), &file)?;
    }

    /// Deep nesting, as inputs (`cross` in `cross`...) and as bare arrays.
    #[test]
    fn deep_nesting_is_bad_input_or_fine(depth in 0usize..400, kind in proptest::sample::select(&["cross", "union", "join"][..]), yaml in any::<bool>()) {
        let mut inner = r#"{"pfs": {"repo": "a", "glob": "/*"}}"#.to_string();
        for _ in 0..depth {
            inner = format!(r#"{{"{kind}": [{inner}]}}"#);
        }
        let text = format!(
            r#"{{"pipeline": {{"name": "p"}}, "transform": {{"build": {{"language": "go"}}}}, "input": {inner}, "x": {}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let file = Path::new(if yaml { "deep.yaml" } else { "deep.json" });
        check_parsed(&spec::parse_spec(&text, file), file)?;
    }

}

proptest! {
    // Each case is megabytes of text: a few cases say what there is to say.
    #![proptest_config(config(CASES / 16))]

    /// Huge strings in every string field.
    #[test]
    fn huge_strings_are_fine(len in 10_000usize..300_000, c in any::<char>()) {
        let big: String = std::iter::repeat_n(c, len).collect();
        let v = json!({
            "pipeline": {"name": big},
            "transform": {"build": {"language": big, "path": big}, "cmd": [big], "env": {big.clone(): big}},
            "input": {"pfs": {"repo": big, "glob": big, "name": big}},
            "datum_timeout": big,
        });
        let file = Path::new("big.json");
        check_parsed(&spec::parse_spec(&v.to_string(), file), file)?;
    }

}

proptest! {
    #![proptest_config(config(CASES))]

    /// `datum_timeout` and `job_timeout`: any text is a duration or a reason.
    #[test]
    fn durations_parse_or_say_why(text in prop_oneof![
        any::<String>(),
        "[-+]?([0-9]{0,25}(\\.[0-9]{0,5})?(h|m|s|ms|us|µs|ns|d|)){0,4}",
    ]) {
        match spec::duration::parse_go_duration(&text) {
            Ok(d) => prop_assert!(d.as_secs_f64() <= 1e12),
            Err(why) => prop_assert!(!why.is_empty()),
        }
    }

    /// Sums of whole units parse to their value.
    #[test]
    fn whole_durations_add_up(h in 0u64..1000, m in 0u64..1000, s in 0u64..1000, ms in 0u64..1000) {
        let text = format!("{h}h{m}m{s}s{ms}ms");
        let d = spec::duration::parse_go_duration(&text).unwrap();
        let want = (h * 3600 + m * 60 + s) as f64 + ms as f64 / 1000.0;
        prop_assert!((d.as_secs_f64() - want).abs() < 1e-6, "{text}: {d:?}");
    }
}

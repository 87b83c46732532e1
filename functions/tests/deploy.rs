//! The deployment files agree with the binary, checked without Docker, PostgreSQL or RabbitMQ:
//! docker-compose.yml parses and gives the orderflow services only settings `orderflow` accepts,
//! with values it accepts; every path the Dockerfile copies is in the build context; and
//! .env.example lists exactly the accepted settings with their defaults. The accepted settings
//! come from the clap definition itself, so a renamed or new setting cannot drift unnoticed.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use clap::CommandFactory;
use orderflow::cli::Cli;
use serde_yaml_ng::Value;

/// The compose services that run the `orderflow` image.
const ORDERFLOW_SERVICES: [&str; 2] = ["api", "worker"];

/// Settings whose defaults (`localhost`) are wrong inside a container, so compose must set them.
const REQUIRED_IN_COMPOSE: [&str; 2] = ["DATABASE_URL", "AMQP_URL"];

/// A setting the binary reads from an environment variable.
struct Setting {
    /// Its `--flag`, without the dashes.
    long: String,
    /// Its default as `--help` shows it; `None` when it has none.
    default: Option<String>,
}

/// Every environment variable the `orderflow` command line accepts, by name.
fn accepted_settings() -> BTreeMap<String, Setting> {
    fn collect(command: &clap::Command, settings: &mut BTreeMap<String, Setting>) {
        for arg in command.get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let name = env.to_str().expect("environment variable names are UTF-8").to_owned();
            let long = arg.get_long().unwrap_or_else(|| panic!("{name} has no --flag")).to_owned();
            let defaults: Vec<_> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            let default = (!defaults.is_empty()).then(|| defaults.join(","));
            settings.insert(name, Setting { long, default });
        }
        for subcommand in command.get_subcommands() {
            collect(subcommand, settings);
        }
    }
    let mut settings = BTreeMap::new();
    collect(&Cli::command(), &mut settings);
    assert!(settings.contains_key("DATABASE_URL"), "the clap definition lost its env attributes");
    settings
}

/// Why `orderflow <args>` would refuse to start, if it would. The test process's own environment
/// is ignored, so only `args` count.
fn refusal(args: &[String]) -> Option<String> {
    let command = Cli::command().mut_args(|arg| arg.env(None::<&str>));
    let argv = std::iter::once("orderflow".to_owned()).chain(args.iter().cloned());
    command.try_get_matches_from(argv).err().map(|e| e.to_string().lines().next().unwrap_or_default().to_owned())
}

/// Why the binary would refuse `value` for `setting`, if it would.
fn value_refusal(setting: &Setting, value: &str) -> Option<String> {
    refusal(&[format!("--{}={value}", setting.long)])
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("functions/ sits in the workspace root").to_owned()
}

fn read(name: &str) -> String {
    let path = repo_root().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn report(what: &str, problems: &[String]) -> String {
    format!("{what}:\n  - {}", problems.join("\n  - "))
}

// ---- docker-compose.yml ----

/// A compose value as docker compose passes it when none of the variables it names is set:
/// `${NAME:-default}` and `${NAME-default}` give `default`; `${NAME}`, `$NAME` and
/// `${NAME:+alt}` give nothing; `$$` is a literal `$`.
fn interpolate_unset(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(|| format!("unclosed `${{` in `{value}`"))?;
            let inner = &braced[..end];
            let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
            let operator = &inner[name_len..];
            if let Some(default) = operator.strip_prefix(":-").or_else(|| operator.strip_prefix('-')) {
                if default.contains('$') {
                    return Err(format!("nested interpolation in `{value}` is not supported by this check"));
                }
                out.push_str(default);
            } else if operator.starts_with('?') || operator.starts_with(":?") {
                return Err(format!("`{value}` requires {} to be set", &inner[..name_len]));
            } else if !(operator.is_empty() || operator.starts_with('+') || operator.starts_with(":+")) {
                return Err(format!("cannot read the interpolation in `{value}`"));
            }
            rest = &braced[end + 1..];
        } else {
            let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if name_len == 0 {
                out.push('$');
            }
            rest = &after[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The variable a compose value requires, if the value is exactly `${NAME:?message}` or
/// `${NAME?message}`: compose refuses to start without NAME, printing the message, so there is
/// no value to check here.
fn required_variable(value: &str) -> Option<&str> {
    let inner = value.strip_prefix("${")?.strip_suffix('}')?;
    let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let (name, operator) = inner.split_at(name_len);
    (operator.starts_with(":?") || operator.starts_with('?')).then_some(name)
}

/// docker-compose.yml parsed, with its merge keys (`<<: *anchor`) resolved.
fn parsed_compose() -> Value {
    let mut compose: Value = serde_yaml_ng::from_str(&read("docker-compose.yml")).expect("docker-compose.yml parses");
    compose.apply_merge().expect("docker-compose.yml's merge keys resolve");
    compose
}

/// A YAML scalar as the string a container sees; `None` for a null (a value taken from the
/// shell that runs compose).
fn scalar(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(format!("not a scalar: {other:?}")),
    }
}

/// The environment a service sets, as written (before interpolation), with merges resolved.
fn service_environment(service: &Value) -> Result<Vec<(String, Option<String>)>, String> {
    match service.get("environment") {
        None => Ok(Vec::new()),
        Some(Value::Mapping(mapping)) => mapping
            .iter()
            .map(|(name, value)| {
                let name = name.as_str().ok_or_else(|| format!("a variable name is not a string: {name:?}"))?;
                Ok((name.to_owned(), scalar(value)?))
            })
            .collect(),
        Some(Value::Sequence(list)) => list
            .iter()
            .map(|entry| {
                let entry = entry.as_str().ok_or_else(|| format!("an entry is not a string: {entry:?}"))?;
                Ok(match entry.split_once('=') {
                    Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                    None => (entry.to_owned(), None),
                })
            })
            .collect(),
        Some(other) => Err(format!("`environment` is neither a mapping nor a list: {other:?}")),
    }
}

/// What is wrong with a docker-compose.yml for the orderflow services: unparsable YAML, a
/// variable the binary does not accept, a value it would refuse, an interpolation default that
/// differs from the binary's, or a command that is not a subcommand.
fn compose_problems(text: &str, settings: &BTreeMap<String, Setting>) -> Vec<String> {
    let mut compose: Value = match serde_yaml_ng::from_str(text) {
        Ok(value) => value,
        Err(e) => return vec![format!("docker-compose.yml is not valid YAML: {e}")],
    };
    if let Err(e) = compose.apply_merge() {
        return vec![format!("docker-compose.yml has a bad merge key (<<): {e}")];
    }
    let mut problems = Vec::new();
    for service_name in ORDERFLOW_SERVICES {
        let Some(service) = compose.get("services").and_then(|services| services.get(service_name)) else {
            problems.push(format!("service `{service_name}` is missing"));
            continue;
        };
        let environment = match service_environment(service) {
            Ok(environment) => environment,
            Err(e) => {
                problems.push(format!("{service_name}: {e}"));
                continue;
            }
        };
        let set: BTreeSet<&str> = environment.iter().map(|(name, _)| name.as_str()).collect();
        for required in REQUIRED_IN_COMPOSE {
            if !set.contains(required) {
                problems
                    .push(format!("{service_name}: does not set {required}, whose default is wrong in a container"));
            }
        }
        for (name, raw) in &environment {
            let Some(setting) = settings.get(name) else {
                problems.push(format!("{service_name}: sets {name}, which orderflow does not accept"));
                continue;
            };
            let Some(raw) = raw else { continue };
            if required_variable(raw).is_some() {
                continue;
            }
            let value = match interpolate_unset(raw) {
                Ok(value) => value,
                Err(e) => {
                    problems.push(format!("{service_name}: {name}: {e}"));
                    continue;
                }
            };
            if let Some(refusal) = value_refusal(setting, &value) {
                problems.push(format!("{service_name}: {name}={value:?} is refused: {refusal}"));
            }
            // `${NAME:-x}` promises the binary's default when NAME is unset; keep that promise.
            let own_default = raw
                .strip_prefix(&format!("${{{name}:-"))
                .or_else(|| raw.strip_prefix(&format!("${{{name}-")))
                .and_then(|rest| rest.strip_suffix('}'));
            if let (Some(compose_default), Some(binary_default)) = (own_default, &setting.default)
                && compose_default != binary_default
            {
                problems.push(format!(
                    "{service_name}: {name} defaults to {compose_default:?} here but to {binary_default:?} in the binary"
                ));
            }
        }
        match service.get("command").map(|command| serde_yaml_ng::from_value::<Vec<String>>(command.clone())) {
            None => problems.push(format!("{service_name}: no `command` (a list naming the subcommand)")),
            Some(Err(e)) => problems.push(format!("{service_name}: `command` is not a list of strings: {e}")),
            Some(Ok(args)) => {
                if let Some(refusal) = refusal(&args) {
                    problems.push(format!("{service_name}: `orderflow {}` is refused: {refusal}", args.join(" ")));
                }
            }
        }
    }
    problems
}

#[test]
fn docker_compose_yml_gives_orderflow_only_settings_it_accepts() {
    let problems = compose_problems(&read("docker-compose.yml"), &accepted_settings());

    assert!(problems.is_empty(), "{}", report("docker-compose.yml", &problems));
}

#[test]
fn docker_compose_yml_requires_an_admin_password_and_carries_no_secret() {
    let compose = parsed_compose();

    for service_name in ORDERFLOW_SERVICES {
        let environment = service_environment(&compose["services"][service_name]).unwrap();
        let value = |name: &str| environment.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        // Required with a message: compose stops with it when ADMIN_PASSWORD is unset.
        let admin_password = value("ADMIN_PASSWORD").flatten().expect("ADMIN_PASSWORD is set");
        assert_eq!(required_variable(&admin_password), Some("ADMIN_PASSWORD"), "{service_name}: {admin_password}");
        assert!(admin_password.len() > "${ADMIN_PASSWORD:?}".len() + 10, "{service_name}: no message");
        // Passed through from the shell or .env, or absent: never a value anyone can read here.
        assert_eq!(value("JWT_SECRET").flatten(), None, "{service_name}: JWT_SECRET has a value");
    }
}

#[test]
fn docker_compose_yml_publishes_postgres_and_rabbitmq_on_loopback_only() {
    let compose = parsed_compose();

    for service_name in ["db", "rabbitmq"] {
        let ports: Vec<String> = serde_yaml_ng::from_value(compose["services"][service_name]["ports"].clone()).unwrap();
        assert!(!ports.is_empty(), "{service_name} publishes no port");
        for port in ports {
            assert!(port.starts_with("127.0.0.1:"), "{service_name} publishes {port} beyond loopback");
        }
    }
}

#[test]
fn a_misspelled_setting_in_docker_compose_yml_is_reported() {
    let original = read("docker-compose.yml");
    let misspelled = original.replacen("DATABASE_URL:", "DATABSE_URL:", 1);
    assert_ne!(original, misspelled, "docker-compose.yml no longer sets DATABASE_URL as a mapping key");

    let problems = compose_problems(&misspelled, &accepted_settings());

    for service in ORDERFLOW_SERVICES {
        let expected = format!("{service}: sets DATABSE_URL, which orderflow does not accept");
        assert!(problems.contains(&expected), "{expected:?} not in {problems:#?}");
    }
}

#[test]
fn a_value_the_binary_refuses_in_docker_compose_yml_is_reported() {
    let original = read("docker-compose.yml");
    let broken = original.replacen("${PAYMENT_SUCCESS_RATE:-0.5}", "${PAYMENT_SUCCESS_RATE:-1.5}", 1);
    assert_ne!(original, broken, "docker-compose.yml no longer sets PAYMENT_SUCCESS_RATE as expected");

    let problems = compose_problems(&broken, &accepted_settings());

    assert!(problems.iter().any(|p| p.starts_with("api: PAYMENT_SUCCESS_RATE=\"1.5\" is refused")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("defaults to \"1.5\" here but to \"0.5\"")), "{problems:#?}");
}

#[test]
fn an_unparsable_docker_compose_yml_is_reported() {
    let problems = compose_problems("services:\n  api: [unclosed\n", &accepted_settings());

    assert!(problems.len() == 1 && problems[0].contains("not valid YAML"), "{problems:#?}");
}

// ---- Dockerfile and .dockerignore ----

/// Whether `pattern` (one path segment, `*` and `?` wildcards) matches `segment`.
fn segment_matches(pattern: &[u8], segment: &[u8]) -> bool {
    match (pattern.split_first(), segment.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            segment_matches(rest, segment) || (!segment.is_empty() && segment_matches(pattern, &segment[1..]))
        }
        (Some((b'?', rest)), Some((_, tail))) => segment_matches(rest, tail),
        (Some((p, rest)), Some((s, tail))) => p == s && segment_matches(rest, tail),
        _ => false,
    }
}

/// Whether `pattern` (segments, `**` for any number of them) matches `path` exactly.
fn path_matches(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| path_matches(rest, &path[skip..])),
        Some((first, rest)) => {
            path.first().is_some_and(|segment| segment_matches(first.as_bytes(), segment.as_bytes()))
                && path_matches(rest, &path[1..])
        }
    }
}

/// Whether .dockerignore keeps `path` (or a directory above it) out of the build context. Rules
/// apply in order, the last match wins, and `!` re-includes, as in Docker.
fn dockerignored(dockerignore: &str, path: &str) -> bool {
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let mut ignored = false;
    for line in dockerignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (include, pattern) = match line.strip_prefix('!') {
            Some(pattern) => (true, pattern.trim()),
            None => (false, line),
        };
        let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
        if (1..=path.len()).any(|depth| path_matches(&pattern, &path[..depth])) {
            ignored = !include;
        }
    }
    ignored
}

/// The Dockerfile's instructions: comments dropped, continuation lines joined.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        // Docker drops comment and empty lines, also inside a continued instruction.
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(continued) => {
                current.push_str(continued);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, arguments) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
                instructions.push((keyword.to_ascii_uppercase(), arguments.trim().to_owned()));
                current.clear();
            }
        }
    }
    instructions
}

/// An instruction's arguments in exec (JSON) form, or `None` in shell form.
fn exec_form(arguments: &str) -> Option<Vec<String>> {
    arguments.starts_with('[').then(|| serde_json::from_str(arguments).ok()).flatten()
}

/// What is wrong with a Dockerfile: a path copied from the build context that does not exist or
/// that .dockerignore excludes; and, in the final (runtime) stage, an ENV the binary does not
/// accept or a CMD it would refuse.
fn dockerfile_problems(
    dockerfile: &str,
    dockerignore: &str,
    root: &Path,
    settings: &BTreeMap<String, Setting>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let instructions = instructions(dockerfile);
    let final_stage = instructions.iter().rposition(|(keyword, _)| keyword == "FROM").unwrap_or(0);
    let mut copied = 0;
    for (index, (keyword, arguments)) in instructions.iter().enumerate() {
        match keyword.as_str() {
            "COPY" | "ADD" => {
                let mut words = arguments.split_whitespace().peekable();
                let mut from_stage = false;
                while let Some(flag) = words.next_if(|word| word.starts_with("--")) {
                    from_stage |= flag.starts_with("--from");
                }
                if from_stage {
                    continue;
                }
                let rest: Vec<&str> = words.collect();
                let paths = exec_form(&rest.join(" ")).unwrap_or_else(|| rest.iter().map(|&s| s.to_owned()).collect());
                let Some((_destination, sources)) = paths.split_last() else {
                    problems.push(format!("{keyword} {arguments}: no source"));
                    continue;
                };
                for source in sources {
                    copied += 1;
                    if source.contains(['*', '?', '[']) {
                        problems.push(format!("{keyword} {source}: wildcards are not resolved by this check"));
                    } else if !root.join(source).exists() {
                        problems.push(format!("{keyword} {source}: no such path in the repository"));
                    } else if dockerignored(dockerignore, source) {
                        problems.push(format!("{keyword} {source}: excluded from the build context by .dockerignore"));
                    }
                }
            }
            "ENV" if index > final_stage => {
                for pair in arguments.split_whitespace() {
                    let Some((name, value)) = pair.split_once('=') else {
                        problems.push(format!("ENV {arguments}: write ENV NAME=value"));
                        break;
                    };
                    match settings.get(name) {
                        None => problems.push(format!("ENV {name}: orderflow does not accept it")),
                        Some(setting) => {
                            if let Some(refusal) = value_refusal(setting, value.trim_matches('"')) {
                                problems.push(format!("ENV {name}={value} is refused: {refusal}"));
                            }
                        }
                    }
                }
            }
            "ENTRYPOINT" if index > final_stage && exec_form(arguments) != Some(vec!["orderflow".to_owned()]) => {
                problems.push(format!("ENTRYPOINT {arguments}: expected [\"orderflow\"]"));
            }
            "CMD" if index > final_stage => match exec_form(arguments) {
                None => problems.push(format!("CMD {arguments}: use the exec (JSON) form")),
                Some(args) => {
                    if let Some(refusal) = refusal(&args) {
                        problems.push(format!("CMD {arguments}: `orderflow {}` is refused: {refusal}", args.join(" ")));
                    }
                }
            },
            _ => {}
        }
    }
    if copied == 0 {
        problems.push("the Dockerfile copies nothing from the build context".to_owned());
    }
    problems
}

#[test]
fn every_path_the_dockerfile_copies_is_in_the_build_context() {
    let problems = dockerfile_problems(&read("Dockerfile"), &read(".dockerignore"), &repo_root(), &accepted_settings());

    assert!(problems.is_empty(), "{}", report("Dockerfile", &problems));
}

#[test]
fn a_missing_or_dockerignored_copy_source_is_reported() {
    let dockerfile = read("Dockerfile");
    let broken = dockerfile.replacen("COPY .sqlx .sqlx\n", "COPY .sqlx .sqlx\nCOPY config.toml ./\n", 1);
    assert_ne!(dockerfile, broken, "the Dockerfile no longer copies .sqlx");
    let dockerignore = format!("{}\n.sqlx\n", read(".dockerignore"));

    let problems = dockerfile_problems(&broken, &dockerignore, &repo_root(), &accepted_settings());

    assert!(problems.contains(&"COPY config.toml: no such path in the repository".to_owned()), "{problems:#?}");
    assert!(
        problems.contains(&"COPY .sqlx: excluded from the build context by .dockerignore".to_owned()),
        "{problems:#?}"
    );
}

#[test]
fn dockerignore_patterns_match_as_docker_matches_them() {
    let rules = "target\n**/target\n*.png\n.sqlx/*.json\n!.sqlx/keep.json\n";

    assert!(dockerignored(rules, "target/release/orderflow"));
    assert!(dockerignored(rules, "functions/target"));
    assert!(dockerignored(rules, "shot.png"));
    assert!(!dockerignored(rules, "docs/shot.png"));
    assert!(dockerignored(rules, ".sqlx/query-1.json"));
    assert!(!dockerignored(rules, ".sqlx/keep.json"));
    assert!(!dockerignored(rules, ".sqlx"));
    assert!(!dockerignored(rules, "migrations"));
}

// ---- .env.example ----

/// What is wrong with an .env.example: a setting listed twice, missing, or unknown to the binary;
/// a value other than the binary's default or one it would refuse. A setting without a default
/// must be commented out (`# NAME=`), because an empty value counts as set.
fn env_example_problems(text: &str, settings: &BTreeMap<String, Setting>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (commented, entry) = match line.strip_prefix('#') {
            Some(comment) => (true, comment.trim_start()),
            None => (false, line),
        };
        let assignment = entry.split_once('=').filter(|(name, _)| {
            name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        });
        let Some((name, value)) = assignment else {
            if !commented {
                problems.push(format!("`{line}` is neither a comment nor NAME=value"));
            }
            continue;
        };
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        if !listed.insert(name.to_owned()) {
            problems.push(format!("{name} is listed twice"));
        }
        let Some(setting) = settings.get(name) else {
            problems.push(format!("{name} is not a setting orderflow accepts"));
            continue;
        };
        match (&setting.default, commented) {
            (None, false) => problems.push(format!("{name} has no default: write `# {name}=` (empty counts as set)")),
            // A value here would be a published secret or password that people copy.
            (None, true) if !value.is_empty() => problems.push(format!("{name} has no default: leave it empty")),
            (None, true) => {}
            (Some(default), _) if value != default => {
                problems.push(format!("{name}={value:?}, but the binary's default is {default:?}"));
            }
            (Some(_), _) => {
                if let Some(refusal) = value_refusal(setting, value) {
                    problems.push(format!("{name}={value:?} is refused: {refusal}"));
                }
            }
        }
    }
    for name in settings.keys().filter(|name| !listed.contains(*name)) {
        problems.push(format!("{name} is missing"));
    }
    problems
}

#[test]
fn env_example_lists_exactly_the_settings_the_binary_accepts_with_their_defaults() {
    let problems = env_example_problems(&read(".env.example"), &accepted_settings());

    assert!(problems.is_empty(), "{}", report(".env.example", &problems));
}

#[test]
fn a_missing_or_unknown_setting_in_env_example_is_reported() {
    let original = read(".env.example");
    let broken = original.replacen("\nMAX_RETRIES=3\n", "\nMAX_RETRY=3\n", 1);
    assert_ne!(original, broken, ".env.example no longer lists MAX_RETRIES=3");

    let problems = env_example_problems(&broken, &accepted_settings());

    assert!(problems.contains(&"MAX_RETRY is not a setting orderflow accepts".to_owned()), "{problems:#?}");
    assert!(problems.contains(&"MAX_RETRIES is missing".to_owned()), "{problems:#?}");
}

#[test]
fn an_example_value_for_a_setting_without_default_in_env_example_is_reported() {
    let original = read(".env.example");
    let broken = original.replacen("\n# JWT_SECRET=\n", "\n# JWT_SECRET=copy-me-into-production\n", 1);
    assert_ne!(original, broken, ".env.example no longer lists `# JWT_SECRET=`");

    let problems = env_example_problems(&broken, &accepted_settings());

    assert!(problems.contains(&"JWT_SECRET has no default: leave it empty".to_owned()), "{problems:#?}");
}

#[test]
fn compose_interpolation_is_read_as_docker_compose_reads_it_when_nothing_is_set() {
    assert_eq!(interpolate_unset("${A:-0 * * * * *}"), Ok("0 * * * * *".to_owned()));
    assert_eq!(interpolate_unset("${A-x}/${B}/$C/$$/${D:+y}"), Ok("x///$/".to_owned()));
    assert_eq!(
        interpolate_unset("amqp://guest:guest@rabbitmq:5672/%2f"),
        Ok("amqp://guest:guest@rabbitmq:5672/%2f".to_owned())
    );
    assert!(interpolate_unset("${A:?must be set}").is_err());
    assert_eq!(required_variable("${A:?must be set}"), Some("A"));
    assert_eq!(required_variable("${A?must be set}"), Some("A"));
    assert_eq!(required_variable("${A:-x}"), None);
    assert_eq!(required_variable("x${A:?must be set}"), None);
}

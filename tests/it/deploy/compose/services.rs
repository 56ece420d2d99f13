//! The compose files read as the checks need them: each service's image,
//! command line, environment, ports and health check, with the TLS
//! override merged on top as Compose merges it.

use std::collections::BTreeMap;

use serde_norway::Value;

use crate::deploy::binaries::Var;

/// One service of the compose file, as far as these checks need it.
#[derive(Debug, Default)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) image: Option<String>,
    pub(crate) entrypoint: Vec<String>,
    pub(crate) command: Vec<String>,
    pub(crate) environment: Vec<Var>,
    /// Container ports from `ports`.
    pub(crate) published: Vec<u16>,
    /// Container ports from `ports` and `expose`.
    pub(crate) container_ports: Vec<u16>,
    pub(crate) volumes: Vec<String>,
    pub(crate) healthcheck: Option<Vec<String>>,
    pub(crate) depends_on: Vec<(String, String)>,
    pub(crate) stop_grace_period: Option<String>,
}

impl Service {
    pub(crate) fn var(&self, name: &str) -> Option<&str> {
        self.environment
            .iter()
            .find(|var| var.name == name)
            .and_then(|var| var.value.as_deref())
    }

    pub(crate) fn image_is(&self, repository: &str) -> bool {
        self.image
            .as_deref()
            .is_some_and(|image| image.starts_with(&format!("{repository}:")))
    }

    pub(crate) fn arguments(&self) -> Vec<String> {
        self.entrypoint[1..]
            .iter()
            .chain(&self.command)
            .cloned()
            .collect()
    }
}

/// The services of `files` (a compose file and its overrides), merged as
/// Compose merges them.
pub(crate) fn parse(
    files: &[&str],
    problems: &mut Vec<String>,
) -> Option<BTreeMap<String, Service>> {
    let mut root = Value::Null;
    for (i, file) in files.iter().enumerate() {
        let mut value: Value = match serde_norway::from_str(file) {
            Ok(value) => value,
            Err(error) => {
                problems.push(format!("compose file {i}: not YAML: {error}"));
                return None;
            }
        };
        // `<<: *cafe-image` merges the shared image and build into each service.
        if let Err(error) = value.apply_merge() {
            problems.push(format!("compose file {i}: merge keys: {error}"));
            return None;
        }
        overlay(&mut root, value, "");
    }
    let Some(services) = root.get("services").and_then(Value::as_mapping) else {
        problems.push("no `services`".into());
        return None;
    };
    let mut parsed = BTreeMap::new();
    for (name, body) in services {
        let name = scalar(name).unwrap_or_default();
        let mut service = Service {
            name: name.clone(),
            image: body.get("image").and_then(scalar),
            ..Service::default()
        };
        service.entrypoint = exec_form(&name, "entrypoint", body.get("entrypoint"), problems);
        service.command = exec_form(&name, "command", body.get("command"), problems);
        match body.get("environment") {
            None => {}
            Some(Value::Mapping(vars)) => {
                for (var, value) in vars {
                    service.environment.push(Var {
                        name: scalar(var).unwrap_or_default(),
                        value: scalar(value),
                    });
                }
            }
            Some(_) => problems.push(format!("{name}: write `environment` as a map (VAR: value)")),
        }
        for (key, published) in [("ports", true), ("expose", false)] {
            for port in body
                .get(key)
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                let text = scalar(port).unwrap_or_default();
                let text = text.trim_end_matches("/tcp");
                let container = if published {
                    text.rsplit(':').next().unwrap_or(text)
                } else {
                    text
                };
                match container.parse() {
                    Ok(port) => {
                        service.container_ports.push(port);
                        if published {
                            service.published.push(port);
                        }
                    }
                    Err(_) => {
                        problems.push(format!("{name}: cannot read the port {text:?} in {key}"))
                    }
                }
            }
        }
        service.volumes = body
            .get("volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(scalar)
            .collect();
        if let Some(test) = body.get("healthcheck").and_then(|check| check.get("test")) {
            service.healthcheck = Some(exec_form(&name, "healthcheck test", Some(test), problems));
        }
        match body.get("depends_on") {
            None => {}
            Some(Value::Mapping(deps)) => {
                for (dependency, how) in deps {
                    let condition = how
                        .get("condition")
                        .and_then(scalar)
                        .unwrap_or_else(|| "service_started".into());
                    service
                        .depends_on
                        .push((scalar(dependency).unwrap_or_default(), condition));
                }
            }
            Some(_) => problems.push(format!(
                "{name}: write depends_on as a map with a condition for each"
            )),
        }
        service.stop_grace_period = body.get("stop_grace_period").and_then(scalar);
        parsed.insert(name, service);
    }
    Some(parsed)
}

/// An entrypoint, command or health check must be a list (exec form): a
/// string goes through a shell, which splits and expands it, and which would
/// sit between Docker's SIGTERM and our server.
pub(crate) fn exec_form(
    service: &str,
    what: &str,
    value: Option<&Value>,
    problems: &mut Vec<String>,
) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| scalar(item).unwrap_or_default())
            .collect(),
        Some(_) => {
            problems.push(format!("{service}: write `{what}` as a list (exec form)"));
            Vec::new()
        }
    }
}

pub(crate) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Merges an override file's `value` into `base` the way Compose does: maps
/// key by key (`environment`, `healthcheck`), `volumes` by the path they
/// mount at (an override's mount replaces the base's at the same path),
/// `ports` and `expose` appended, anything else (a `command`, a health
/// check's `test`) replaced.
pub(crate) fn overlay(base: &mut Value, value: Value, key: &str) {
    match (base, value) {
        (Value::Mapping(base), Value::Mapping(value)) => {
            for (k, v) in value {
                let name = scalar(&k).unwrap_or_default();
                match base.get_mut(&k) {
                    Some(existing) => overlay(existing, v, &name),
                    None => {
                        base.insert(k, v);
                    }
                }
            }
        }
        (Value::Sequence(base), Value::Sequence(value)) if key == "volumes" => {
            let target = |v: &Value| scalar(v).and_then(|v| v.split(':').nth(1).map(str::to_owned));
            for volume in value {
                base.retain(|existing| target(existing) != target(&volume));
                base.push(volume);
            }
        }
        (Value::Sequence(base), Value::Sequence(value)) if key == "ports" || key == "expose" => {
            base.extend(value);
        }
        (base, value) => *base = value,
    }
}

/// `host:port` of an address, without `http://` or `https://`.
pub(crate) fn without_scheme(address: &str) -> &str {
    address
        .strip_prefix("https://")
        .or_else(|| address.strip_prefix("http://"))
        .unwrap_or(address)
}

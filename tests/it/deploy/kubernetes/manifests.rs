//! The manifests as the checks read them: the tree of files under
//! `deploy/kubernetes/`, the objects each kustomization gathers, and each
//! workload's pod template.

use std::{collections::BTreeMap, path::Path};

use serde_norway::{Mapping, Value};

use crate::deploy::binaries::{Var, root};

/// The text of every file under `deploy/kubernetes/`, by path relative to
/// it, so that a test can break one in memory.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub(crate) files: BTreeMap<String, String>,
}

impl Tree {
    pub(crate) fn load() -> Tree {
        let base = root().join("deploy/kubernetes");
        let mut files = BTreeMap::new();
        let mut dirs = vec![base.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    // CI's throwaway combinations.
                    continue;
                }
                if path.is_dir() {
                    dirs.push(path);
                } else if name.ends_with(".yaml") {
                    files.insert(
                        relative(&base, &path),
                        std::fs::read_to_string(&path).unwrap(),
                    );
                }
            }
        }
        Tree { files }
    }

    pub(crate) fn documents(&self, file: &str, problems: &mut Vec<String>) -> Vec<Value> {
        let Some(text) = self.files.get(file) else {
            problems.push(format!("{file}: no such file"));
            return Vec::new();
        };
        // One object per `---`-separated document.
        let mut documents = Vec::new();
        let mut document = String::new();
        for line in text.lines().chain(["---"]) {
            if line.trim_end() != "---" {
                document.push_str(line);
                document.push('\n');
                continue;
            }
            match serde_norway::from_str::<Value>(&document) {
                Ok(Value::Null) => {}
                Ok(value) => documents.push(value),
                Err(error) => problems.push(format!("{file}: not YAML: {error}")),
            }
            document.clear();
        }
        documents
    }
}

pub(crate) fn relative(base: &Path, path: &Path) -> String {
    path.strip_prefix(base)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

/// Joins `dir/path`, resolving `..`, as a key of [`Tree::files`].
pub(crate) fn join(dir: &str, path: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// Everything the kustomizations bring together.
#[derive(Debug, Default)]
pub(crate) struct Objects {
    /// (file, object) for every resource.
    pub(crate) resources: Vec<(String, Value)>,
    /// (file, object) for every strategic-merge patch.
    pub(crate) patches: Vec<(String, Value)>,
    /// Generated Secrets: name -> key -> value.
    pub(crate) secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// The image names kustomize sets (`images:`).
    pub(crate) images: Vec<String>,
}

pub(crate) fn collect(tree: &Tree, problems: &mut Vec<String>) -> Objects {
    let mut objects = Objects::default();
    for (file, _) in tree
        .files
        .iter()
        .filter(|(f, _)| f.ends_with("kustomization.yaml"))
    {
        let dir = file
            .trim_end_matches("kustomization.yaml")
            .trim_end_matches('/');
        for kustomization in tree.documents(file, problems) {
            for resource in seq(kustomization.get("resources")) {
                let Some(path) = resource.as_str() else {
                    continue;
                };
                let target = join(dir, path);
                if path.ends_with(".yaml") {
                    for object in tree.documents(&target, problems) {
                        objects.resources.push((target.clone(), object));
                    }
                } else if !tree
                    .files
                    .contains_key(&format!("{target}/kustomization.yaml"))
                {
                    problems.push(format!("{file}: resource {path} is no kustomization"));
                }
            }
            for component in seq(kustomization.get("components")) {
                let target = join(dir, component.as_str().unwrap_or_default());
                if !tree
                    .files
                    .contains_key(&format!("{target}/kustomization.yaml"))
                {
                    problems.push(format!("{file}: component {target} is no kustomization"));
                }
            }
            for patch in seq(kustomization.get("patches")) {
                let Some(path) = patch.get("path").and_then(Value::as_str) else {
                    continue;
                };
                let target = join(dir, path);
                for object in tree.documents(&target, problems) {
                    objects.patches.push((target.clone(), object));
                }
            }
            for generator in seq(kustomization.get("secretGenerator")) {
                let name = text(&generator, &["name"]).unwrap_or_default();
                let entries = objects.secrets.entry(name).or_default();
                for literal in seq(generator.get("literals")) {
                    if let Some((key, value)) = literal.as_str().and_then(|l| l.split_once('=')) {
                        entries.insert(key.to_owned(), value.to_owned());
                    }
                }
            }
            for image in seq(kustomization.get("images")) {
                objects.images.extend(text(&image, &["name"]));
            }
        }
    }
    objects
}

/// A workload: a Deployment or StatefulSet, with its pod template.
pub(crate) struct Workload<'a> {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) file: &'a str,
    pub(crate) spec: &'a Value,
    pub(crate) pod: &'a Value,
    pub(crate) labels: Mapping,
}

impl Workload<'_> {
    pub(crate) fn containers(&self) -> Vec<Value> {
        seq(self.pod.get("spec").and_then(|s| s.get("containers")))
    }

    pub(crate) fn who(&self, container: &Value) -> String {
        format!(
            "{} {}/{} ({})",
            self.kind,
            self.name,
            text(container, &["name"]).unwrap_or_default(),
            self.file
        )
    }

    pub(crate) fn container_ports(&self) -> BTreeMap<String, u16> {
        let mut ports = BTreeMap::new();
        for container in self.containers() {
            for port in seq(container.get("ports")) {
                let number = port
                    .get("containerPort")
                    .and_then(as_port)
                    .unwrap_or_default();
                ports.insert(number.to_string(), number);
                if let Some(name) = text(&port, &["name"]) {
                    ports.insert(name, number);
                }
            }
        }
        ports
    }
}

pub(crate) fn environment(container: &Value) -> Vec<Var> {
    seq(container.get("env"))
        .iter()
        .map(|var| Var {
            name: text(var, &["name"]).unwrap_or_default(),
            value: var.get("value").map(value_text),
        })
        .collect()
}

pub(crate) fn kind(object: &Value) -> String {
    text(object, &["kind"]).unwrap_or_default()
}

pub(crate) fn name(object: &Value) -> String {
    text(object, &["metadata", "name"]).unwrap_or_default()
}

pub(crate) fn seq(value: Option<&Value>) -> Vec<Value> {
    value
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default()
}

pub(crate) fn text(value: &Value, path: &[&str]) -> Option<String> {
    let mut value = value;
    for key in path {
        value = value.get(*key)?;
    }
    value.as_str().map(str::to_owned)
}

/// A scalar as text: `grpc`, `50051`, `true`.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

pub(crate) fn as_port(value: &Value) -> Option<u16> {
    value.as_u64().and_then(|port| u16::try_from(port).ok())
}

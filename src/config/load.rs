//! Loading: YAML file, then `STREAMGATE__SECTION__KEY` environment overrides.
//!
//! The environment is injected (any iterator of pairs) so tests never touch the
//! process environment.

use super::{Config, Problem};
use serde_norway::Value;
use std::path::Path;

/// Prefix of environment overrides; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "STREAMGATE__";

/// A source of environment variables: `std::env::vars()` in production, a vec in tests.
pub trait Lookup: IntoIterator<Item = (String, String)> {}
impl<T: IntoIterator<Item = (String, String)>> Lookup for T {}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// File that failed.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// YAML syntax error, wrong type or unknown key.
    #[error("config: {0}")]
    Parse(String),
    /// Semantic problems, each with its key path.
    #[error("{} config problem(s):\n{}", .0.len(), render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads `file` (if any), applies env overrides, and deserializes. Does not validate.
/// Unknown keys are a [`ConfigError::Parse`] naming each key path.
pub fn load(file: Option<&Path>, env: impl Lookup) -> Result<Config, ConfigError> {
    let (config, unknown) = load_lenient(file, env)?;
    if unknown.is_empty() {
        return Ok(config);
    }
    Err(ConfigError::Parse(
        unknown.iter().map(Problem::to_string).collect::<Vec<_>>().join("; "),
    ))
}

/// Like [`load`], but unknown keys are left out and returned as problems with their
/// key paths, so `streamgate validate` can list them together with every other problem.
pub fn load_lenient(file: Option<&Path>, env: impl Lookup) -> Result<(Config, Vec<Problem>), ConfigError> {
    let mut tree = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            parse_yaml(&text)?
        }
        None => Value::Mapping(Default::default()),
    };
    let defaults = serde_norway::to_value(Config::default()).map_err(|e| ConfigError::Parse(e.to_string()))?;
    let mut overrides: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    overrides.sort();
    for (name, raw) in overrides {
        apply_override(&mut tree, &defaults, &name, &raw)?;
    }
    let mut unknown = Vec::new();
    take_unknown_keys(&mut tree, &defaults, "", &mut unknown);
    let config = serde_norway::from_value(tree).map_err(|e| ConfigError::Parse(e.to_string()))?;
    Ok((config, unknown))
}

/// Removes from `tree` every key the defaults do not have, recording its dotted path.
/// Sections (mappings in the defaults) are walked; other values are left to serde.
/// An empty mapping in the defaults is a free-form map (`auth.refresh.extra_params`),
/// not a section: its keys are the user's.
fn take_unknown_keys(tree: &mut Value, defaults: &Value, prefix: &str, found: &mut Vec<Problem>) {
    let (Some(map), Some(known)) = (tree.as_mapping_mut(), defaults.as_mapping()) else {
        return;
    };
    if known.is_empty() {
        return;
    }
    let mut unknown = Vec::new();
    for (key, value) in map.iter_mut() {
        let Some(name) = key.as_str() else { continue };
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        match known.get(name) {
            Some(default) => take_unknown_keys(value, default, &path, found),
            None => unknown.push((key.clone(), path)),
        }
    }
    for (key, path) in unknown {
        map.remove(&key);
        let expected: Vec<&str> = known.keys().filter_map(Value::as_str).collect();
        found.push(Problem {
            path,
            message: format!("unknown key (expected one of: {})", expected.join(", ")),
        });
    }
}

fn parse_yaml(text: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Mapping(Default::default()));
    }
    let value: Value = serde_norway::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
    match value {
        Value::Null => Ok(Value::Mapping(Default::default())),
        Value::Mapping(_) => Ok(value),
        _ => Err(ConfigError::Parse("the top level must be a mapping of sections".into())),
    }
}

/// Sets `STREAMGATE__A__B=raw` at path `a.b`. Keys whose default is a string (or
/// unset) take `raw` verbatim, so a numeric-looking secret stays a string; other
/// keys parse `raw` as YAML (`8080`, `true`, `[a, b]`).
fn apply_override(tree: &mut Value, defaults: &Value, name: &str, raw: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = name[ENV_PREFIX.len()..]
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if path.iter().any(|s| s.is_empty()) {
        return Err(ConfigError::Parse(format!("{name}: empty path segment")));
    }
    let default = path.iter().try_fold(defaults, |v, key| v.get(key.as_str()));
    let value = match default {
        Some(Value::String(_)) | Some(Value::Null) => Value::String(raw.to_string()),
        _ => serde_norway::from_str(raw).map_err(|e| ConfigError::Parse(format!("{name}: {e}")))?,
    };
    let mut node = tree;
    for key in &path[..path.len() - 1] {
        let map = node
            .as_mapping_mut()
            .ok_or_else(|| ConfigError::Parse(format!("{name}: {key} is not a section")))?;
        node = map
            .entry(Value::String(key.clone()))
            .or_insert_with(|| Value::Mapping(Default::default()));
    }
    let map = node
        .as_mapping_mut()
        .ok_or_else(|| ConfigError::Parse(format!("{name}: parent is not a section")))?;
    map.insert(Value::String(path[path.len() - 1].clone()), value);
    Ok(())
}

//! Reading the layers: the shipped defaults, the file, the `ZTV_…` environment variables.

use config::{Config, Environment, File, FileFormat};

use super::raw::RawSettings;
use super::{ConfigError, DEFAULT_TOML, Sources};

/// Top-level keys that environment variables may set; any other `ZTV_…` variable
/// (`ZTV_CONFIG`, `ZTV_TEST_…`) is not configuration and is ignored.
const ENV_SECTIONS: &[&str] = &[
    "log_format",
    "server",
    "database",
    "auth",
    "signing",
    "zoom",
    "accounts",
    "end_users",
    "cors",
    "rate_limit",
    "cache",
    "grants",
    "webhooks",
    "audit",
    "telemetry",
];

/// Keys whose environment form is a comma-separated list.
const ENV_LIST_KEYS: &[&str] = &["cors.allowed_origins", "end_users.scopes"];

pub(super) fn read_raw(sources: &Sources) -> Result<RawSettings, ConfigError> {
    let mut builder = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    if let Some(path) = &sources.file {
        if !path.is_file() {
            return Err(ConfigError(format!(
                "config file {}: not found",
                path.display()
            )));
        }
        builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
    }
    let mut env: config::Map<String, String> = sources
        .env
        .iter()
        .filter(|(name, _)| is_config_env(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Lists are split here: the `config` crate splits only when it also parses every other
    // value, which would turn a secret such as `0123` into a number.
    let mut lists = Vec::new();
    for key in ENV_LIST_KEYS {
        let name = format!("ZTV_{}", key.to_ascii_uppercase().replace('.', "__"));
        if let Some(value) = env.remove(&name) {
            let items: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect();
            lists.push((*key, items));
        }
    }
    builder = builder.add_source(
        Environment::with_prefix("ZTV")
            .prefix_separator("_")
            .separator("__")
            .source(Some(env)),
    );
    for (key, items) in lists {
        builder = builder.set_override(key, items).map_err(describe)?;
    }
    let config = builder.build().map_err(describe)?;
    config.try_deserialize::<RawSettings>().map_err(describe)
}

fn is_config_env(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("ZTV_") else {
        return false;
    };
    let section = rest.split("__").next().unwrap_or("").to_ascii_lowercase();
    ENV_SECTIONS.contains(&section.as_str())
}

/// Phrases a `config` crate error as `key: problem`, never echoing a value (it may be a secret).
fn describe(err: config::ConfigError) -> ConfigError {
    use config::ConfigError as E;
    let text = match err {
        E::Type {
            key,
            unexpected,
            expected,
            ..
        } => {
            // The value itself is never shown: it may be a secret put under the wrong key.
            // (`Unexpected` cannot be named outside the crate, hence its Debug variant name.)
            let variant = format!("{unexpected:?}");
            let found = match variant.split('(').next().unwrap_or("") {
                "Str" => "a string",
                "Bool" => "a boolean",
                "I64" | "I128" | "U64" | "U128" => "an integer",
                "Float" => "a number",
                "Seq" => "a list",
                "Map" => "a table",
                _ => "nothing",
            };
            format!(
                "{}: expected {expected}, found {found}",
                key.unwrap_or_else(|| "(root)".into())
            )
        }
        E::At { error, key, .. } => match key {
            Some(key) => format!("{key}: {}", strip_for_key(&error.to_string())),
            None => error.to_string(),
        },
        E::FileParse { uri, cause } => format!(
            "config file {}: {}",
            uri.unwrap_or_default(),
            cause.to_string().lines().next().unwrap_or("cannot parse")
        ),
        other => other.to_string(),
    };
    ConfigError(text)
}

fn strip_for_key(message: &str) -> String {
    message.replace("unknown field", "unknown key")
}

// ---------------------------------------------------------------------------------------------
// Raw shape: everything optional, unknown keys refused. Secrets are `SecretString` from here on.

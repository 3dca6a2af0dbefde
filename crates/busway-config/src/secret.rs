//! Resolving secret values: a literal, or `env:NAME` read from the environment at load time.
//!
//! Reading the environment once, at load, means a missing variable is a configuration error with
//! a line number rather than a failed handshake later; and error messages name the variable,
//! never a value.

use crate::model::Secret;

/// Resolves `raw` using `env` to look variables up (the real environment outside tests).
pub(crate) fn resolve_secret(
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, String> {
    let value = match raw.strip_prefix("env:") {
        Some(name) => {
            if name.is_empty() {
                return Err("\"env:\" needs a variable name, as in \"env:BUSWAY_SECRET\"".into());
            }
            env(name).ok_or_else(|| format!("environment variable {name} is not set"))?
        }
        None => raw.to_string(),
    };
    if value.is_empty() {
        // An empty secret would silently mean "anyone who also has an empty secret": refuse it.
        return Err(match raw.strip_prefix("env:") {
            Some(name) => format!("environment variable {name} is empty"),
            None => "a secret cannot be empty".to_string(),
        });
    }
    Ok(Secret::new(value))
}

/// The process environment, as [`resolve_secret`] wants it.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(name: &str) -> Option<String> {
        match name {
            "SET" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn literal_and_env_values() {
        assert_eq!(resolve_secret("lit", &fake).unwrap().expose(), "lit");
        assert_eq!(resolve_secret("env:SET", &fake).unwrap().expose(), "s3cret");
    }

    #[test]
    fn errors_name_the_variable_not_a_value() {
        assert_eq!(
            resolve_secret("env:MISSING", &fake).unwrap_err(),
            "environment variable MISSING is not set"
        );
        assert!(resolve_secret("env:EMPTY", &fake)
            .unwrap_err()
            .contains("EMPTY is empty"));
        assert!(resolve_secret("env:", &fake).unwrap_err().contains("name"));
        assert!(resolve_secret("", &fake).unwrap_err().contains("empty"));
    }
}

//! The PCE API key and secret. The secret is never printed: not by `Debug`,
//! not in errors, not in logs.

use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use serde::Deserialize;

/// As written in the YAML: `"KEY:SECRET"`, `"$cat FILE"` (the file holds
/// `KEY:SECRET`), or `{key: …, secret: …}` where either may be `$cat FILE`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawApiKey {
    Combined(String),
    Split { key: String, secret: String },
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key: String,
    secret: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ApiKey {
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        ApiKey {
            key: key.into(),
            secret: secret.into(),
        }
    }

    #[cfg(test)]
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The value of an HTTP `Authorization: Basic …` header.
    pub fn basic_auth_header(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}:{}", self.key, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    pub(super) fn resolve(raw: RawApiKey, base: &Path) -> Result<ApiKey, String> {
        match raw {
            RawApiKey::Combined(text) => {
                let text = expand_cat(&text, base)?;
                let (key, secret) = split_key_secret(&text).ok_or_else(|| {
                    "must be KEY:SECRET, KEY SECRET, or key and secret on two lines — inline or \
                     in the file of `$cat FILE` — or a mapping with `key` and `secret`"
                        .to_owned()
                })?;
                Self::checked(key, secret)
            }
            RawApiKey::Split { key, secret } => {
                let key = expand_cat(&key, base)?;
                let secret = expand_cat(&secret, base)?;
                Self::checked(key.trim(), secret.trim())
            }
        }
    }

    fn checked(key: &str, secret: &str) -> Result<ApiKey, String> {
        if key.is_empty() || secret.is_empty() {
            return Err("key and secret must both be non-empty".to_owned());
        }
        Ok(ApiKey::new(key, secret))
    }
}

/// The forms FlowLink users write: `KEY:SECRET`, `KEY SECRET` (any
/// whitespace, so also key and secret on two lines), trailing newline or
/// not. API keys and secrets contain no whitespace; a secret may contain `:`.
fn split_key_secret(text: &str) -> Option<(&str, &str)> {
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(one), None, None) => one.split_once(':'),
        (Some(key), Some(secret), None) => Some((key.strip_suffix(':').unwrap_or(key), secret)),
        _ => None,
    }
}

/// FlowLink's `$cat FILE`: the value is the content of FILE (trimmed).
fn expand_cat(value: &str, base: &Path) -> Result<String, String> {
    let Some(file) = value.trim().strip_prefix("$cat ") else {
        return Ok(value.to_owned());
    };
    let path = base.join(file.trim());
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| {
            format!(
                "`$cat {}`: cannot read {}: {e}",
                file.trim(),
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let key = ApiKey::new("api_1", "s3cret-value");
        assert!(!format!("{key:?}").contains("s3cret"));
    }

    #[test]
    fn all_three_forms_resolve() {
        let tmp = tempfile::Builder::new()
            .prefix("flowlink-apikey-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("both"), "k1:s1\n").unwrap();
        std::fs::write(dir.join("secret"), "s2\n").unwrap();
        let combined = ApiKey::resolve(RawApiKey::Combined("k0:s0".into()), dir).unwrap();
        assert_eq!((combined.key.as_str(), combined.secret()), ("k0", "s0"));
        let cat = ApiKey::resolve(RawApiKey::Combined("$cat both".into()), dir).unwrap();
        assert_eq!((cat.key.as_str(), cat.secret()), ("k1", "s1"));
        let split = ApiKey::resolve(
            RawApiKey::Split {
                key: "k2".into(),
                secret: "$cat secret".into(),
            },
            dir,
        )
        .unwrap();
        assert_eq!((split.key.as_str(), split.secret()), ("k2", "s2"));
        for (file, text) in [
            ("space", "k3 s3"),
            ("tab", "k3\t s3\n"),
            ("lines", "k3\ns3\n"),
            ("crlf", "k3\r\ns3"),
            ("colon-space", "k3: s3\n"),
            ("colon-nl", "k3:s3"),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
            let got = ApiKey::resolve(RawApiKey::Combined(format!("$cat {file}")), dir).unwrap();
            assert_eq!((got.key.as_str(), got.secret()), ("k3", "s3"), "{file}");
        }
        std::fs::write(dir.join("colons"), "k4:s:4\n").unwrap();
        let colons = ApiKey::resolve(RawApiKey::Combined("$cat colons".into()), dir).unwrap();
        assert_eq!(colons.secret(), "s:4");
        std::fs::write(dir.join("three"), "k5 hunter2-secret extra\n").unwrap();
        let bad = ApiKey::resolve(RawApiKey::Combined("$cat three".into()), dir).unwrap_err();
        assert!(
            bad.contains("KEY SECRET") && bad.contains("two lines"),
            "{bad}"
        );
        assert!(!bad.contains("hunter2"), "never echoes the secret: {bad}");
        let missing = ApiKey::resolve(RawApiKey::Combined("$cat nope".into()), dir).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }
}

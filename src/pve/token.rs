//! The API token: `user@realm!name` plus a secret that never appears in Debug, Display or logs.
//! The `Authorization` header value is built per request from the secret and marked sensitive.

use std::fmt;

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::error::Error;

/// A validated PVE API token. `Debug` shows the id and `[REDACTED]` for the secret.
#[derive(Clone)]
pub struct ApiToken {
    id: String,
    secret: SecretString,
}

impl ApiToken {
    /// Validates `id` (`user@realm!name`, name matching `[A-Za-z][A-Za-z0-9._-]+`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming what is wrong with the id (never the secret).
    pub fn new(id: impl Into<String>, secret: SecretString) -> Result<ApiToken, Error> {
        let id = id.into();
        validate_id(&id)?;
        let s = secret.expose_secret();
        if s.trim().is_empty() {
            return Err(Error::invalid(format!(
                "the secret of api token {id} is empty; set the token secret (a uuid shown once when the token was created)"
            )));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::invalid(format!(
                "the secret of api token {id} contains whitespace or control characters; check for a stray newline or space"
            )));
        }
        Ok(ApiToken { id, secret })
    }

    /// Parses `user@realm!name=secret` (the form of `$PROXMOX_MANAGER_TOKEN`), splitting at the
    /// last `=` like PVE does. A leading `PVEAPIToken=` is accepted and ignored.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when there is no `=` or the id is malformed.
    pub fn parse_env(s: &str) -> Result<ApiToken, Error> {
        let s = s.trim();
        let s = s.strip_prefix("PVEAPIToken=").unwrap_or(s);
        let Some((id, secret)) = s.rsplit_once('=') else {
            return Err(Error::invalid(
                "api token must look like user@realm!tokenname=secret (no '=' found)",
            ));
        };
        ApiToken::new(id, SecretString::from(secret.to_owned()))
    }

    /// `user@realm!name`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `user@realm` of the token's owner.
    pub fn user(&self) -> &str {
        self.id.split_once('!').map_or(self.id.as_str(), |(u, _)| u)
    }

    /// The header value `PVEAPIToken=<id>=<secret>`, marked sensitive so hyper never logs it.
    pub(crate) fn header_value(&self) -> Result<HeaderValue, Error> {
        let mut value = HeaderValue::from_str(&format!(
            "PVEAPIToken={}={}",
            self.id,
            self.secret.expose_secret()
        ))
        .map_err(|_| {
            Error::invalid(format!(
                "api token {} cannot be sent in an http header (non-ascii characters in id or secret)",
                self.id
            ))
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

fn validate_id(id: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "invalid api token id {id:?}: {why}; expected user@realm!tokenname, e.g. claude-code@pve!automation"
        ))
    };
    let (user, name) = id
        .split_once('!')
        .ok_or_else(|| bad("missing '!' before the token name"))?;
    let (uname, realm) = user
        .rsplit_once('@')
        .ok_or_else(|| bad("the user part needs @realm"))?;
    if uname.is_empty() || realm.is_empty() {
        return Err(bad("empty user or realm"));
    }
    if user
        .chars()
        .any(|c| c.is_whitespace() || c == ':' || c == '=')
    {
        return Err(bad("the user part contains whitespace, ':' or '='"));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok =
        name.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok {
        return Err(bad(
            "the token name must match [A-Za-z][A-Za-z0-9._-]+ (at least 2 characters)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_env_splits_at_last_equals() -> Result<(), Error> {
        let t =
            ApiToken::parse_env("claude-code@pve!automation=5e2c1f0a-1b2c-4d5e-8f90-123456789abc")?;
        // split at the last '=': an '=' inside the id part is then invalid, not a secret prefix
        assert!(ApiToken::parse_env("claude-code@pve!automation=abc=def").is_err());
        assert_eq!(t.id(), "claude-code@pve!automation");
        assert_eq!(t.user(), "claude-code@pve");
        let hv = t.header_value()?;
        assert!(hv.is_sensitive());
        assert_eq!(
            hv.to_str().ok(),
            Some("PVEAPIToken=claude-code@pve!automation=5e2c1f0a-1b2c-4d5e-8f90-123456789abc")
        );
        let t = ApiToken::parse_env("PVEAPIToken=root@pam!admin=5e2c\n")?;
        assert_eq!(t.id(), "root@pam!admin");
        Ok(())
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in [
            "root@pam=secret",
            "root!tok=secret",
            "@pam!tok=secret",
            "root@!tok=secret",
            "root@pam!1tok=secret",
            "root@pam!t=secret",
            "root@pam!to/k=secret",
            "root@pam!tok=",
            "no-equals-sign",
        ] {
            assert!(ApiToken::parse_env(bad).is_err(), "accepted {bad:?}");
        }
        assert!(ApiToken::parse_env("root@pam!a.b_c-d=s").is_ok());
    }

    #[test]
    fn debug_redacts_secret() -> Result<(), Error> {
        let t = ApiToken::parse_env("root@pam!admin=supersecretvalue")?;
        let dbg = format!("{t:?}");
        assert!(dbg.contains("[REDACTED]"), "{dbg}");
        assert!(dbg.contains("root@pam!admin"), "{dbg}");
        assert!(!dbg.contains("supersecretvalue"), "{dbg}");
        let err = ApiToken::new("bad", SecretString::from("supersecretvalue".to_owned()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("invalid api token id"), "{err}");
        assert!(!err.contains("supersecretvalue"));
        Ok(())
    }
}

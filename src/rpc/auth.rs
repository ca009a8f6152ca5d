//! The bearer token of the pool's RPC: its file, and the HTTP middleware that tells each call
//! whether its request carried it.
//!
//! The middleware runs on every HTTP request and on the WebSocket upgrade request, and marks the
//! request's extensions with a [`Caller`]; jsonrpsee hands those extensions to each method call
//! of that request (for a WebSocket, to every call on the connection), and the appending
//! methods refuse anything but [`Caller::Authorized`]. Tokens are compared in constant time.

use anyhow::Context;
use jsonrpsee::server::HttpRequest;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

/// What the request's `Authorization` header said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No `Authorization: Bearer ...` header.
    NoToken,
    WrongToken,
    Authorized,
}

/// The secret, as the file holds it (trimmed).
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Reads the token file, or creates it (mode 0600, 32 random bytes as hex) if missing.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Token> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let token = text.trim();
                if token.is_empty() {
                    anyhow::bail!("the RPC token file {} is empty", path.display());
                }
                let mode = std::fs::metadata(path)
                    .map(|m| m.permissions().mode())
                    .unwrap_or(0);
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        file = %path.display(),
                        "the RPC token file is readable by other users (mode {:o}); chmod 600 it",
                        mode & 0o777
                    );
                }
                Ok(Token(token.as_bytes().into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Token::create(path),
            Err(e) => {
                Err(e).with_context(|| format!("cannot read the RPC token file {}", path.display()))
            }
        }
    }

    fn create(path: &Path) -> anyhow::Result<Token> {
        use rand::RngCore;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let token = hex::encode(secret);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create the RPC token file {}", path.display()))?;
        file.write_all(format!("{token}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write the RPC token file {}", path.display()))?;
        tracing::info!(file = %path.display(), "RPC token file created (mode 0600)");
        Ok(Token(token.into_bytes().into()))
    }

    /// What a request's `Authorization` header value says about its caller.
    pub fn judge(&self, authorization: Option<&[u8]>) -> Caller {
        let Some(value) = authorization else {
            return Caller::NoToken;
        };
        let Some(given) = strip_bearer(value) else {
            return Caller::NoToken;
        };
        if constant_time_eq(given, &self.0) {
            Caller::Authorized
        } else {
            Caller::WrongToken
        }
    }
}

/// `Bearer TOKEN` (scheme case-insensitive, RFC 7235) -> `TOKEN`.
fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = b"bearer ";
    if value.len() < scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return None;
    }
    Some(value[scheme.len()..].trim_ascii())
}

/// Equal slices, in time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Tower layer marking each HTTP request with its [`Caller`].
#[derive(Clone, Debug)]
pub struct AuthLayer {
    pub token: Token,
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            token: self.token.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    token: Token,
}

impl<S, B> tower::Service<HttpRequest<B>> for Auth<S>
where
    S: tower::Service<HttpRequest<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: HttpRequest<B>) -> Self::Future {
        let caller = self
            .token
            .judge(request.headers().get("authorization").map(|v| v.as_bytes()));
        request.extensions_mut().insert(caller);
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("rpc.token");
        let made = Token::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
        let again = Token::load_or_create(&path).unwrap();
        assert_eq!(made.0, again.0);
        std::fs::write(&path, "  \n").unwrap();
        assert!(Token::load_or_create(&path).is_err());
    }

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let token = Token(b"s3cret".as_slice().into());
        assert_eq!(token.judge(None), Caller::NoToken);
        assert_eq!(token.judge(Some(b"s3cret")), Caller::NoToken);
        assert_eq!(token.judge(Some(b"Basic s3cret")), Caller::NoToken);
        assert_eq!(token.judge(Some(b"Bearer s3cret")), Caller::Authorized);
        assert_eq!(token.judge(Some(b"bearer  s3cret ")), Caller::Authorized);
        assert_eq!(token.judge(Some(b"Bearer s3cres")), Caller::WrongToken);
        assert_eq!(token.judge(Some(b"Bearer s3cret2")), Caller::WrongToken);
        assert_eq!(token.judge(Some(b"Bearer ")), Caller::WrongToken);
    }
}

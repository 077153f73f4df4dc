//! The opt-in admin endpoint: start a drain over HTTP (blue/green switches,
//! maintenance), on its own listener, behind a bearer token.
//!
//! Off by default. [`AdminConfig::from_env`] enables it only when
//! `WSDRAIN_ADMIN_TOKEN` is set; it listens on `WSDRAIN_ADMIN_LISTEN`
//! (default `127.0.0.1:9901`), and refuses a non-loopback address unless
//! `WSDRAIN_ADMIN_PUBLIC=1`. It is never part of the application's router.
//!
//! * `POST /drain` with `Authorization: Bearer <token>`: begins the drain,
//!   `202` with the status body; `200` if it had begun already.
//! * `GET /status` with the token: the readiness body.
//! * Anything without the right token: `401`.

use std::{fmt, io, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use wsdrain_core::{
    DrainTrigger,
    policy::{BOOL_SPELLINGS, parse_bool},
};
// The names live with the policy's, so that `DrainPolicy::from_env` knows
// them when it warns about a misspelled `WSDRAIN_*` variable.
pub use wsdrain_core::policy::{ENV_ADMIN_LISTEN, ENV_ADMIN_PUBLIC, ENV_ADMIN_TOKEN};

/// Settings of the admin endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// The listen address.
    pub listen: SocketAddr,
    token: String,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why the admin endpoint's settings were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminConfigError {
    /// `WSDRAIN_ADMIN_LISTEN` is not an address.
    InvalidListen(String),
    /// `WSDRAIN_ADMIN_PUBLIC` is not a boolean (see [`parse_bool`]).
    InvalidPublic(String),
    /// A non-loopback address without `WSDRAIN_ADMIN_PUBLIC=1`.
    NotLoopback(SocketAddr),
    /// A token shorter than 16 bytes (an empty one included).
    WeakToken,
    /// More than one setting was refused: each of them.
    Several(Vec<AdminConfigError>),
}

impl AdminConfigError {
    /// Each refusal: the one this is, or those [`Several`](Self::Several) holds.
    pub fn errors(&self) -> &[AdminConfigError] {
        match self {
            AdminConfigError::Several(all) => all,
            one => std::slice::from_ref(one),
        }
    }

    /// `Ok` for none, the error itself for one, `Several` for more.
    fn check(mut refused: Vec<AdminConfigError>) -> Result<(), AdminConfigError> {
        match refused.len() {
            0 => Ok(()),
            1 => Err(refused.remove(0)),
            _ => Err(AdminConfigError::Several(refused)),
        }
    }
}

impl fmt::Display for AdminConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminConfigError::InvalidListen(v) => {
                write!(f, "{ENV_ADMIN_LISTEN}: invalid address {v:?}")
            }
            AdminConfigError::InvalidPublic(v) => write!(
                f,
                "{ENV_ADMIN_PUBLIC}: {v:?} is not a boolean (write {BOOL_SPELLINGS})"
            ),
            AdminConfigError::NotLoopback(a) => write!(
                f,
                "{ENV_ADMIN_LISTEN}: {a} is not a loopback address; set {ENV_ADMIN_PUBLIC}=1 to allow it"
            ),
            AdminConfigError::WeakToken => {
                write!(f, "{ENV_ADMIN_TOKEN}: the token must be at least 16 bytes")
            }
            AdminConfigError::Several(all) => {
                write!(f, "{} settings refused:", all.len())?;
                for e in all {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for AdminConfigError {}

impl AdminConfig {
    /// An endpoint on `listen` guarded by `token`.
    ///
    /// # Errors
    ///
    /// A token shorter than 16 bytes, or a non-loopback address without
    /// `allow_public` ([`AdminConfigError::Several`] for both).
    pub fn new(
        listen: SocketAddr,
        token: impl Into<String>,
        allow_public: bool,
    ) -> Result<Self, AdminConfigError> {
        let token = token.into();
        let mut refused = Vec::new();
        check(Some(listen), &token, Some(allow_public), &mut refused);
        AdminConfigError::check(refused)?;
        Ok(AdminConfig { listen, token })
    }

    /// Reads the `WSDRAIN_ADMIN_*` settings through `lookup`; `Ok(None)` when
    /// `WSDRAIN_ADMIN_TOKEN` is unset (the endpoint is off, and the other
    /// two are not read). `WSDRAIN_ADMIN_PUBLIC` is a boolean: `1`, `true`,
    /// `yes`, `on` or `0`, `false`, `no`, `off`, in any letter case.
    ///
    /// # Errors
    ///
    /// See [`AdminConfigError`]; each names its setting, an empty value is
    /// refused as any other, and every refused setting is reported at once.
    pub fn from_lookup<F>(lookup: F) -> Result<Option<Self>, AdminConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let Some(token) = lookup(ENV_ADMIN_TOKEN) else {
            return Ok(None);
        };
        let mut refused = Vec::new();
        let listen = match lookup(ENV_ADMIN_LISTEN) {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| refused.push(AdminConfigError::InvalidListen(v.clone())))
                .ok(),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
        };
        let public = match lookup(ENV_ADMIN_PUBLIC) {
            Some(v) => parse_bool(&v).or_else(|| {
                refused.push(AdminConfigError::InvalidPublic(v));
                None
            }),
            None => Some(false),
        };
        check(listen, &token, public, &mut refused);
        AdminConfigError::check(refused)?;
        // Refused above when it did not read.
        let listen = listen.ok_or(AdminConfigError::InvalidListen(String::new()))?;
        Ok(Some(AdminConfig { listen, token }))
    }

    /// [`from_lookup`](Self::from_lookup) over the process environment.
    ///
    /// # Errors
    ///
    /// See [`AdminConfigError`].
    pub fn from_env() -> Result<Option<Self>, AdminConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// The router of the endpoint, to serve on its own listener.
    pub fn router(&self, trigger: DrainTrigger) -> Router {
        let state = Arc::new(AdminState {
            trigger,
            token: self.token.clone(),
        });
        Router::new()
            .route("/drain", post(drain))
            .route("/status", get(status))
            .with_state(state)
    }

    /// Binds the listener and serves the endpoint until the process ends.
    ///
    /// # Errors
    ///
    /// If the address cannot be bound.
    ///
    /// # Cancel safety
    ///
    /// Dropping it closes the endpoint's listener; a drain it began goes on.
    pub async fn serve(&self, trigger: DrainTrigger) -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        tracing::info!(target: "wsdrain", listen = %self.listen, "admin endpoint enabled");
        axum::serve(listener, self.router(trigger)).await
    }
}

/// The checks between the settings, on those that read (`None`: refused already).
fn check(
    listen: Option<SocketAddr>,
    token: &str,
    public: Option<bool>,
    refused: &mut Vec<AdminConfigError>,
) {
    if token.len() < 16 {
        refused.insert(0, AdminConfigError::WeakToken);
    }
    if let (Some(listen), Some(false)) = (listen, public) {
        if !listen.ip().is_loopback() {
            refused.push(AdminConfigError::NotLoopback(listen));
        }
    }
}

struct AdminState {
    trigger: DrainTrigger,
    token: String,
}

impl AdminState {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        // Constant time in the token's content.
        given.len() == self.token.len()
            && given
                .bytes()
                .zip(self.token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required\n",
    )
        .into_response()
}

fn json(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn drain(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        tracing::warn!(target: "wsdrain", "admin drain refused: bad or missing token");
        return unauthorized();
    }
    let first = state.trigger.begin();
    if first {
        tracing::info!(target: "wsdrain", "drain begins: admin endpoint");
    }
    let code = if first {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    json(code, state.trigger.drain().status().to_json())
}

async fn status(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        return unauthorized();
    }
    json(StatusCode::OK, state.trigger.drain().status().to_json())
}

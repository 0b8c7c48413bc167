//! What every console page shares: the signed-in operator, CSRF-checked forms, the HTML error
//! type, the layout's navigation, and formatting.

use askama::Template;
use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::domain::money::Cents;
use crate::http::{AppState, BODY_LIMIT};
use crate::store::users;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "jq_session";

/// How the console is served.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Mark cookies `Secure` (the default): browsers send them only over https, and over
    /// plain http to `localhost` or a loopback address. Off only for plain http on a LAN.
    pub secure_cookies: bool,
    /// How many proxies in front append the client's address to `X-Forwarded-For` (the same
    /// setting as the chat-session limit's); 0 counts failed logins by the peer's address.
    pub trusted_proxy_hops: usize,
}

impl Default for Options {
    /// Secure cookies, no proxies trusted.
    fn default() -> Self {
        Options {
            secure_cookies: true,
            trusted_proxy_hops: 0,
        }
    }
}

/// A failure a console handler returns, shown as an HTML page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Not signed in (or the session ended): to the login page.
    #[error("sign in first")]
    SignIn,
    /// A form without the session's CSRF token, or with a stale one.
    #[error(
        "this form has expired or did not come from this console; reload the page and try again"
    )]
    Forbidden,
    /// No such page or record.
    #[error("there is nothing here")]
    NotFound,
    /// A form that could not be read at all.
    #[error("{0}")]
    BadRequest(String),
    /// Anything unexpected: logged, shown as a bare 500.
    #[error("something went wrong on our side")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ConsoleError {
    /// No row is the 404 page, as in the API; anything else is internal (logged, never shown).
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => ConsoleError::NotFound,
            e => ConsoleError::Internal(e.into()),
        }
    }
}

impl From<askama::Error> for ConsoleError {
    fn from(e: askama::Error) -> Self {
        ConsoleError::Internal(anyhow::anyhow!("template: {e}"))
    }
}

impl From<axum::extract::rejection::PathRejection> for ConsoleError {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        // A path segment that is not an id names nothing that exists.
        ConsoleError::NotFound
    }
}

/// `Path` whose rejection is the 404 page.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ConsoleError))]
pub struct PagePath<T>(pub T);

/// The error page.
#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    nav: Option<Nav>,
    status: u16,
    title: &'static str,
    message: String,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            ConsoleError::SignIn => {
                return Redirect::to("/admin/login").into_response();
            }
            ConsoleError::Forbidden => (StatusCode::FORBIDDEN, "Forbidden"),
            ConsoleError::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            ConsoleError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            ConsoleError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "console request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Error")
            }
        };
        error_page(status, title, self.to_string())
    }
}

/// An error page with `status`.
pub fn error_page(status: StatusCode, title: &'static str, message: String) -> Response {
    let page = ErrorPage {
        nav: None,
        status: status.as_u16(),
        title,
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => status.into_response(),
    }
}

/// The console's 404 page, for any path under `/admin` that is not a page.
pub async fn not_found() -> ConsoleError {
    ConsoleError::NotFound
}

/// Renders a page (200).
pub fn render<T: Template>(page: &T) -> Result<Response, ConsoleError> {
    Ok(Html(page.render()?).into_response())
}

/// Renders a page with a status (a form with errors: 422).
pub fn render_with<T: Template>(status: StatusCode, page: &T) -> Result<Response, ConsoleError> {
    Ok((status, Html(page.render()?)).into_response())
}

/// The signed-in operator.
#[derive(Debug, Clone)]
pub struct Me {
    /// Their email.
    pub email: String,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
}

impl Me {
    /// The actor recorded for what they do.
    pub fn actor(&self) -> String {
        format!("operator:{}", self.email)
    }

    /// The layout's navigation, with `active` highlighted.
    pub fn nav(&self, active: &'static str) -> Option<Nav> {
        Some(Nav {
            email: self.email.clone(),
            csrf: self.csrf.clone(),
            active,
        })
    }
}

/// What the layout shows of the operator.
#[derive(Debug, Clone)]
pub struct Nav {
    /// Who is signed in.
    pub email: String,
    /// For the logout form.
    pub csrf: String,
    /// The current section.
    pub active: &'static str,
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

impl FromRequestParts<AppState> for Me {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::SignIn)?;
        match users::session(&state.pool, &token).await? {
            Some(user) => Ok(Me {
                email: user.email,
                csrf: user.csrf,
            }),
            None => Err(ConsoleError::SignIn),
        }
    }
}

/// Whether two tokens are equal, compared in constant time.
pub fn same_token(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The `csrf` field of a urlencoded form.
pub fn csrf_field(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
}

/// A form posted by the signed-in operator, its CSRF token checked against the session's.
pub struct Checked<T> {
    /// Who posted it.
    pub me: Me,
    /// Its fields.
    pub form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Checked<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ConsoleError> {
        let (mut parts, body) = req.into_parts();
        let me = Me::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .map_err(|_| ConsoleError::BadRequest("the form is too large".into()))?;
        let given = csrf_field(&bytes).unwrap_or_default();
        if !same_token(&given, &me.csrf) {
            return Err(ConsoleError::Forbidden);
        }
        let req = Request::from_parts(parts, Body::from(bytes));
        let Form(form) = Form::<T>::from_request(req, state)
            .await
            .map_err(|e| ConsoleError::BadRequest(e.body_text()))?;
        Ok(Checked { me, form })
    }
}

/// The client's address (for the login rate limit).
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(forwarded) =
            crate::http::chat::forwarded_for(&parts.headers, state.console.trusted_proxy_hops)
        {
            return Ok(ClientAddr(forwarded.to_string()));
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(ClientAddr(peer))
    }
}

/// `$1,234.50`.
pub fn money(cents: Cents) -> String {
    cents.to_string()
}

/// A time in the company's time zone: "Tue Nov 25, 9:00 AM" (with the year when it is not
/// this year's).
pub fn local(at: DateTime<Utc>, tz: Tz) -> String {
    let at = at.with_timezone(&tz);
    if at.year() == Utc::now().with_timezone(&tz).year() {
        at.format("%a %b %-d, %-I:%M %p").to_string()
    } else {
        at.format("%a %b %-d %Y, %-I:%M %p").to_string()
    }
}

/// A window in the company's time zone: "Tue Nov 25, 9:00 AM – 10:30 AM".
pub fn window(start: DateTime<Utc>, end: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "{} – {}",
        local(start, tz),
        end.with_timezone(&tz).format("%-I:%M %p")
    )
}

/// The console's stylesheet (small, no framework; the layout works from 320 px up).
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../../static/console.css"),
    )
}

/// The console's script: it only polls a conversation's new messages into its thread.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../../static/console.js"),
    )
}

//! Signing in and out.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::page::{
    self, Checked, ClientAddr, ConsoleError, Nav, SESSION_COOKIE, cookie, render_with, same_token,
};
use crate::domain::identity::normalize_email;
use crate::domain::password;
use crate::domain::token::new_token;
use crate::http::AppState;
use crate::store::users;

/// The cookie that carries the login form's CSRF token (there is no session yet).
const LOGIN_COOKIE: &str = "jq_login";

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    nav: Option<Nav>,
    csrf: String,
    email: String,
    email_error: Option<String>,
    password_error: Option<String>,
    error: Option<String>,
}

fn set_cookie(
    name: &str,
    value: String,
    secure: bool,
    remove: bool,
) -> (header::HeaderName, String) {
    let mut c = Cookie::build((name.to_owned(), value))
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .build();
    if remove {
        c.make_removal();
    }
    (header::SET_COOKIE, c.to_string())
}

/// `GET /admin/login`.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let (csrf, fresh) = match cookie(&headers, LOGIN_COOKIE) {
        Some(token) if token.len() >= 40 => (token, false),
        _ => (new_token(), true),
    };
    let page = LoginPage {
        nav: None,
        csrf: csrf.clone(),
        email: String::new(),
        email_error: None,
        password_error: None,
        error: None,
    };
    let mut response = page::render(&page)?;
    if fresh {
        let (name, value) = set_cookie(LOGIN_COOKIE, csrf, state.console.secure_cookies, false);
        if let Ok(value) = value.parse() {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `POST /admin/login`.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let given = page::csrf_field(&body).unwrap_or_default();
    if !same_token(&given, &expected) {
        return Err(ConsoleError::Forbidden);
    }
    let form: LoginForm = serde_urlencoded_form(&body)?;
    let mut page = LoginPage {
        nav: None,
        csrf: expected,
        email: form.email.trim().chars().take(200).collect(),
        email_error: None,
        password_error: None,
        error: None,
    };
    let email = normalize_email(&form.email);
    if email.is_none() {
        page.email_error = Some("Enter the email address you sign in with.".into());
    }
    if form.password.is_empty() {
        page.password_error = Some("Enter your password.".into());
    }
    let Some(email) = email.filter(|_| !form.password.is_empty()) else {
        return render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    // Counted and recorded before the password is looked at, so concurrent guesses cannot
    // all slip under the limit.
    let attempt =
        match users::admit(&state.pool, &email, &address, users::LoginLimits::default()).await? {
            users::Admission::Evaluate(id) => id,
            users::Admission::Wait(secs) => {
                tracing::warn!(retry_after = secs, "console login rate-limited");
                page.error = Some(format!(
                    "Too many failed sign-ins. Wait {} and try again.",
                    wait_words(secs)
                ));
                let mut response = render_with(StatusCode::TOO_MANY_REQUESTS, &page)?;
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
                return Ok(response);
            }
        };
    let user = users::user_by_email(&state.pool, &email).await?;
    let password_given = form
        .password
        .chars()
        .take(password::MAX_LEN)
        .collect::<String>();
    let (user_id, hash) = match &user {
        Some((id, hash)) => (Some(*id), hash.clone()),
        None => (None, password::decoy_hash().to_owned()),
    };
    // Hashing takes tens of milliseconds of CPU: off the async workers.
    let matches = tokio::task::spawn_blocking(move || password::verify(&password_given, &hash))
        .await
        .map_err(|e| ConsoleError::Internal(e.into()))?;
    let signed_in = user_id.filter(|_| matches);
    let Some(user_id) = signed_in else {
        page.error = Some("That email and password do not match an account.".into());
        return render_with(StatusCode::UNAUTHORIZED, &page);
    };
    users::record_success(&state.pool, attempt).await?;
    let (token, _) = users::open_session(&state.pool, user_id).await?;
    let secure = state.console.secure_cookies;
    // Appended: a plain header array would keep only the last Set-Cookie.
    Ok((
        AppendHeaders([
            set_cookie(SESSION_COOKIE, token, secure, false),
            set_cookie(LOGIN_COOKIE, String::new(), secure, true),
        ]),
        Redirect::to("/admin/dashboard"),
    )
        .into_response())
}

/// "20 seconds", "3 minutes": how long a refused sign-in waits, in words.
fn wait_words(secs: u64) -> String {
    match secs {
        0..=1 => "a second".to_owned(),
        2..=90 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// Reads a urlencoded form.
fn serde_urlencoded_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ConsoleError> {
    let pairs: serde_json::Map<String, serde_json::Value> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(pairs))
        .map_err(|e| ConsoleError::BadRequest(format!("the form could not be read: {e}")))
}

#[derive(Deserialize)]
pub struct Empty {}

/// `POST /admin/logout`.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    checked: Checked<Empty>,
) -> Result<Response, ConsoleError> {
    let _ = checked.me;
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        users::close_session(&state.pool, &token).await?;
    }
    Ok((
        [set_cookie(
            SESSION_COOKIE,
            String::new(),
            state.console.secure_cookies,
            true,
        )],
        Redirect::to("/admin/login"),
    )
        .into_response())
}

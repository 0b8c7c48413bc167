//! The operator's console under `/admin` (server-rendered askama pages, escaped by default) and
//! the customer's web chat page at `/chat`.
//!
//! Security: a console user signs in with an argon2-hashed password (`admin create-user`); the
//! session cookie is HttpOnly, SameSite=Lax, and Secure when the server is told it runs behind
//! https. Every form carries the session's CSRF token (a synchronizer token stored with the
//! session; the login form uses a double-submit cookie, as there is no session yet) and a
//! missing or stale one is refused with 403 before anything else is read. Failed logins are
//! counted per email and per client address in the database (so every server behind a load
//! balancer sees them) and answered with 429 past the limit. Pages send a Content-Security-Policy
//! that allows only this site's own scripts, so customer text that slipped past escaping could
//! still not run.

mod approvals;
mod auth;
mod chat;
mod customers;
mod dashboard;
mod inbox;
mod jobs;
mod page;
mod pipeline;
mod settings;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};

use super::AppState;
pub use page::Options;

/// The console's and the chat page's routes.
pub fn router() -> Router<AppState> {
    let admin = Router::new()
        .route("/", get(|| async { Redirect::to("/admin/dashboard") }))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/dashboard", get(dashboard::show))
        .route("/pipeline", get(pipeline::list))
        .route("/customers", get(customers::search))
        .route("/customers/{id}", get(customers::show))
        .route("/customers/{id}/notes", post(customers::add_note))
        .route("/customers/{id}/merge", post(customers::merge))
        .route("/customers/{id}/erase", post(customers::erase))
        .route("/notes/{id}", post(customers::edit_note))
        .route("/notes/{id}/delete", post(customers::delete_note))
        .route("/inbox", get(inbox::list))
        .route("/conversations/{id}", get(inbox::show))
        .route("/conversations/{id}/messages", get(inbox::messages))
        .route("/conversations/{id}/reply", post(inbox::reply))
        .route("/conversations/{id}/takeover", post(inbox::take_over))
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}", post(approvals::decide))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}/step", post(jobs::step))
        .route("/jobs/{id}/items", post(jobs::items))
        .route("/settings", get(settings::show))
        .route("/settings/pause", post(settings::pause))
        .route("/settings/hours", post(settings::hours))
        .route("/settings/pricebook", post(settings::pricebook))
        .route("/settings/preview", post(settings::preview))
        .route("/system", get(settings::system))
        .route("/static/console.css", get(page::stylesheet))
        .route("/static/console.js", get(page::script))
        .fallback(page::not_found);
    Router::new()
        .nest("/admin", admin)
        .route(
            "/admin/",
            get(|| async { Redirect::to("/admin/dashboard") }),
        )
        .route("/chat", get(chat::page))
        .route("/chat/chat.js", get(chat::script))
        .route("/chat/chat.css", get(chat::stylesheet))
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers every console and chat response carries.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

//! The customer's web chat page (`/chat`, public): a page and a small script that talk to the
//! chat API with `fetch`. Replies are added as text nodes (never as HTML); numbered window
//! choices become buttons.

use askama::Template;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::page::{self, ConsoleError};

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {}

/// `GET /chat`.
pub async fn page() -> Result<Response, ConsoleError> {
    page::render(&ChatPage {})
}

/// `GET /chat/chat.js`.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../../static/chat.js"),
    )
}

/// `GET /chat/chat.css`.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../../static/chat.css"),
    )
}

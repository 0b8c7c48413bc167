//! The pipeline: leads by stage, searched by a phone in any format, a name, an email or an
//! address, a page at a time.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use uuid::Uuid;

use super::page::{self, ConsoleError, Me, Nav, local, money};
use crate::domain::identity::Identity;
use crate::domain::stages::Stage;
use crate::http::AppState;
use crate::store::console::views;
use crate::store::settings;

/// Leads per page.
const PAGE: i64 = 25;

struct Tab {
    stage: Stage,
    label: String,
    count: i64,
    current: bool,
}

struct Row {
    customer_id: Option<Uuid>,
    who: String,
    phone: String,
    stage: String,
    channel: String,
    address: String,
    total: String,
    created: String,
}

#[derive(Template)]
#[template(path = "console/pipeline.html")]
struct PipelinePage {
    nav: Option<Nav>,
    tabs: Vec<Tab>,
    all_current: bool,
    stage: String,
    q: String,
    rows: Vec<Row>,
    page: i64,
    more: bool,
}

impl PipelinePage {
    /// The query string of page `n` with this page's stage and search.
    fn link(&self, n: &i64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !self.stage.is_empty() {
            query.append_pair("stage", &self.stage);
        }
        if !self.q.is_empty() {
            query.append_pair("q", &self.q);
        }
        query.append_pair("page", &n.to_string());
        query.finish()
    }
}

/// `GET /admin/pipeline[?stage=…][&q=…][&page=N]`.
pub async fn list(
    State(state): State<AppState>,
    me: Me,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    // An unknown stage shows every stage rather than nothing.
    let stage = params.get("stage").and_then(|s| s.parse::<Stage>().ok());
    let q: String = params
        .get("q")
        .map(|q| q.trim().chars().take(200).collect())
        .unwrap_or_default();
    let page_number = params
        .get("page")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| (1..=10_000).contains(p))
        .unwrap_or(1);
    let region = state.agent.options.region;
    let identities: Vec<Identity> = [Identity::phone(&q, region), Identity::email(&q)]
        .into_iter()
        .flatten()
        .collect();
    let mut conn = state.pool.acquire().await?;
    let tz = settings::load(&mut conn).await?.hours.time_zone;
    let mut found = views::pipeline(
        &mut conn,
        stage,
        &identities,
        &q,
        (page_number - 1) * PAGE,
        PAGE + 1,
    )
    .await?;
    let more = found.len() > usize::try_from(PAGE).unwrap_or(usize::MAX);
    found.truncate(usize::try_from(PAGE).unwrap_or(usize::MAX));
    let counts: HashMap<Stage, i64> = views::stage_counts(&mut conn).await?.into_iter().collect();
    let tabs = Stage::ALL
        .iter()
        .map(|&s| Tab {
            stage: s,
            label: s.label(),
            count: counts.get(&s).copied().unwrap_or(0),
            current: stage == Some(s),
        })
        .collect();
    let rows = found
        .into_iter()
        .map(|l| Row {
            customer_id: l.customer_id,
            who: l.customer_name.unwrap_or_else(|| "(no name yet)".into()),
            phone: l.phone.unwrap_or_default(),
            stage: l.stage.label(),
            channel: l.channel.to_string(),
            address: l.address.unwrap_or_default(),
            total: l.total_cents.map(money).unwrap_or_default(),
            created: local(l.created_at, tz),
        })
        .collect();
    page::render(&PipelinePage {
        nav: me.nav("pipeline"),
        tabs,
        all_current: stage.is_none(),
        stage: stage.map(Stage::as_str).unwrap_or_default().to_owned(),
        q,
        rows,
        page: page_number,
        more,
    })
}

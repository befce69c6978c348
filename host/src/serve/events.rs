//! `GET /api/v1/events`: Server-Sent Events of run progress (started, progress, finished).

use super::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use std::convert::Infallible;
use tokio_stream::wrappers::BroadcastStream;

pub async fn sse(State(st): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = st.runner.events.subscribe();
    let mut shutdown = st.shutdown.clone();
    // A slow client that missed events just continues with the next ones.
    let stream = BroadcastStream::new(rx)
        .filter_map(|m| async move { m.ok() })
        .map(|v| {
            let kind = v["type"].as_str().unwrap_or("message").to_string();
            Ok(Event::default().event(kind).data(v.to_string()))
        })
        .take_until(async move {
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

//! Runs over HTTP: the same pipeline as `flowhost run`, on the server's pools.
//!
//! `POST /runs` takes `{"flow": "rpa1"}` (the component `<flows-dir>/rpa1.wasm`) or
//! `{"component": "rpa1.wasm"}`, and `"input"`: the flow's parameters (default `{}`). It
//! answers 202 with the run id at once; `GET /runs/{id}` follows the run, `GET /runs/{id}/logs`
//! its log lines. Only components inside the flows folder run, whatever the path says.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, problem};
use crate::history::{HistoryError, RunFilter, RunState};
use crate::manifest::Manifest;
use crate::run::{RunRequest, new_run_id};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartRun {
    /// A flow name: `<flows-dir>/<flow>.wasm`.
    flow: Option<String>,
    /// A component path relative to the flows folder.
    component: Option<String>,
    /// The flow's parameters.
    #[serde(default)]
    input: Option<serde_json::Value>,
}

/// `POST /runs`.
pub(super) async fn start(
    State(state): State<Arc<AppState>>,
    body: Result<Json<StartRun>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body must be JSON {{\"flow\": NAME | \"component\": PATH, \"input\": {{...}}}}: {}",
                    e.body_text()
                ),
            );
        }
    };
    if state.stopping.load(Ordering::SeqCst) {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "flowhost is shutting down; no new runs are taken".into(),
        );
    }
    let component = match resolve(&state.flows_dir, &body) {
        Ok(path) => path,
        Err((status, message)) => return problem(status, message),
    };
    let manifest = match Manifest::load(Manifest::path_beside(&component)) {
        Ok(m) => m,
        Err(e) => return problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    let input = body.input.unwrap_or_else(|| json!({})).to_string();
    let Ok(slot) = state.slots.clone().try_acquire_owned() else {
        return problem(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} runs are already executing (--max-concurrent-runs); retry when one ends",
                state.options.max_concurrent_runs
            ),
        );
    };
    let run_id = new_run_id();
    let flow = manifest.flow.name.clone();
    state
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(run_id.clone(), flow.clone());
    let request = RunRequest {
        component,
        manifest,
        input,
    };
    let task_state = state.clone();
    let task_id = run_id.clone();
    state.runs.spawn(async move {
        let outcome = task_state
            .host
            .run_as(&request, &task_id, &task_state.cancel)
            .await;
        if let Err(e) = &outcome {
            tracing::warn!(run = %task_id, "run failed before the flow started: {e}");
        }
        task_state
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&task_id);
        drop(slot);
    });
    (
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, format!("/runs/{run_id}"))],
        Json(json!({
            "run_id": run_id,
            "flow": flow,
            "state": RunState::Running,
            "href": format!("/runs/{run_id}"),
        })),
    )
        .into_response()
}

/// The component a request names, inside the flows folder, or why not.
fn resolve(flows_dir: &Path, body: &StartRun) -> Result<PathBuf, (StatusCode, String)> {
    let relative = match (&body.flow, &body.component) {
        (Some(flow), None) => PathBuf::from(format!("{flow}.wasm")),
        (None, Some(component)) => PathBuf::from(component),
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                "give exactly one of \"flow\" (a flow name) and \"component\" (a path in the flows \
                 folder)"
                    .into(),
            ));
        }
    };
    // Only plain names below the folder: no absolute paths, no `..`.
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "{} is outside the flows folder; only components in it run",
                relative.display()
            ),
        ));
    }
    let path = flows_dir.join(&relative);
    if path.extension().is_none_or(|x| x != "wasm") {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("{} is not a .wasm component", relative.display()),
        ));
    }
    // A symbolic link inside the folder may point anywhere: the resolved file must be inside.
    let resolved = std::fs::canonicalize(&path).map_err(|_| {
        (
            StatusCode::NOT_FOUND,
            format!(
                "no component {} in the flows folder; build it with `flowhost build`",
                relative.display()
            ),
        )
    })?;
    if !resolved.starts_with(flows_dir) {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "{} leads outside the flows folder; only components in it run",
                relative.display()
            ),
        ));
    }
    Ok(path)
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    flow: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
}

/// `GET /runs?flow=&state=&limit=`: the latest runs (20 by default), newest first.
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let Some(history) = state.host.history() else {
        return no_history();
    };
    let run_state = match query.state.as_deref().map(parse_state).transpose() {
        Ok(s) => s,
        Err(message) => return problem(StatusCode::BAD_REQUEST, message),
    };
    let filter = RunFilter {
        flow: query.flow,
        state: run_state,
        limit: Some(query.limit.unwrap_or(20).min(1000)),
    };
    match history.list(&filter).await {
        Ok(runs) => Json(json!({ "runs": runs })).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn parse_state(s: &str) -> Result<RunState, String> {
    <RunState as clap::ValueEnum>::from_str(s, true).map_err(|_| {
        format!(
            "no run state '{s}'; the states are running, completed, failed, crashed, \
             timed-out, cancelled"
        )
    })
}

/// `GET /runs/{id}`.
pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some(history) = state.host.history() else {
        return no_history();
    };
    match history.get(&id).await {
        Ok(run) => Json(run).into_response(),
        Err(HistoryError::NotFound(_)) => {
            // Accepted a moment ago, not yet written by its task.
            let live = state.live.lock().unwrap_or_else(|e| e.into_inner());
            match live.get(&id) {
                Some(flow) => Json(json!({
                    "run_id": id,
                    "flow": flow,
                    "state": RunState::Running,
                }))
                .into_response(),
                None => problem(StatusCode::NOT_FOUND, format!("no run '{id}'")),
            }
        }
        Err(e @ HistoryError::Ambiguous { .. }) => problem(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /runs/{id}/logs`.
pub(super) async fn logs(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let Some(history) = state.host.history() else {
        return no_history();
    };
    let run = match history.get(&id).await {
        Ok(run) => run,
        Err(HistoryError::NotFound(_)) => {
            return problem(StatusCode::NOT_FOUND, format!("no run '{id}'"));
        }
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match history.logs(&run.run_id).await {
        Ok(lines) => Json(json!({ "run_id": run.run_id, "lines": lines })).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn no_history() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "this server keeps no run history".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(flow: Option<&str>, component: Option<&str>) -> StartRun {
        StartRun {
            flow: flow.map(str::to_owned),
            component: component.map(str::to_owned),
            input: None,
        }
    }

    #[test]
    fn only_components_inside_the_flows_folder_resolve() {
        let root = tempfile::tempdir().unwrap();
        let flows = root.path().join("flows");
        std::fs::create_dir(&flows).unwrap();
        std::fs::write(flows.join("a.wasm"), b"x").unwrap();
        std::fs::write(root.path().join("outside.wasm"), b"x").unwrap();
        std::os::unix::fs::symlink(root.path().join("outside.wasm"), flows.join("link.wasm"))
            .unwrap();
        let flows = std::fs::canonicalize(&flows).unwrap();

        assert_eq!(
            resolve(&flows, &body(Some("a"), None)).unwrap(),
            flows.join("a.wasm")
        );
        assert!(resolve(&flows, &body(None, Some("a.wasm"))).is_ok());
        for (b, status) in [
            (body(None, Some("../outside.wasm")), StatusCode::FORBIDDEN),
            (body(Some("../outside"), None), StatusCode::FORBIDDEN),
            (body(None, Some("/etc/passwd")), StatusCode::FORBIDDEN),
            (body(None, Some("link.wasm")), StatusCode::FORBIDDEN),
            (body(Some("missing"), None), StatusCode::NOT_FOUND),
            (body(None, Some("a.toml")), StatusCode::BAD_REQUEST),
            (body(Some("a"), Some("a.wasm")), StatusCode::BAD_REQUEST),
            (body(None, None), StatusCode::BAD_REQUEST),
        ] {
            assert_eq!(resolve(&flows, &b).unwrap_err().0, status);
        }
    }
}

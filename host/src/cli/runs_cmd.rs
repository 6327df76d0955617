//! `flowhost runs list | show | logs`: the run history, as tables or one `--json` document.

use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{GlobalArgs, envelope};
use crate::config::Config;
use crate::history::{HistoryError, LogLine, RunEntry, RunFilter, RunHistory, RunState};
use crate::{Error, exit};

#[derive(Debug, Args)]
pub(super) struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// The latest runs, newest first.
    List {
        /// Only runs of this flow (its name in the manifest's [flow]).
        #[arg(long, value_name = "NAME")]
        flow: Option<String>,
        /// Only runs in this state.
        #[arg(long, value_name = "STATE")]
        state: Option<RunState>,
        /// At most this many runs.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
        /// Print the runs as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One run: its flow, component, input, state, timings and result or error. The run id
    /// may be shortened to any unique prefix.
    Show {
        /// The run id (or a unique prefix of it), as `runs list` or `run --json` shows it.
        id: String,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One run's log lines: the flow's own records and output, and the host's events.
    Logs {
        /// The run id (or a unique prefix of it).
        id: String,
        /// Print the lines as JSON.
        #[arg(long)]
        json: bool,
    },
}

impl RunsArgs {
    pub(super) fn json(&self) -> bool {
        match &self.command {
            RunsCommand::List { json, .. }
            | RunsCommand::Show { json, .. }
            | RunsCommand::Logs { json, .. } => *json,
        }
    }
}

#[derive(Serialize)]
struct RunsDoc<'a> {
    history: &'a str,
    runs: &'a [RunEntry],
}

#[derive(Serialize)]
struct LogsDoc<'a> {
    run_id: &'a str,
    lines: &'a [LogLine],
}

pub(super) async fn runs(
    config: Arc<Config>,
    global: &GlobalArgs,
    args: RunsArgs,
) -> Result<u8, Error> {
    let history = RunHistory::open(&config, super::retention(global)).await?;
    let result = show(&history, args).await;
    history.close().await;
    result
}

async fn show(history: &RunHistory, args: RunsArgs) -> Result<u8, Error> {
    let db_error = |source| HistoryError::Database {
        target: history.target().to_owned(),
        source: Box::new(source),
    };
    match args.command {
        RunsCommand::List {
            flow,
            state,
            limit,
            json,
        } => {
            let filter = RunFilter {
                flow,
                state,
                limit: Some(limit),
            };
            let runs = history.list(&filter).await.map_err(db_error)?;
            if json {
                let doc = RunsDoc {
                    history: history.target(),
                    runs: &runs,
                };
                envelope::print(None, exit::OK, doc);
            } else if runs.is_empty() {
                println!("no runs recorded (history: {})", history.target());
            } else {
                print!("{}", render_list(&runs));
            }
        }
        RunsCommand::Show { id, json } => {
            let run = history.get(&id).await?;
            if json {
                envelope::print(None, exit::OK, &run);
            } else {
                print!("{}", render_run(&run));
            }
        }
        RunsCommand::Logs { id, json } => {
            let run = history.get(&id).await?;
            let lines = history.logs(&run.run_id).await.map_err(db_error)?;
            if json {
                let doc = LogsDoc {
                    run_id: &run.run_id,
                    lines: &lines,
                };
                envelope::print(None, exit::OK, doc);
            } else {
                for line in &lines {
                    println!(
                        "{} {:5} {:4} {}",
                        line.at,
                        line.level.to_ascii_uppercase(),
                        line.source,
                        line.message
                    );
                }
                if lines.is_empty() {
                    eprintln!("run {} logged nothing", run.run_id);
                }
            }
        }
    }
    Ok(exit::OK)
}

fn render_list(runs: &[RunEntry]) -> String {
    let header = [
        "RUN", "FLOW", "STATE", "STARTED", "DURATION", "ORIGIN", "ERROR",
    ];
    let rows = runs
        .iter()
        .map(|r| {
            vec![
                r.run_id.chars().take(8).collect(),
                r.flow.clone(),
                r.state.as_str().to_owned(),
                r.started_at.clone(),
                duration(r.duration_ms),
                r.origin.clone(),
                r.error_message
                    .as_deref()
                    .map(|m| shorten(m, 60))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    crate::migrate::table(&header, rows)
}

fn render_run(run: &RunEntry) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: &str| out.push_str(&format!("{key:<12} {value}\n"));
    line("run", &run.run_id);
    line("flow", &run.flow);
    line("state", run.state.as_str());
    line("component", &run.component);
    if let Some(sha) = &run.component_sha256 {
        line("  sha256", sha);
    }
    if let Some(sha) = &run.manifest_sha256 {
        line("manifest", &format!("sha256 {sha}"));
    }
    line("environment", &run.environment);
    line("input", &run.input);
    line("started", &run.started_at);
    line("finished", run.finished_at.as_deref().unwrap_or("-"));
    line("duration", &duration(run.duration_ms));
    line(
        "ran on",
        &format!("{} (pid {}, {})", run.host, run.pid, run.origin),
    );
    if let Some(output) = &run.output {
        line("output", &output.to_string());
    }
    if let Some(message) = &run.error_message {
        let kind = run.error_kind.as_deref().unwrap_or("error");
        line("error", &format!("{kind}: {message}"));
    }
    out.push_str(&format!(
        "\nlog lines: flowhost runs logs {}\n",
        &run.run_id[..8.min(run.run_id.len())]
    ));
    out
}

fn duration(ms: Option<f64>) -> String {
    match ms {
        Some(ms) if ms >= 1000.0 => format!("{:.2} s", ms / 1000.0),
        Some(ms) => format!("{ms:.1} ms"),
        None => "-".into(),
    }
}

fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(chars - 1).collect();
    cut.push('…');
    cut
}

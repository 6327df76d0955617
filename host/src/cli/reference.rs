//! `docs/cli.md`, the command-line reference, generated from the clap definitions so it says
//! exactly what `--help` says. A test fails when the file is out of date;
//! `FLOWHOST_BLESS=1 cargo test -p flowhost cli_reference` rewrites it.

use clap::CommandFactory;

use super::Cli;

/// The reference as Markdown: the top-level help, then every command's and subcommand's.
pub fn markdown() -> String {
    // Fixed width and no environment values: the file must not depend on who generated it.
    let mut root = hide_env_values(Cli::command().term_width(100));
    root.build();
    let mut out = String::from(
        "# flowhost command-line reference\n\n\
         Generated from the command definitions (`host/src/cli`); `flowhost <command> --help` \
         prints the same. Regenerate with `FLOWHOST_BLESS=1 cargo test --release -p flowhost \
         cli_reference`.\n",
    );
    section(&mut out, &mut root, "flowhost");
    out
}

fn hide_env_values(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| a.hide_env_values(true))
        .mut_subcommands(hide_env_values)
}

fn section(out: &mut String, cmd: &mut clap::Command, path: &str) {
    let help = cmd.render_long_help().to_string();
    let help: Vec<&str> = help.lines().map(str::trim_end).collect();
    out.push_str(&format!(
        "\n## `{path}`\n\n```text\n{}\n```\n",
        help.join("\n")
    ));
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() == "help" {
            continue;
        }
        let path = format!("{path} {}", sub.get_name());
        section(out, sub, &path);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_reference_matches_the_definitions() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
        let generated = super::markdown();
        if std::env::var_os("FLOWHOST_BLESS").is_some() {
            std::fs::write(&file, &generated).unwrap();
        }
        let written = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            written == generated,
            "docs/cli.md is out of date with the command definitions; regenerate it with \
             FLOWHOST_BLESS=1 cargo test --release -p flowhost cli_reference"
        );
    }
}

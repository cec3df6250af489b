//! `warden check`: loads a project file and lists every problem in it, with its line and
//! field; nothing is opened or served.

use std::path::PathBuf;
use std::process::ExitCode;

use warden_core::project;

/// Exit status 0 when the project is valid, 1 otherwise.
pub(crate) fn run(project: PathBuf) -> anyhow::Result<ExitCode> {
    match project::load_file(&project) {
        Ok(p) => {
            println!(
                "{}: ok ({} tools, {} resources, {} prompts)",
                project.display(),
                p.tools.len(),
                p.resources.len(),
                p.prompts.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            for err in &e.errors {
                eprintln!("{err}");
            }
            eprintln!("{} problem(s) found; nothing was served.", e.errors.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

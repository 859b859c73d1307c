//! `wsc`: the WebSocket command-line client of the wsclient workspace.
//!
//! - `wsc URL`: interactive client (stdin lines out, messages printed).
//! - `wsc demo`: the README's first command, against an embedded server.
//! - `wsc serve`: an echo or broadcast server.
//! - `wsc bench URL`: a load generator.
//! - `wsc replay FILE URL`: plays a recorded session back.
//! - `wsc forward --listen ADDR URL`: tunnels TCP connections over WebSocket.
//!
//! Exit codes are listed in [`exit`] and in `wsc --help`.

mod bench;
mod bridge;
mod cli;
mod client;
mod demo;
mod exit;
mod forward;
mod output;
mod record;
mod serve;
mod sys;

use std::io::Write;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsc: cannot start the runtime: {e}");
            std::process::exit(exit::FAILURE.into());
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Some(Command::Demo(a)) => demo::run(a).await,
            Some(Command::Serve(a)) => serve::run(a).await,
            Some(Command::Bench(a)) => bench::run(a).await,
            Some(Command::Forward(a)) => forward::run(a).await,
            Some(Command::Replay(a)) => match client::Session::from_replay(a) {
                Ok(s) => client::run(s).await,
                Err(e) => {
                    eprintln!("wsc replay: {e}");
                    exit::FAILURE
                }
            },
            None => client::run(client::Session::from_client(cli.client)).await,
        }
    });
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // The stdin reader thread may be blocked in a read: leave without
    // waiting for it (or for the runtime's blocking pool).
    std::process::exit(code.into());
}

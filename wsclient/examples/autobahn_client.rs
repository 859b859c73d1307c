//! Runs every case of an Autobahn|Testsuite fuzzing server against this
//! client: `autobahn_client ws://127.0.0.1:9001 AGENT [--deflate]`
//! (`--deflate` offers permessage-deflate, for sections 12 and 13).
//!
//! For each case it connects to `/runCase?case=N&agent=AGENT` and echoes
//! every text and binary message until the server closes; then it asks the
//! server to write its reports with `/updateReports?agent=AGENT`.

use futures_util::StreamExt;
use wsclient::{ConnectOptions, Error, Message};

fn options(url: String, deflate: bool) -> ConnectOptions {
    ConnectOptions::new(url)
        .max_frame_size(64 << 20)
        .max_message_size(64 << 20)
        .compression(deflate)
}

async fn case_count(base: &str) -> Result<u32, Error> {
    let (mut ws, _) = wsclient::connect(&format!("{base}/getCaseCount")).await?;
    let mut count = 0;
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg? {
            count = t.trim().parse().unwrap_or(0);
        }
    }
    Ok(count)
}

async fn run_case(base: &str, case: u32, agent: &str, deflate: bool) -> Result<(), Error> {
    let url = format!("{base}/runCase?case={case}&agent={agent}");
    let (mut ws, _) = options(url, deflate).connect().await?;
    while let Some(msg) = ws.next().await {
        if let m @ (Message::Text(_) | Message::Binary(_)) = msg? {
            ws.send(m).await?;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or_else(|| "wsclient".into());
    let deflate = args.any(|a| a == "--deflate");
    let count = case_count(&base).await?;
    println!("running {count} cases against {base} as {agent}");
    for case in 1..=count {
        // A case failing the connection is the expected outcome of many
        // cases; the server judges it, we only report it.
        if let Err(e) = run_case(&base, case, &agent, deflate).await {
            eprintln!("case {case}: {e}");
        }
    }
    let (mut ws, _) = wsclient::connect(&format!("{base}/updateReports?agent={agent}")).await?;
    while let Some(m) = ws.next().await {
        m?;
    }
    println!("reports updated");
    Ok(())
}

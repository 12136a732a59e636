//! Runs every case of an Autobahn TestSuite fuzzingserver against our
//! client, then asks it to write its reports.
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 AGENT
//! ```

use simples_ws::deflate::DeflateConfig;
use simples_ws::handshake::client::ClientConfig;
use simples_ws::tokio::{connect_with, connect_with_deflate, Error};
use simples_ws::{Config, Message};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or_else(|| "simples-ws".into());
    let base = base.trim_end_matches('/');

    let count = case_count(base).await?;
    println!("autobahn_client: {count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        if let Err(e) = run_case(&url).await {
            println!("case {case}: {e}");
        }
    }
    let (mut ws, _) = connect_with(&format!("{base}/updateReports?agent={agent}"), &ClientConfig::default(), Config::default()).await?;
    while !matches!(ws.recv().await, Ok(Message::Close(_)) | Err(_)) {}
    println!("autobahn_client: reports updated for agent {agent}");
    Ok(())
}

async fn case_count(base: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let (mut ws, _) = connect_with(&format!("{base}/getCaseCount"), &ClientConfig::default(), Config::default()).await?;
    let mut count = None;
    loop {
        match ws.recv().await {
            Ok(Message::Text(t)) => count = Some(t.trim().parse::<u32>()?),
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    count.ok_or_else(|| "the fuzzingserver sent no case count".into())
}

/// Echoes every message of one case, as the fuzzingserver expects,
/// offering permessage-deflate (the fuzzingserver accepts it in sections
/// 12 and 13 only).
async fn run_case(url: &str) -> Result<(), Error> {
    let config = Config { max_frame_size: 64 << 20, max_message_size: 64 << 20, ..Config::default() };
    let (mut ws, _) = connect_with_deflate(url, &ClientConfig::default(), config, &DeflateConfig::default()).await?;
    loop {
        match ws.recv().await? {
            m @ (Message::Text(_) | Message::Binary(_)) => ws.feed(m).await?,
            Message::Close(_) => return Ok(()),
            _ => {}
        }
    }
}

//! `boxoffice-fakepsp [--listen ADDR]`: runs the fake Stripe-compatible PSP until SIGINT or
//! SIGTERM. It binds `127.0.0.1:0` unless told otherwise and prints
//! `listening on http://<addr>`, the base URL to give `boxoffice serve --stripe-api-base`.

use boxoffice_fakepsp::{FakeState, serve};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(addr) => listen = addr,
                None => return usage("--listen needs an address"),
            },
            "-h" | "--help" => {
                println!("usage: boxoffice-fakepsp [--listen ADDR]  (default 127.0.0.1:0)");
                return Ok(());
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let listener = TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    serve(listener, FakeState::new(), shutdown()).await
}

fn usage(problem: &str) -> std::io::Result<()> {
    eprintln!("boxoffice-fakepsp: {problem}\nusage: boxoffice-fakepsp [--listen ADDR]");
    std::process::exit(2)
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

//! api: an axum server on the tokio runtime, the workspace's app (unik.yaml `main: api`).
use axum::{extract::Path, routing::get, Json, Router};
use serde_json::{json, Value};
use std::time::Instant;

async fn hello(Path(name): Path<String>) -> Json<Value> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    Json(json!({
        "hello": name,
        "greeting": greet_core::hello(&name),
        "framework": "axum",
        "runtime": "tokio",
        "host": host.trim(),
    }))
}

/// One log line per request on stdout (the VM's serial console, i.e. `unikctl logs`).
async fn log_requests(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let (method, path, start) = (req.method().clone(), req.uri().path().to_string(), Instant::now());
    let res = next.run(req).await;
    println!("request method={method} path={path} status={} duration={:?}", res.status().as_u16(), start.elapsed());
    res
}

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_string());
    let app = Router::new()
        // a framework route: {name} comes from axum's router
        .route("/hello/{name}", get(hello))
        .route("/", get(|| async { "rust-axum-workspace: try /hello/world\n" }))
        .layer(axum::middleware::from_fn(log_requests));
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await.expect("bind");
    println!("rust-axum-workspace api listening on {} (axum, tokio)", listener.local_addr().expect("addr"));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // destroy stops the VM's app with SIGTERM
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            println!("rust-axum-workspace api: shutting down");
        })
        .await
        .expect("serve");
}

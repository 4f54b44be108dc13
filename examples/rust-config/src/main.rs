//! rust-config: a tiny std-only HTTP server configured by a file, the way many Rust servers are (Rocket.toml,
//! config/*.toml): `app.toml` in the working directory sets the address, the port and the greeting. It does not
//! read PORT: the file decides, and the deploy publishes the guest port the file names.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// `[section]` and `key = value` lines (strings in double quotes, numbers bare) as "section.key" → value.
fn read_config(path: &str) -> std::io::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut section = String::new();
    for raw in fs::read_to_string(path)?.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].trim().to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            let key = if section.is_empty() { k.trim().to_string() } else { format!("{section}.{}", k.trim()) };
            out.insert(key, v.trim().trim_matches('"').to_string());
        }
    }
    Ok(out)
}

fn handle(stream: TcpStream, greeting: &str, bound: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(());
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let body = format!("{greeting} (listening on {bound})\n");
    let mut out = stream;
    write!(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    out.flush()?;
    println!("request path={path}");
    Ok(())
}

fn main() {
    let config = match read_config("app.toml") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rust-config: cannot read app.toml in the working directory: {e}");
            std::process::exit(1);
        }
    };
    let address = config.get("server.address").cloned().unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = config.get("server.port").and_then(|p| p.parse().ok()).unwrap_or(8000);
    let greeting = config.get("app.greeting").cloned().unwrap_or_else(|| "hello".into());
    let bound = format!("{address}:{port}");
    let listener = match TcpListener::bind(bound.as_str()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rust-config: cannot listen on {bound}: {e}");
            std::process::exit(1);
        }
    };
    println!("rust-config listening on {bound} (from app.toml)");
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let (greeting, bound) = (greeting.clone(), bound.clone());
                thread::spawn(move || {
                    if let Err(e) = handle(stream, &greeting, &bound) {
                        eprintln!("rust-config: connection error: {e}");
                    }
                });
            }
            Err(e) => eprintln!("rust-config: accept failed: {e}"),
        }
    }
}

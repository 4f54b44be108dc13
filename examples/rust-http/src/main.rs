//! rust-http: a tiny HTTP/1.1 server using only the standard library, for the unikctl rust pack.
//! It logs one line per request to stdout, which reaches `unikctl logs` through the VM's serial console.
//! The guest kernel has no IPv6: listen on 0.0.0.0.

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

fn handle(stream: TcpStream, greeting: &str) -> std::io::Result<()> {
    let start = Instant::now();
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(());
    }
    // skip the headers up to the empty line (no request bodies are expected)
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("-").to_string();
    let path = parts.next().unwrap_or("/").to_string();

    let (status, body) = if method == "GET" || method == "HEAD" {
        ("200 OK", format!("{greeting} (rust, path {path})\n"))
    } else {
        ("405 Method Not Allowed", "method not allowed\n".to_string())
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        out.write_all(body.as_bytes())?;
    }
    out.flush()?;
    println!(
        "request method={method} path={path} remote={peer} status={} duration={:?}",
        &status[..3],
        start.elapsed()
    );
    Ok(())
}

fn main() {
    let port = env::var("PORT").unwrap_or_else(|_| "8080".into());
    let greeting = env::var("GREETING").unwrap_or_else(|_| "hello from a unikctl VM".into());
    let listener = match TcpListener::bind(("0.0.0.0", port.parse::<u16>().unwrap_or(8080))) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rust-http: cannot listen on 0.0.0.0:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!("rust-http listening on 0.0.0.0:{port}");
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let greeting = greeting.clone();
                thread::spawn(move || {
                    if let Err(e) = handle(stream, &greeting) {
                        eprintln!("rust-http: connection error: {e}");
                    }
                });
            }
            Err(e) => eprintln!("rust-http: accept failed: {e}"),
        }
    }
}

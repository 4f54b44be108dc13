//! admin: a second binary of the workspace (a command-line tool); it is not the app.
fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "admin".to_string());
    println!("{}", greet_core::hello(&name));
}

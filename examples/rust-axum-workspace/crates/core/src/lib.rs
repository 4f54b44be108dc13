//! The workspace's shared library: both programs greet the same way.

/// The greeting for `name`.
pub fn hello(name: &str) -> String {
    format!("hello, {name}")
}

//! `sqlx::migrate!` embeds `migrations/` in the binary at compile time, and cargo does not
//! know it reads them: without this, a migration added there was left out of an incremental
//! build (sqlx's own `sqlx migrate build-script` writes the same line).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

//! `sqlx::migrate!` embeds `../migrations` at compile time, but cargo does not know that
//! directory is an input: without this, a new migration file is not picked up by an
//! incremental build (such as CI's, whose build directory outlives the clone).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}

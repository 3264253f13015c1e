//! Which SQL dialects the records are compiled with: both, `cfg(postgres)` and
//! `cfg(sqlite)`, unless `LINKDROP_SQLX_PREPARE` names one of them. scripts/sqlx-prepare
//! compiles each dialect alone, with its query macros described against its own database
//! (sqlx 0.8 describes every query of a crate against the one `DATABASE_URL`); the
//! metadata of both lands in `.sqlx/`, where each file names its database, so an ordinary
//! build checks both dialects offline.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres)");
    println!("cargo::rustc-check-cfg=cfg(sqlite)");
    println!("cargo::rerun-if-changed=build.rs");
    // `sqlx::migrate!` embeds the SQLite migrations: a new one must rebuild the crate.
    println!("cargo::rerun-if-changed=../../schemas/migrations-sqlite");
    println!("cargo::rerun-if-env-changed=LINKDROP_SQLX_PREPARE");
    let only = std::env::var("LINKDROP_SQLX_PREPARE").unwrap_or_default();
    let dialects: &[&str] = match only.as_str() {
        "" => &["postgres", "sqlite"],
        "postgres" => &["postgres"],
        "sqlite" => &["sqlite"],
        other => panic!("LINKDROP_SQLX_PREPARE={other}: expected postgres or sqlite"),
    };
    for dialect in dialects {
        println!("cargo::rustc-cfg={dialect}");
    }
}

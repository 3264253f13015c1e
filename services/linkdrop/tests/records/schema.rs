//! The two migration trees — `schemas/migrations` (PostgreSQL) and
//! `schemas/migrations-sqlite` — define the same records: tables, columns (name,
//! nullability, type by family), primary keys, unique constraints, foreign keys and
//! indexes (name, columns in order and direction, uniqueness, partial predicate). A
//! migration added to one tree only fails here with the difference.

use std::collections::BTreeSet;

use linkdrop_records::db::Db;
use sqlx::{PgPool, SqlitePool};

use crate::support::both_record_stores as both;

/// Where the dialects differ on purpose: the PostgreSQL line, its SQLite twin, and why.
const TWINS: [(&str, &str, &str); 1] = [(
    "column webhook_endpoints.events array not null",
    "column webhook_endpoints.events text not null",
    "SQLite has no arrays: a JSON array of event types",
)];

/// Tables sqlx keeps for itself.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

#[tokio::test]
async fn both_migration_trees_define_the_same_tables_columns_and_indexes() {
    let dbs = both().await;
    let (Db::Postgres(pg), Db::Sqlite(sqlite)) = (&dbs[0], &dbs[1]) else {
        panic!("PostgreSQL, then SQLite")
    };
    let postgres: BTreeSet<String> = postgres_schema(pg)
        .await
        .into_iter()
        .map(|line| {
            TWINS
                .iter()
                .find(|(pg, _, _)| *pg == line)
                .map_or(line.clone(), |(_, twin, _)| twin.to_string())
        })
        .collect();
    let sqlite = sqlite_schema(sqlite).await;
    assert!(
        postgres
            .iter()
            .any(|l| l.starts_with("column orders.status")),
        "the schema was read: {postgres:#?}"
    );
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    assert!(
        only_postgres.is_empty() && only_sqlite.is_empty(),
        "the migration trees differ:\n  only in schemas/migrations: {only_postgres:#?}\n  \
         only in schemas/migrations-sqlite: {only_sqlite:#?}"
    );
}

/// `integer`, `text`, `boolean`, `array`, … of a column type of either dialect.
fn family(declared: &str) -> String {
    let declared = declared.to_lowercase();
    match declared.as_str() {
        "smallint" | "integer" | "bigint" | "int" => "integer".into(),
        "text" | "character varying" | "varchar" => "text".into(),
        "boolean" | "bool" => "boolean".into(),
        _ => declared,
    }
}

fn column(table: &str, name: &str, declared: &str, not_null: bool) -> String {
    let null = if not_null { "not null" } else { "null" };
    format!("column {table}.{name} {} {null}", family(declared))
}

/// A partial index's predicate without casts, parentheses and case: `state = 'pending'`.
fn predicate(sql: &str) -> String {
    let mut text = sql.to_lowercase().replace(['(', ')'], "");
    while let Some(at) = text.find("::") {
        let end = text[at + 2..]
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .map_or(text.len(), |e| at + 2 + e);
        text.replace_range(at..end, "");
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn index(table: &str, name: &str, columns: &str, unique: bool, predicate: Option<&str>) -> String {
    let unique = if unique { "unique " } else { "" };
    let partial = predicate.map(|p| format!(" where {p}")).unwrap_or_default();
    format!("{unique}index {name} on {table} ({columns}){partial}")
}

/// An index of PostgreSQL, with the constraint it implements, if any.
#[derive(sqlx::FromRow)]
struct PgIndex {
    table: String,
    name: String,
    unique: bool,
    /// `p` (primary key) or `u` (unique).
    constraint: Option<String>,
    /// In order, `desc` after a descending one.
    columns: String,
    predicate: Option<String>,
}

/// A foreign key of SQLite, gathered from its rows (one per column).
struct ForeignKey {
    table: String,
    id: i64,
    references: String,
    from: Vec<String>,
    to: Vec<String>,
    on_delete: String,
}

async fn postgres_schema(pool: &PgPool) -> BTreeSet<String> {
    let mut schema = BTreeSet::new();
    let columns: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text,
                c.is_nullable = 'NO'
         FROM information_schema.columns c
         JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
           AND c.table_name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, name, declared, not_null) in columns {
        schema.insert(column(&table, &name, &declared, not_null));
    }
    // Indexes with the constraint they implement, if any: `p` primary key, `u` unique.
    let indexes: Vec<PgIndex> = sqlx::query_as(
        "SELECT t.relname::text AS \"table\", i.relname::text AS name, ix.indisunique AS \"unique\",
                    con.contype::text AS \"constraint\",
                    (SELECT string_agg(a.attname || CASE WHEN ix.indoption[k.n - 1] & 1 = 1
                                                         THEN ' desc' ELSE '' END,
                                       ', ' ORDER BY k.n)
                     FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum)
                    AS columns,
                    pg_get_expr(ix.indpred, ix.indrelid) AS predicate
             FROM pg_index ix
             JOIN pg_class i ON i.oid = ix.indexrelid
             JOIN pg_class t ON t.oid = ix.indrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             LEFT JOIN pg_constraint con
               ON con.conindid = ix.indexrelid AND con.contype IN ('p', 'u')
             WHERE n.nspname = 'public' AND t.relname <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(pool)
    .await
    .unwrap();
    for i in indexes {
        let (table, columns) = (&i.table, &i.columns);
        schema.insert(match i.constraint.as_deref() {
            Some("p") => format!("primary key {table} ({columns})"),
            Some("u") => format!("unique {table} ({columns})"),
            _ => index(
                table,
                &i.name,
                columns,
                i.unique,
                i.predicate.as_deref().map(predicate).as_deref(),
            ),
        });
    }
    let foreign: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text,
                (SELECT string_agg(a.attname, ', ' ORDER BY k.n)
                 FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum),
                r.relname::text,
                (SELECT string_agg(a.attname, ', ' ORDER BY k.n)
                 FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum),
                CASE con.confdeltype WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null'
                                     WHEN 'r' THEN 'restrict' ELSE 'no action' END
         FROM pg_constraint con
         JOIN pg_class t ON t.oid = con.conrelid
         JOIN pg_class r ON r.oid = con.confrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE con.contype = 'f' AND n.nspname = 'public'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, columns, references, referenced, on_delete) in foreign {
        schema.insert(format!(
            "foreign key {table} ({columns}) references {references} ({referenced}) on delete {on_delete}"
        ));
    }
    schema
}

async fn sqlite_schema(pool: &SqlitePool) -> BTreeSet<String> {
    let mut schema = BTreeSet::new();
    let columns: Vec<(String, String, String, bool, i64)> = sqlx::query_as(
        "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk
         FROM sqlite_master m JOIN pragma_table_info(m.name) p
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> ?
         ORDER BY m.name, p.pk",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut primary: Vec<(String, Vec<String>)> = Vec::new();
    for (table, name, declared, not_null, pk) in columns {
        // A primary key column counts as NOT NULL, as on PostgreSQL: SQLite, for
        // compatibility, accepts NULL in a primary key that is not an INTEGER one unless it
        // is declared NOT NULL, but the records never write one (every id is bound from a
        // non-optional value, and the queries read ids as non-null).
        schema.insert(column(&table, &name, &declared, not_null || pk > 0));
        if pk > 0 {
            match primary.iter_mut().find(|(t, _)| *t == table) {
                Some((_, key)) => key.push(name),
                None => primary.push((table, vec![name])),
            }
        }
    }
    for (table, key) in primary {
        schema.insert(format!("primary key {table} ({})", key.join(", ")));
    }
    let indexes: Vec<(String, String, bool, String, Option<String>)> = sqlx::query_as(
        "SELECT m.name, il.name, il.\"unique\", il.origin, i.sql
         FROM sqlite_master m JOIN pragma_index_list(m.name) il
         LEFT JOIN sqlite_master i ON i.type = 'index' AND i.name = il.name
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> ?",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, name, unique, origin, sql) in indexes {
        let keys: Vec<(String, bool)> = sqlx::query_as(
            "SELECT name, \"desc\" FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno",
        )
        .bind(&name)
        .fetch_all(pool)
        .await
        .unwrap();
        let columns = keys
            .iter()
            .map(|(column, desc)| {
                if *desc {
                    format!("{column} desc")
                } else {
                    column.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let partial = sql.as_deref().and_then(|sql| {
            sql.to_lowercase()
                .split_once(" where ")
                .map(|(_, p)| predicate(p))
        });
        schema.insert(match origin.as_str() {
            "pk" => continue, // from the columns, above: an INTEGER PRIMARY KEY has no index
            "u" => format!("unique {table} ({columns})"),
            _ => index(&table, &name, &columns, unique, partial.as_deref()),
        });
    }
    let foreign: Vec<(String, i64, String, String, String, String)> = sqlx::query_as(
        "SELECT m.name, f.id, f.\"table\", f.\"from\", f.\"to\", f.on_delete
         FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
         ORDER BY m.name, f.id, f.seq",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    // One row per column of a key: gathered by table and key id.
    let mut keys: Vec<ForeignKey> = Vec::new();
    for (table, id, references, from, to, on_delete) in foreign {
        match keys.iter_mut().find(|k| k.table == table && k.id == id) {
            Some(key) => {
                key.from.push(from);
                key.to.push(to);
            }
            None => keys.push(ForeignKey {
                table,
                id,
                references,
                from: vec![from],
                to: vec![to],
                on_delete,
            }),
        }
    }
    for key in keys {
        schema.insert(format!(
            "foreign key {} ({}) references {} ({}) on delete {}",
            key.table,
            key.from.join(", "),
            key.references,
            key.to.join(", "),
            key.on_delete.to_lowercase()
        ));
    }
    schema
}

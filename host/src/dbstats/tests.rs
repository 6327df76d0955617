//! The judgement shared by every backend: duplicates, coverage, unused indexes and the
//! recommendations, on facts written by hand.

use super::*;

fn index(table: &str, name: &str, columns: &[&str], signature: &str) -> IndexStats {
    IndexStats {
        schema: "public".into(),
        table: table.into(),
        name: name.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        signature: signature.into(),
        scans: Some(0),
        ..IndexStats::default()
    }
}

fn fk(table: &str, columns: &[&str]) -> ForeignKey {
    ForeignKey {
        schema: "public".into(),
        table: table.into(),
        name: Some(format!("{table}_fk")),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        references: "public.customers".into(),
    }
}

fn table(name: &str, live: i64, dead: i64) -> TableStats {
    TableStats {
        schema: "public".into(),
        name: name.into(),
        rows: Some(live),
        live_tuples: Some(live),
        dead_tuples: Some(dead),
        modified_since_analyze: Some(0),
        analyzed: Some(true),
        ..TableStats::default()
    }
}

fn facts(tables: Vec<TableStats>, indexes: Vec<IndexStats>, fks: Vec<ForeignKey>) -> Facts {
    Facts {
        stats: DbStats {
            tables,
            indexes,
            ..DbStats::default()
        },
        foreign_keys: fks,
        usage_since_phrase: "stats reset",
        ..Facts::default()
    }
}

fn by_name<'a>(stats: &'a DbStats, name: &str) -> &'a IndexStats {
    stats.indexes.iter().find(|i| i.name == name).unwrap()
}

#[test]
fn duplicates_keep_the_index_that_enforces_most_then_the_most_scanned() {
    let mut pk = index("t", "t_pkey", &["id"], "key 1");
    pk.primary = true;
    pk.unique = true;
    pk.constraint = true;
    let mut scanned = index("t", "b_idx", &["a"], "key 2");
    scanned.scans = Some(9);
    let mut indexes = vec![
        index("t", "a_idx", &["a"], "key 2"),
        scanned,
        index("t", "c_idx", &["a"], "key 2"),
        index("t", "id_idx", &["id"], "key 1"),
        // Same signature on another table, and a different one on this table: no duplicates.
        index("u", "u_idx", &["a"], "key 2"),
        index("t", "a_partial", &["a"], "key 2 where x"),
    ];
    indexes.insert(0, pk);
    mark_duplicates(&mut indexes);
    let dup = |name: &str| {
        indexes
            .iter()
            .find(|i| i.name == name)
            .unwrap()
            .duplicate_of
            .clone()
    };
    assert_eq!(dup("t_pkey"), None);
    assert_eq!(dup("id_idx").as_deref(), Some("t_pkey"));
    assert_eq!(dup("b_idx"), None, "the scanned one is kept");
    assert_eq!(dup("a_idx").as_deref(), Some("b_idx"));
    assert_eq!(dup("c_idx").as_deref(), Some("b_idx"));
    assert_eq!(dup("u_idx"), None);
    assert_eq!(dup("a_partial"), None);
}

#[test]
fn an_index_covers_a_key_when_its_leading_columns_are_the_keys_in_any_order() {
    let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(covers(&cols(&["a"]), &cols(&["a"]), false));
    assert!(covers(&cols(&["a", "b"]), &cols(&["a"]), false));
    assert!(covers(&cols(&["b", "a", "c"]), &cols(&["a", "b"]), false));
    assert!(
        !covers(&cols(&["b", "a"]), &cols(&["a"]), false),
        "a not leading"
    );
    assert!(
        !covers(&cols(&["a"]), &cols(&["a", "b"]), false),
        "too short"
    );
    assert!(!covers(&cols(&["A"]), &cols(&["a"]), false));
    assert!(covers(&cols(&["A"]), &cols(&["a"]), true), "case folded");
    assert!(!covers(&cols(&["a"]), &cols(&[]), false));
}

#[test]
fn foreign_keys_without_a_usable_index_are_reported_and_recommended() {
    let mut partial = index("orders", "orders_partial", &["customer_id"], "p");
    partial.partial = true;
    let indexes = vec![
        partial,
        index("items", "items_order_idx", &["order_id", "sku"], "i"),
        index("lines", "lines_a", &["x"], "l"),
        index("lines", "lines_b", &["x"], "l"),
    ];
    let stats = finish(
        Backend::Postgres,
        facts(
            vec![],
            indexes,
            vec![
                fk("orders", &["customer_id"]),
                fk("items", &["order_id"]),
                fk("lines", &["x"]),
            ],
        ),
    );
    let uncovered: Vec<&str> = stats
        .unindexed_foreign_keys
        .iter()
        .map(|f| f.table.as_str())
        .collect();
    assert_eq!(uncovered, ["orders"], "a partial index does not cover");
    assert!(
        stats.recommendations.contains(
            &"CREATE INDEX ON public.orders (customer_id): foreign key orders_fk without an index"
                .to_owned()
        ),
        "{:?}",
        stats.recommendations
    );
    // The only cover of a key is not unused, even unscanned; a duplicate cover is dropped as
    // a duplicate, and then the kept one is the only cover.
    assert!(!by_name(&stats, "items_order_idx").unused);
    assert!(!by_name(&stats, "lines_a").unused);
    assert_eq!(
        by_name(&stats, "lines_b").duplicate_of.as_deref(),
        Some("lines_a")
    );
    assert!(
        by_name(&stats, "orders_partial").unused,
        "a partial index serves no key"
    );
}

#[test]
fn sqlite_rowid_keys_cover_and_recommendations_name_the_index_to_create() {
    let mut f = facts(vec![], vec![], vec![fk("a", &["id"]), fk("b", &["a_id"])]);
    for key in &mut f.foreign_keys {
        key.schema = "main".into();
        key.name = None;
        key.references = "a".into();
    }
    f.implicit_keys = vec![("main".into(), "a".into(), vec!["ID".into()])];
    let stats = finish(Backend::Sqlite, f);
    assert_eq!(stats.unindexed_foreign_keys.len(), 1);
    assert_eq!(
        stats.recommendations,
        ["CREATE INDEX main.b_a_id_idx ON b (a_id): foreign key to a without an index"]
    );
}

#[test]
fn unused_means_unscanned_enforcing_nothing_and_is_recommended_for_dropping() {
    let mut unique = index("t", "t_code_key", &["code"], "u");
    unique.unique = true;
    let mut used = index("t", "t_used", &["u"], "x");
    used.scans = Some(3);
    let mut uncounted = index("t", "t_uncounted", &["w"], "w");
    uncounted.scans = None;
    let mut f = facts(
        vec![],
        vec![index("t", "t_idle", &["v"], "v"), unique, used, uncounted],
        vec![],
    );
    f.stats.index_usage_since = Some("2026-01-02T03:04:05Z".into());
    let stats = finish(Backend::Postgres, f);
    let unused: Vec<&str> = stats
        .indexes
        .iter()
        .filter(|i| i.unused)
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(unused, ["t_idle"]);
    assert_eq!(
        stats.recommendations,
        ["DROP INDEX public.t_idle: unused since stats reset (2026-01-02T03:04:05Z)"]
    );
}

#[test]
fn duplicates_are_dropped_in_each_dialect_and_constraints_are_dropped_as_constraints() {
    let mut a = index("Orders", "a", &["x"], "s");
    a.scans = Some(5);
    let f = facts(vec![], vec![a, index("Orders", "b", &["x"], "s")], vec![]);
    let pg = finish(Backend::Postgres, f);
    assert_eq!(pg.recommendations, ["DROP INDEX public.b: duplicates a"]);

    let mut a = index("Orders", "a", &["x"], "s");
    a.schema = "dbo".into();
    a.unique = true;
    a.constraint = true;
    let mut b = a.clone();
    b.name = "b".into();
    let ms = finish(Backend::SqlServer, facts(vec![], vec![a, b], vec![]));
    assert_eq!(
        ms.recommendations,
        ["ALTER TABLE dbo.Orders DROP CONSTRAINT b: its index duplicates a"]
    );

    let mut a = index("t", "idx", &["x"], "s");
    a.schema = "dbo".into();
    let mut b = a.clone();
    b.name = "idx 2".into();
    let ms = finish(Backend::SqlServer, facts(vec![], vec![a, b], vec![]));
    assert_eq!(
        ms.recommendations[0],
        "DROP INDEX [idx 2] ON dbo.t: duplicates idx"
    );
}

#[test]
fn tables_get_vacuum_at_autovacuums_threshold_and_analyze_when_never_analyzed() {
    let mut never = table("fresh", 10, 0);
    never.analyzed = Some(false);
    let mut empty_never = table("empty", 0, 0);
    empty_never.analyzed = Some(false);
    let mut stale = table("stale", 1000, 0);
    stale.modified_since_analyze = Some(150);
    let mut unknown = table("unknown", 10, 0);
    unknown.analyzed = None;
    unknown.dead_tuples = None;
    let mut bloated_never = table("bloated", 650, 350);
    bloated_never.analyzed = Some(false);
    let stats = finish(
        Backend::Postgres,
        facts(
            vec![
                bloated_never,
                table("few_dead", 10, 40),
                table("low_share", 1000, 100),
                never,
                empty_never,
                stale,
                table("fine", 1000, 10),
                unknown,
            ],
            vec![],
            vec![],
        ),
    );
    assert_eq!(
        stats.recommendations,
        [
            // One statement does both.
            "VACUUM (ANALYZE) public.bloated: 35% dead tuples (350 dead, 650 live)",
            "ANALYZE public.fresh: never analyzed",
            "ANALYZE public.stale: 150 rows changed since the last analyze",
        ]
    );
}

#[test]
fn a_sqlite_file_mostly_free_is_recommended_a_vacuum() {
    let mut f = facts(vec![], vec![], vec![]);
    f.stats.database_bytes = Some(4 << 20);
    f.stats.free_bytes = Some(3 << 20);
    let stats = finish(Backend::Sqlite, f);
    assert_eq!(
        stats.recommendations,
        ["VACUUM: 75% of the database file (3.0 MiB) is free pages"]
    );
    let mut small = facts(vec![], vec![], vec![]);
    small.stats.database_bytes = Some(100_000);
    small.stats.free_bytes = Some(90_000);
    assert!(finish(Backend::Sqlite, small).recommendations.is_empty());
}

#[test]
fn names_are_quoted_only_where_the_dialect_needs_it() {
    assert_eq!(ident(Backend::Postgres, "orders"), "orders");
    assert_eq!(ident(Backend::Postgres, "Orders"), "\"Orders\"");
    assert_eq!(ident(Backend::Postgres, "order"), "\"order\"");
    assert_eq!(ident(Backend::Postgres, "a\"b"), "\"a\"\"b\"");
    assert_eq!(ident(Backend::Sqlite, "Orders"), "Orders");
    assert_eq!(ident(Backend::Sqlite, "my table"), "\"my table\"");
    assert_eq!(ident(Backend::SqlServer, "Orders"), "Orders");
    assert_eq!(ident(Backend::SqlServer, "user"), "[user]");
    assert_eq!(ident(Backend::SqlServer, "a]b"), "[a]]b]");
    assert_eq!(ident(Backend::Postgres, "1st"), "\"1st\"");
}

#[test]
fn statements_are_collapsed_and_cut_on_a_character_boundary() {
    assert_eq!(short_query("SELECT  1\n  FROM t"), "SELECT 1 FROM t");
    let long = "é".repeat(300);
    let short = short_query(&long);
    assert_eq!(short.chars().count(), QUERY_CHARS + 3);
    assert!(short.ends_with("..."));
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(split_columns(""), Vec::<String>::new());
    assert_eq!(split_columns("a\u{1f}b"), ["a", "b"]);
}

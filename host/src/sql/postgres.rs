//! PostgreSQL statements judged by PostgreSQL's own parser (libpg_query, through `pg_query`).
//!
//! The lexer-based classifier approximates the server's grammar, and every place the two
//! disagree (a `--` comment ended by `\r`, `U&"pg_read_file"`, a keyword hidden by a comment)
//! is a way past a grant. Here the statement is parsed into the tree the server itself builds,
//! and the grant is an allow-list over that tree:
//!
//! - **read-only**: one `SELECT` (or `EXPLAIN`/`SHOW` of one) with no `INTO`, no row locks, no
//!   nested data-modifying statement, no protected catalog, and only functions that are known
//!   not to have side effects. Which functions those are depends on the database (`pg_proc`),
//!   so the names come back in [`Checked::functions`] for the session to resolve; quoting and
//!   escapes are gone by then, so `U&"pg_read_file"` is just `pg_read_file`.
//! - **read-write**: data and table statements only. Anything that reaches outside the
//!   database or outlives the run (`COPY`, `DO`, functions and extensions, roles, server and
//!   database settings, session state, prepared statements, cursors, transaction control) is
//!   refused, and so are calls to the functions that read or write the server's files, signal
//!   other sessions, administer replication or run SQL given as text.
//!
//! What no parser can see (a user function that writes, a view over a volatile function) is
//! held by the second layer: read-only grants run in a `READ ONLY` transaction.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::{SqlError, StatementKind};

/// A function a statement calls, as the parser resolved its name: called by name, or behind
/// an operator or a cast (whose functions a user can define too).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionName {
    pub kind: CallKind,
    /// The schema it was qualified with (`pg_catalog.now()`, `OPERATOR(s.+)`), if any.
    pub schema: Option<String>,
    /// The function's name, the operator's symbol, or the cast's target type.
    pub name: String,
}

/// How a statement reaches a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallKind {
    Function,
    Operator,
    /// A cast to the named type: every cast function to it counts.
    Cast,
}

impl FunctionName {
    fn new(kind: CallKind, parts: &[&str]) -> Option<FunctionName> {
        let (name, schema) = match parts {
            [] => return None,
            [name] => (name, None),
            [.., schema, name] => (name, Some((*schema).to_owned())),
        };
        Some(FunctionName {
            kind,
            schema,
            name: (*name).to_owned(),
        })
    }
}

impl std::fmt::Display for FunctionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let schema = self
            .schema
            .as_deref()
            .map(|s| format!("{s}."))
            .unwrap_or_default();
        match self.kind {
            CallKind::Function => write!(f, "{schema}{}()", self.name),
            CallKind::Operator => write!(f, "operator {schema}{}", self.name),
            CallKind::Cast => write!(f, "a cast to {schema}{}", self.name),
        }
    }
}

/// A statement a grant allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub kind: StatementKind,
    /// The statement's SQL words (`SELECT`, `CREATE TABLE`), for messages.
    pub keyword: String,
    /// Functions a read-only statement calls: each must be resolved against the database
    /// before the statement may run ([`function_allowed`]). Empty for read-write grants.
    pub functions: Vec<FunctionName>,
}

/// Why a grant refuses a statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The text is not one statement PostgreSQL can parse.
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("{0}")]
    Syntax(String),
    /// Transaction control: the API owns transactions.
    #[error(
        "{0} is transaction control; use begin() and the transaction's commit()/rollback() \
         instead"
    )]
    TransactionControl(String),
    /// Not a read, on a read-only grant.
    #[error("{0}")]
    NotARead(String),
    /// Refused on every grant.
    #[error("{0}")]
    Forbidden(String),
}

/// What the walk over one parse tree found.
#[derive(Debug, Default)]
struct Tree {
    /// Every statement node (`SelectStmt`, `InsertStmt`...), the top one first.
    statements: Vec<String>,
    functions: BTreeSet<FunctionName>,
    /// Relations as (schema, name); the schema is empty when unqualified.
    relations: BTreeSet<(String, String)>,
    into: bool,
    locking: bool,
    /// The parameter a top-level `SET`/`RESET` names (`TRANSACTION` for SET TRANSACTION).
    set_name: Option<String>,
    /// An `OWNER TO` somewhere (ALTER TABLE ... OWNER TO).
    owner_change: bool,
    /// Kinds (`ObjectType`) of what DROP, RENAME and COMMENT name.
    objects: Vec<i64>,
}

/// Most nesting levels of the JSON tree the walk descends; libpg_query's own stack check
/// (at most 2 MB of C stack) stops far shallower trees in practice.
const MAX_DEPTH: usize = 200_000;

/// Stack for the checker thread. The parse tree's depth is the guest's to choose: libpg_query
/// refuses what would overflow 2 MB of its stack, and decoding, serialising and walking the
/// same tree in Rust takes several times that, so the check never runs on a runtime thread's
/// small stack. The memory is reserved, not touched, unless a statement is that deep.
const CHECKER_STACK: usize = 256 << 20;

/// Parses `sql` (one statement, `$n` placeholders) and checks it against a grant, on a
/// checker thread (see [`CHECKER_STACK`]).
pub fn check(sql: &str, read_only: bool) -> Result<Checked, Refusal> {
    let checker = Checker::take()
        .map_err(|e| Refusal::Syntax(format!("the statement cannot be checked: {e}")))?;
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    checker
        .jobs
        .send((sql.to_owned(), read_only, reply))
        .map_err(|_| checker_failed())?;
    let result = answer.recv().map_err(|_| checker_failed())?;
    checker.give_back();
    result
}

fn checker_failed() -> Refusal {
    Refusal::Syntax("the statement could not be checked (the checker failed)".into())
}

/// A job for a checker thread: the statement, the grant's mode, where the verdict goes.
type CheckJob = (
    String,
    bool,
    std::sync::mpsc::SyncSender<Result<Checked, Refusal>>,
);

/// A checker thread waiting for statements. Threads are kept and reused: starting one (and
/// reserving, then releasing, its stack) for every statement cost a run's first statements
/// a thread start each, where one check takes tens of microseconds.
struct Checker {
    jobs: std::sync::mpsc::Sender<CheckJob>,
}

/// Idle checkers; at most [`IDLE_CHECKERS`] are kept.
static IDLE: std::sync::Mutex<Vec<Checker>> = std::sync::Mutex::new(Vec::new());
const IDLE_CHECKERS: usize = 4;

impl Checker {
    /// An idle checker, or a new one when all are busy (checks on other threads).
    fn take() -> std::io::Result<Checker> {
        if let Some(idle) = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(idle);
        }
        let (jobs, queue) = std::sync::mpsc::channel::<CheckJob>();
        std::thread::Builder::new()
            .name("flowhost-sql-check".into())
            .stack_size(CHECKER_STACK)
            .spawn(move || {
                for (sql, read_only, reply) in queue {
                    // A panic fails this check, not the checker.
                    let verdict = std::panic::catch_unwind(|| check_here(&sql, read_only));
                    let verdict = verdict.unwrap_or_else(|_| Err(checker_failed()));
                    let _ = reply.send(verdict);
                }
            })?;
        Ok(Checker { jobs })
    }

    fn give_back(self) {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_CHECKERS {
            idle.push(self);
        }
    }
}

fn check_here(sql: &str, read_only: bool) -> Result<Checked, Refusal> {
    if sql.contains('\0') {
        return Err(Refusal::Syntax(
            "the SQL text contains a NUL character".into(),
        ));
    }
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| match e {
        pg_query::Error::Parse(message) => {
            Refusal::Syntax(format!("PostgreSQL cannot parse the statement: {message}"))
        }
        pg_query::Error::Decode(_) => Refusal::Syntax(
            "the statement is nested too deeply to be checked; simplify it or split it".into(),
        ),
        other => Refusal::Syntax(format!("the statement cannot be checked: {other}")),
    })?;
    match parsed.protobuf.stmts.len() {
        0 => return Err(SqlError::Empty.into()),
        1 => {}
        _ => return Err(SqlError::MultipleStatements.into()),
    }
    let tree = serde_json::to_value(&parsed.protobuf.stmts[0])
        .map_err(|e| Refusal::Syntax(format!("the statement cannot be checked: {e}")))?;
    let mut found = Tree::default();
    walk(&tree, 0, &mut found)?;
    let top = found
        .statements
        .first()
        .cloned()
        .ok_or_else(|| Refusal::Syntax("no statement found".into()))?;
    let keyword = keyword_of(&top);
    let sets_transaction = matches!(
        found.set_name.as_deref(),
        Some(
            "TRANSACTION"
                | "SESSION CHARACTERISTICS"
                | "transaction_read_only"
                | "transaction_isolation"
                | "default_transaction_read_only"
        )
    );
    if top == "TransactionStmt" || (top == "VariableSetStmt" && sets_transaction) {
        return Err(Refusal::TransactionControl(first_words(sql)));
    }
    if let Some(rel) = found.relations.iter().find(|r| protected_relation(r)) {
        return Err(Refusal::Forbidden(format!(
            "{} holds server secrets (password hashes, authentication rules or server \
             settings) and is not readable through a grant",
            rel.1
        )));
    }
    if read_only {
        check_read(&found, &keyword)?;
        if let Some(f) = found.functions.iter().find(|f| denied_function(f)) {
            return Err(Refusal::NotARead(format!(
                "{f} reaches outside the database or changes session state; it is refused on \
                 every grant"
            )));
        }
        return Ok(Checked {
            kind: StatementKind::Read,
            keyword,
            functions: found.functions.into_iter().collect(),
        });
    }
    check_write(&found)?;
    let kind = match top.as_str() {
        "SelectStmt" if !found.into && !found.locking => StatementKind::Read,
        "SelectStmt" | "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
            StatementKind::Write
        }
        "ExplainStmt" | "VariableShowStmt" => StatementKind::Read,
        _ => StatementKind::Ddl,
    };
    Ok(Checked {
        kind,
        keyword,
        functions: Vec::new(),
    })
}

fn check_read(found: &Tree, keyword: &str) -> Result<(), Refusal> {
    const READS: &[&str] = &["SelectStmt", "ExplainStmt", "VariableShowStmt"];
    if let Some(stmt) = found
        .statements
        .iter()
        .find(|s| !READS.contains(&s.as_str()))
    {
        let what = keyword_of(stmt);
        return Err(Refusal::NotARead(if what == keyword {
            format!("{keyword} is not a read")
        } else {
            format!("{keyword} holds a {what}, which is not a read")
        }));
    }
    if found.into {
        return Err(Refusal::NotARead(
            "SELECT ... INTO creates a table; it is not a read".into(),
        ));
    }
    if found.locking {
        return Err(Refusal::NotARead(
            "FOR UPDATE/FOR SHARE takes row locks; it is not a read".into(),
        ));
    }
    Ok(())
}

/// Statement nodes a read-write grant may run, anywhere in the tree: data statements and the
/// DDL of tables, views, indexes, sequences and types. Everything else belongs in a migration
/// (reviewed, run by the operator) or nowhere.
#[rustfmt::skip]
const READ_WRITE_STATEMENTS: &[&str] = &[
    "SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "ExplainStmt",
    "VariableShowStmt", "CreateStmt", "CreateTableAsStmt", "AlterTableStmt", "DropStmt",
    "TruncateStmt", "IndexStmt", "ViewStmt", "CreateSeqStmt", "AlterSeqStmt", "RenameStmt",
    "CommentStmt", "CompositeTypeStmt", "CreateEnumStmt", "AlterEnumStmt", "CreateDomainStmt",
    "CreateSchemaStmt", "RefreshMatViewStmt", "VacuumStmt", "ClusterStmt", "ReindexStmt",
    "CreateStatsStmt", "LockStmt", "NotifyStmt", "CallStmt", "CreateTrigStmt",
];

/// Objects a read-write grant may rename or drop: the same tables-views-indexes-sequences-types
/// world it may create. Roles, databases, tablespaces, functions, extensions and the rest are
/// migrations' business (or nobody's).
fn object_allowed(kind: i64) -> bool {
    use pg_query::protobuf::ObjectType as O;
    [
        O::ObjectAttribute,
        O::ObjectColumn,
        O::ObjectDomain,
        O::ObjectDomconstraint,
        O::ObjectIndex,
        O::ObjectMatview,
        O::ObjectPolicy,
        O::ObjectRule,
        O::ObjectSchema,
        O::ObjectSequence,
        O::ObjectStatisticExt,
        O::ObjectTabconstraint,
        O::ObjectTable,
        O::ObjectTrigger,
        O::ObjectType,
        O::ObjectView,
    ]
    .iter()
    .any(|o| *o as i64 == kind)
}

fn check_write(found: &Tree) -> Result<(), Refusal> {
    if let Some(stmt) = found
        .statements
        .iter()
        .find(|s| !READ_WRITE_STATEMENTS.contains(&s.as_str()))
    {
        let what = keyword_of(stmt);
        return Err(Refusal::Forbidden(match stmt.as_str() {
            "CopyStmt" => "COPY is refused: it reads and writes the server's files or runs \
                           programs there, and COPY FROM STDIN is not part of the protocol \
                           flows use; load rows with execute-batch"
                .into(),
            "VariableSetStmt"
            | "AlterSystemStmt"
            | "AlterDatabaseSetStmt"
            | "AlterRoleSetStmt"
            | "DiscardStmt" => format!(
                "{what} changes session or server settings, which would leak into other runs \
                 on the shared connection or server"
            ),
            "DoStmt"
            | "CreateFunctionStmt"
            | "AlterFunctionStmt"
            | "CreatePLangStmt"
            | "CreateExtensionStmt"
            | "AlterExtensionStmt"
            | "LoadStmt" => format!(
                "{what} defines or runs code the host cannot check; create functions and \
                 extensions in a migration"
            ),
            "PrepareStmt" | "ExecuteStmt" | "DeallocateStmt" | "DeclareCursorStmt"
            | "FetchStmt" | "ClosePortalStmt" | "ListenStmt" | "UnlistenStmt" => format!(
                "{what} keeps state on the shared connection; use the API's statements and \
                 cursors instead"
            ),
            _ => format!(
                "{what} is not allowed through a grant (only data statements and the DDL of \
                 tables, views, indexes, sequences and types are); run it in a migration"
            ),
        }));
    }
    if let Some(f) = found.functions.iter().find(|f| denied_function(f)) {
        return Err(Refusal::Forbidden(format!(
            "{f} reaches outside the database (server files, programs, other sessions, \
             replication or SQL given as text) and is refused on every grant"
        )));
    }
    if found.owner_change {
        return Err(Refusal::Forbidden(
            "changing an object's owner is an authorization change; do it in a migration".into(),
        ));
    }
    if found.objects.iter().any(|k| !object_allowed(*k)) {
        return Err(Refusal::Forbidden(
            "renaming or dropping roles, databases, tablespaces, functions, extensions and \
             other non-table objects is not allowed through a grant; do it in a migration"
                .into(),
        ));
    }
    Ok(())
}

/// Walks the JSON form of the protobuf tree: every node is an object keyed by its type, so
/// this sees every node of every type, including ones added in later server versions.
fn walk(value: &Json, depth: usize, found: &mut Tree) -> Result<(), Refusal> {
    if depth > MAX_DEPTH {
        return Err(Refusal::Syntax(
            "the statement is nested too deeply to be checked; simplify it or split it".into(),
        ));
    }
    match value {
        Json::Array(items) => {
            for item in items {
                walk(item, depth + 1, found)?;
            }
        }
        Json::Object(map) => {
            // A relation appears as a `RangeVar` node or as a plain field (`relation`, `rel`,
            // `view`...) of the same shape; recognise it by shape so no field is missed.
            if let (Some(schema), Some(name)) = (
                map.get("schemaname").and_then(Json::as_str),
                map.get("relname").and_then(Json::as_str),
            ) {
                found.relations.insert((schema.to_owned(), name.to_owned()));
            }
            for (key, inner) in map {
                if key.ends_with("Stmt") && inner.is_object() {
                    found.statements.push(key.clone());
                }
                match key.as_str() {
                    // `funccall` is CALL's own field of the same type.
                    "FuncCall" | "funccall" => {
                        let parts = name_parts(&inner["funcname"]);
                        found
                            .functions
                            .extend(FunctionName::new(CallKind::Function, &parts));
                    }
                    // An expression's operator, a sublink's (`= ANY (SELECT ...)`), a sort's
                    // (`ORDER BY a USING <`).
                    "AExpr" => found.functions.extend(operators_of(&inner["name"])),
                    "oper_name" | "use_op" => found.functions.extend(operators_of(inner)),
                    "TypeCast" => {
                        let parts = name_parts(&inner["type_name"]["names"]);
                        found
                            .functions
                            .extend(FunctionName::new(CallKind::Cast, &parts));
                    }
                    "into_clause" if !inner.is_null() => found.into = true,
                    // ALTER ... OWNER TO, CREATE SCHEMA ... AUTHORIZATION.
                    "newowner" | "authrole" if !inner.is_null() => found.owner_change = true,
                    "remove_type" | "rename_type" | "objtype" if key_of_statement(map) => {
                        if let Some(kind) = inner.as_i64() {
                            found.objects.push(kind);
                        }
                    }
                    "VariableSetStmt" if found.set_name.is_none() => {
                        found.set_name = inner["name"].as_str().map(str::to_owned);
                    }
                    "LockingClause" => found.locking = true,
                    _ => {}
                }
                walk(inner, depth + 1, found)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether `map` is the body of a DROP, RENAME or COMMENT statement (whose object kind counts),
/// recognised by the fields only those have together.
fn key_of_statement(map: &serde_json::Map<String, Json>) -> bool {
    (map.contains_key("remove_type") && map.contains_key("behavior"))
        || (map.contains_key("rename_type") && map.contains_key("newname"))
        || (map.contains_key("objtype") && map.contains_key("comment"))
}

/// A name list of String nodes: `["pg_catalog", "now"]`, `["+"]`.
fn name_parts(list: &Json) -> Vec<&str> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|n| n["node"]["String"]["sval"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// The operators an expression node names. `BETWEEN` (named by its keywords) compares with
/// `>=` and `<=`, which the database resolves for the operands' types.
fn operators_of(list: &Json) -> Vec<FunctionName> {
    let parts = name_parts(list);
    match parts.last() {
        Some(word) if word.chars().all(|c| c.is_ascii_alphabetic() || c == ' ') => [">=", "<="]
            .iter()
            .filter_map(|op| FunctionName::new(CallKind::Operator, &[op]))
            .collect(),
        _ => FunctionName::new(CallKind::Operator, &parts)
            .into_iter()
            .collect(),
    }
}

/// The statement's first two words as written (`PREPARE TRANSACTION`, `COMMIT`), uppercased.
fn first_words(sql: &str) -> String {
    let words: Vec<String> = super::lexer::tokens(sql, super::Backend::Postgres)
        .filter_map(Result::ok)
        .filter(|t| t.kind == super::TokenKind::Word)
        .take(2)
        .map(|t| t.text(sql).to_ascii_uppercase())
        .collect();
    match words.as_slice() {
        [first, second] if matches!(second.as_str(), "TRANSACTION" | "PREPARED" | "WORK") => {
            format!("{first} {second}")
        }
        [first, ..] => first.clone(),
        [] => "the statement".into(),
    }
}

/// `SelectStmt` → `SELECT`, `CreateTableAsStmt` → `CREATE TABLE AS`.
fn keyword_of(node: &str) -> String {
    match node {
        "VariableSetStmt" => return "SET".into(),
        "VariableShowStmt" => return "SHOW".into(),
        "TransactionStmt" => return "transaction control".into(),
        "CreatedbStmt" => return "CREATE DATABASE".into(),
        "DropdbStmt" => return "DROP DATABASE".into(),
        "CreatePLangStmt" => return "CREATE LANGUAGE".into(),
        "CreateTrigStmt" => return "CREATE TRIGGER".into(),
        "ClosePortalStmt" => return "CLOSE".into(),
        "IndexStmt" => return "CREATE INDEX".into(),
        "ViewStmt" => return "CREATE VIEW".into(),
        "CreateStmt" => return "CREATE TABLE".into(),
        "CreateSeqStmt" => return "CREATE SEQUENCE".into(),
        "DoStmt" => return "DO".into(),
        _ => {}
    }
    let stem = node.strip_suffix("Stmt").unwrap_or(node);
    let mut words = String::new();
    for (i, c) in stem.char_indices() {
        if i > 0 && c.is_ascii_uppercase() {
            words.push(' ');
        }
        words.push(c.to_ascii_uppercase());
    }
    words
}

/// Catalogs that hold password hashes, authentication rules, user mappings' passwords,
/// server settings files or raw statistics (sample values of every column).
fn protected_relation((schema, name): &(String, String)) -> bool {
    const PROTECTED: &[&str] = &[
        "pg_authid",
        "pg_shadow",
        "pg_hba_file_rules",
        "pg_ident_file_mappings",
        "pg_file_settings",
        "pg_user_mapping",
        "pg_user_mappings",
        "pg_statistic",
        "pg_largeobject",
        "pg_subscription",
        "pg_replication_origin_status",
    ];
    (schema.is_empty() || schema == "pg_catalog") && PROTECTED.contains(&name.as_str())
}

/// Functions refused on every grant, whatever their volatility, by name (any schema): what
/// reaches the server's file system or programs, other sessions, replication, session state
/// that outlives a statement, large objects on the server's disk, other databases, or runs SQL
/// given as text (which no check here would see). A `*` ends a prefix.
#[rustfmt::skip]
const DENIED_FUNCTIONS: &[&str] = &[
    "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_*", "pg_file_*",
    "lo_import", "lo_export", "pg_terminate_backend", "pg_cancel_backend",
    "pg_signal_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
    "pg_log_backend_memory_contexts", "pg_create_*_replication_slot", "pg_drop_replication_slot",
    "pg_copy_*_replication_slot", "pg_replication_slot_advance", "pg_replication_origin_*",
    "pg_logical_slot_*", "pg_logical_emit_message", "pg_switch_wal", "pg_backup_start",
    "pg_backup_stop", "pg_start_backup", "pg_stop_backup", "pg_create_restore_point",
    "pg_stat_reset*", "pg_wal_replay_*", "set_config", "pg_advisory_lock",
    "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
    "pg_advisory_unlock*", "dblink*", "query_to_xml*", "query_to_xmlschema", "cursor_to_xml*",
    "table_to_xml*", "schema_to_xml*", "database_to_xml*", "ts_stat", "ts_rewrite",
    "pg_import_system_collations",
];

fn denied_function(f: &FunctionName) -> bool {
    f.kind == CallKind::Function && denied_name(&f.name)
}

fn denied_name(name: &str) -> bool {
    DENIED_FUNCTIONS
        .iter()
        .any(|pattern| match pattern.find('*') {
            None => *pattern == name,
            Some(star) => {
                let (prefix, suffix) = (&pattern[..star], &pattern[star + 1..]);
                name.len() >= prefix.len() + suffix.len()
                    && name.starts_with(prefix)
                    && name.ends_with(suffix)
            }
        })
}

/// Volatile functions a read may still call: they only compute a value.
const VOLATILE_BUT_PURE: &[&str] = &[
    "random",
    "random_normal",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
];

/// Whether a read-only statement may call `f`, given the volatility (`i`, `s`, `v`) of every
/// function the database has behind it: every function of that name, every function
/// implementing an operator of that symbol, every cast function to that type. No candidate at
/// all is allowed: the statement will fail on the server ("does not exist"), or the cast needs
/// no function.
pub fn function_allowed(f: &FunctionName, volatilities: &[char]) -> bool {
    if denied_function(f) {
        return false;
    }
    let pure = f.kind == CallKind::Function && VOLATILE_BUT_PURE.contains(&f.name.as_str());
    pure || volatilities.iter().all(|v| *v != 'v')
}

/// The catalog query that resolves what statements call, for the kinds in `kinds` (in that
/// order, `$1`, `$2`, ... each a `text[]` of function names, operator symbols or cast target
/// types): one row per kind (`f` function, `o` operator, `c` cast), schema and name, with the
/// volatilities of all its overloads in one string (`"si"`; one whose function is missing
/// counts as `v`).
///
/// Why one row per name rather than per overload: `=` alone has 63 overloads in `pg_catalog`,
/// and decoding a row costs the host more than the server's grouping does.
///
/// Why only the kinds asked for: the query runs on the session's connection, usually a
/// backend that has just started, where every catalog it opens is read cold; a statement with
/// only operators in it (`WHERE status = 'done'`) opens neither `pg_cast` nor plans its branch.
///
/// Why a hash join to `pg_proc` and `bool_or` per volatility, where this was an index probe
/// of `pg_proc` and `pg_namespace` per overload and a sorted `string_agg(DISTINCT ...)`: the
/// probes were most of the work. On a new backend the common operators' 530 overloads (see
/// [`common_operators`]) took the server 5.6 ms (parse, bind, execute), against 3.0 ms now;
/// `=` alone about the same either way. The schema is named once per group, not per overload.
pub fn function_volatility_sql(kinds: &[CallKind]) -> String {
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let p = i + 1;
            // Each kind's candidates as (namespace oid, name, volatility of the function that
            // runs, NULL when it is missing).
            let candidates = match kind {
                CallKind::Function => format!(
                    "SELECT p.pronamespace, p.proname, p.provolatile \
                     FROM pg_catalog.pg_proc p WHERE p.proname = ANY(${p})"
                ),
                // An operator without a function (a shell) cannot be called.
                CallKind::Operator => format!(
                    "SELECT o.oprnamespace, o.oprname, p.provolatile \
                     FROM pg_catalog.pg_operator o \
                     LEFT JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode \
                     WHERE o.oprname = ANY(${p}) AND o.oprcode::oid <> 0"
                ),
                // A cast without a function (binary coercible, I/O conversion) runs no code
                // of anyone's.
                CallKind::Cast => format!(
                    "SELECT t.typnamespace, t.typname, p.provolatile \
                     FROM pg_catalog.pg_cast c \
                     JOIN pg_catalog.pg_type t ON t.oid = c.casttarget \
                     LEFT JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc \
                     WHERE t.typname = ANY(${p}) AND c.castfunc <> 0"
                ),
            };
            format!(
                "SELECT '{}', (SELECT n.nspname::text FROM pg_catalog.pg_namespace n \
                 WHERE n.oid = g.ns), g.name::text, \
                 CASE WHEN g.v THEN 'v' ELSE '' END || CASE WHEN g.s THEN 's' ELSE '' END \
                 || CASE WHEN g.i THEN 'i' ELSE '' END \
                 FROM (SELECT c.ns, c.name, bool_or(c.v IS NULL OR c.v = 'v'), \
                 bool_or(c.v = 's'), bool_or(c.v = 'i') \
                 FROM ({candidates}) c(ns, name, v) GROUP BY c.ns, c.name) g(ns, name, v, s, i)",
                kind.tag()
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The operators most read-only statements use: comparisons (also `IN`'s and `BETWEEN`'s),
/// `LIKE` and `ILIKE`, concatenation and arithmetic. A read-only session learns what they are
/// as it starts (see [`crate::db::Database::learn_common_operators`]), before its first
/// statement needs them.
pub fn common_operators() -> Vec<FunctionName> {
    [
        "=", "<>", "<", ">", "<=", ">=", "~~", "~~*", "!~~", "||", "+", "-", "*", "/",
    ]
    .iter()
    .filter_map(|op| FunctionName::new(CallKind::Operator, &[op]))
    .collect()
}

impl CallKind {
    /// Every kind, in the order [`function_volatility_sql`] numbers their parameters when all
    /// are asked for.
    pub const ALL: [CallKind; 3] = [CallKind::Function, CallKind::Operator, CallKind::Cast];

    /// The tag [`function_volatility_sql`] gives this kind's rows.
    pub fn tag(self) -> &'static str {
        match self {
            CallKind::Function => "f",
            CallKind::Operator => "o",
            CallKind::Cast => "c",
        }
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;

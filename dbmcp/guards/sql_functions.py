"""Which PostgreSQL function calls and system relations a read-only query may use.

Fail closed: a call is allowed when it is a built-in (pg_catalog) function that is not VOLATILE, or one of the
VOLATILE built-ins below that only read, or a user-defined function that the catalog says is IMMUTABLE or STABLE
and not SECURITY DEFINER (or that the operator lists in `allow_functions`). Everything else is refused, and the
explicit denylist refuses the dangerous kinds by name even where a catalog says otherwise (e.g. table_to_xml is
STABLE but runs SQL; txid_current is STABLE but assigns a transaction id). The names come from the function
tables of the PostgreSQL documentation (system administration, system information, large objects, XML,
sequences, text search) and the contrib modules that run SQL or reach outside the database (dblink, tablefunc,
adminpack, pg_prewarm, pg_stat_statements).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from sqlglot import exp

# Side effects, SQL given as text, file or large-object access, server control. Matched by bare name, any schema.
DENIED = frozenset({
    "set_config", "pg_reload_conf", "pg_rotate_logfile", "pg_rotate_logfile_old",
    "pg_cancel_backend", "pg_terminate_backend", "pg_signal_backend", "pg_log_backend_memory_contexts",
    "pg_log_standby_snapshot", "pg_promote", "pg_switch_wal", "pg_create_restore_point", "pg_start_backup",
    "pg_stop_backup", "pg_import_system_collations", "pg_stat_statements_reset", "pg_stat_force_next_flush",
    "pg_stat_clear_snapshot", "pg_nextoid", "pg_stop_making_pinned_objects", "pg_clear_attribute_stats",
    "pg_clear_relation_stats", "pg_restore_attribute_stats", "pg_restore_relation_stats", "pg_export_snapshot",
    "pg_sync_replication_slots", "pg_replication_slot_advance", "brin_summarize_new_values",
    "brin_summarize_range", "brin_desummarize_range", "gin_clean_pending_list", "pg_prewarm", "amvalidate",
    "pg_extension_config_dump",
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml", "table_to_xmlschema",
    "table_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema",
    "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema", "cursor_to_xml",
    "cursor_to_xmlschema", "ts_stat", "ts_rewrite", "xpath_table", "crosstab", "crosstab2", "crosstab3",
    "crosstab4", "connectby", "pg_stat_statements",
    "nextval", "setval", "txid_current", "pg_current_xact_id", "pg_notify", "current_query",
    "pg_stat_get_activity", "pg_stat_get_backend_activity",
    "pg_stat_file", "pg_current_logfile", "pg_logdir_ls", "pg_show_all_file_settings", "pg_hba_file_rules",
    "pg_ident_file_mappings", "loread", "lowrite",
})
DENIED_PREFIXES = ("pg_advisory_", "pg_try_advisory_", "pg_ls_", "pg_read_", "pg_file_", "pg_replication_origin_",
                   "pg_logical_", "pg_create_", "pg_drop_", "pg_copy_", "pg_backup_", "pg_wal_replay_",
                   "pg_stat_reset", "dblink", "binary_upgrade_", "lo_")

# VOLATILE built-ins that only read (or return random values): allowed.
SAFE_VOLATILE = frozenset({
    "random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "uuidv4", "uuidv7",
    "array_sample", "array_shuffle", "pg_sleep", "currval", "lastval", "pg_sequence_last_value",
    "pg_is_in_recovery", "pg_jit_available", "pg_current_wal_lsn", "pg_current_wal_insert_lsn",
    "pg_current_wal_flush_lsn", "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp", "pg_is_wal_replay_paused", "pg_get_wal_replay_pause_state",
    "pg_database_size", "pg_tablespace_size", "pg_relation_size", "pg_table_size", "pg_indexes_size",
    "pg_total_relation_size", "pg_partition_tree", "pg_partition_ancestors", "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids", "pg_notification_queue_usage", "txid_status", "pg_xact_status",
    "pg_xact_commit_timestamp", "pg_last_committed_xact", "pg_stat_have_stats",
})
SAFE_VOLATILE_PREFIXES = ("pg_stat_get_",)

# Functions that take a relation by name (text): a string-literal argument is checked against the allowlist like
# a table reference; {name: {arity: argument index}}. Functions with a `regclass` parameter are added from the
# catalog when the database connects (postgres_catalog.GUARD_FACTS).
RELATION_ARGUMENT: dict[str, dict[int, int]] = {
    **{name: {1: 0, 2: 0} for name in (
        "pg_relation_size", "pg_table_size", "pg_indexes_size", "pg_total_relation_size", "pg_relation_filepath",
        "pg_relation_filenode", "pg_partition_tree", "pg_partition_ancestors", "pg_partition_root", "to_regclass",
        "pg_get_viewdef", "pg_get_serial_sequence", "pg_relation_is_publishable", "pg_get_indexdef",
        "regclassin", "currval", "pg_sequence_last_value", "row_security_active",
    )},
    **{name: {2: 0, 3: 1} for name in (
        "has_table_privilege", "has_sequence_privilege", "has_any_column_privilege",
    )},
    "has_column_privilege": {3: 0, 4: 1},
}
# Functions that take a type by name: a string literal is checked like a type reference (a table's row type).
TYPE_ARGUMENT: dict[str, dict[int, int]] = {"to_regtype": {1: 0}, "to_regtypemod": {1: 0}, "regtypein": {1: 0}}

# Functions that read the system catalogs about an object given by oid or name. When the allowlist does not
# admit the catalogs (pg_catalog.pg_class), they are refused unless every relation argument is a literal name.
CATALOG_READERS = frozenset({
    "col_description", "obj_description", "shobj_description", "format_type", "pg_table_size",
    "pg_indexes_size", "pg_total_relation_size", "row_security_active", "pg_column_is_updatable",
    "pg_stat_have_stats", "pg_basetype", "currval", "record_in", "record_recv", "pg_describe_object",
    "pg_filenode_relation", "pg_sequence_parameters", "pg_sequence_last_value",
})
CATALOG_READER_PREFIXES = ("pg_get_", "pg_stat_get_", "has_", "pg_relation_", "pg_partition_", "pg_index",
                           "pg_identify_object", "to_reg", "regclass", "regtype")

# System relations that show row values of other tables, other sessions' statements or secrets: refused even when
# the allowlist admits the catalogs ("schema.name", and bare names for extension views in any schema).
DATA_RELATIONS = frozenset({
    "pg_catalog.pg_statistic", "pg_catalog.pg_stats", "pg_catalog.pg_stats_ext", "pg_catalog.pg_stats_ext_exprs",
    "pg_catalog.pg_statistic_ext_data", "pg_catalog.pg_authid", "pg_catalog.pg_shadow",
    "pg_catalog.pg_user_mapping", "pg_catalog.pg_user_mappings", "pg_catalog.pg_subscription",
    "pg_catalog.pg_largeobject", "pg_catalog.pg_stat_activity", "pg_catalog.pg_file_settings",
    "pg_catalog.pg_hba_file_rules", "pg_catalog.pg_ident_file_mappings", "information_schema.user_mapping_options",
    "information_schema.user_mappings",
})
DATA_RELATION_NAMES = frozenset({"pg_stat_statements"})


@dataclass(frozen=True)
class FunctionCatalog:
    """What the connected database says about its functions (loaded when the pool first connects)."""

    builtin: frozenset[str] = frozenset()  # pg_catalog function names that are not VOLATILE
    builtin_volatile: frozenset[str] = frozenset()
    user_safe: frozenset[str] = field(default_factory=frozenset)  # "schema.name" and "name": every overload safe
    user_unsafe: frozenset[str] = field(default_factory=frozenset)  # "schema.name" and "name": some overload not
    allowed: frozenset[str] = frozenset()  # the database's allow_functions, lower-cased
    regclass_args: dict[str, frozenset[int]] = field(default_factory=dict)  # name -> indexes of regclass params

    def knows(self, name: str) -> bool:
        """Whether `name` is a function of this database (in any schema)."""
        return (name in self.builtin or name in self.builtin_volatile or name in self.user_safe
                or name in self.user_unsafe)


UNKNOWN = "not a function dbmcp knows to be read-only"


def denied(name: str) -> bool:
    return name in DENIED or name.startswith(DENIED_PREFIXES)


def catalog_reader(name: str) -> bool:
    return name in CATALOG_READERS or name.startswith(CATALOG_READER_PREFIXES) or name.endswith("_is_visible")


def relation_positions(catalog: FunctionCatalog, name: str, arity: int) -> frozenset[int]:
    """The argument indexes of a call that name a relation (static text forms plus the catalog's regclass ones)."""
    static = RELATION_ARGUMENT.get(name, {}).get(arity)
    from_catalog = catalog.regclass_args.get(name, frozenset())
    positions = from_catalog | {static} if static is not None else from_catalog
    return frozenset(i for i in positions if i < arity)


def verdict(catalog: FunctionCatalog, schema: str | None, name: str) -> str | None:
    """None when the call is allowed, else the reason it is not (ending in UNKNOWN when the catalog lacks it)."""
    if denied(name):
        return f"{name}() is not allowed: it has side effects or runs SQL or files outside the query"
    qualified = f"{schema}.{name}" if schema else None
    if name in catalog.allowed or qualified in catalog.allowed:
        return None
    builtin_schema = schema in (None, "pg_catalog")
    if builtin_schema and name in catalog.builtin and (schema or name not in catalog.user_unsafe):
        return None
    if builtin_schema and name in catalog.builtin_volatile:
        if name in SAFE_VOLATILE or name.startswith(SAFE_VOLATILE_PREFIXES):
            return None
        return f"{name}() is not allowed: it can change state"
    key = qualified or name
    if schema != "pg_catalog" and key in catalog.user_safe and key not in catalog.user_unsafe:
        return None
    if key in catalog.user_unsafe:
        return f"{key}() is not allowed: it is VOLATILE or SECURITY DEFINER (list it in allow_functions to allow it)"
    return f"{key}() is not allowed: {UNKNOWN}"


def call_reason(catalog: FunctionCatalog, schema: str | None, name: str, args: list[exp.Expression],
                max_sleep_s: float) -> str | None:
    """Why a call name(args) is refused, or None."""
    if name in ("pg_sleep_for", "pg_sleep_until"):
        return f"{name}() is not allowed; use pg_sleep(seconds) within the timeout"
    if name == "row" and schema is None:
        return None  # ROW(a, b): a row constructor, not a function
    reason = verdict(catalog, schema, name)
    if reason is None and name == "pg_sleep":
        arg = args[0] if len(args) == 1 else None
        if not (isinstance(arg, exp.Literal) and not arg.is_string and _number(arg.this) <= max_sleep_s):
            return f"pg_sleep() is not allowed beyond the timeout ({max_sleep_s:g} s) or with a computed argument"
    return reason


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")


@cache
def _typed_names(kind: type[exp.Func]) -> tuple[str, ...]:
    return tuple(name.lower() for name in kind.sql_names())


def typed_reason(catalog: FunctionCatalog, kind: type[exp.Func]) -> str | None:
    """sqlglot parses some calls into typed nodes (random() -> Rand) and forgets the name as written: refused when
    any of its names is denied, or is a user-defined function that is not read-only (it could shadow a built-in)."""
    for name in _typed_names(kind):
        if denied(name) or (name in catalog.user_unsafe and name not in catalog.allowed):
            return verdict(catalog, None, name)
    return None


def attribute_reason(catalog: FunctionCatalog, name: str | None, catalog_visible: bool) -> str | None:
    """PostgreSQL reads x.f (and (expr).f) as f(x) when x has no column f: f is judged like a call."""
    if name is None or not catalog.knows(name):
        return None  # a column, not a function of this database
    reason = verdict(catalog, None, name)
    if reason is None and (name.startswith("pg_sleep") or (not catalog_visible and catalog_reader(name))
                           or name in RELATION_ARGUMENT or name in TYPE_ARGUMENT or name in catalog.regclass_args):
        reason = f"{name}() is not allowed with a computed argument"
    return f"{reason} (.{name} calls it in attribute notation)" if reason else None


def builtin_only(catalog: FunctionCatalog, schema: str | None, name: str) -> bool:
    """Whether a call of name (unqualified or in pg_catalog) can only reach a built-in function."""
    builtin = name in catalog.builtin or name in catalog.builtin_volatile
    return builtin and (schema == "pg_catalog" or (name not in catalog.user_safe and name not in catalog.user_unsafe))


def user_named(catalog: FunctionCatalog, what: type[exp.Func] | str | None) -> bool:
    """Whether a typed call's names (or an attribute name) could denote a user-defined function."""
    names = _typed_names(what) if isinstance(what, type) else (what,)
    return any(n in catalog.user_safe or n in catalog.user_unsafe for n in names)

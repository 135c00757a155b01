"""Which PostgreSQL function calls a read-only query may make.

Fail closed: a call is allowed when it is a built-in (pg_catalog) function that is not VOLATILE, or one of the
VOLATILE built-ins below that only read, or a user-defined function that the catalog says is IMMUTABLE or STABLE
and not SECURITY DEFINER (or that the operator lists in `allow_functions`). Everything else is refused, and the
explicit denylist refuses the dangerous kinds by name even where a catalog says otherwise (e.g. table_to_xml is
STABLE but runs SQL; txid_current is STABLE but assigns a transaction id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Side effects, SQL given as text, file or large-object access, server control. Matched by bare name, any schema.
DENIED = frozenset({
    "set_config", "pg_reload_conf", "pg_rotate_logfile", "pg_rotate_logfile_old",
    "pg_cancel_backend", "pg_terminate_backend", "pg_signal_backend", "pg_log_backend_memory_contexts",
    "pg_log_standby_snapshot", "pg_promote", "pg_switch_wal", "pg_create_restore_point", "pg_backup_start",
    "pg_backup_stop", "pg_start_backup", "pg_stop_backup", "pg_wal_replay_pause", "pg_wal_replay_resume",
    "pg_import_system_collations", "pg_stat_reset", "pg_stat_reset_shared", "pg_stat_reset_slru",
    "pg_stat_reset_single_table_counters", "pg_stat_reset_single_function_counters",
    "pg_stat_reset_replication_slot", "pg_stat_reset_subscription_stats", "pg_stat_reset_backend_stats",
    "pg_stat_statements_reset", "pg_stat_force_next_flush", "pg_nextoid", "pg_stop_making_pinned_objects",
    "pg_clear_attribute_stats", "pg_clear_relation_stats", "pg_restore_attribute_stats",
    "pg_restore_relation_stats", "pg_export_snapshot", "pg_sync_replication_slots", "pg_replication_slot_advance",
    "pg_logical_emit_message", "brin_summarize_new_values", "brin_summarize_range", "brin_desummarize_range",
    "gin_clean_pending_list", "pg_prewarm", "amvalidate",
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml", "table_to_xmlschema",
    "table_to_xml_and_xmlschema", "schema_to_xml", "schema_to_xmlschema", "schema_to_xml_and_xmlschema",
    "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema", "cursor_to_xml",
    "cursor_to_xmlschema", "ts_stat", "ts_rewrite", "xpath_table", "crosstab", "crosstab2", "crosstab3",
    "crosstab4", "connectby",
    "nextval", "setval", "txid_current", "pg_current_xact_id", "pg_notify", "current_query",
    "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_current_logfile", "pg_file_write",
    "pg_file_rename", "pg_file_unlink", "pg_file_sync", "pg_logdir_ls", "pg_show_all_file_settings",
    "pg_hba_file_rules", "pg_ident_file_mappings",
    "lo_import", "lo_export", "lo_create", "lo_creat", "lo_unlink", "lo_open", "lo_close", "lo_put", "lo_get",
    "lo_from_bytea", "lo_truncate", "lo_truncate64", "lo_lseek", "lo_lseek64", "lo_tell", "lo_tell64",
    "loread", "lowrite",
})
DENIED_PREFIXES = ("pg_advisory_", "pg_try_advisory_", "pg_ls_", "pg_replication_origin_", "pg_logical_slot_",
                   "pg_create_", "pg_drop_", "pg_copy_", "dblink", "binary_upgrade_", "lo_", "pg_file_")

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

# Functions that take a relation by name: a string-literal argument is checked against the allowlist like a
# table reference; {name: argument index (or per arity)}.
RELATION_ARGUMENT: dict[str, dict[int, int]] = {
    **{name: {1: 0, 2: 0} for name in (
        "pg_relation_size", "pg_table_size", "pg_indexes_size", "pg_total_relation_size", "pg_relation_filepath",
        "pg_relation_filenode", "pg_partition_tree", "pg_partition_ancestors", "pg_partition_root", "to_regclass",
        "pg_get_viewdef", "pg_get_serial_sequence", "pg_relation_is_publishable", "pg_get_indexdef",
    )},
    **{name: {2: 0, 3: 1} for name in (
        "has_table_privilege", "has_sequence_privilege", "has_any_column_privilege",
    )},
    "has_column_privilege": {3: 0, 4: 1},
}


@dataclass(frozen=True)
class FunctionCatalog:
    """What the connected database says about its functions (loaded when the pool first connects)."""

    builtin: frozenset[str] = frozenset()  # pg_catalog function names that are not VOLATILE
    builtin_volatile: frozenset[str] = frozenset()
    user_safe: frozenset[str] = field(default_factory=frozenset)  # "schema.name" and "name": every overload safe
    user_unsafe: frozenset[str] = field(default_factory=frozenset)  # "schema.name" and "name": some overload not
    allowed: frozenset[str] = frozenset()  # the database's allow_functions, lower-cased


UNKNOWN = "not a function dbmcp knows to be read-only"


def verdict(catalog: FunctionCatalog, schema: str | None, name: str) -> str | None:
    """None when the call is allowed, else the reason it is not (ending in UNKNOWN when the catalog lacks it)."""
    if name in DENIED or name.startswith(DENIED_PREFIXES):
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

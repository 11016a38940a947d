"""The audit schema, read once from ``audit_sql/`` (BigQuery dialect) and derived for DuckDB.

Every table and view is written once, in BigQuery SQL, under the canonical dataset name
``dagster_audit``. This module parses the files with sqlglot, renames the dataset to the
configured one, and for DuckDB transpiles them (dropping what DuckDB has no use for:
partitioning, clustering, options, ``NOT ENFORCED``). Column lists for record validation and
for BigQuery table resources come from the same parsed DDL, so nothing is declared twice.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import sqlglot
from sqlglot import exp

from ..shipped import shipped_dir

CANONICAL_DATASET = "dagster_audit"

_Node = TypeVar("_Node", bound=exp.Expression)


def sql_root() -> Path:
    """``audit_sql/``: shipped inside the package, or the repo's folder in a checkout."""
    return shipped_dir("audit_sql")


@dataclass(frozen=True)
class Column:
    name: str
    bq_type: str  # STRING, TIMESTAMP, INT64, FLOAT64, BOOL, JSON
    required: bool
    description: str | None = None


@dataclass(frozen=True)
class TableDef:
    name: str
    columns: tuple[Column, ...]
    partition_column: str
    cluster_columns: tuple[str, ...]
    description: str
    ast: exp.Create

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class ViewDef:
    name: str
    ast: exp.Create


def _parse(path: Path) -> exp.Create:
    statements = [s for s in sqlglot.parse(path.read_text(encoding="utf-8"), read="bigquery") if s is not None]
    if len(statements) != 1 or not isinstance(statements[0], exp.Create):
        raise ValueError(f"{path.name}: expected exactly one CREATE statement")
    return statements[0]


def _table_def(path: Path, ast: exp.Create) -> TableDef:
    schema = ast.this
    name = schema.this.name
    columns = []
    for col in schema.expressions:
        if not isinstance(col, exp.ColumnDef):
            continue
        required = any(isinstance(c.args.get("kind"), exp.NotNullColumnConstraint) for c in col.args.get("constraints") or [])
        comment = " ".join(col.comments or []).strip() or None
        columns.append(Column(col.name, col.args["kind"].sql("bigquery").upper(), required, comment))
    props = ast.args.get("properties")
    partition = cluster = None
    description = ""
    for prop in props.expressions if props else []:
        if isinstance(prop, exp.PartitionedByProperty):
            partition = prop.this
        elif isinstance(prop, exp.ClusterProperty):
            cluster = tuple(c.name for c in prop.expressions)
        elif isinstance(prop, exp.Property) and prop.name.lower() == "description":
            description = prop.args["value"].name
    if not (isinstance(partition, exp.Date) and isinstance(partition.this, exp.Column)):
        raise ValueError(f"{path.name}: audit tables must be PARTITION BY DATE(<timestamp column>)")
    if not cluster:
        raise ValueError(f"{path.name}: audit tables must declare CLUSTER BY")
    return TableDef(name, tuple(columns), partition.this.name, cluster, description, ast)


@functools.cache
def tables() -> tuple[TableDef, ...]:
    root = sql_root() / "tables"
    return tuple(_table_def(p, _parse(p)) for p in sorted(root.glob("*.sql")))


@functools.cache
def views() -> tuple[ViewDef, ...]:
    """Views in dependency order: a view that reads another comes after it."""
    root = sql_root() / "views"
    defs = {}
    for path in sorted(root.glob("*.sql")):
        ast = _parse(path)
        defs[ast.this.name] = ViewDef(ast.this.name, ast)
    ordered: list[ViewDef] = []

    def visit(name: str, trail: tuple[str, ...] = ()) -> None:
        if name in trail:
            raise ValueError(f"views reference each other in a cycle: {' -> '.join(trail + (name,))}")
        if any(v.name == name for v in ordered):
            return
        for ref in defs[name].ast.expression.find_all(exp.Table):
            if ref.name in defs and ref.name != name:
                visit(ref.name, trail + (name,))
        ordered.append(defs[name])

    for name in defs:
        visit(name)
    return tuple(ordered)


def table(name: str) -> TableDef:
    for t in tables():
        if t.name == name:
            return t
    raise KeyError(f"no audit table {name!r}; known: {[t.name for t in tables()]}")


def require_object(name: str) -> str:
    """``name`` if it is one of the audit tables or views, else a KeyError listing them."""
    known = {t.name for t in tables()} | {v.name for v in views()}
    if name not in known:
        raise KeyError(f"unknown view {name!r}; known: {sorted(known)}")
    return name


def _retarget(ast: _Node, dataset: str, project: str | None) -> _Node:
    """Point every reference to the canonical dataset at the configured one."""
    ast = ast.copy()
    for ref in ast.find_all(exp.Table):
        if ref.args.get("db") is not None and ref.db == CANONICAL_DATASET:
            ref.set("db", exp.to_identifier(dataset))
            if project:
                ref.set("catalog", exp.to_identifier(project))
    return ast


def bigquery_sql(ast: exp.Create, dataset: str, project: str | None = None) -> str:
    return _retarget(ast, dataset, project).sql("bigquery", pretty=True)


def duckdb_sql(ast: exp.Create, schema: str, *, primary_key: bool = True) -> str:
    """Transpile for DuckDB: same columns and logic, without BigQuery's storage options.
    ``primary_key=False``: a table without its (BigQuery: not enforced) primary key, for the
    tables the DuckDB sink deduplicates by time instead (``AuditRecord.DEDUPE_BY_TIME``)."""
    ast = _retarget(ast, schema, None)
    ast.set("properties", None)
    for pk in list(ast.find_all(exp.PrimaryKey)):
        if primary_key:
            pk.set("options", None)
        else:
            pk.pop()
    for node in ast.find_all(exp.Expression):
        node.comments = None
    return ast.sql("duckdb", pretty=True)


def query_sql(sql: str, dialect: str, dataset: str, project: str | None = None) -> str:
    """A read query written like the views (BigQuery SQL on ``dagster_audit``) for one sink's
    dialect (``bigquery`` | ``duckdb``) and dataset: the CLI's ORDER BYs are written once too."""
    parsed = cast(exp.Expression, sqlglot.parse_one(sql, read="bigquery"))
    ast = _retarget(parsed, dataset, project if dialect == "bigquery" else None)
    return ast.sql(dialect)


def iter_all() -> Iterator[tuple[str, str, exp.Create]]:
    """(kind, name, ast) for every table then every view, in creation order."""
    for t in tables():
        yield "table", t.name, t.ast
    for v in views():
        yield "view", v.name, v.ast

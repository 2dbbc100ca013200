"""CSV and Parquet events read column-wise with pyarrow: only the columns validation uses.

Both readers return what ``pandas.read_csv`` (id columns as text) and ``pandas.read_parquet``
returned for the same file, minus the columns :func:`recops.data.schema.check_events` never
reads, so the events validate to the same frame. Arrow's buffers are released as each column
reaches pandas (``self_destruct``), text stays in Arrow (pandas' ``str`` dtype), and a CSV
file is parsed block by block, so a 10M-event file loads in a fraction of the time and the
peak memory of pandas' own parsers.

CSV, as pandas reads it: a cell that is empty or one of pandas' null markers (:data:`NULLS`)
is null in every column, quoted or not; other columns are typed by inference, except that
dates and times stay text (pandas leaves them to validation, which parses them). Where the
two parsers would disagree, pandas decides: a header with blank or repeated names, which
pandas renames (``Unnamed: 0``, ``x.1``), is read by pandas. A row with more or fewer fields
than the header is an error (pandas would shift it into an index or pad it with nulls).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from recops.data.schema import ID_COLUMNS, OPTIONAL_COLUMNS, SEQUENCE_COLUMNS

# pandas.read_csv's default na_values (pandas._libs.parsers.STR_NA_VALUES)
NULLS = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"),
    *("<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
)
BLOCK_BYTES = 1 << 20  # Arrow's default; a streamed CSV's types come from its first block
TO_PANDAS = {"self_destruct": True, "split_blocks": True}  # free Arrow's copy column by column

Source = Path | bytes  # a file, or its content


def event_columns(names: Sequence[str]) -> list[str] | None:
    """The columns validation reads, in file order; None (read them all) when a required one
    is missing, so that the error lists every column the file has."""
    sequence = next((c for c in SEQUENCE_COLUMNS if c in names), None)
    if sequence is None or "item_id" not in names or "timestamp" not in names:
        return None
    wanted = {sequence, "item_id", "timestamp", *OPTIONAL_COLUMNS}
    return [n for n in names if n in wanted]


def read_parquet(source: Source) -> pd.DataFrame:
    """A Parquet file's event columns, typed as ``pandas.read_parquet`` types them."""
    columns = event_columns(pq.read_schema(_opened(source)).names)
    frame = pd.read_parquet(_opened(source), columns=columns, pre_buffer=False, to_pandas_kwargs=TO_PANDAS)
    pa.default_memory_pool().release_unused()  # what decoding used, back to the system
    return frame


def read_csv(source: Source) -> pd.DataFrame:
    """A CSV file's event columns, as ``pandas.read_csv`` with the id columns as text reads them."""
    names = _header(source)
    if "" in names or len(set(names)) < len(names):
        return pd.read_csv(_opened(source), dtype=dict.fromkeys(ID_COLUMNS, str))
    columns = event_columns(names) or names
    try:  # block by block, typed by the first block: parse buffers for one block at a time
        table = _csv_table(source, columns, streamed=True)
    except pa.ArrowInvalid:  # a later block needs a wider type (or the file is malformed)
        table = _csv_table(source, columns, streamed=False)
    frame = _to_pandas(table)
    pa.default_memory_pool().release_unused()
    return frame


def _header(source: Source) -> list[str]:
    as_text = pcsv.ConvertOptions(default_column_type=pa.string())  # no inference for a header
    with pcsv.open_csv(_opened(source), convert_options=as_text) as reader:
        return reader.schema.names


def _csv_table(source: Source, columns: list[str], *, streamed: bool) -> pa.Table:
    """The columns, ids as text; read again where a read finds dates or times, which pandas
    leaves as text for validation to parse."""
    text = ID_COLUMNS
    while True:
        options = pcsv.ConvertOptions(
            column_types={c: pa.large_string() for c in text if c in columns},
            include_columns=columns,
            null_values=list(NULLS),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        blocks = pcsv.ReadOptions(block_size=BLOCK_BYTES)
        if streamed:
            with pcsv.open_csv(_opened(source), read_options=blocks, convert_options=options) as reader:
                dated = _dated(reader.schema)
                table = None if dated else pa.Table.from_batches(list(reader), schema=reader.schema)
        else:
            table = pcsv.read_csv(_opened(source), read_options=blocks, convert_options=options)
            dated = _dated(table.schema)
        if table is not None and not dated:
            return table
        text = (*text, *dated)


def _dated(schema: pa.Schema) -> tuple[str, ...]:
    return tuple(f.name for f in schema if pa.types.is_temporal(f.type))


def _opened(source: Source) -> io.BytesIO | str:
    """A fresh handle for each reader (a streaming reader may still read ahead after an error);
    a BytesIO shares the bytes until written to, so this copies nothing."""
    if isinstance(source, bytes):
        return io.BytesIO(source)
    return str(source)  # a path: Arrow infers compression (.gz, .bz2...) from the name


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table`` as pandas' parser would have typed it: an all-null column is float64, and a
    null among booleans is NaN (Arrow gives None)."""
    nullable_bools = []
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.float64()))
        elif pa.types.is_boolean(field.type) and table.column(i).null_count:
            nullable_bools.append(field.name)
    frame = table.to_pandas(**TO_PANDAS)
    for name in nullable_bools:
        values = frame[name].to_numpy(dtype=object)
        frame[name] = np.where(pd.isna(values), np.nan, values)
    return frame

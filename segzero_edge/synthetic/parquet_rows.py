"""Parquet writing shared by the synthetic datasets: a schema that `datasets` reads with the
right features, and rows streamed to disk in small batches (scenes are large PNGs)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BATCH_ROWS = 64


def hf_schema(fields: list[tuple[str, Any]]) -> Any:
    """A pyarrow schema for `fields` whose metadata declares Hugging Face features: image
    structs as `Image`, int lists (and lists of them) as `Sequence`, strings and int64 as
    `Value`. "Sequence" (not datasets>=4's "List") so that datasets 3.x reads it too."""
    import pyarrow as pa

    image, ints = image_type(), pa.list_(pa.int64())
    value = {"string": {"dtype": "string", "_type": "Value"}, "int64": {"dtype": "int64", "_type": "Value"}}
    int_sequence = {"feature": value["int64"], "_type": "Sequence"}
    features: dict[str, Any] = {}
    for name, tp in fields:
        if tp == image:
            features[name] = {"_type": "Image"}
        elif tp == ints:
            features[name] = int_sequence
        elif tp == pa.list_(ints):
            features[name] = {"feature": int_sequence, "_type": "Sequence"}
        else:
            features[name] = value[str(tp)]
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": features}})})


def image_type() -> Any:
    """The struct an image column holds (`{"bytes": PNG, "path": None}`), as `datasets` writes it."""
    import pyarrow as pa

    return pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def write_rows(path: Path, schema: Any, rows: Iterable[dict[str, Any]], total: int, progress: bool, desc: str) -> int:
    """Stream `rows` into a parquet file at `path` (a file with the schema and no rows when
    there are none), with a progress bar over `total`; return the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    written, batch = 0, []
    with pq.ParquetWriter(path, schema) as writer, tqdm(total=total, desc=desc, disable=not progress, unit="row") as bar:
        for row in rows:
            batch.append(row)
            bar.update(1)
            if len(batch) == BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                written, batch = written + len(batch), []
        if batch or not written:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            written += len(batch)
    return written

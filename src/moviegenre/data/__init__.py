"""From ``data.source`` to the prepared table: fetch, unpack, read layouts, validate, split."""

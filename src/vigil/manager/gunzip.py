"""Bounded gunzip of request bodies: a small gzip bomb is refused before it fills memory.

Shared by the body guard middleware (every gzip body but ``POST /logs``) and the ingest parser
workers, which inflate ``POST /logs`` batches themselves so the event loop neither inflates them
nor sends ~25x more bytes to the worker process.
"""

from __future__ import annotations

import zlib

from vigil.manager.errors import BadRequest, TooLarge

__all__ = ["gunzip_bounded"]


def gunzip_bounded(body: bytes, limit: int) -> bytes:
    """The decompressed ``body`` (concatenated gzip members too); TooLarge past ``limit`` bytes,
    BadRequest when it is not gzip."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
        while inflater.unused_data and len(out) <= limit:  # concatenated gzip members
            rest = inflater.unused_data
            inflater = zlib.decompressobj(wbits=31)
            out += inflater.decompress(rest, limit + 1 - len(out))
    except zlib.error as exc:
        raise BadRequest(f"invalid gzip body: {exc}", field="body") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise TooLarge(f"request body over {limit} bytes once decompressed")
    return out

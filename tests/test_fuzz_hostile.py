"""Fuzzing what the web hands us: damaged WARC bytes through the reader and the text
stage's slice filter, HTML bytes with any charset label through extraction.

Invariants: nothing raises; every response read leaves the slice kept or removed (with a
reason); damage costs only the records it touches. Hypothesis runs derandomized (a fixed
seed) with bounded examples, so the suite is repeatable and takes a few seconds.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawl2chat.config import build
from crawl2chat.crawl.warc import ReadStats, WarcShardWriter, iter_responses
from crawl2chat.text import recipe
from crawl2chat.text.chunks import Chunk, filter_slice
from crawl2chat.text.extract import Extraction, decode_html
from crawl2chat.text.steps import Doc

FUZZ = settings(derandomize=True, deadline=None, database=None, max_examples=150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
RECORDS = 4


def _warc() -> tuple[bytes, list[int]]:
    """A small shard of RECORDS pages, and where each record ends."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.warc.gz"
        with WarcShardWriter(path) as writer:
            ends = [sum(writer.write(
                f"https://example.org/{i}",
                f"<html><body><p>Page {i} says hello to the fuzzer.</p></body></html>".encode(),
                record_id=f"<urn:uuid:00000000-0000-0000-0000-{i:012d}>"))
                for i in range(RECORDS)]
        return path.read_bytes(), ends


BLOB, ENDS = _warc()


def _read(blob: bytes) -> tuple[int, ReadStats]:
    stats = ReadStats()
    responses = list(iter_responses(io.BytesIO(blob), stats, name="fuzz.warc.gz"))
    assert len(responses) == stats.responses
    return len(responses), stats


@FUZZ
@given(st.integers(0, len(BLOB)))
def test_truncation_keeps_every_whole_record_and_counts_the_cut_one(cut: int) -> None:
    whole = sum(end <= cut for end in ENDS)
    n, stats = _read(BLOB[:cut])
    if cut in (0, *ENDS):
        assert n == whole and not stats.skipped
    else:  # the cut record is counted; it is read only if just its gzip trailer is gone
        assert whole <= n <= whole + 1
        assert n + sum(stats.skipped.values()) >= whole + 1


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(BLOB) - 1), st.integers(0, 7)),
                min_size=1, max_size=3))
def test_bit_flips_cost_only_the_records_they_touch(flips: list[tuple[int, int]]) -> None:
    blob = bytearray(BLOB)
    for position, bit in flips:
        blob[position] ^= 1 << bit
    n, stats = _read(bytes(blob))
    touched = {sum(end <= position for end in ENDS) for position, _ in flips}
    assert RECORDS - len(touched) <= n <= RECORDS
    assert n + sum(stats.skipped.values()) >= RECORDS - len(touched)


@FUZZ
@given(st.integers(0, len(BLOB)), st.binary(min_size=1, max_size=64))
def test_inserted_bytes_cost_at_most_the_record_they_land_in(position: int, junk: bytes) -> None:
    n, stats = _read(BLOB[:position] + junk + BLOB[position:])
    assert RECORDS - 1 <= n <= RECORDS
    if n < RECORDS:
        assert sum(stats.skipped.values()) >= 1


def _cfg() -> recipe.Cfg:
    return build(recipe.Cfg, {"languages": {"en": 1.0}, "min_chars": 20}, "text")


@settings(FUZZ, max_examples=25)
@given(st.one_of(
    st.integers(0, len(BLOB)).map(lambda cut: BLOB[:cut]),
    st.tuples(st.integers(0, len(BLOB) - 1), st.integers(0, 7)).map(
        lambda f: BLOB[:f[0]] + bytes([BLOB[f[0]] ^ (1 << f[1])]) + BLOB[f[0] + 1:]),
    st.tuples(st.integers(0, len(BLOB)), st.binary(min_size=1, max_size=32)).map(
        lambda p: BLOB[:p[0]] + p[1] + BLOB[p[0]:])))
def test_damaged_shards_through_the_slice_filter(tmp_path_factory, blob: bytes) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "crawl-00000.warc.gz").write_bytes(blob)
    work = folder / "work"
    work.mkdir()
    result = filter_slice(Chunk("crawl-00000.warc.gz", 0, len(blob), RECORDS), 0, folder,
                          _cfg(), None, work)
    kept, removed = result.kept, len(result.removed)
    assert kept + removed == result.read.responses <= RECORDS
    assert result.stats["extract"].docs_in == result.read.responses


LABELS = ["utf-8", "UTF8", "latin-1", "cp1252", "utf-16", "utf-16-be", "utf-32", "utf-7",
          "shift_jis", "gb18030", "koi8-r", "idna", "punycode", "raw_unicode_escape",
          "unicode_escape", "rot13", "base64", "zlib_codec", "hex", "bz2_codec", "uu",
          "quopri", "x-user-defined", "mbcs", "oem", "undefined", "charmap", "nonsense",
          "utf-8-sig", "ascii", "big5hkscs", "iso2022_jp"]


@settings(FUZZ, max_examples=120)
@given(st.one_of(st.binary(max_size=600),
                 st.text(max_size=300).map(lambda t: f"<p>{t}</p>".encode("utf-8",
                                                                         "surrogatepass"))),
       st.one_of(st.sampled_from(LABELS), st.text(max_size=12)),
       st.sampled_from(["header", "meta", "both"]))
def test_any_html_and_charset_label_gives_text_or_a_reason(html: bytes, label: str,
                                                          where: str) -> None:
    ctype = f"text/html; charset={label}" if where != "meta" else "text/html"
    if where != "header":
        html = f"<meta charset=\"{label}\">".encode("utf-8", "surrogatepass") + html
    decoded, how = decode_html(html, ctype)
    assert isinstance(how, str) and how
    assert decoded is None or isinstance(decoded, str)
    doc = Doc("d", "https://example.org/", "w", ctype, html)
    why = Extraction(min_chars=1, max_html_bytes=10_000)(doc)
    assert why is None or isinstance(why, str)
    assert (why is None) == bool(doc.text)


def test_the_fuzzed_shard_is_sound_before_damage(tmp_path: Path) -> None:
    n, stats = _read(BLOB)
    assert n == RECORDS and not stats.skipped and len(ENDS) == RECORDS

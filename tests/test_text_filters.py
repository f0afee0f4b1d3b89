"""Each text-stage filter on literal keep/drop examples, at and around its thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from crawl2chat.crawl.urlfilter import Blocklist, UrlFilter, load_blocklist
from crawl2chat.text import mix
from crawl2chat.text.c4 import C4
from crawl2chat.text.dedup import later_copies, positions
from crawl2chat.text.fineweb import FineWebRules
from crawl2chat.text.gopher import GopherQuality, GopherRepetition
from crawl2chat.text.minhash import MinHasher, band_rows, match_probability
from crawl2chat.text.steps import Doc, new_stats, run_steps

PROSE = ("The baker wakes before dawn to shape the loaves. She heats the oven and waits for "
         "the dough to rise. Then she scores each loaf with a sharp blade. The crust turns "
         "brown and crisp in the heat. Customers queue outside the door of the shop. They "
         "buy bread that is still warm and share it with their families at breakfast.")


def doc(text: str, lang: str = "en", url: str = "https://example.org/") -> Doc:
    return Doc("id", url, "w", text=text, lang=lang)


def test_gopher_quality_keeps_prose_and_names_each_rule():
    rule = GopherQuality()
    assert rule(doc(PROSE)) is None
    assert rule(doc("The cat and the dog. " * 3)) == "short_doc"
    assert rule(doc(" ".join(["abcdefghijklm"] * 60) + " the and")) == "above_avg_word_length"
    assert rule(doc(PROSE + " #tag" * 12)) == "too_many_hashes"
    numbers = " ".join(str(n) for n in range(1000, 1100)) + " the and of with cats dogs"
    assert rule(doc(numbers)) == "below_alpha_threshold"
    no_stop = ("Bakers shape loaves before dawn. Ovens heat slowly. " * 10)
    assert rule(doc(no_stop)) == "few_stop_words"
    # German pages are judged by German stop words, not Gopher's English ones
    german = ("Der Bäcker steht früh auf und formt die Brote mit der Hand. " * 8)
    assert rule(doc(german, lang="de")) is None
    assert GopherQuality(min_doc_words=200)(doc(PROSE)) == "short_doc"


def test_gopher_quality_bullet_edge_is_strict():
    lines = ["- the bread and the oven are hot today"] * 9 + ["the bread is good to eat now"]
    text = "\n".join(lines * 2)
    assert GopherQuality(max_bullet_lines_ratio=0.9)(doc(text)) is None  # 0.9 is not > 0.9
    assert GopherQuality(max_bullet_lines_ratio=0.89)(doc(text)) == "too_many_bullets"


def test_gopher_repetition_on_lines_paragraphs_and_ngrams():
    rule = GopherRepetition()
    assert rule(doc(PROSE)) is None
    assert rule(doc("\n\n".join(["Buy now and save."] * 3 + [PROSE]))) == "dup_para_frac"
    # 3 of 10 lines repeat: 0.3 is not > 0.3 (kept by that rule); 4 of 10 is dropped
    unique = [f"Line number {w} says something new." for w in "abcdefghij"]
    at_edge = "\n".join(unique[:7] + [unique[0]] * 3)
    assert GopherRepetition(dup_line_char_frac=1, dup_n_grams={}, top_n_grams={})(
        doc(at_edge)) is None
    over = "\n".join(unique[:6] + [unique[0]] * 4)
    assert GopherRepetition(dup_line_char_frac=1, dup_n_grams={}, top_n_grams={})(
        doc(over)) == "dup_line_frac"
    spam = PROSE + " " + "cheap watches online " * 8
    assert rule(doc(spam)) in ("top_3_gram", "top_2_gram", "duplicated_5_n_grams")


def test_c4_removes_lines_and_drops_documents():
    rule = C4()
    page = doc("Please enable JavaScript to view this site properly.\n" + PROSE.replace(
        ". ", ".\n") + "\nRead our privacy policy before you buy.\nMenu\nWiki text [1] [edit]")
    assert rule(page) is None
    assert "JavaScript" not in page.text and "privacy policy" not in page.text
    assert "Menu" not in page.text and "[1]" not in page.text and "Wiki text" in page.text
    assert rule(doc(PROSE + "\nLorem ipsum dolor sit amet, consectetur.")) == "lorem_ipsum"
    assert rule(doc(PROSE + "\nfunction f() { return 1; }")) == "curly_bracket"
    assert rule(doc("One sentence here. Two sentences here. Three now. Four now.")) == (
        "too_few_sentences")
    five = doc("One sentence here. Two sentences here. Three now. Four now. Five now.")
    assert rule(five) is None
    # the terminal-punctuation rule is off by default (FineWeb) and can be switched on
    assert C4(terminal_punctuation=True)(doc(PROSE + "\nno full stop at the end")) is None


def test_fineweb_rules_at_their_thresholds():
    rule = FineWebRules()
    long = "This line is long enough to count as a real line of prose"
    assert rule(doc("\n".join([long + "."] * 1 + [long + f" {i}" for i in range(7)]))) is None
    # 1 of 9 lines ends in punctuation: 0.111 < 0.12
    assert rule(doc("\n".join([long + "."] + [long + f" {i}" for i in range(8)]))) == (
        "line_punct_ratio")
    short = "\n".join([f"Short line {i}." for i in range(7)] + [long + f" {i}." for i in range(3)])
    assert rule(doc(short)) == "short_line_ratio"  # 7 of 10 > 0.67
    dup = "\n".join([long + f" {i}." for i in range(20)] + [long + " 0."])
    assert rule(doc(dup)) == "char_dup_ratio"
    assert rule(doc("")) == "empty"
    assert FineWebRules(new_line_ratio=0.05)(doc("\n".join(
        [long + f" {i}." for i in range(5)]))) == "list_ratio"


def test_url_filter_offline_lists():
    lists = load_blocklist(["www.pornhub.com", "en.wikipedia.org"])
    assert lists.domains == {"pornhub.com"}  # only entries that can match these hosts
    rule = UrlFilter(lists, extra_domains=["spam.example"])
    assert rule.check("https://www.pornhub.com/view") == "domain"
    assert rule.check("https://en.wikipedia.org/wiki/Bread") is None
    assert rule.check("https://example.org/free-xxx-videos") == "banned_word"
    assert rule.check("https://shop.spam.example/") == "blocked_extra"
    assert rule.check("https://docs.python.org/3/library/re.html") is None
    soft = UrlFilter(Blocklist(soft_banned_words={"escort", "nipple"}))
    assert soft.check("https://example.org/escort") is None
    assert soft.check("https://example.org/escort-nipple") == "soft_banned"
    sub = UrlFilter(Blocklist(banned_subwords={"camgirl"}))
    assert sub.check("https://example.org/best-cam-girl") == "banned_subword"


def test_minhash_lsh_probabilities_match_fineweb():
    hasher, rng = MinHasher(), np.random.default_rng(0)
    expected = {0.7: 0.56, 0.75: 0.77, 0.8: 0.92, 0.85: 0.988}
    for jaccard, (common, own) in {0.7: (140, 30), 0.75: (150, 25), 0.8: (160, 20),
                                   0.85: (170, 15)}.items():
        hits = 0
        for _ in range(600):
            v = rng.choice(1 << 32, size=common + 2 * own, replace=False).astype(np.uint64)
            a = hasher.of_hashes(v[:common + own])
            b = hasher.of_hashes(np.concatenate([v[:common], v[common + own:]]))
            hits += bool((a == b).all(axis=1).any())
        assert abs(hits / 600 - expected[jaccard]) < 0.05, jaccard
        assert abs(match_probability(jaccard) - expected[jaccard]) < 0.006


def _near_copies(texts: list[str], folder) -> list[bool]:
    """Which texts share a MinHash band with an earlier one, resolved on disk."""
    hasher = MinHasher()
    sigs = np.stack([hasher.of_text(t) for t in texts]).astype(np.uint32)
    at = positions(0, len(texts))
    later: set[int] = set()
    for band in range(hasher.buckets):
        rows = band_rows(sigs, at, band)
        # two rows per sort: the partitioned path, not one in-memory sort
        found = later_copies(lambda r=rows: [r], len(texts), 1, folder / f"b{band}.npy", 2)
        later |= set(np.load(found).tolist())
    return [int(p) in later for p in at]


def test_minhash_dedup_first_copy_wins(tmp_path):
    near = PROSE.replace("sharp blade", "very sharp blade")
    other = "A completely different text about trains and stations. " * 5
    assert _near_copies([PROSE, near, other], tmp_path) == [False, True, False]
    assert _near_copies([other, near, PROSE], tmp_path) == [False, False, True]


def test_later_copies_matches_first_copy_wins_in_any_partitioning(tmp_path):
    rng = np.random.default_rng(0)
    runs = [np.column_stack([rng.integers(0, 40, size=(n, 2)).astype(np.uint64),
                             positions(s, n)]) for s, n in enumerate([30, 0, 45, 12])]
    seen: set[tuple[int, ...]] = set()
    expected = []
    for row in np.concatenate(runs):
        key = tuple(int(v) for v in row[:-1])
        if key in seen:
            expected.append(int(row[-1]))
        seen.add(key)
    for max_rows in (1, 7, 1000):
        found = later_copies(lambda: iter(runs), 87, 4, tmp_path / f"x{max_rows}.npy", max_rows)
        assert np.load(found).tolist() == sorted(expected)
    assert not list(tmp_path.glob("*.parts"))  # the partitions are cleaned up


def _tally(docs: list[tuple[str, str, int]]) -> mix.Tally:
    tally = mix.Tally()
    tally.add([lang for _, lang, _ in docs], mix.ranks([d for d, _, _ in docs]),
              np.asarray([n for _, _, n in docs]))
    return tally


def test_language_mix_is_a_quota_by_characters():
    # de is short: 3 x 100 characters are its 10%, so en keeps ~2700 of its 5000
    docs = [(f"en{i}", "en", 100) for i in range(50)] + [(f"de{i}", "de", 100) for i in range(3)]
    plan = mix.plan(_tally(docs), {"en": 0.9, "de": 0.1})
    keep = plan.keep([lang for _, lang, _ in docs], mix.ranks([d for d, _, _ in docs]))
    assert keep[50:].all() and keep[:50].sum() == 27
    assert plan.expected == {"en": 2700, "de": 300}
    # the same decision every run, and a long German document weighs more than a short one
    assert (plan.keep(["en"] * 50, mix.ranks([f"en{i}" for i in range(50)])) == keep[:50]).all()
    heavy = mix.plan(_tally([*docs[:50], ("de0", "de", 1000)]), {"en": 0.9, "de": 0.1})
    assert heavy.cut["en"] == mix.BINS and heavy.expected["de"] < 1000


def test_a_language_without_documents_leaves_the_rest_of_the_mix():
    docs = [(f"en{i}", "en", 100) for i in range(10)] + [(f"de{i}", "de", 50) for i in range(10)]
    plan = mix.plan(_tally(docs), {"en": 0.4, "de": 0.4, "fr": 0.2})
    assert plan.effective == {"en": 0.5, "de": 0.5}  # fr has none: en and de stay 1:1
    assert plan.expected == {"en": 500, "de": 500}
    rows = mix.report({"en": 0.4, "de": 0.4, "fr": 0.2}, plan.effective, plan.expected)
    assert rows["fr"]["achieved"] == 0.0 and rows["fr"]["gap"] == -0.2
    assert rows["en"]["achieved"] == 0.5


def test_run_steps_counts_and_names_the_step():
    stats = new_stats(["gopher_quality", "c4"])
    steps = [GopherQuality(), C4()]
    assert run_steps(doc(PROSE), steps, stats) is None
    assert run_steps(doc("too short"), steps, stats) == "gopher_quality:short_doc"
    assert (stats["gopher_quality"].docs_in, stats["gopher_quality"].docs_out) == (2, 1)
    assert stats["c4"].docs_in == 1 and stats["c4"].tokens_in == len(PROSE.split())
    assert stats["c4"].row()["removed_share"] == 0.0


@pytest.mark.parametrize("line", ["Hello, how are you today?", "Guten Tag, wie geht es dir?"])
def test_cli_tools_round_trip(line, capsys, monkeypatch):
    import io

    from crawl2chat.text.tools import langid_lines, pii_lines

    out = io.StringIO()
    langid_lines([line], out)
    assert out.getvalue().startswith('{"lang": "' + ("en" if "Hello" in line else "de"))
    out = io.StringIO()
    pii_lines([line + " jane@gmail.com\n"], out)
    assert out.getvalue() == line + " <EMAIL>\n"

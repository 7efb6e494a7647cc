import re

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ragpipe.chunking import CHARS_PER_TOKEN, Chunker, heading_paths
from ragpipe.datatypes import Document, Page


def words(text: str) -> int:
    """A fake tokenizer: one token per word or punctuation mark."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def make(size=20, overlap=5, limit=24):
    return Chunker(words, size, overlap, limit)


def test_offsets_map_back_and_pages_kept():
    pages = (
        Page(1, "Travel policy.\n\nEconomy class is required for flights under six hours. " * 5),
        Page(2, ""),
        Page(3, "Business class needs approval by a director. Receipts are mandatory. " * 4),
    )
    doc = Document("policy.pdf", pages, "pdf")
    chunks = make().split(doc)
    assert chunks, "no chunks"
    assert {c.page for c in chunks} == {1, 3}
    for c in chunks:
        page = next(p for p in pages if p.number == c.page)
        assert page.text[c.start : c.end] == c.text
        assert words(c.text) <= 24
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_chunks_overlap():
    text = " ".join(f"word{i}" for i in range(200))
    spans = make(size=20, overlap=5).split_text(text)
    assert len(spans) > 5
    for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False):
        assert s2 < e1, "consecutive chunks should overlap"


def test_one_huge_word_is_cut_to_the_limit():
    text = "x" * 5000
    chunker = Chunker(len, 100, 10, 100)  # 1 token per character
    spans = chunker.split_text(text)
    assert all(e - s <= 100 for s, e in spans)
    covered = set()
    for s, e in spans:
        covered.update(range(s, e))
    assert covered == set(range(len(text)))


def test_a_run_the_tokenizer_sees_as_one_token_is_cut_by_characters():
    # One "word" of 100,000 characters: a single token for this tokenizer (and an [UNK]
    # for MiniLM's), so only the character bound can cut it.
    text = "intro line\n" + "x" * 100_000 + "\ntail words here"
    chunker = make(size=20, overlap=5, limit=24)
    doc = Document("blob.txt", (Page(None, text),), "txt")
    chunks = chunker.split(doc)
    assert max(len(c.text) for c in chunks) == chunker.max_chars == 20 * CHARS_PER_TOKEN
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert sum(c.text.count("x") for c in chunks) == 100_000  # all of it, no overlap repeats
    assert chunks[-1].text.endswith("tail words here")


def test_markdown_heading_path():
    text = ("# Guide\n\nintro\n\n## Week one\n\nday one\n\n### Monday\n\nlaptop\n\n"
            "## Week two\n\nmore")
    paths = [p for _, p in heading_paths(text)]
    assert paths == ["Guide", "Guide > Week one", "Guide > Week one > Monday", "Guide > Week two"]
    doc = Document("g.md", (Page(None, text),), "md")
    chunks = Chunker(words, 4, 1, 6).split(doc)
    laptop = next(c for c in chunks if "laptop" in c.text)
    assert laptop.heading == "Guide > Week one > Monday"


def test_real_tokenizer_one_mebibyte_line(embedder):
    text = "A" * (1 << 20)  # one [UNK] token for MiniLM
    assert embedder.count_tokens(text) <= 3
    chunker = Chunker(embedder.count_tokens, 200, 30, embedder.max_tokens)
    spans = chunker.split_text(text)
    assert max(e - s for s, e in spans) <= 200 * CHARS_PER_TOKEN
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(s2 <= e1 for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False))


def test_real_tokenizer_never_exceeds_window(embedder):
    text = ("Supercalifragilistic antidisestablishmentarianism " * 300) + "\n\n"
    text += "日本語のテキスト" * 200
    chunker = Chunker(embedder.count_tokens, 200, 30, embedder.max_tokens)
    spans = chunker.split_text(text)
    assert spans
    for s, e in spans:
        assert embedder.count_tokens(text[s:e]) <= embedder.max_tokens


alphabet = st.characters(codec="utf-8", exclude_categories=("Cs",))


@hsettings(max_examples=150, deadline=None)
@given(st.text(alphabet=alphabet, max_size=600) | st.lists(
    st.sampled_from(["a", "bb", " ", "\n", "\n\n", ". ", "word", "\t", "ü", "--"]), max_size=300
).map("".join))
def test_chunking_properties(text):
    limit = 12
    chunker = Chunker(words, 10, 3, limit)
    spans = chunker.split_text(text)
    covered = [False] * len(text)
    for s, e in spans:
        piece = text[s:e]
        assert piece.strip(), "empty chunk"
        assert words(piece) <= limit
        assert len(piece) <= chunker.max_chars
        for i in range(s, e):
            covered[i] = True
    for i, ch in enumerate(text):
        if not ch.isspace():
            assert covered[i], f"character {ch!r} at {i} not covered"

"""Composed answers: units, whole lists and tables, verbatim text (no model needed)."""

from __future__ import annotations

import numpy as np
from fakes import HashEmbedder

from ragpipe import compose as C
from ragpipe.datatypes import Hit
from ragpipe.grounding import check_answer


def hit(text: str, n: int = 1, heading: str = "", source: str = "doc.md") -> Hit:
    return Hit(n, text, source, None, 0, len(text), 1.0, heading)


CLAIM = (
    "Claims are made in ExpenseHub within 30 days.\n"
    "A complete TR-7 claim must contain:\n"
    "- the itemised receipts;\n"
    "- the approved TR-2 number;\n"
    "- the cost centre; and\n"
    "- the client code if the costs are re-invoiced.\n"
    "\n"
    "Late claims are paid only with the Financial Controller's approval."
)

WRAPPED = (
    "1.1 In all operational areas (warehouse floor, loading docks and yard) you\n"
    "    must wear:\n"
    "    - a high-visibility vest (class 2 or higher), fastened;\n"
    "    - safety footwear (S3 standard);\n"
    "    - gloves when handling goods, pallets, strapping or\n"
    "      packaging.\n"
    "\n"
    "1.2 PPE is issued free of charge by the site."
)

TABLE = (
    "Book a hotel within the nightly cap below.\n"
    "\n"
    "| City | Maximum per night |\n"
    "|---|---|\n"
    "| Amsterdam, Rotterdam | EUR 170 |\n"
    "| Paris | EUR 210 |\n"
    "| London | GBP 200 |"
)


def texts(units, passages):
    return [(u.kind, u.text(passages)) for u in units]


def test_a_list_is_split_into_its_lead_in_and_items():
    p = [hit(CLAIM)]
    got = texts(C.split_units(p), p)
    assert got[0] == ("sentence", "Claims are made in ExpenseHub within 30 days.")
    assert got[1] == ("lead", "A complete TR-7 claim must contain:")
    assert [t for k, t in got if k == "item"] == [
        "- the itemised receipts;", "- the approved TR-2 number;", "- the cost centre; and",
        "- the client code if the costs are re-invoiced.",
    ]
    assert got[-1][0] == "sentence"
    blocks = {u.block for u in C.split_units(p) if u.kind in ("lead", "item")}
    assert len(blocks) == 1


def test_wrapped_plain_text_items_keep_their_continuation_lines():
    p = [hit(WRAPPED)]
    units = C.split_units(p)
    got = texts(units, p)
    assert ("lead", "1.1 In all operational areas (warehouse floor, loading docks and yard) you\n"
            "    must wear:") in got
    items = [t for k, t in got if k == "item"]
    assert len(items) == 3 and items[2].endswith("packaging.")
    assert got[-1] == ("sentence", "1.2 PPE is issued free of charge by the site.")


def test_table_rows_belong_to_their_header():
    p = [hit(TABLE)]
    units = C.split_units(p)
    kinds = [u.kind for u in units]
    assert kinds == ["sentence", "header", "row", "row", "row"]
    assert len({u.block for u in units[1:]}) == 1


def test_one_chosen_item_brings_the_whole_list_in_order():
    p = [hit(CLAIM)]
    units = C.split_units(p)
    scores = np.zeros(len(units))
    scores[3] = 0.9  # "the approved TR-2 number" alone scores
    picked = C.select(units, scores, C.ComposeConfig(floor=0.5))
    text, used = C.render(p, units, picked, scores)
    assert text.splitlines()[0] == "A complete TR-7 claim must contain:"
    assert text.count("\n- ") == 4 and text.endswith("[1]")
    assert used == (0,)


def test_composed_answers_are_verbatim_and_their_citations_check():
    passages = [hit(CLAIM, 1), hit(TABLE, 2, source="hotels.md")]
    emb = HashEmbedder(256)
    q = "what must a complete TR-7 claim contain?"
    comp = C.compose(q, passages, emb.embed, emb.embed_query, {})
    assert "the cost centre" in comp.text and "the client code" in comp.text
    checked = check_answer(comp.text, passages)
    assert checked.citations and all(c.supported for c in checked.citations)


def test_units_far_below_the_best_are_left_out():
    p = [hit("Alpha rules apply. Beta is unrelated. Gamma is also unrelated.")]
    units = C.split_units(p)
    scores = np.array([0.9, 0.3, 0.2])
    assert C.select(units, scores, C.ComposeConfig(margin=0.1, floor=0.25)) == [0]


def test_overlapping_chunks_of_a_page_are_joined_with_exact_offsets():
    page = "Air travel is booked in economy class. Business class is allowed only above 6 hours."
    a = Hit(1, page[0:50], "t.pdf", 2, 0, 50, 0.9)
    b = Hit(2, page[40:], "t.pdf", 2, 40, len(page), 0.8)
    other = Hit(3, page[40:], "t.pdf", 3, 40, len(page), 0.7)
    merged = C.merge_adjacent([a, other, b])
    assert len(merged) == 2
    assert merged[0].text == page and (merged[0].start, merged[0].end) == (0, len(page))
    assert merged[0].chunk_id == 1 and merged[1] is other


def test_sentences_cut_by_a_passage_edge_are_never_answered_with():
    p = [hit("to Brussels, Paris or Frankfurt. Business class needs 6 hours. Economy is the")]
    units = C.split_units(p)
    assert [u.kind for u in units] == ["fragment", "sentence", "fragment"]
    scores = np.array([0.9, 0.5, 0.9])
    assert C.select(units, scores, C.ComposeConfig()) == [1]


def test_a_numbered_section_title_ends_the_list_above_it():
    text = ("A complete claim contains:\n - the trip reference,\n - the receipts.\n"
            "9. Travel insurance and safety\nAll employees are insured.")
    p = [hit(text)]
    units = C.split_units(p)
    items = [u for u in units if u.kind == "item"]
    assert len(items) == 2
    last = units[-1]
    assert last.kind == "sentence" and last.context == "9. Travel insurance and safety"


def test_questions_of_several_parts_are_split_into_them():
    assert C.question_parts("How many days of leave do I get, and can I carry them over?") == [
        "How many days of leave do I get", "can I carry them over"]
    assert len(C.question_parts(
        "how long does my pw need to be, how often do i have to change it, and where should "
        "I keep my passwords?")) == 3
    assert C.question_parts("What PPE do I need?") == ["What PPE do I need?"]

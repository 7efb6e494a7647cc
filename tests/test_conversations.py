"""Saved conversations, feedback and usage in the app database (real SQLite files)."""

from __future__ import annotations

import json
import stat
import time

import pytest

from ragpipe import appstate
from ragpipe.conversations import Conversations, new_owner, title_for, valid_owner
from ragpipe.datatypes import Answer, Citation, Hit, Support
from ragpipe.errors import InvalidArgument
from ragpipe.eval_workplace import load_workplace
from ragpipe.feedback import DOWN, UP, Feedback

HIT = Hit(7, "Claims use form TR-7 within 30 days.", "policies/travel.pdf", 2, 100, 137, 0.8)


def answer(question: str, text: str = "form TR-7 [1]", found: bool = True) -> Answer:
    cites = (Citation(1, HIT, True, (116, 120)),) if found else ()
    return Answer(question=question, text=text if found else "Not found in the documents.",
                  citations=cites, hits=(HIT,), found=found,
                  support=Support(1, 1, 0, 0, 0.9) if found else Support(),
                  abstain_reason="" if found else "not relevant")


@pytest.fixture
def db(tmp_path):
    return appstate.db_path(tmp_path / "indexes")


def test_the_app_database_is_private_and_never_an_index(db, tmp_path):
    from ragpipe.errors import ConfigError
    from ragpipe.settings import load_settings

    Conversations(db).create(new_owner(), "default")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    with pytest.raises(ConfigError):
        load_settings(overrides={"paths.indexes": tmp_path / "indexes"}, environ={}).index_dir(
            appstate.FOLDER)


def test_a_conversation_is_saved_with_its_sources_and_reopened(db):
    me = new_owner()
    convs = Conversations(db)
    cid = convs.create(me, "default")
    convs.add_question(me, cid, "Which   form do I use\nfor travel claims?")
    convs.add_answer(me, cid, answer("Which form do I use for travel claims?"), (HIT,),
                     model="smollm2-135m", settings={"answer.style": "extract"})
    # a new process, a new object: everything comes back from the file
    again = Conversations(db)
    [conv] = again.list_for(me)
    assert conv.title == "Which form do I use for travel claims?"  # named after question 1
    user, bot = again.messages(me, cid)
    assert (user.role, bot.role, bot.found) == ("user", "assistant", True)
    assert bot.hits == (HIT,)
    [c] = bot.citations
    assert (c.n, c.supported, c.span, c.hit) == (1, True, (116, 120), HIT)
    assert bot.detail["model"] == "smollm2-135m"
    assert again.history(me, cid) == [
        {"role": "user", "content": "Which   form do I use\nfor travel claims?"},
        {"role": "assistant", "content": "form TR-7 [1]"}]


def test_conversations_are_per_owner(db):
    me, other = new_owner(), new_owner()
    convs = Conversations(db)
    cid = convs.create(me, "default")
    convs.add_question(me, cid, "hello")
    assert convs.list_for(other) == [] and convs.get(other, cid) is None
    assert convs.messages(other, cid) == []
    with pytest.raises(InvalidArgument, match="does not exist"):
        convs.add_question(other, cid, "sneaky")
    convs.rename(other, cid, "taken")
    convs.delete(other, cid)
    assert convs.get(me, cid).title == "hello"


def test_rename_delete_and_order(db):
    me = new_owner()
    convs = Conversations(db)
    a = convs.create(me, "default")
    time.sleep(0.01)
    b = convs.create(me, "default")
    assert [c.id for c in convs.list_for(me)] == [b, a]
    convs.add_question(me, a, "newest activity")
    assert [c.id for c in convs.list_for(me)] == [a, b]
    convs.rename(me, a, "  Travel\nclaims ")
    assert convs.get(me, a).title == "Travel claims"
    with pytest.raises(InvalidArgument, match="title is empty"):
        convs.rename(me, a, "   ")
    convs.delete(me, a)
    assert [c.id for c in convs.list_for(me)] == [b]
    with appstate.connect(db) as conn:  # its messages went with it
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_failed_questions_stay_out_of_the_history(db):
    me = new_owner()
    convs = Conversations(db)
    cid = convs.create(me, "default")
    convs.add_question(me, cid, "first?")
    convs.add_error(me, cid, "first?", "index 'default' is damaged")
    convs.add_question(me, cid, "second?")
    convs.add_answer(me, cid, answer("second?"), (HIT,))
    assert [m["content"] for m in convs.history(me, cid)] == ["second?", "form TR-7 [1]"]


def test_markdown_export_lists_answers_and_sources(db):
    me = new_owner()
    convs = Conversations(db)
    cid = convs.create(me, "default")
    convs.add_question(me, cid, "Which form?")
    convs.add_answer(me, cid, answer("Which form?"), (HIT,))
    md = convs.markdown(me, cid)
    assert md.startswith("# Which form?\n")
    assert "**Question:** Which form?" in md and "**Answer:** form TR-7 [1]" in md
    assert "- [1] policies/travel.pdf, page 2" in md
    assert convs.markdown(new_owner(), cid) == ""


def test_usage_counts_questions_per_day_and_lists_not_found(db):
    me = new_owner()
    convs = Conversations(db)
    cid = convs.create(me, "default")
    for q, found in (("form?", True), ("canteen menu?", False), ("parking?", False)):
        convs.add_question(me, cid, q)
        convs.add_answer(me, cid, answer(q, found=found), (HIT,))
    convs.add_question(me, cid, "broken?")
    convs.add_error(me, cid, "broken?", "damaged")  # not counted: no answer was given
    other = convs.create(me, "hr")
    convs.add_question(me, other, "leave?")
    convs.add_answer(me, other, answer("leave?", found=False), ())
    u = convs.usage("default")
    assert u.questions == 3 and u.not_found == 2
    assert u.not_found_share == pytest.approx(2 / 3)
    assert [q for _, q in u.not_found_questions] == ["parking?", "canteen menu?"]
    assert len(u.per_day) == 1 and u.per_day[0][1] == 3
    assert convs.usage("nothing").not_found_share == 0.0


def test_owner_tokens():
    assert valid_owner(new_owner()) and new_owner() != new_owner()
    for bad in (None, "", "short", "x" * 65, "<script>alert(1)</script>aaaaaaaa", "a b" * 8):
        assert not valid_owner(bad)
    assert title_for("x" * 100).endswith("…") and len(title_for("x" * 100)) == 60


def test_feedback_is_stored_with_what_was_rated_and_exports_as_a_workplace_set(db, tmp_path):
    me = new_owner()
    convs, fb = Conversations(db), Feedback(db)
    cid = convs.create(me, "default")
    convs.add_question(me, cid, "Which form?")
    good = convs.add_answer(me, cid, answer("Which form?"), (HIT,), model="m1",
                            settings={"answer.style": "extract"})
    convs.add_question(me, cid, "And the deadline?")
    bad = convs.add_answer(me, cid, answer("And the deadline?", text="form TR-7 [1]"), (HIT,))
    convs.add_question(me, cid, "Canteen menu?")
    missed = convs.add_answer(me, cid, answer("Canteen menu?", found=False), (HIT,))
    fb.give(me, good, UP)
    fb.give(me, bad, UP)
    fb.give(me, bad, DOWN, " It is 30 days, not the form. ")  # a second rating replaces
    fb.give(me, missed, UP, "right: there is no menu")
    assert fb.rating(me, bad) == (DOWN, "It is 30 days, not the form.")
    with pytest.raises(InvalidArgument, match="not one of yours"):
        fb.give(new_owner(), good, UP)
    with pytest.raises(InvalidArgument, match="rating"):
        fb.give(me, good, 5)
    convs.delete(me, cid)  # feedback keeps its own copy
    rows = fb.all("default")
    assert [r["rating"] for r in rows] == [UP, DOWN, UP]
    assert rows[0]["detail"]["model"] == "m1"
    assert rows[0]["detail"]["sources"][0]["source"] == "policies/travel.pdf"

    text = fb.export_jsonl("default")
    up, down, none = (json.loads(line) for line in text.splitlines())
    assert up == {**up, "id": f"fb-{rows[0]['id']}", "question": "Which form?",
                  "type": "feedback", "answerable": True, "key_points": ["form TR-7"],
                  "sources": ["travel.pdf"], "history": [], "needs_review": False}
    assert down["type"] == "follow_up" and down["needs_review"] and down["key_points"] == []
    assert down["history"] == [{"role": "user", "content": "Which form?"},
                               {"role": "assistant", "content": "form TR-7 [1]"}]
    assert down["comment"] == "It is 30 days, not the form."
    assert none["answerable"] is False and none["type"] == "unanswerable"
    # the file is a workplace set `ragpipe eval answers` reads
    path = tmp_path / "feedback.jsonl"
    path.write_text(fb.export_jsonl("default", ready_only=True))
    qs = load_workplace(path)
    assert [(q.question, q.answerable, q.key_points) for q in qs] == [
        ("Which form?", True, ("form TR-7",)), ("Canteen menu?", False, ())]
    from ragpipe.eval_workplace import is_workplace_set

    assert is_workplace_set(path)
